"""Exact mask pooling of a feature grid.

The reference computation (the paper's) is: bilinearly upsample the D×h×w grid
(align_corners=False) to the padded image size Hp×Wp, crop the padding away, then average
(or take the max of) the upsampled features over each mask's pixels.

Upsampling is a separable linear map, U = Ay · F · Axᵀ with Ay (Hp×h) and Ax (Wp×w) holding
the interpolation weights F.interpolate uses. Cropping keeps rows/columns of Ay and Ax. For a
mask M (H×W) the mean is therefore

    Σ_{y,x} M[y,x] U[:, y, x] / |M|  =  Σ_{i,j} (Ayᵀ M Ax)[i,j] F[:, i, j] / |M|,

so each mask becomes an h×w weight matrix and the upsampled grid is never built. Each row of
Ay/Ax has at most two non-zeros, so the products are computed as two-tap gathers rather
than dense matmuls (see `_reduce_columns`).

Empty masks pool to zeros (mean and max): callers decide what an empty region means.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import InputError
from .base import FeatureGrid

POOL_MODES = ("mean", "max")

# Max pooling materialises upsampled features one bounding-box slab at a time; this bounds
# a slab to about 64 MB of float32.
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


def _axis_taps(grid: FeatureGrid, axis: int, device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Two-tap interpolation weights for the image rows (axis 0) or columns (axis 1), cropped."""
    n_cells = grid.features.shape[1 + axis]
    start = grid.pad[0] if axis == 0 else grid.pad[2]
    size = grid.image_size[axis]
    i0, i1, w0, w1 = bilinear_taps(n_cells, n_cells * grid.stride)
    sl = slice(start, start + size)
    as_t = lambda a, dt: torch.as_tensor(np.ascontiguousarray(a[sl]), dtype=dt, device=device)
    return as_t(i0, torch.long), as_t(i1, torch.long), as_t(w0, torch.float32), as_t(w1, torch.float32)


def _as_masks(grid: FeatureGrid, masks) -> torch.Tensor:
    """Masks as an N×H×W bool tensor on the grid's device; InputError on a wrong shape."""
    if isinstance(masks, np.ndarray):
        masks = torch.from_numpy(np.ascontiguousarray(masks))
    elif not isinstance(masks, torch.Tensor):
        raise InputError("masks", f"expected a numpy array or torch tensor, got {type(masks).__name__}")
    if masks.ndim != 3:
        raise InputError("masks", f"expected N×H×W, got shape {tuple(masks.shape)}")
    if tuple(masks.shape[1:]) != tuple(grid.image_size):
        raise InputError("masks", f"mask size {tuple(masks.shape[1:])} differs from the image size {tuple(grid.image_size)}")
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


def mask_weights(grid: FeatureGrid, masks) -> torch.Tensor:
    """N×h×w weights Ayᵀ M Ax: pooled sum = weights · features (before dividing by area)."""
    _check_grid(grid)
    m = _as_masks(grid, masks)
    dev = grid.features.device
    n, H, W = m.shape
    h, w = grid.features.shape[1:]
    if n == 0:
        return torch.zeros((0, h, w), dtype=torch.float32, device=dev)
    x0, x1, xw0, xw1 = _axis_taps(grid, 1, dev)
    y0, y1, yw0, yw1 = _axis_taps(grid, 0, dev)
    out = torch.empty((n, h, w), dtype=torch.float32, device=dev)
    step = max(1, MEAN_POOL_CHUNK_ELEMENTS // (H * W))
    for s in range(0, n, step):
        mf = m[s:s + step].to(torch.float32)                     # c×H×W
        # Columns: R = M · Ax  (c×H×w), two scatter-adds of weighted pixel columns.
        r = torch.zeros((mf.shape[0], H, w), dtype=torch.float32, device=dev)
        r.index_add_(2, x0, mf * xw0)
        r.index_add_(2, x1, mf * xw1)
        # Rows: Ayᵀ · R  (c×h×w).
        o = torch.zeros((mf.shape[0], h, w), dtype=torch.float32, device=dev)
        o.index_add_(1, y0, r * yw0[:, None])
        o.index_add_(1, y1, r * yw1[:, None])
        out[s:s + step] = o
    return out


def _mean_pool(grid: FeatureGrid, masks: torch.Tensor) -> torch.Tensor:
    wts = mask_weights(grid, masks)
    n = wts.shape[0]
    feats = grid.features.to(torch.float32)
    area = masks.reshape(n, -1).sum(1).to(torch.float32)
    pooled = wts.reshape(n, -1) @ feats.reshape(feats.shape[0], -1).T     # N×D
    return torch.where(area[:, None] > 0, pooled / area.clamp(min=1)[:, None], torch.zeros_like(pooled))


def _max_pool(grid: FeatureGrid, masks: torch.Tensor) -> torch.Tensor:
    """Max of the upsampled features over each mask, one bounding-box slab at a time."""
    dev = grid.features.device
    feats = grid.features.to(torch.float32)
    d = feats.shape[0]
    ay = torch.as_tensor(interpolation_matrix(feats.shape[1], feats.shape[1] * grid.stride), dtype=torch.float32, device=dev)
    ax = torch.as_tensor(interpolation_matrix(feats.shape[2], feats.shape[2] * grid.stride), dtype=torch.float32, device=dev)
    ay = ay[grid.pad[0]:grid.pad[0] + grid.image_size[0]]
    ax = ax[grid.pad[2]:grid.pad[2] + grid.image_size[1]]
    out = torch.zeros((masks.shape[0], d), dtype=torch.float32, device=dev)
    rows_any, cols_any = masks.any(2), masks.any(1)
    for k in range(masks.shape[0]):
        ys = torch.nonzero(rows_any[k]).flatten()
        if ys.numel() == 0:
            continue
        xs = torch.nonzero(cols_any[k]).flatten()
        ya, yb, xa, xb = int(ys[0]), int(ys[-1]) + 1, int(xs[0]), int(xs[-1]) + 1
        axk = ax[xa:xb]                                           # bw×w
        # Only grid columns with a non-zero weight in the box matter.
        ca, cb = _support(axk)
        axk = axk[:, ca:cb]
        best = torch.full((d,), -torch.inf, device=dev)
        rows = max(1, MAX_POOL_SLAB_ELEMENTS // (d * (xb - xa)))
        for r0 in range(ya, yb, rows):
            r1 = min(yb, r0 + rows)
            ayk = ay[r0:r1]
            ra, rb = _support(ayk)
            slab = torch.einsum("ri,dij,cj->drc", ayk[:, ra:rb], feats[:, ra:rb, ca:cb], axk)
            mk = masks[k, r0:r1, xa:xb]
            if mk.any():
                best = torch.maximum(best, slab[:, mk].amax(1))
        out[k] = best
    return out


def _support(a: torch.Tensor) -> tuple[int, int]:
    """Range of columns of `a` holding a non-zero."""
    nz = torch.nonzero(a.abs().sum(0) > 0).flatten()
    return int(nz[0]), int(nz[-1]) + 1


def pool_masks(grid: FeatureGrid, masks, mode: str = "mean") -> torch.Tensor:
    """Pool grid features inside each mask: N×D float32 on the grid's device.

    grid:  the backbone's FeatureGrid (features D×h×w, stride, pad, image_size).
    masks: N×H×W bool (numpy or torch) at grid.image_size.
    mode:  "mean" (exact mean of the bilinearly upsampled features over the mask) or "max".
    Empty masks give zero rows.
    """
    if mode not in POOL_MODES:
        raise InputError("mode", f"unknown pooling mode {mode!r}; expected one of {POOL_MODES}")
    _check_grid(grid)
    m = _as_masks(grid, masks)
    if m.shape[0] == 0:
        return torch.zeros((0, grid.dim), dtype=torch.float32, device=grid.features.device)
    return _mean_pool(grid, m) if mode == "mean" else _max_pool(grid, m)


def upsample_grid(grid: FeatureGrid) -> torch.Tensor:
    """The materialised D×H×W upsampled, cropped grid (the reference; memory-hungry)."""
    f = grid.features.to(torch.float32)
    up = F.interpolate(f[None], size=(f.shape[1] * grid.stride, f.shape[2] * grid.stride), mode="bilinear", align_corners=False)[0]
    top, left = grid.pad[0], grid.pad[2]
    return up[:, top:top + grid.image_size[0], left:left + grid.image_size[1]]


def naive_pool(grid: FeatureGrid, masks, mode: str = "mean") -> torch.Tensor:
    """The reference computation done well: one F.interpolate, then one matmul (mean) or a
    masked max per mask. Used by tests and bench/pooling.py."""
    if mode not in POOL_MODES:
        raise InputError("mode", f"unknown pooling mode {mode!r}; expected one of {POOL_MODES}")
    m = _as_masks(grid, masks)
    up = upsample_grid(grid)
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
