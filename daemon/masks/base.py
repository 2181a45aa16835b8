"""The mask generator interface: an RGB image in, class-agnostic masks out."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from core.regionset import SOURCE_SAM, SOURCE_SLIC  # noqa: F401  (re-exported for generators)


@dataclass
class MaskProposals:
    """N class-agnostic masks of one image, in the order they should become regions."""

    masks: np.ndarray   # N×H×W bool
    source: np.ndarray  # N uint8 (SOURCE_SAM / SOURCE_SLIC)
    scores: np.ndarray  # N float32, SAM predicted IoU, NaN for SLIC

    def __len__(self) -> int:
        return int(self.masks.shape[0])

    @classmethod
    def empty(cls, height: int, width: int) -> "MaskProposals":
        return cls(np.zeros((0, height, width), bool), np.zeros(0, np.uint8), np.zeros(0, np.float32))


class MaskGenerator(Protocol):
    """Takes C-contiguous H×W×3 uint8 RGB (see frames.as_rgb8) and returns MaskProposals."""

    name: str

    def __call__(self, rgb: np.ndarray) -> MaskProposals: ...
