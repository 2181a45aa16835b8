"""The mask generator interface: an RGB image in, class-agnostic masks out."""

from __future__ import annotations

from typing import Protocol

import numpy as np

from regiond.core.partition import Partition
from regiond.core.regionset import SOURCE_SAM, SOURCE_SLIC  # noqa: F401  (re-exported for generators)


class MaskGenerationError(RuntimeError):
    """The mask generator failed on a frame (a fault of ours, not the caller's input): the
    frame gets no regions; a stream goes on with its next frame."""


class MaskProposals:
    """N class-agnostic masks of one image, in the order they should become regions.

    masks      N×H×W bool
    source     N uint8 (SOURCE_SAM / SOURCE_SLIC)
    scores     N float32, SAM predicted IoU, NaN for SLIC
    partition  when no two masks overlap (SLIC superpixels), the same masks as a label map
               (regiond.core.partition): pooling, RLE and 3D statistics then take one pass over it,
               and the N×H×W stack is built only if someone reads `masks`
    """

    def __init__(
        self, masks: np.ndarray | None, source: np.ndarray, scores: np.ndarray, partition: Partition | None = None
    ):
        if masks is None and partition is None:
            raise ValueError("MaskProposals needs masks or a partition")
        self._masks, self.source, self.scores, self.partition = masks, source, scores, partition

    @classmethod
    def from_partition(cls, partition: Partition, source: int) -> MaskProposals:
        """The regions of a partition, all from one source (scores NaN)."""
        n = partition.n
        return cls(None, np.full(n, source, np.uint8), np.full(n, np.nan, np.float32), partition)

    @property
    def masks(self) -> np.ndarray:
        if self._masks is None:
            self._masks = self.partition.masks()
        return self._masks

    @property
    def regions(self) -> np.ndarray | Partition:
        """What pooling, RegionSet.from_masks and region_geometry take: the partition when
        there is one (one pass over a label map), else the mask stack."""
        return self.partition if self.partition is not None else self.masks

    def __len__(self) -> int:
        return int(self.source.shape[0])

    @classmethod
    def empty(cls, height: int, width: int) -> MaskProposals:
        return cls(np.zeros((0, height, width), bool), np.zeros(0, np.uint8), np.zeros(0, np.float32))


class MaskGenerator(Protocol):
    """Takes C-contiguous H×W×3 uint8 RGB (see frames.as_rgb8) and returns MaskProposals."""

    name: str

    def __call__(self, rgb: np.ndarray) -> MaskProposals: ...
