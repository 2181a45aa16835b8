"""The online object map (regiond.objects): voxel hash, region pixels, association, merges,
carried regions, frames it cannot map, memory, and a wrong pose."""

from dataclasses import replace

import numpy as np
import pytest
from support_objects import regions_of, room_frames, true_classes, true_objects

from regiond.core.frames import Frame
from regiond.core.regionset import RegionSet
from regiond.geometry import VoxelFusion
from regiond.objects import ObjectConfig, ObjectMap, summarise
from regiond.objects.instance_truth import Consistency, TruthFusion
from regiond.objects.pixels import strided_owner
from regiond.objects.voxels import MAX_VOTES, VoxelTable


def test_strided_owner_is_the_dense_masks_sampled_largest_first():
    rng = np.random.default_rng(0)
    h, w = 37, 53
    masks = np.zeros((6, h, w), bool)
    for m in masks:  # overlapping rectangles, some touching the image's edges
        y0, x0 = rng.integers(0, h - 5), rng.integers(0, w - 5)
        m[y0 : y0 + rng.integers(3, h), x0 : x0 + rng.integers(3, w)] = True
    regions = RegionSet.from_masks(masks)
    for stride in (1, 3, 4):
        want = np.full((h, w), -1)
        for i in np.argsort(regions.areas, kind="stable"):  # larger masks painted later win (ties: later ones)
            want[masks[i]] = i
        got = strided_owner(regions, stride)
        assert got.tolist() == want[::stride, ::stride].tolist()


def test_voxel_table_finds_what_it_holds_and_votes_by_majority():
    rng = np.random.default_rng(1)
    table, truth = VoxelTable(16), {}
    for _ in range(30):  # grows through several rehashes
        keys = np.unique(np.concatenate([rng.integers(0, 1 << 50, 400), rng.choice(list(truth) or [7], 100)]))
        slots = table.lookup(keys)
        assert slots.tolist() == [truth.get(k, -1) for k in keys.tolist()]
        new = keys[slots < 0]
        truth.update(zip(new.tolist(), table.insert(new).tolist()))
    assert len(table) == len(truth)
    s = table.lookup(np.array([next(iter(truth))]))
    one, two = np.array([1], np.int32), np.array([2], np.int32)
    at = lambda x: (np.array([[x, 0.0, 0.0]]), np.array([1.0]))  # noqa: E731  (one point at x)
    for _ in range(MAX_VOTES + 3):  # object 1 banks at most MAX_VOTES votes
        table.vote(s, one, table.owner[s], *at(1.0))
    assert table.means(s)[0, 0] == 1.0
    for k in range(MAX_VOTES):  # as many frames for object 2 take it over, not fewer
        assert table.owner[s][0] == 1, k
        table.vote(s, two, table.owner[s], *at(5.0))
        assert table.means(s)[0, 0] == (1.0 if table.owner[s][0] == 1 else 5.0)  # the owner's points' mean
    assert table.owner[s][0] == 2 and table.means(s)[0, 0] == 5.0 and table.seen[s][0] == 2 * MAX_VOTES + 3


def _run(frames, regions, config=None):
    omap = ObjectMap(config or ObjectConfig(min_points=20))
    out = [omap.add(f, r) for f, r in zip(frames, regions)]
    return omap, out


def test_true_masks_give_one_id_per_true_object():
    frames = room_frames()
    regions = regions_of(frames, "truth")
    omap, _ = _run(frames, regions)
    result = summarise(omap)
    consistency = Consistency()
    for f, r in zip(frames, regions):
        own = strided_owner(r, 1)
        ids = result.frame_ids[f.index]
        consistency.add(f.meta["instances"], np.where(own >= 0, ids[np.maximum(own, 0)], 0))
    got = consistency.result(true_classes(frames))  # walls, floor and ceiling not counted
    assert got["ids_per_object"] <= 1.1, got
    truth = true_objects(frames)
    objects = {o.id for o in result.objects}
    assert len(truth) <= len(objects) <= len(truth) + 10  # walls (a long one may be two), floor and ceiling too
    for o in result.objects:  # what summarise reports is consistent
        assert o.frames >= omap.config.min_frames and o.points >= omap.config.min_points
        assert (o.box[:3] <= o.centroid).all() and (o.centroid <= o.box[3:]).all()
        assert 0 <= o.best_frame < len(frames) and o.best_box[2] > o.best_box[0]


def test_carried_regions_keep_their_keyframe_regions_object():
    frames = room_frames()
    regions = regions_of(frames, "lite", every=4)
    omap = ObjectMap(ObjectConfig())
    key_ids, carried = None, 0
    for f, r in zip(frames, regions):
        got = omap.add(f, r).ids
        info = r.meta["carry"]
        if info["keyframe"]:
            key_ids = got.copy()
            continue
        origin = np.asarray(info["origin"])
        assert len(origin) and origin.max() < len(key_ids)
        inherited = key_ids[origin] > 0
        now = omap.objects.root(got[: len(origin)][inherited].astype(int))
        assert (now == omap.objects.root(key_ids[origin][inherited].astype(int))).all()
        carried += int(inherited.sum())
    assert carried > 50


def test_frames_it_cannot_map_get_no_ids_and_say_why():
    frames = room_frames()[:4]
    regions = regions_of(frames, "truth")
    omap = ObjectMap()
    assert (omap.add(frames[0], regions[0]).ids > 0).any()
    cases = {
        "no depth": Frame(rgb=frames[1].rgb, camera=frames[1].camera, pose=frames[1].pose, index=1),
        "no pose": Frame(rgb=frames[2].rgb, depth=frames[2].depth, camera=frames[2].camera, index=2),
        "no intrinsics": Frame(rgb=frames[3].rgb, depth=frames[3].depth, pose=frames[3].pose, index=3),
    }
    lost = frames[2].pose.copy()
    lost[:] = -np.inf  # ScanNet's lost tracking
    cases["no pose "] = Frame(rgb=frames[2].rgb, depth=frames[2].depth, camera=frames[2].camera, pose=lost, index=2)
    for (why, frame), r in zip(cases.items(), [regions[1], regions[2], regions[3], regions[2]]):
        got = omap.add(frame, r)
        assert got.reason == why.strip() and len(got.ids) == len(r) and not got.ids.any()
    assert omap.frames_skipped == 4
    assert (omap.add(frames[1], regions[1]).ids > 0).any()  # and the map goes on


def test_a_region_holding_two_objects_merges_them():
    frames = room_frames()[:6]
    regions = regions_of(frames, "truth")
    f0, r0 = frames[0], regions[0]
    masks = r0.masks()
    furniture = [(f0.labels[m] > 2).mean() > 0.5 and (f0.labels[m] != 22).all() for m in masks]
    big = int(np.argmax(r0.areas * furniture))  # the largest object that is not a wall, floor or ceiling
    cols = np.flatnonzero(masks[big].any(axis=0))
    left = masks[big] & (np.arange(f0.rgb.shape[1]) < np.median(cols))[None, :]
    halves = np.concatenate([np.delete(masks, big, axis=0), left[None], (masks[big] & ~left)[None]])
    split = RegionSet.from_masks(halves)
    omap = ObjectMap(ObjectConfig(min_points=1))
    first = omap.add(f0, split).ids
    a, b = int(first[-2]), int(first[-1])
    assert a and b and a != b  # the halves start as two objects
    for f, r in zip(frames[1:], regions[1:]):  # the whole object in the next frames
        omap.add(f, r)
    final = summarise(omap).frame_ids[f0.index]
    assert final[-2] == final[-1] != 0


@pytest.mark.parametrize("alike", [True, False])
def test_a_region_lying_across_two_objects_alike_merges_them(alike):
    """An object seen as two halves (two objects), then a region across the middle holding a
    part of each (too little of either to contain it): the two merge when their features
    agree (parts of one thing), and stay apart when they do not."""
    frames = room_frames()[:2]
    f0, f1 = frames
    r0 = regions_of([f0], "truth")[0]
    masks = r0.masks()
    furniture = [(f0.labels[m] > 2).mean() > 0.5 and (f0.labels[m] != 22).all() for m in masks]
    big = int(np.argmax(r0.areas * furniture))
    cols = np.flatnonzero(masks[big].any(axis=0))
    mid = np.median(cols)
    x = np.arange(f0.rgb.shape[1])[None, :]
    left = masks[big] & (x < mid)
    rest = np.delete(masks, big, axis=0)
    dim = 8
    rng = np.random.default_rng(0)
    other = rng.standard_normal((len(rest), dim)).astype(np.float32)
    fa, fb = np.eye(dim, dtype=np.float32)[0], np.eye(dim, dtype=np.float32)[0 if alike else 1]
    halves = RegionSet.from_masks(np.concatenate([rest, left[None], (masks[big] & ~left)[None]]))
    halves.features = np.concatenate([other, fa[None], fb[None]])
    config = ObjectConfig(min_points=1, check_pose=False)
    omap = ObjectMap(config)
    first = omap.add(f0, halves).ids
    a, b = int(first[-2]), int(first[-1])
    assert a and b and a != b
    width = max(4.0, 0.3 * (cols.max() - cols.min()))  # a strip across the middle of the object
    strip = masks[big] & (np.abs(x - mid) < width / 2)
    outer = [masks[big] & ~strip & (x < mid), masks[big] & ~strip & (x >= mid)]
    across = RegionSet.from_masks(np.concatenate([rest, strip[None], np.stack(outer)]))
    across.features = np.concatenate([other, fa[None], fa[None], fb[None]])
    omap.add(f0, across)  # the same view again: the strip holds a part of each half
    merged = omap.objects.root(np.array([a]))[0] == omap.objects.root(np.array([b]))[0]
    assert merged == alike
    apart = ObjectMap(replace(config, merge_similar=2.0))  # the rule off: never merged
    ids = apart.add(f0, halves).ids
    apart.add(f0, across)
    assert apart.objects.root(np.array([ids[-2]]))[0] != apart.objects.root(np.array([ids[-1]]))[0]


def test_memory_grows_with_voxels_not_frames():
    frames = room_frames()
    regions = regions_of(frames, "truth")
    omap, _ = _run(frames, regions)
    voxels, objects = len(omap.voxels), omap.objects.count
    for f, r in zip(frames, regions):  # the same loop again: no new surface
        omap.add(f, r)
    assert len(omap.voxels) == voxels
    assert omap.objects.count <= objects + 2


def _points_per_object(frames, regions):
    """The map's objects over the fused cloud of the frames, as the scene stream fuses them: a
    frame the map leaves out for its pose is left out of the cloud too."""
    omap, out = _run(frames, regions, ObjectConfig(min_points=20))
    fusion = VoxelFusion(0.02)
    for f, got in zip(frames, out):
        if not got.pose_rejected:
            fusion.add_frame(f, stride=2)
    cloud = fusion.cloud()
    result = summarise(omap, cloud.points)
    truth = TruthFusion()
    for f in room_frames():
        truth.add(f)
    result.gt = truth.on_points(cloud.points)  # the true object of each point, to match objects by
    return result, out


def _counts_by_truth(result) -> dict:
    """True object → points of the object holding most of its points."""
    out = {}
    for g in np.unique(result.gt[result.gt > 0]).tolist():
        match = np.bincount(result.instances[result.gt == g]).argmax()
        if match:
            out[g] = next(o.points for o in result.objects if o.id == match)
    return out


def _rotation(axis: int, degrees: float) -> np.ndarray:
    a = np.deg2rad(degrees)
    i, j = [k for k in range(3) if k != axis]
    r = np.eye(3)
    r[i, i] = r[j, j] = np.cos(a)
    r[i, j], r[j, i] = -np.sin(a), np.sin(a)
    return r


@pytest.mark.parametrize(
    "k, shift, axis",
    [(24, (1.0, 0, 0), None), (24, (0, 0, 1.0), None)]  # shifted by 1 m
    + [(24, None, a) for a in range(3)]  # rotated by 10° about the camera centre, each world axis
    + [(8, None, 1), (40, None, 1)],  # a roll facing a wall: the wall's points stay on the wall
)
def test_one_wrong_pose_does_not_smear_objects(k, shift, axis):
    """A frame shifted by 1 m, or turned by 10° about its camera centre, is left out (its update
    says why); the objects' point counts are within 5 % of those without the frame (its part of
    the room cannot be placed), and none grows beyond the objects of the scan with the right
    pose by more than 5 % (nothing smeared)."""
    frames = list(room_frames())
    regions = regions_of(frames, "truth")
    clean, _ = _points_per_object(frames, regions)
    without, _ = _points_per_object(frames[:k] + frames[k + 1 :], regions[:k] + regions[k + 1 :])
    bad = frames[k]
    pose = bad.pose.copy()
    if shift is not None:
        pose[:3, 3] += shift
    else:
        pose[:3, :3] = _rotation(axis, 10.0) @ pose[:3, :3]
    frames[k] = Frame(rgb=bad.rgb, depth=bad.depth, camera=bad.camera, pose=pose, index=bad.index, meta=bad.meta)
    shifted, out = _points_per_object(frames, regions)
    assert out[k].reason.startswith("pose disagrees with the map") and not out[k].ids.any()
    assert not any(o.reason for i, o in enumerate(out) if i != k)
    got, ref, right = _counts_by_truth(shifted), _counts_by_truth(without), _counts_by_truth(clean)
    assert set(got) == set(ref)
    for g, n in got.items():
        assert abs(n - ref[g]) <= 0.05 * ref[g], (g, n, ref[g])
        assert n <= 1.05 * right[g], (g, n, right[g])
