"""Point clouds and their PLY files: the one PLY reader and writer of the project.

Binary little-endian, vertices `x y z` (float), `red green blue` (uchar) and, when the cloud
is labelled, `label` (int), and when its points belong to objects, `instance` (int, 0 = none):
what Open3D, MeshLab and CloudCompare read. Written with plyfile
(numpy only): importing Open3D into the daemon slows every later extraction in the process
(measured ~1.5× on the lite profile).
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from plyfile import PlyData, PlyElement, PlyParseError

from regiond.core.errors import InputError


@dataclass
class PointCloud:
    """points N×3 float32 metres, colors N×3 uint8 RGB, labels N int32 (0 = none) or None,
    instances N int32 object ids (0 = none) or None."""

    points: np.ndarray
    colors: np.ndarray
    labels: np.ndarray | None = None
    instances: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.points.shape[0])


def _vertices(cloud: PointCloud) -> PlyElement:
    fields = [("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("red", "u1"), ("green", "u1"), ("blue", "u1")]
    if cloud.labels is not None:
        fields.append(("label", "<i4"))
    if cloud.instances is not None:
        fields.append(("instance", "<i4"))
    rows = np.empty(len(cloud), dtype=fields)
    for k, name in enumerate("xyz"):
        rows[name] = cloud.points[:, k]
    for k, name in enumerate(("red", "green", "blue")):
        rows[name] = cloud.colors[:, k]
    if cloud.labels is not None:
        rows["label"] = cloud.labels
    if cloud.instances is not None:
        rows["instance"] = cloud.instances
    return PlyElement.describe(rows, "vertex")


def ply_bytes(cloud: PointCloud) -> bytes:
    """The cloud as the bytes of a binary PLY file."""
    buf = io.BytesIO()
    PlyData([_vertices(cloud)], byte_order="<").write(buf)
    return buf.getvalue()


def write_ply(path, cloud: PointCloud) -> Path:
    """Write the cloud to `path` (.ply), atomically: a reader never sees half a file."""
    path = Path(path)
    if path.suffix.lower() != ".ply":
        raise InputError("out", f"expected a .ply path, got {path}")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(ply_bytes(cloud))
    tmp.replace(path)
    return path


def read_ply(path) -> PointCloud:
    """A PLY's vertices (ours, or any PLY with x y z; colours as uchar or float in [0, 1])."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    try:
        ply = PlyData.read(str(path))
        v = ply["vertex"].data
    except (PlyParseError, KeyError, ValueError) as e:
        raise InputError("ply", f"{path}: not a PLY point cloud ({e})") from None
    names = v.dtype.names or ()
    if not {"x", "y", "z"} <= set(names):
        raise InputError("ply", f"{path}: no points (vertices lack x y z)")
    points = np.stack([v["x"], v["y"], v["z"]], axis=1).astype(np.float32)
    if {"red", "green", "blue"} <= set(names):
        cols = np.stack([v["red"], v["green"], v["blue"]], axis=1)
        if cols.dtype != np.uint8:
            cols = np.clip(np.rint(cols * 255), 0, 255).astype(np.uint8)
    else:
        cols = np.zeros((len(points), 3), np.uint8)
    labels = np.asarray(v["label"]).astype(np.int32) if "label" in names else None
    instances = np.asarray(v["instance"]).astype(np.int32) if "instance" in names else None
    return PointCloud(points, cols, labels, instances)
