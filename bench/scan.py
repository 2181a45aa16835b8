"""scan_scene end to end against the daemon alone, on the same frames, in one run.

    python bench/scan.py [--frames 300] [--rounds 2] [--scene DIR] [--distinct N] [--stages]
                         [--overlays K|all|none] [--keyframe-every K] [--empty-every N]

Scene: a synthetic room (scenes' synthetic:SEED) rendered once at 640×480 into a
ScanNet-style folder before anything is timed (rendering takes about 0.5 s a frame; --scene
DIR keeps the folder for the next run; --distinct N renders N frames and repeats them up to
--frames, for long scans such as the memory check).
Daemon: `regiond serve --heads bundled` (lite and the heads that ship for it, classic-32:
per-frame label maps, the scene transformer's refined labels, the fused cloud) in its own
process, shared by both measurements, which alternate for --rounds rounds (best of each).
  daemon alone   the frames read and encoded as scan_scene sends them (raw colour to a local
                 daemon, mm depth) before timing, streamed through StreamScene with scan_scene's
                 options, the replies dropped: the daemon's throughput with no client work.
  scan_scene     `python clients/scan_scene.py DIR [--overlays ...]` as a user runs it, default
                 options (overlays of every frame up to 100 frames, else about 100; label PNGs,
                 colour pictures, the PLY, the mIoU), from process start to exit; peak RSS.
Prints `scan_scene end to end X frames/s, daemon alone Y frames/s, ratio X/Y` (best against best)
and the load; then each round's ratio (to the daemon alone just before it) and their median.
Targets: ratio >= 0.8 and X >= 12.5 frames/s on the team's 2-core machine.
--stages also prints `scene frame CPU / lite extraction = R`: the daemon's CPU per scene frame
(daemon alone) over the lite extraction alone (masks, features and pooling of the colour
image) on the same frames, measured in this process after each daemon-alone round (best of
each; target <= 2.0); and the client's CPU time per frame for each of its stages, on replies
recorded from the daemon.
--keyframe-every K carries masks between keyframes (both measurements); --empty-every N serves
through bench/empty_masks.py, whose keyframe generator finds nothing on every N-th keyframe
(a blank wall), and prints how many frames were answered, generated and carried.
"""

from __future__ import annotations

import argparse
import functools
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import regiond  # noqa: F401  (first: sets the OpenMP wait policy before torch loads)

REPO = Path(__file__).resolve().parents[1]


def render_scene(folder: Path, frames: int, distinct: int, seed: int) -> Path:
    """A ScanNet-style folder of `frames` 640×480 frames (the first `distinct` rendered, then
    repeated), reused when it is already there."""
    from regiond.scenes.synthetic import SyntheticScene, write_scene_folder

    color = folder / "color"
    if color.is_dir() and len(list(color.iterdir())) == frames:
        return folder
    shutil.rmtree(folder, ignore_errors=True)
    t0 = time.perf_counter()
    write_scene_folder(SyntheticScene(seed, distinct, 640, 480), folder, repeat_to=frames)
    print(
        f"bench/scan: rendered {distinct} frames of synthetic:{seed} ({frames} in the folder) "
        f"in {time.perf_counter() - t0:.0f} s",
        file=sys.stderr,
    )
    return folder


def scan_daemon(tmp: Path, program: list[str] | None = None):
    """`regiond serve` as the scan benches run it (lite with its bundled heads, no index, on a free
    loopback port, data and log under `tmp`): (process, address). program: another daemon
    command (bench/empty_masks.py)."""
    from regiond.commands.serve import spawn_daemon

    args = ["--listen", "127.0.0.1:0", "--profile", "lite", "--heads", "bundled", "--data-dir", tmp / "data"]
    args += ["--no-index", "--log-level", "WARNING"]
    return spawn_daemon(args, tmp / "daemon.log", timeout=180, program=program)


def scene_messages(folder: Path, address: str, keyframe_every: int = 0, step: int = 1) -> list:
    """The scene's frames as scan_scene sends them to `address` (its options on the first; the
    masks of every step-th frame only, the ones it draws: 0, none)."""
    from regiond import scenes
    from regiond.api.v1 import regions_pb2 as pb
    from regiond.client.messages import frame_encoding, output_pb, scene_frame_pb
    from regiond.client.scan_outputs import draws_overlay

    encoding = frame_encoding("auto", address)
    msgs = [scene_frame_pb(f, encoding) for f in scenes.open_source(str(folder), instances=False)]
    for k, m in enumerate(msgs):
        if not draws_overlay(k, step):
            m.output.CopyFrom(output_pb(None, masks=False))
    msgs[0].options.CopyFrom(
        pb.SceneOptions(
            scene_id="bench",
            voxel_size=0.02,
            return_ply=True,
            return_label_maps=True,
            carry=pb.CarryOptions(keyframe_every=keyframe_every) if keyframe_every > 1 else None,
        )
    )
    return msgs


@dataclass
class Run:
    """One measurement: frames/s, CPU ms per frame of the daemon (and of the client), the
    client's peak RSS (MiB)."""

    fps: float
    daemon_cpu: float
    client_cpu: float = 0.0
    rss: float = 0.0


def daemon_alone(stub, msgs, daemon_pid: int) -> tuple[Run, list]:
    """One StreamScene of the prepared messages, replies only counted; and the replies."""
    cpu0, t0 = _cpu_seconds(daemon_pid), time.perf_counter()
    replies = list(stub.StreamScene(iter(msgs)))
    seconds, cpu = time.perf_counter() - t0, _cpu_seconds(daemon_pid) - cpu0
    frames = sum(1 for u in replies if u.HasField("regions"))
    errors = [f"frame {u.frame_index}: {u.error.message}" for u in replies if u.HasField("error")]
    assert frames == len(msgs), f"{frames} of {len(msgs)} frames answered; {errors[:3]}"
    return Run(frames / seconds, 1000 * cpu / frames), replies


def scan_scene(address: str, folder: Path, out: Path, frames: int, options: list[str], daemon_pid: int) -> Run:
    """clients/scan_scene.py from process start to exit."""
    shutil.rmtree(out, ignore_errors=True)
    cpu0, t0 = _cpu_seconds(daemon_pid), time.perf_counter()
    proc = subprocess.Popen(
        [
            sys.executable,
            str(REPO / "clients" / "scan_scene.py"),
            str(folder),
            "--server",
            address,
            "--out",
            str(out),
            *options,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    peak = 0.0
    while True:  # the kernel's high-water mark of the client's own memory, until it exits
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        peak = max(peak, _peak_rss_mib(proc.pid))
        time.sleep(0.1)
    seconds, cpu = time.perf_counter() - t0, _cpu_seconds(daemon_pid) - cpu0
    proc.returncode = os.waitstatus_to_exitcode(status)
    output = proc.stdout.read()
    if proc.returncode != 0:
        raise SystemExit(f"bench/scan: scan_scene exited with {proc.returncode}: {output}")
    return Run(frames / seconds, 1000 * cpu / frames, 1000 * (usage.ru_utime + usage.ru_stime) / frames, peak)


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a running process (all its threads)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _peak_rss_mib(pid: int) -> float:
    """VmHWM of a running process (not getrusage's maxrss, which keeps the forking parent's)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:  # exited meanwhile
        pass
    return 0.0


def extraction_alone(images: list) -> float:
    """CPU ms per frame of the lite profile's extraction alone (masks, features, pooling: the
    colour image, no depth, no heads) on the scene's colour images, one pass in this process
    as a daemon worker runs it: what a video frame costs, the baseline of a scene frame's cost
    in the daemon."""
    import threading

    import torch

    from regiond.extraction.profiles import build_extractor

    ex = build_extractor("lite", announce=lambda m: None)
    threads = torch.get_num_threads()
    if not ex.can_batch:
        torch.set_num_threads(1)  # as the daemon runs lite (RegionServer: its ops are too small to split)
    ex.extract(images[0])
    cost = []

    def work():
        t0 = time.process_time()
        for rgb in images:
            ex.extract(rgb)
        cost.append(1000 * (time.process_time() - t0) / len(images))

    t = threading.Thread(target=work)  # a worker thread, as in the daemon
    t.start()
    t.join()
    torch.set_num_threads(threads)
    return cost[0]


def stage_costs(folder: Path, replies: list, frames: int, step: int) -> dict[str, float]:
    """CPU ms per frame of each client stage, on recorded replies, as scan_scene runs them
    (its own functions; `step`: overlays and colour label pictures every step-th frame)."""
    from regiond import scenes
    from regiond.client.messages import region_set, scene_frame_pb
    from regiond.client.scan_outputs import OVERLAY_SUFFIX, ScanOutputs, draws_overlay, overlay_bytes, overlay_picture
    from regiond.core.rle import MaskPixels

    read = functools.partial(scenes.open_source, str(folder), max_frames=frames, instances=False)  # as scan_scene
    source = list(read())
    updates = [u for u in replies if u.HasField("regions")][:frames]
    refined = [u.refined for u in replies if u.HasField("refined")]
    costs: dict[str, float] = {}
    out = Path(tempfile.mkdtemp(prefix="bench-scan-stages-"))

    def timed(name: str, fn, items):
        t0 = time.process_time()
        result = [fn(x) for x in items]
        costs[name] = 1000 * (time.process_time() - t0) / max(1, len(items))
        return result

    try:
        t0 = time.process_time()
        list(read())
        costs["read frame (scenes)"] = 1000 * (time.process_time() - t0) / frames
        timed(
            "encode message (raw colour, mm depth)",
            lambda f: scene_frame_pb(f, "raw").SerializeToString(),
            source,
        )
        regions = timed("reply to RegionSet", lambda u: region_set(u.regions), updates)
        pictured = [k for k in range(len(updates)) if draws_overlay(k, step)]  # the frames sent back with masks
        shown = [(source[k].rgb, regions[k]) for k in pictured]
        pixels = timed("RLE decode", lambda s: MaskPixels.from_counts(s[1].counts, s[1].height, s[1].width), shown)
        pictures = timed("overlay draw", lambda s: overlay_picture(*s[0], s[1]), list(zip(shown, pixels)))
        written = [out / f"{k}{OVERLAY_SUFFIX}" for k in range(len(pictures))]
        timed(
            "overlay JPEG encode + write", lambda p: p[1].write_bytes(overlay_bytes(p[0])), list(zip(pictures, written))
        )
        outputs = ScanOutputs(out, "bench", step, writer=None)  # its writer-thread methods, called here
        timed("ground truth for scoring", lambda f: outputs.scores.truth(int(f.index), f.labels), source)
        outputs.pictured = {int(updates[k].frame_index) for k in pictured}
        final = {int(r.frame_index): r.label_map_png for r in refined}

        def label_outputs(u) -> None:  # written at once, then replaced by the refined one, coloured, scored
            k = int(u.frame_index)
            outputs._provisional_labels(k, u.label_map_png)
            outputs._final_labels(k, final.get(k, u.label_map_png))

        timed(f"label maps (written, refined, scored; coloured 1 in {step})", label_outputs, updates)
    finally:
        shutil.rmtree(out, ignore_errors=True)
    return costs


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--frames", type=int, default=300, help="frames in the scene (default 300)")
    ap.add_argument(
        "--distinct",
        type=int,
        default=None,
        metavar="N",
        help="render N frames and repeat them up to --frames (default: all distinct)",
    )
    ap.add_argument("--seed", type=int, default=5, help="synthetic room seed")
    ap.add_argument(
        "--scene",
        type=Path,
        default=None,
        metavar="DIR",
        help="keep the rendered folder here and reuse it (default: a temporary folder)",
    )
    ap.add_argument("--rounds", type=int, default=2, help="alternating rounds of both measurements (best is reported)")
    ap.add_argument(
        "--overlays",
        default=None,
        metavar="K|all|none",
        help="pass --overlays to scan_scene (default: its own default)",
    )
    ap.add_argument("--stages", action="store_true", help="also print the client's CPU ms per frame per stage")
    ap.add_argument("--keyframe-every", type=int, default=0, metavar="K", help="carry masks between keyframes")
    ap.add_argument(
        "--empty-every",
        type=int,
        default=0,
        metavar="N",
        help="the keyframe generator finds no masks on every N-th keyframe (bench/empty_masks.py)",
    )
    args = ap.parse_args()
    distinct = min(args.distinct or args.frames, args.frames)
    load_start = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="bench-scan-") as tmp:
        tmp = Path(tmp)
        folder = render_scene(args.scene or tmp / "scene", args.frames, distinct, args.seed)
        import grpc

        from regiond import scenes
        from regiond.api.v1 import regions_pb2_grpc as pb_grpc
        from regiond.client.connection import MAX_MESSAGE
        from regiond.client.scan_outputs import overlay_step, parse_overlays

        empty = [sys.executable, str(REPO / "bench" / "empty_masks.py"), str(args.empty_every)]
        proc, address = scan_daemon(tmp, program=empty if args.empty_every else None)
        try:
            step = overlay_step(parse_overlays(args.overlays or "auto"), args.frames)
            msgs = scene_messages(folder, address, args.keyframe_every, step)
            size = [("grpc.max_send_message_length", MAX_MESSAGE), ("grpc.max_receive_message_length", MAX_MESSAGE)]
            channel = grpc.insecure_channel(address, options=size)  # the daemon alone: no client in between
            grpc.channel_ready_future(channel).result(timeout=60)
            stub = pb_grpc.RegionServiceStub(channel)
            daemon_alone(stub, msgs[:5], proc.pid)  # warm-up
            alone, scans, replies = [], [], None
            options = ["--overlays", args.overlays] if args.overlays else []
            if args.keyframe_every > 1:
                options += ["--keyframe-every", str(args.keyframe_every)]
            # --stages: lite extraction alone, right after each daemon-alone round (the machine's
            # speed drifts over minutes; the ratio pairs figures taken together)
            lite_runs, images = [], None
            if args.stages:
                images = [f.rgb for f in scenes.open_source(str(folder), max_frames=min(distinct, 60))]
            for _ in range(args.rounds):
                run, replies = daemon_alone(stub, msgs, proc.pid)
                alone.append(run)
                if args.stages:
                    lite_runs.append(extraction_alone(images))
                scans.append(scan_scene(address, folder, tmp / "scan", args.frames, options, proc.pid))
            channel.close()
        finally:
            proc.terminate()
            proc.wait(30)
        x = max(r.fps for r in scans)
        y = max(r.fps for r in alone)
        load_end = os.getloadavg()
        print(
            f"bench/scan: {args.frames} frames 640x480 ({distinct} distinct) of synthetic:{args.seed}, lite + "
            f"bundled heads, scan_scene --overlays {args.overlays or 'auto'}, best of {args.rounds} alternating "
            f"rounds; load average {load_start[0]:.1f} at the start, {load_end[0]:.1f} at the end, "
            f"{os.cpu_count()} cpus"
        )
        print(
            f"  daemon alone (rounds): {', '.join(f'{r.fps:.1f}' for r in alone)} frames/s; daemon CPU "
            f"{min(r.daemon_cpu for r in alone):.0f} ms/frame"
        )
        print(
            f"  scan_scene (rounds):   {', '.join(f'{r.fps:.1f}' for r in scans)} frames/s; daemon CPU "
            f"{min(r.daemon_cpu for r in scans):.0f} ms/frame, client CPU {min(r.client_cpu for r in scans):.0f} "
            f"ms/frame; client peak RSS {max(r.rss for r in scans):.0f} MiB"
        )
        print(
            f"scan_scene end to end {x:.1f} frames/s, daemon alone {y:.1f} frames/s, ratio {x / y:.2f} "
            f"(targets: ratio >= 0.8, scan_scene >= 12.5 frames/s)"
        )
        paired = [s.fps / a.fps for s, a in zip(scans, alone)]
        print(f"  each round's ratio: {', '.join(f'{r:.2f}' for r in paired)}; median {statistics.median(paired):.2f}")
        if args.keyframe_every > 1 or args.empty_every:
            states = [u.regions.carry for u in replies if u.HasField("regions")]
            generated = sum(1 for c in states if c.keyframe or not args.keyframe_every > 1)
            empty = f"none on 1 keyframe in {args.empty_every}" if args.empty_every else "never empty"
            print(
                f"  masks: all {len(states)} frames answered (daemon alone, last round); generated on {generated}, "
                f"carried to {len(states) - generated} (keyframe every {args.keyframe_every or 1}); the keyframe "
                f"generator's masks: {empty}"
            )
        if args.stages:
            daemon_cpu = min(r.daemon_cpu for r in alone)
            lite = min(lite_runs)
            print(
                f"scene frame CPU / lite extraction = {daemon_cpu / lite:.2f} (daemon CPU {daemon_cpu:.1f} ms a scene "
                f"frame, lite extraction alone {lite:.1f} ms a frame on the same colour images, in this process; "
                f"target <= 2.0)"
            )
            costs = stage_costs(folder, replies, min(args.frames, 30), step)
            print("client CPU per frame, by stage (process time, one thread):")
            for name, ms in costs.items():
                print(f"  {name:40s} {ms:6.1f} ms")
            drawn = sum(ms for name, ms in costs.items() if name.startswith(("RLE", "overlay")))
            total = sum(costs.values())
            print(f"  {'total, a frame with an overlay':40s} {total:6.1f} ms")
            if step != 1:
                average = total - drawn + (drawn / step if step else 0.0)
                print(
                    f"  {'average, overlays every ' + str(step) + ' frames' if step else 'no overlays':40s} "
                    f"{average:6.1f} ms"
                )
    return 0


if __name__ == "__main__":
    sys.exit(main())
