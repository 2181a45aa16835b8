"""clients/stream_video.py in live mode against a real daemon: the newest frame wins, and every
frame of the source is accounted for (answered, dropped by the client or skipped by the daemon)."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

from support_service import lite_extractor, running_server, wait_until, write_video

REPO = Path(__file__).resolve().parents[1]


def _records(path: Path) -> tuple[list[dict], list[dict]]:
    recs = [json.loads(line) for line in path.read_text().splitlines()]
    return [r for r in recs if "frame" in r], [r for r in recs if "window" in r]


def test_live_file_drops_what_would_wait_and_accounts_for_every_frame(tmp_path):
    video = write_video(tmp_path / "clip.avi", frames=60, fps=100.0)  # 0.6 s, far faster than a held daemon
    out = tmp_path / "out.jsonl"
    with running_server(lite_extractor(), tmp_path) as srv:
        gate = threading.Event()
        srv.scheduler.submit_call(lambda: gate.wait(60), lambda: True)  # the one worker is busy
        proc = subprocess.Popen(
            [
                sys.executable,
                str(REPO / "clients" / "stream_video.py"),
                str(video),
                "--live",
                "--server",
                srv.address,
                "--jsonl",
                str(out),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            # the client keeps workers + 1 = 2 frames in flight: the second overtakes the first in the queue
            skipped = srv.metrics.frames_skipped.labels("StreamVideo")
            assert wait_until(lambda: skipped._value.get() >= 1, 60), "no frame was overtaken"
            time.sleep(0.8)  # the rest of the clip plays while the daemon is busy
        finally:
            gate.set()
        stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 0, stderr
    frames, _ = _records(out)
    answered = [r["frame"] for r in frames]
    skipped = [i for r in frames for i in r["skipped"]]
    dropped = [i for r in frames for i in r["dropped"]]
    assert answered == sorted(answered) and skipped and dropped
    everything = answered + skipped + dropped
    assert sorted(everything) == list(range(60))  # each frame exactly once
    assert answered[-1] == 59  # the newest frame of the source was processed
    line = next(x for x in stdout.splitlines() if "live:" in x)
    assert f"{60 - len(answered)} of 60 frames dropped" in line and f"{len(skipped)} skipped by the daemon" in line


def test_live_options_that_contradict_exit_1(tmp_path):
    video = write_video(tmp_path / "clip.avi", frames=3)
    for args in (["--live", "--fast"], ["--window-seconds", "2"], ["--no-live", "--in-flight", "3"]):
        p = subprocess.run(
            [sys.executable, str(REPO / "clients" / "stream_video.py"), str(video), *args, "--server", "127.0.0.1:1"],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert p.returncode == 1 and "live" in p.stderr and "cannot reach" not in p.stderr, (args, p.stderr)
