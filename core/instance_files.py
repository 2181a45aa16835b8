"""ScanNet's instance-benchmark layout: a scene's objects as masks over the points of a cloud.

    <folder>/<scene>.txt                 one line per object: `mask_file label_id confidence`,
                                         mask_file relative to the folder
    <folder>/pred_mask/<scene>_NNN.txt   one line per point of the cloud: 1 inside the object, 0 not

The client writes it (clients/scan_scene.py --objects), `regiond eval instances` reads it;
the ScanNet benchmark scripts read it too. Anything malformed is an InputError naming the file.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from regiond.core.errors import InputError

MASK_FOLDER = "pred_mask"


@dataclass
class InstanceMasks:
    """masks    K×N bool: the points of each object (masks may overlap)
    labels   K label ids, confidences K floats, in the file's order"""

    masks: np.ndarray
    labels: np.ndarray
    confidences: np.ndarray


def write_instance_masks(folder, scene: str, ids: np.ndarray, objects: list[tuple[int, int, float]]) -> Path:
    """Write objects [(id, label_id, confidence)] over the points whose object is `ids`;
    returns the scene's .txt file."""
    folder = Path(folder)
    (folder / MASK_FOLDER).mkdir(parents=True, exist_ok=True)
    ids = np.asarray(ids)
    lines = []
    for k, (oid, label, conf) in enumerate(objects):
        name = f"{MASK_FOLDER}/{scene}_{k:03d}.txt"
        text = np.full(2 * len(ids), ord("\n"), np.uint8)  # "0\n" or "1\n" per point
        text[0::2] = ord("0") + (ids == oid)
        (folder / name).write_bytes(text.tobytes())
        lines.append(f"{name} {int(label)} {float(conf):.6f}")
    path = folder / f"{scene}.txt"
    path.write_text("".join(line + "\n" for line in lines))
    return path


def find_scene_file(folder) -> Path:
    """The one <scene>.txt of a layout folder."""
    folder = Path(folder)
    found = sorted(p for p in folder.glob("*.txt") if p.is_file())
    if len(found) != 1:
        what = "no" if not found else f"{len(found)}"
        raise InputError("objects", f"{folder}: {what} <scene>.txt files (expected one, ScanNet's instance layout)")
    return found[0]


def read_instance_masks(scene_file, points: int) -> InstanceMasks:
    """Read a <scene>.txt and its masks over a cloud of `points` points."""
    scene_file = Path(scene_file)
    if not scene_file.is_file():
        raise InputError("objects", f"{scene_file}: no such file")
    masks, objects = [], []
    for n, line in enumerate(scene_file.read_text().splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split()
        try:
            name, label, conf = parts[0], int(parts[1]), float(parts[2])
            if len(parts) != 3 or not np.isfinite(conf):
                raise ValueError
        except (ValueError, IndexError):
            raise InputError("objects", f"{scene_file}:{n}: expected `mask_file label_id confidence`") from None
        masks.append(_read_mask(scene_file.parent / name, points))
        objects.append((label, conf))
    return InstanceMasks(
        np.array(masks, bool).reshape(len(masks), points),
        np.array([o[0] for o in objects], np.int64),
        np.array([o[1] for o in objects], np.float64),
    )


def _read_mask(path: Path, points: int) -> np.ndarray:
    if not path.is_file():
        raise InputError("objects", f"{path}: no such mask file")
    try:
        values = np.loadtxt(path, dtype=np.int64, ndmin=1)
    except ValueError as e:
        raise InputError("objects", f"{path}: not one integer per line ({e})") from None
    if values.shape != (points,):
        raise InputError("objects", f"{path}: {values.size} lines for a cloud of {points} points")
    return values != 0
