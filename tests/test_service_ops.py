"""Operations: metrics, the JSON access log, graceful shutdown, heads served through the API,
and `regiond serve` as a real process stopped by SIGTERM."""

from __future__ import annotations

import io
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import urllib.request

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from support_service import (
    free_port,
    image_pb,
    lite_extractor,
    running_server,
    sample_image,
    stub_for,
    tiny_heads,
    wait_serving,
)

from regiond.api.v1 import regions_pb2 as pb
from regiond.api.v1 import regions_pb2_grpc as pb_grpc


def _scrape(port: int) -> dict[str, float]:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    return {
        line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("regiond_")
    }


def test_metrics_and_access_log(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="regiond.access")
    with running_server(lite_extractor(), tmp_path, metrics_port=0) as srv:
        ch, stub = stub_for(srv)
        stub.GetInfo(pb.InfoRequest())
        frames = [pb.VideoFrame(image=image_pb(sample_image(64, 48))), pb.VideoFrame(image=pb.Image(data=b"x"))]
        list(stub.StreamVideo(iter(frames)))
        with pytest.raises(grpc.RpcError):
            stub.ExtractRegions(pb.ExtractRequest(image=pb.Image(data=b"x")))
        m = _scrape(srv.metrics_port)
        ch.close()
    assert m['regiond_calls_total{method="GetInfo"}'] == 1
    assert m['regiond_frames_total{method="StreamVideo"}'] == 2
    assert m['regiond_frame_errors_total{field="image",method="StreamVideo"}'] == 1
    assert m['regiond_errors_total{code="INVALID_ARGUMENT",method="ExtractRegions"}'] == 1
    assert m['regiond_stage_seconds_count{stage="masks"}'] >= 1
    assert m['regiond_stage_seconds_count{stage="queue"}'] >= 1
    assert m["regiond_queue_depth"] == 0 and m['regiond_sessions{kind="video"}'] == 0
    lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == "regiond.access"]
    by_method = {rec["method"]: rec for rec in lines}
    assert len(lines) == 3
    assert by_method["GetInfo"]["code"] == "OK"
    assert by_method["StreamVideo"]["frames"] == 2 and by_method["StreamVideo"]["frame_errors"] == 1
    assert by_method["ExtractRegions"]["code"] == "INVALID_ARGUMENT"
    assert by_method["ExtractRegions"]["details"].startswith("image:")


def test_graceful_shutdown_finishes_in_flight(tmp_path):
    from regiond.service.server import RegionServer, ServeConfig

    srv = RegionServer(
        ServeConfig(listen="127.0.0.1:0", data_dir=tmp_path, index=False), extractor=lite_extractor()
    ).start()
    ch, stub = stub_for(srv)
    watch = health_pb2_grpc.HealthStub(ch).Watch(health_pb2.HealthCheckRequest(service="regions.v1.RegionService"))
    assert next(watch).status == health_pb2.HealthCheckResponse.SERVING
    release = threading.Event()

    def frames():
        yield pb.VideoFrame(image=image_pb(sample_image(64, 48)), index=1)
        release.wait(10)  # the client is still streaming when the stop begins
        yield pb.VideoFrame(image=image_pb(sample_image(64, 48)), index=2)

    call = stub.StreamVideo(frames())
    assert next(call).frame_index == 1
    stopper = threading.Thread(target=srv.stop, kwargs={"grace": 10.0})
    stopper.start()
    assert next(watch).status == health_pb2.HealthCheckResponse.NOT_SERVING
    watch.cancel()  # a health watcher would otherwise hold the server for the whole grace period
    release.set()
    rest = list(call)  # the in-flight stream completes within the grace period
    assert [u.frame_index for u in rest] == [2] and rest[0].regions.regions
    stopper.join(20)
    assert not stopper.is_alive()
    with pytest.raises(grpc.RpcError):
        stub.GetInfo(pb.InfoRequest(), timeout=2)
    ch.close()


def test_heads_results_through_the_api(tmp_path):
    from PIL import Image

    from regiond.heads.serving import load_serving_heads

    ex = lite_extractor()
    tiny_heads(tmp_path / "heads", ex)
    heads = load_serving_heads(tmp_path / "heads", ex)
    from regiond.service.server import RegionServer, ServeConfig

    srv = RegionServer(
        ServeConfig(listen="127.0.0.1:0", data_dir=tmp_path / "d", index=False, window_step=2),
        extractor=ex,
        heads=heads,
    ).start()
    try:
        ch, stub = stub_for(srv)
        info = stub.GetInfo(pb.InfoRequest())
        assert {h.kind: list(h.class_names) for h in info.heads} == {
            "scene": ["cabinet", "chair", "table"],
            "activity": ["left", "right", "still"],
        }
        # video: windows of 8 frames, every 2 frames after the first
        ups = list(
            stub.StreamVideo(
                iter([pb.VideoFrame(image=image_pb(sample_image(48, 36, seed=i)), index=i) for i in range(12)])
            )
        )
        windows = [(u.frame_index, w) for u in ups for w in u.windows]
        assert [i for i, _ in windows] == [7, 9, 11]
        w = windows[0][1]
        assert (w.start_frame, w.end_frame, list(w.frame_indices)) == (0, 7, list(range(8)))
        assert sum(s.score for s in w.scores) == pytest.approx(1.0, abs=1e-4)
        assert [s.score for s in w.scores] == sorted((s.score for s in w.scores), reverse=True)
        # scene: per-frame labels and label maps, refined labels for every frame, labelled PLY
        depth = np.full((36, 48), 1200, "<u2").tobytes()

        def sf(i):
            f = pb.SceneFrame(
                color=image_pb(sample_image(48, 36, seed=i)),
                index=i,
                depth=pb.Depth(data=depth, width=48, height=36),
                intrinsics=pb.Intrinsics(fx=40, fy=40, cx=23.5, cy=17.5),
                pose=pb.Pose(matrix=np.eye(4).ravel().tolist()),
            )
            if i == 0:
                f.options.CopyFrom(pb.SceneOptions(scene_id="h", return_label_maps=True, return_ply=True))
            return f

        ups = list(stub.StreamScene(iter([sf(i) for i in range(3)])))
        per_frame = [u for u in ups if u.HasField("regions")]
        refined = [u.refined for u in ups if u.HasField("refined")]
        summary = ups[-1].summary
        assert len(per_frame) == 3 and [r.frame_index for r in refined] == [0, 1, 2]
        for u, r in zip(per_frame, refined):
            lm = np.asarray(Image.open(io.BytesIO(u.label_map_png)))
            assert lm.shape == (36, 48) and lm.dtype == np.uint8 and set(np.unique(lm)) <= {0, 3, 5, 7}
            assert all(reg.label in (3, 5, 7) and reg.label_name for reg in u.regions.regions)
            assert len(u.regions.regions[0].label_scores) == 3
            assert len(r.region_labels) == len(u.regions.regions) and r.label_map_png
        assert summary.fused_points > 0 and summary.label_names[5] == "chair"
        from regiond.geometry import read_ply

        (tmp_path / "h.ply").write_bytes(summary.ply)
        cloud = read_ply(tmp_path / "h.ply")
        assert len(cloud) == summary.fused_points and set(np.unique(cloud.labels)) <= {0, 3, 5, 7}
        ch.close()
    finally:
        srv.stop(1.0)


def test_serve_process_stops_on_sigterm(tmp_path):
    port = free_port()
    env = {**os.environ, "REGIOND_TOKEN": "tok"}
    p = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "regiond",
            "serve",
            "--listen",
            f"127.0.0.1:{port}",
            "--profile",
            "lite",
            "--data-dir",
            str(tmp_path / "d"),
            "--grace",
            "2",
            "--metrics-port",
            "0",
        ],
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        md = (("authorization", "Bearer tok"),)
        wait_serving(f"127.0.0.1:{port}", metadata=md)
        ch = grpc.insecure_channel(f"127.0.0.1:{port}")
        assert pb_grpc.RegionServiceStub(ch).GetInfo(pb.InfoRequest(), metadata=md).profile == "lite"
        ch.close()
        p.send_signal(signal.SIGTERM)
        assert p.wait(timeout=60) == 0
        err = p.stderr.read()
        assert "serving regions.v1.RegionService" in err and "SIGTERM" in err
        assert '"method": "GetInfo"' in err  # the access log line
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()


def test_the_ready_callback_runs_before_health_reports_serving(tmp_path):
    """`regiond serve` prints its ready line from on_serving: a client that sees SERVING and
    stops the daemon at once must find the line (CI once lost it to the main loop's poll)."""
    from regiond.service.server import RegionServer, ServeConfig

    server = RegionServer(
        ServeConfig(data_dir=tmp_path / "d", listen="127.0.0.1:0", index=False), extractor=lite_extractor()
    )
    seen = []

    def on_serving():
        with grpc.insecure_channel(server.address) as ch:
            seen.append(health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(), timeout=10).status)

    server.start(background=True, on_serving=on_serving)
    try:
        wait_serving(server.address)
        assert seen == [health_pb2.HealthCheckResponse.NOT_SERVING]
    finally:
        server.stop(grace=1.0)


def test_index_persisted_across_restart(tmp_path):
    from regiond.service.server import RegionServer, ServeConfig

    cfg = dict(listen="127.0.0.1:0", data_dir=tmp_path / "data")
    srv = RegionServer(ServeConfig(**cfg), extractor=lite_extractor()).start()
    if srv.search is None:
        srv.stop(0)
        pytest.fail("the daemon serves no region index by default")
    ch, stub = stub_for(srv)
    s = stub.IndexImages(
        iter([pb.IndexRequest(image_id=f"p{i}", image=image_pb(sample_image(64, 48, seed=i))) for i in range(2)])
    )
    assert s.indexed == 2
    ch.close()
    srv.stop(grace=1.0)
    again = RegionServer(ServeConfig(**cfg), extractor=lite_extractor()).start()
    try:
        ch, stub = stub_for(again)
        assert stub.GetInfo(pb.InfoRequest()).index_images == 2
        hits = stub.Search(pb.SearchRequest(region=pb.RegionRef(image_id="p0", region_id=0), top_k=1)).hits
        assert hits[0].image_id == "p0"
        ch.close()
    finally:
        again.stop(grace=1.0)


def test_message_size_limits(tmp_path):
    """A request over --max-message-mb is refused by gRPC itself; a fused cloud too large for one
    reply comes back thinned to a coarser voxel instead of failing the scene."""
    rng = np.random.default_rng(0)
    with running_server(lite_extractor(), tmp_path, max_message_mb=1) as srv:
        ch, stub = stub_for(srv, options=[("grpc.max_send_message_length", 8 << 20)])
        big = pb.Image(
            data=rng.integers(0, 255, 1_500_000, dtype=np.uint8).tobytes(),
            encoding=pb.Image.RGB8,
            width=1000,
            height=500,
        )
        with pytest.raises(grpc.RpcError) as e:
            stub.ExtractRegions(pb.ExtractRequest(image=big))
        assert e.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        flat = np.zeros((480, 640, 3), np.uint8)
        flat[:, 320:] = (200, 30, 30)  # compresses to almost nothing: the depth is what's big
        frames = [
            pb.SceneFrame(
                color=image_pb(flat),
                # scattered: ~one point per voxel, and the frames' points seldom share one
                depth=pb.Depth(data=rng.integers(800, 6000, (480, 640)).astype("<u2").tobytes(), width=640, height=480),
                intrinsics=pb.Intrinsics(fx=500, fy=500, cx=319.5, cy=239.5),
                pose=pb.Pose(matrix=np.eye(4).ravel().tolist()),
                options=pb.SceneOptions(return_ply=True, voxel_size=0.02) if i == 0 else None,
            )
            for i in range(4)
        ]
        ups = list(stub.StreamScene(iter(frames)))
        s = ups[-1].summary
        ch.close()
    assert s.fused_points > 60_000  # the cloud at the requested voxel
    assert 0 < len(s.ply) <= (1 << 20) * 3 // 4
    assert s.ply_voxel_size >= 0.04  # thinned to fit
