"""The bilinear upsampling of a feature grid (PyTorch's, align_corners=False) as per-axis
taps, and the checks and the weighted mean that mask and partition pooling share.

Upsampling is separable: U = Ay · F · Axᵀ, with Ay (image rows × grid rows) and Ax (image
columns × grid columns) holding at most two non-zeros per row (four after a resize to the
original size). See pooling.py for how pooling uses it.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch

from regiond.core.errors import InputError
from regiond.features.backbone import FeatureGrid


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
class Axis:
    """The upsampling along one axis, cropped to the image: as a dense matrix and as K
    (index, weight) tap slots per image index, each slot's indices non-decreasing. Shared
    between calls (cached): read-only."""

    matrix: torch.Tensor  # image size × grid size, float32, on the grid's device
    prefix: np.ndarray  # (image size + 1) × grid size float64: prefix sums of the matrix's rows
    taps: np.ndarray  # image size × K grid indices (K = 2, or 4 after a resize)
    weights: np.ndarray  # image size × K weights (float32; some may be 0)
    first: np.ndarray  # per image index: its smallest grid index ...
    last: np.ndarray  # ... and its largest
    linear: np.ndarray  # bool per image index: its row is the mean of its neighbours'

    def span(self, i0: int, i1: int) -> tuple[int, int]:
        """Grid index range [lo, hi) the image indices [i0, i1) reach."""
        return int(self.first[i0]), int(self.last[i1 - 1]) + 1


def grid_axis(grid: FeatureGrid, axis: int, size: int, device) -> Axis:
    """Rows (axis 0) or columns (axis 1) of the upsampling, cropped to the image.

    size is the masks' extent on this axis: the image's, or, when the backbone capped the
    image, the original image's; then the cropped upsampling is followed by a bilinear
    resize to the original size (still separable: the taps compose).
    """
    start = grid.pad[0] if axis == 0 else grid.pad[2]
    return axis_of(grid.features.shape[1 + axis], grid.stride, start, grid.image_size[axis], size, torch.device(device))


@lru_cache(maxsize=32)
def axis_of(n_cells: int, stride: int, start: int, n_img: int, size: int, device: torch.device) -> Axis:
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
    if size >= 3:  # inside one linear piece of the interpolation (exact up to rounding)
        linear[1:-1] = np.abs(a[:-2] - 2 * a[1:-1] + a[2:]).max(1) < 1e-9
    prefix = np.concatenate([np.zeros((1, n_cells)), np.cumsum(a, 0)])
    arrays = (prefix, taps, weights.astype(np.float32), taps.min(1), taps.max(1), linear)
    for arr in arrays:
        arr.flags.writeable = False
    return Axis(torch.as_tensor(a, dtype=torch.float32, device=device), *arrays)


def check_size(grid: FeatureGrid, size: tuple[int, int]) -> None:
    if tuple(size) not in (tuple(grid.image_size), grid.source_size):
        raise InputError("masks", f"mask size {tuple(size)} differs from the image size {grid.source_size}")


def check_grid(grid: FeatureGrid) -> None:
    f = grid.features
    if f.ndim != 3:
        raise InputError("grid", f"features must be D×h×w, got shape {tuple(f.shape)}")
    top, bottom, left, right = grid.pad
    h, w = grid.image_size
    if (top + h + bottom, left + w + right) != (f.shape[1] * grid.stride, f.shape[2] * grid.stride):
        raise InputError(
            "grid",
            f"padded size {(top + h + bottom, left + w + right)} is not "
            f"grid {tuple(f.shape[1:])} × stride {grid.stride}",
        )


def pooled_mean(grid: FeatureGrid, wts: torch.Tensor, area: torch.Tensor) -> torch.Tensor:
    """N×D means from N×h×w weights and N areas."""
    n = wts.shape[0]
    feats = grid.features.to(torch.float32)
    cells = feats.reshape(feats.shape[0], -1)
    pooled = wts.reshape(n, cells.shape[1]) @ cells.T  # N×D
    return torch.where(area[:, None] > 0, pooled / area.clamp(min=1)[:, None], torch.zeros_like(pooled))
