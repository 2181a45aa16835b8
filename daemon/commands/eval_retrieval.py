"""`regiond eval retrieval`: one-shot object retrieval under the paper's protocol.

Queries are the ground-truth masks of a COCO-format collection (a folder of images with an
annotations.json); every other image is scored by its best region (the region index) and,
as the baseline, by its mean-pooled feature grid. Prints AP and precision@50 per class and
their means over classes (mAP, mP@50) for both.

  regiond eval retrieval COLLECTION [--annotations FILE]
  regiond eval retrieval --synthetic 120 [--keep DIR]     # a generated collection
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile

from .regions import add_model_options


def register(tasks) -> None:
    p = tasks.add_parser("retrieval", help="region search mAP / P@50 against a whole-image baseline",
                         description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("collection", nargs="?", metavar="COLLECTION",
                   help="folder of images with a COCO annotations.json (instance masks as polygons or RLE)")
    p.add_argument("--annotations", metavar="FILE", default=None,
                   help="COCO annotations file (default: COLLECTION/annotations.json)")
    p.add_argument("--synthetic", type=int, metavar="N", default=0,
                   help="instead of COLLECTION: generate N synthetic images (objects of 6 classes pasted "
                        "on varied backgrounds) and evaluate on them")
    p.add_argument("--seed", type=int, default=0, help="seed of the synthetic collection and query sampling")
    p.add_argument("--keep", metavar="DIR", default=None,
                   help="with --synthetic: write the collection here (default: a temporary folder)")
    p.add_argument("--index-dir", metavar="DIR", default=None,
                   help="region index to build or reuse (default: a temporary one, deleted afterwards)")
    p.add_argument("--queries-per-class", type=int, default=0, metavar="N",
                   help="sample at most N queries per class (default 0: every instance is a query)")
    p.add_argument("--precision-at", type=int, default=50, metavar="K", help="precision@K (default 50)")
    p.add_argument("--json", action="store_true", help="print the metrics as JSON after the table")
    add_model_options(p)
    p.set_defaults(func=run)


def run(args) -> int:
    import torch  # heavy: only when the command runs (--help stays light)

    from daemon.extraction.profiles import build_extractor  # torch: only when the command runs (--help stays light)

    from ..index.collection import (  # faiss: only when the command runs (--help stays light)
        load_coco,
        make_synthetic_collection,
    )
    from ..index.evaluation import evaluate_retrieval  # faiss: only when the command runs (--help stays light)

    torch.set_num_threads(max(1, min(2, torch.get_num_threads())))
    if bool(args.collection) == bool(args.synthetic):
        print("regiond eval retrieval: give COLLECTION or --synthetic N (one of them)", file=sys.stderr)
        return 2
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
        extractor = build_extractor(args.profile, args.weights, device=args.device, sam_generator=args.sam_generator)
        report = evaluate_retrieval(collection, extractor, index_dir=args.index_dir,
                                    queries_per_class=args.queries_per_class or None,
                                    precision_k=args.precision_at, seed=args.seed, progress=True)
    finally:
        if tmp is not None:
            tmp.cleanup()
    print(f"profile {extractor.profile}, backbone {extractor.backbone.name}")
    print(report.text())
    if args.json:
        print(json.dumps(report.as_dict()))
    return 0
