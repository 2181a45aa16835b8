"""`regiond index info|renormalise|fit-normaliser`: look after a region index's feature normaliser.

Every region feature an index holds or is asked about goes through its normaliser (PCA
whitening by default) before the cosine metric; the index records which one. Indexes built
before normalisation existed keep their raw-feature scores until renormalised.

  regiond index info DIR                          # format, features, normaliser, counts
  regiond index info milvus://HOST:PORT/COLL      # the same of a Milvus collection (or milvus-lite:PATH)
  regiond index renormalise DIR                   # adopt the normaliser of the index's profile
  regiond index fit-normaliser --profile lite     # rebuild the statistics the package ships

DIR is an index directory or a daemon's data directory (its index/ is used). Renormalising
rebuilds only the FAISS side, from the raw features kept in regions.sqlite: no image is
extracted again. Stop the daemon that serves DIR first (the index is locked while open).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from regiond.commands.regions import add_model_options

KIND_CHOICES = ["auto", "whiten", "standardise", "none"]


def register(sub) -> None:
    p = sub.add_parser(
        "index",
        help="region index: its feature normaliser (info, renormalise, fit-normaliser)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    tasks = p.add_subparsers(dest="index_task", metavar="TASK")
    t = tasks.add_parser("info", help="what an index holds and how it maps features")
    t.add_argument(
        "dir",
        metavar="DIR|LOCATION",
        help="index directory, a daemon data directory, or a Milvus location (milvus://..., milvus-lite:PATH)",
    )
    t.set_defaults(func=run_info)

    t = tasks.add_parser(
        "renormalise",
        help="record a feature normaliser and rebuild the search side",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    t.add_argument("dir", metavar="DIR", help="index directory, or a daemon data directory")
    add_normaliser_option(t)
    add_model_options(t)
    t.set_defaults(func=run_renormalise)

    t = tasks.add_parser(
        "fit-normaliser",
        help="fit a profile's normaliser on the generated corpus and save it",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    t.add_argument("--kind", default="whiten", choices=KIND_CHOICES[1:3], help="whiten (default) or standardise")
    t.add_argument(
        "--out",
        metavar="FILE",
        default=None,
        help="where to write it (default: the package's shipped file for the profile's features, "
        "daemon/index/normalising/normalisers/<features>.npz)",
    )
    add_model_options(t)
    t.set_defaults(func=run_fit)
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])


def add_normaliser_option(p) -> None:
    p.add_argument(
        "--normaliser",
        default="auto",
        choices=KIND_CHOICES,
        help="auto (default): the profile's own (the shipped statistics, else PCA whitening fitted "
        "on the generated corpus); whiten / standardise: fitted on that corpus now; none: raw "
        "features (scores as before normalisation existed)",
    )


def normaliser_from_args(args, extractor):
    """The normaliser --normaliser names for this extractor."""
    from regiond.index.normalising.corpus import fit_for, normaliser_for  # faiss, masks: only when the command runs

    if args.normaliser == "auto":
        return normaliser_for(extractor)
    return fit_for(extractor, args.normaliser, progress=True)


def index_dir(path: str) -> Path:
    d = Path(path)
    if (d / "index" / "regions.sqlite").is_file():
        return d / "index"
    if not (d / "regions.sqlite").is_file():
        raise FileNotFoundError(f"{d}: no region index here (no regions.sqlite in it or in {d / 'index'})")
    return d


def run_info(args) -> int:
    from regiond.index import RegionIndex, open_index  # faiss: only when the command runs
    from regiond.index.milvus.schema import FORMAT, is_milvus

    if is_milvus(args.dir):
        with open_index(args.dir) as idx:
            print(f"index       {idx.location} (collections {idx.name}, {idx.meta_name})")
            print(f"format      {FORMAT}")
            print(f"features    {idx.features or '(unnamed)'}, {idx.dim}-d")
            print(f"contents    {len(idx)} images, {idx.num_regions} regions")
            print(
                f"search      {idx.index_params['index_type']} {idx.index_params['params']}, {idx.config.metric} "
                f"(search {idx.search_params or 'exact'})"
            )
            print(f"normaliser  {idx.normaliser_note()}")
        return 0
    with RegionIndex(index_dir(args.dir)) as idx:
        print(f"index       {idx.dir}")
        print(f"format      {idx.store.format}")
        print(f"features    {idx.store.features or '(unnamed)'}, {idx.dim}-d")
        print(f"contents    {len(idx)} images, {idx.num_regions} regions")
        print(f"search      {idx.config.kind}, {idx.config.metric} ({idx.config.search_params()})")
        print(f"normaliser  {idx.normaliser_note()}")
    return 0


def run_renormalise(args) -> int:
    from regiond.extraction.profiles import build_extractor  # torch: only when the command runs
    from regiond.index import RegionIndex
    from regiond.index.milvus.schema import is_milvus

    if is_milvus(args.dir):
        raise ValueError(
            f"{args.dir}: a Milvus collection records its normaliser when it is created; renormalise "
            "adopts one in indexes built before normalisation existed (directories)"
        )
    d = index_dir(args.dir)
    profile = args.profile
    if profile == "auto":  # the profile whose features the index holds ("lite/classic/mean")
        with RegionIndex(d) as idx:
            profile = idx.store.features.split("/")[0] or "auto"
    extractor = build_extractor(profile, args.weights, device=args.device)
    with RegionIndex(d, dim=extractor.dim, features=extractor.features_name) as idx:
        before = idx.normaliser_note()
        normaliser = normaliser_from_args(args, extractor)
        idx.renormalise(normaliser)
        print(f"{d}: {len(idx)} images, {idx.num_regions} regions")
        print(f"  was  {before}")
        print(f"  now  {idx.normaliser_note()}")
    return 0


def run_fit(args) -> int:
    from regiond.extraction.profiles import build_extractor  # torch: only when the command runs
    from regiond.index.normalising.corpus import fit_for, shipped_path

    extractor = build_extractor(args.profile, args.weights, device=args.device)
    normaliser = fit_for(extractor, args.kind, progress=True)
    out = Path(args.out) if args.out else shipped_path(extractor.features_name)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(normaliser.to_bytes())
    print(f"{out}: {normaliser.describe()}", file=sys.stdout)
    return 0
