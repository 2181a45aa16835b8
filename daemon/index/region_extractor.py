"""What indexing and queries need of an extractor."""

from __future__ import annotations

from typing import Protocol

import numpy as np

from regiond.core.frames import Frame
from regiond.core.regionset import RegionSet


class RegionExtractor(Protocol):
    """regiond.extraction.Extractor, or the daemon's queued front of it (service.servicer).

    dim            feature width
    features_name  what produces the features ("profile/backbone/pooling"); an index keeps it
                   and refuses another extractor's features
    max_pixels     the largest image it accepts
    weights        checkpoint file per model role ("masker", "backbone"); absent: none (random
                   or weightless models)
    """

    dim: int
    features_name: str
    max_pixels: int
    weights: dict[str, str]

    def extract(self, frame: Frame | np.ndarray) -> RegionSet:
        """The image's region tokens."""

    def pool(self, frame: Frame | np.ndarray, masks: np.ndarray) -> np.ndarray:
        """N×D features of N×H×W masks of the image, as extract() pools its regions."""
