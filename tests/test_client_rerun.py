"""Rerun recordings of scans and streams (--rerun), read back with Rerun's own reader and CLI:
the entities exist, with the expected counts and classes."""

from __future__ import annotations

import json
import re
import subprocess
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
from support_service import write_video

REPO = Path(__file__).resolve().parents[1]
RERUN_CLI = Path(__import__("sys").executable).parent / "rerun"


def read_recording(path: Path) -> dict[str, list]:
    """entity path → its chunks' record batches (Rerun's own RRD reader)."""
    from rerun.chunk import RrdReader

    chunks = defaultdict(list)
    for c in RrdReader(path).stream():
        chunks[c.entity_path].append(c.to_record_batch())
    return chunks


def column(batches: list, name: str) -> list:
    """The rows of one component column over an entity's chunks (in frame order when timed);
    each row is the list of the component's instances logged at once."""
    rows = []
    for b in batches:
        if name in b.schema.names:
            frames = b.column("frame").to_pylist() if "frame" in b.schema.names else [None] * b.num_rows
            rows += [(f, v) for f, v in zip(frames, b.column(name).to_pylist()) if v is not None]
    return [v for _, v in sorted(rows, key=lambda fv: -1 if fv[0] is None else fv[0])]


def frames_of(batches: list, name: str) -> list[int]:
    out = []
    for b in batches:
        if name in b.schema.names:
            out += [f for f, v in zip(b.column("frame").to_pylist(), b.column(name).to_pylist()) if v is not None]
    return sorted(out)


def test_scan_recording_holds_cameras_images_regions_labels_points_and_the_cloud(labelling_daemon, tmp_path, capsys):
    from regiond.client import scan_scene

    out, rrd = tmp_path / "scan", tmp_path / "scan.rrd"
    rc = scan_scene.main(
        [
            "synthetic:4",
            "--server",
            labelling_daemon.address,
            "--out",
            str(out),
            "--max-frames",
            "4",
            "--every",
            "5",
            "--size",
            "160x120",
            "--rerun",
            str(rrd),
        ]
    )
    assert rc == 0
    assert f"open it with `rerun {rrd}`" in capsys.readouterr().out
    summary = json.loads((out / "summary.json").read_text())
    rec = read_recording(rrd)
    frames = [0, 5, 10, 15]
    for entity, col in [
        ("/world/camera", "Transform3D:translation"),
        ("/world/camera/image", "Pinhole:image_from_camera"),
        ("/world/camera/image/rgb", "EncodedImage:blob"),
        ("/world/camera/image/depth", "EncodedDepthImage:blob"),
        ("/world/camera/image/regions", "SegmentationImage:buffer"),
        ("/world/points", "Points3D:positions"),
    ]:
        assert frames_of(rec[entity], col) == frames, entity
    # classes: NYU40 names and ScanNet colours, for labels and points
    context = column(rec["/world"], "AnnotationContext:context")[0][0]
    infos = {c["class_id"]: c["class_description"]["info"] for c in context}
    assert len(infos) == 41 and infos[1]["label"] == "wall" and infos[7]["label"] == "table"
    assert infos[1]["color"] == (174 << 24) | (199 << 16) | (232 << 8) | 255  # ScanNet's wall, RGBA
    # labels: each frame's, then the scene head's refined ones at the same frames; only the head's classes
    assert sorted(set(frames_of(rec["/world/camera/image/labels"], "SegmentationImage:buffer"))) == frames
    label_ids = set()
    for buf in column(rec["/world/camera/image/labels"], "SegmentationImage:buffer"):
        label_ids |= set(buf[0])
    assert label_ids and label_ids <= {0, 3, 5, 7}
    # one annotation per region, per frame
    regions = [r[0] for r in column(rec["/world/camera/image/regions"], "AnnotationContext:context")]
    assert len(regions) == 4 and all(len(r) > 5 for r in regions)
    first = regions[0][0]["class_description"]["info"]
    assert first["id"] == 1 and re.fullmatch(r"region 0 \(SLIC\): (cabinet|chair|table)", first["label"])
    buf = column(rec["/world/camera/image/regions"], "SegmentationImage:buffer")[0][0]
    region_ids = set(np.frombuffer(bytes(buf), np.uint16).tolist())  # 16-bit ids, 160×120
    assert len(buf) == 2 * 160 * 120 and region_ids == {c["class_id"] for c in regions[0]}  # each drawn one annotated
    # back-projected points carry their pixel's class; the fused cloud is all of the daemon's points
    points = column(rec["/world/points"], "Points3D:positions")
    assert all(1000 < len(p) <= 5000 for p in points)
    assert set(np.concatenate(column(rec["/world/points"], "Points3D:class_ids")).tolist()) <= {0, 3, 5, 7}
    assert set(column(rec["/world/camera/image/rgb"], "EncodedImage:media_type")[0]) == {"image/jpeg"}
    cloud = column(rec["/world/scene"], "Points3D:positions")
    assert len(cloud) == 1 and len(cloud[0]) == summary["fused_points"] > 0  # a number in JSON
    assert set(column(rec["/world/scene"], "Points3D:class_ids")[0]) <= {0, 3, 5, 7}
    assert len(column(rec["/world/trajectory"], "LineStrips3D:strips")[0][0]) == 4
    # Rerun's own CLI loads it
    verify = subprocess.run([str(RERUN_CLI), "rrd", "verify", str(rrd)], capture_output=True, text=True, timeout=120)
    assert verify.returncode == 0, verify.stderr


def test_video_recording_holds_frames_regions_and_activity_scores(labelling_daemon, tmp_path):
    from regiond.client import stream_video

    video, rrd, jsonl = write_video(tmp_path / "clip.mp4", frames=24), tmp_path / "clip.rrd", tmp_path / "w.jsonl"
    rc = stream_video.main(
        [
            str(video),
            "--server",
            labelling_daemon.address,
            "--fast",
            "--window-step",
            "4",
            "--jsonl",
            str(jsonl),
            "--rerun",
            str(rrd),
        ]
    )
    assert rc == 0
    windows = [json.loads(line) for line in jsonl.read_text().splitlines() if '"window"' in line]
    assert windows
    rec = read_recording(rrd)
    assert frames_of(rec["/video/rgb"], "EncodedImage:blob") == list(range(24))
    assert frames_of(rec["/video/rgb/regions"], "SegmentationImage:buffer") == list(range(24))
    series = {e for e in rec if e.startswith("/activity/")}
    assert series == {"/activity/left", "/activity/right", "/activity/still"}
    for name in ("left", "right", "still"):
        ends = frames_of(rec[f"/activity/{name}"], "Scalars:scalars")
        assert ends == sorted(w["window"][1] for w in windows)
        scores = [v[0] for v in column(rec[f"/activity/{name}"], "Scalars:scalars")]
        assert scores == pytest.approx(
            [w["scores"][name] for w in sorted(windows, key=lambda w: w["window"][1])], abs=1e-4
        )
        assert column(rec[f"/activity/{name}"], "SeriesLines:names") == [[name]]


def test_rerun_analytics_are_off_in_the_tests():
    import os

    cfg = Path(os.environ["XDG_CONFIG_HOME"]) / "rerun" / "analytics.json"
    assert json.loads(cfg.read_text())["analytics_enabled"] is False
    p = subprocess.run([str(RERUN_CLI), "analytics", "config"], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0 and json.loads(p.stdout[p.stdout.index("{") :])["analytics_enabled"] is False


def test_overlapping_regions_draw_the_smaller_on_top_and_the_viewer_gets_a_layout(tmp_path):
    from rerun.chunk import RrdReader

    from regiond.client.recording import VideoRecording
    from regiond.core.regionset import RegionSet

    big, small = np.zeros((20, 30), bool), np.zeros((20, 30), bool)
    big[2:18, 2:28], small[5:10, 5:10] = True, True
    rs = RegionSet.from_masks(np.stack([small, big]))  # the small one first: drawing order is by area, not index
    rec = VideoRecording(tmp_path / "r.rrd", None)
    rec.submit(rec.log_regions, "video/rgb/regions", rs, 0)
    rec.close()
    buf = column(read_recording(tmp_path / "r.rrd")["/video/rgb/regions"], "SegmentationImage:buffer")[0][0]
    ids = np.frombuffer(bytes(buf), np.uint16).reshape(20, 30)
    assert (ids[small] == 1).all() and (ids[big & ~small] == 2).all() and (ids[~big] == 0).all()
    assert len(RrdReader(tmp_path / "r.rrd").blueprints()) == 1


def test_a_recording_that_cannot_be_written_stops_the_scan(labelling_daemon, tmp_path, capsys):
    from regiond.client import scan_scene

    (tmp_path / "blocked").write_text("a file where the recording's folder goes")
    rc = scan_scene.main(
        [
            "synthetic:4",
            "--server",
            labelling_daemon.address,
            "--out",
            str(tmp_path / "scan"),
            "--max-frames",
            "3",
            "--size",
            "160x120",
            "--rerun",
            str(tmp_path / "blocked" / "s.rrd"),
        ]
    )
    assert rc == 1
    err = capsys.readouterr().err
    assert "cannot write the outputs" in err and "blocked" in err and "Traceback" not in err


def test_a_rescan_after_a_reconnect_keeps_one_camera_path(tmp_path):
    """scan_scene scans again from the first frame after a daemon restart: the frames are logged
    again at the same times, and the camera path still has one point per frame."""
    from regiond import scenes
    from regiond.client.recording import ScanRecording
    from regiond.core.regionset import SOURCE_SLIC, RegionSet

    frames = list(scenes.open_source("synthetic:4", max_frames=3, size=(64, 48)))
    rs = RegionSet.from_masks(np.ones((1, 48, 64), bool), source=np.array([SOURCE_SLIC], np.uint8))
    rec = ScanRecording(tmp_path / "s.rrd", None)
    for f in frames[:2] + frames:  # two frames, the restart, all three
        rec.frame(f, rs, b"")
    rec.cloud(None, [])
    rec.close()
    got = read_recording(tmp_path / "s.rrd")
    path = column(got["/world/trajectory"], "LineStrips3D:strips")[0][0]
    assert np.allclose(path, [f.pose[:3, 3] for f in frames], atol=1e-5)
    assert frames_of(got["/world/camera"], "Transform3D:translation") == [0, 0, 1, 1, 2]


@pytest.mark.filterwarnings("ignore:RRD file has no footer")  # `rerun --save` writes none; the reader scans it
def test_rerun_connect_streams_to_a_running_viewer(labelling_daemon, tmp_path):
    """--rerun-connect ADDR sends the recording over gRPC to a running Rerun (here `rerun --save`,
    which writes what it receives), as to a viewer started with `rerun`."""
    import signal
    import socket
    import time

    from support_service import free_port, interruptible, wait_until

    from regiond.client import stream_video

    def listening() -> bool:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return True
        except OSError:
            return False

    port, saved = free_port(), tmp_path / "live.rrd"
    viewer = subprocess.Popen(
        [str(RERUN_CLI), "--bind", "127.0.0.1", "--port", str(port), "--save", str(saved)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        preexec_fn=interruptible,
    )
    try:
        # up and listening before anything is sent, so that it also stops on Ctrl-C (a viewer
        # still starting on a busy machine did not, once)
        assert wait_until(listening, 120, 0.2), "rerun --save never listened"
        video = write_video(tmp_path / "clip.mp4", frames=12)
        assert (
            stream_video.main(
                [
                    str(video),
                    "--server",
                    labelling_daemon.address,
                    "--fast",
                    "--rerun-connect",
                    f"rerun+http://127.0.0.1:{port}/proxy",
                ]
            )
            == 0
        )
        time.sleep(1.0)
    finally:
        viewer.send_signal(signal.SIGINT)
        viewer.wait(timeout=30)
    rec = read_recording(saved)
    assert frames_of(rec["/video/rgb"], "EncodedImage:blob") == list(range(12))
    assert {e for e in rec if e.startswith("/activity/")} == {"/activity/left", "/activity/right", "/activity/still"}
