"""The backbone interface: an RGB image in, a feature grid plus its pixel geometry out."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

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

    @property
    def dim(self) -> int:
        return int(self.features.shape[0])


class Backbone(Protocol):
    name: str
    dim: int
    stride: int

    def __call__(self, rgb: np.ndarray) -> FeatureGrid: ...
