"""Fused point clouds: back-projected frames accumulated on a voxel grid, written as PLY.

Memory grows with the number of occupied voxels, not with the number of frames: each
frame is reduced to its voxels at once, and the running buffers are merged whenever they
exceed the size of the merged cloud.
"""

from __future__ import annotations

import numpy as np

from regiond.core.errors import InputError
from regiond.core.frames import Frame, check_pose
from regiond.core.runs import run_starts
from regiond.geometry.backproject import DEFAULT_MAX_DEPTH
from regiond.geometry.cloud import PointCloud, ply_bytes
from regiond.geometry.points import FramePoints, frame_points, stride_grid

_BITS = 20  # bits per axis in a voxel key: ±2^19 voxels around the origin
_OFFSET = 1 << (_BITS - 1)
_MASK = (1 << _BITS) - 1
# Merging: the parts of the last frames merge into one when they pass _RECENT_ROWS rows
# (consecutive frames see mostly the same voxels: a few times fewer rows), and everything into
# one part when the parts after the first outgrow it (or _FULL_MERGE_ROWS): memory stays a
# small multiple of the cloud's, and the whole cloud is re-sorted rarely.
_RECENT_ROWS = 1 << 17
_FULL_MERGE_ROWS = 1 << 18


def _voxel_index(points: np.ndarray, voxel: float) -> np.ndarray:
    """3×M int64 voxel coordinates (offset to be non-negative) of 3×M float64 points."""
    idx = np.floor(points / voxel).astype(np.int64)
    idx += _OFFSET
    if idx.size and (idx.min() < 0 or idx.max() > _MASK):
        raise InputError("points", f"points beyond ±{_OFFSET * voxel:.0f} m cannot be fused at voxel {voxel} m")
    return idx


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


def _group_voxels(idx: np.ndarray, runs: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """np.unique(keys, return_inverse=True) of 3×M voxel coordinates' keys (runs: as for
    _unique_inverse)."""
    first, inv = _unique_inverse(*_box_rank(idx), runs=runs)
    return _keys(idx[:, first]), inv


def _group_labelled(idx: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, tuple | None]:
    """_group_voxels of 3×M voxel coordinates and _count_pairs of their M labels' non-zero
    (voxel, label) pairs, from one sort of the pairs (the voxels' order is the pairs')."""
    rank, volume = _box_rank(idx)
    top = int(labels.max()) + 1
    if volume * top >= 1 << 63:  # the pairs' values would overflow: voxels first, then pairs
        first, inv = _unique_inverse(rank, volume)
        keep = labels > 0
        return _keys(idx[:, first]), inv, _count_pairs(inv[keep], labels[keep], len(first)) if keep.any() else None
    first, pair_inv = _unique_inverse(rank * top + labels, volume * top)
    voxel_of_pair = rank[first]
    new = run_starts(voxel_of_pair)
    voxel_of_pair = np.cumsum(new) - 1
    label_of_pair = labels[first]
    keep = label_of_pair > 0
    pairs = None
    if keep.any():
        count = np.bincount(pair_inv, minlength=len(first))
        pairs = voxel_of_pair[keep], label_of_pair[keep], count[keep]
    return _keys(idx[:, first[new]]), voxel_of_pair[pair_inv], pairs


def _unique_inverse(values: np.ndarray, span: int, runs: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(where each distinct value first occurs, in increasing value order; each value's index
    among them) of M int64 values in [0, span): what np.unique's return_index and
    return_inverse give. A value and its position pack into one int64 when span allows, so
    that one plain sort (numpy's vectorised sort) does np.unique's argsort; runs: the values
    are a few increasing runs end to end (merged parts), which a stable sort (timsort) merges
    in fewer steps."""
    n = values.size
    shift = max(n - 1, 1).bit_length()
    if n == 0 or span > 1 << (63 - shift):
        _, first, inv = np.unique(values, return_index=True, return_inverse=True)
        return first, inv.reshape(-1)
    packed = values << shift
    packed |= np.arange(n, dtype=np.int64)
    packed.sort(kind="stable" if runs else None)
    order = packed & ((1 << shift) - 1)
    packed >>= shift
    new = run_starts(packed)
    inv = np.empty(n, np.intp)
    inv[order] = np.cumsum(new) - 1
    return order[new], inv


def _count_pairs(voxels: np.ndarray, labels: np.ndarray, n: int, weights=None, runs: bool = False) -> tuple:
    """(voxel, label, count) of each distinct (voxel, label) pair of voxel indices < n,
    sorted by voxel then label; counts the pairs, or sums their int weights (runs: as for
    _unique_inverse)."""
    top = int(labels.max()) + 1
    pair = voxels * top + labels
    first, inv = _unique_inverse(pair, n * top, runs)
    pair = pair[first]
    counts = np.bincount(inv, weights, len(first)).astype(np.int64)
    return pair // top, pair % top, counts


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
        # (keys, sum_xyz, sum_rgb, count, labels): sorted unique voxel keys and their sums
        # (3×n each, coordinate-major: the merge reads each coordinate contiguously); labels
        # None or (voxel as index into keys, label, count) sorted by voxel then label
        self._parts: list[tuple] = []
        self._merged_size = 0  # rows of the first part after a full merge
        self._buffered = 0  # rows in the parts after it
        self._recent = 0  # where the parts of the frames since the last merge begin
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
        """Add 3×M finite points with M×3 colours and M labels (or None)."""
        if not pts.shape[1]:
            return
        pts = np.ascontiguousarray(pts, dtype=np.float64)
        idx = _voxel_index(pts, self.voxel)
        labelled = None  # (voxel, label, count) of the non-zero labels, as _count_pairs
        if lab is None:
            uniq, inv = _group_voxels(idx)
        else:
            uniq, inv, labelled = _group_labelled(idx, np.maximum(lab.astype(np.int64), 0))  # < 1: none
        n = len(uniq)
        cnt = np.bincount(inv, minlength=n)
        # bincount sums its weights as float64 in point order, whatever their dtype
        sxyz = np.stack([np.bincount(inv, pts[j], n) for j in range(3)])
        srgb = np.stack([np.bincount(inv, rgb[:, j], n) for j in range(3)])
        self._parts.append((uniq, sxyz, srgb, cnt, labelled))
        self._buffered += n
        if self._buffered > max(self._merged_size, _FULL_MERGE_ROWS):
            self._merge()  # everything into one part
        elif sum(len(p[0]) for p in self._parts[self._recent :]) > _RECENT_ROWS:
            self._merge(self._recent)  # the last few frames, which see mostly the same voxels, into one part

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
        pts, at = points.strided(fine)  # valid depth: finite points
        if fine < stride:
            h, w = shape
            cam = frame.camera.scaled(w, h)  # the intrinsics at the depth's size
            far = self.voxel * min(cam.fx, cam.fy) / stride  # beyond it, stride-th pixels lie over a voxel apart
            keep = stride_grid(h, w, stride)[0][at]
            keep |= np.take(np.asarray(frame.depth).ravel(), at) > far
            pts, at = pts[:, keep], at[keep]
        self._add(
            pts,
            np.take(rgb.reshape(-1, rgb.shape[-1]), at, axis=0)[:, :3],
            None if lab is None else np.take(np.asarray(lab).ravel(), at),
        )
        self.frames_used += 1
        return True

    # --- reducing -------------------------------------------------------------------------

    def _merge(self, start: int = 0) -> None:
        """Merge the parts from `start` on into one (0: all of them)."""
        parts = self._parts[start:]
        if len(parts) > 1:
            keys = np.concatenate([p[0] for p in parts])
            uniq, inv = _group_voxels(_unkey(keys), runs=True)  # each part's keys are sorted
            n = len(uniq)
            cnt = np.bincount(inv, np.concatenate([p[3] for p in parts]), n).astype(np.int64)
            sx = np.concatenate([p[1] for p in parts], axis=1)
            sc = np.concatenate([p[2] for p in parts], axis=1)
            sxyz = np.stack([np.bincount(inv, sx[j], n) for j in range(3)])
            srgb = np.stack([np.bincount(inv, sc[j], n) for j in range(3)])
            offsets = np.cumsum([0] + [len(p[0]) for p in parts]).tolist()
            labelled = [(inv[o + p[4][0]], p[4][1], p[4][2]) for o, p in zip(offsets, parts) if p[4] is not None]
            if labelled:
                labelled = _count_pairs(
                    *(np.concatenate([p[i] for p in labelled]) for i in range(2)),
                    n,
                    np.concatenate([p[2] for p in labelled]),
                    runs=True,
                )
            self._parts[start:] = [(uniq, sxyz, srgb, cnt, labelled or None)]
        if start == 0:
            self._merged_size = len(self._parts[0][0]) if self._parts else 0
        self._buffered = sum(len(p[0]) for p in self._parts[1:])
        self._recent = len(self._parts)

    def cloud(self) -> PointCloud:
        """The fused cloud so far (labels None when no labelled point was added)."""
        self._merge()
        if not self._parts:
            return PointCloud(np.zeros((0, 3), np.float32), np.zeros((0, 3), np.uint8), None)
        keys, sxyz, srgb, cnt, labelled = self._parts[0]
        pts = (sxyz / cnt).T.astype(np.float32)
        rgb = np.clip(np.rint(srgb / cnt), 0, 255).T.astype(np.uint8)
        labels = None
        if labelled is not None:
            # Per voxel: the most frequent label, ties to the smaller id (the pairs are sorted
            # by voxel then label: the first of a voxel's pairs with its largest count).
            vox, lab, count = labelled
            start = np.flatnonzero(np.r_[True, vox[1:] != vox[:-1]])
            best = np.flatnonzero(
                count == np.repeat(np.maximum.reduceat(count, start), np.diff(np.r_[start, len(vox)]))
            )
            best = best[np.r_[True, vox[best[1:]] != vox[best[:-1]]]]
            labels = np.zeros(len(keys), np.int32)
            labels[vox[best]] = lab[best]
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
