"""Per-region 3D statistics from a depth image: centroid, robust extent, depth coverage."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from regiond.core.errors import InputError
from regiond.core.frames import Camera, check_pose
from regiond.core.partition import Partition
from regiond.geometry.backproject import DEFAULT_MAX_DEPTH, valid_depth
from regiond.geometry.points import FramePoints, frame_points

EXTENT_PERCENTILES = (10.0, 90.0)  # robust extent: the span between these percentiles, per axis


@dataclass
class RegionGeometry:
    """3D statistics of N regions of one frame.

    centroids       N×3 float32 world-space mean of the region's valid points, metres
                    (NaN when the frame has no valid pose or the region no valid depth)
    extents         N×3 float32 per-axis span between the 10th and 90th percentile of those
                    points (NaN likewise)
    valid_fraction  N float32 fraction of the region's pixels with valid depth (pose or not;
                    0 for an empty mask)
    point_count     N int64 number of valid depth pixels in the region
    points          the frame's back-projected valid pixels they were computed from (what the
                    fusion of the same frame reads instead of back-projecting it again)
    """

    centroids: np.ndarray
    extents: np.ndarray
    valid_fraction: np.ndarray
    point_count: np.ndarray
    points: FramePoints | None = None

    def __len__(self) -> int:
        return int(self.point_count.shape[0])

    @property
    def has_position(self) -> np.ndarray:
        """N bool: the region has a world-space centroid."""
        return np.isfinite(self.centroids).all(axis=1)


def region_geometry(
    masks: np.ndarray | Partition,
    depth: np.ndarray,
    camera: Camera,
    pose=None,
    max_depth: float = DEFAULT_MAX_DEPTH,
    percentiles: tuple[float, float] = EXTENT_PERCENTILES,
) -> RegionGeometry:
    """3D statistics of each mask.

    masks       N×H×W bool region masks, or a Partition (regions that never overlap, as a
                label map: one pass over it instead of one per region)
    depth       H×W float32 depth in metres (0/NaN = none)
    camera      intrinsics (rescaled to H×W when given for another size)
    pose        4×4 camera-to-world, or None / a -inf pose when tracking was lost: the
                regions keep valid_fraction and point_count, and their 3D fields are NaN
    max_depth   readings beyond this many metres are invalid
    percentiles the (low, high) percentiles whose span is the robust extent
    """
    if not isinstance(masks, Partition):
        masks = np.asarray(masks)
        if masks.ndim != 3:
            raise InputError("masks", f"expected N×H×W, got shape {masks.shape}")
        masks = masks.astype(bool, copy=False)
    shape = masks.shape if isinstance(masks, Partition) else masks.shape[1:]
    depth = np.asarray(depth)
    if depth.ndim != 2 or depth.shape != shape:
        raise InputError("depth", f"shape {depth.shape} does not match the masks {shape}")
    pose = check_pose(pose)
    if isinstance(masks, Partition):
        areas, pts, counts = _partition_points(masks, depth, camera, pose, max_depth)
        coords = pts.points  # already region after region
    else:
        pts = frame_points(depth, camera, pose, max_depth)
        areas, at, counts = _mask_points(masks, pts.pixels)
        coords = np.take(pts.points, at, axis=1)
    n = counts.size
    centroids = np.full((n, 3), np.nan, np.float32)
    extents = np.full((n, 3), np.nan, np.float32)
    with np.errstate(invalid="ignore", divide="ignore"):
        frac = np.where(areas > 0, counts / np.maximum(areas, 1), 0.0).astype(np.float32)
    live = np.flatnonzero(counts)
    if pose is not None and live.size:
        # every region's valid points one after another, coordinate-major (3×P): each region's
        # x, y and z lie contiguous, for the sums and the sorts
        n_live = counts[live]
        starts = np.cumsum(n_live) - n_live
        centroids[live] = (np.add.reduceat(coords.astype(np.float64), starts, axis=1) / n_live).T
        q = _linear_percentiles(coords, starts, n_live, percentiles)
        extents[live] = q[:, 1] - q[:, 0]
    return RegionGeometry(centroids, extents, frac, counts, pts)


def _linear_percentiles(
    values: np.ndarray, starts: np.ndarray, counts: np.ndarray, percentiles: tuple[float, ...]
) -> np.ndarray:
    """np.percentile(values[:, a:a+n].astype(float64), percentiles, axis=1) (method "linear")
    of each segment of finite values, as segments × percentiles × rows, bit for bit: numpy's own
    index, weight and interpolation arithmetic in float64, on the two values around each rank
    read from one np.sort of the segment's rows in their own dtype (numpy's vectorised sort:
    on float32 points a third of the time of partitioning them, and np.percentile's set-up
    for each segment took most of the time of the 3D statistics)."""
    q = np.true_divide(np.asarray(percentiles, np.float64), 100)
    counts = np.asarray(counts, np.int64)
    virtual = (counts - 1).astype(np.float64)[:, None] * q
    below = np.floor(virtual)
    gamma = (virtual - below)[:, :, None]
    ranks = below.astype(np.intp)
    above = np.minimum(ranks + 1, counts[:, None] - 1)  # the largest value: itself
    lower = np.empty((len(counts), q.size, values.shape[0]))
    upper = np.empty_like(lower)
    for k, (a, n) in enumerate(zip(np.asarray(starts).tolist(), counts.tolist())):
        s = np.sort(values[:, a : a + n], axis=1)
        lower[k] = s[:, ranks[k]].T
        upper[k] = s[:, above[k]].T
    diff = upper - lower
    out = lower + diff * gamma
    np.subtract(upper, diff * (1 - gamma), out=out, where=gamma >= 0.5)
    return out


def _mask_points(masks: np.ndarray, pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per mask its area; for every mask one after another, where its valid-depth pixels are
    among `pixels` (the frame's valid pixels, in image order); and how many each has."""
    flat = masks.reshape(masks.shape[0], masks.shape[1] * masks.shape[2])
    at = [np.flatnonzero(m[pixels]) for m in flat]
    counts = np.array([a.size for a in at], np.int64)
    return flat.sum(axis=1), np.concatenate(at) if at else np.zeros(0, np.intp), counts


def _partition_points(
    partition: Partition, depth: np.ndarray, camera: Camera, pose, max_depth: float
) -> tuple[np.ndarray, FramePoints, np.ndarray]:
    """The partition's areas, its valid-depth points region after region (a stable radix sort
    of the pixels by region, so each region's stay in image order), and how many each has."""
    labels = partition.labels.ravel()
    inside = (labels >= 0) & (labels < partition.n)
    lab = labels if inside.all() else np.where(inside, labels, partition.n)  # outside: last, then cut
    order = np.argsort(lab.astype(np.int16) if partition.n < 2**15 else lab, kind="stable")
    areas = partition.areas()
    pts = frame_points(depth, camera, pose, max_depth, pixels=order[: int(areas.sum())])
    # each region's valid pixels: its area less its invalid ones (few; a bincount of them all is slower)
    invalid = np.flatnonzero(~valid_depth(depth, max_depth).ravel() & inside)
    counts = areas - np.bincount(labels[invalid], minlength=partition.n)
    return areas, pts, counts.astype(np.int64)
