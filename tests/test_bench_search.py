"""bench/search.py runs end to end at a tiny scale (its figures come from the full run; no
timing is asserted here, only that the approximate index finds what exact search finds)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1] / "bench" / "search.py"


def load_bench(path: Path = BENCH):
    spec = importlib.util.spec_from_file_location(f"bench_{path.stem}", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    return bench


def recall_rows(out: str, kinds) -> dict:
    """The rows of the printed table whose first column is one of `kinds`."""
    return {line.split()[0]: line.split() for line in out.splitlines() if line.split()[:1] and line.split()[0] in kinds}


def test_search_bench_small(capsys):
    rc = load_bench().main(
        [
            "--regions",
            "6000",
            "--images",
            "300",
            "--dim",
            "32",
            "--centres",
            "40",
            "--nlist",
            "16",
            "--pq-m",
            "8",
            "--train",
            "2000",
            "--queries",
            "30",
            "--exact-queries",
            "5",
            "--kinds",
            "ivfpq,hnsw",
            "--nprobe",
            "4",
            "--ef-search",
            "64",
            "--threads",
            "1",
        ]
    )
    out = capsys.readouterr().out
    assert rc == 0
    rows = recall_rows(out, ("exact", "ivfpq", "hnsw"))
    assert set(rows) == {"exact", "ivfpq", "hnsw"}
    for kind in ("ivfpq", "hnsw"):
        assert float(rows[kind][6]) >= 0.9, out  # recall@10 column


def test_search_bench_milvus_lite_small(capsys):
    """--backend milvus-lite: the same vectors through MilvusIndex; exact search finds what FAISS's finds."""
    rc = load_bench().main(
        [
            "--regions",
            "2000",
            "--images",
            "100",
            "--dim",
            "16",
            "--centres",
            "20",
            "--queries",
            "10",
            "--exact-queries",
            "5",
            "--kinds",
            "",
            "--threads",
            "1",
            "--backend",
            "milvus-lite",
            "--milvus-kinds",
            "flat,hnsw",
            "--milvus-queries",
            "10",
        ]
    )
    out = capsys.readouterr().out
    assert rc == 0
    rows = recall_rows(out, ("flat", "hnsw"))
    assert float(rows["flat"][6]) == 1.0 and float(rows["hnsw"][6]) >= 0.9, out  # recall@10 column


def test_retrieval_bench_small(capsys, monkeypatch, tmp_path):
    """bench/retrieval.py: one index renormalised in place gives each normaliser's figures; they
    equal a fresh evaluation with that normaliser (nothing of the previous one lingers)."""
    from regiond.extraction.profiles import build_extractor
    from regiond.index.evaluation.one_shot import evaluate_retrieval
    from regiond.index.normalising import corpus
    from regiond.scenes.annotated_images import load_coco, make_synthetic_collection

    monkeypatch.setattr(corpus, "CORPUS_IMAGES", 20)
    assert load_bench(BENCH.with_name("retrieval.py")).main(["--images", "16", "--seed", "3"]) == 0
    out = capsys.readouterr().out
    rows = {k: [float(v) for v in r[1:]] for k, r in recall_rows(out, ("none", "standardise", "whiten")).items()}
    assert set(rows) == {"none", "standardise", "whiten"}
    coll = load_coco(make_synthetic_collection(tmp_path, 16, seed=3))
    lite = build_extractor("lite")
    fresh = evaluate_retrieval(coll, lite, seed=3, normaliser=corpus.fit_for(lite, "standardise"))
    assert rows["standardise"] == [
        round(fresh.methods[m].mean_ap, 3) for m in ("regions", "regions-noexp", "whole-image")
    ]
