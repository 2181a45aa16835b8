"""A frame back-projected once: the points the 3D statistics and the fusion share."""

from __future__ import annotations

import numpy as np

from regiond.core.frames import Frame
from regiond.core.partition import Partition
from regiond.geometry import VoxelFusion, backproject, frame_points, region_geometry, valid_depth
from regiond.geometry.stats import SAMPLE_STRIDE


def _frame(seven):
    from regiond import scenes

    return next(iter(scenes.open_source(str(seven))))


def test_points_are_backprojects_valid_pixels(sevenscenes_dir):
    f = _frame(sevenscenes_dir)
    for pose in (None, f.pose):
        want, valid = backproject(f.depth, f.camera, pose, max_depth=3.0)
        got = frame_points(f.depth, f.camera, pose, max_depth=3.0)
        assert np.array_equal(got.pixels, np.flatnonzero(valid)) and got.world == (pose is not None)
        # camera coordinates exactly; the world move in float32 within a micrometre of float64's
        np.testing.assert_allclose(got.points.T, want.reshape(-1, 3)[valid.ravel()], rtol=0, atol=1e-6)


def test_statistics_points_in_region_order_fuse_as_the_frame_does(sevenscenes_dir):
    f = _frame(sevenscenes_dir)
    h, w = f.depth.shape
    labels = (np.arange(h)[:, None] // 60 * 8 + np.arange(w)[None, :] // 80).astype(np.int32)  # 64 blocks
    frame = Frame(rgb=f.rgb, depth=f.depth, camera=f.camera, pose=f.pose)
    every = region_geometry(Partition.from_labels(labels), f.depth, f.camera, f.pose, stride=1).points
    assert every.stride == 1 and len(every) == int(valid_depth(f.depth).sum())
    geo = region_geometry(Partition.from_labels(labels), f.depth, f.camera, f.pose)  # sampled: every 2nd pixel
    pts = geo.points
    assert pts.world and pts.stride == SAMPLE_STRIDE == 2
    assert np.all(np.diff(labels.ravel()[pts.pixels]) >= 0)  # region after region
    grid = np.zeros((h, w), bool)
    grid[::2, ::2] = True
    assert np.array_equal(np.sort(pts.pixels), np.flatnonzero(grid & valid_depth(f.depth)))  # no small region here
    for stride in (2, 3, 4):  # 2, 4: the shared points read as the fusion would its own; 3: its own
        shared, own = VoxelFusion(0.02), VoxelFusion(0.02)
        shared.add_frame(frame, stride=stride, points=pts)
        own.add_frame(frame, stride=stride)
        a, b = shared.cloud(), own.cloud()
        assert len(a) == len(b) and np.array_equal(a.colors, b.colors)
        np.testing.assert_allclose(a.points, b.points, rtol=0, atol=1e-6)  # only the summation order differs
    shared, own = VoxelFusion(0.02), VoxelFusion(0.02)
    shared.add_frame(frame, stride=1, points=pts)  # every pixel wanted: the fusion back-projects itself
    own.add_frame(frame, stride=1)
    assert len(shared.cloud()) == len(own.cloud())


def test_fusion_backprojects_itself_when_the_points_do_not_fit(sevenscenes_dir):
    f = _frame(sevenscenes_dir)
    camera_space = frame_points(f.depth, f.camera, None)
    nearer = frame_points(f.depth, f.camera, f.pose, max_depth=1.0)
    clouds = []
    for points in (None, camera_space, nearer):
        fusion = VoxelFusion(0.05)
        fusion.add_frame(f, stride=2, points=points)
        clouds.append(fusion.cloud())
    assert all(np.array_equal(c.points, clouds[0].points) for c in clouds)
