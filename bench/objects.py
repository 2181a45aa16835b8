"""Objects in 3D on generated rooms: the object map against SegmentAnything3D's adjacent-frame
merge and against no association, with lite masks and with the ground-truth masker, in one run.

    python bench/objects.py [--seeds 11,12,13] [--frames 50] [--cache DIR] [--clean] [--clutter] [--ablate]
                            [--scan-frames 100] [--memory 1500]

Rooms: synthetic:SEED at 640×480, one loop of --frames frames each, seen through the Kinect
sensor model (regiond.scenes.synthetic.sensor: depth noise growing with z², holes and flying
pixels at depth edges, depth registered 2 px off the colour, pose drift of up to 3 cm and 1°)
as real RGB-D scans are, the same frames for every method; --clean: the perfect rooms. Rendered
once into --cache (default out/bench-objects). --clutter: each room with 10-25 small things
(5-30 cm) on furniture tops, on each other and on the floor, some touching each other or a wall
(regiond.scenes.synthetic.clutter), as ScanNet's rooms hold them. Seeds 11-13 are held out: the object map's
settings were chosen on seeds 3-6.
Maskers: lite (SLIC superpixels, what runs without weights) and the ground-truth masker (the
rooms' true instance masks: the association alone, with perfect masks).
Methods, on the same regions and points (every 6th pixel each way; the masks are generated on
every frame, as a default scan does):
  object map      regiond.objects (the voxel hash, online)
  adjacent merge  SegmentAnything3D's bidirectional adjacent-frame merge, re-implemented (offline)
  no association  every region of every frame an object of its own: the floor
Scored over each room's fused cloud (2 cm, as the scene stream fuses it) by ScanNet's
class-agnostic instance AP, the rooms' matches pooled; ids per object is the 2D consistency (the
distinct final ids a true object gets over its frames, averaged over the true objects).
Prints:
  objects AP50 X, AP Y, ids per object Z (lite)
  objects AP50 X, AP Y, ids per object Z (ground-truth masker)
  adjacent merge AP50 X, AP Y (lite)
  adjacent merge AP50 X, AP Y (ground-truth masker)
  object map p95 M ms a frame = F of lite extraction, scan with objects / without = R
F: the object map's 95th percentile time a frame over the lite frames, over the median lite
extraction time a frame, both measured here. R: clients/scan_scene.py --objects against the
same scan without, end to end against one daemon (lite), --scan-frames frames of the first
room (bench/scan.py's harness), best of three alternating runs each.
--ablate: the object map's design choices one at a time (a table). --memory N: N frames
going round the first room in loops of --memory-loop frames (default 300: by frame 300 the
scan has seen the whole room, and goes round it again) at 320×240, each frame rendered,
extracted (lite), mapped and fused in a process of its own; its RSS at frame 300 and at N.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

import regiond  # noqa: F401  (first: sets the OpenMP wait policy before torch loads)

REPO = Path(__file__).resolve().parents[1]
LITE, TRUTH = "lite", "ground-truth masker"
METHODS = ("objects", "adjacent merge", "no association")


def rooms(
    seeds, frames: int, cache: Path, sensor: str = "kinect", width: int = 640, height: int = 480, clutter: bool = False
):
    """Per seed, the room's frames through `sensor` (rendered once into
    cache/<seed>-<frames>-<w>x<h>-<sensor>[-clutter].npz)."""
    from regiond.core.frames import Frame
    from regiond.scenes.synthetic import SyntheticScene

    cache.mkdir(parents=True, exist_ok=True)
    for seed in seeds:
        scene = SyntheticScene(seed, frames, width, height, sensor=sensor, clutter=clutter)
        path = cache / f"{seed}-{frames}-{width}x{height}-{sensor}{'-clutter' if clutter else ''}.npz"
        if not path.is_file():
            t0 = time.perf_counter()
            fs = [scene.frame(k) for k in range(frames)]
            arrays = {k: np.stack([getattr(f, k) for f in fs]) for k in ("rgb", "depth", "labels", "pose")}
            arrays |= {
                k: np.stack([f.meta[k] for f in fs]) for k in ("instances", "depth_instances") if k in fs[0].meta
            }
            np.savez(path, **arrays)
            print(f"bench/objects: rendered room {seed} in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
        with np.load(path) as z:
            a = {k: z[k] for k in z.files}  # each read of an npz member reads it all: once
        maps = [k for k in ("instances", "depth_instances") if k in a]
        yield (
            seed,
            [
                Frame(
                    rgb=a["rgb"][k],
                    depth=a["depth"][k],
                    camera=scene.camera,
                    pose=a["pose"][k],
                    index=k,
                    labels=a["labels"][k],
                    meta={"source": f"synthetic:{seed}"} | {m: a[m][k] for m in maps},
                )
                for k in range(frames)
            ],
        )


def extract(frames, masker: str) -> tuple[list, list[float]]:
    """Every frame's regions (masks generated on every frame) and the seconds each took."""
    from regiond.extraction.profiles import build_extractor
    from regiond.masks.carry import CarryConfig, MaskTracker
    from regiond.masks.truth import GroundTruthMasker

    ex = build_extractor("lite")
    tracker = MaskTracker(CarryConfig(every=1)) if masker == TRUTH else None
    if masker == TRUTH:  # the frame-aware masker runs through a tracker generating on every frame
        ex = replace(ex, masker=GroundTruthMasker())
    ex.extract(frames[0], carry=tracker.ticket() if tracker else None)  # warm-up
    regions, seconds = [], []
    for f in frames:
        t0 = time.perf_counter()
        regions.append(ex.extract(f, carry=tracker.ticket() if tracker else None))
        seconds.append(time.perf_counter() - t0)
    return regions, seconds


@dataclass
class Room:
    """A room's fused cloud and its ground truth on the cloud's points."""

    frames: list
    points: np.ndarray
    gt: np.ndarray
    classes: dict


def prepare(frames) -> Room:
    from regiond.geometry import VoxelFusion
    from regiond.objects.instance_truth import TruthFusion

    fusion, truth = VoxelFusion(0.02), TruthFusion(0.02)
    for f in frames:
        fusion.add_frame(f, stride=2)
        truth.add(f)
    points = fusion.cloud().points
    return Room(frames, points, truth.on_points(points), truth.classes())


@dataclass
class Score:
    matches: list = field(default_factory=list)
    ids: list = field(default_factory=list)  # distinct ids per true object, all rooms
    seconds: list = field(default_factory=list)  # object map time a frame

    def result(self):
        from regiond.objects.instance_ap import pooled_scores

        return pooled_scores(self.matches)


def object_map(room: Room, regions, config, score: Score) -> None:
    from regiond.objects import ObjectMap, summarise
    from regiond.objects.instance_ap import match_scene
    from regiond.objects.instance_truth import Consistency
    from regiond.objects.pixels import strided_owner

    omap = ObjectMap(config)
    for f, r in zip(room.frames, regions):
        score.seconds.append(omap.add(f, r).seconds)
    result = summarise(omap, room.points)
    conf = {o.id: o.confidence for o in result.objects}
    score.matches.append(match_scene(result.instances, conf, room.gt, room.classes))
    consistency = Consistency()
    for f, r in zip(room.frames, regions):
        if f.index in result.frame_ids:
            own = strided_owner(r, 1)
            consistency.add(f.meta["instances"], np.where(own >= 0, result.frame_ids[f.index][np.maximum(own, 0)], 0))
    score.ids.extend(consistency.result(room.classes)["per_object"].values())


def adjacent_merge(room: Room, regions, score: Score) -> None:
    from regiond.core.runs import distinct
    from regiond.objects.adjacent import AdjacentMerge
    from regiond.objects.instance_ap import match_scene

    merge = AdjacentMerge()
    for f, r in zip(room.frames, regions):
        merge.add(f, r)
    inst = merge.instance_of(room.points)
    score.matches.append(match_scene(inst, dict.fromkeys(distinct(inst).tolist(), 1.0), room.gt, room.classes))


def floor_config():
    from regiond.objects import ObjectConfig

    return ObjectConfig(associate=False, depth_gap=0.0, min_frames=1, check_pose=False)


def variants() -> dict:
    """The object map's design choices, one at a time against the default."""
    from regiond.objects import ObjectConfig

    d = ObjectConfig()
    return {
        "default (voxel 6 cm, stride 6, assign 0.5, similar 0.85, feature merge 0.95, depth gap 8 %, planes 3 cm)": d,
        "no plane merge (plane_gap 0)": replace(d, plane_gap=0.0),
        "no feature merge (merge_similar > 1)": replace(d, merge_similar=2.0),
        "feature merge 0.9": replace(d, merge_similar=0.9),
        "feature merge from slivers (bridge_voxels 1)": replace(d, bridge_voxels=1),
        "depth-edge points left out (edge 5 %)": replace(d, edge=0.05),
        "no depth split (depth_gap 0)": replace(d, depth_gap=0.0),
        "no feature decision (similar > 1)": replace(d, similar=2.0),
        "no containment rule (contain 1)": replace(d, contain=1.0),
        "no merges (merge 1, merge_similar > 1)": replace(d, merge=1.0, merge_similar=2.0),
        "assign 0.7": replace(d, assign=0.7),
        "similar 0.9": replace(d, similar=0.9),
        "stride 4": replace(d, stride=4),
        "stride 8": replace(d, stride=8),
        "voxel 5 cm": replace(d, voxel=0.05),
        "voxel 8 cm": replace(d, voxel=0.08),
        "min frames 1": replace(d, min_frames=1),
        "min seen 1 (trust voxels one frame saw)": replace(d, min_seen=1),
        "no pose check": replace(d, check_pose=False),
    }


def ablate(data) -> None:
    print("| object map variant | AP50 lite | AP lite | ids lite | AP50 truth | AP truth | ids truth |")
    print("|---|---|---|---|---|---|---|")
    for name, config in variants().items():
        row = []
        for masker in (LITE, TRUTH):
            s = Score()
            for room, regions in data:
                object_map(room, regions[masker], config, s)
            r = s.result()
            row += [f"{100 * r.ap50:.1f}", f"{100 * r.ap:.1f}", f"{np.mean(s.ids):.2f}"]
        print(f"| {name} | " + " | ".join(row) + " |", flush=True)


def memory(seed: int, frames: int, loop: int) -> None:
    """RSS of a process running a long scan: `frames` frames going round the room in loops of
    `loop` frames, each rendered (320×240), extracted (lite), mapped and fused, then dropped."""
    from regiond.extraction.profiles import build_extractor
    from regiond.geometry import VoxelFusion
    from regiond.objects import ObjectMap
    from regiond.scenes.synthetic import SyntheticScene

    scene = SyntheticScene(seed, loop or frames, 320, 240)
    ex, omap, fusion = build_extractor("lite"), ObjectMap(), VoxelFusion(0.02)
    rss, mapped = {}, {}
    for k in range(frames):
        f = replace(scene.frame(k % scene.frames), index=k)
        omap.add(f, ex.extract(f))
        fusion.add_frame(f, stride=2)
        if k + 1 in (300, frames):
            rss[k + 1], mapped[k + 1] = _rss_mib(), omap.memory_bytes() / 2**20
    a, b = rss[300], rss[frames]
    print(
        f"memory ({frames} frames, loops of {scene.frames}): RSS {a:.0f} MiB at frame 300, {b:.0f} MiB at "
        f"frame {frames} ({100 * (b / a - 1):+.1f} %); "
        f"the object map {mapped[300]:.1f} and {mapped[frames]:.1f} MiB ({len(omap.voxels)} voxels, "
        f"{omap.objects.count} ids, {len(omap.records)} frames' region ids); fused cloud {len(fusion.cloud())} points"
    )


def _rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", default="11,12,13", help="generated rooms (held out; default 11,12,13)")
    p.add_argument("--frames", type=int, default=50, help="frames a room (one loop; default 50)")
    p.add_argument("--cache", type=Path, default=REPO / "out" / "bench-objects", help="rendered rooms")
    p.add_argument("--clean", action="store_true", help="perfect rooms: no sensor model (depth, poses, registration)")
    p.add_argument("--clutter", action="store_true", help="rooms with 10-25 small things each (clutter.py)")
    p.add_argument("--ablate", action="store_true", help="also the object map's design choices one at a time")
    p.add_argument("--scan-frames", type=int, default=100, help="frames of the scan throughput runs (0: skip)")
    p.add_argument("--memory", type=int, default=0, metavar="N", help="also a N-frame memory run (e.g. 1500)")
    p.add_argument("--memory-loop", type=int, default=300, help="frames a loop of the memory run (default 300)")
    p.add_argument("--memory-only", action="store_true", help="only the memory run (in this process)")
    args = p.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    from regiond.objects import ObjectConfig

    seeds = [int(s) for s in args.seeds.split(",")]
    sensor = "clean" if args.clean else "kinect"
    if args.memory_only:
        memory(seeds[0], args.memory or 1500, args.memory_loop)
        return 0
    data, lite_seconds = [], []
    for _seed, frames in rooms(seeds, args.frames, args.cache, sensor, clutter=args.clutter):
        regions = {}
        for masker in (LITE, TRUTH):
            regions[masker], seconds = extract(frames, masker)
            if masker == LITE:
                lite_seconds += seconds
        data.append((prepare(frames), regions))
    scores = {}
    for masker in (LITE, TRUTH):
        for method in METHODS:
            s = scores[method, masker] = Score()
            for room, regions in data:
                if method == "objects":
                    object_map(room, regions[masker], ObjectConfig(), s)
                elif method == "no association":
                    object_map(room, regions[masker], floor_config(), s)
                else:
                    adjacent_merge(room, regions[masker], s)
    for masker in (LITE, TRUTH):
        s = scores["objects", masker]
        r = s.result()
        print(f"objects AP50 {100 * r.ap50:.1f}, AP {100 * r.ap:.1f}, ids per object {np.mean(s.ids):.2f} ({masker})")
    for method in ("adjacent merge", "no association"):
        for masker in (LITE, TRUTH):
            r = scores[method, masker].result()
            print(f"{method} AP50 {100 * r.ap50:.1f}, AP {100 * r.ap:.1f} ({masker})")
    p95 = float(np.percentile(scores["objects", LITE].seconds, 95))
    extraction = float(np.median(lite_seconds))
    ratio = scan_ratio(args.scan_frames, seeds[0], args.cache) if args.scan_frames else float("nan")
    print(
        f"object map p95 {1000 * p95:.1f} ms a frame = {p95 / extraction:.2f} of lite extraction, "
        f"scan with objects / without = {ratio:.2f}"
    )
    print(
        f"# {len(seeds)} rooms (seeds {args.seeds}{', cluttered' if args.clutter else ''}), {args.frames} frames "
        f"each at 640×480, sensor {sensor}; "
        f"lite extraction {1000 * extraction:.1f} ms a frame (median); {os.cpu_count()} CPUs, "
        f"load average {os.getloadavg()[0]:.1f}"
    )
    matches = {m: scores[m, TRUTH].matches for m in METHODS}
    found = {m: sum(s.gt_objects - s.by_overlap[0.5][2] for s in ms) for m, ms in matches.items()}
    print(
        f"# true objects found at IoU > 0.5 (ground-truth masker), of {sum(s.gt_objects for s in matches['objects'])}: "
        f"object map {found['objects']}, adjacent merge {found['adjacent merge']}, "
        f"no association {found['no association']}"
    )
    if args.ablate:
        ablate(data)
    if args.memory:  # a fresh process: this one holds the rooms
        import subprocess

        run = [sys.executable, __file__, "--seeds", str(seeds[0]), "--memory", str(args.memory), "--memory-only"]
        subprocess.run(run + ["--memory-loop", str(args.memory_loop)])
    return 0


def scan_ratio(frames: int, seed: int, cache: Path, rounds: int = 3) -> float:
    """Frames a second of scan_scene --objects over scan_scene, end to end against one lite
    daemon with the bundled heads (bench/scan.py's harness), best of `rounds` alternating runs."""
    import tempfile

    from scan import render_scene, scan_daemon, scan_scene  # bench/ is the script folder, first on sys.path

    folder = render_scene(cache / f"scan-{seed}-{frames}", frames, frames, seed)
    with tempfile.TemporaryDirectory(prefix="bench-objects-") as tmp:
        tmp = Path(tmp)
        proc, address = scan_daemon(tmp)
        try:
            runs = {False: [], True: []}
            scan_scene(address, folder, tmp / "warm", min(frames, 5), ["--max-frames", "5"], proc.pid)
            for _ in range(rounds):
                for objects in (False, True):
                    options = ["--objects"] if objects else []
                    runs[objects].append(scan_scene(address, folder, tmp / "scan", frames, options, proc.pid))
        finally:
            proc.terminate()
            proc.wait(30)
    for objects, rs in runs.items():
        print(
            f"# scan_scene {frames} frames of synthetic:{seed} at 640×480 (lite, bundled heads) "
            f"{'with' if objects else 'without'} objects: {', '.join(f'{r.fps:.1f}' for r in rs)} frames/s, daemon "
            f"CPU {min(r.daemon_cpu for r in rs):.0f} ms a frame, client CPU {min(r.client_cpu for r in rs):.0f} ms"
        )
    return max(r.fps for r in runs[True]) / max(r.fps for r in runs[False])


if __name__ == "__main__":
    sys.exit(main())
