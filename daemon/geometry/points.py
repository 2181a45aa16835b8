"""A frame's depth back-projected once: the valid pixels' 3D points, which the per-region 3D
statistics and the voxel fusion of a scene frame both read (back-projecting and moving every
pixel to the world took more of a scene frame's time than anything but the masks).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from regiond.core.errors import InputError
from regiond.core.frames import camera_rays
from regiond.geometry.backproject import DEFAULT_MAX_DEPTH, checked_depth, valid_depth

#: a frame whose Frame.meta holds this key (set to None) gets its FramePoints there from the
#: extractor's 3D statistics, for the fusion to take (only when asked: a frame kept in a list
#: would otherwise keep megabytes of points)
POINTS_KEY = "points"


@dataclass
class FramePoints:
    """The points of a frame's pixels with valid depth.

    points     3×P float32 coordinates (world when `world`, else camera), coordinate-major
    pixels     P flat (row-major) indices of their pixels, in the order they were asked for
    shape      the image's (H, W)
    world      whether a pose moved them to the world
    max_depth  readings beyond it were left out
    stride     every valid pixel on every stride-th row and column is among them (others
               may be too): the fusion reads them at any multiple of it"""

    points: np.ndarray
    pixels: np.ndarray
    shape: tuple[int, int]
    world: bool
    max_depth: float
    stride: int = 1

    def __len__(self) -> int:
        return int(self.pixels.size)


def frame_points(
    depth: np.ndarray,
    camera,
    pose=None,
    max_depth: float = DEFAULT_MAX_DEPTH,
    pixels: np.ndarray | None = None,
    stride: int = 1,
) -> FramePoints:
    """The 3D points of the valid-depth pixels among `pixels` (flat row-major indices, in the
    order wanted; None: every pixel in image order; `stride`: they hold every pixel on every
    stride-th row and column, as the caller vouches): camera coordinates as backproject() gives
    them, moved to the world in float32 (see _moved); a pose marked
    invalid (-inf, lost tracking) raises InputError, callers decide what a missing pose means.
    Only valid pixels are computed, coordinate-major, so the statistics read each axis
    contiguously."""
    d, camera = checked_depth(depth, camera)
    h, w = d.shape
    z = d.ravel() if pixels is None else d.ravel()[pixels]
    ok = valid_depth(z, max_depth)
    keep = np.flatnonzero(ok) if pixels is None else np.asarray(pixels)[ok]
    z = z[ok]
    xs, ys = flat_rays(camera)
    pts = np.empty((3, z.size), np.float32)
    np.multiply(np.take(xs, keep), z, out=pts[0])
    np.multiply(np.take(ys, keep), z, out=pts[1])
    pts[2] = z
    world = pose is not None
    if world:
        pts = _moved(pts, world_pose(pose))
    return FramePoints(pts, keep, (h, w), world, float(max_depth), 1 if pixels is None else stride)


def world_pose(pose) -> np.ndarray:
    """The 4×4 float64 camera-to-world matrix; InputError for a pose marked invalid (-inf)."""
    p = np.asarray(pose, dtype=np.float64).reshape(4, 4)
    if not np.all(np.isfinite(p)):
        raise InputError("pose", "pose is marked invalid (-inf): no world coordinates")
    return p


@lru_cache(maxsize=8)
def stride_grid(h: int, w: int, stride: int) -> tuple[np.ndarray, np.ndarray]:
    """(H·W bool, its flat indices) of the pixels on every stride-th row and column of an H×W
    image (read-only: a stream's frames share them)."""
    on = np.zeros((h, w), bool)
    on[::stride, ::stride] = True
    on = on.ravel()
    grid = np.flatnonzero(on)
    on.flags.writeable = grid.flags.writeable = False
    return on, grid


@lru_cache(maxsize=8)
def flat_rays(camera) -> tuple[np.ndarray, np.ndarray]:
    """camera_rays flattened, H·W float32 each (a stream's frames share their camera)."""
    xs, ys = camera_rays(camera)
    return xs.ravel(), ys.ravel()


def _moved(pts: np.ndarray, pose: np.ndarray) -> np.ndarray:
    """3×P float32 points moved by a 4×4 pose, axis by axis in float32 (within a few 1e-7 of
    the float64 product, far below depth noise). A matrix product would go to BLAS, whose
    threads spin against each other on a busy machine: 90 ms instead of 2 for a 640×480
    frame under load."""
    m = pose.astype(np.float32)
    out = np.empty_like(pts)
    tmp = np.empty(pts.shape[1], np.float32)
    for i in range(3):
        o = out[i]
        np.multiply(pts[0], m[i, 0], out=o)
        np.multiply(pts[1], m[i, 1], out=tmp)
        o += tmp
        np.multiply(pts[2], m[i, 2], out=tmp)
        o += tmp
        o += m[i, 3]
    return out
