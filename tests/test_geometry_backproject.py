"""Back-projection against Open3D and against the real 7-Scenes poses."""

from __future__ import annotations

import numpy as np
import pytest

from regiond import scenes
from regiond.core.errors import InputError
from regiond.core.frames import Camera
from regiond.geometry import backproject, project, valid_depth


@pytest.fixture(scope="module")
def seven(sevenscenes_dir):
    return list(scenes.open_source(sevenscenes_dir, max_frames=6))


def test_matches_open3d_create_from_rgbd_image(seven):
    import open3d as o3d

    for f in seven[:3]:
        cam = f.camera
        depth_mm = np.rint(f.depth * 1000).astype(np.uint16)  # the file's own values
        rgbd = o3d.geometry.RGBDImage.create_from_color_and_depth(
            o3d.geometry.Image(f.rgb),
            o3d.geometry.Image(depth_mm),
            depth_scale=1000.0,
            depth_trunc=10.0,
            convert_rgb_to_intensity=False,
        )
        intr = o3d.camera.PinholeCameraIntrinsic(cam.width, cam.height, cam.fx, cam.fy, cam.cx, cam.cy)
        pcd = o3d.geometry.PointCloud.create_from_rgbd_image(rgbd, intr, project_valid_depth_only=True)
        pcd.transform(f.pose)
        ref = np.asarray(pcd.points)
        pts, valid = backproject(f.depth, cam, f.pose, max_depth=10.0)
        ours = pts[valid]  # row-major order, as Open3D emits valid pixels
        assert ours.shape == ref.shape and len(ref) > 100_000
        assert np.abs(ours - ref).max() < 1e-3


def reprojection_check(a, b, pose_a, pose_b) -> tuple[float, float, float]:
    """Frame a's valid points, placed in the world by pose_a and seen from b through pose_b:
    (fraction inside b's image in front of it, fraction of those where b has depth,
    fraction of those within 5 cm of b's depth)."""
    pts, valid = backproject(a.depth, a.camera, pose_a)
    uv, z = project(pts[valid], b.camera, pose_b)
    u, v = np.rint(uv[:, 0]).astype(int), np.rint(uv[:, 1]).astype(int)
    inside = (z > 0) & (u >= 0) & (u < b.width) & (v >= 0) & (v < b.height)
    db = b.depth[v[inside], u[inside]]
    seen = valid_depth(db)
    close = np.abs(db[seen] - z[inside][seen]) < 0.05
    return float(inside.mean()), float(seen.mean()), float(close.mean()) if close.size else 0.0


def passes(inside: float, seen: float, close: float) -> bool:
    return inside > 0.8 and seen > 0.8 and close >= 0.95


def test_consecutive_frames_reproject(seven):
    """≥ 95% of frame i's valid points land within 5 cm of frame i+1's depth."""
    for a, b in zip(seven[:-1], seven[1:]):
        stats = reprojection_check(a, b, a.pose, b.pose)
        assert passes(*stats), f"frames {a.index}->{b.index}: inside, seen, close = {stats}"


def test_wrong_pose_convention_fails_the_check(seven):
    """The reprojection check can fail: the same check on the same consecutive frames, with
    the poses read as world-to-camera (inverted), fails for every pair."""
    for a, b in zip(seven[:-1], seven[1:]):
        stats = reprojection_check(a, b, np.linalg.inv(a.pose), np.linalg.inv(b.pose))
        assert not passes(*stats), f"frames {a.index}->{b.index}: inside, seen, close = {stats}"


def test_invalid_depth_excluded_and_range():
    cam = Camera(100, 100, 1.5, 1.5, 4, 4)
    d = np.full((4, 4), 2.0, np.float32)
    d[0, 0], d[0, 1], d[0, 2], d[0, 3] = 0, np.nan, 11.0, -1.0
    pts, valid = backproject(d, cam, max_depth=10.0)
    assert valid.sum() == 12 and not valid[0].any()
    assert np.isnan(pts[0]).all() and np.isfinite(pts[1:]).all()
    assert backproject(d, cam, max_depth=20.0)[1].sum() == 13
    # pixel (u=3, v=1) at 2 m: x = (3 - 1.5) / 100 * 2
    np.testing.assert_allclose(pts[1, 3], [0.03, -0.01, 2.0], atol=1e-6)


def test_pose_translates_and_rotates():
    cam = Camera(50, 50, 1.0, 1.0, 3, 3)
    d = np.ones((3, 3), np.float32)
    pose = np.eye(4)
    pose[:3, :3] = [[0, -1, 0], [1, 0, 0], [0, 0, 1]]
    pose[:3, 3] = [1, 2, 3]
    cam_pts, _ = backproject(d, cam)
    w, _ = backproject(d, cam, pose)
    np.testing.assert_allclose(w, cam_pts @ pose[:3, :3].T + pose[:3, 3], atol=1e-6)
    uv, z = project(w, cam, pose)
    np.testing.assert_allclose(uv[1, 2], [2, 1], atol=1e-4)
    np.testing.assert_allclose(z, 1.0, atol=1e-6)


def test_intrinsics_for_another_resolution_are_scaled():
    """An 8×8 camera used for a 4×4 depth map: focal lengths halve, and the principal point
    maps through pixel centres, cx' = (cx + 0.5) · 4/8 − 0.5 = (3.5 + 0.5) / 2 − 0.5 = 1.5."""
    cam = Camera(200, 200, 3.5, 3.5, 8, 8)
    d = np.full((4, 4), 1.0, np.float32)
    pts, _ = backproject(d, cam)
    # pixel (u, v) at 1 m: x = (u − 1.5) / 100, y = (v − 1.5) / 100
    u = (np.arange(4) - 1.5) / 100
    want = np.stack(np.broadcast_arrays(u[None, :], u[:, None], 1.0), axis=-1)
    np.testing.assert_allclose(pts, want, rtol=0, atol=1e-7)


@pytest.mark.parametrize(
    "depth, field",
    [
        (np.zeros((2, 3, 1), np.float32), "depth"),
        (np.zeros((0, 0), np.float32), "depth"),
        (np.zeros((4, 4), np.uint16), "depth"),
    ],
)
def test_bad_depth(depth, field):
    with pytest.raises(InputError) as e:
        backproject(depth, Camera(1, 1, 0, 0, 4, 4))
    assert e.value.field == field


def test_bad_pose_and_camera():
    d = np.ones((2, 2), np.float32)
    cam = Camera(1, 1, 0, 0, 2, 2)
    with pytest.raises(InputError, match="pose"):
        backproject(d, cam, np.full((4, 4), -np.inf))
    with pytest.raises(InputError, match="pose"):
        backproject(d, cam, np.eye(3))
    with pytest.raises(InputError, match="pose"):
        backproject(d, cam, np.full((4, 4), np.nan))
    with pytest.raises(InputError, match="intrinsics"):
        backproject(d, "not a camera")
