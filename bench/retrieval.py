"""Retrieval quality under each feature normaliser, measured side by side in one run.

Indexes a generated collection once with raw features (`none`, the scoring of indexes built
before normalisation), then renormalises the same index in place (no re-extraction) to
per-dimension standardisation and to PCA whitening, and prints regions mAP and the
whole-image baseline's for each (`regiond eval retrieval --synthetic N`'s protocol: regions
with the daemon's default query expansion, and without it). With
--video, temporal P@5 on the given footage for each normaliser and both ways of matching a
box (`regiond eval retrieval --video`'s protocol).

    .venv/bin/python bench/retrieval.py [--profile lite] [--images 200] [--video clip.mp4 ...]
    .venv/bin/python bench/retrieval.py --profile tiny --masks slic   # the DINOv2 code path, tiny random weights

`tiny` has random weights: it shows the mechanism, not quality. `--masks slic` swaps the
profile's mask generator for SLIC (tiny SAM takes minutes an image on a CPU).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import torch  # noqa: E402

import regiond  # noqa: F401, E402  (first: sets the OpenMP wait policy before torch loads)
from regiond.extraction.extractor import Extractor  # noqa: E402
from regiond.extraction.profiles import build_extractor  # noqa: E402
from regiond.index import RegionIndex  # noqa: E402
from regiond.index.evaluation.one_shot import evaluate_retrieval  # noqa: E402
from regiond.index.evaluation.temporal import evaluate_temporal  # noqa: E402
from regiond.index.normalising.corpus import fit_for, normaliser_for  # noqa: E402
from regiond.index.normalising.normaliser import IDENTITY  # noqa: E402
from regiond.masks import build_masker  # noqa: E402
from regiond.scenes import open_source  # noqa: E402
from regiond.scenes.annotated_images import load_coco, make_synthetic_collection  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--profile", default="lite", help="extractor profile (lite, tiny, balanced, paper)")
    ap.add_argument("--masks", default=None, choices=["slic"], help="replace the profile's mask generator")
    ap.add_argument("--images", type=int, default=200, help="synthetic collection size (default 200)")
    ap.add_argument("--seed", type=int, default=0, help="collection seed (default 0)")
    ap.add_argument("--video", nargs="*", default=[], metavar="SOURCE", help="footage for temporal P@5")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)

    extractor = build_extractor(args.profile)
    if args.masks:
        extractor = Extractor(
            build_masker(args.masks), extractor.backbone, extractor.pooling, profile=f"{args.profile}+{args.masks}"
        )
    normalisers = {
        "none": IDENTITY,
        "standardise": fit_for(extractor, "standardise"),
        "whiten": normaliser_for(extractor),
    }
    print(f"{extractor.features_name}; whiten = {normalisers['whiten'].describe()}")
    with tempfile.TemporaryDirectory(prefix="bench-retrieval-") as tmp:
        collection = load_coco(make_synthetic_collection(Path(tmp) / "coll", args.images, seed=args.seed))
        index_dir = Path(tmp) / "index"
        print(f"\nsynthetic collection, {args.images} images, seed {args.seed}")
        print(f"{'normaliser':<14}{'regions mAP':>14}{'no expansion':>14}{'whole-image mAP':>18}")
        for name, normaliser in normalisers.items():
            if index_dir.exists():  # the same regions, mapped anew: no re-extraction
                with RegionIndex(index_dir) as idx:
                    idx.renormalise(normaliser)
            rep = evaluate_retrieval(collection, extractor, index_dir=index_dir, seed=args.seed, normaliser=normaliser)
            m = {k: v.mean_ap for k, v in rep.methods.items()}
            print(f"{name:<14}{m['regions']:>14.3f}{m['regions-noexp']:>14.3f}{m['whole-image']:>18.3f}", flush=True)
    for source in args.video:
        print(f"\n{source}: temporal P@5 (box by regions / pooled box)")
        for name, normaliser in normalisers.items():
            rep = evaluate_temporal(open_source(source), extractor, source=source, normaliser=normaliser)
            print(f"{name:<14}{rep.precision['regions']:>8.3f} / {rep.precision['pooled']:.3f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
