"""A live stream at about twice the daemon's capacity, with and without live mode, in one run.

    .venv/bin/python bench/live.py [--seconds 60] [--size 1920x1080] [--fps auto] [--streams 8]
                                   [--workers 1] [--plot docs/live-latency.png]

Source: the shared 7-Scenes frames (../shared/data/rgbd/7scenes-150-169; a synthetic room
without them), cropped to 16:9 and upscaled to --size (1080p), played back and forth as a
camera would deliver them, from memory (so the client's own work stays small beside the
daemon's on a 2-core machine). Daemon: `regiond serve --profile lite` in its own process.

1. capacity: frames sent as fast as the daemon takes them (no live mode), frames/s, before,
   between and after the two streams; each stream's figures use the mean of the two around
   it (the machine is shared, its load drifts); one frame's processing is 1 / capacity.
2. live: the source at --fps (auto: twice the capacity) for --seconds, sent as
   clients/live.py sends it (the newest frame whenever one of workers + 1 slots is free).
3. not live: the same source, every frame sent in order as stream_video sends a file
   (at most 8 ahead of the replies), cut off after --seconds.
Latency is from the instant a frame became current at the source to its reply; the slope is
the least-squares fit of latency against that instant. Prints
`live: p95 latency X ms = Y× one frame's processing, latency slope S ms/s, processed P frames/s
= Q of capacity, dropped D %`, the same for `not live:`, and with --streams N
`N live streams: processed min/max = F` (N live streams of the same source at once).
Targets: live p95 <= 3x one frame's processing, |slope| <= 5 ms/s, processed >= 0.9 of
capacity; 8 live streams min/max >= 0.8.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import textwrap
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import regiond  # noqa: F401  (first: sets the OpenMP wait policy before torch loads)

REPO = Path(__file__).resolve().parents[1]
SHARED_FRAMES = REPO.parent / "shared" / "data" / "rgbd" / "7scenes-150-169"
AHEAD = 8  # stream_video's frames ahead of the replies without live mode


def source_images(size: tuple[int, int]) -> list:
    """The distinct frames, at `size`, played forth and back (no jump at the loop)."""
    import cv2
    import numpy as np

    from regiond import scenes

    spec = str(SHARED_FRAMES) if SHARED_FRAMES.is_dir() else "synthetic:1"
    frames = [f.rgb for f in scenes.open_source(spec, max_frames=20)]
    w, h = size
    out = []
    for rgb in frames:
        fh, fw = rgb.shape[:2]
        ch = min(fh, round(fw * h / w))  # crop to the target's aspect ratio, then scale
        top = (fh - ch) // 2
        out.append(np.ascontiguousarray(cv2.resize(rgb[top : top + ch], (w, h), interpolation=cv2.INTER_LINEAR)))
    return out + out[-2:0:-1], spec


class Camera:
    """An endless camera over the images: frame i at time i / fps (LatestFrame paces it)."""

    def __init__(self, images: list, fps: float, seconds: float):
        self.images, self.fps, self.seconds = images, fps, seconds

    def __iter__(self):
        from regiond.core.frames import Frame

        i = 0
        while i / self.fps < self.seconds:
            yield Frame(rgb=self.images[i % len(self.images)], index=i, time=i / self.fps)
            i += 1


@dataclass
class Run:
    """One stream's outcome: (capture instant, latency) per processed frame, frames read."""

    points: list = field(default_factory=list)  # (seconds since the run's start, latency s)
    read: int = 0
    seconds: float = 0.0
    backlog: int = 0  # not live: frames read and not answered when the call was cut off
    capacity: float = 0.0  # the daemon's capacity around this stream (frames/s)
    lead: float = 0.0  # live: where the client's lead settled (clients/live.py)

    def line(self, name: str, capacity: float) -> str:
        import numpy as np

        t, lat = (np.array(v) for v in zip(*self.points)) if self.points else (np.zeros(1), np.zeros(1))
        slope = np.polyfit(t, lat * 1000, 1)[0] if len(t) > 1 else float("nan")
        p95 = np.percentile(lat, 95) * 1000
        rate = len(self.points) / self.seconds
        dropped = 100.0 * (self.read - self.backlog - len(self.points)) / self.read if self.read else 0.0
        return (
            f"{name}: p95 latency {p95:.0f} ms = {p95 / 1000 * capacity:.1f}× one frame's processing, "
            f"latency slope {slope:.1f} ms/s, processed {rate:.2f} frames/s = {rate / capacity:.2f} of capacity, "
            f"dropped {dropped:.1f} %"
        )


class Client:
    """A channel to the daemon and the images as messages, encoded once (raw RGB, loopback)."""

    def __init__(self, address: str, images: list):
        import grpc

        from regiond.api.v1 import regions_pb2 as pb
        from regiond.api.v1 import regions_pb2_grpc as pb_grpc
        from regiond.client.connection import MAX_MESSAGE
        from regiond.client.messages import image_pb

        opts = [("grpc.max_send_message_length", MAX_MESSAGE), ("grpc.max_receive_message_length", MAX_MESSAGE)]
        self.channel = grpc.insecure_channel(address, options=opts)
        grpc.channel_ready_future(self.channel).result(timeout=60)
        self.stub = pb_grpc.RegionServiceStub(self.channel)
        self.info = self.stub.GetInfo(pb.InfoRequest())
        self.pb = pb
        self.images = [image_pb(rgb, "raw") for rgb in images]
        self.out = pb.OutputOptions(omit_masks=False)

    def message(self, f, options=None):
        msg = self.pb.VideoFrame(image=self.images[f.index % len(self.images)], index=f.index, time=f.time)
        if options is not None:
            msg.options.CopyFrom(options)
        return msg

    def capacity(self, n: int) -> float:
        """frames/s with n frames sent as fast as the daemon takes them (after 3 to warm up)."""
        msgs = [self.message(_Idx(i)) for i in range(n + 3)]
        list(self.stub.StreamVideo(iter(msgs[:3])))
        t0 = time.perf_counter()
        ups = list(self.stub.StreamVideo(iter(msgs[3:])))
        assert len(ups) == n
        return n / (time.perf_counter() - t0)

    def live(self, camera: Camera, t0: float, in_flight: int = 0) -> Run:
        from regiond.client.live import LatestFrame, LiveFeed, in_flight_for

        feed = LiveFeed(LatestFrame(camera), in_flight_for(self.info, in_flight))
        stop = threading.Event()
        options = self.pb.VideoOptions(live=True)

        def requests():
            for k, f in enumerate(feed.frames(stop)):
                yield self.message(f, options if k == 0 else None)

        run = Run()
        try:
            for u in self.stub.StreamVideo(requests()):
                f = feed.answered(u.frame_index, u.skipped, u.regions.stage_seconds.get("queue"), u.server_seconds)
                now = time.perf_counter()
                run.points.append((f.meta["captured"] - t0, now - f.meta["captured"]))
        finally:
            stop.set()
            feed.latest.close()
        run.read, run.seconds, run.lead = feed.latest.read, camera.seconds, feed.lead
        return run

    def not_live(self, camera: Camera, t0: float) -> Run:
        """Every frame in order, at most AHEAD ahead of the replies, paced at the source's rate;
        the call is cut off once the source has played (what is left is a backlog, not drops)."""
        ahead = threading.Semaphore(AHEAD)
        stop = threading.Event()
        captured: dict[int, float] = {}
        run = Run()

        def requests():
            for f in camera:
                due = t0 + f.time
                while time.perf_counter() < due:
                    time.sleep(min(0.05, due - time.perf_counter()))
                captured[f.index] = due
                run.read += 1
                while not ahead.acquire(timeout=0.05):
                    if stop.is_set():
                        return
                yield self.message(f)

        call = self.stub.StreamVideo(requests())
        timer = threading.Timer(camera.seconds + 0.5, call.cancel)
        timer.start()
        try:
            for u in call:
                now = time.perf_counter()
                ahead.release()
                run.points.append((captured[u.frame_index] - t0, now - captured[u.frame_index]))
        except Exception as e:  # the cut-off
            if "CANCELLED" not in str(getattr(e, "code", lambda: "")()):
                raise
        finally:
            timer.cancel()
            stop.set()
        run.seconds = camera.seconds
        run.backlog = run.read - len(run.points)
        return run


class _Idx:
    """A frame stand-in for the capacity run (index only, no time)."""

    def __init__(self, i: int):
        self.index, self.time = i, 0.0


def start_daemon(tmp: Path, workers: int, max_streams: int):
    from regiond.commands.serve import spawn_daemon

    args = ["--listen", "127.0.0.1:0", "--profile", "lite", "--data-dir", tmp / "data", "--no-index"]
    args += ["--log-level", "WARNING", "--workers", workers, "--max-streams", max_streams]
    try:
        return spawn_daemon(args, tmp / "daemon.log", timeout=120)
    except RuntimeError as e:
        raise SystemExit(f"bench/live: {e}") from None


def many_live(
    address: str, images: list, streams: int, fps: float, seconds: float, in_flight: int
) -> tuple[list[Run], list[float]]:
    """`streams` live streams of the same source at once, each on its own channel, while one
    more client (the daemon's --max-streams is `streams`) asks for a stream again and again,
    ignoring the retry-after-ms of its refusals; and those refusals' round trips (s)."""
    import grpc

    clients = [Client(address, images) for _ in range(streams + 1)]
    runs: list = [None] * streams
    refusals: list[float] = []
    t0 = time.perf_counter()
    over = threading.Event()

    def one(k):
        runs[k] = clients[k].live(Camera(images, fps, seconds), t0, in_flight)

    def pushy():
        c = clients[-1]
        msg = c.message(_Idx(0), c.pb.VideoOptions(live=True))
        time.sleep(1.0)  # the streams are in
        while not over.is_set():
            t = time.perf_counter()
            try:
                list(c.stub.StreamVideo(iter([msg])))
            except grpc.RpcError as e:
                if e.code() != grpc.StatusCode.RESOURCE_EXHAUSTED:
                    raise
                refusals.append(time.perf_counter() - t)
            time.sleep(0.02)

    threads = [threading.Thread(target=one, args=(k,)) for k in range(streams)]
    hammer = threading.Thread(target=pushy)
    for t in threads + [hammer]:
        t.start()
    for t in threads:
        t.join()
    over.set()
    hammer.join()
    for c in clients:
        c.channel.close()
    return runs, refusals


def plot(path: Path, runs: dict, capacity: float, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=120)
    for (name, run), colour in zip(runs.items(), ("tab:blue", "tab:red")):
        t, lat = zip(*run.points)
        ax.plot(t, [x * 1000 for x in lat], ".", ms=3, color=colour, label=name)
    ax.axhline(3000 / capacity, color="grey", ls="--", lw=1, label="3× one frame's processing")
    ax.set_xlabel("seconds of stream (the frame's capture)")
    ax.set_ylabel("latency, capture to reply (ms)")
    ax.set_yscale("log")
    ax.set_title(textwrap.fill(title, 110), fontsize=8)
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=60.0, help="length of each stream (default 60)")
    ap.add_argument("--size", default="1920x1080", help="source frame size (default 1920x1080)")
    ap.add_argument("--fps", default="auto", help="source rate; auto: twice the measured capacity")
    ap.add_argument("--capacity-frames", type=int, default=30, help="frames of the capacity run")
    ap.add_argument("--workers", type=int, default=1, help="daemon workers")
    ap.add_argument("--in-flight", type=int, default=0, help="live frames in flight (0: the client's default)")
    ap.add_argument(
        "--lead", type=float, default=None, help="the client's LEAD (1: the last slot's frame is sent at once)"
    )
    ap.add_argument("--streams", type=int, default=0, metavar="N", help="also run N live streams at once")
    ap.add_argument("--plot", type=Path, default=None, metavar="PNG", help="draw latency over time here")
    args = ap.parse_args()
    size = tuple(int(v) for v in args.size.lower().split("x"))
    if args.lead is not None:
        from regiond.client import live as live_client

        live_client.LEAD = args.lead
    images, spec = source_images(size)
    load_start = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="bench-live-") as tmp:
        proc, address = start_daemon(Path(tmp), args.workers, args.streams)
        try:
            client = Client(address, images)
            # capacity before, between and after the two streams (the machine is shared: its
            # load drifts); each stream is compared with the capacity measured around it
            caps = [client.capacity(args.capacity_frames)]
            fps = 2 * caps[0] if args.fps == "auto" else float(args.fps)
            t0 = time.perf_counter()
            live = client.live(Camera(images, fps, args.seconds), t0, args.in_flight)
            caps.append(client.capacity(args.capacity_frames))
            t0 = time.perf_counter() + 0.2
            not_live = client.not_live(Camera(images, fps, args.seconds), t0)
            caps.append(client.capacity(args.capacity_frames))
            live.capacity, not_live.capacity = (caps[0] + caps[1]) / 2, (caps[1] + caps[2]) / 2
            capacity = sum(caps) / 3
            many, refusals = [], []
            if args.streams:
                time.sleep(1.0)  # the cut-off stream's session closes (it would count against --max-streams)
                many, refusals = many_live(address, images, args.streams, fps, args.seconds, args.in_flight)
            client.channel.close()
        finally:
            proc.terminate()
            proc.wait(30)
    load_end = os.getloadavg()
    header = (
        f"bench/live: {size[0]}x{size[1]} frames from {Path(spec).name} at {fps:.1f} frames/s for "
        f"{args.seconds:g} s, lite profile, {args.workers} worker(s), raw frames over loopback; "
        f"capacity {capacity:.2f} frames/s "
        f"(before, between and after the two streams: {', '.join(f'{c:.2f}' for c in caps)}); "
        f"load average {load_start[0]:.1f} at the start, {load_end[0]:.1f} at the end, {os.cpu_count()} cpus"
    )
    print(header)
    print(live.line("live", live.capacity))
    print(f"  live: the client's last frame in flight sent {live.lead:.2f} of a processing before its turn")
    print(not_live.line("not live", not_live.capacity))
    print(f"  not live: {not_live.backlog} frames still waiting when the source stopped (none are dropped)")
    if many:
        rates = [len(r.points) / r.seconds for r in many]
        print(
            f"{args.streams} live streams: processed min/max = {min(rates) / max(rates):.2f} "
            f"(frames/s per stream {', '.join(f'{r:.2f}' for r in rates)}; together {sum(rates):.2f} = "
            f"{sum(rates) / capacity:.2f} of capacity)"
        )
        if refusals:
            print(
                f"  meanwhile one more client asked for a stream {len(refusals)} times ignoring retry-after-ms: "
                f"refused every time (--max-streams {args.streams}), round trip p50 "
                f"{1000 * sorted(refusals)[len(refusals) // 2]:.1f} ms"
            )
    if args.plot:
        plot(args.plot, {"live": live, "not live": not_live}, live.capacity, header.split("; load")[0])
        print(f"  latency plot: {args.plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
