"""Helpers for the index tests: deterministic region sets, and a writer process to kill.

Run as a script it is the writer: `python tests/support_index.py DIR START COUNT CHECKPOINT_EVERY`
adds images START..START+COUNT-1 and prints `ACK <image id>` after each add returns.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.regionset import RegionSet  # noqa: E402

DIM = 16
H, W = 24, 32


def image_id(i: int) -> str:
    return f"img{i:05d}"


def region_set(i: int, n: int | None = None, dim: int = DIM) -> RegionSet:
    """Image i's regions: 3-7 horizontal bands with features seeded by i (so reproducible)."""
    rng = np.random.default_rng(1000 + i)
    n = n or int(rng.integers(3, 8))
    masks = np.zeros((n, H, W), bool)
    bounds = np.linspace(0, H, n + 1).astype(int)
    for j in range(n):
        masks[j, bounds[j]:bounds[j + 1]] = True
    return RegionSet.from_masks(masks, features=rng.normal(size=(n, dim)).astype(np.float32))


def writer(directory: str, start: int, count: int, checkpoint_every: int):
    from daemon.index import IndexConfig, RegionIndex

    idx = RegionIndex(directory, dim=DIM, config=IndexConfig(checkpoint_every=checkpoint_every))
    print("OPEN", flush=True)
    for i in range(start, start + count):
        idx.add(image_id(i), region_set(i), {"n": str(i)}, on_exists="skip")
        print("ACK", image_id(i), flush=True)
    idx.close()
    print("CLOSED", flush=True)


if __name__ == "__main__":
    writer(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]))
