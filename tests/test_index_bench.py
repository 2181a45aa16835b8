"""bench/search.py runs end to end at a tiny scale (its figures come from the full run; no
timing is asserted here, only that the approximate index finds what exact search finds)."""
from __future__ import annotations

import importlib.util
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1] / "bench" / "search.py"


def test_search_bench_small(capsys):
    spec = importlib.util.spec_from_file_location("bench_search", BENCH)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    rc = bench.main(["--regions", "6000", "--images", "300", "--dim", "32", "--centres", "40", "--nlist", "16",
                     "--pq-m", "8", "--train", "2000", "--queries", "30", "--exact-queries", "5",
                     "--kinds", "ivfpq,hnsw", "--nprobe", "4", "--ef-search", "64", "--threads", "1"])
    out = capsys.readouterr().out
    assert rc == 0
    rows = {line.split()[0]: line.split() for line in out.splitlines() if line.split() and line.split()[0] in ("exact", "ivfpq", "hnsw")}
    assert set(rows) == {"exact", "ivfpq", "hnsw"}
    for kind in ("ivfpq", "hnsw"):
        assert float(rows[kind][6]) >= 0.9, out  # recall@10 column
