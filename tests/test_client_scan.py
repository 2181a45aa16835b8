"""scan_scene's outputs through a real lite daemon: which frames get pictures (--overlays),
outputs that cannot be written, Ctrl-C mid-scan."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from support_service import interruptible, lite_extractor, run_client, running_server, wait_until

from regiond.client.scan_outputs import AUTO_OVERLAYS, overlay_step, parse_overlays

REPO = Path(__file__).resolve().parents[1]


def test_overlays_every_k_frames_with_their_colour_labels(labelling_daemon, tmp_path):
    from regiond.client import scan_scene

    out = tmp_path / "scan"
    rc = scan_scene.main(
        [
            "synthetic:4",
            "--server",
            labelling_daemon.address,
            "--out",
            str(out),
            "--max-frames",
            "5",
            "--size",
            "160x120",
            "--overlays",
            "2",
        ]
    )
    assert rc == 0
    names = lambda d: sorted(p.name for p in (out / d).iterdir())  # noqa: E731
    assert names("overlays") == ["000000.jpg", "000002.jpg", "000004.jpg"]
    assert names("labels_color") == ["000000.png", "000002.png", "000004.png"]  # label pictures: PNG
    assert names("labels") == [f"synthetic-4_{i:06d}.png" for i in range(5)]  # every frame: the benchmark's
    outputs = json.loads((out / "summary.json").read_text())["outputs"]
    assert outputs["overlay_step"] == 2 and outputs["overlay_frames"] == 3


def test_overlays_none_writes_labels_only(labelling_daemon, tmp_path):
    from regiond.client import scan_scene

    out = tmp_path / "scan"
    assert (
        scan_scene.main(
            [
                "synthetic:4",
                "--server",
                labelling_daemon.address,
                "--out",
                str(out),
                "--max-frames",
                "2",
                "--size",
                "160x120",
                "--overlays",
                "none",
            ]
        )
        == 0
    )
    assert not (out / "overlays").exists() and not (out / "labels_color").exists()
    assert len(list((out / "labels").iterdir())) == 2


def test_overlay_choices():
    assert [parse_overlays(s) for s in ("auto", "none", "all", "7", "every 3")] == [None, 0, 1, 7, 3]
    for bad in ("0", "-2", "some"):
        with pytest.raises(ValueError, match="--overlays"):
            parse_overlays(bad)
    assert AUTO_OVERLAYS == 100 and overlay_step(None, 8) == 1 and overlay_step(None, AUTO_OVERLAYS) == 1
    assert overlay_step(None, AUTO_OVERLAYS + 1) == 2 and overlay_step(None, 300) == 3
    assert overlay_step(None, 1500) == 15 and overlay_step(None, 5000) == 50
    assert overlay_step(None, None) == 10 and overlay_step(0, 5000) == 0 and overlay_step(4, 10) == 4
    p = run_client("scan_scene", "synthetic:1", "--overlays", "0", timeout=60)
    assert p.returncode == 2 and "--overlays '0'" in p.stderr


def test_refined_labels_replace_per_frame_ones_and_unrefined_ones_count_at_the_end(tmp_path):
    """Without the daemon: per-frame label maps are written at once, coloured and scored when
    refined ones replace them, or at finish() for frames that never get refined ones."""
    import io

    from PIL import Image

    from regiond.client.scan_outputs import ScanOutputs
    from regiond.client.writer import BackgroundWriter
    from regiond.core.viz import colorize_labels

    def png(a):
        buf = io.BytesIO()
        Image.fromarray(a.astype(np.uint8), mode="L").save(buf, format="PNG")
        return buf.getvalue()

    truth = np.zeros((480, 640), np.uint8)
    truth[:, 320:] = 2  # wall | floor (NYU40 1 | 2)
    truth[:, :320] = 1
    wrong, right = np.full_like(truth, 2), truth.copy()
    with BackgroundWriter(2) as writer:
        out = ScanOutputs(tmp_path, "s", 1, writer)
        for idx in (0, 1):
            out.pictured.add(idx)
            out.frame(idx, None, None, png(wrong), truth)
        out.refined(0, png(right))  # frame 1 is never refined
        out.finish()
    assert (tmp_path / "labels" / "s_000000.png").read_bytes() == png(right)
    assert (tmp_path / "labels" / "s_000001.png").read_bytes() == png(wrong)
    with Image.open(tmp_path / "labels_color" / "000001.png") as im:
        assert np.array_equal(np.asarray(im.convert("RGB"))[:480], colorize_labels(wrong))  # legend below
    r = out.scores.result()
    assert (
        r["frames"] == 2
        and r["iou"]["wall"] == pytest.approx(0.5)
        and r["iou"]["floor"] == pytest.approx(2 / 3, abs=1e-4)
    )


def test_outputs_that_cannot_be_written_stop_the_scan(tmp_path, capsys):
    from regiond.client import scan_scene

    out = tmp_path / "scan"
    out.mkdir()
    (out / "overlays").write_text("a file where the overlays folder goes")
    with running_server(lite_extractor(), tmp_path) as srv:
        rc = scan_scene.main(
            [
                "synthetic:2",
                "--server",
                srv.address,
                "--out",
                str(out),
                "--max-frames",
                "30",
                "--resume",
                "--size",
                "160x120",
            ]
        )
    assert rc == 1
    err = capsys.readouterr().err
    assert f"cannot write the outputs in {out}" in err and "overlays" in err
    assert not (out / "summary.json").exists()


def test_ctrl_c_mid_scan_stops_cleanly(tmp_path):
    out = tmp_path / "scan"
    # a scan that lasts, whatever the machine's speed (a generated room has 50 frames): 2,000
    # frames of 160×120, 8 rendered and the rest hard links to them
    from regiond.scenes.synthetic import SyntheticScene, write_scene_folder

    scene = write_scene_folder(SyntheticScene(3, 8, 160, 120), tmp_path / "scene", repeat_to=2000)
    with running_server(lite_extractor(), tmp_path) as srv:
        proc = subprocess.Popen(
            [
                sys.executable,
                str(REPO / "clients" / "scan_scene.py"),
                str(scene),
                "--server",
                srv.address,
                "--out",
                str(out),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            preexec_fn=interruptible,
        )
        try:
            assert wait_until(lambda: (out / "overlays").is_dir() and any((out / "overlays").iterdir()), 180)
            proc.send_signal(signal.SIGINT)
            t0 = time.monotonic()
            _, err = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
    assert proc.returncode == 130, err
    assert "scan_scene: error: interrupted" in err and "Traceback" not in err
    assert time.monotonic() - t0 < 60
    assert not (out / "summary.json").exists()
