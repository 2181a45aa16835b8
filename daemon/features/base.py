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

    features: torch.Tensor            # D×grid_h×grid_w float32
    stride: int
    pad: tuple[int, int, int, int]    # top, bottom, left, right
    image_size: tuple[int, int]       # height, width of the (possibly resized) image
    scale: float = 1.0                # image_size / original size when the backbone capped the long side
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


def cap_long_side(rgb: np.ndarray, max_side: int | None) -> tuple[np.ndarray, float]:
    """The image resized (area interpolation) so its long side is at most max_side, and the
    scale applied (1.0 when it already fits or max_side is None)."""
    h, w = rgb.shape[:2]
    if max_side is None or max(h, w) <= max_side:
        return rgb, 1.0
    s = max_side / max(h, w)
    size = (max(1, round(w * s)), max(1, round(h * s)))
    return np.ascontiguousarray(cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)), s


class Backbone(Protocol):
    name: str
    dim: int
    stride: int

    def __call__(self, rgb: np.ndarray) -> FeatureGrid: ...
