"""The clients end to end against a real lite daemon: a synthetic scene scan, a video stream,
an unreachable daemon, and a daemon restarting mid-stream."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from support_service import free_port, lite_extractor, run_client, running_server, wait_until, write_video

REPO = Path(__file__).resolve().parents[1]


def test_scan_scene_synthetic(tmp_path):
    from regiond.client import scan_scene
    from regiond.geometry import read_ply

    with running_server(lite_extractor(), tmp_path) as srv:
        out = tmp_path / "scan"
        rc = scan_scene.main(
            [
                "synthetic:2",
                "--server",
                srv.address,
                "--out",
                str(out),
                "--max-frames",
                "3",
                "--size",
                "160x120",
                "--every",
                "2",
            ]
        )
    assert rc == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["frames"] == 3 and summary["frames_failed"] == 0
    assert int(summary["fused_points"]) > 0 and summary["source"]["kind"] == "synthetic"
    assert sorted(p.name for p in (out / "overlays").iterdir()) == ["000000.jpg", "000002.jpg", "000004.jpg"]
    cloud = read_ply(out / "scene.ply")
    assert len(cloud) == int(summary["fused_points"])
    from PIL import Image

    assert Image.open(out / "overlays" / "000002.jpg").size == (160, 120)


def test_stream_video_file(tmp_path):
    video = write_video(tmp_path / "clip.avi")
    with running_server(lite_extractor(), tmp_path) as srv:
        p = run_client("stream_video", video, "--server", srv.address, "--fast", "--jsonl", tmp_path / "out.jsonl")
    assert p.returncode == 0, p.stderr
    assert "12 frames (0 rejected)" in p.stdout
    recs = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert [r["frame"] for r in recs] == list(range(12)) and all(r["regions"] > 0 for r in recs)


@pytest.mark.parametrize("client", ["scan_scene", "stream_video"])
def test_unreachable_daemon_exits_nonzero(client, tmp_path):
    args = ["synthetic:1"] if client == "scan_scene" else [write_video(tmp_path / "v.avi")]
    port = free_port()
    t0 = time.monotonic()
    p = run_client(client, *args, "--server", f"127.0.0.1:{port}", "--connect-timeout", "1")
    assert p.returncode == 2
    assert f"cannot reach regiond at 127.0.0.1:{port}" in p.stderr
    assert time.monotonic() - t0 < 60


def test_bad_scene_argument_exits_1(tmp_path):
    p = run_client("scan_scene", tmp_path / "no-such.sens", "--server", "127.0.0.1:1")
    assert p.returncode == 1 and "no-such.sens" in p.stderr and "cannot reach" not in p.stderr


def test_stream_video_survives_daemon_restart(tmp_path):
    from regiond.service.server import RegionServer, ServeConfig

    video = write_video(tmp_path / "clip.avi", frames=40, fps=10.0)  # paced: 4 s of video
    port = free_port()
    cfg = dict(listen=f"127.0.0.1:{port}", data_dir=tmp_path / "d", index=False)
    first = RegionServer(ServeConfig(**cfg), extractor=lite_extractor()).start()
    proc = subprocess.Popen(
        [
            sys.executable,
            str(REPO / "clients" / "stream_video.py"),
            str(video),
            "--server",
            f"127.0.0.1:{port}",
            "--jsonl",
            str(tmp_path / "o.jsonl"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    second = None
    try:
        frames = first.metrics.frames.labels("StreamVideo")
        assert wait_until(lambda: frames._value.get() >= 5, 120), "the client never streamed"
        first.stop(grace=0)  # the daemon goes away mid-stream ...
        time.sleep(1.0)
        second = RegionServer(ServeConfig(**cfg), extractor=lite_extractor()).start()  # ... and comes back
        out, err = proc.communicate(timeout=240)
    finally:
        if proc.poll() is None:
            proc.kill()
        if second is not None:
            second.stop(grace=0)
    assert proc.returncode == 0, err
    assert "reconnected" in err
    answered = {json.loads(line)["frame"] for line in (tmp_path / "o.jsonl").read_text().splitlines()}
    assert answered == set(range(40))  # every frame answered exactly once overall
    assert "40 frames" in out


def test_scan_scene_with_heads_writes_labels_and_miou(tmp_path, capsys):
    from support_service import tiny_heads

    from regiond import scenes
    from regiond.client import scan_scene
    from regiond.client.messages import scene_frame_pb
    from regiond.core.confusion import EvalProtocol
    from regiond.core.label_spaces import read_label_png
    from regiond.heads.serving import load_serving_heads
    from regiond.service.convert import Limits, scene_frame
    from regiond.service.server import RegionServer, ServeConfig

    ex = lite_extractor()
    tiny_heads(tmp_path / "heads", ex)
    srv = RegionServer(
        ServeConfig(listen="127.0.0.1:0", data_dir=tmp_path / "d", index=False),
        extractor=ex,
        heads=load_serving_heads(tmp_path / "heads", ex),
    ).start()
    try:
        out = tmp_path / "scan"
        rc = scan_scene.main(
            [
                "synthetic:4",
                "--server",
                srv.address,
                "--out",
                str(out),
                "--max-frames",
                "2",
                "--size",
                "160x120",
                "--overlays",
                "none",
                "--encoding",
                "png",
            ]
        )
    finally:
        srv.stop(1.0)
    assert rc == 0
    labels = sorted(p.name for p in (out / "labels").iterdir())
    assert labels == ["synthetic-4_000000.png", "synthetic-4_000001.png"]  # ScanNet benchmark naming
    summary = json.loads((out / "summary.json").read_text())
    assert summary["label_names"][5] == "chair"
    assert "mIoU" in capsys.readouterr().out

    # The files hold the scene head's refined labels of those frames: the same heads run here,
    # in-process, on the frames as they travelled (PNG colour, millimetre depth).
    frames = list(scenes.open_source("synthetic:4", max_frames=2, size=(160, 120)))
    labeler = load_serving_heads(tmp_path / "heads", ex).scene
    state = labeler.new_scene()
    for f in frames:
        sent = scene_frame(scene_frame_pb(f, "png"), Limits(), f.index)
        labeler.label_frame(state, sent, ex.extract(sent))
    written = {}
    for fl in labeler.refine(state):
        written[fl.frame_index] = read_label_png(out / "labels" / f"synthetic-4_{fl.frame_index:06d}.png")
        np.testing.assert_array_equal(written[fl.frame_index], fl.label_map)
    assert set(np.unique(list(written.values()))) <= {0, 3, 5, 7}  # unlabelled and the head's NYU40 ids

    # ... and the mIoU is theirs against the room's ground truth (ScanNet-20 at 640×480), scored
    # here from the files
    proto = EvalProtocol.scannet20()
    conf = proto.confusion()
    for f in frames:
        proto.add(conf, f.labels, written[f.index])
    want = conf.scores()
    assert want["classes_present"] > 0
    assert summary["miou"]["frames"] == 2 and summary["miou"]["classes_present"] == want["classes_present"]
    assert summary["miou"]["miou"] == pytest.approx(want["miou"], abs=1e-9)
    assert summary["miou"]["iou"] == want["iou"]


def test_scan_scene_rescans_after_daemon_restart(tmp_path):
    import threading

    from regiond.client import scan_scene
    from regiond.service.server import RegionServer, ServeConfig

    port = free_port()
    cfg = dict(listen=f"127.0.0.1:{port}", data_dir=tmp_path / "d", index=False)
    first = RegionServer(ServeConfig(**cfg), extractor=lite_extractor()).start()
    out = tmp_path / "scan"
    result = {}
    t = threading.Thread(
        target=lambda: result.setdefault(
            "rc",
            scan_scene.main(
                [
                    "synthetic:5",
                    "--server",
                    f"127.0.0.1:{port}",
                    "--out",
                    str(out),
                    "--max-frames",
                    "10",
                    "--size",
                    "160x120",
                    "--overlays",
                    "none",
                ]
            ),
        )
    )
    t.start()
    second = None
    try:
        frames = first.metrics.frames.labels("StreamScene")
        assert wait_until(lambda: frames._value.get() >= 2, 120)
        first.stop(grace=0)
        second = RegionServer(ServeConfig(**cfg), extractor=lite_extractor()).start()
        t.join(300)
    finally:
        first.stop(grace=0)
        if second is not None:
            second.stop(grace=0)
    assert result.get("rc") == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["attempts"] == 2
    assert summary["frames"] == 10 and int(summary["fused_points"]) > 0  # the whole scene, rescanned


def test_client_over_tls_with_token(tmp_path):
    from support_service import self_signed_cert

    key, cert = self_signed_cert(tmp_path)
    video = write_video(tmp_path / "clip.avi", frames=4)
    with running_server(lite_extractor(), tmp_path, tls_cert=cert, tls_key=key, token="tok") as srv:
        base = [video, "--server", srv.address, "--fast", "--connect-timeout", "20"]
        no_token = run_client(
            "stream_video", *base, "--tls-ca", cert, env={k: v for k, v in os.environ.items() if k != "REGIOND_TOKEN"}
        )
        ok = run_client("stream_video", *base, "--tls-ca", cert, env={**os.environ, "REGIOND_TOKEN": "tok"})
    assert no_token.returncode == 2 and "UNAUTHENTICATED" in no_token.stderr and "--token" in no_token.stderr
    assert ok.returncode == 0, ok.stderr
    assert "4 frames (0 rejected)" in ok.stdout
