"""COCO run-length encoding, uncompressed form (as pycocotools' `{"size", "counts"}` list).

Column-major (Fortran) order; counts alternate background/foreground runs starting with
background, so they always sum to height × width.
"""
from __future__ import annotations

import numpy as np


def encode(mask: np.ndarray) -> np.ndarray:
    """H×W bool mask → uint32 counts."""
    flat = np.asarray(mask, dtype=bool).ravel(order="F")
    if flat.size == 0:
        return np.zeros(1, dtype=np.uint32)
    change = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    bounds = np.concatenate(([0], change, [flat.size]))
    runs = np.diff(bounds)
    if flat[0]:  # counts start with a (possibly empty) background run
        runs = np.concatenate(([0], runs))
    return runs.astype(np.uint32)


def decode(counts, height: int, width: int) -> np.ndarray:
    """uint32 counts → H×W bool mask. Raises ValueError when counts do not cover the image."""
    counts = np.asarray(counts, dtype=np.int64)
    if counts.sum() != height * width or (counts < 0).any():
        raise ValueError(f"RLE counts sum to {int(counts.sum())}, expected {height}×{width} = {height * width}")
    values = (np.arange(counts.size) % 2).astype(bool)
    flat = np.repeat(values, counts)
    return flat.reshape((width, height)).T


def area(counts) -> int:
    return int(np.asarray(counts, dtype=np.int64)[1::2].sum())


def bbox(counts, height: int, width: int) -> np.ndarray:
    """[x0, y0, x1, y1] (exclusive max) of the mask, zeros for an empty mask."""
    m = decode(counts, height, width)
    ys, xs = np.nonzero(m)
    if ys.size == 0:
        return np.zeros(4, dtype=np.float32)
    return np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], dtype=np.float32)
