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

Regions that never overlap (a regiond.core.partition.Partition) take one pass over the label map's
runs instead (partition_pooling.py); the per-axis taps live in upsampling.py.

Empty masks pool to zeros (mean and max): callers decide what an empty region means.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from regiond.core.errors import InputError
from regiond.core.partition import Partition
from regiond.features.backbone import FeatureGrid
from regiond.features.partition_pooling import PartitionPooling
from regiond.features.upsampling import Axis, check_grid, check_size, grid_axis, pooled_mean

POOL_MODES = ("mean", "max")

# Max pooling evaluates upsampled features at candidate pixels in chunks of about this many
# float32 values (64 MB).
MAX_POOL_SLAB_ELEMENTS = 16 * 1024 * 1024
# Mean pooling converts masks to float in chunks of this many pixels (≈ 64 MB of float32).
MEAN_POOL_CHUNK_ELEMENTS = 16 * 1024 * 1024


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
    check_size(grid, masks.shape[1:])
    if masks.dtype != torch.bool:
        masks = masks != 0
    return masks.to(grid.features.device)


def _boxes(m: torch.Tensor) -> np.ndarray:
    """N×4 int [y0, y1, x0, x1) bounding boxes (all zeros for an empty mask)."""
    mn = m.cpu().numpy()  # free on CPU; numpy's any() is far faster than torch's here
    rows, cols = mn.any(2), mn.any(1)
    boxes = np.zeros((m.shape[0], 4), np.int64)
    has = rows.any(1)
    boxes[has, 0] = rows[has].argmax(1)
    boxes[has, 1] = m.shape[1] - rows[has, ::-1].argmax(1)
    boxes[has, 2] = cols[has].argmax(1)
    boxes[has, 3] = m.shape[2] - cols[has, ::-1].argmax(1)
    return boxes


def _weights_boxes(m: torch.Tensor, ay: Axis, ax: Axis, out: torch.Tensor, area: torch.Tensor) -> None:
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


def _weights_dense(m: torch.Tensor, ay: Axis, ax: Axis, out: torch.Tensor, area: torch.Tensor) -> None:
    """Two batched matmuls over chunks of masks: Ayᵀ · (M · Ax). The GPU strategy: a few
    large kernels beat many small ones there."""
    n, H, W = m.shape
    step = max(1, MEAN_POOL_CHUNK_ELEMENTS // (H * W))
    for s in range(0, n, step):
        mf = m[s : s + step].to(torch.float32)
        out[s : s + step] = ay.matrix.T @ (mf @ ax.matrix)
        area[s : s + step] = mf.sum((1, 2))


# How mask weights are computed, by strategy name; "auto" picks by device.
WEIGHT_STRATEGIES = {"boxes": _weights_boxes, "dense": _weights_dense}


def mask_weights(grid: FeatureGrid, masks, strategy: str = "auto") -> tuple[torch.Tensor, torch.Tensor]:
    """N×h×w weights Ayᵀ M Ax (a mask's pooled sum is Σ weights · features) and the N
    mask areas in pixels (float32), both on the grid's device.

    strategy: "boxes" (per-mask bounding boxes, default on CPU), "dense" (batched
    matmuls over the whole image, default on GPU) or "auto".
    """
    check_grid(grid)
    m = _as_masks(grid, masks)
    dev = grid.features.device
    if strategy == "auto":
        strategy = "boxes" if dev.type == "cpu" else "dense"
    if strategy not in WEIGHT_STRATEGIES:
        raise InputError(
            "strategy", f"unknown strategy {strategy!r}; expected auto or one of {sorted(WEIGHT_STRATEGIES)}"
        )
    h, w = grid.features.shape[1:]
    out = torch.zeros((m.shape[0], h, w), dtype=torch.float32, device=dev)
    area = torch.zeros(m.shape[0], dtype=torch.float32, device=dev)
    if m.shape[0]:
        WEIGHT_STRATEGIES[strategy](
            m, grid_axis(grid, 0, m.shape[1], dev), grid_axis(grid, 1, m.shape[2], dev), out, area
        )
    return out, area


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
    cells = grid.features.to(torch.float32).permute(1, 2, 0)  # h×w×D
    d = cells.shape[2]
    ay, ax = grid_axis(grid, 0, m.shape[1], dev), grid_axis(grid, 1, m.shape[2], dev)
    t = lambda a: torch.tensor(a, device=dev)  # noqa: E731  (a copy: the cached axes are read-only)
    ay_i, ay_w, ay_lin, ax_i, ax_w, ax_lin = (
        t(a) for a in (ay.taps, ay.weights, ay.linear, ax.taps, ax.weights, ax.linear)
    )
    out = torch.zeros((m.shape[0], d), dtype=torch.float32, device=dev)
    chunk = max(1, MAX_POOL_SLAB_ELEMENTS // d)
    for k, (y0, y1, x0, x1) in enumerate(_boxes(m)):
        if y1 == 0:
            continue
        ys, xs = torch.nonzero(_max_candidates(m[k, y0:y1, x0:x1], ay_lin[y0:y1], ax_lin[x0:x1]), as_tuple=True)
        best = torch.full((d,), -torch.inf, device=dev)
        for s in range(0, ys.numel(), chunk):
            iy, wy = ay_i[ys[s : s + chunk] + y0], ay_w[ys[s : s + chunk] + y0]  # P×K
            ix, wx = ax_i[xs[s : s + chunk] + x0], ax_w[xs[s : s + chunk] + x0]
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
    masks: N×H×W bool (numpy or torch), or a regiond.core.partition.Partition (regions that never
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
    check_grid(grid)
    if isinstance(masks, Partition) and mode == "mean":
        return PartitionPooling.of(grid, masks)(grid)
    m = _as_masks(grid, masks)
    if m.shape[0] == 0:
        return torch.zeros((0, grid.dim), dtype=torch.float32, device=grid.features.device)
    return pooled_mean(grid, *mask_weights(grid, m, strategy)) if mode == "mean" else _max_pool(grid, m)


def upsample_grid(grid: FeatureGrid, size: tuple[int, int] | None = None) -> torch.Tensor:
    """The materialised D×H×W upsampled, cropped grid (the reference; memory-hungry),
    bilinearly resized on to `size` (the original image's size) when given and different."""
    f = grid.features.to(torch.float32)
    up = F.interpolate(
        f[None], size=(f.shape[1] * grid.stride, f.shape[2] * grid.stride), mode="bilinear", align_corners=False
    )
    top, left = grid.pad[0], grid.pad[2]
    up = up[:, :, top : top + grid.image_size[0], left : left + grid.image_size[1]]
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
