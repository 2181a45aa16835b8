"""Soak: one daemon under mixed load for M minutes, looking for leaks, races and stuck calls.

    .venv/bin/python bench/soak.py --minutes 10

One `regiond serve` (lite, the bundled heads, an index) on loopback, and at once: 6 paced video
streams, 2 scene scans (each restarting when it finishes), one client indexing images, one
issuing searches, one calling with bad input and one cancelling streams mid-way. Every call is
bounded (a 60 s deadline) and so is each client's rate. Prints per minute the calls by status
code, frames/s, p50/p99 latency (per frame for streams, per call otherwise), the daemon's RSS
and open file descriptors, and at the end

    soak M min: E unexpected errors, RSS drift D %, fd drift F

Unexpected = any status but OK, INVALID_ARGUMENT for the bad inputs, CANCELLED for the
cancelled calls and RESOURCE_EXHAUSTED under overload (or a bad input answered OK). RSS drift
compares the daemon's RSS in minute 2 with the last minute's (medians of 5 s samples), fd drift
their open file descriptors. Targets: 0 unexpected, RSS drift ≤ 10 %, fd drift 0.
"""

from __future__ import annotations

import argparse
import collections
import os
import signal
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import grpc
import numpy as np
from load import rss_mb  # bench/ is the script folder, first on sys.path
from stream import make_frames

import regiond  # noqa: F401  (sets the OpenMP wait policy before torch loads; stream.py imports it first)

REPO = Path(__file__).resolve().parents[1]
from regiond.api.v1 import regions_pb2 as pb  # noqa: E402
from regiond.api.v1 import regions_pb2_grpc as pb_grpc  # noqa: E402

C = grpc.StatusCode
DEADLINE = 60.0
ALLOWED = {
    "video": {C.OK, C.RESOURCE_EXHAUSTED},
    "scene": {C.OK, C.RESOURCE_EXHAUSTED},
    "index": {C.OK, C.RESOURCE_EXHAUSTED},
    "search": {C.OK, C.RESOURCE_EXHAUSTED},
    "bad": {C.INVALID_ARGUMENT, C.RESOURCE_EXHAUSTED},
    "cancel": {C.CANCELLED, C.RESOURCE_EXHAUSTED},
}


class Stats:
    """Calls and frames by minute, shared by the load threads."""

    def __init__(self, t0: float):
        self.t0 = t0
        self.lock = threading.Lock()
        self.codes = collections.defaultdict(collections.Counter)  # minute → code name → calls
        self.latency = collections.defaultdict(list)  # minute → seconds
        self.frames = collections.Counter()  # minute → frames answered
        self.unexpected: list[str] = []

    def minute(self) -> int:
        return int((time.monotonic() - self.t0) // 60)

    def call(self, kind: str, code: grpc.StatusCode, seconds: float | None = None, note: str = "") -> None:
        with self.lock:
            m = self.minute()
            self.codes[m][code.name] += 1
            if seconds is not None:
                self.latency[m].append(seconds)
            if code not in ALLOWED[kind] or note:
                self.unexpected.append(f"{kind}: {code.name} {note}".strip())

    def note(self, text: str) -> None:
        with self.lock:
            self.unexpected.append(text)

    def frame(self, seconds: float) -> None:
        with self.lock:
            m = self.minute()
            self.frames[m] += 1
            self.latency[m].append(seconds)


def code_of(e: grpc.RpcError) -> grpc.StatusCode:
    return e.code() if hasattr(e, "code") else C.UNKNOWN


def paced(items, fps: float, end: float):
    """The items at `fps` (0: as fast as taken) until `end`; stamps each with its send time."""
    t_next = time.monotonic()
    for item in items:
        if time.monotonic() >= end:
            return
        if fps:
            t_next += 1 / fps
            time.sleep(max(0.0, t_next - time.monotonic()))
        yield item


class Load:
    """The load threads against one daemon, until `end`."""

    def __init__(self, address: str, stats: Stats, end: float, size: tuple[int, int], fps: float):
        self.ch = grpc.insecure_channel(address)
        grpc.channel_ready_future(self.ch).result(timeout=60)
        self.stub = pb_grpc.RegionServiceStub(self.ch)
        self.stats, self.end, self.fps = stats, end, fps
        w, h = size
        self.images = [
            pb.Image(data=f.tobytes(), encoding=pb.Image.RGB8, width=w, height=h) for f in make_frames(24, w, h)
        ]
        self.scene_frames = self._scene_frames(w, h)
        self.indexed = threading.Event()  # the images searches refer to are in the index

    @staticmethod
    def _scene_frames(w: int, h: int) -> list[pb.SceneFrame]:
        from regiond.client.messages import scene_frame_pb
        from regiond.scenes.synthetic.rgbd import SyntheticSource

        frames = [scene_frame_pb(f, "raw") for f in SyntheticSource(6, frames=16, width=w, height=h)]
        frames[0].options.CopyFrom(pb.SceneOptions(scene_id="soak", return_ply=True, return_label_maps=True))
        return frames

    def running(self) -> bool:
        return time.monotonic() < self.end

    def _stream(self, kind: str, call, msgs, cancel_after: int = 0) -> None:
        sent: dict[int, float] = {}

        def stamped():
            for i, m in enumerate(msgs):
                sent[i] = time.monotonic()
                yield m

        t0, n = time.monotonic(), 0
        it = call(stamped(), timeout=DEADLINE)
        try:
            for up in it:
                if not (up.HasField("regions") or up.HasField("error")):
                    continue  # a scene's refined labels and summary
                if up.HasField("error"):
                    self.stats.note(f"{kind}: frame error {up.error.field}: {up.error.message}")
                self.stats.frame(time.monotonic() - sent.get(n, t0))
                n += 1
                if cancel_after and n >= cancel_after:
                    it.cancel()
            # a stream to be cancelled that the soak's end cut short first is a plain OK one
            self.stats.call("video" if cancel_after and not self.running() else kind, C.OK)
        except grpc.RpcError as e:
            self.stats.call(kind, code_of(e), note="" if code_of(e) in ALLOWED[kind] else e.details() or "")

    def video(self, k: int) -> None:
        while self.running():
            msgs = [pb.VideoFrame(image=self.images[(k + i) % len(self.images)], index=i) for i in range(30)]
            self._stream("video", self.stub.StreamVideo, paced(msgs, self.fps, self.end))

    def scene(self, k: int) -> None:
        while self.running():
            self._stream("scene", self.stub.StreamScene, paced(self.scene_frames, self.fps, self.end))

    def cancel(self) -> None:
        while self.running():
            msgs = [pb.VideoFrame(image=img) for img in self.images[:12]]
            self._stream("cancel", self.stub.StreamVideo, paced(msgs, self.fps, self.end), cancel_after=3)

    def _unary(self, kind: str, fn, *args, check=None) -> None:
        t0 = time.monotonic()
        try:
            reply = fn(*args, timeout=DEADLINE)
            note = check(reply) if check else ""
            self.stats.call(kind, C.OK, time.monotonic() - t0, note)
        except grpc.RpcError as e:
            self.stats.call(
                kind, code_of(e), time.monotonic() - t0, "" if code_of(e) in ALLOWED[kind] else e.details() or ""
            )

    def index(self) -> None:
        """Images img0..39 replaced in turn; one of img20..39 removed every fifth call (the
        searches refer to img0..7 only), so the index stays at about 40 images."""
        n = 0
        while self.running():
            reqs = [
                pb.IndexRequest(
                    image_id=f"img{(n + i) % 40}", image=self.images[(n + i) % len(self.images)], replace=True
                )
                for i in range(4)
            ]
            if n % 20 == 16:
                reqs.append(pb.IndexRequest(image_id=f"img{20 + n % 20}", remove=True))
            self._unary(
                "index", self.stub.IndexImages, iter(reqs), check=lambda s: "; ".join(e.message for e in s.errors)
            )
            n += 4
            if n >= 8:
                self.indexed.set()
            time.sleep(0.5)

    def search(self) -> None:
        while not self.indexed.wait(1.0):
            if not self.running():
                return
        n = 0
        while self.running():
            q = [
                pb.SearchRequest(region=pb.RegionRef(image_id=f"img{n % 8}", region_id=0), top_k=5),
                pb.SearchRequest(
                    box=pb.BoxQuery(image=self.images[n % len(self.images)], box=pb.Box(x0=10, y0=10, x1=60, y1=50)),
                    top_k=5,
                ),
            ][n % 2]
            self._unary("search", self.stub.Search, q)
            n += 1
            time.sleep(0.5)

    def bad(self) -> None:
        raw = self.ch.unary_unary("/regions.v1.RegionService/ExtractRegions")
        calls = [
            lambda: self.stub.ExtractRegions(
                pb.ExtractRequest(image=pb.Image(data=b"\x89PNG not really")), timeout=DEADLINE
            ),
            lambda: raw(b"\xff\xff\x01garbage", timeout=DEADLINE),
            lambda: self.stub.Search(
                pb.SearchRequest(vector=pb.VectorQuery(values=[1.0]), top_k=5000), timeout=DEADLINE
            ),
            lambda: self.stub.ExtractRegions(
                pb.ExtractRequest(image=self.images[0], depth=pb.Depth(data=b"x")), timeout=DEADLINE
            ),
        ]
        n = 0
        while self.running():
            t0 = time.monotonic()
            try:
                calls[n % len(calls)]()
                self.stats.call("bad", C.OK, time.monotonic() - t0, "a bad input was answered OK")
            except grpc.RpcError as e:
                self.stats.call(
                    "bad", code_of(e), time.monotonic() - t0, "" if code_of(e) in ALLOWED["bad"] else e.details() or ""
                )
            n += 1
            time.sleep(0.5)

    def threads(self) -> list[threading.Thread]:
        jobs = [(self.video, (k,)) for k in range(6)] + [(self.scene, (k,)) for k in range(2)]
        jobs += [(self.index, ()), (self.search, ()), (self.bad, ()), (self.cancel, ())]
        return [
            threading.Thread(target=self._guarded, args=(fn, *a), daemon=True, name=f"soak-{fn.__name__}")
            for fn, a in jobs
        ]

    def _guarded(self, fn, *args) -> None:
        try:
            fn(*args)
        except Exception as e:  # noqa: BLE001 (a load thread that dies is a finding of the soak's own)
            self.stats.note(f"{fn.__name__}: the load thread failed: {type(e).__name__}: {e}")


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--minutes", type=float, default=10.0, help="how long (default 10)")
    p.add_argument("--size", default="160x120", help="frame size WxH (default 160x120)")
    p.add_argument("--fps", type=float, default=3.0, help="pace of each stream, frames/s (default 3)")
    args = p.parse_args()
    size = tuple(int(v) for v in args.size.split("x"))
    from regiond.commands.serve import spawn_daemon

    with tempfile.TemporaryDirectory(prefix="regiond-soak-") as tmp:
        proc, address = spawn_daemon(
            [
                "--listen",
                "127.0.0.1:0",
                "--profile",
                "lite",
                "--heads",
                "bundled",
                "--data-dir",
                Path(tmp) / "data",
                "--grace",
                "5",
                "--log-level",
                "WARNING",
            ],
            Path(tmp) / "daemon.log",
            timeout=180,
        )
        try:
            t0 = time.monotonic()
            stats = Stats(t0)
            load = Load(address, stats, t0 + args.minutes * 60, size, args.fps)
            threads = load.threads()
            for t in threads:
                t.start()
            samples = collections.defaultdict(list)  # minute → (rss MB, fds)
            minutes = int(np.ceil(args.minutes))
            shown = 0
            while shown < minutes:
                time.sleep(5)
                m = stats.minute()
                if m < minutes:
                    samples[m].append((rss_mb(proc.pid), open_fds(proc.pid)))
                if m > shown or time.monotonic() - t0 >= args.minutes * 60:
                    report_minute(shown, stats, samples[shown], min(60.0, args.minutes * 60 - 60 * shown))
                    shown += 1
            for t in threads:
                t.join(DEADLINE + 10)
            stuck = [t.name for t in threads if t.is_alive()]
            stats.unexpected += [f"{name}: still in a call {DEADLINE:g} s after the end" for name in stuck]
            load.ch.close()
        finally:
            t_stop = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            try:
                rc = proc.wait(5 + 5)
            except Exception:  # noqa: BLE001 (any failure to stop is a finding)
                proc.kill()
                rc = proc.wait()
                stats.unexpected.append("the daemon did not stop within its grace period + 5 s")
        print(f"daemon stopped in {time.monotonic() - t_stop:.1f} s (status {rc})")
    first = 1 if minutes > 1 else 0  # minute 2 (index 1): after the warm-up
    rss = [statistics.median(r for r, _ in samples[m]) for m in (first, minutes - 1)]
    fds = [statistics.median(f for _, f in samples[m]) for m in (first, minutes - 1)]
    for u in collections.Counter(stats.unexpected).most_common(10):
        print(f"  unexpected: {u[0]} (×{u[1]})")
    print(
        f"soak {args.minutes:g} min: {len(stats.unexpected)} unexpected errors, "
        f"RSS drift {100 * (rss[1] - rss[0]) / rss[0]:.1f} %, fd drift {fds[1] - fds[0]:g}"
    )
    print(f"(load: {os.getloadavg()[0]:.1f} {os.getloadavg()[1]:.1f} {os.getloadavg()[2]:.1f})")
    return 0 if not stats.unexpected else 1


def report_minute(m: int, stats: Stats, samples: list[tuple[float, int]], seconds: float) -> None:
    with stats.lock:
        codes = " ".join(f"{k}={v}" for k, v in sorted(stats.codes[m].items()))
        lat = np.array(stats.latency[m] or [np.nan]) * 1000
        frames = stats.frames[m]
    rss = statistics.median(r for r, _ in samples) if samples else float("nan")
    fds = statistics.median(f for _, f in samples) if samples else float("nan")
    print(
        f"minute {m + 1}: calls {codes or 'none'}; {frames / seconds:.1f} frames/s; latency p50 "
        f"{np.percentile(lat, 50):.0f} ms p99 {np.percentile(lat, 99):.0f} ms; daemon RSS {rss:.0f} MB, "
        f"open fds {fds:g}",
        flush=True,
    )


if __name__ == "__main__":
    sys.exit(main())
