"""Pixel correspondences between two RGB-D views: which pixel of a source view sees the surface
point each pixel of a destination view sees (how masks are carried from a keyframe).

Backward warping: every destination pixel with depth is back-projected to the world and
projected into the source camera; the correspondence holds only when the source's own depth at
that pixel agrees with the point's depth there (the source depth map is its z-buffer: a
nearer surface in the source view means the point was occluded, a newly seen one), so carried
masks never leak onto surfaces the source did not see.
"""

from __future__ import annotations

import numpy as np

from regiond.core.frames import Camera
from regiond.geometry.backproject import DEFAULT_MAX_DEPTH, backproject, project, valid_depth

#: Relative depth difference (of the source depth) still counted as the same surface, plus an
#: absolute 1 cm for depth quantisation near the camera.
DEPTH_TOLERANCE = 0.05
_ABS_TOLERANCE = 0.01


def correspondences(
    src_depth: np.ndarray,
    src_camera: Camera,
    src_pose: np.ndarray,
    dst_depth: np.ndarray,
    dst_camera: Camera,
    dst_pose: np.ndarray,
    max_depth: float = DEFAULT_MAX_DEPTH,
    tolerance: float = DEPTH_TOLERANCE,
) -> np.ndarray:
    """H×W int64 of the destination: the flat index (row·W_src + column) of the source pixel
    seeing the same point, or -1 (no depth, outside the source view, or occluded there).

    Depths are metres at their cameras' resolutions; poses are 4×4 camera-to-world."""
    points, valid = backproject(dst_depth, dst_camera, dst_pose, max_depth=max_depth)
    uv, z = project(points, src_camera, src_pose)
    h, w = np.asarray(src_depth).shape
    with np.errstate(invalid="ignore"):
        u = np.rint(uv[..., 0])
        v = np.rint(uv[..., 1])
        inside = valid & (z > 0) & (u >= 0) & (u < w) & (v >= 0) & (v < h)
    out = np.full(inside.shape, -1, np.int64)
    flat = v[inside].astype(np.int64) * w + u[inside].astype(np.int64)
    seen = np.asarray(src_depth, np.float32).reshape(-1)[flat]
    zi = z[inside]
    with np.errstate(invalid="ignore"):
        same = valid_depth(seen, max_depth) & (np.abs(zi - seen) <= tolerance * seen + _ABS_TOLERANCE)
    out.reshape(-1)[np.flatnonzero(inside)[same]] = flat[same]
    return out


def carry_masks(masks: np.ndarray, index: np.ndarray) -> np.ndarray:
    """N×H×W bool masks of a source view → N×H'×W' in the destination, by `correspondences`:
    a destination pixel is in mask i when the source pixel it corresponds to is."""
    n = masks.shape[0]
    out = np.zeros((n, *index.shape), bool)
    if n:  # (reshape(0, -1) has no size to infer)
        hit = index >= 0
        out[:, hit] = masks.reshape(n, -1)[:, index[hit]]
    return out
