"""`regiond synth scene` and `regiond synth clips`: synthetic data with ground truth.

scene: a room rendered along a camera loop (colour, depth, NYU40 labels, poses), written as a
ScanNet exported folder (label-filt holds NYU40 ids; regiond-scene.json says so) or a .sens
file. clips: short videos of 9 motion classes with distractors, plus labels.csv.
Everything is deterministic by seed.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from tqdm import tqdm

from regiond.scenes.synthetic import ACTIVITY_CLASSES, SyntheticScene, write_clips, write_scene_folder, write_scene_sens


def register(sub) -> None:
    p = sub.add_parser(
        "synth", help="generate synthetic RGB-D scenes and activity clips with ground truth", description=__doc__
    )
    ssub = p.add_subparsers(dest="synth_command", metavar="WHAT")
    s = ssub.add_parser("scene", help="a synthetic room as a ScanNet exported folder or a .sens file")
    s.add_argument("--seed", type=int, default=0, help="room and trajectory seed (default 0)")
    s.add_argument("--frames", type=int, default=100, help="frames along one loop of the room (default 100)")
    s.add_argument("--width", type=int, default=640, help="image width (default 640)")
    s.add_argument("--height", type=int, default=480, help="image height (default 480)")
    s.add_argument(
        "--out",
        required=True,
        metavar="DIR",
        help="output folder (format folder), or a .sens file / a folder to put scene_SEED.sens in (format sens)",
    )
    s.add_argument(
        "--format",
        choices=("folder", "sens"),
        default="folder",
        help="folder: color/ depth/ pose/ intrinsic/ label-filt/ instance-filt/ + regiond-scene.json; "
        "sens: ScanNet .sens v4 (+ <file>.json with the room's objects). Default folder",
    )
    s.set_defaults(func=run_scene)
    c = ssub.add_parser("clips", help="activity clips (videos) with labels.csv")
    c.add_argument("--per-class", type=int, required=True, metavar="K", help="clips per class")
    c.add_argument("--out", required=True, metavar="DIR", help="output folder (CLASS/CLASS_SEED.mp4 and labels.csv)")
    c.add_argument("--seed", type=int, default=0, help="set seed; clip k of a set has seed SEED*1000+k (default 0)")
    c.add_argument("--frames", type=int, default=32, help="frames per clip (default 32)")
    c.add_argument("--width", type=int, default=160, help="frame width (default 160)")
    c.add_argument("--height", type=int, default=120, help="frame height (default 120)")
    c.add_argument("--fps", type=float, default=15.0, help="frames per second written in the video (default 15)")
    c.add_argument("--format", choices=("mp4", "avi"), default="mp4", help="mp4 (mp4v) or avi (MJPG); default mp4")
    c.set_defaults(func=run_clips)
    p.set_defaults(func=lambda args: p.print_help() or 2)


def run_scene(args) -> int:
    scene = SyntheticScene(args.seed, args.frames, args.width, args.height)
    t0 = time.perf_counter()
    with tqdm(total=args.frames, desc=f"synthetic scene {args.seed}", unit="frame", file=sys.stderr) as bar:
        if args.format == "folder":
            out = write_scene_folder(scene, args.out, progress=bar)
        else:
            out = Path(args.out)
            if out.suffix != ".sens":
                out = out / f"scene_{args.seed:04d}.sens"
            out = write_scene_sens(scene, out, progress=bar)
    dt = time.perf_counter() - t0
    classes = ", ".join(str(c) for c in scene.room.classes())
    print(
        f"{out}: {args.frames} frames {args.width}x{args.height} in {dt:.1f} s "
        f"({dt / args.frames * 1000:.0f} ms/frame); room {scene.room.width:.2f}x{scene.room.depth:.2f}x"
        f"{scene.room.height:.2f} m, {len(scene.room.objects)} objects, NYU40 classes {classes}"
    )
    return 0


def run_clips(args) -> int:
    n = args.per_class * len(ACTIVITY_CLASSES)
    t0 = time.perf_counter()
    with tqdm(total=n, desc="clips", unit="clip", file=sys.stderr) as bar:
        csv_path = write_clips(
            args.out,
            args.per_class,
            seed=args.seed,
            frames=args.frames,
            width=args.width,
            height=args.height,
            fps=args.fps,
            video_format=args.format,
            progress=bar,
        )
    print(
        f"{csv_path}: {n} clips ({args.per_class} per class: {', '.join(ACTIVITY_CLASSES)}) "
        f"in {time.perf_counter() - t0:.1f} s"
    )
    return 0
