"""`regiond extract SOURCE... --out CACHE`: region tokens of scenes, clips or images, once.

Training and evaluation read the cache instead of re-extracting. SOURCE is a scene (a
ScanNet/7-Scenes-style folder, a synthetic room, or a .sens file), a clip folder (videos and a
labels.csv of `file,label` rows: 8 evenly spaced frames per video), or an image folder
(images/ and labels/ with label maps of the same stem). Per-region labels come from the
ground truth by the >50% rule. Extending an existing cache with tokens of another profile or
other models is refused.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from core.errors import InputError
from scenes.collections import detect_kind

from .regions import add_model_options

#: SAM generator preset for each kind of source (the paper's settings; see regions.sam.PRESETS).
KIND_PRESET = {"scene": "scene", "clip": "activity", "images": "image"}


def register(sub) -> None:
    p = sub.add_parser("extract", help="extract region tokens of scenes, clips or images into a token cache",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("sources", nargs="+", metavar="SOURCE",
                   help="scene folders or .sens files, clip folders with labels.csv, or image folders "
                        "with images/ and labels/ (one kind per call)")
    p.add_argument("--out", required=True, metavar="CACHE",
                   help="cache directory (created; an existing cache is extended if its profile and models match)")
    p.add_argument("--kind", default="auto", choices=["auto", "scene", "clip", "images"],
                   help="what the sources are (default: detected per source)")
    p.add_argument("--every", type=int, default=1, metavar="K", help="scenes: keep every K-th frame (default 1)")
    p.add_argument("--max-frames", type=int, default=None, metavar="N", help="scenes: at most N frames per scene")
    p.add_argument("--size", type=int, nargs=2, default=None, metavar=("W", "H"),
                   help="resample frames to W×H before extraction (labels nearest); default: as recorded")
    p.add_argument("--patches", action="store_true",
                   help="also store patch tokens (backbone grid cells) for the patch-token baselines")
    add_model_options(p)
    p.set_defaults(func=run)


def run(args) -> int:
    import torch  # heavy: only when the command runs (--help stays light)

    from daemon.extraction.jobs import extract_to_cache  # torch: only when the command runs (--help stays light)
    from daemon.extraction.profiles import build_extractor  # torch: only when the command runs (--help stays light)

    torch.set_num_threads(max(1, min(torch.get_num_threads(), 4)))
    kinds = {args.kind} if args.kind != "auto" else {detect_kind(Path(s)) for s in args.sources}
    if len(kinds) > 1:
        raise InputError("sources", f"mixed kinds {sorted(kinds)}: extract each kind in its own call "
                                    f"(they use different SAM presets)")
    kind = kinds.pop()
    extractor = build_extractor(args.profile, args.weights, device=args.device, preset=KIND_PRESET[kind],
                                sam_generator=args.sam_generator)
    cache = extract_to_cache(args.sources, args.out, extractor, kind=kind, every=args.every,
                             max_frames=args.max_frames, size=args.size, patches=args.patches)
    n_frames = sum(len(i.frames) for i in cache.items)
    print(f"{cache.root}: {len(cache.items)} items, {n_frames} frames, profile {cache.versions['profile']} "
          f"({cache.versions['masker']}, {cache.versions['backbone']}, dim {cache.versions['dim']})")
    return 0
