"""Voxel fusion and PLY output."""

from __future__ import annotations

import numpy as np
import pytest

from regiond.core.errors import InputError
from regiond.core.frames import Camera, Frame
from regiond.geometry import PointCloud, VoxelFusion, backproject, fuse_frames, read_ply, write_ply


def test_voxel_means_colours_and_majority_labels():
    f = VoxelFusion(voxel=1.0)
    pts = np.array([[0.1, 0.1, 0.1], [0.3, 0.3, 0.3], [0.5, 0.5, 0.5], [1.5, 0.5, 0.5], [-0.5, 0.5, 0.5]])
    cols = np.array([[0, 0, 0], [100, 100, 100], [200, 200, 200], [10, 20, 30], [1, 2, 3]], np.uint8)
    f.add_points(pts, cols, labels=[5, 5, 7, 0, 3])
    f.add_points([[0.9, 0.9, 0.9]], [[40, 40, 40]], labels=[7])  # a later frame: 5 and 7 tie → smaller id
    c = f.cloud()
    order = np.argsort(c.points[:, 0])
    p, col, lab = c.points[order], c.colors[order], c.labels[order]
    assert len(c) == 3
    np.testing.assert_allclose(p[1], [0.45, 0.45, 0.45], atol=1e-6)
    np.testing.assert_array_equal(col[1], [85, 85, 85])
    np.testing.assert_array_equal(lab, [3, 5, 0])


def test_fusing_7scenes_is_consistent_and_bounded(sevenscenes_dir):
    from regiond import scenes

    frames = list(scenes.open_source(sevenscenes_dir, every=4))
    cloud, fusion = fuse_frames(frames, voxel=0.05)
    assert fusion.frames_used == len(frames) and cloud.labels is None
    raw = sum(int(backproject(f.depth, f.camera, f.pose)[1].sum()) for f in frames)
    assert 1000 < len(cloud) < raw / 20
    keys = np.floor(cloud.points / 0.05).astype(np.int64)
    assert len(np.unique(keys, axis=0)) == len(cloud)  # one point per voxel (a voxel's mean stays inside it)
    # frame by frame, the voxels' sums are added to the scene's: the same cloud as all points at once
    from regiond.geometry.points import frame_points

    fps = [frame_points(f.depth, f.camera, f.pose) for f in frames]
    pts = [fp.points.T for fp in fps]
    cols = [f.rgb.reshape(-1, 3)[fp.pixels] for f, fp in zip(frames, fps)]
    once = VoxelFusion(0.05)
    once.add_points(np.concatenate(pts), np.concatenate(cols))
    c2 = once.cloud()
    assert np.array_equal(cloud.colors, c2.colors)
    np.testing.assert_allclose(cloud.points, c2.points, atol=1e-6)


def test_frames_without_pose_or_depth_are_skipped():
    cam = Camera(10, 10, 1.5, 1.5, 4, 4)
    rgb = np.zeros((4, 4, 3), np.uint8)
    f = VoxelFusion(0.1)
    assert not f.add_frame(Frame(rgb=rgb, depth=np.ones((4, 4), np.float32), camera=cam, pose=None))
    assert not f.add_frame(Frame(rgb=rgb, camera=cam, pose=np.eye(4)))
    assert f.add_frame(Frame(rgb=rgb, depth=np.ones((4, 4), np.float32), camera=cam, pose=np.eye(4)))
    assert (f.frames_used, f.frames_skipped) == (1, 2)


def test_ply_round_trip_through_open3d(tmp_path):
    import open3d as o3d

    rng = np.random.default_rng(0)
    cloud = PointCloud(
        rng.normal(size=(50, 3)).astype(np.float32),
        rng.integers(0, 256, (50, 3)).astype(np.uint8),
        rng.integers(0, 41, 50).astype(np.int32),
    )
    path = write_ply(tmp_path / "c.ply", cloud)
    back = read_ply(path)
    np.testing.assert_array_equal(back.points, cloud.points)
    np.testing.assert_array_equal(back.colors, cloud.colors)
    np.testing.assert_array_equal(back.labels, cloud.labels)
    legacy = o3d.io.read_point_cloud(str(path))  # any PLY reader sees points and colours
    np.testing.assert_allclose(np.asarray(legacy.colors) * 255, cloud.colors, atol=0.5)
    header = path.read_bytes()[:300]
    assert b"property uchar red" in header and b"property int label" in header


def test_bad_inputs(tmp_path):
    with pytest.raises(InputError, match="voxel"):
        VoxelFusion(0)
    with pytest.raises(InputError, match="voxel"):
        VoxelFusion(float("nan"))
    f = VoxelFusion(0.1)
    with pytest.raises(InputError, match="colors"):
        f.add_points(np.zeros((3, 3)), np.zeros((2, 3), np.uint8))
    with pytest.raises(InputError, match="labels"):
        f.add_points(np.zeros((3, 3)), np.zeros((3, 3), np.uint8), labels=[1])
    with pytest.raises(InputError, match="colors"):
        f.add_points(np.zeros((1, 3)), [[0, 0, 256]])
    with pytest.raises(InputError, match="colors"):
        f.add_points(np.zeros((1, 3)), [[0.5, 0, 0]])
    with pytest.raises(InputError, match="labels"):
        f.add_points(np.zeros((1, 3)), [[0, 0, 0]], labels=[1.5])
    f.add_points([[1.0, 2.0, 3.0]], [[9, 9, 9]])
    with pytest.raises(InputError, match="points"):  # a bad frame changes nothing, not even its good points
        f.add_points([[0, 0, 0], [1e9, 0, 0]], [[0, 0, 0], [0, 0, 0]])
    assert len(f.cloud()) == 1 and f.cloud().colors.tolist() == [[9, 9, 9]] and f.points_fused == 1
    cam = Camera(10, 10, 1.5, 1.5, 4, 4)
    frame = Frame(rgb=np.zeros((4, 4, 3), np.uint8), depth=np.ones((4, 4), np.float32), camera=cam, pose=np.eye(4))
    with pytest.raises(InputError, match="labels"):
        f.add_frame(frame, labels=np.zeros((2, 2), np.uint8))
    with pytest.raises(InputError, match="stride"):
        f.add_frame(frame, stride=0)
    with pytest.raises(InputError, match="out"):
        write_ply(tmp_path / "c.txt", PointCloud(np.zeros((1, 3), np.float32), np.zeros((1, 3), np.uint8)))
    with pytest.raises(FileNotFoundError):
        read_ply(tmp_path / "missing.ply")


def test_the_voxel_hash_numbers_keys_as_they_first_arrive_through_its_growths():
    from regiond.geometry.voxel_hash import VoxelHash

    rng = np.random.default_rng(3)
    table, truth = VoxelHash(16), {}
    for _ in range(20):  # repeats within and across calls; the table doubles several times
        keys = np.concatenate([rng.integers(0, 1 << 62, 300), rng.choice(list(truth) or [7], 200)])
        keys[:50] = keys[50:100]
        assert table.lookup(keys).tolist() == [truth.get(k, -1) for k in keys.tolist()]
        for k in keys.tolist():
            truth.setdefault(k, len(truth))
        assert table.slots(keys).tolist() == [truth[k] for k in keys.tolist()]
    assert len(table) == len(truth) and table.keys[: len(truth)].tolist() == list(truth)
    assert table.limit >= len(truth) and table.lookup(np.array([1 << 62])).tolist() == [-1]


def test_a_frame_adds_the_points_its_stride_picks_with_their_pixels_colours_and_labels():
    """add_frame picks every stride-th pixel, and every (stride/2)-th beyond voxel·f/stride: the
    same cloud as add_points of those pixels' points, colours and labels, picked here by hand."""
    from regiond.geometry.points import frame_points

    rng = np.random.default_rng(8)
    h, w = 48, 64
    cam = Camera(60.0, 60.0, 31.5, 23.5, w, h)
    depth = rng.uniform(0.3, 2.0, (h, w)).astype(np.float32)
    depth[rng.random((h, w)) < 0.1] = 0  # no reading
    pose = np.eye(4)
    pose[:3, 3] = [0.3, -0.2, 1.0]
    frame = Frame(rgb=rng.integers(0, 256, (h, w, 3), dtype=np.uint8), depth=depth, camera=cam, pose=pose)
    labels = rng.integers(-1, 5, (h, w))
    stride, voxel = 4, 0.02
    far = voxel * 60.0 / stride
    pts = frame_points(depth, cam, pose)
    y, x = np.divmod(pts.pixels, w)
    on = ((y % stride == 0) & (x % stride == 0)) | ((y % 2 == 0) & (x % 2 == 0) & (depth.ravel()[pts.pixels] > far))
    want = VoxelFusion(voxel)
    px = pts.pixels[on]
    want.add_points(pts.points[:, on].T, frame.rgb.reshape(-1, 3)[px], labels.ravel()[px])
    got = VoxelFusion(voxel)
    got.add_frame(frame, labels=labels, stride=stride)
    a, b = got.cloud(), want.cloud()
    assert 0 < got.points_fused == want.points_fused < len(pts) and len(a) == len(b)
    np.testing.assert_allclose(a.points, b.points, atol=1e-6)
    assert np.array_equal(a.colors, b.colors) and np.array_equal(a.labels, b.labels)


def test_labels_are_each_voxels_majority_however_they_arrive():
    rng = np.random.default_rng(4)
    batches = [
        (rng.uniform(-1, 1, (3000, 3)), rng.integers(0, 255, (3000, 3), dtype=np.uint8), rng.integers(0, 6, 3000))
        for _ in range(12)
    ]
    batches.append((batches[0][0], batches[0][1], 5 - batches[0][2]))  # outvotes some first labels, ties others
    fused = VoxelFusion(0.1)
    for pts, cols, labels in batches:
        fused.add_points(pts, cols, labels)
    a = fused.cloud()
    keys = np.concatenate([np.floor(p / 0.1).astype(np.int64) for p, _, _ in batches])
    labels = np.concatenate([lab for _, _, lab in batches])
    vox = np.floor(a.points / 0.1).astype(np.int64)
    assert len({tuple(k) for k in vox}) == len(a) == len(np.unique(keys, axis=0))
    for k, got in list(zip(vox, a.labels))[:300]:  # the majority label of each voxel, counted directly
        counts = np.bincount(labels[(keys == k).all(axis=1)], minlength=6)[1:]
        assert got == (1 + int(np.argmax(counts)) if counts.any() else 0)


@pytest.mark.parametrize(("parts", "side"), [(1, 1.0), (7, 1.0), (3, 30.0)])  # in one call or several; dense or sparse
def test_a_cloud_past_the_first_growths_is_numpys_per_voxel_means_and_majorities(parts, side):
    rng = np.random.default_rng(5)
    # 1 m: about 125,000 voxels of 2 cm, 2,000 blocks; 30 m: a voxel a block, 150,000 blocks:
    # the block hash, the voxels' arrays and the label pairs' hash grow several times
    pts = rng.uniform(0, side, (150_000, 3))
    cols = rng.integers(0, 256, (150_000, 3), dtype=np.uint8)
    labels = rng.integers(0, 4, 150_000)
    fused = VoxelFusion(0.02)
    for part in np.array_split(np.arange(150_000), parts):
        fused.add_points(pts[part], cols[part], labels[part])
    cloud = fused.cloud()
    keys, inv = np.unique(np.floor(pts / 0.02).astype(np.int64), axis=0, return_inverse=True)
    counts = np.bincount(inv)
    assert len(cloud) == len(keys) and fused.points_fused == 150_000
    means = np.stack([np.bincount(inv, pts[:, j]) for j in range(3)], axis=1) / counts[:, None]
    np.testing.assert_allclose(cloud.points, means, atol=1e-6)  # key order is the voxels' lexicographic order
    colours = np.stack([np.bincount(inv, cols[:, j]) for j in range(3)], axis=1) / counts[:, None]
    assert np.array_equal(cloud.colors, np.rint(colours).astype(np.uint8))
    votes = np.zeros((len(keys), 4), np.int64)
    np.add.at(votes, (inv, labels), 1)
    votes[:, 0] = 0  # label 0: none
    want = np.where(votes.max(axis=1) > 0, np.argmax(votes, axis=1), 0)  # ties: the smaller id
    assert np.array_equal(cloud.labels, want)


def test_labelled_points_spanning_a_huge_box():
    # two points ±10 km apart at 1 cm: the box of voxels is too large to pack with the labels
    f = VoxelFusion(0.01)
    f.add_points(
        [[-5000.0, -5000.0, -5000.0], [5000.0, 5000.0, 5000.0], [5000.0, 5000.0, 5000.001]],
        np.zeros((3, 3), np.uint8),
        labels=[3, 200, 200],
    )
    c = f.cloud()
    assert len(c) == 2 and c.labels.tolist() == [3, 200]  # in key order


def test_a_coarse_stride_still_fills_the_voxels_of_far_surfaces():
    """Every 4th pixel lies more than a 2 cm voxel from the next beyond voxel·f/4 = 2.5 m here:
    there the fusion reads every 2nd, so one frame of a far wall fills its voxels as every 2nd
    pixel does, and a near wall costs a quarter of the points."""
    from regiond.core.frames import Camera, Frame

    cam = Camera(500.0, 500.0, 159.5, 119.5, 320, 240)
    rgb = np.zeros((240, 320, 3), np.uint8)
    voxels, points = {}, {}
    for z in (1.5, 4.0):
        frame = Frame(rgb=rgb, depth=np.full((240, 320), z, np.float32), camera=cam, pose=np.eye(4))
        for stride in (2, 4):
            fusion = VoxelFusion(0.02)
            fusion.add_frame(frame, stride=stride)
            voxels[z, stride] = len(fusion.cloud())
            points[z, stride] = fusion.points_fused
    assert voxels[1.5, 4] == voxels[1.5, 2] and points[1.5, 4] == points[1.5, 2] // 4  # near: a quarter of the work
    assert voxels[4.0, 4] == voxels[4.0, 2] and points[4.0, 4] == points[4.0, 2]  # far: every 2nd pixel
    plain = VoxelFusion(0.02)  # every 4th pixel alone would leave holes in the far wall
    plain.add_points(*_grid_points(frame, 4))
    assert len(plain.cloud()) < 0.7 * voxels[4.0, 2]


def _grid_points(frame, stride):
    from regiond.geometry import backproject

    pts, valid = backproject(frame.depth, frame.camera, frame.pose, stride=stride)
    rgb = frame.rgb[::stride, ::stride]
    return pts[valid], rgb[valid]


def test_the_warm_up_compiles_what_a_scene_streams_frames_use():
    """The daemon's warm-up runs a tiny frame through the compiled loops, so that the first
    scene's first frame finds them compiled: in a fresh process, a scene stream's frame (SLIC's
    partition, its 3D statistics' points, a uint8 label map, stride 4) then compiles nothing."""
    import subprocess
    import sys

    code = """
import numpy as np
from regiond.core.frames import Camera, Frame
from regiond.extraction.profiles import build_extractor
from regiond.geometry import VoxelFusion, compiled, region_geometry
from regiond.geometry.fusion import warm_up

def signatures():
    return {name: set(getattr(compiled, name).signatures) for name in ("fuse", "partition_points")}

rng = np.random.default_rng(2)
h, w = 48, 64
partition = build_extractor("lite", announce=lambda m: None).masker(rng.integers(0, 256, (h, w, 3), np.uint8)).regions
warm_up()
compiled_now = signatures()
cam = Camera(60.0, 60.0, 31.5, 23.5, w, h)
depth = rng.uniform(0.5, 3.0, (h, w)).astype(np.float32)
frame = Frame(rgb=rng.integers(0, 256, (h, w, 3), dtype=np.uint8), depth=depth, camera=cam, pose=np.eye(4))
points = region_geometry(partition, depth, cam, np.eye(4)).points
fusion = VoxelFusion(0.02)
assert fusion.add_frame(frame, labels=rng.integers(0, 41, (h, w)).astype(np.uint8), stride=4, points=points)
assert fusion.points_fused > 0 and all(compiled_now.values()), compiled_now
assert signatures() == compiled_now, (signatures(), compiled_now)
"""
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=180)
    assert run.returncode == 0, run.stderr[-2000:]
