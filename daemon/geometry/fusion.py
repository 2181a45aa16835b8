"""Fused point clouds: back-projected frames accumulated on a voxel grid, written as PLY.

Memory grows with the number of occupied voxels, not with the number of frames: each
frame is reduced to its voxels at once, and the running buffers are merged whenever they
exceed the size of the merged cloud.
"""
from __future__ import annotations

import numpy as np

from core.errors import InputError
from core.frames import Frame, check_pose

from .backproject import DEFAULT_MAX_DEPTH, backproject
from .cloud import PointCloud, ply_bytes

_BITS = 20                      # bits per axis in a voxel key: ±2^19 voxels around the origin
_OFFSET = 1 << (_BITS - 1)
_MASK = (1 << _BITS) - 1


def _voxel_keys(points: np.ndarray, voxel: float) -> np.ndarray:
    idx = np.floor(points / voxel).astype(np.int64) + _OFFSET
    if (idx < 0).any() or (idx > _MASK).any():
        raise InputError("points", f"points beyond ±{_OFFSET * voxel:.0f} m cannot be fused at voxel {voxel} m")
    return (idx[:, 0] << (2 * _BITS)) | (idx[:, 1] << _BITS) | idx[:, 2]


def _group(keys: np.ndarray):
    uniq, inv = np.unique(keys, return_inverse=True)
    return uniq, inv.reshape(-1)


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
        self._parts: list[tuple] = []       # (keys, sum_xyz, sum_rgb, count)
        self._label_parts: list[tuple] = []  # (keys, label, count)
        self._merged_size = 0
        self._buffered = 0                   # rows added since the last merge
        self.frames_used = 0
        self.frames_skipped = 0

    # --- adding ---------------------------------------------------------------------------

    def add_points(self, points, colors, labels=None) -> None:
        """Add M×3 world points (metres) with M×3 uint8 colours and optional M int labels."""
        pts = np.asarray(points, dtype=np.float64).reshape(-1, 3)
        rgb = np.asarray(colors).reshape(-1, 3)
        if rgb.shape[0] != pts.shape[0]:
            raise InputError("colors", f"{rgb.shape[0]} colours for {pts.shape[0]} points")
        ok = np.isfinite(pts).all(axis=1)
        pts, rgb = pts[ok], rgb[ok].astype(np.float64)
        lab = None
        if labels is not None:
            lab = np.asarray(labels).reshape(-1)
            if lab.shape[0] != ok.shape[0]:
                raise InputError("labels", f"{lab.shape[0]} labels for {ok.shape[0]} points")
            lab = lab[ok].astype(np.int64)
        if not len(pts):
            return
        keys = _voxel_keys(pts, self.voxel)
        uniq, inv = _group(keys)
        cnt = np.bincount(inv, minlength=len(uniq))
        sxyz = np.stack([np.bincount(inv, pts[:, j], len(uniq)) for j in range(3)], axis=1)
        srgb = np.stack([np.bincount(inv, rgb[:, j], len(uniq)) for j in range(3)], axis=1)
        self._parts.append((uniq, sxyz, srgb, cnt))
        if lab is not None:
            keep = lab > 0
            if keep.any():
                self._label_parts.append(self._frame_labels(uniq, inv[keep], lab[keep]))
        self._buffered += len(uniq)
        if self._buffered > max(self._merged_size, 1 << 18):
            self._merge()

    def add_frame(self, frame: Frame, labels=None, stride: int = 1) -> bool:
        """Back-project one frame (needs depth, camera and a valid pose) and add it.

        labels  H×W label map to fuse instead of frame.labels (e.g. predictions)
        stride  use every stride-th pixel in each direction (faster, fewer points)
        Returns False (and counts the frame as skipped) when it has no depth or pose.
        """
        pose = check_pose(frame.pose)
        if frame.depth is None or frame.camera is None or pose is None:
            self.frames_skipped += 1
            return False
        pts, v = backproject(frame.depth, frame.camera, pose, max_depth=self.max_depth, stride=stride)
        rgb = np.asarray(frame.rgb)
        shape = np.shape(frame.depth)
        if rgb.shape[:2] != shape:
            raise InputError("depth", f"shape {shape} does not match the image {rgb.shape[:2]}")
        lab = frame.labels if labels is None else labels
        if lab is not None and np.asarray(lab).shape != shape:
            raise InputError("labels", f"shape {np.asarray(lab).shape} does not match the depth {shape}")
        s = (slice(None, None, stride), slice(None, None, stride))
        self.add_points(pts[v], rgb[s][v][:, :3], None if lab is None else np.asarray(lab)[s][v])
        self.frames_used += 1
        return True

    # --- reducing -------------------------------------------------------------------------

    @staticmethod
    def _frame_labels(uniq, inv, labels):
        """_count_labels of one frame's labelled points (their voxels as indices into uniq):
        one bincount over (voxel, label) pairs instead of a sort, when the pairs are few."""
        top = int(labels.max()) + 1
        if len(uniq) * top > 1 << 24:
            return VoxelFusion._count_labels(uniq[inv], labels, np.ones(len(labels), np.int64))
        counts = np.bincount(inv * top + labels, minlength=len(uniq) * top)
        pair = np.flatnonzero(counts)  # sorted by voxel key (uniq is sorted), then label
        return uniq[pair // top], pair % top, counts[pair]

    @staticmethod
    def _count_labels(keys, labels, counts):
        order = np.lexsort((labels, keys))
        k, l, c = keys[order], labels[order], counts[order]
        start = np.ones(len(k), bool)
        start[1:] = (k[1:] != k[:-1]) | (l[1:] != l[:-1])
        idx = np.flatnonzero(start)
        return k[idx], l[idx], np.add.reduceat(c, idx)

    def _merge(self) -> None:
        if len(self._parts) > 1:
            keys = np.concatenate([p[0] for p in self._parts])
            uniq, inv = _group(keys)
            n = len(uniq)
            cnt = np.bincount(inv, np.concatenate([p[3] for p in self._parts]), n).astype(np.int64)
            sx = np.concatenate([p[1] for p in self._parts])
            sc = np.concatenate([p[2] for p in self._parts])
            sxyz = np.stack([np.bincount(inv, sx[:, j], n) for j in range(3)], axis=1)
            srgb = np.stack([np.bincount(inv, sc[:, j], n) for j in range(3)], axis=1)
            self._parts = [(uniq, sxyz, srgb, cnt)]
        if len(self._label_parts) > 1:
            self._label_parts = [self._count_labels(*(np.concatenate([p[i] for p in self._label_parts]) for i in range(3)))]
        self._merged_size = len(self._parts[0][0]) if self._parts else 0
        self._buffered = 0  # rows in the parts since: merging when they outgrow the merged part

    def cloud(self) -> PointCloud:
        """The fused cloud so far (labels None when no labelled point was added)."""
        self._merge()
        if not self._parts:
            return PointCloud(np.zeros((0, 3), np.float32), np.zeros((0, 3), np.uint8),
                              np.zeros(0, np.int32) if self._label_parts else None)
        keys, sxyz, srgb, cnt = self._parts[0]
        pts = (sxyz / cnt[:, None]).astype(np.float32)
        rgb = np.clip(np.rint(srgb / cnt[:, None]), 0, 255).astype(np.uint8)
        labels = None
        if self._label_parts:
            lk, ll, lc = self._label_parts[0]
            # Per voxel: the most frequent label, ties to the smaller id.
            order = np.lexsort((ll, -lc, lk))
            lk, ll = lk[order], ll[order]
            first = np.ones(len(lk), bool)
            first[1:] = lk[1:] != lk[:-1]
            labels = np.zeros(len(keys), np.int32)
            pos = np.searchsorted(keys, lk[first])
            labels[pos] = ll[first]
        return PointCloud(pts, rgb, labels)


def fuse_frames(frames, voxel: float = 0.02, max_depth: float = DEFAULT_MAX_DEPTH, stride: int = 1) -> tuple[PointCloud, VoxelFusion]:
    """Fuse an iterable of Frames (ground-truth labels included when they carry them)."""
    fusion = VoxelFusion(voxel, max_depth)
    for f in frames:
        fusion.add_frame(f, stride=stride)
    return fusion.cloud(), fusion


def fit_to_size(cloud: PointCloud, voxel: float, limit: int) -> tuple[bytes, float]:
    """PLY bytes of the cloud, re-voxelised at doubling voxel sizes until under `limit` bytes,
    and the voxel size that took (a reply message has a size limit; a coarser cloud fits)."""
    data = ply_bytes(cloud)
    while len(data) > limit and len(cloud) > 1:
        voxel *= 2
        coarser = VoxelFusion(voxel)
        coarser.add_points(cloud.points, cloud.colors, cloud.labels)
        cloud = coarser.cloud()
        data = ply_bytes(cloud)
    return data, voxel
