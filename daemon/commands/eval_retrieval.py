"""`regiond eval retrieval`: one-shot object retrieval under the paper's protocol.

Queries are the ground-truth masks of a COCO-format collection (a folder of images with an
annotations.json); every other image is scored by its best region (the region index) and,
as the baseline, by its mean-pooled feature grid. Prints AP and precision@50 per class and
their means over classes (mAP, mP@50) for both.

  regiond eval retrieval COLLECTION [--annotations FILE]
  regiond eval retrieval --synthetic 120 [--keep DIR]     # a generated collection

On footage without annotations (--video): every K-th frame is indexed, a central box of
every 10th frame is the query, and the top 5 other frames are correct when within ±10
frames of it (nearby frames show the same objects). Prints `temporal P@5 = x` for both ways
of matching a box (its regions one by one, or one pooled feature), each query searched as
the daemon's Search runs it (--expand: its query expansion, which a pooled box gets).

  regiond eval retrieval --video clip.mp4 [--every K]
  regiond eval retrieval --video path/to/7scenes-seq      # a folder of frames: any source
                                                          # `regiond scene` reads

The index maps every feature with the extractor's normaliser (--normaliser none: raw
features, the scores of indexes built before normalisation), the whole-image baseline too.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile

from regiond.commands.index import add_normaliser_option, normaliser_from_args
from regiond.commands.regions import add_model_options


def register(tasks) -> None:
    p = tasks.add_parser(
        "retrieval",
        help="region search mAP / P@50 against a whole-image baseline",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "collection",
        nargs="?",
        metavar="COLLECTION",
        help="folder of images with a COCO annotations.json (instance masks as polygons or RLE)",
    )
    p.add_argument(
        "--annotations",
        metavar="FILE",
        default=None,
        help="COCO annotations file (default: COLLECTION/annotations.json)",
    )
    p.add_argument(
        "--synthetic",
        type=int,
        metavar="N",
        default=0,
        help="instead of COLLECTION: generate N synthetic images (objects of 6 classes pasted "
        "on varied backgrounds) and evaluate on them",
    )
    p.add_argument(
        "--video",
        metavar="SOURCE",
        default=None,
        help="instead of COLLECTION: temporal retrieval on a video file or a folder of frames "
        "(7-Scenes, ScanNet export, .sens, synthetic:SEED)",
    )
    p.add_argument("--every", type=int, default=1, metavar="K", help="with --video: index every K-th frame (default 1)")
    p.add_argument(
        "--window",
        type=int,
        default=10,
        metavar="W",
        help="with --video: hits within ±W frames of the query are correct (default 10)",
    )
    p.add_argument(
        "--match",
        default="regions",
        choices=["regions", "pooled"],
        help="with --video: the way of matching the box that the `temporal P@5 =` line reports "
        "(both are printed): regions (default) or pooled",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the synthetic collection and query sampling")
    p.add_argument(
        "--keep",
        metavar="DIR",
        default=None,
        help="with --synthetic: write the collection here (default: a temporary folder)",
    )
    p.add_argument(
        "--index-dir",
        metavar="DIR",
        default=None,
        help="region index to build or reuse (default: a temporary one, deleted afterwards)",
    )
    p.add_argument(
        "--queries-per-class",
        type=int,
        default=0,
        metavar="N",
        help="sample at most N queries per class (default 0: every instance is a query)",
    )
    p.add_argument("--precision-at", type=int, default=50, metavar="K", help="precision@K (default 50)")
    p.add_argument(
        "--expand",
        type=int,
        default=None,
        metavar="N",
        help="query expansion of single-feature queries (a collection's region queries; --video: "
        "pooled boxes): the best regions of the top N other images join the query (αQE), as "
        "the daemon's Search does; default: as it expands an unset request; 0: none. "
        "With a collection, the table also shows the regions without expansion",
    )
    p.add_argument("--json", action="store_true", help="print the metrics as JSON after the table")
    add_normaliser_option(p)
    add_model_options(p)
    p.set_defaults(func=run)


def run(args) -> int:
    import torch  # heavy: only when the command runs (--help stays light)

    from regiond.extraction.profiles import build_extractor  # torch: only when the command runs (--help stays light)
    from regiond.index.evaluation.one_shot import (
        evaluate_retrieval,
    )  # faiss: only when the command runs (--help stays light)
    from regiond.index.searching import SERVED_EXPANSION
    from regiond.scenes.annotated_images import (  # faiss: only when the command runs (--help stays light)
        load_coco,
        make_synthetic_collection,
    )

    torch.set_num_threads(max(1, min(2, torch.get_num_threads())))
    if sum(map(bool, (args.collection, args.synthetic, args.video))) != 1:
        print("regiond eval retrieval: give COLLECTION, --synthetic N or --video SOURCE (one of them)", file=sys.stderr)
        return 2
    extractor = build_extractor(args.profile, args.weights, device=args.device, sam_generator=args.sam_generator)
    normaliser = normaliser_from_args(args, extractor)
    expand = SERVED_EXPANSION if args.expand is None else args.expand
    print(f"profile {extractor.profile}, backbone {extractor.backbone.name}")
    if args.video:
        return run_video(args, extractor, normaliser, expand)
    tmp = None
    root = args.collection
    if args.synthetic:
        if args.keep:
            root = args.keep
        else:
            tmp = tempfile.TemporaryDirectory(prefix="regiond-synth-")
            root = tmp.name
        make_synthetic_collection(root, args.synthetic, seed=args.seed)
    try:
        collection = load_coco(root, args.annotations)
        report = evaluate_retrieval(
            collection,
            extractor,
            index_dir=args.index_dir,
            queries_per_class=args.queries_per_class or None,
            precision_k=args.precision_at,
            seed=args.seed,
            progress=True,
            normaliser=normaliser,
            expand=expand,
        )
    finally:
        if tmp is not None:
            tmp.cleanup()
    print(report.text())
    if args.json:
        print(json.dumps(report.as_dict()))
    return 0


def run_video(args, extractor, normaliser, expand: int) -> int:
    from regiond.index.evaluation.temporal import evaluate_temporal  # faiss: only when the command runs
    from regiond.scenes import open_source

    report = evaluate_temporal(
        open_source(args.video),
        extractor,
        source=args.video,
        every=args.every,
        window=args.window,
        normaliser=normaliser,
        progress=True,
        expand=expand,
    )
    print(report.text(args.match))
    if args.json:
        print(json.dumps(report.as_dict()))
    return 0
