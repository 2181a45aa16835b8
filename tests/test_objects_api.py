"""SceneOptions.objects through a real daemon: object ids per region, the objects in the
summary, final ids in the refined updates, the PLY's instance property, frames without depth or
pose, a wrong pose, a scene head's classes, and streams without objects unchanged."""

from __future__ import annotations

import dataclasses
import io

import numpy as np
import pytest
from plyfile import PlyData
from support_objects import room_frames
from support_service import lite_extractor, running_server, stub_for

from regiond.api.v1 import regions_pb2 as pb
from regiond.client.messages import scene_frame_pb


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with running_server(lite_extractor(), tmp_path_factory.mktemp("objects")) as srv:
        yield srv


@pytest.fixture(scope="module")
def daemon(server):
    ch, stub = stub_for(server)
    yield stub
    ch.close()


@pytest.fixture(scope="module")
def daemon_address(server):
    return server.address


def _stream(stub, frames, **options):
    msgs = [scene_frame_pb(f, "png") for f in frames]
    msgs[0].options.CopyFrom(pb.SceneOptions(scene_id="room", return_ply=True, **options))
    ups = list(stub.StreamScene(iter(msgs), timeout=300))
    frames_ = [u for u in ups if u.HasField("regions") or u.HasField("error")]
    refined = {u.refined.frame_index: u.refined for u in ups if u.HasField("refined")}
    return frames_, refined, ups[-1].summary


@pytest.fixture(scope="module")
def scan(daemon):
    return _stream(daemon, room_frames(), objects=True)


def test_regions_get_persistent_objects_and_the_summary_lists_them(scan):
    ups, refined, summary = scan
    objects = {o.id: o for o in summary.objects}
    assert 5 <= len(objects) <= 120 and summary.frames_without_objects == 0
    online = [r.object_id for u in ups for r in u.regions.regions]
    assert np.mean(np.array(online) > 0) > 0.8  # nearly every region has an object as it streams
    assert len(
        {i for u in ups[:10] for i in [r.object_id for r in u.regions.regions]}
        & set(r.object_id for u in ups[10:20] for r in u.regions.regions)
    )  # and ids persist from frame to frame
    for o in objects.values():
        lo, hi, c = (np.array([v.x, v.y, v.z]) for v in (o.box_min, o.box_max, o.centroid))
        assert (lo <= c).all() and (c <= hi).all() and o.point_count >= 100 and o.frames >= 2
        assert not o.HasField("label") and o.label_name == ""  # no scene head: class-agnostic
        assert 0 <= o.best_frame < len(ups) and o.best_box.x1 > o.best_box.x0 and 0 < o.confidence <= 1
    # refined updates: final ids for every frame, each region's an object of the summary (or 0)
    assert sorted(refined) == [u.frame_index for u in ups]
    for u in ups:
        final = list(refined[u.frame_index].region_object_ids)
        assert len(final) == len(u.regions.regions) and set(final) <= set(objects) | {0}
    # the PLY's instance property: the same objects over the fused cloud, with their point counts
    v = PlyData.read(io.BytesIO(summary.ply))["vertex"].data
    counts = dict(zip(*np.unique(v["instance"], return_counts=True)))
    assert {int(k) for k in counts} - {0} == set(objects)
    assert all(counts[i] == o.point_count for i, o in objects.items())


def test_streams_without_objects_are_unchanged(daemon):
    ups, refined, summary = _stream(daemon, room_frames()[:3])
    assert not refined and not summary.objects and not any(u.objects_reason for u in ups)
    assert all(r.object_id == 0 for u in ups for r in u.regions.regions)
    assert "instance" not in PlyData.read(io.BytesIO(summary.ply))["vertex"].data.dtype.names


def test_frames_without_depth_or_pose_get_no_ids_and_say_why(daemon):
    frames = list(room_frames()[:6])
    frames[2] = dataclasses.replace(frames[2], depth=None)
    frames[4] = dataclasses.replace(frames[4], pose=None)
    ups, refined, summary = _stream(daemon, frames, objects=True)
    assert [u.objects_reason for u in ups] == ["", "", "no depth", "", "no pose", ""]
    for k in (2, 4):
        assert ups[k].regions.regions and all(r.object_id == 0 for r in ups[k].regions.regions)
        assert not refined.get(k, pb.RefinedFrame()).region_object_ids
    assert summary.frames_without_objects == 2 and summary.frames_without_pose == 1


def test_a_frame_with_a_wrong_pose_is_left_out(daemon):
    frames = list(room_frames()[:12])
    pose = frames[8].pose.copy()
    pose[:3, 3] += (1.0, 0.0, 0.0)
    frames[8] = dataclasses.replace(frames[8], pose=pose)
    ups, _, summary = _stream(daemon, frames, objects=True)
    assert ups[8].objects_reason.startswith("pose disagrees with the map")
    assert all(r.object_id == 0 for r in ups[8].regions.regions)
    assert [k for k, u in enumerate(ups) if u.objects_reason] == [8]


def test_objects_take_the_scene_heads_classes(labelling_daemon):
    ch, stub = stub_for(labelling_daemon)
    try:
        ups, refined, summary = _stream(stub, room_frames()[::2], objects=True, return_label_maps=True)
    finally:
        ch.close()
    names = {3: "cabinet", 5: "chair", 7: "table"}
    assert summary.objects and all(o.HasField("label") for o in summary.objects)
    assert all(names[o.label] == o.label_name and 0 < o.score <= 1 for o in summary.objects)
    for u in ups:  # the refined updates carry the scene head's labels and the final ids together
        r = refined[u.frame_index]
        assert len(r.region_labels) == len(r.region_object_ids) == len(u.regions.regions) and r.label_map_png


def test_region_client_gives_the_objects(daemon_address):
    from regiond.client.region_client import RegionClient

    with RegionClient(daemon_address, token="") as client:
        updates = list(client.stream_scene(room_frames()[:16], ply=True, objects=True))
    frames = [u for u in updates if u.regions is not None]
    refined = [u.refined for u in updates if u.refined is not None]
    summary = updates[-1].summary
    ids = {o.id for o in summary.objects}
    assert ids and all(len(u.object_ids) == len(u.regions) and u.objects_reason == "" for u in frames)
    assert len(refined) == len(frames) and all(set(r.region_object_ids.tolist()) <= ids | {0} for r in refined)
    o = summary.objects[0]
    assert o.label is None and len(o.box) == 6 and len(o.best_box) == 4 and o.point_count >= 100
