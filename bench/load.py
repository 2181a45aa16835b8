"""Load: N concurrent video streams against one daemon for a fixed time.

    .venv/bin/python bench/load.py [--streams 8] [--seconds 30] [--size 320x240]

Each stream sends frames as fast as the daemon takes them (the daemon's bounded queue and each
stream's in-flight window are the only brakes), so this measures the daemon saturated; with
--fps each stream keeps a camera's pace instead, and the latency is the service time.
Prints total throughput, per-frame latency (client send → reply) p50/p99, and the daemon's
resident memory sampled through the run: peak, and the peak of the first vs the second half
(bounded memory means the second half does not keep growing). The baseline, measured in the
same run, is one stream alone: the ratio says what sharing costs each frame.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

from stream import make_frames, start_daemon  # bench/ is the script folder, first on sys.path

import regiond  # noqa: F401  (sets the OpenMP wait policy before torch loads; stream.py imports it first)

REPO = Path(__file__).resolve().parents[1]


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def run_streams(address: str, images, streams: int, seconds: float, fps: float = 0.0) -> tuple[list[float], float]:
    """Latencies (s) of every frame answered within `seconds`, and the wall time used."""
    import grpc

    from regiond.api.v1 import regions_pb2 as pb
    from regiond.api.v1 import regions_pb2_grpc as pb_grpc

    ch = grpc.insecure_channel(
        address, options=[("grpc.max_send_message_length", 64 << 20), ("grpc.max_receive_message_length", 64 << 20)]
    )
    grpc.channel_ready_future(ch).result(timeout=60)
    stub = pb_grpc.RegionServiceStub(ch)
    end = time.monotonic() + seconds
    lat: list[list[float]] = [[] for _ in range(streams)]

    def one(k: int) -> None:
        sent: dict[int, float] = {}
        ahead = threading.Semaphore(8)

        def frames():
            i = 0
            t_start = time.monotonic()
            while time.monotonic() < end:
                if fps > 0:  # a camera's pace rather than as fast as the daemon takes them
                    time.sleep(max(0.0, t_start + i / fps - time.monotonic()))
                ahead.acquire()
                m = pb.VideoFrame(image=images[(i + 7 * k) % len(images)], index=i)
                sent[i] = time.perf_counter()
                yield m
                i += 1

        for u in stub.StreamVideo(frames()):
            ahead.release()
            t = sent.pop(int(u.frame_index), None)
            if t is not None and time.monotonic() <= end + 5:
                lat[k].append(time.perf_counter() - t)

    t0 = time.perf_counter()
    threads = [threading.Thread(target=one, args=(k,)) for k in range(streams)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    ch.close()
    return [x for xs in lat for x in xs], time.perf_counter() - t0


def main() -> int:
    import numpy as np

    from regiond.client.messages import image_pb

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--streams", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--size", default="320x240")
    ap.add_argument("--encoding", choices=("raw", "jpeg"), default="jpeg")
    ap.add_argument("--workers", type=int, default=1, help="daemon workers (serve's default is 1)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument(
        "--fps",
        type=float,
        default=0.0,
        help="pace each of the N streams at this rate (0: as fast as the daemon takes them)",
    )
    args = ap.parse_args()
    w, h = (int(v) for v in args.size.split("x"))
    images = [image_pb(f, args.encoding) for f in make_frames(32, w, h)]

    with tempfile.TemporaryDirectory() as tmp:
        proc, address = start_daemon(Path(tmp), args.threads, args.workers)
        try:
            rss0 = rss_mb(proc.pid)
            base_lat, base_dt = run_streams(address, images, 1, min(10.0, args.seconds))
            samples: list[tuple[float, float]] = []
            stop = threading.Event()

            def sample():
                t0 = time.monotonic()
                while not stop.wait(0.25):
                    samples.append((time.monotonic() - t0, rss_mb(proc.pid)))

            sampler = threading.Thread(target=sample, daemon=True)
            sampler.start()
            lat, dt = run_streams(address, images, args.streams, args.seconds, args.fps)
            stop.set()
            sampler.join()
        finally:
            proc.terminate()
            proc.wait(30)
    lat_ms = np.array(lat) * 1000
    base_ms = np.array(base_lat) * 1000
    mem = np.array([m for _, m in samples])
    half = len(mem) // 2
    pace = f"{args.fps:g} fps each" if args.fps else "unpaced"
    print(
        f"bench/load: {args.streams} streams × {args.seconds:g} s ({pace}), {w}x{h} {args.encoding} frames, "
        "lite profile, "
        f"{args.workers} workers, {os.cpu_count()} cpus, load average {os.getloadavg()[0]:.1f}"
    )
    print(
        f"  1 stream alone:  {len(base_lat) / base_dt:6.1f} frames/s, "
        f"latency p50 {np.percentile(base_ms, 50):6.0f} ms, "
        f"p99 {np.percentile(base_ms, 99):6.0f} ms"
    )
    print(
        f"  {args.streams} streams:      {len(lat) / dt:6.1f} frames/s total, "
        f"latency p50 {np.percentile(lat_ms, 50):6.0f} ms, "
        f"p99 {np.percentile(lat_ms, 99):6.0f} ms"
    )
    if args.fps:
        print(f"  offered {args.streams * args.fps:g} frames/s, served {len(lat) / dt:.1f}")
    else:
        print(
            f"  throughput ratio {args.streams} streams / 1 stream: {(len(lat) / dt) / (len(base_lat) / base_dt):.2f}"
        )
    print(
        f"  daemon RSS: idle {rss0:.0f} MB, peak {mem.max():.0f} MB; peak first half {mem[:half].max():.0f} MB, "
        f"second half {mem[half:].max():.0f} MB"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
