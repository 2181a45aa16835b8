"""ScanNet's label table: raw label ids → NYU40 (the tables themselves are regiond.core.label_spaces).

ScanNet's `scannetv2-labels.combined.tsv` maps raw ids (column `id`) to NYU40 (column
`nyu40id`). A few ids appear on several rows with different NYU40 ids; ScanNet's own tools
build a dict row by row, so the last row wins, and so does this loader.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from regiond.core.errors import InputError
from regiond.core.label_spaces import NUM_NYU40
from regiond.scenes.source import SourceError


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
