"""Mean pooling of a partition's regions (regiond.core.partition: regions that never overlap, as a
label map) in one pass over its column runs, prepared from the grid's layout alone.

For region r with mask M, the pooled sum is Σ (Ayᵀ M Ax)[i, j] F[:, i, j] (see pooling.py);
the weights Ayᵀ M Ax of all regions follow from the map's runs down its columns, and depend
on the grid's size, stride, padding and image size only, not on its features: lite prepares
them while the backbone is still running.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from regiond.core.errors import InputError
from regiond.core.partition import Partition
from regiond.features.backbone import FeatureGrid
from regiond.features.upsampling import check_grid, check_size, grid_axis, pooled_mean


def partition_weights(grid: FeatureGrid, partition: Partition) -> np.ndarray:
    """N×(h·w) float64 mask_weights of a partition's regions, from its column runs instead of
    one pass per mask: a run in column x over rows [y0, y1) adds (Cy[y1] − Cy[y0]) ⊗ Ax[x]
    to its region's weights, Cy holding the prefix sums of Ay's rows (float64, so the
    differences stay exact). Only the grid rows a run reaches are non-zero, so every
    (run, grid row, tap of Ax[x]) becomes one weighted count of one bincount. Needs the
    grid's layout only, not its features."""
    (h, w), (H, W), n = grid.features.shape[1:], partition.shape, partition.n
    dev = grid.features.device
    ay, ax = grid_axis(grid, 0, H, dev), grid_axis(grid, 1, W, dev)
    runs = partition.runs
    x, (y0, y1) = runs.columns, runs.rows
    lo = ay.first[y0]  # the grid rows each run reaches: lo ...
    span = ay.last[y1 - 1] + 1 - lo  # ... to lo + span
    # Per (run, grid row), entry e of the run whose first entry is e0: grid row lo + e − e0,
    # so every per-entry index is a per-run constant repeated, plus e.
    base = lo - (np.cumsum(span) - span)
    e = np.arange(int(span.sum()))
    prefix = ay.prefix.ravel()
    upper = np.repeat(y1 * h + base, span)
    upper += e
    lower = np.repeat(y0 * h + base, span)
    lower += e
    along_y = prefix[upper]
    along_y -= prefix[lower]
    cell = np.repeat((runs.labels * h + base) * w, span)
    e *= w
    cell += e  # the grid cell (region, row, column 0)
    xr = np.repeat(x, span)
    out = np.zeros(n * h * w)
    for k in range(ax.taps.shape[1]):  # Ax[x] has K taps: (grid column, weight)
        taps, weights = ax.taps[:, k], ax.weights[:, k]
        out += np.bincount(cell + taps[xr], along_y * weights[xr], n * h * w)
    return out.reshape(n, h * w)


def _layout_of(grid: FeatureGrid) -> tuple:
    """What pooling weights depend on: everything about a grid but its features' values."""
    return tuple(grid.features.shape[1:]), grid.stride, tuple(grid.pad), tuple(grid.image_size), grid.source_size


@dataclass(frozen=True)
class PartitionPooling:
    """Mean pooling of a partition's regions, prepared from the grid's layout alone (its
    size, stride, padding and image size; see base.grid_layout), so that it can be prepared
    while the backbone is still computing the features: each region's non-zero weights (a
    few dozen grid cells), then per region one gather and one sum when the features come.

    On the CPU in numpy over those weights only: a dense product would be a BLAS call that
    splits across threads, and stalls for milliseconds when the cores are busy."""

    layout: tuple  # _layout_of the grid it was prepared for
    n: int
    region: np.ndarray  # per non-zero weight, grouped by region: its region, ...
    cell: np.ndarray  # ... grid cell (row-major) ...
    weight: np.ndarray  # ... and weight (float64)
    first: np.ndarray  # where each region with weights starts in those arrays
    area: np.ndarray  # N pixel counts

    @classmethod
    def of(cls, layout: FeatureGrid, partition: Partition) -> PartitionPooling:
        """The pooling of `partition` over grids laid out as `layout` (a FeatureGrid, whose
        features may be empty: only their shape counts). InputError on a size mismatch."""
        check_grid(layout)
        check_size(layout, partition.shape)
        weights = partition_weights(layout, partition)
        nonzero = np.flatnonzero(weights)
        region, cell = np.divmod(nonzero, weights.shape[1])
        first = np.flatnonzero(np.r_[True, region[1:] != region[:-1]]) if region.size else region
        return cls(_layout_of(layout), partition.n, region, cell, weights.ravel()[nonzero], first, partition.areas())

    def __call__(self, grid: FeatureGrid) -> torch.Tensor:
        """N×D mean features of the regions over `grid`, laid out as prepared."""
        check_grid(grid)
        if _layout_of(grid) != self.layout:
            raise InputError("grid", f"grid laid out as {_layout_of(grid)}, pooling prepared for {self.layout}")
        dev = grid.features.device
        if dev.type != "cpu":
            h, w = grid.features.shape[1:]
            weights = torch.zeros((self.n, h * w), dtype=torch.float32)
            weights[self.region, self.cell] = torch.from_numpy(self.weight.astype(np.float32))
            return pooled_mean(grid, weights.to(dev), torch.from_numpy(self.area).to(dev))
        cells = grid.features.detach().to(torch.float32).reshape(grid.dim, -1).numpy().T  # h·w×D
        sums = np.zeros((self.n, grid.dim))
        if self.first.size:
            sums[self.region[self.first]] = np.add.reduceat(self.weight[:, None] * cells[self.cell], self.first, axis=0)
        return torch.from_numpy((sums / np.maximum(self.area, 1)[:, None]).astype(np.float32))
