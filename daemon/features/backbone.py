"""The backbone interface: an RGB image in, a feature grid plus its pixel geometry out."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import cv2
import numpy as np
import torch


@dataclass
class FeatureGrid:
    """Features on a regular grid over a padded image.

    The image (height×width) was zero-padded by pad = (top, bottom, left, right) to
    (grid_h·stride)×(grid_w·stride); cell (i, j) covers padded pixels
    [i·stride, (i+1)·stride) × [j·stride, (j+1)·stride).
    """

    features: torch.Tensor  # D×grid_h×grid_w float32
    stride: int
    pad: tuple[int, int, int, int]  # top, bottom, left, right
    image_size: tuple[int, int]  # height, width of the (possibly resized) image
    scale: float = 1.0  # image_size / original size when the backbone capped the long side
    original_size: tuple[int, int] | None = None  # height, width before the cap (None: same as image_size)

    @property
    def dim(self) -> int:
        return int(self.features.shape[0])

    @property
    def source_size(self) -> tuple[int, int]:
        """Height, width of the image the caller passed in (before any cap)."""
        return tuple(self.original_size) if self.original_size is not None else tuple(self.image_size)


def padding(height: int, width: int, stride: int) -> tuple[int, int, int, int]:
    """Zero padding (top, bottom, left, right) to multiples of `stride`; the floor of each
    axis's padding goes on top/left (as DINOv2's CenterPadding does)."""
    ph, pw = (-height) % stride, (-width) % stride
    return ph // 2, ph - ph // 2, pw // 2, pw - pw // 2


def capped_size(height: int, width: int, max_side: int | None) -> tuple[tuple[int, int], float]:
    """(height, width) after capping the long side at max_side, and the scale applied (1.0
    when it already fits or max_side is None)."""
    if max_side is None or max(height, width) <= max_side:
        return (height, width), 1.0
    s = max_side / max(height, width)
    return (max(1, round(height * s)), max(1, round(width * s))), s


def cap_long_side(rgb: np.ndarray, max_side: int | None) -> tuple[np.ndarray, float]:
    """The image resized (area interpolation) so its long side is at most max_side, and the
    scale applied (1.0 when it already fits or max_side is None)."""
    (h, w), s = capped_size(*rgb.shape[:2], max_side)
    if s == 1.0:
        return rgb, 1.0
    return np.ascontiguousarray(cv2.resize(rgb, (w, h), interpolation=cv2.INTER_AREA)), s


def grid_layout(height: int, width: int, stride: int, max_side: int | None = None, device="cpu") -> FeatureGrid:
    """The grid a backbone of this stride and cap gives a height×width image, without its
    features (a 0×grid_h×grid_w tensor): what pooling can prepare before the features exist."""
    (h, w), scale = capped_size(height, width, max_side)
    pad = top, bottom, left, right = padding(h, w, stride)
    empty = torch.empty((0, (h + top + bottom) // stride, (w + left + right) // stride), device=device)
    return FeatureGrid(empty, stride, pad, (h, w), scale, original_size=(height, width) if scale != 1.0 else None)


class Backbone(Protocol):
    name: str
    dim: int
    stride: int

    def __call__(self, rgb: np.ndarray) -> FeatureGrid: ...

    # Optional: layout(height, width) -> FeatureGrid, the grid_layout of what __call__ returns
    # for a height×width image, for backbones that know it without running (classic).
