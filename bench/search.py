"""Region search at scale: exact vs approximate top-10 image search over 1M regions.

1,000,000 384-d regions in 50,000 images (20 per image), drawn from a Gaussian mixture with
4,000 centres (real region features cluster by object kind; uniform random vectors have no
neighbours worth finding). Queries are fresh draws from the mixture. For each index kind the
same image search the daemon runs (regiond.index.embedded.vectors: region search, widened until k
distinct images, grouped by best region) is timed one query at a time.

Prints build time, bytes per region (the serialised FAISS index), p50/p99 wall latency for
the top-10 images, process CPU time per query (what the search costs, whatever else the
machine is doing), recall@10 of each approximate kind against exact search (the baseline, run in
the same process), and the speed-up ratios (exact / approximate) at p50 and p99. Building
uses 2 FAISS threads (the target machine's cores); each query uses one (the daemon's default,
IndexConfig.search_threads).

  .venv/bin/python bench/search.py                 # the full run (~1.5 GB per index in RAM)
  .venv/bin/python bench/search.py --regions 100000 --images 5000 --centres 500   # quick

--backend milvus-lite adds the same search through Milvus (regiond.index.milvus.backend: the index a
daemon opens with `--index milvus-lite:PATH`), on the same vectors and queries, for each of
--milvus-kinds: the images are added one at a time as IndexImages adds them (build time and
rate), and each query is the search grouped by image (the top-10 image ids, as above). Its
recall@10 is against the same exact FAISS ground truth. Milvus Lite is Milvus's engine in
pure Python (segment-level FAISS indexes, Arrow segments, a WAL): the figures say what the
embedded engine the tests use costs, not what a Milvus server does.

  .venv/bin/python bench/search.py --backend milvus-lite --regions 200000 --images 10000 --centres 800
"""

from __future__ import annotations

import argparse
import gc
import sys
import time
from dataclasses import replace
from pathlib import Path

import faiss  # noqa: E402
import numpy as np

import regiond  # noqa: F401  (first: sets the OpenMP wait policy before torch loads)
from regiond.index.config import IndexConfig  # noqa: E402
from regiond.index.embedded.vectors import VectorIndex  # noqa: E402
from regiond.index.ranking import (
    REGION_BITS,  # noqa: E402
    rank_images,  # noqa: E402
)


def mixture(n: int, centres: np.ndarray, sigma: float, rng, chunk: int = 100_000):
    """Yields chunks of n points: a random centre plus isotropic noise each."""
    for start in range(0, n, chunk):
        m = min(chunk, n - start)
        c = rng.integers(0, len(centres), m)
        yield centres[c] + sigma * rng.standard_normal((m, centres.shape[1]), dtype=np.float32)


def build(kind_cfg: IndexConfig, dim, n, per_image, centres, sigma, seed, train_n):
    """Build one index from the deterministic stream (the same vectors for every kind)."""
    vi = VectorIndex(kind_cfg, dim)
    t0 = time.perf_counter()
    if kind_cfg.spec.trained:
        sample = np.concatenate(list(mixture(train_n, centres, sigma, np.random.default_rng(seed + 1))))
        vi.train(sample)
        del sample
    rng = np.random.default_rng(seed)
    row = 0
    for chunk in mixture(n, centres, sigma, rng):
        rows = np.arange(row, row + len(chunk), dtype=np.int64)
        vi.add_ids(((rows // per_image) << REGION_BITS) | (rows % per_image), chunk)
        row += len(chunk)
    seconds = time.perf_counter() - t0
    size = faiss.serialize_index(vi.index).nbytes
    return vi, seconds, size / vi.ntotal


def time_queries(vi: VectorIndex, queries: np.ndarray, k: int):
    """Per-query wall latency (p50, p99 in ms), mean process CPU ms per query, and the results."""
    lat, results = [], []
    cpu0 = time.process_time()
    for q in queries:
        t0 = time.perf_counter()
        scores, ids = vi.search_images(q, k)
        ranked = rank_images(scores, ids, k)
        lat.append(time.perf_counter() - t0)
        results.append([key for key, _ in ranked])
    cpu = (time.process_time() - cpu0) * 1000 / max(1, len(queries))
    lat = np.array(lat) * 1000
    return results, float(np.percentile(lat, 50)), float(np.percentile(lat, 99)), cpu


def milvus_rows(kind: str, cfg: IndexConfig, dim, n, per_image, centres, sigma, seed, queries, k, truth, root):
    """Build a Milvus Lite index of the same vectors through MilvusIndex.add, time the searches."""
    from regiond.core.regionset import RegionSet
    from regiond.index.milvus.backend import MilvusIndex
    from regiond.index.milvus.schema import filter_expr

    masks = np.eye(per_image, dtype=bool)[:, :, None]  # per_image one-pixel regions of a per_image×1 image
    template = RegionSet.from_masks(masks)
    idx = MilvusIndex(f"milvus-lite:{root / kind}", dim=dim, config=replace(cfg, kind=kind))
    t0 = time.perf_counter()
    row = 0
    for chunk in mixture(n, centres, sigma, np.random.default_rng(seed)):
        for j in range(0, len(chunk), per_image):
            key = (row + j) // per_image
            idx.add(f"{key:07d}", replace(template, features=chunk[j : j + per_image]))
        row += len(chunk)
    build = time.perf_counter() - t0
    expr = filter_expr()
    q_prepared = idx.prepare(queries)
    lat, res = [], []
    cpu0 = time.process_time()
    for q in q_prepared:
        t = time.perf_counter()
        best = idx._best_images(q, k, expr, ["image_id"])
        lat.append(time.perf_counter() - t)
        res.append([int(e["image_id"]) for e, _ in best])
    cpu = (time.process_time() - cpu0) * 1000 / len(queries)
    lat = np.array(lat) * 1000
    recall = float(np.mean([len(set(a) & set(b)) / k for a, b in zip(res, truth)]))
    params = idx.index_params
    idx.close()
    return build, n / build, float(np.percentile(lat, 50)), float(np.percentile(lat, 99)), cpu, recall, params


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--regions", type=int, default=1_000_000, help="regions in the index (default 1M)")
    ap.add_argument("--images", type=int, default=50_000, help="images they belong to (default 50k)")
    ap.add_argument("--dim", type=int, default=384, help="feature dimension (default 384, DINOv2 ViT-S)")
    ap.add_argument("--centres", type=int, default=4000, help="Gaussian mixture centres (default 4000)")
    ap.add_argument(
        "--sigma",
        type=float,
        default=0.35,
        help="noise per coordinate around a centre (centres are N(0, 1)); default 0.35",
    )
    ap.add_argument("--queries", type=int, default=300, help="queries timed per approximate kind (default 300)")
    ap.add_argument(
        "--exact-queries",
        type=int,
        default=60,
        help="queries timed on exact search (default 60; the rest of the ground truth is computed in batch)",
    )
    ap.add_argument("--k", type=int, default=10, help="images per query (default 10)")
    ap.add_argument("--kinds", default="ivfpq", help="approximate kinds, comma-separated: ivfpq, hnsw (default ivfpq)")
    ap.add_argument("--nlist", type=int, default=1024, help="IVF cells (default 1024)")
    ap.add_argument("--nprobe", default="8,16", help="IVF cells probed; a comma list times each (default 8,16)")
    ap.add_argument("--ef-search", default="64", help="HNSW search beam; a comma list times each (default 64)")
    ap.add_argument("--pq-m", type=int, default=48, help="PQ sub-quantisers (default 48)")
    ap.add_argument("--refine", default="SQfp16", help="re-ranking storage: Flat, SQfp16, SQ8 or '' (default SQfp16)")
    ap.add_argument("--refine-factor", type=int, default=8, help="short list = factor × k regions (default 8)")
    ap.add_argument("--train", type=int, default=100_000, help="training sample size (default 100k)")
    ap.add_argument("--threads", type=int, default=2, help="FAISS threads for building (default 2)")
    ap.add_argument(
        "--search-threads",
        type=int,
        default=1,
        help="FAISS threads per query (default 1, the daemon's default; see IndexConfig)",
    )
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--backend",
        choices=["faiss", "milvus-lite"],
        default="faiss",
        help="milvus-lite: also the same searches through Milvus Lite (see above)",
    )
    ap.add_argument("--milvus-kinds", default="hnsw,flat", help="Milvus index kinds timed (default hnsw,flat)")
    ap.add_argument(
        "--milvus-queries",
        type=int,
        default=60,
        help="queries timed through Milvus (the first of the same queries; default 60)",
    )
    args = ap.parse_args(argv)

    faiss.omp_set_num_threads(args.threads)
    per_image = args.regions // args.images
    n = per_image * args.images
    rng = np.random.default_rng(args.seed + 7)
    centres = rng.standard_normal((args.centres, args.dim), dtype=np.float32)
    queries = np.concatenate(list(mixture(args.queries, centres, args.sigma, np.random.default_rng(args.seed + 2))))
    base = IndexConfig(
        metric="cosine",
        nlist=args.nlist,
        pq_m=args.pq_m,
        refine=args.refine,
        search_threads=args.search_threads,
        refine_factor=args.refine_factor,
        train_size=args.train,
    )
    print(
        f"{n:,} regions × {args.dim}-d in {args.images:,} images ({args.centres} centres, sigma {args.sigma}); "
        f"{args.threads} FAISS threads (build), {args.search_threads} per query; top-{args.k} images per query",
        flush=True,
    )

    exact, secs, bpr = build(
        replace(base, kind="flat"), args.dim, n, per_image, centres, args.sigma, args.seed, args.train
    )
    truth, p50, p99, cpu = time_queries(exact, queries[: args.exact_queries], args.k)
    for q in queries[args.exact_queries :]:  # ground truth for the rest, untimed
        truth.append([key for key, _ in rank_images(*exact.search_images(q, args.k), args.k)])
    print(
        f"{'kind':<8}{'build s':>9}{'bytes/region':>14}{'p50 ms':>9}{'p99 ms':>9}{'cpu ms/q':>10}"
        f"{'recall@10':>11}{'p50 ×':>8}{'p99 ×':>8}"
    )
    print(
        f"{'exact':<8}{secs:>9.1f}{bpr:>14.0f}{p50:>9.2f}{p99:>9.2f}{cpu:>10.2f}{1.0:>11.3f}{1.0:>8.1f}{1.0:>8.1f}",
        flush=True,
    )
    exact_p50, exact_p99 = p50, p99
    del exact
    gc.collect()

    sweeps = {"ivfpq": ("nprobe", args.nprobe), "hnsw": ("ef_search", args.ef_search)}
    for kind in [k for k in args.kinds.split(",") if k]:
        cfg = replace(base, kind=kind)
        vi, secs, bpr = build(cfg, args.dim, n, per_image, centres, args.sigma, args.seed, args.train)
        name, values = sweeps[kind]
        for value in [int(v) for v in values.split(",")]:
            vi.config = cfg = replace(cfg, **{name: value})
            vi._tune()  # search-time settings only: the same built index
            res, p50, p99, cpu = time_queries(vi, queries, args.k)
            recall = float(np.mean([len(set(a) & set(b)) / args.k for a, b in zip(res, truth)]))
            print(
                f"{kind:<8}{secs:>9.1f}{bpr:>14.0f}{p50:>9.2f}{p99:>9.2f}{cpu:>10.2f}{recall:>11.3f}"
                f"{exact_p50 / p50:>8.1f}{exact_p99 / p99:>8.1f}   ({cfg.factory_string()}, {cfg.search_params()})",
                flush=True,
            )
        del vi
        gc.collect()
    if args.backend == "milvus-lite":
        import tempfile

        with tempfile.TemporaryDirectory(prefix="regiond-milvus-bench-") as tmp:
            print(
                f"\nMilvus Lite (regiond.index.milvus.backend), the same {n:,} regions added image by image, "
                f"the first {args.milvus_queries} queries:"
            )
            print(
                f"{'kind':<8}{'build s':>9}{'regions/s':>11}{'p50 ms':>9}{'p99 ms':>9}{'cpu ms/q':>10}{'recall@10':>11}"
                f"{'p50 / FAISS exact p50':>23}"
            )
            for kind in [k for k in args.milvus_kinds.split(",") if k]:
                cfg = replace(base, kind=kind, ef_search=int(args.ef_search.split(",")[0]))
                m = args.milvus_queries
                build_s, rate, p50, p99, cpu, recall, params = milvus_rows(
                    kind,
                    cfg,
                    args.dim,
                    n,
                    per_image,
                    centres,
                    args.sigma,
                    args.seed,
                    queries[:m],
                    args.k,
                    truth[:m],
                    Path(tmp),
                )
                print(
                    f"{kind:<8}{build_s:>9.1f}{rate:>11.0f}{p50:>9.2f}{p99:>9.2f}{cpu:>10.2f}{recall:>11.3f}"
                    f"{p50 / exact_p50:>22.1f}×   ({params['index_type']} {params['params']})",
                    flush=True,
                )
    return 0


if __name__ == "__main__":
    sys.exit(main())
