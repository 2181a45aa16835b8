"""Fused point clouds: back-projected frames accumulated on a voxel grid, written as PLY.

Each point is added to its voxel's sums where it comes; voxels are found through a hash of
4×4×4 blocks of them (regiond.geometry.voxel_hash; InfiniTAM's voxel block hashing; the loop is
compiled: regiond.geometry.compiled): a frame costs the same whatever the size of the scene,
and memory grows with the occupied blocks and voxels, not with the number of frames.
"""

from __future__ import annotations

import numpy as np

from regiond.core.errors import InputError
from regiond.core.frames import Camera, Frame, check_pose
from regiond.geometry.backproject import DEFAULT_MAX_DEPTH
from regiond.geometry.cloud import PointCloud, ply_bytes
from regiond.geometry.label_counts import LabelCounts
from regiond.geometry.points import FramePoints, frame_points
from regiond.geometry.voxel_hash import VoxelHash, grown

_BITS = 20  # bits per axis in a voxel key: ±2^19 voxels around the origin
_OFFSET = 1 << (_BITS - 1)
_MASK = (1 << _BITS) - 1
_NO_LABELS = np.zeros(0, np.int64)
_EVERY_ROW = np.zeros(0, bool)


def _voxel_index(points: np.ndarray, voxel: float) -> np.ndarray:
    """3×M int64 voxel coordinates (offset to be non-negative) of 3×M float64 points."""
    idx = np.floor(points / voxel).astype(np.int64)
    if idx.size:
        _check_range(idx.min(), idx.max(), voxel)
    idx += _OFFSET
    return idx


def _check_range(lo: int, hi: int, voxel: float) -> None:
    """InputError unless voxel coordinates from lo to hi fit a key (±2^19 voxels)."""
    if lo < -_OFFSET or hi > _MASK - _OFFSET:
        raise InputError("points", f"points beyond ±{_OFFSET * voxel:.0f} m cannot be fused at voxel {voxel} m")


def _keys(idx: np.ndarray) -> np.ndarray:
    return (idx[0] << (2 * _BITS)) | (idx[1] << _BITS) | idx[2]


def voxel_keys(points: np.ndarray, voxel: float) -> np.ndarray:
    """M int64 keys of the voxels of `voxel` metres holding M×3 finite points: the keys the
    fused cloud's voxels have (one integer per voxel, for hashing and sorting)."""
    return _keys(_voxel_index(np.asarray(points, dtype=np.float64).reshape(-1, 3).T, voxel))


def voxel_centres(keys: np.ndarray, voxel: float) -> np.ndarray:
    """M×3 float32 centres of the voxels of M keys (voxel_keys' inverse, to the voxel)."""
    idx = _unkey(np.asarray(keys, np.int64)) - _OFFSET
    return ((idx.T + 0.5) * voxel).astype(np.float32)


def _unkey(keys: np.ndarray) -> np.ndarray:
    return np.stack([keys >> (2 * _BITS), (keys >> _BITS) & _MASK, keys & _MASK])


class VoxelFusion:
    """Accumulates coloured (optionally labelled) points into voxels of `voxel` metres.

    Each voxel's point is the mean of its points and colour; its label the most frequent
    non-zero label among them (ties: the smaller id), 0 when none was labelled.
    """

    def __init__(self, voxel: float = 0.02, max_depth: float = DEFAULT_MAX_DEPTH):
        if not (np.isfinite(voxel) and voxel > 0):
            raise InputError("voxel", f"must be a positive number of metres, got {voxel}")
        self.voxel = float(voxel)
        self.max_depth = float(max_depth)
        from regiond.geometry.compiled import BLOCK_VOXELS, fuse  # numba: loaded with the first fusion

        self._fuse = fuse
        # voxels in blocks of 4×4×4 (compiled.BLOCK_SHIFT): a hash of the blocks, and per block
        # its voxels' slots + 1 (0: none); per voxel slot, in the order the voxels came: its key,
        # the sums of x, y, z, r, g, b and the number of points (float64: exact counts and
        # colour sums far beyond any scan), and its label counts
        self._blocks = VoxelHash(1 << 10)
        self._block_voxels = np.zeros((self._blocks.limit, BLOCK_VOXELS), np.int32)
        self._n = 0
        self._keys = np.zeros(1 << 15, np.int64)
        self._sums = np.zeros((len(self._keys), 7))
        self._labels = LabelCounts(len(self._keys))
        self._wanted = np.zeros((0, 0), bool)  # add_frame's pixels
        self.frames_used = 0
        self.frames_skipped = 0

    # --- adding ---------------------------------------------------------------------------

    def add_points(self, points, colors, labels=None) -> None:
        """Add M×3 world points (metres) with M×3 uint8 colours and optional M int labels."""
        pts = np.asarray(points, dtype=np.float64).reshape(-1, 3)
        rgb = np.asarray(colors).reshape(-1, 3)
        if rgb.shape[0] != pts.shape[0]:
            raise InputError("colors", f"{rgb.shape[0]} colours for {pts.shape[0]} points")
        if rgb.dtype != np.uint8:
            if rgb.dtype.kind not in "iu" or (rgb.size and (rgb.min() < 0 or rgb.max() > 255)):
                raise InputError("colors", f"must be integers from 0 to 255, got {rgb.dtype}")
            rgb = rgb.astype(np.uint8)
        lab = None
        if labels is not None:
            lab = np.asarray(labels).reshape(-1)
            if lab.shape[0] != pts.shape[0]:
                raise InputError("labels", f"{lab.shape[0]} labels for {pts.shape[0]} points")
        ok = np.isfinite(pts).all(axis=1)
        if not ok.all():
            pts, rgb, lab = pts[ok], rgb[ok], None if lab is None else lab[ok]
        self._add(np.ascontiguousarray(pts.T), np.arange(len(rgb)), rgb, lab)

    def _add(self, pts: np.ndarray, rows: np.ndarray, colours: np.ndarray, labels, wanted=_EVERY_ROW) -> None:
        """Add 3×P finite points with the colours and labels (or None) at their `rows` in
        colours and labels, those whose row is `wanted` (empty: all), after checking them all:
        bad input changes nothing."""
        if not pts.shape[1]:
            return
        _check_range(*np.floor(np.array([pts.min(), pts.max()], np.float64) / self.voxel), self.voxel)
        if labels is None:
            labels = _NO_LABELS
        elif labels.size:
            if labels.dtype.kind not in "iu":
                raise InputError("labels", f"must be integers, got {labels.dtype}")
            LabelCounts.check(labels)
        done = 0
        while done < pts.shape[1]:
            first, first_count, pairs, counts = self._labels.arrays(len(self._keys), self._n)
            done, blocks, self._n, pair_n = self._fuse(
                pts,
                rows,
                colours,
                labels,
                wanted,
                self.voxel,
                _BITS,
                done,
                self._blocks.arrays(),
                self._block_voxels,
                self._keys,
                self._n,
                self._sums,
                first,
                first_count,
                pairs,
                counts,
            )
            self._blocks.n = blocks
            self._labels.counted(self._n, pair_n, labels.size > 0)
            if done < pts.shape[1]:  # a hash half full, or the voxels' arrays full: grown, then on
                if blocks >= self._blocks.limit:
                    self._blocks.grow()
                    self._block_voxels = grown(self._block_voxels, self._blocks.limit, blocks)
                if self._n >= len(self._keys):
                    self._keys = grown(self._keys, self._n + 1, self._n)
                    self._sums = grown(self._sums, len(self._keys), self._n)
                if pair_n >= self._labels.pairs.limit:
                    self._labels.pairs.grow()

    def add_frame(self, frame: Frame, labels=None, stride: int = 1, points: FramePoints | None = None) -> bool:
        """Back-project one frame (needs depth, camera and a valid pose) and add it.

        labels  H×W label map to fuse instead of frame.labels (e.g. predictions)
        stride  use every stride-th pixel in each direction (faster, fewer points) where they
                lie within a voxel of each other; beyond the depth where they do not (voxel ·
                focal length / stride), every (stride // 2)-th, so that one frame still fills
                the voxels of far surfaces
        points  the frame's points back-projected already (its 3D statistics'), used when they
                are world points within this fusion's max_depth on a grid that holds those pixels
        Returns False (and counts the frame as skipped) when it has no depth or pose.
        """
        pose = check_pose(frame.pose)
        if frame.depth is None or frame.camera is None or pose is None:
            self.frames_skipped += 1
            return False
        rgb = np.asarray(frame.rgb)
        shape = np.shape(frame.depth)
        if rgb.shape[:2] != shape:
            raise InputError("depth", f"shape {shape} does not match the image {rgb.shape[:2]}")
        if stride < 1:
            raise InputError("stride", f"must be at least 1, got {stride}")
        fine = max(stride // 2, 1)  # the far pixels' stride
        lab = frame.labels if labels is None else labels
        if lab is not None and np.asarray(lab).shape != shape:
            raise InputError("labels", f"shape {np.asarray(lab).shape} does not match the depth {shape}")
        if (
            points is None
            or not points.world
            or points.max_depth != self.max_depth
            or points.shape != shape
            or fine % points.stride
        ):
            points = frame_points(frame.depth, frame.camera, pose, self.max_depth)
        h, w = shape
        wanted = _EVERY_ROW
        if stride > 1:  # the pixels wanted, marked on the image (one buffer: no page faults)
            if self._wanted.shape != shape:
                self._wanted = np.empty(shape, bool)
            wanted = self._wanted
            wanted.fill(False)
            wanted[::stride, ::stride] = True
            if fine < stride:
                cam = frame.camera.scaled(w, h)  # the intrinsics at the depth's size
                far = self.voxel * min(cam.fx, cam.fy) / stride  # beyond it, stride-th pixels lie over a voxel apart
                wanted[::fine, ::fine] |= np.asarray(frame.depth)[::fine, ::fine] > far
        self._add(
            points.points,
            points.pixels,
            rgb.reshape(h * w, -1),
            None if lab is None else np.asarray(lab).reshape(h * w),
            wanted.reshape(-1),
        )
        self.frames_used += 1
        return True

    # --- reading ------------------------------------------------------------------------

    @property
    def points_fused(self) -> int:
        """How many points the voxels were made of."""
        return int(self._sums[: self._n, 6].sum())

    def cloud(self) -> PointCloud:
        """The fused cloud so far, its voxels in key order (labels None when no labelled point
        was added)."""
        n = self._n
        order = np.argsort(self._keys[:n])  # distinct keys: any sort gives one order
        sums = self._sums[order]
        cnt = sums[:, 6:]
        pts = (sums[:, :3] / cnt).astype(np.float32)
        rgb = np.clip(np.rint(sums[:, 3:6] / cnt), 0, 255).astype(np.uint8)
        labels = None if self._labels.empty else self._labels.majority(n)[order]
        return PointCloud(pts, rgb, labels)


def warm_up() -> None:
    """Load the geometry's compiled loops (the first time after an install: compile them, a
    few seconds) as a scene stream's frames use them: a tiny frame's 3D statistics over a
    partition (int16 labels, as SLIC's) and its labelled fusion, and the hash's growth. The
    daemon's warm-up calls it, so that the first scene's first frame does not wait."""
    from regiond.core.partition import Partition
    from regiond.geometry.stats import region_geometry

    cam = Camera(4.0, 4.0, 1.5, 1.5, 4, 4)
    frame = Frame(rgb=np.zeros((4, 4, 3), np.uint8), depth=np.ones((4, 4), np.float32), camera=cam, pose=np.eye(4))
    geometry = region_geometry(Partition(np.zeros((4, 4), np.int16), 1), frame.depth, cam, frame.pose)
    fusion = VoxelFusion()
    fusion.add_frame(frame, labels=np.ones((4, 4), np.uint8), stride=4, points=geometry.points)
    fusion._blocks.grow()


def fuse_frames(
    frames, voxel: float = 0.02, max_depth: float = DEFAULT_MAX_DEPTH, stride: int = 1
) -> tuple[PointCloud, VoxelFusion]:
    """Fuse an iterable of Frames (ground-truth labels included when they carry them)."""
    fusion = VoxelFusion(voxel, max_depth)
    for f in frames:
        fusion.add_frame(f, stride=stride)
    return fusion.cloud(), fusion


def fit_to_size(cloud: PointCloud, voxel: float, limit: int, instances_of=None) -> tuple[bytes, float]:
    """PLY bytes of the cloud, re-voxelised at doubling voxel sizes until under `limit` bytes,
    and the voxel size that took (a reply message has a size limit; a coarser cloud fits).
    instances_of: M×3 points → their object ids, to give a coarser cloud's points theirs."""
    data = ply_bytes(cloud)
    while len(data) > limit and len(cloud) > 1:
        voxel *= 2
        coarser = VoxelFusion(voxel)
        coarser.add_points(cloud.points, cloud.colors, cloud.labels)
        has_instances = cloud.instances is not None
        cloud = coarser.cloud()
        if has_instances and instances_of is not None:
            cloud.instances = np.asarray(instances_of(cloud.points), np.int32)
        data = ply_bytes(cloud)
    return data, voxel
