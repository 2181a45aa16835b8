"""Video through the daemon vs the same extraction in-process, in one run.

    .venv/bin/python bench/stream.py [--frames 60] [--size 640x480] [--encoding raw|jpeg]
                                     [--keyframe-every K] [--empty-every N]

Frames: a generated activity clip (regiond.scenes.synthetic) at the given size. Baseline: the lite
Extractor called on each frame in this process. Daemon: `regiond serve --profile lite` in its
own process, StreamVideo with the frames sent as fast as it takes them (masks in every reply,
as clients get them). Prints both rates, their ratio and the gRPC overhead.
Targets: >= 15 frames/s through gRPC on 2 cores, overhead <= 20%.
Wall-clock rates on a machine shared with other work are noisy (two processes also get a
larger share of a contended CPU than one), so it also prints the CPU time the gRPC path adds
per frame, measured beside the extraction in one process.
--keyframe-every K carries masks by optical flow between keyframes (in process and through the
daemon); --empty-every N makes the keyframe generator find nothing on every N-th keyframe
(bench/empty_masks.py: the daemon runs through it, the in-process extractor gets the same
masker) and prints how many frames were answered, generated and carried.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

import regiond  # noqa: F401  (first: sets the OpenMP wait policy before torch loads)

REPO = Path(__file__).resolve().parents[1]


def make_frames(n: int, width: int, height: int):
    from regiond.scenes.synthetic import render_clip

    frames = []
    seed = 0
    while len(frames) < n:  # several short clips: varied content
        frames.extend(
            render_clip(label=seed % 9, seed=seed, frames=min(32, n - len(frames)), width=width, height=height).frames
        )
        seed += 1
    return frames


def in_process(ex, frames, keyframe_every: int = 0) -> float:
    """frames/s of the extractor called frame after frame, in a worker thread as the daemon
    calls it (on this machine the main thread runs the same code measurably slower); with
    keyframe_every, masks carried by flow as a video stream's are."""
    from regiond.core.frames import Frame
    from regiond.masks.carry import CarryConfig, MaskTracker

    out = []

    def work():
        tracker = MaskTracker(CarryConfig(every=keyframe_every, method="flow")) if keyframe_every > 1 else None
        t0 = time.perf_counter()
        for k, f in enumerate(frames):
            ex.extract(Frame(rgb=f, index=k), carry=tracker.ticket() if tracker else None)
        out.append(len(frames) / (time.perf_counter() - t0))

    t = threading.Thread(target=work)
    t.start()
    t.join()
    return out[0]


def path_costs(ex, frames, encoding: str) -> tuple[float, float]:
    """(ms of extraction, ms of the gRPC path's own work) per frame, measured side by side in
    this process: client encoding, daemon decoding, RegionSet → message, serialising, client
    parsing. Independent of how busy the machine is, unlike the wall-clock rates."""
    from regiond.api.v1 import regions_pb2 as pb
    from regiond.client.messages import image_pb
    from regiond.service.convert import Limits, image_frame, region_set_pb

    t_ex = t_path = 0.0
    for f in frames:
        t0 = time.perf_counter()
        img = image_pb(f, encoding)
        data = pb.VideoFrame(image=img).SerializeToString()
        frame = image_frame(pb.VideoFrame.FromString(data).image, "image", Limits())
        t1 = time.perf_counter()
        rs = ex.extract(frame)
        t2 = time.perf_counter()
        pb.RegionSet.FromString(region_set_pb(rs).SerializeToString())
        t3 = time.perf_counter()
        t_ex += t2 - t1
        t_path += (t1 - t0) + (t3 - t2)
    return 1000 * t_ex / len(frames), 1000 * t_path / len(frames)


def start_daemon(tmp: Path, threads: int, workers: int, empty_every: int = 0):
    from regiond.commands.serve import spawn_daemon

    empty = [sys.executable, str(REPO / "bench" / "empty_masks.py"), str(empty_every)]

    try:
        return spawn_daemon(
            [
                "--listen",
                "127.0.0.1:0",
                "--profile",
                "lite",
                "--data-dir",
                tmp / "data",
                "--no-index",
                "--log-level",
                "WARNING",
                "--workers",
                workers,
                "--torch-threads",
                threads,
            ],
            tmp / f"daemon-{workers}.log",
            timeout=120,
            program=empty if empty_every else None,
        )
    except RuntimeError as e:
        raise SystemExit(f"bench/stream: {e}") from None


class DaemonClient:
    """A channel to one daemon and the frames as messages, encoded once."""

    def __init__(self, address: str, frames, encoding: str, keyframe_every: int = 0):
        import grpc

        from regiond.api.v1 import regions_pb2 as pb
        from regiond.api.v1 import regions_pb2_grpc as pb_grpc
        from regiond.client.messages import image_pb

        self.ch = grpc.insecure_channel(
            address, options=[("grpc.max_send_message_length", 64 << 20), ("grpc.max_receive_message_length", 64 << 20)]
        )
        grpc.channel_ready_future(self.ch).result(timeout=60)
        self.stub = pb_grpc.RegionServiceStub(self.ch)
        self.msgs = [pb.VideoFrame(image=image_pb(f, encoding), index=i) for i, f in enumerate(frames)]
        if keyframe_every > 1:
            self.msgs[0].options.CopyFrom(pb.VideoOptions(carry=pb.CarryOptions(keyframe_every=keyframe_every)))
        self.carried: list[bool] = []  # the last run's frames: carried (True) or generated
        list(self.stub.StreamVideo(iter(self.msgs[:3])))  # warm-up

    def run(self) -> tuple[float, float]:
        """(frames/s, mean regions per frame) streaming every frame once, as fast as possible."""
        t0 = time.perf_counter()
        updates = list(self.stub.StreamVideo(iter(self.msgs)))
        dt = time.perf_counter() - t0
        errors = [f"frame {u.frame_index}: {u.error.message}" for u in updates if u.HasField("error")]
        assert len(updates) == len(self.msgs) and not errors, errors[:3]
        regions = [len(u.regions.regions) for u in updates]
        self.carried = [u.regions.HasField("carry") and not u.regions.carry.keyframe for u in updates]
        return len(self.msgs) / dt, sum(regions) / len(regions)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--frames", type=int, default=60)
    ap.add_argument("--size", default="640x480")
    ap.add_argument(
        "--encoding",
        choices=("raw", "jpeg", "png"),
        default="raw",
        help="how frames travel (raw: loopback; jpeg adds decoding in the daemon)",
    )
    ap.add_argument("--threads", type=int, default=1, help="torch threads per model call")
    ap.add_argument("--rounds", type=int, default=3, help="interleaved measurement rounds (best is reported)")
    ap.add_argument("--keyframe-every", type=int, default=0, metavar="K", help="carry masks by flow between keyframes")
    ap.add_argument(
        "--empty-every",
        type=int,
        default=0,
        metavar="N",
        help="the keyframe generator finds no masks on every N-th keyframe (bench/empty_masks.py)",
    )
    ap.add_argument(
        "--workers",
        type=int,
        default=2,
        help="daemon workers for the throughput run (the overhead run uses 1, like in-process)",
    )
    args = ap.parse_args()
    w, h = (int(v) for v in args.size.split("x"))
    frames = make_frames(args.frames, w, h)
    import torch

    from regiond.extraction.profiles import build_extractor

    torch.set_num_threads(args.threads)
    ex = build_extractor("lite", announce=lambda m: None)
    if args.empty_every:
        from empty_masks import sometimes_empty  # bench/: the script's own folder

        ex.masker = sometimes_empty(ex.masker, args.empty_every)
    for f in frames[:3]:
        ex.extract(f)
    base, runs = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        daemons = {n: start_daemon(Path(tmp), args.threads, n, args.empty_every) for n in sorted({1, args.workers})}
        try:
            clients = {
                n: DaemonClient(addr, frames, args.encoding, args.keyframe_every) for n, (_, addr) in daemons.items()
            }
            # Interleaved rounds, best of each: on a shared machine the best round is the one
            # least disturbed by others, for the baseline and the daemon alike.
            for _ in range(args.rounds):
                base.append(in_process(ex, frames, args.keyframe_every))
                for n, c in clients.items():
                    runs.setdefault(n, []).append(c.run())
        finally:
            for proc, _ in daemons.values():
                proc.terminate()
                proc.wait(30)
    ms_ex, ms_path = path_costs(ex, frames, args.encoding)
    best = max(base)
    fps1 = max(r[0] for r in runs[1])
    regions = runs[1][0][1]
    ratio = fps1 / best
    print(
        f"bench/stream: {args.frames} frames {w}x{h}, lite profile, {args.encoding} frames, "
        f"{regions:.0f} regions/frame, torch threads {args.threads}, best of {args.rounds} interleaved rounds, "
        f"{os.cpu_count()} cpus visible, load average {os.getloadavg()[0]:.1f}"
    )
    print(
        f"  in-process extraction (1 thread of work):  {best:6.1f} frames/s  (rounds: "
        f"{', '.join(f'{b:.1f}' for b in base)})"
    )
    print(
        f"  through the daemon, 1 worker:              {fps1:6.1f} frames/s  (rounds: "
        f"{', '.join(f'{r[0]:.1f}' for r in runs[1])})"
    )
    print(f"  ratio daemon/in-process: {ratio:.2f}  -> gRPC overhead {100 * (1 - ratio):.0f}% (target <= 20%)")
    print(
        f"  work of the gRPC path itself: {ms_path:.1f} ms/frame beside {ms_ex:.1f} ms of extraction "
        f"= {100 * ms_path / ms_ex:.1f}% overhead in CPU time (load-independent)"
    )
    if args.keyframe_every > 1 or args.empty_every:
        carried = sum(clients[1].carried)
        empty = f"none on 1 keyframe in {args.empty_every}" if args.empty_every else "never empty"
        print(
            f"  masks: all {len(frames)} frames answered (1 worker, last round); generated on {len(frames) - carried}, "
            f"carried to {carried} (keyframe every {args.keyframe_every or 1}); the keyframe generator's masks: {empty}"
        )
    if args.workers != 1:
        fpsn = max(r[0] for r in runs[args.workers])
        print(
            f"  through the daemon, {args.workers} workers:             {fpsn:6.1f} frames/s  (target >= 15; "
            f"{fpsn / best:.2f}x in-process)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
