"""Label spaces: ScanNet raw label ids → NYU40 → the 20 ScanNet benchmark classes.

ScanNet's `scannetv2-labels.combined.tsv` maps raw ids (column `id`) to NYU40 (column
`nyu40id`). A few ids appear on several rows with different NYU40 ids; ScanNet's own tools
build a dict row by row, so the last row wins, and so does this loader.
"""
from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from daemon.errors import InputError

from .base import SourceError

NYU40_NAMES = (
    "unlabelled", "wall", "floor", "cabinet", "bed", "chair", "sofa", "table", "door", "window",
    "bookshelf", "picture", "counter", "blinds", "desk", "shelves", "curtain", "dresser", "pillow",
    "mirror", "floor mat", "clothes", "ceiling", "books", "refrigerator", "television", "paper",
    "towel", "shower curtain", "box", "whiteboard", "person", "night stand", "toilet", "sink",
    "lamp", "bathtub", "bag", "otherstructure", "otherfurniture", "otherprop",
)
NUM_NYU40 = 40  # ids 1..40; 0 = unlabelled

# ScanNet's 20-class benchmark, as NYU40 ids, in benchmark order.
BENCHMARK_NYU40 = (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 14, 16, 24, 28, 33, 34, 36, 39)
BENCHMARK_NAMES = tuple(NYU40_NAMES[i] for i in BENCHMARK_NYU40)
IGNORE = 255  # benchmark label of pixels outside the 20 classes


@dataclass(frozen=True)
class LabelTable:
    """Raw ScanNet label id → NYU40 id (0 for ids the table does not list)."""

    raw_to_nyu40: dict
    path: str = ""

    def lookup(self) -> np.ndarray:
        """A dense lookup array: lut[raw_id] = NYU40 id."""
        n = max(self.raw_to_nyu40, default=0) + 1
        lut = np.zeros(n, np.uint8)
        for raw, nyu in self.raw_to_nyu40.items():
            lut[raw] = nyu
        return lut

    def to_nyu40(self, raw) -> np.ndarray:
        """Raw label image (any integer dtype) → NYU40 uint8 image; unknown ids → 0."""
        a = np.asarray(raw)
        if not np.issubdtype(a.dtype, np.integer):
            raise InputError("labels", f"expected an integer label image, got {a.dtype}")
        lut = self.lookup()
        a = a.astype(np.int64)
        out = np.zeros(a.shape, np.uint8)
        ok = (a >= 0) & (a < len(lut))
        out[ok] = lut[a[ok]]
        return out


def load_scannet_labels(path) -> LabelTable:
    """Read scannetv2-labels.combined.tsv (tab-separated, header with `id` and `nyu40id`)."""
    path = Path(path)
    if not path.is_file():
        raise SourceError(f"{path}: label table not found")
    mapping: dict[int, int] = {}
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh, delimiter="\t")
        cols = reader.fieldnames or []
        if "id" not in cols or "nyu40id" not in cols:
            raise SourceError(f"{path}: expected columns 'id' and 'nyu40id', got {cols[:6]}")
        for line, row in enumerate(reader, start=2):
            try:
                raw, nyu = int(row["id"]), int(row["nyu40id"] or 0)
            except (TypeError, ValueError):
                raise SourceError(f"{path}:{line}: non-integer id or nyu40id") from None
            if not (0 <= nyu <= NUM_NYU40) or raw < 0:
                raise SourceError(f"{path}:{line}: nyu40id {nyu} outside 0..40 (or negative id {raw})")
            mapping[raw] = nyu  # last row wins, as in ScanNet's tools
    if not mapping:
        raise SourceError(f"{path}: no rows")
    return LabelTable(mapping, str(path))


def nyu40_to_benchmark(nyu40, ignore: int = IGNORE) -> np.ndarray:
    """NYU40 id image → benchmark class index 0..19 (uint8); every other id → `ignore`."""
    lut = np.full(256, ignore, np.uint8)
    for k, nyu in enumerate(BENCHMARK_NYU40):
        lut[nyu] = k
    a = np.asarray(nyu40)
    if not np.issubdtype(a.dtype, np.integer):
        raise InputError("labels", f"expected an integer label image, got {a.dtype}")
    a = a.astype(np.int64)
    out = np.full(a.shape, ignore, np.uint8)
    ok = (a >= 0) & (a < 256)
    out[ok] = lut[a[ok]]
    return out

