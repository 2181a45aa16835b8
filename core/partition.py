"""Partition: regions of one image that never overlap (SLIC superpixels), as a label map.

Region i is the set of pixels labelled i, for 0 ≤ i < n; any other value (e.g. -1) belongs to
no region. What a stack of N H×W masks gives (RLE counts, boxes, areas, pooling weights, 3D
statistics) follows from the map's runs down its columns, found in one pass over the image,
where a mask stack costs N passes and N×H×W bytes.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np


@dataclass(frozen=True)
class ColumnRuns:
    """Maximal runs of one label down each column (broken at each column's end), in
    column-major order, for the runs inside a region only. Positions are column-major pixel
    indices (x·H + y), as COCO RLE counts them."""

    starts: np.ndarray  # int64
    ends: np.ndarray  # int64, exclusive
    labels: np.ndarray  # int64 region of each run
    columns: np.ndarray  # int64 x of each run
    rows: tuple[np.ndarray, np.ndarray]  # int64 first row and the row after the last


@dataclass(frozen=True, eq=False)
class Partition:
    """labels  H×W integer label map (region i = pixels labelled i, for i < n)
    n       number of regions (some may be empty)"""

    labels: np.ndarray
    n: int

    def __post_init__(self):
        if self.labels.ndim != 2 or not np.issubdtype(self.labels.dtype, np.integer):
            raise ValueError(
                f"a partition's label map must be H×W integers, got {self.labels.dtype} {self.labels.shape}"
            )
        if self.n < 0:
            raise ValueError(f"a partition has n ≥ 0 regions, got {self.n}")

    @classmethod
    def from_labels(cls, labels: np.ndarray) -> Partition:
        """Regions 0..max(labels) of a map without negative labels."""
        labels = np.asarray(labels)
        return cls(labels, int(labels.max()) + 1 if labels.size else 0)

    @property
    def shape(self) -> tuple[int, int]:
        return tuple(self.labels.shape)

    def __len__(self) -> int:
        return self.n

    @cached_property
    def runs(self) -> ColumnRuns:
        labels = self.labels
        h, w = labels.shape
        # Where a run starts, as a W×H bool (column-major): every column's top, and each label
        # change down a column, found in the map's own row order and transposed as bool (a
        # quarter of the bytes of transposing the labels).
        start = np.empty((w, h), bool)
        start[:, 1:] = (labels[1:] != labels[:-1]).T
        start[:, :1] = True
        starts = np.flatnonzero(start)
        ends = np.empty_like(starts)
        ends[:-1], ends[-1:] = starts[1:], h * w
        x, y0 = np.divmod(starts, max(h, 1))
        run_label = labels[y0, x].astype(np.int64)
        keep = (run_label >= 0) & (run_label < self.n)
        starts, ends, x, y0 = starts[keep], ends[keep], x[keep], y0[keep]
        return ColumnRuns(starts, ends, run_label[keep], x, (y0, y0 + (ends - starts)))

    def without_empty(self) -> Partition:
        """The same regions renumbered 0..K-1 in order, dropping those without pixels (itself
        when none is empty): one pass over the map, and none when nothing is dropped."""
        present = self.areas() > 0
        if present.all():
            return self
        lut = np.full(self.n + 1, -1, np.int32)  # the extra entry: outside any region
        lut[:-1][present] = np.arange(int(present.sum()), dtype=np.int32)
        inside = (self.labels >= 0) & (self.labels < self.n)
        return Partition(lut[np.where(inside, self.labels, self.n)], int(present.sum()))

    def areas(self) -> np.ndarray:
        """N int64 pixel counts."""
        r = self.runs
        return np.bincount(r.labels, weights=r.ends - r.starts, minlength=self.n).astype(np.int64)

    def masks(self) -> np.ndarray:
        """The N×H×W bool mask stack (N passes over the image: only where one is needed)."""
        return self.labels[None, :, :] == np.arange(self.n, dtype=self.labels.dtype)[:, None, None]
