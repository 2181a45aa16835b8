"""Video through the daemon vs the same extraction in-process, in one run.

    .venv/bin/python bench/stream.py [--frames 60] [--size 640x480] [--encoding raw|jpeg]

Frames: a generated activity clip (scenes.synthetic) at the given size. Baseline: the lite
Extractor called on each frame in this process. Daemon: `regiond serve --profile lite` in its
own process, StreamVideo with the frames sent as fast as it takes them (masks in every reply,
as clients get them). Prints both rates, their ratio and the gRPC overhead.
Targets: >= 15 frames/s through gRPC on 2 cores, overhead <= 20%.
"""
from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# bench/regions.py would shadow the API package `regions`: drop this folder from the path.
sys.path[:] = [str(REPO)] + [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]


def make_frames(n: int, width: int, height: int):
    from scenes.synthetic import render_clip

    frames = []
    seed = 0
    while len(frames) < n:  # several short clips: varied content
        frames.extend(render_clip(label=seed % 9, seed=seed, frames=min(32, n - len(frames)),
                                  width=width, height=height).frames)
        seed += 1
    return frames


def in_process(frames, threads: int) -> float:
    import torch

    from daemon.config import build_extractor

    torch.set_num_threads(threads)
    ex = build_extractor("lite", announce=lambda m: None)
    for f in frames[:3]:
        ex.extract(f)
    t0 = time.perf_counter()
    for f in frames:
        ex.extract(f)
    return len(frames) / (time.perf_counter() - t0)


def start_daemon(tmp: Path, threads: int, workers: int):
    log = tmp / f"daemon-{workers}.log"
    proc = subprocess.Popen([sys.executable, "-m", "daemon", "serve", "--listen", "127.0.0.1:0", "--profile", "lite",
                             "--data-dir", str(tmp / "data"), "--no-index", "--log-level", "WARNING",
                             "--workers", str(workers), "--torch-threads", str(threads)],
                            stdout=open(log, "w"), stderr=subprocess.STDOUT, cwd=REPO)
    for _ in range(1200):
        m = re.search(r"on (\S+) \(profile", log.read_text())
        if m:
            return proc, m.group(1)
        if proc.poll() is not None:
            raise SystemExit(f"daemon failed to start:\n{log.read_text()}")
        time.sleep(0.1)
    raise SystemExit("daemon did not start")


def through_daemon(frames, address: str, encoding: str) -> tuple[float, float]:
    """(frames/s, mean regions per frame) streaming every frame once, as fast as possible."""
    import grpc

    from clients.common import image_pb
    from regions.v1 import regions_pb2 as pb
    from regions.v1 import regions_pb2_grpc as pb_grpc

    ch = grpc.insecure_channel(address, options=[("grpc.max_send_message_length", 64 << 20),
                                                  ("grpc.max_receive_message_length", 64 << 20)])
    grpc.channel_ready_future(ch).result(timeout=60)
    stub = pb_grpc.RegionServiceStub(ch)
    msgs = [pb.VideoFrame(image=image_pb(f, encoding), index=i) for i, f in enumerate(frames)]
    list(stub.StreamVideo(iter(msgs[:3])))  # warm-up
    t0 = time.perf_counter()
    regions = [len(u.regions.regions) for u in stub.StreamVideo(iter(msgs))]
    dt = time.perf_counter() - t0
    ch.close()
    assert len(regions) == len(frames)
    return len(frames) / dt, sum(regions) / len(regions)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--frames", type=int, default=60)
    ap.add_argument("--size", default="640x480")
    ap.add_argument("--encoding", choices=("raw", "jpeg", "png"), default="raw",
                    help="how frames travel (raw: loopback; jpeg adds decoding in the daemon)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads per model call")
    ap.add_argument("--workers", type=int, default=2,
                    help="daemon workers for the throughput run (the overhead run uses 1, like in-process)")
    args = ap.parse_args()
    w, h = (int(v) for v in args.size.split("x"))
    frames = make_frames(args.frames, w, h)
    base = in_process(frames, args.threads)
    runs = {}
    with tempfile.TemporaryDirectory() as tmp:
        for workers in sorted({1, args.workers}):
            proc, address = start_daemon(Path(tmp), args.threads, workers)
            try:
                runs[workers] = through_daemon(frames, address, args.encoding)
            finally:
                proc.terminate()
                proc.wait(30)
    fps1, regions = runs[1]
    ratio = fps1 / base
    print(f"bench/stream: {args.frames} frames {w}x{h}, lite profile, {args.encoding} frames, "
          f"{regions:.0f} regions/frame, torch threads {args.threads}, {os.cpu_count()} cpus visible, "
          f"load average {os.getloadavg()[0]:.1f}")
    print(f"  in-process extraction (1 thread of work):  {base:6.1f} frames/s")
    print(f"  through the daemon, 1 worker:              {fps1:6.1f} frames/s")
    print(f"  ratio daemon/in-process: {ratio:.2f}  -> gRPC overhead {100 * (1 - ratio):.0f}% (target <= 20%)")
    if args.workers != 1:
        fpsn = runs[args.workers][0]
        print(f"  through the daemon, {args.workers} workers:             {fpsn:6.1f} frames/s  (target >= 15; "
              f"{fpsn / base:.2f}x in-process)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
