"""Every RPC against a real daemon on a free port (lite profile), plus health and reflection."""

from __future__ import annotations

import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from support_service import image_pb, lite_extractor, running_server, sample_image, stub_for

from regiond.api.v1 import regions_pb2 as pb


@pytest.fixture(scope="module")
def daemon(tmp_path_factory):
    with running_server(lite_extractor(), tmp_path_factory.mktemp("rpc"), index=True) as srv:
        ch, stub = stub_for(srv)
        yield srv, stub
        ch.close()


def _masks(rs: pb.RegionSet) -> np.ndarray:
    from pycocotools import mask as mask_utils

    objs = [{"size": [rs.height, rs.width], "counts": list(r.mask.counts)} for r in rs.regions]
    return np.moveaxis(mask_utils.decode(mask_utils.frPyObjects(objs, rs.height, rs.width)), -1, 0).astype(bool)


def test_get_info(daemon):
    srv, stub = daemon
    info = stub.GetInfo(pb.InfoRequest())
    ex = lite_extractor()
    assert info.profile == "lite" and info.version
    assert info.feature_dim == ex.dim > 0
    roles = {m.role: m for m in info.models}
    assert roles["masker"].name == ex.masker.name and roles["backbone"].feature_dim == ex.dim
    assert info.max_message_bytes == max(srv.config.max_message_bytes, srv.config.receive_message_bytes)


def test_extract_regions_matches_in_process(daemon):
    _, stub = daemon
    img = sample_image(96, 72)
    rs = stub.ExtractRegions(
        pb.ExtractRequest(image=image_pb(img), output=pb.OutputOptions(features=pb.FEATURES_FLOAT16))
    )
    local = lite_extractor().extract(img)
    assert (rs.width, rs.height) == (96, 72)
    assert len(rs.regions) == len(local) > 1
    masks = _masks(rs)
    assert np.array_equal(masks, local.masks())
    for i, r in enumerate(rs.regions):
        assert r.id == i and sum(r.mask.counts) == 96 * 72
        assert r.area == masks[i].sum()
        ys, xs = np.nonzero(masks[i])
        assert (r.box.x0, r.box.y0, r.box.x1, r.box.y1) == (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)
        assert r.source == pb.SOURCE_SLIC and not r.HasField("score")
    feats = np.stack([np.frombuffer(r.features, "<f2") for r in rs.regions]).astype(np.float32)
    assert rs.feature_dim == local.features.shape[1]
    np.testing.assert_allclose(feats, local.features, rtol=2e-3, atol=2e-3)
    assert {"masks", "features", "pooling", "queue"} <= set(rs.stage_seconds)


def test_extract_with_geometry_and_without_masks(daemon):
    _, stub = daemon
    img = sample_image(64, 48)
    depth = np.full((48, 64), 1500, "<u2")  # 1.5 m in millimetres
    pose = np.eye(4)
    pose[:3, 3] = (1.0, 2.0, 3.0)
    rs = stub.ExtractRegions(
        pb.ExtractRequest(
            image=image_pb(img),
            output=pb.OutputOptions(omit_masks=True),
            depth=pb.Depth(data=depth.tobytes(), dtype=pb.Depth.UINT16, width=64, height=48),
            intrinsics=pb.Intrinsics(fx=60, fy=60, cx=31.5, cy=23.5),
            pose=pb.Pose(matrix=pose.ravel().tolist()),
        )
    )
    assert rs.regions and not rs.regions[0].HasField("mask") and not rs.regions[0].features
    for r in rs.regions:
        g = r.geometry
        assert g.world and g.valid_fraction == pytest.approx(1.0) and g.point_count > 0
        assert g.centroid.z == pytest.approx(3.0 + 1.5, abs=1e-3)  # camera z=1.5 m, shifted by the pose


def test_stream_video_in_order(daemon):
    srv, stub = daemon
    frames = [pb.VideoFrame(image=image_pb(sample_image(64, 48, seed=i)), index=10 + i) for i in range(4)]
    ups = list(stub.StreamVideo(iter(frames)))
    assert [u.frame_index for u in ups] == [10, 11, 12, 13]
    assert all(len(u.regions.regions) > 0 and not u.HasField("error") for u in ups)
    assert srv.servicer.sessions.count() == 0


def test_stream_scene_summary_and_ply(daemon, tmp_path):
    from regiond.geometry import read_ply

    _, stub = daemon
    img = sample_image(64, 48)
    depth = np.full((48, 64), 2000, "<u2")

    def frame(i, pose):
        return pb.SceneFrame(
            color=image_pb(img),
            index=i,
            depth=pb.Depth(data=depth.tobytes(), dtype=pb.Depth.UINT16, width=64, height=48),
            intrinsics=pb.Intrinsics(fx=60, fy=60, cx=31.5, cy=23.5, width=64, height=48),
            pose=pb.Pose(matrix=np.asarray(pose).ravel().tolist()),
        )

    lost = np.full((4, 4), -np.inf)  # ScanNet's mark for lost tracking: not an error
    first = frame(0, np.eye(4))
    first.options.CopyFrom(pb.SceneOptions(scene_id="s1", return_ply=True, voxel_size=0.05))
    ups = list(stub.StreamScene(iter([first, frame(1, lost), frame(2, np.eye(4))])))
    per_frame, summary = ups[:-1], ups[-1].summary
    assert [u.frame_index for u in per_frame] == [0, 1, 2]
    assert per_frame[0].regions.regions[0].geometry.world
    assert not per_frame[1].regions.regions[0].geometry.world  # no pose: camera coordinates
    assert (summary.scene_id, summary.frames, summary.frames_failed, summary.frames_without_pose) == ("s1", 3, 0, 1)
    assert summary.regions == sum(len(u.regions.regions) for u in per_frame)
    assert summary.fused_points > 0
    (tmp_path / "s.ply").write_bytes(summary.ply)
    cloud = read_ply(tmp_path / "s.ply")
    assert len(cloud) == summary.fused_points
    assert np.allclose(cloud.points[:, 2], 2.0, atol=0.05)


def test_index_and_search(daemon):
    srv, stub = daemon
    assert srv.search is not None, "the daemon started with index=True serves no region index"
    reqs = [
        pb.IndexRequest(image_id=f"img{i}", image=image_pb(sample_image(64, 48, seed=i)), metadata={"set": "a"})
        for i in range(3)
    ]
    reqs.append(pb.IndexRequest(image_id="bad", image=pb.Image(data=b"not an image")))
    s = stub.IndexImages(iter(reqs))
    assert (s.received, s.indexed) == (4, 3) and [e.image_id for e in s.errors] == ["bad"]
    assert s.errors[0].code == 3
    resp = stub.Search(pb.SearchRequest(region=pb.RegionRef(image_id="img1", region_id=0), top_k=2, include_masks=True))
    assert resp.hits and resp.hits[0].image_id == "img1"
    assert sum(resp.hits[0].regions[0].mask.counts) == 64 * 48
    info = stub.GetInfo(pb.InfoRequest())
    assert info.index_images == 3


def test_health_and_reflection(daemon):
    srv, _ = daemon
    ch, _ = stub_for(srv)
    h = health_pb2_grpc.HealthStub(ch)
    for service in ("", "regions.v1.RegionService"):
        assert h.Check(health_pb2.HealthCheckRequest(service=service)).status == health_pb2.HealthCheckResponse.SERVING
    r = reflection_pb2_grpc.ServerReflectionStub(ch)
    resp = next(r.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")])))
    names = {s.name for s in resp.list_services_response.service}
    assert {"regions.v1.RegionService", "grpc.health.v1.Health"} <= names
    resp = next(
        r.ServerReflectionInfo(
            iter([reflection_pb2.ServerReflectionRequest(file_containing_symbol="regions.v1.RegionService")])
        )
    )
    assert resp.file_descriptor_response.file_descriptor_proto
    ch.close()


def test_stream_output_options_first_frame_then_override(daemon):
    _, stub = daemon
    img = image_pb(sample_image(64, 48))
    frames = [
        pb.VideoFrame(image=img, output=pb.OutputOptions(features=pb.FEATURES_FLOAT32)),
        pb.VideoFrame(image=img),  # inherits the stream's options
        pb.VideoFrame(image=img, output=pb.OutputOptions(omit_masks=True)),
    ]
    a, b, c = list(stub.StreamVideo(iter(frames)))
    assert a.regions.feature_encoding == b.regions.feature_encoding == pb.FEATURES_FLOAT32
    assert len(b.regions.regions[0].features) == 4 * b.regions.feature_dim
    assert b.regions.regions[0].HasField("mask")
    assert not c.regions.regions[0].HasField("mask") and not c.regions.regions[0].features


def test_unknown_output_option_is_a_frame_error(daemon):
    _, stub = daemon
    img = image_pb(sample_image(64, 48))
    bad = pb.VideoFrame(image=img)
    bad.output.features = 7  # not a FeatureEncoding value (open enums accept it on the wire)
    good = pb.VideoFrame(image=img, output=pb.OutputOptions(features=pb.FEATURES_FLOAT16))
    a, b = list(stub.StreamVideo(iter([bad, good])))
    assert a.error.field == "output.features" and a.error.code == 3
    assert b.regions.regions and b.regions.feature_encoding == pb.FEATURES_FLOAT16
