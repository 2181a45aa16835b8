"""Depth back-projection and projection through a pinhole camera.

Conventions (the same as OpenCV, Open3D, ScanNet and 7-Scenes): pixel (u, v) has its centre
at integer coordinates, camera x points right, y down, z forward; a pose is the 4×4
camera-to-world matrix, so world = pose @ [x, y, z, 1].
"""

from __future__ import annotations

import numpy as np

from regiond.core.errors import InputError
from regiond.core.frames import Camera, camera_rays, check_pose

DEFAULT_MAX_DEPTH = 10.0  # metres; farther readings are treated as invalid


def valid_depth(depth: np.ndarray, max_depth: float = DEFAULT_MAX_DEPTH, min_depth: float = 0.0) -> np.ndarray:
    """H×W bool: depth is finite, above `min_depth` (and > 0) and at most `max_depth` metres."""
    d = np.asarray(depth)
    with np.errstate(invalid="ignore"):
        return np.isfinite(d) & (d > max(min_depth, 0.0)) & (d <= max_depth)


def checked_depth(depth, camera: Camera) -> tuple[np.ndarray, Camera]:
    """(H×W float32 depth, the camera at its size); InputError for anything else."""
    if not isinstance(camera, Camera):
        raise InputError("intrinsics", f"expected a Camera, got {type(camera).__name__}")
    d = np.asarray(depth)
    if d.ndim != 2 or d.size == 0:
        raise InputError("depth", f"expected a non-empty H×W array, got shape {d.shape}")
    if not np.issubdtype(d.dtype, np.floating):
        raise InputError("depth", f"expected float depth in metres, got dtype {d.dtype}")
    h, w = d.shape
    if (camera.width, camera.height) != (w, h):
        # The intrinsics describe another resolution of the same image: rescale them.
        camera = camera.scaled(w, h)
    return d.astype(np.float32, copy=False), camera


def transform_points(points: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Apply a 4×4 rigid transform to (...×3) points, in float64, returned as float32."""
    m = np.asarray(matrix, dtype=np.float64)
    p = np.asarray(points, dtype=np.float64)
    return (p @ m[:3, :3].T + m[:3, 3]).astype(np.float32)


def backproject(
    depth: np.ndarray,
    camera: Camera,
    pose=None,
    max_depth: float = DEFAULT_MAX_DEPTH,
    min_depth: float = 0.0,
    stride: int = 1,
) -> tuple[np.ndarray, np.ndarray]:
    """Depth image → 3D points.

    depth      H×W float depth in metres along the optical axis (0 or NaN = no reading)
    camera     intrinsics; rescaled to H×W if given for another resolution
    pose       4×4 camera-to-world; None gives camera-space points. A pose ScanNet marks
               lost (-inf) raises InputError here: callers decide what a missing pose means.
    max_depth  readings beyond this (metres) are invalid; min_depth likewise below
    stride     only every stride-th pixel each way: the same points as slicing the full result
               [::stride, ::stride], for a quarter (stride 2) of the work

    Returns (points H×W×3 float32, valid H×W bool); invalid pixels hold NaN.
    """
    d, camera = checked_depth(depth, camera)
    if stride < 1:
        raise InputError("stride", f"must be at least 1, got {stride}")
    d = d[::stride, ::stride]
    valid = valid_depth(d, max_depth, min_depth)
    xs, ys = camera_rays(camera, stride)
    z = np.where(valid, d, np.float32(np.nan))
    pts = np.stack([xs * z, ys * z, z], axis=-1)
    if pose is not None:
        p = check_pose(pose)
        if p is None:
            raise InputError("pose", "pose is marked invalid (-inf): no world coordinates")
        pts = transform_points(pts, p)
    return pts, valid


def project(points: np.ndarray, camera: Camera, pose=None) -> tuple[np.ndarray, np.ndarray]:
    """World (or, with pose None, camera-space) points (...×3) → pixel coordinates and depth.

    Returns (uv ...×2 float32 with the pixel-centre convention, z ... float32 metres along
    the optical axis). Points behind the camera get z <= 0; callers filter them.
    """
    p = np.asarray(points, dtype=np.float64)
    if pose is not None:
        c2w = check_pose(pose)
        if c2w is None:
            raise InputError("pose", "pose is marked invalid (-inf)")
        p = transform_points(p, np.linalg.inv(c2w)).astype(np.float64)
    z = p[..., 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        u = camera.fx * p[..., 0] / z + camera.cx
        v = camera.fy * p[..., 1] / z + camera.cy
    return np.stack([u, v], axis=-1).astype(np.float32), z.astype(np.float32)
