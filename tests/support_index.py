"""Helpers for the index tests: deterministic region sets, and a writer process to kill.

Run as a script it is the writer: `python tests/support_index.py LOCATION START COUNT CHECKPOINT_EVERY`
adds images START..START+COUNT-1 and prints `ACK <image id>` after each add returns.

Index tests run against both backends (BACKENDS): FAISS over SQLite in a directory, and Milvus
Lite (a real Milvus engine in the test's process) on one.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from regiond.core.regionset import RegionSet  # noqa: E402

DIM = 16
H, W = 24, 32
BACKENDS = ["faiss", "milvus-lite"]


def location(tmp_path, backend: str, name: str = "index") -> str:
    """Where a test's index of `backend` lives; both search exactly (FAISS's default; Milvus's
    own default picks by scale), so their answers compare."""
    path = Path(tmp_path) / name
    return str(path) if backend == "faiss" else f"milvus-lite:{path}?index=flat"


def open_at(tmp_path, backend: str, name: str = "index", **kw):
    """open_index at location(tmp_path, backend, name), dim DIM unless given."""
    from regiond.index import open_index

    return open_index(location(tmp_path, backend, name), **{"dim": DIM, **kw})


def image_id(i: int) -> str:
    return f"img{i:05d}"


def region_set(i: int, n: int | None = None, dim: int = DIM) -> RegionSet:
    """Image i's regions: 3-7 horizontal bands with features seeded by i (so reproducible)."""
    rng = np.random.default_rng(1000 + i)
    n = n or int(rng.integers(3, 8))
    masks = np.zeros((n, H, W), bool)
    bounds = np.linspace(0, H, n + 1).astype(int)
    for j in range(n):
        masks[j, bounds[j] : bounds[j + 1]] = True
    return RegionSet.from_masks(masks, features=rng.normal(size=(n, dim)).astype(np.float32))


def writer(where: str, start: int, count: int, checkpoint_every: int):
    from regiond.index import IndexConfig, open_index

    idx = open_index(where, dim=DIM, config=IndexConfig(checkpoint_every=checkpoint_every))
    print("OPEN", flush=True)
    for i in range(start, start + count):
        idx.add(image_id(i), region_set(i), {"n": str(i)}, on_exists="skip")
        print("ACK", image_id(i), flush=True)
    idx.close()
    print("CLOSED", flush=True)


if __name__ == "__main__":
    writer(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]))
