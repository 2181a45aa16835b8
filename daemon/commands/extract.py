"""`regiond extract SOURCE... --out CACHE`: region tokens of scenes, clips or images, once.

Training and evaluation read the cache instead of re-extracting. SOURCE is a scene (a
ScanNet/7-Scenes-style folder, a synthetic room, or a .sens file), a clip folder (videos and a
labels.csv of `file,label` rows: 8 evenly spaced frames per video), or an image folder
(images/ and labels/ with label maps of the same stem). Per-region labels come from the
ground truth by the >50% rule. Extending an existing cache with tokens of another profile or
other models is refused.

Items (a scene, a clip, an image folder) are written atomically; re-running a job skips the
items already in the cache, and a source that fails is reported and skipped (exit status 1).

On Ray (--ray): a Ray Data pipeline whose actors each load the models once and extract whole
items, reading the frames where they are and writing into CACHE, which (like the sources and
the weights) must be on a path every node reaches:

  regiond extract scenes/* --out /shared/cache --ray                  # a local Ray instance for the job
  ray start --head                                                    # on one machine, then on the others:
  ray start --address=HEAD:6379                                       # (same regiond and paths everywhere)
  regiond extract scenes/* --out /shared/cache --ray HEAD:6379 --device cuda   # one GPU per actor
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from regiond.commands.regions import add_model_options
from regiond.core.errors import InputError
from regiond.core.flags import add_flags, flag_values
from regiond.extraction.pool import RayOptions
from regiond.scenes.labelled_folders import detect_kind

#: SAM generator preset for each kind of source (the paper's settings; see regions.sam.PRESETS).
KIND_PRESET = {"scene": "scene", "clip": "activity", "images": "image"}


def register(sub) -> None:
    p = sub.add_parser(
        "extract",
        help="extract region tokens of scenes, clips or images into a token cache",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "sources",
        nargs="+",
        metavar="SOURCE",
        help="scene folders or .sens files, clip folders with labels.csv, or image folders "
        "with images/ and labels/ (one kind per call)",
    )
    p.add_argument(
        "--out",
        required=True,
        metavar="CACHE",
        help="cache directory (created; an existing cache is extended if its profile and models match)",
    )
    p.add_argument(
        "--kind",
        default="auto",
        choices=["auto", "scene", "clip", "images"],
        help="what the sources are (default: detected per source)",
    )
    p.add_argument("--every", type=int, default=1, metavar="K", help="scenes: keep every K-th frame (default 1)")
    p.add_argument("--max-frames", type=int, default=None, metavar="N", help="scenes: at most N frames per scene")
    p.add_argument(
        "--size",
        type=int,
        nargs=2,
        default=None,
        metavar=("W", "H"),
        help="resample frames to W×H before extraction (labels nearest); default: as recorded",
    )
    p.add_argument(
        "--keyframe-every",
        type=int,
        default=0,
        metavar="K",
        help="scenes and clips: generate masks on every K-th frame only and carry them to the frames "
        "between (scenes: reprojected with depth and poses; clips: optical flow; SLIC fills the "
        "gaps); a frame whose carried masks cover too little becomes a keyframe (default: off)",
    )
    p.add_argument(
        "--min-coverage",
        type=float,
        default=0.0,
        metavar="F",
        help="with --keyframe-every: a frame whose carried masks cover less than this share of what its "
        "keyframe's covered becomes a keyframe (default 0.8)",
    )
    p.add_argument(
        "--skip-bad-frames",
        action="store_true",
        help="scenes: a frame that cannot be read (bad compression, a truncated image, a missing depth "
        "file) is reported and skipped (the item's meta lists it) instead of failing the scene",
    )
    p.add_argument(
        "--patches",
        action="store_true",
        help="also store patch tokens (backbone grid cells) for the patch-token baselines",
    )
    add_model_options(p)
    add_ray_options(p)
    p.set_defaults(func=run)


def add_ray_options(p) -> None:
    """--ray [ADDRESS], --actors, --cpus-per-actor, --gpus-per-actor (extract, label)."""
    r = p.add_argument_group("Ray")
    r.add_argument(
        "--ray",
        nargs="?",
        const="local",
        default=None,
        metavar="ADDRESS",
        help="run on Ray: no ADDRESS (or 'local') starts a Ray instance on this machine for the job; "
        "an ADDRESS (HOST:6379, or 'auto') joins that cluster",
    )
    add_flags(r, RayOptions, only=("actors", "cpus_per_actor"))
    r.add_argument(
        "--gpus-per-actor",
        type=float,
        default=None,
        metavar="G",
        help="GPUs each actor reserves (default: 1 with --device cuda, else 0)",
    )


def ray_options(args):
    """The RayOptions of --ray and its companions (None without --ray)."""
    if args.ray is None:
        return None
    gpus = args.gpus_per_actor if args.gpus_per_actor is not None else (1.0 if args.device.startswith("cuda") else 0.0)
    return RayOptions(address=args.ray, gpus_per_actor=gpus, **flag_values(args, RayOptions))


def actor_build(args, **kw) -> dict:
    """build_extractor's arguments for the actors: the profile resolved here (auto → a name)."""
    from regiond.extraction.profiles import resolve_profile  # torch: only when the command runs

    return dict(
        profile=resolve_profile(args.profile, args.weights).name, weights_dir=args.weights, device=args.device, **kw
    )


def run(args) -> int:
    import torch  # heavy: only when the command runs (--help stays light)

    from regiond.extraction.extract_job import extract_on_ray, extract_to_cache  # torch: only when the command runs
    from regiond.extraction.pool import ray_cluster
    from regiond.extraction.profiles import build_extractor  # torch: only when the command runs (--help stays light)

    torch.set_num_threads(max(1, min(torch.get_num_threads(), 4)))
    kinds = {args.kind} if args.kind != "auto" else {detect_kind(Path(s)) for s in args.sources}
    if len(kinds) > 1:
        raise InputError(
            "sources",
            f"mixed kinds {sorted(kinds)}: extract each kind in its own call (they use different SAM presets)",
        )
    kind = kinds.pop()
    if args.keyframe_every < 0 or not 0 <= args.min_coverage <= 1:
        raise InputError(
            "keyframe_every", "--keyframe-every must be 0 (off) or a number of frames, --min-coverage between 0 and 1"
        )
    job = dict(
        kind=kind,
        every=args.every,
        max_frames=args.max_frames,
        size=args.size,
        patches=args.patches,
        keyframes=(args.keyframe_every, args.min_coverage),
        skip_bad_frames=args.skip_bad_frames,
    )
    ray = ray_options(args)
    if ray is None:
        extractor = build_extractor(
            args.profile, args.weights, device=args.device, preset=KIND_PRESET[kind], sam_generator=args.sam_generator
        )
        report = extract_to_cache(args.sources, args.out, extractor, **job)
    else:
        with ray_cluster(ray):
            report = extract_on_ray(
                args.sources,
                args.out,
                actor_build(args, preset=KIND_PRESET[kind], sam_generator=args.sam_generator),
                ray,
                **job,
            )
    for source, error in report.failures:
        print(f"regiond extract: {source}: {error}", file=sys.stderr)
    for item in report.extracted:
        for s in item.meta.get("skipped_frames", []):
            print(f"regiond extract: {item.name}: frame {s['frame']} skipped: {s['reason']}", file=sys.stderr)
    v = report.cache.versions
    n_frames = sum(len(i.frames) for i in report.cache.items)
    print(
        f"{report.cache.root}: {len(report.cache.items)} items, {n_frames} frames, profile {v['profile']} "
        f"({v['masker']}, {v['backbone']}, dim {v['dim']})"
    )
    print(report.summary())
    return 1 if report.failures else 0
