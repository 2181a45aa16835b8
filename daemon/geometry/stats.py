"""Per-region 3D statistics from a depth image: centroid, robust extent, depth coverage."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from regiond.core.errors import InputError
from regiond.core.frames import Camera, check_pose
from regiond.core.partition import Partition
from regiond.geometry.backproject import DEFAULT_MAX_DEPTH, checked_depth, valid_depth
from regiond.geometry.points import FramePoints, flat_rays, frame_points, stride_grid, world_pose

EXTENT_PERCENTILES = (10.0, 90.0)  # robust extent: the span between these percentiles, per axis
#: centroids and extents from the pixels on every 2nd row and column: a quarter of the points
#: to back-project and sort (and the scene stream's fusion reads the same points), and on
#: lite's regions of a generated room they move by 1.3 mm (median; 99th percentile 9 mm),
#: below a depth camera's noise at 2 m (every 4th: 3.6 mm and 20 mm)
SAMPLE_STRIDE = 2
#: a region with fewer valid pixels than this on the sampling grid uses all of its pixels
MIN_SAMPLES = 16
_NO_POSE = np.zeros((0, 0), np.float32)  # compiled.partition_points: camera coordinates


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
    stride: int = SAMPLE_STRIDE,
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
    stride      centroids and extents from the valid pixels on every stride-th row and column
                (all of a region's pixels when fewer than MIN_SAMPLES of them lie there; 1:
                every pixel); valid_fraction and point_count always count every pixel
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
    if stride < 1:
        raise InputError("stride", f"must be at least 1, got {stride}")
    if isinstance(masks, Partition):
        areas, counts, pts, sampled = _partition_points(masks, depth, camera, pose, max_depth, stride)
        coords = pts.points  # already region after region
    else:
        areas, counts, pts, at, sampled = _mask_points(masks, depth, camera, pose, max_depth, stride)
        coords = np.take(pts.points, at, axis=1)
    n = counts.size
    centroids = np.full((n, 3), np.nan, np.float32)
    extents = np.full((n, 3), np.nan, np.float32)
    with np.errstate(invalid="ignore", divide="ignore"):
        frac = np.where(areas > 0, counts / np.maximum(areas, 1), 0.0).astype(np.float32)
    live = np.flatnonzero(sampled)
    if pose is not None and live.size:
        # every region's sampled points one after another, coordinate-major (3×P): each region's
        # x, y and z lie contiguous, for the sums and the sorts
        n_live = sampled[live]
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


def _undersampled(near: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Regions with fewer than MIN_SAMPLES valid pixels on the grid (`near`) and more off it:
    the statistics read all of their pixels."""
    return (near < MIN_SAMPLES) & (counts > near)


def _mask_points(
    masks: np.ndarray, depth: np.ndarray, camera: Camera, pose, max_depth: float, stride: int
) -> tuple[np.ndarray, np.ndarray, FramePoints, np.ndarray, np.ndarray]:
    """Per mask its area and valid pixels; the sampled pixels' points (image order); for every
    mask one after another, where its sampled points are among them; and how many each has."""
    flat = masks.reshape(masks.shape[0], masks.shape[1] * masks.shape[2])
    has_depth = flat & valid_depth(depth, max_depth).ravel()
    counts = has_depth.sum(axis=1)
    pixels = None
    if stride > 1:
        on = stride_grid(*depth.shape, stride)[0]
        near = has_depth[:, on].sum(axis=1)
        few = _undersampled(near, counts)
        pixels = np.flatnonzero(on | flat[few].any(axis=0) if few.any() else on)
    pts = frame_points(depth, camera, pose, max_depth, pixels=pixels, stride=stride)
    at = [np.flatnonzero(m[pts.pixels]) for m in flat]
    sampled = np.array([a.size for a in at], np.int64)
    return flat.sum(axis=1), counts, pts, np.concatenate(at) if at else np.zeros(0, np.intp), sampled


def _partition_points(
    partition: Partition, depth: np.ndarray, camera: Camera, pose, max_depth: float, stride: int
) -> tuple[np.ndarray, np.ndarray, FramePoints, np.ndarray]:
    """The partition's areas and valid pixels; its sampled valid points region after region,
    each region's in image order; and how many each has: one compiled pass over the label map
    and one over the pixels read (regiond.geometry.compiled.partition_points; 2.6 ms of numpy
    a 640×480 frame before). Depth is read in float32, as frame_points reads it."""
    from regiond.geometry import compiled  # numba: loaded with the first scene frame

    d, camera = checked_depth(depth, camera)
    h, w = d.shape
    xs, ys = flat_rays(camera)
    m = _NO_POSE if pose is None else world_pose(pose).astype(np.float32)
    labels = np.ascontiguousarray(partition.labels).reshape(-1)
    flat = np.ascontiguousarray(d).reshape(-1)
    top = d.dtype.type(min(max_depth, np.finfo(d.dtype).max))  # finite: infinities fail d <= top
    counts, sampled, pixels, pts = compiled.partition_points(
        labels, partition.n, flat, top, w, stride, MIN_SAMPLES, xs, ys, m
    )
    points = FramePoints(pts, pixels, (h, w), pose is not None, float(max_depth), stride)
    return partition.areas(), counts, points, sampled
