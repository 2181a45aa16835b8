"""`regiond eval instances`: a scan's objects against the ground truth of its scene.

A scan folder written by `clients/scan_scene.py --objects` holds:
    scene.ply                  the fused cloud (its points are what AP is computed over)
    instances/<scene>.txt      ScanNet's instance layout: one mask over the cloud per object
    object_ids/NNNNNN.png      per frame, each pixel's object id as streamed (16-bit, 0: none)
    object_ids/final.json      {id as streamed: final id} (absent: the maps hold final ids)
    scan-progress.jsonl        the scan's settings (scene, every, max_frames, size, voxel)
The scene is opened again with the scan's settings (or the ones given) and its instance maps
(`instance-filt/`) fused into ground truth on the cloud's points (objects.instance_truth).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from regiond.core.errors import InputError
from regiond.core.instance_files import find_scene_file, read_instance_masks
from regiond.geometry import read_ply
from regiond.objects.instance_ap import instance_scores
from regiond.objects.instance_truth import Consistency, TruthFusion

INSTANCES = "instances"
OBJECT_IDS = "object_ids"
SETTINGS = ("scene", "every", "max_frames", "size", "voxel")


@dataclass
class InstanceReport:
    metrics: dict
    text: str


def scan_settings(scan_dir: Path) -> dict:
    """The scan's settings from its journal (scan-progress.jsonl's first line), {} without one."""
    journal = Path(scan_dir) / "scan-progress.jsonl"
    if not journal.is_file():
        return {}
    try:
        first = json.loads(journal.read_text().splitlines()[0])
        return {k: v for k, v in first.get("scan", {}).items() if k in SETTINGS}
    except (ValueError, IndexError, AttributeError):
        raise InputError("scan", f"{journal}: not a scan journal (its first line is not the scan's settings)") from None


def read_id_map(path: Path, shape: tuple[int, int]) -> np.ndarray:
    """A frame's object id PNG (16-bit), checked against the frame's size."""
    import cv2  # heavy: only when maps are read

    a = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if a is None or a.ndim != 2 or a.dtype not in (np.uint8, np.uint16):
        raise InputError("objects", f"{path}: not a single-channel 8- or 16-bit PNG of object ids")
    if a.shape != tuple(shape):
        raise InputError("objects", f"{path}: {a.shape[1]}×{a.shape[0]} ids for a {shape[1]}×{shape[0]} frame")
    return a


def final_ids(path: Path):
    """ids → final ids by the scan's table (ids it does not list: 0); the identity without one."""
    if not path.is_file():
        return lambda ids: ids
    try:
        table = {int(k): int(v) for k, v in json.loads(path.read_text()).items()}
    except (ValueError, AttributeError, TypeError):
        raise InputError("objects", f"{path}: not a table of object ids ({{id: final id}})") from None
    lut = np.zeros(max(table, default=0) + 1, np.int64)
    lut[list(table)] = list(table.values())
    return lambda ids: np.where(ids < len(lut), lut[np.minimum(ids, len(lut) - 1)], 0)


def evaluate_scan(scan_dir, scene=None, every=None, max_frames=None, size=None, labels_tsv=None) -> InstanceReport:
    from regiond import scenes  # frame sources: only when the command runs

    scan_dir = Path(scan_dir)
    if not scan_dir.is_dir():
        raise InputError("scan", f"{scan_dir}: no such folder")
    settings = scan_settings(scan_dir)
    given = {"scene": scene, "every": every, "max_frames": max_frames, "size": size}
    settings.update({k: v for k, v in given.items() if v is not None})
    if not settings.get("scene"):
        raise InputError("scene", f"{scan_dir} has no scan journal naming its scene: pass --scene")
    cloud = read_ply(scan_dir / "scene.ply")
    pred = read_instance_masks(find_scene_file(scan_dir / INSTANCES), len(cloud))
    size = settings.get("size")
    if isinstance(size, str):
        size = tuple(int(v) for v in size.lower().split("x"))
    opts = {"labels_tsv": labels_tsv} if labels_tsv else {}
    source = scenes.open_source(
        settings["scene"],
        every=int(settings.get("every") or 1),
        max_frames=settings.get("max_frames"),
        size=size,
        **opts,
    )
    summary = _summary(scan_dir)
    voxel = float(summary.get("ply_voxel_size") or settings.get("voxel") or 0.02)
    truth, consistency = TruthFusion(voxel), Consistency()
    id_dir = scan_dir / OBJECT_IDS
    final = final_ids(id_dir / "final.json")
    frames = 0
    for frame in source:
        inst = truth.add(frame)
        frames += 1
        path = id_dir / f"{int(frame.index):06d}.png"
        if path.is_file():
            consistency.add(inst, final(read_id_map(path, inst.shape)))
    if not frames:
        raise InputError("scene", f"{settings['scene']}: no frames")
    classes = truth.classes()
    if not any(classes.values()):
        raise InputError(
            "scene",
            f"{settings['scene']}: no class labels for its instances (label-filt/; ScanNet's raw ids need "
            f"--labels-tsv): wall, floor and ceiling cannot be told apart from objects",
        )
    scores = instance_scores(pred.masks, pred.confidences, truth.on_points(cloud.points), classes)
    cons = consistency.result(classes)
    metrics = {**scores.as_dict(), "consistency": cons, "frames": frames, "points": len(cloud)}
    text = (
        f"instances: AP {100 * scores.ap:.1f}, AP50 {100 * scores.ap50:.1f}, AP25 {100 * scores.ap25:.1f} "
        f"({scores.predictions} objects of at least 100 points against {scores.gt_objects} true ones; "
        f"class-agnostic, ScanNet's rules, {len(cloud)} points of {scan_dir / 'scene.ply'})\n"
        + (
            f"2D consistency: {cons['ids_per_object']:.2f} ids per object over {cons['objects']} objects "
            f"in {frames} frames (1 is perfect)"
            if cons["objects"]
            else f"2D consistency: no per-frame object ids in {id_dir}"
        )
    )
    return InstanceReport(metrics, text)


def _summary(scan_dir: Path) -> dict:
    path = scan_dir / "summary.json"
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text())
    except ValueError:
        raise InputError("scan", f"{path}: not JSON") from None
