"""clients/stream_video.py in live mode against a real daemon: the newest frame wins, and every
frame of the source is accounted for (answered, dropped by the client or skipped by the daemon)."""

from __future__ import annotations

import json
import queue
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


class _Sender:
    """A LiveFeed over an endless source (a new frame every few ms), its frames taken on a
    thread as a gRPC request iterator takes them: (instant taken, frame) in `sent`."""

    def __init__(self, in_flight: int = 2):
        import numpy as np

        from regiond.client.live import LatestFrame, LiveFeed
        from regiond.core.frames import Frame

        self.stop = threading.Event()
        rgb = np.zeros((4, 4, 3), np.uint8)

        def source():
            i = 0
            while not self.stop.is_set():
                yield Frame(rgb=rgb, index=i)
                i += 1
                time.sleep(0.005)

        self.feed = LiveFeed(LatestFrame(source(), pace=False), in_flight)
        self.sent: queue.Queue = queue.Queue()
        self._thread = threading.Thread(target=self._take, daemon=True)
        self._thread.start()

    def _take(self) -> None:
        for f in self.feed.frames(self.stop):
            self.sent.put((time.perf_counter(), f))

    def next(self):
        return self.sent.get(timeout=30)

    def close(self) -> None:
        self.stop.set()
        self._thread.join(10)
        self.feed.latest.close()


def test_live_feed_measures_its_reply_interval_when_each_reply_leaves_nothing_in_flight():
    # the pattern of a daemon shared by other streams: our second frame overtakes the first,
    # still queued, so every reply leaves nothing of ours in flight
    s = _Sender()
    try:
        for _ in range(2):
            (_, a), (_, b) = s.next(), s.next()
            s.feed.answered(b.index, skipped=[a.index], queue_seconds=0.2, server_seconds=0.25)
        # a measured interval: the last slot's frame is sent just in time from now on, not at
        # once to overtake the frame in front of it (two frames sent for every one processed)
        assert s.feed.interval is not None and s.feed.interval > 0
        assert abs(s.feed.processing - 0.05) < 1e-9  # the reply's time in the daemon less its queueing
    finally:
        s.close()


def test_live_feed_sends_the_last_slot_once_the_frame_ahead_starts_and_at_once_when_it_is_answered():
    s = _Sender()
    try:
        (_, a), (_, b) = s.next(), s.next()
        s.feed.answered(b.index, skipped=[a.index], queue_seconds=0.0, server_seconds=0.05)
        (_, c), (_, d) = s.next(), s.next()
        time.sleep(1.5)  # the daemon serves other streams: our replies come a round apart
        s.feed.answered(c.index, queue_seconds=1.4, server_seconds=1.45)  # d is still in flight
        replied = time.perf_counter()
        interval, one = s.feed.interval, s.feed.processing
        assert interval > 1.0 and one < 0.2
        # e waits behind d: it goes no sooner than d should start, lest it overtake d in the queue
        # (a share of the reply interval early would be long before)
        taken, e = s.next()
        assert taken >= replied + interval - one
        # f waits behind e; once e is answered it waits behind nothing and goes at once, not
        # at the instant the reply to e set for a frame behind another (the stream's lane
        # would be empty until then, and lose its turn)
        s.feed.answered(d.index, queue_seconds=1.4, server_seconds=1.45)
        time.sleep(0.2)  # f is waiting for e's turn
        s.feed.answered(e.index, queue_seconds=0.0, server_seconds=0.05)
        due = s.feed._due
        taken, f = s.next()
        assert f.index > e.index and taken < due
    finally:
        s.close()
