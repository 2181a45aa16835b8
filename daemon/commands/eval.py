"""`regiond eval segment|scene|activity|labels|retrieval ...`: score a trained head on a token cache.

segment/scene  per-pixel labels (mean of the softmax of every region covering a pixel,
               uncovered pixels unlabelled) against the cache's label maps: IoU per class and
               mIoU under ScanNet's 20-class protocol (640×480 nearest, ground truth outside
               the 20 ignored), or `--protocol head` for the head's own classes
activity       top-1 / top-5 accuracy over the cache's clips
labels         label PNGs in ScanNet's benchmark layout (clients/scan_scene.py) vs a scene's ground truth
instances      a scan's objects (clients/scan_scene.py --objects) vs its scene's instance maps:
               class-agnostic AP, AP50, AP25 over the fused cloud's points (ScanNet's rules) and
               the 2D consistency (distinct ids per true object)
retrieval      region search evaluation (daemon/commands/eval_retrieval.py)
"""

from __future__ import annotations

import argparse
import importlib
import json


def register(sub) -> None:
    p = sub.add_parser(
        "eval",
        help="evaluate a head (mIoU, top-1/top-5, confusion matrix) or retrieval",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    tasks = p.add_subparsers(dest="eval_task", metavar="TASK")
    for task in ("segment", "scene", "activity"):
        t = tasks.add_parser(
            task,
            help=f"evaluate a {task} head on a token cache",
            description=__doc__,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        t.add_argument("--head", required=True, metavar="DIR", help="head directory (`regiond train`)")
        t.add_argument("--cache", required=True, metavar="DIR", help="token cache with ground truth")
        if task != "activity":
            t.add_argument(
                "--protocol",
                default="scannet20",
                choices=["scannet20", "head"],
                help="scannet20 (default): the 20 benchmark classes at 640×480; "
                "head: the head's own classes at the cache's resolution",
            )
        t.add_argument("--confusion", metavar="PNG", default=None, help="write the confusion matrix picture here")
        t.add_argument("--json", action="store_true", help="print the metrics as JSON after the table")
        t.add_argument(
            "--record",
            action="store_true",
            help="write the score into the head's config.json as its held-out score (meta.trained_on; "
            "the cache must be data it was neither trained nor validated on)",
        )
        t.set_defaults(func=run, task=task)
    t = tasks.add_parser(
        "labels",
        help="score label PNGs in ScanNet's benchmark layout against a scene's ground truth",
        description="Label maps named <scene>_<frame:06d>.png (as clients/scan_scene.py writes "
        "them) against the ground truth of SCENE (any regiond.scenes.open_source spec with "
        "labels), under ScanNet's 20-class protocol.",
    )
    t.add_argument("pred", metavar="DIR", help="folder of predicted label PNGs (8-bit NYU40 ids)")
    t.add_argument("--scene", required=True, help="the scene with ground truth (ScanNet folder, .sens, synthetic room)")
    t.add_argument("--labels-tsv", default=None, help="scannetv2-labels.combined.tsv for ScanNet's raw label ids")
    t.add_argument("--confusion", metavar="PNG", default=None, help="write the confusion matrix picture here")
    t.add_argument("--json", action="store_true", help="print the metrics as JSON after the table")
    t.set_defaults(func=run_labels)
    t = tasks.add_parser(
        "instances",
        help="score a scan's objects against its scene's instance maps (AP, AP50, AP25, ids per object)",
        description="The objects of a scan folder written by clients/scan_scene.py --objects (instances/<scene>.txt "
        "over scene.ply, object_ids/) against the instance maps (instance-filt/) of its scene, opened again "
        "with the scan's settings from its scan-progress.jsonl (or the options here). Class-agnostic instance "
        "AP by ScanNet's rules: IoU 0.5:0.95, duplicates are false positives, wall/floor/ceiling excluded, "
        "true objects under 100 points ignored.",
    )
    t.add_argument("scan", metavar="SCAN_DIR", help="the scan's output folder")
    t.add_argument("--scene", default=None, help="the scene with instance maps (default: the scan's)")
    t.add_argument("--every", type=int, default=None, metavar="K", help="the scan's frame step (default: the scan's)")
    t.add_argument("--max-frames", type=int, default=None, metavar="N", help="(default: the scan's)")
    t.add_argument("--size", default=None, metavar="WxH", help="(default: the scan's)")
    t.add_argument("--labels-tsv", default=None, help="scannetv2-labels.combined.tsv for ScanNet's raw label ids")
    t.add_argument("--json", action="store_true", help="print the metrics as JSON after the text")
    t.set_defaults(func=run_instances)
    try:  # written by the index engineer; absent until it lands
        retrieval = importlib.import_module("regiond.commands.eval_retrieval")
    except ModuleNotFoundError as e:
        if e.name != "regiond.commands.eval_retrieval":
            raise
    else:
        retrieval.register(tasks)
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])


def run(args) -> int:
    import torch  # heavy: only when the command runs (--help stays light)

    from regiond.heads.cache_jobs import evaluate_on_cache  # torch: only when the command runs (--help stays light)

    torch.set_num_threads(1)
    rep = evaluate_on_cache(
        args.task, args.head, args.cache, protocol=getattr(args, "protocol", "scannet20"), confusion_png=args.confusion
    )
    print(rep.text)
    if args.json:
        print(json.dumps(rep.metrics))
    if args.record:
        record(args, rep)
    return 0


def record(args, rep) -> None:
    """The score as the head's held-out score (refused on its own training or validation cache)."""
    from pathlib import Path

    from regiond.core.errors import InputError
    from regiond.heads.registry import load_head
    from regiond.heads.trained_on import record_held_out

    meta = load_head(args.head).meta
    used = {Path(p).resolve() for p in (meta.get("train_cache"), meta.get("val_cache")) if p}
    if Path(args.cache).resolve() in used:
        raise InputError(
            "cache", f"{args.cache} is the head's training or validation cache: --record wants held-out data"
        )
    if args.task == "activity":
        metric, score, on = "top-1", rep.metrics["top1"], f"{rep.metrics['clips']} clips"
    else:
        protocol = "ScanNet-20" if args.protocol == "scannet20" else "head-class"
        metric, score, on = f"{protocol} mIoU", rep.metrics["miou"], f"{rep.metrics['frames']} frames"
    record_held_out(args.head, metric, score, f"{on} of token cache {args.cache}")
    print(f"recorded in {Path(args.head) / 'config.json'}: held-out {metric} {100 * score:.1f} %")


def run_labels(args) -> int:
    from regiond.heads.cache_jobs import evaluate_label_folder  # torch: only when the command runs (--help stays light)

    rep = evaluate_label_folder(args.pred, args.scene, labels_tsv=args.labels_tsv, confusion_png=args.confusion)
    print(rep.text)
    if args.json:
        print(json.dumps(rep.metrics))
    return 0


def run_instances(args) -> int:
    from regiond.objects.evaluation import evaluate_scan  # scenes and scipy: only when the command runs

    rep = evaluate_scan(
        args.scan,
        scene=args.scene,
        every=args.every,
        max_frames=args.max_frames,
        size=args.size,
        labels_tsv=args.labels_tsv,
    )
    print(rep.text)
    if args.json:
        print(json.dumps(rep.metrics))
    return 0
