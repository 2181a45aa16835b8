"""The object map's settings, one typed place (bench/objects.py varies them)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from regiond.core.errors import InputError
from regiond.geometry import DEFAULT_MAX_DEPTH


@dataclass(frozen=True)
class ObjectConfig:
    """voxel         edge of the object map's voxels, metres
    stride        back-project every stride-th pixel each way at 640 pixels wide, scaled with
                  the frame's width (6: 107×80 points at 640×480, 80×60 at 320×240)
    max_depth     farther readings are ignored, metres
    assign        a segment joins the object holding at least this share of its voxels
    contain       ... or the object whose visible voxels it holds at least this share of
    ambiguous     between this share and `assign`, feature similarity decides
    similar       the cosine similarity of features that counts as the same object
    merge         a segment holding at least this share of the visible voxels of two objects
                  (each also at least `merge_part` of the segment) merges them
    merge_part    see merge
    merge_similar a segment holding at least `bridge` of its voxels in each of two objects whose
                  mean features have at least this cosine similarity merges them (> 1: never)
    bridge        see merge_similar
    bridge_voxels ... and at least this many voxels in each
    edge          points at a depth edge (a neighbouring pixel over this share nearer or
                  farther) are left out: a depth camera's flying pixels and misregistered
                  edges (0: keep them)
    min_voxels    segments with fewer voxels neither join nor start objects (noise, slivers)
    depth_gap     a region's points split into segments where their depth jumps by more than
                  this share of the depth (a superpixel straddling a chair and the wall
                  behind it is two segments); 0: no split
    plane_gap     at the end, touching objects that are pieces of one plane (within this many
                  metres of it; a wall, the floor) merge (planes.py); 0: never
    min_frames    at the end, objects seen in fewer frames are dropped
    min_points    ... and objects holding fewer points of the fused cloud
    min_seen      at the end, voxels fewer frames put points in belong to no object (one frame
                  with a wrong pose cannot add surface to an object)
    check_pose    leave out frames whose points land on the map far less than the frames
                  before them did, or whose depth sees through the last frame's surfaces (a
                  wrong pose would smear objects across the room; pose_check.py)
    associate     False: every segment of a keyframe starts an object, nothing merges, not
                  even planes (the benchmark's floor, "no association")"""

    voxel: float = 0.06
    stride: int = 6
    max_depth: float = DEFAULT_MAX_DEPTH
    assign: float = 0.5
    contain: float = 0.6
    ambiguous: float = 0.2
    similar: float = 0.85
    merge: float = 0.6
    merge_part: float = 0.2
    merge_similar: float = 0.95
    bridge: float = 0.2
    bridge_voxels: int = 6
    edge: float = 0.0
    min_voxels: int = 3
    depth_gap: float = 0.08
    plane_gap: float = 0.03
    min_frames: int = 2
    min_points: int = 100
    min_seen: int = 2
    check_pose: bool = True
    associate: bool = True

    def stride_for(self, width: int) -> int:
        """The pixel stride for frames `width` pixels wide."""
        return max(1, round(self.stride * width / 640))

    def __post_init__(self):
        if not (np.isfinite(self.voxel) and self.voxel > 0):
            raise InputError("objects.voxel", f"must be a positive number of metres, got {self.voxel!r}")
        if not isinstance(self.stride, (int, np.integer)) or self.stride < 1:
            raise InputError("objects.stride", f"must be a positive number of pixels, got {self.stride!r}")
        if not (np.isfinite(self.max_depth) and self.max_depth > 0):
            raise InputError("objects.max_depth", f"must be a positive number of metres, got {self.max_depth!r}")
        for name in ("assign", "contain", "ambiguous", "merge", "merge_part"):
            v = getattr(self, name)
            if not 0.0 <= v <= 1.0:
                raise InputError(f"objects.{name}", f"must be between 0 and 1, got {v!r}")
