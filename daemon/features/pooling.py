"""Exact mask pooling of a feature grid.

The reference computation (the paper's) is: bilinearly upsample the D×h×w grid
(align_corners=False) to the padded image size Hp×Wp, crop the padding away, then average
(or take the max of) the upsampled features over each mask's pixels.

Upsampling is a separable linear map, U = Ay · F · Axᵀ with Ay (Hp×h) and Ax (Wp×w) holding
the interpolation weights F.interpolate uses. Cropping keeps rows/columns of Ay and Ax. For a
mask M (H×W) the mean is therefore

    Σ_{y,x} M[y,x] U[:, y, x] / |M|  =  Σ_{i,j} (Ayᵀ M Ax)[i,j] F[:, i, j] / |M|,

so each mask becomes an h×w weight matrix and the upsampled grid is never built. Each row of
Ay/Ax has at most two non-zeros, so on CPU the products are taken on each mask's bounding
box only, against the few grid rows/columns it touches (cost follows the mask's size, not
the image's); on GPU as two batched matmuls over all masks.

Max pooling evaluates the upsampled features only where a mask's maximum can be (its
outline and the joints of the interpolation's linear pieces), never the whole grid.

Empty masks pool to zeros (mean and max): callers decide what an empty region means.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F

from core.errors import InputError
from core.partition import Partition

from .base import FeatureGrid

POOL_MODES = ("mean", "max")

# Max pooling evaluates upsampled features at candidate pixels in chunks of about this many
# float32 values (64 MB).
MAX_POOL_SLAB_ELEMENTS = 16 * 1024 * 1024
# Mean pooling converts masks to float in chunks of this many pixels (≈ 64 MB of float32).
MEAN_POOL_CHUNK_ELEMENTS = 16 * 1024 * 1024


def bilinear_taps(n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per output index: (i0, i1, w0, w1) such that out[k] = w0·in[i0] + w1·in[i1].

    This is PyTorch's upsample_bilinear2d (align_corners=False, size given): source
    coordinate (k + 0.5)·n_in/n_out − 0.5 clamped below at 0, i1 = i0 + 1 clamped to the
    last input index.
    """
    scale = n_in / n_out
    src = np.maximum((np.arange(n_out, dtype=np.float64) + 0.5) * scale - 0.5, 0.0)
    i0 = np.minimum(np.floor(src).astype(np.int64), n_in - 1)
    w1 = np.clip(src - i0, 0.0, 1.0)
    i1 = np.where(i0 < n_in - 1, i0 + 1, i0)
    return i0, i1, 1.0 - w1, w1


def interpolation_matrix(n_in: int, n_out: int) -> np.ndarray:
    """Dense n_out×n_in matrix A with F.interpolate(x, n_out, bilinear) == A @ x along one axis."""
    i0, i1, w0, w1 = bilinear_taps(n_in, n_out)
    a = np.zeros((n_out, n_in), np.float64)
    rows = np.arange(n_out)
    np.add.at(a, (rows, i0), w0)
    np.add.at(a, (rows, i1), w1)
    return a


@dataclass(frozen=True)
class _Axis:
    """The upsampling along one axis, cropped to the image: as a dense matrix and as K
    (index, weight) tap slots per image index, each slot's indices non-decreasing. Shared
    between calls (cached): read-only."""

    matrix: torch.Tensor      # image size × grid size, float32, on the grid's device
    prefix: np.ndarray        # (image size + 1) × grid size float64: prefix sums of the matrix's rows
    taps: np.ndarray          # image size × K grid indices (K = 2, or 4 after a resize)
    weights: np.ndarray       # image size × K weights (float32; some may be 0)
    first: np.ndarray         # per image index: its smallest grid index ...
    last: np.ndarray          # ... and its largest
    linear: np.ndarray        # bool per image index: its row is the mean of its neighbours'

    def span(self, i0: int, i1: int) -> tuple[int, int]:
        """Grid index range [lo, hi) the image indices [i0, i1) reach."""
        return int(self.first[i0]), int(self.last[i1 - 1]) + 1


def _axis(grid: FeatureGrid, axis: int, size: int, device) -> _Axis:
    """Rows (axis 0) or columns (axis 1) of the upsampling, cropped to the image.

    size is the masks' extent on this axis: the image's, or, when the backbone capped the
    image, the original image's; then the cropped upsampling is followed by a bilinear
    resize to the original size (still separable: the taps compose).
    """
    start = grid.pad[0] if axis == 0 else grid.pad[2]
    return _axis_of(grid.features.shape[1 + axis], grid.stride, start, grid.image_size[axis], size, torch.device(device))


@lru_cache(maxsize=32)
def _axis_of(n_cells: int, stride: int, start: int, n_img: int, size: int, device: torch.device) -> _Axis:
    """_axis by the numbers it depends on (video frames share them)."""
    crop = slice(start, start + n_img)
    i0, i1, w0, w1 = (t[crop] for t in bilinear_taps(n_cells, n_cells * stride))
    taps, weights = np.stack([i0, i1], 1), np.stack([w0, w1], 1)
    if size != n_img:
        j0, j1, v0, v1 = bilinear_taps(n_img, size)
        taps = np.concatenate([taps[j0], taps[j1]], 1)
        weights = np.concatenate([weights[j0] * v0[:, None], weights[j1] * v1[:, None]], 1)
    a = np.zeros((size, n_cells))
    for k in range(taps.shape[1]):
        np.add.at(a, (np.arange(size), taps[:, k]), weights[:, k])
    linear = np.zeros(size, bool)
    if size >= 3:   # inside one linear piece of the interpolation (exact up to rounding)
        linear[1:-1] = np.abs(a[:-2] - 2 * a[1:-1] + a[2:]).max(1) < 1e-9
    prefix = np.concatenate([np.zeros((1, n_cells)), np.cumsum(a, 0)])
    arrays = (prefix, taps, weights.astype(np.float32), taps.min(1), taps.max(1), linear)
    for arr in arrays:
        arr.flags.writeable = False
    return _Axis(torch.as_tensor(a, dtype=torch.float32, device=device), *arrays)


def _check_size(grid: FeatureGrid, size: tuple[int, int]) -> None:
    if tuple(size) not in (tuple(grid.image_size), grid.source_size):
        raise InputError("masks", f"mask size {tuple(size)} differs from the image size {grid.source_size}")


def _as_masks(grid: FeatureGrid, masks) -> torch.Tensor:
    """Masks as an N×H×W bool tensor on the grid's device; InputError on a wrong shape."""
    if isinstance(masks, Partition):
        masks = masks.masks()
    if isinstance(masks, np.ndarray):
        masks = torch.from_numpy(np.ascontiguousarray(masks))
    elif not isinstance(masks, torch.Tensor):
        raise InputError("masks", f"expected a numpy array or torch tensor, got {type(masks).__name__}")
    if masks.ndim != 3:
        raise InputError("masks", f"expected N×H×W, got shape {tuple(masks.shape)}")
    _check_size(grid, masks.shape[1:])
    if masks.dtype != torch.bool:
        masks = masks != 0
    return masks.to(grid.features.device)


def _check_grid(grid: FeatureGrid) -> None:
    f = grid.features
    if f.ndim != 3:
        raise InputError("grid", f"features must be D×h×w, got shape {tuple(f.shape)}")
    top, bottom, left, right = grid.pad
    h, w = grid.image_size
    if (top + h + bottom, left + w + right) != (f.shape[1] * grid.stride, f.shape[2] * grid.stride):
        raise InputError("grid", f"padded size {(top + h + bottom, left + w + right)} is not grid {tuple(f.shape[1:])} × stride {grid.stride}")


def _boxes(m: torch.Tensor) -> np.ndarray:
    """N×4 int [y0, y1, x0, x1) bounding boxes (all zeros for an empty mask)."""
    mn = m.cpu().numpy()           # free on CPU; numpy's any() is far faster than torch's here
    rows, cols = mn.any(2), mn.any(1)
    boxes = np.zeros((m.shape[0], 4), np.int64)
    has = rows.any(1)
    boxes[has, 0] = rows[has].argmax(1)
    boxes[has, 1] = m.shape[1] - rows[has, ::-1].argmax(1)
    boxes[has, 2] = cols[has].argmax(1)
    boxes[has, 3] = m.shape[2] - cols[has, ::-1].argmax(1)
    return boxes


def _weights_boxes(m: torch.Tensor, ay: _Axis, ax: _Axis, out: torch.Tensor, area: torch.Tensor) -> None:
    """Per mask, on its bounding box only: Ayᵀ[box rows] · M[box] · Ax[box cols].

    Only the grid rows/columns the box touches are involved, so the cost follows the mask
    size, not the image size. The CPU strategy: small matmuls; the bool→float conversion
    is done by numpy because torch parallelises it, and a parallel region per mask stalls
    badly when the cores are busy with other work."""
    mn = m.cpu().numpy()
    a_y, a_x = ay.matrix.cpu(), ax.matrix.cpu()
    res = torch.zeros(tuple(out.shape), dtype=torch.float32)
    counts = np.zeros(m.shape[0], np.int64)
    for k, (y0, y1, x0, x1) in enumerate(_boxes(m)):
        if y1 == 0:
            continue
        (r0, r1), (c0, c1) = ay.span(y0, y1), ax.span(x0, x1)
        crop = mn[k, y0:y1, x0:x1]
        counts[k] = np.count_nonzero(crop)
        res[k, r0:r1, c0:c1] = a_y[y0:y1, r0:r1].T @ (torch.from_numpy(crop.astype(np.float32)) @ a_x[x0:x1, c0:c1])
    out.copy_(res)
    area.copy_(torch.from_numpy(counts))


def _weights_dense(m: torch.Tensor, ay: _Axis, ax: _Axis, out: torch.Tensor, area: torch.Tensor) -> None:
    """Two batched matmuls over chunks of masks: Ayᵀ · (M · Ax). The GPU strategy: a few
    large kernels beat many small ones there."""
    n, H, W = m.shape
    step = max(1, MEAN_POOL_CHUNK_ELEMENTS // (H * W))
    for s in range(0, n, step):
        mf = m[s:s + step].to(torch.float32)
        out[s:s + step] = ay.matrix.T @ (mf @ ax.matrix)
        area[s:s + step] = mf.sum((1, 2))


def _partition_weights(grid: FeatureGrid, partition: Partition) -> np.ndarray:
    """N×(h·w) float64 mask_weights of a partition's regions, from its column runs instead of
    one pass per mask: a run in column x over rows [y0, y1) adds (Cy[y1] − Cy[y0]) ⊗ Ax[x]
    to its region's weights, Cy holding the prefix sums of Ay's rows (float64, so the
    differences stay exact). Only the grid rows a run reaches are non-zero, so every
    (run, grid row, tap of Ax[x]) becomes one weighted count of one bincount. Needs the
    grid's layout only, not its features."""
    (h, w), (H, W), n = grid.features.shape[1:], partition.shape, partition.n
    dev = grid.features.device
    ay, ax = _axis(grid, 0, H, dev), _axis(grid, 1, W, dev)
    runs = partition.runs
    x, (y0, y1) = runs.columns, runs.rows
    lo = ay.first[y0]                                   # the grid rows each run reaches: lo ...
    span = ay.last[y1 - 1] + 1 - lo                     # ... to lo + span
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
    cell += e                                           # the grid cell (region, row, column 0)
    xr = np.repeat(x, span)
    out = np.zeros(n * h * w)
    for k in range(ax.taps.shape[1]):    # Ax[x] has K taps: (grid column, weight)
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

    layout: tuple          # _layout_of the grid it was prepared for
    n: int
    region: np.ndarray     # per non-zero weight, grouped by region: its region, ...
    cell: np.ndarray       # ... grid cell (row-major) ...
    weight: np.ndarray     # ... and weight (float64)
    first: np.ndarray      # where each region with weights starts in those arrays
    area: np.ndarray       # N pixel counts

    @classmethod
    def of(cls, layout: FeatureGrid, partition: Partition) -> "PartitionPooling":
        """The pooling of `partition` over grids laid out as `layout` (a FeatureGrid, whose
        features may be empty: only their shape counts). InputError on a size mismatch."""
        _check_grid(layout)
        _check_size(layout, partition.shape)
        weights = _partition_weights(layout, partition)
        nonzero = np.flatnonzero(weights)
        region, cell = np.divmod(nonzero, weights.shape[1])
        first = np.flatnonzero(np.r_[True, region[1:] != region[:-1]]) if region.size else region
        return cls(_layout_of(layout), partition.n, region, cell, weights.ravel()[nonzero], first, partition.areas())

    def __call__(self, grid: FeatureGrid) -> torch.Tensor:
        """N×D mean features of the regions over `grid`, laid out as prepared."""
        _check_grid(grid)
        if _layout_of(grid) != self.layout:
            raise InputError("grid", f"grid laid out as {_layout_of(grid)}, pooling prepared for {self.layout}")
        dev = grid.features.device
        if dev.type != "cpu":
            h, w = grid.features.shape[1:]
            weights = torch.zeros((self.n, h * w), dtype=torch.float32)
            weights[self.region, self.cell] = torch.from_numpy(self.weight.astype(np.float32))
            return _pooled_mean(grid, weights.to(dev), torch.from_numpy(self.area).to(dev))
        cells = grid.features.detach().to(torch.float32).reshape(grid.dim, -1).numpy().T      # h·w×D
        sums = np.zeros((self.n, grid.dim))
        if self.first.size:
            sums[self.region[self.first]] = np.add.reduceat(self.weight[:, None] * cells[self.cell], self.first, axis=0)
        return torch.from_numpy((sums / np.maximum(self.area, 1)[:, None]).astype(np.float32))


# How mask weights are computed, by strategy name; "auto" picks by device.
WEIGHT_STRATEGIES = {"boxes": _weights_boxes, "dense": _weights_dense}


def mask_weights(grid: FeatureGrid, masks, strategy: str = "auto") -> tuple[torch.Tensor, torch.Tensor]:
    """N×h×w weights Ayᵀ M Ax (a mask's pooled sum is Σ weights · features) and the N
    mask areas in pixels (float32), both on the grid's device.

    strategy: "boxes" (per-mask bounding boxes, default on CPU), "dense" (batched
    matmuls over the whole image, default on GPU) or "auto".
    """
    _check_grid(grid)
    m = _as_masks(grid, masks)
    dev = grid.features.device
    if strategy == "auto":
        strategy = "boxes" if dev.type == "cpu" else "dense"
    if strategy not in WEIGHT_STRATEGIES:
        raise InputError("strategy", f"unknown strategy {strategy!r}; expected auto or one of {sorted(WEIGHT_STRATEGIES)}")
    h, w = grid.features.shape[1:]
    out = torch.zeros((m.shape[0], h, w), dtype=torch.float32, device=dev)
    area = torch.zeros(m.shape[0], dtype=torch.float32, device=dev)
    if m.shape[0]:
        WEIGHT_STRATEGIES[strategy](m, _axis(grid, 0, m.shape[1], dev), _axis(grid, 1, m.shape[2], dev), out, area)
    return out, area


def _pooled_mean(grid: FeatureGrid, wts: torch.Tensor, area: torch.Tensor) -> torch.Tensor:
    """N×D means from N×h×w weights and N areas."""
    n = wts.shape[0]
    feats = grid.features.to(torch.float32)
    cells = feats.reshape(feats.shape[0], -1)
    pooled = wts.reshape(n, cells.shape[1]) @ cells.T     # N×D
    return torch.where(area[:, None] > 0, pooled / area.clamp(min=1)[:, None], torch.zeros_like(pooled))


def _max_candidates(mk: torch.Tensor, lin_y: torch.Tensor, lin_x: torch.Tensor) -> torch.Tensor:
    """The pixels of a (cropped) mask that can hold its maximum.

    Along a row, inside one linear piece of the interpolation, a pixel's value is the mean
    of its two neighbours', so if both are in the mask it cannot exceed them; the same holds
    along a column. Dropping every such pixel keeps the maximum (the lexicographically first
    pixel attaining it is never dropped): what remains is the mask's outline and the pixels
    where pieces of the interpolation meet, a few percent of a large mask.
    """
    left, right, up, down = (torch.zeros_like(mk) for _ in range(4))
    left[:, 1:], right[:, :-1] = mk[:, :-1], mk[:, 1:]
    up[1:], down[:-1] = mk[:-1], mk[1:]
    interior = (left & right & lin_x[None, :]) | (up & down & lin_y[:, None])
    return mk & ~interior


def _max_pool(grid: FeatureGrid, m: torch.Tensor) -> torch.Tensor:
    """Max of the upsampled features over each mask, evaluated at the candidate pixels only
    (see _max_candidates), each as a sum of K×K weighted grid vectors."""
    dev = grid.features.device
    cells = grid.features.to(torch.float32).permute(1, 2, 0)             # h×w×D
    d = cells.shape[2]
    ay, ax = _axis(grid, 0, m.shape[1], dev), _axis(grid, 1, m.shape[2], dev)
    t = lambda a: torch.tensor(a, device=dev)  # noqa: E731  (a copy: the cached axes are read-only)
    ay_i, ay_w, ay_lin, ax_i, ax_w, ax_lin = (t(a) for a in (ay.taps, ay.weights, ay.linear, ax.taps, ax.weights, ax.linear))
    out = torch.zeros((m.shape[0], d), dtype=torch.float32, device=dev)
    chunk = max(1, MAX_POOL_SLAB_ELEMENTS // d)
    for k, (y0, y1, x0, x1) in enumerate(_boxes(m)):
        if y1 == 0:
            continue
        ys, xs = torch.nonzero(_max_candidates(m[k, y0:y1, x0:x1], ay_lin[y0:y1], ax_lin[x0:x1]), as_tuple=True)
        best = torch.full((d,), -torch.inf, device=dev)
        for s in range(0, ys.numel(), chunk):
            iy, wy = ay_i[ys[s:s + chunk] + y0], ay_w[ys[s:s + chunk] + y0]    # P×K
            ix, wx = ax_i[xs[s:s + chunk] + x0], ax_w[xs[s:s + chunk] + x0]
            vals = 0
            for a in range(iy.shape[1]):
                for b in range(ix.shape[1]):
                    vals = vals + (wy[:, a] * wx[:, b])[:, None] * cells[iy[:, a], ix[:, b]]
            best = torch.maximum(best, vals.amax(0))
        out[k] = best
    return out


def pool_masks(grid: FeatureGrid, masks, mode: str = "mean", strategy: str = "auto") -> torch.Tensor:
    """Pool grid features inside each mask: N×D float32 on the grid's device.

    grid:  the backbone's FeatureGrid (features D×h×w, stride, pad, image_size).
    masks: N×H×W bool (numpy or torch), or a core.partition.Partition (regions that never
           overlap, as a label map: mean pooling then takes one pass over its runs, whatever
           the strategy), at grid.image_size or, when the backbone capped the image, at the
           original size (grid.source_size): the upsampled features are then bilinearly
           resized to it.
    mode:  "mean" (exact mean of the bilinearly upsampled features over the mask) or "max".
    strategy: how mean weights are computed (see mask_weights); the result is the same.
    Empty masks give zero rows.
    """
    if mode not in POOL_MODES:
        raise InputError("mode", f"unknown pooling mode {mode!r}; expected one of {POOL_MODES}")
    _check_grid(grid)
    if isinstance(masks, Partition) and mode == "mean":
        return PartitionPooling.of(grid, masks)(grid)
    m = _as_masks(grid, masks)
    if m.shape[0] == 0:
        return torch.zeros((0, grid.dim), dtype=torch.float32, device=grid.features.device)
    return _pooled_mean(grid, *mask_weights(grid, m, strategy)) if mode == "mean" else _max_pool(grid, m)


def upsample_grid(grid: FeatureGrid, size: tuple[int, int] | None = None) -> torch.Tensor:
    """The materialised D×H×W upsampled, cropped grid (the reference; memory-hungry),
    bilinearly resized on to `size` (the original image's size) when given and different."""
    f = grid.features.to(torch.float32)
    up = F.interpolate(f[None], size=(f.shape[1] * grid.stride, f.shape[2] * grid.stride), mode="bilinear", align_corners=False)
    top, left = grid.pad[0], grid.pad[2]
    up = up[:, :, top:top + grid.image_size[0], left:left + grid.image_size[1]]
    if size is not None and tuple(size) != tuple(grid.image_size):
        up = F.interpolate(up, size=tuple(size), mode="bilinear", align_corners=False)
    return up[0]


def naive_pool(grid: FeatureGrid, masks, mode: str = "mean") -> torch.Tensor:
    """The reference computation done well: one F.interpolate, then one matmul (mean) or a
    masked max per mask. Used by tests and bench/pooling.py."""
    if mode not in POOL_MODES:
        raise InputError("mode", f"unknown pooling mode {mode!r}; expected one of {POOL_MODES}")
    m = _as_masks(grid, masks)
    up = upsample_grid(grid, tuple(m.shape[1:]))
    d = up.shape[0]
    flat = up.reshape(d, -1)
    mf = m.reshape(m.shape[0], -1)
    if mode == "mean":
        area = mf.sum(1).to(torch.float32)
        pooled = mf.to(torch.float32) @ flat.T
        return torch.where(area[:, None] > 0, pooled / area.clamp(min=1)[:, None], torch.zeros_like(pooled))
    out = torch.zeros((m.shape[0], d), dtype=torch.float32, device=up.device)
    for k in range(m.shape[0]):
        if mf[k].any():
            out[k] = flat[:, mf[k]].amax(1)
    return out
