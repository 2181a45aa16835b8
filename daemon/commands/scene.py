"""`regiond scene info SOURCE` and `regiond scene fuse SOURCE --out cloud.ply`.

SOURCE is anything regiond.scenes.open_source takes: a ScanNet .sens file, a ScanNet exported folder,
a 7-Scenes-style folder, a video file, camera:N or synthetic:SEED.
"""

from __future__ import annotations

import json
import sys

import numpy as np
from tqdm import tqdm

from regiond import scenes
from regiond.geometry import VoxelFusion, valid_depth, write_ply


def _size(text: str):
    try:
        w, h = (int(v) for v in text.lower().split("x"))
        return w, h
    except ValueError:
        raise ValueError(f"--size: expected WIDTHxHEIGHT, got {text!r}") from None


def _opt(text: str):
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise ValueError(f"--source-opt: expected KEY=VALUE, got {text!r}")
    for cast in (int, float):
        try:
            return key, cast(value)
        except ValueError:
            pass
    return key, value


def add_source_options(p) -> None:
    """Sampling and source options shared by the scene commands."""
    p.add_argument(
        "source",
        metavar="SOURCE",
        help="a .sens file, ScanNet exported folder, 7-Scenes folder, video file, camera:N or synthetic:SEED",
    )
    p.add_argument("--every", type=int, default=1, metavar="K", help="use every K-th frame (default 1)")
    p.add_argument("--count", type=int, default=None, metavar="N", help="then N evenly spaced frames")
    p.add_argument("--max-frames", type=int, default=None, metavar="N", help="then at most N frames")
    p.add_argument(
        "--size",
        type=_size,
        default=None,
        metavar="WxH",
        help="resample frames to WIDTHxHEIGHT (intrinsics scaled; depth nearest)",
    )
    p.add_argument(
        "--labels-tsv",
        default=None,
        metavar="TSV",
        help="scannetv2-labels.combined.tsv: map a ScanNet folder's label-filt raw ids to NYU40",
    )
    p.add_argument(
        "--source-opt",
        type=_opt,
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="other options of the source kind: depth_shift=1000 (folders); frames=N, width=W, "
        "height=H (synthetic:SEED). Repeatable",
    )


def open_from_args(args):
    opts = dict(args.source_opt)
    if args.labels_tsv:
        opts["labels_tsv"] = args.labels_tsv
    return scenes.open_source(
        args.source, every=args.every, count=args.count, max_frames=args.max_frames, size=args.size, **opts
    )


def register(sub) -> None:
    p = sub.add_parser(
        "scene", help="RGB-D scenes and videos: facts about a source, fused point clouds", description=__doc__
    )
    ssub = p.add_subparsers(dest="scene_command", metavar="ACTION")
    info = ssub.add_parser(
        "info",
        help="frame count, sizes, intrinsics, depth range, frames without a pose",
        description="Describe a source, then read its frames for the depth range and the "
        "frames without a valid pose (skip that with --no-scan).",
    )
    add_source_options(info)
    info.add_argument("--no-scan", action="store_true", help="only what the header/folder says; read no frames")
    info.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    info.set_defaults(func=run_info)
    fuse = ssub.add_parser(
        "fuse",
        help="fused, voxel-downsampled, coloured (and labelled) point cloud as PLY",
        description="Back-project every frame with depth and a valid pose into the world, "
        "merge the points on a voxel grid (mean position and colour, majority "
        "label), and write a binary PLY (x y z, red green blue, label when "
        "the source has ground-truth labels).",
    )
    add_source_options(fuse)
    fuse.add_argument("--out", required=True, metavar="PLY", help="output .ply file")
    fuse.add_argument("--voxel", type=float, default=0.02, metavar="METRES", help="voxel size (default 0.02)")
    fuse.add_argument(
        "--max-depth", type=float, default=10.0, metavar="METRES", help="ignore depth beyond this (default 10)"
    )
    fuse.add_argument("--stride", type=int, default=1, metavar="S", help="use every S-th pixel (default 1)")
    fuse.set_defaults(func=run_fuse)
    p.set_defaults(func=lambda args: p.print_help() or 2)


def _bar(source, desc):
    total = source.total() and len(source)
    return tqdm(desc=desc, total=total, unit="frame", file=sys.stderr)


def run_info(args) -> int:
    source = open_from_args(args)
    info = source.describe()
    if not args.no_scan:
        if source.total() is None and args.max_frames is None:
            raise ValueError("--max-frames is needed to scan a source of unknown length (or use --no-scan)")
        lo, hi, n, no_pose, no_depth, sizes = np.inf, -np.inf, 0, [], [], set()
        with _bar(source, "scanning") as bar:
            for f in source:
                n += 1
                sizes.add((f.width, f.height))
                if f.depth is not None:
                    d = f.depth[valid_depth(f.depth, max_depth=np.inf)]
                    if d.size:
                        lo, hi = min(lo, float(d.min())), max(hi, float(d.max()))
                    else:
                        no_depth.append(f.index)
                if f.depth is not None and f.pose is None:
                    no_pose.append(f.index)
                bar.update(1)
        info["scanned_frames"] = n
        info["frame_sizes"] = sorted(list(s) for s in sizes)
        info["depth_range_m"] = [round(lo, 4), round(hi, 4)] if np.isfinite(lo) else None
        info["frames_without_pose"] = no_pose
        info["frames_without_depth"] = no_depth
    if args.json:
        print(json.dumps(info, indent=2))
    else:
        for k, v in info.items():
            if isinstance(v, list) and len(v) > 12:
                v = f"{v[:12]} ... ({len(v)} in all)"
            print(f"{k:22s} {v}")
    return 0


def run_fuse(args) -> int:
    if not args.out.lower().endswith(".ply"):
        raise ValueError(f"--out: expected a .ply file, got {args.out}")
    source = open_from_args(args)
    if source.total() is None and args.max_frames is None:
        raise ValueError("--max-frames is needed for a source of unknown length")
    fusion = VoxelFusion(args.voxel, args.max_depth)
    with _bar(source, "fusing") as bar:
        for f in source:
            fusion.add_frame(f, stride=args.stride)
            bar.update(1)
    cloud = fusion.cloud()
    if not len(cloud):
        raise ValueError(f"{args.source}: no frame had depth and a valid pose; nothing to fuse")
    write_ply(args.out, cloud)
    labelled = "" if cloud.labels is None else f", {int((cloud.labels > 0).sum())} labelled"
    print(
        f"{args.out}: {len(cloud)} points{labelled} from {fusion.frames_used} frames "
        f"({fusion.frames_skipped} skipped: no depth or pose), voxel {args.voxel} m"
    )
    return 0
