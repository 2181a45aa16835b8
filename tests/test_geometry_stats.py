"""Per-region 3D statistics."""

from __future__ import annotations

import numpy as np
import pytest

from regiond.core.errors import InputError
from regiond.core.frames import Camera
from regiond.geometry import backproject, region_geometry

CAM = Camera(100.0, 100.0, 9.5, 7.5, 20, 16)


def _plane(z=2.0):
    return np.full((16, 20), z, np.float32)


def test_centroid_extent_fraction_and_count():
    depth = _plane()
    depth[0:4, 0:10] = 0  # no depth in part of region 0
    masks = np.zeros((3, 16, 20), bool)
    masks[0, 0:8, 0:10] = True  # 80 px, 40 valid
    masks[1, 8:16, 10:20] = True  # 80 px, all valid
    # region 2 empty
    pose = np.eye(4)
    pose[:3, 3] = [1.0, -2.0, 0.5]
    g = region_geometry(masks, depth, CAM, pose, stride=1)  # every pixel
    pts, valid = backproject(depth, CAM, pose)
    sel = masks[1] & valid
    np.testing.assert_allclose(g.centroids[1], pts[sel].mean(axis=0), atol=1e-5)
    np.testing.assert_allclose(
        g.extents[1], np.percentile(pts[sel], 90, axis=0) - np.percentile(pts[sel], 10, axis=0), atol=1e-5
    )
    assert g.extents[1][2] == pytest.approx(0.0, abs=1e-6)  # a fronto-parallel plane has no depth extent
    assert g.centroids[1][2] == pytest.approx(2.5)
    np.testing.assert_allclose(g.valid_fraction, [0.5, 1.0, 0.0])
    np.testing.assert_array_equal(g.point_count, [40, 80, 0])
    assert g.point_count.dtype == np.int64 and g.centroids.dtype == np.float32 and g.valid_fraction.dtype == np.float32
    assert np.isnan(g.centroids[2]).all() and np.isnan(g.extents[2]).all()
    np.testing.assert_array_equal(g.has_position, [True, True, False])


def test_extent_is_robust_to_outliers():
    depth = _plane()
    depth[0, 0] = 9.0  # one flying pixel
    masks = np.ones((1, 16, 20), bool)
    g = region_geometry(masks, depth, CAM, np.eye(4))
    assert g.extents[0][2] < 1e-5  # 10-90 percentile ignores it
    assert g.centroids[0][2] > 2.0  # the mean does not


@pytest.mark.parametrize("pose", [None, np.full((4, 4), -np.inf)])
def test_missing_pose_keeps_counts_and_marks_3d_missing(pose):
    masks = np.ones((2, 16, 20), bool)
    g = region_geometry(masks, _plane(), CAM, pose)
    assert np.isnan(g.centroids).all() and np.isnan(g.extents).all()
    np.testing.assert_array_equal(g.point_count, [320, 320])
    np.testing.assert_allclose(g.valid_fraction, 1.0)


def test_max_depth_excludes_far_points():
    depth = _plane(12.0)
    g = region_geometry(np.ones((1, 16, 20), bool), depth, CAM, np.eye(4), max_depth=10.0)
    assert g.point_count[0] == 0 and np.isnan(g.centroids[0]).all()
    g = region_geometry(np.ones((1, 16, 20), bool), depth, CAM, np.eye(4), max_depth=20.0)
    assert g.point_count[0] == 320


def test_no_regions():
    g = region_geometry(np.zeros((0, 16, 20), bool), _plane(), CAM, np.eye(4))
    assert len(g) == 0 and g.centroids.shape == (0, 3)


def test_real_frame_regions_agree_across_views(sevenscenes_dir):
    """The same world box seen from two frames: its pixels' centroids nearly coincide."""
    from regiond import scenes
    from regiond.geometry import project

    a, b = list(scenes.open_source(sevenscenes_dir, max_frames=2))
    pts, valid = backproject(a.depth, a.camera, a.pose)
    mask_a = np.zeros(valid.shape, bool)
    mask_a[200:280, 280:360] = True
    mask_a &= valid
    ga = region_geometry(mask_a[None], a.depth, a.camera, a.pose)
    uv, _ = project(pts[mask_a], b.camera, b.pose)
    u, v = np.rint(uv[:, 0]).astype(int), np.rint(uv[:, 1]).astype(int)
    mask_b = np.zeros(valid.shape, bool)
    mask_b[v, u] = True
    gb = region_geometry(mask_b[None], b.depth, b.camera, b.pose)
    assert np.linalg.norm(ga.centroids[0] - gb.centroids[0]) < 0.03


@pytest.mark.parametrize(
    "masks, depth, field",
    [
        (np.ones((16, 20), bool), _plane(), "masks"),
        (np.ones((1, 8, 20), bool), _plane(), "depth"),
    ],
)
def test_bad_shapes(masks, depth, field):
    with pytest.raises(InputError) as e:
        region_geometry(masks, depth, CAM, np.eye(4))
    assert e.value.field == field


def test_bad_pose():
    with pytest.raises(InputError, match="pose"):
        region_geometry(np.ones((1, 16, 20), bool), _plane(), CAM, np.full((4, 4), np.nan))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])  # float32: the points' own
def test_segment_percentiles_are_numpys_bit_for_bit(dtype):
    from regiond.geometry.stats import _linear_percentiles

    rng = np.random.default_rng(7)
    counts = np.array([1, 2, 3, 10, 11, 997, 5000])
    starts = np.cumsum(counts) - counts
    values = (rng.standard_normal((3, counts.sum())) * 3).astype(dtype)
    values[:, starts[4] : starts[4] + 11] = 1.5  # ties
    wide = values.astype(np.float64)
    for pct in [(10, 90), (0, 100), (50,), (12.5, 37.5, 99.9)]:
        got = _linear_percentiles(values, starts, counts, pct)
        want = np.stack([np.percentile(wide[:, a : a + n].T, pct, axis=0) for a, n in zip(starts, counts)])
        assert got.dtype == np.float64 and np.array_equal(got, want), pct
    assert _linear_percentiles(values, starts[:0], counts[:0], (10, 90)).shape == (0, 2, 3)


def test_partition_and_masks_give_the_same_statistics():
    from regiond.core.partition import Partition

    rng = np.random.default_rng(8)
    h, w = 30, 40
    labels = rng.integers(0, 6, (h, w))
    labels[:5] = 3
    labels[10, :7] = -1  # in no region
    depth = rng.uniform(0.5, 4.0, (h, w)).astype(np.float32)
    depth[0, :10] = 0  # no reading
    cam = Camera(fx=40.0, fy=40.0, cx=20.0, cy=15.0, width=w, height=h)
    pose = np.eye(4)
    pose[:3, 3] = (1.0, -2.0, 0.5)
    part = Partition(labels, 7)  # region 6 is empty
    a = region_geometry(part, depth, cam, pose)
    b = region_geometry(part.masks(), depth, cam, pose)
    for f in ("centroids", "extents", "valid_fraction", "point_count"):
        assert np.array_equal(getattr(a, f), getattr(b, f), equal_nan=True), f
    assert np.isnan(a.centroids[6]).all() and a.point_count[6] == 0


def test_sampled_statistics_read_every_other_pixel_and_small_regions_whole(sevenscenes_dir):
    """The default statistics are those of the valid pixels on every 2nd row and column (a
    region with fewer than MIN_SAMPLES there: all of its pixels); counts and fractions count
    every pixel; on a real frame the centroids stay within millimetres of every pixel's
    (blocks across depth edges: within 2 cm)."""
    from regiond import scenes
    from regiond.core.partition import Partition
    from regiond.geometry.stats import MIN_SAMPLES

    f = next(iter(scenes.open_source(str(sevenscenes_dir))))
    h, w = f.depth.shape
    labels = (np.arange(h)[:, None] // 60 * 8 + np.arange(w)[None, :] // 80).astype(np.int32)  # 64 blocks
    labels[100:103, 100:104] = 64  # 12 pixels: 4 on the grid, fewer than MIN_SAMPLES
    part = Partition.from_labels(labels)
    every = region_geometry(part, f.depth, f.camera, f.pose, stride=1)
    sampled = region_geometry(part, f.depth, f.camera, f.pose)
    assert np.array_equal(every.point_count, sampled.point_count)
    assert np.array_equal(every.valid_fraction, sampled.valid_fraction)
    pts, valid = backproject(f.depth, f.camera, f.pose)
    grid = np.zeros((h, w), bool)
    grid[::2, ::2] = True
    for r in (0, 27, 64):
        on = (labels == r) & valid
        if r != 64:
            assert on[grid].sum() >= MIN_SAMPLES
            on &= grid
        sel = pts[on].astype(np.float64)
        np.testing.assert_allclose(sampled.centroids[r], sel.mean(axis=0), atol=1e-5)
        want = np.percentile(sel, 90, axis=0) - np.percentile(sel, 10, axis=0)
        np.testing.assert_allclose(sampled.extents[r], want, atol=1e-5)
    assert np.array_equal(sampled.centroids[64], every.centroids[64])  # the small region whole
    moved = np.linalg.norm(sampled.centroids - every.centroids, axis=1)
    assert np.nanmedian(moved) < 0.005 and np.nanmax(moved) < 0.02  # metres: below the sensor's noise
    b = region_geometry(part.masks(), f.depth, f.camera, f.pose)  # the mask path samples alike
    np.testing.assert_allclose(b.centroids, sampled.centroids, atol=1e-6)
    np.testing.assert_allclose(b.extents, sampled.extents, atol=1e-6)


def test_bad_sample_stride():
    with pytest.raises(InputError, match="stride"):
        region_geometry(np.ones((1, 16, 20), bool), _plane(), CAM, np.eye(4), stride=0)
