"""Fused point clouds: back-projected frames accumulated on a voxel grid, written as PLY.

Each frame is reduced to its voxels at once (one sort of its points), and their sums are
added to the scene's in a voxel hash (regiond.geometry.voxel_hash): a frame costs the same
whatever the size of the scene, and memory grows with the number of occupied voxels, not with
the number of frames.
"""

from __future__ import annotations

import numpy as np

from regiond.core.errors import InputError
from regiond.core.frames import Frame, check_pose
from regiond.core.runs import first_and_inverse, grouped, run_starts
from regiond.geometry.backproject import DEFAULT_MAX_DEPTH
from regiond.geometry.cloud import PointCloud, ply_bytes
from regiond.geometry.label_counts import LabelCounts
from regiond.geometry.points import FramePoints, frame_points
from regiond.geometry.voxel_hash import VoxelHash, grown

#: points added are fused in batches of about this many (a few frames): consecutive frames see
#: mostly the same voxels, so a batch has a few times fewer voxels to look up and add than its
#: frames one by one (the sums differ by rounding only: float64, in another order)
_BATCH_POINTS = 1 << 18
_BITS = 20  # bits per axis in a voxel key: ±2^19 voxels around the origin
_OFFSET = 1 << (_BITS - 1)
_MASK = (1 << _BITS) - 1


def _voxel_index(points: np.ndarray, voxel: float, checked: bool = False) -> np.ndarray:
    """3×M int64 voxel coordinates (offset to be non-negative) of 3×M float64 points (checked:
    _check_range passed them already)."""
    idx = np.floor(points / voxel).astype(np.int64)
    if not checked and idx.size:
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


def _box_rank(idx: np.ndarray) -> tuple[np.ndarray, int]:
    """Each of 3×M voxel coordinates' rank in their bounding box, ordered as their keys are
    (and small: the voxels of a frame, or of a room, span a box of a few million), and the
    box's volume."""
    lo, hi = idx.min(axis=1), idx.max(axis=1)
    span = [int(d) for d in hi - lo + 1]
    rank = (idx[0] - lo[0]) * span[1]
    rank += idx[1] - lo[1]
    rank *= span[2]
    rank += idx[2] - lo[2]
    return rank, span[0] * span[1] * span[2]


def _frame_voxels(idx: np.ndarray, labels: np.ndarray | None) -> tuple[np.ndarray, np.ndarray, tuple | None]:
    """(sorted distinct voxel keys, each point's index among them, (voxel, label, count) of
    the distinct (voxel, non-zero label) pairs or None) of 3×M voxel coordinates and their M
    labels (None: unlabelled), from one sort: of the voxels' ranks in their bounding box, or of
    (rank, label) pairs packed in one integer."""
    rank, volume = _box_rank(idx)
    top = 1 if labels is None else int(labels.max()) + 1
    if volume * top >= 1 << 62:  # the pairs would not pack: the voxels first, then the pairs
        first, inv = first_and_inverse(rank)
        pairs = None
        if labels is not None and (keep := labels > 0).any():
            pairs = _frame_pairs(inv[keep], labels[keep])
        return _keys(idx[:, first]), inv, pairs
    values = rank if labels is None else rank * top + labels
    first, inv = first_and_inverse(values)
    if labels is None:
        return _keys(idx[:, first]), inv, None
    voxel_rank = rank[first]  # per distinct pair, in (voxel, label) order
    new = run_starts(voxel_rank)
    voxel_of_pair = np.cumsum(new) - 1
    label = labels[first]
    keep = label > 0
    pairs = None
    if keep.any():
        count = np.bincount(inv, minlength=len(first))
        pairs = voxel_of_pair[keep], label[keep], count[keep]
    return _keys(idx[:, first[new]]), voxel_of_pair[inv], pairs


def _frame_pairs(voxels: np.ndarray, labels: np.ndarray) -> tuple:
    """(voxel, label, count) of each distinct (voxel, label) pair."""
    top = int(labels.max()) + 1
    pairs, _, counts = grouped(voxels * top + labels)
    return pairs // top, pairs % top, counts


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
        self._voxels = VoxelHash()  # voxel key → slot
        # per slot: sums of x, y, z, r, g, b and the number of points (float64: exact counts
        # and colour sums far beyond any scan), slot-major so that a frame adds all seven at once
        self._sums = np.zeros((len(self._voxels.keys), 7))
        self._labels = LabelCounts()
        self._pending: list[tuple] = []  # points added but not fused yet (_BATCH_POINTS)
        self._pending_points = 0
        self.frames_used = 0
        self.frames_skipped = 0

    # --- adding ---------------------------------------------------------------------------

    def add_points(self, points, colors, labels=None) -> None:
        """Add M×3 world points (metres) with M×3 uint8 colours and optional M int labels."""
        pts = np.asarray(points, dtype=np.float64).reshape(-1, 3)
        rgb = np.asarray(colors).reshape(-1, 3)
        if rgb.shape[0] != pts.shape[0]:
            raise InputError("colors", f"{rgb.shape[0]} colours for {pts.shape[0]} points")
        lab = None
        if labels is not None:
            lab = np.asarray(labels).reshape(-1)
            if lab.shape[0] != pts.shape[0]:
                raise InputError("labels", f"{lab.shape[0]} labels for {pts.shape[0]} points")
        ok = np.isfinite(pts).all(axis=1)
        if not ok.all():
            pts, rgb, lab = pts[ok], rgb[ok], None if lab is None else lab[ok]
        self._add(pts.T, rgb, lab)

    def _add(self, pts: np.ndarray, rgb: np.ndarray, lab: np.ndarray | None) -> None:
        """Add 3×M finite points with M×3 colours and M labels (or None): checked now, fused with
        the next frames' (see _BATCH_POINTS)."""
        if not pts.shape[1]:
            return
        _check_range(*np.floor(np.array([pts.min(), pts.max()], np.float64) / self.voxel), self.voxel)
        if lab is not None:
            lab = np.maximum(lab.astype(np.int64), 0)  # < 1: none
            LabelCounts.check(lab)
        self._pending.append((pts, rgb, lab))
        self._pending_points += pts.shape[1]
        if self._pending_points >= _BATCH_POINTS:
            self._flush()

    def _flush(self) -> None:
        """Fuse the points waiting: their voxels' sums added to the scene's."""
        parts, self._pending, self._pending_points = self._pending, [], 0
        if not parts:
            return
        pts = np.concatenate([p for p, _, _ in parts], axis=1, dtype=np.float64)
        rgb = np.concatenate([c for _, c, _ in parts])
        lab = None
        if any(a is not None for _, _, a in parts):  # unlabelled parts among labelled ones: 0, none
            lab = np.concatenate([np.zeros(p.shape[1], np.int64) if a is None else a for p, _, a in parts])
        idx = _voxel_index(pts, self.voxel, checked=True)  # each part was, as it came
        keys, inv, pairs = _frame_voxels(idx, lab)
        n = len(keys)
        # bincount sums its weights as float64 in point order, whatever their dtype
        sums = np.empty((n, 7))
        for j in range(3):
            sums[:, j] = np.bincount(inv, pts[j], n)
            sums[:, 3 + j] = np.bincount(inv, rgb[:, j], n)
        sums[:, 6] = np.bincount(inv, minlength=n)
        used = self._voxels.n
        slots = self._voxels.slots(keys)
        self._sums = grown(self._sums, self._voxels.n, used)
        # distinct slots: one gather, add and scatter (np.take gathers rows at half the cost of
        # `self._sums[slots] += sums`, whose fancy index gathers them element by element)
        sums += np.take(self._sums, slots, axis=0)
        self._sums[slots] = sums
        if pairs is not None:
            voxel, label, count = pairs
            self._labels.add(slots[voxel], label, count, self._voxels.n)

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
        pts, at = points.points, points.pixels  # valid depth: finite points
        if stride > 1:  # the pixels wanted, marked on the image; then one selection of the points
            h, w = shape
            wanted = np.zeros((h, w), bool)
            wanted[::stride, ::stride] = True
            if fine < stride:
                cam = frame.camera.scaled(w, h)  # the intrinsics at the depth's size
                far = self.voxel * min(cam.fx, cam.fy) / stride  # beyond it, stride-th pixels lie over a voxel apart
                wanted[::fine, ::fine] |= np.asarray(frame.depth)[::fine, ::fine] > far
            keep = np.flatnonzero(wanted.ravel()[at])
            pts, at = np.take(pts, keep, axis=1), np.take(at, keep)
        self._add(
            pts,
            np.take(rgb.reshape(-1, rgb.shape[-1]), at, axis=0)[:, :3],
            None if lab is None else np.take(np.asarray(lab).ravel(), at),
        )
        self.frames_used += 1
        return True

    # --- reading ------------------------------------------------------------------------

    @property
    def points_fused(self) -> int:
        """How many points the voxels were made of."""
        self._flush()
        return int(self._sums[: self._voxels.n, 6].sum())

    def cloud(self) -> PointCloud:
        """The fused cloud so far, its voxels in key order (labels None when no labelled point
        was added)."""
        self._flush()
        n = self._voxels.n
        order = np.argsort(self._voxels.keys[:n])  # distinct keys: any sort gives one order
        sums = self._sums[order]
        cnt = sums[:, 6:]
        pts = (sums[:, :3] / cnt).astype(np.float32)
        rgb = np.clip(np.rint(sums[:, 3:6] / cnt), 0, 255).astype(np.uint8)
        labels = None if self._labels.empty else self._labels.majority(n)[order]
        return PointCloud(pts, rgb, labels)


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
