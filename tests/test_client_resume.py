"""scan_scene --resume after the client or the daemon was killed mid-scan (outputs equal to an
uninterrupted run's), the refusal of a used output folder, and --skip-bad-frames in the clients
and `regiond extract`."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from support_corrupt import sens_with_bad_frame
from support_service import run_client, wait_until

from regiond.commands.serve import spawn_daemon

SCRIPT = Path(__file__).resolve().parents[1] / "clients" / "scan_scene.py"
SCAN = ["synthetic:4", "--max-frames", "36", "--size", "160x120", "--overlays", "4"]
TIMING = {"seconds", "client_seconds", "frames_per_second", "attempts", "resumed_frames", "outputs"}


@pytest.fixture(scope="module")
def daemon(tmp_path_factory):
    """`regiond serve` (lite, bundled heads): a process the tests may kill; restarted by `again`."""
    d = tmp_path_factory.mktemp("daemon")
    procs = []

    def start():
        proc, address = spawn_daemon(
            [
                "--listen",
                "127.0.0.1:0",
                "--profile",
                "lite",
                "--heads",
                "bundled",
                "--data-dir",
                d / f"data{len(procs)}",
                "--grace",
                "1",
            ],
            d / f"log{len(procs)}",
        )
        procs.append(proc)
        return proc, address

    yield start
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
            p.wait(30)


def journal_frames(out: Path) -> int:
    try:
        return sum('"frame"' in line for line in (out / "scan-progress.jsonl").read_text().splitlines())
    except FileNotFoundError:
        return 0


def started_scan(address: str, out: Path, *extra) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, str(SCRIPT), *SCAN, "--server", address, "--out", str(out), *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def same_outputs(a: Path, b: Path) -> None:
    for d in ("labels", "labels_color", "overlays"):
        names = sorted(p.name for p in (a / d).iterdir())
        assert names == sorted(p.name for p in (b / d).iterdir()) and names, d
        for n in names:
            assert (a / d / n).read_bytes() == (b / d / n).read_bytes(), f"{d}/{n}"
    assert (a / "scene.ply").read_bytes() == (b / "scene.ply").read_bytes()
    sa, sb = (json.loads((x / "summary.json").read_text()) for x in (a, b))
    assert {k: v for k, v in sa.items() if k not in TIMING} == {k: v for k, v in sb.items() if k not in TIMING}


def test_resume_after_the_client_or_the_daemon_was_killed(daemon, tmp_path):
    proc, address = daemon()
    whole = tmp_path / "whole"
    p = run_client("scan_scene", *SCAN, "--server", address, "--out", whole)
    assert p.returncode == 0, p.stderr
    summary = json.loads((whole / "summary.json").read_text())
    assert summary["resumed_frames"] == 0
    assert summary["client_nice"] == 10  # beside a daemon on this machine: its threads at background priority

    # the client killed mid-scan
    cut = tmp_path / "client-killed"
    scan = started_scan(address, cut)
    assert wait_until(lambda: journal_frames(cut) >= 8, timeout=120, step=0.01)
    scan.kill()
    scan.wait()
    done_before = journal_frames(cut)
    assert 8 <= done_before < 36 and not (cut / "summary.json").exists()
    refused = run_client("scan_scene", *SCAN, "--server", address, "--out", cut)
    assert refused.returncode == 1 and "--resume" in refused.stderr and "--force" in refused.stderr
    again = run_client("scan_scene", *SCAN, "--server", address, "--out", cut, "--resume")
    assert again.returncode == 0, again.stderr
    assert f"the outputs of {done_before} frames are written" in again.stderr
    same_outputs(whole, cut)
    assert json.loads((cut / "summary.json").read_text())["resumed_frames"] == done_before
    rerun = run_client("scan_scene", *SCAN, "--server", address, "--out", cut, "--resume")
    assert rerun.returncode == 0 and "complete" in rerun.stdout

    # the daemon killed mid-scan: the client gives up (exit 2); resumed against a new daemon
    cut = tmp_path / "daemon-killed"
    scan = started_scan(address, cut, "--retry-for", "1")
    assert wait_until(lambda: journal_frames(cut) >= 8, timeout=120, step=0.01)
    proc.kill()
    proc.wait()
    assert scan.wait(60) == 2
    _, address = daemon()
    again = run_client("scan_scene", *SCAN, "--server", address, "--out", cut, "--resume")
    assert again.returncode == 0, again.stderr
    same_outputs(whole, cut)
    other = run_client("scan_scene", *SCAN[:-1], "2", "--server", address, "--out", cut, "--resume")
    assert other.returncode == 1 and "other settings (overlays)" in other.stderr
    forced = run_client(
        "scan_scene",
        "synthetic:4",
        "--max-frames",
        "2",
        "--size",
        "80x60",
        "--server",
        address,
        "--out",
        cut,
        "--force",
    )  # another scan into the same folder: its outputs replaced
    assert forced.returncode == 0 and json.loads((cut / "summary.json").read_text())["frames"] == 2
    assert len(list((cut / "labels").iterdir())) == 2


def test_skip_bad_frames_in_the_clients_and_extract(daemon, tmp_path):
    _, address = daemon()
    sens = sens_with_bad_frame(tmp_path / "bad.sens", "depth", frames=4, bad=1)
    strict = run_client("scan_scene", sens, "--server", address, "--out", tmp_path / "strict")
    assert strict.returncode == 1 and "frame 1" in strict.stderr and "decompress" in strict.stderr
    out = tmp_path / "skip"
    p = run_client("scan_scene", sens, "--server", address, "--out", out, "--skip-bad-frames")
    assert p.returncode == 0, p.stderr
    assert "frame 1 skipped" in p.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert [s["frame"] for s in summary["skipped_frames"]] == [1] and summary["frames"] == 3
    v = run_client("stream_video", sens, "--server", address, "--fast", "--skip-bad-frames")
    assert v.returncode == 0 and "3 frames (0 rejected, 1 skipped" in v.stdout and "frame 1 skipped" in v.stderr
    strict = run_client("stream_video", sens, "--server", address, "--fast")
    assert strict.returncode != 0 and "frame 1" in strict.stderr
    cache = tmp_path / "cache"
    e = subprocess.run(
        [
            sys.executable,
            "-m",
            "regiond",
            "extract",
            str(sens),
            "--out",
            str(cache),
            "--profile",
            "lite",
            "--skip-bad-frames",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert e.returncode == 0, e.stderr
    assert "frame 1 skipped" in e.stderr
    item = json.loads((cache / "manifest.json").read_text())["items"][0]
    assert len(item["frames"]) == 3 and [s["frame"] for s in item["meta"]["skipped_frames"]] == [1]
