"""SLIC superpixels through fast-slic (the paper's gap filler and the `lite` profile's masks).

fast-slic converts RGB to Lab itself and accepts only C-contiguous H×W×3 uint8, so every
input goes through frames.as_rgb8 first.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from regiond.core.frames import DEFAULT_MAX_PIXELS, as_rgb8
from regiond.core.partition import Partition
from regiond.masks.generator import SOURCE_SLIC, MaskProposals


def _slic_class():
    """The AVX2 build where the CPU and the compiled module support it, else the portable one."""
    import fast_slic  # heavy: only when a SLIC masker is built

    if "x64/avx2" in fast_slic.supported_archs:
        try:
            from fast_slic.avx2 import SlicAvx2  # optional: not every fast-slic build has AVX2

            return SlicAvx2
        except ImportError:  # compiled without AVX2
            pass
    return fast_slic.Slic


@dataclass(frozen=True)
class SlicConfig:
    """fast-slic parameters.

    num_components   target number of superpixels (paper: 50)
    compactness      colour vs. space trade-off; higher = more regular shapes (paper: 8)
    min_size_factor  superpixels smaller than this fraction of the mean size are merged
                     (fast-slic's default)
    max_iter         k-means iterations (fast-slic's default)
    num_threads      OpenMP threads; -1 = all cores. One by default: a second thread gains
                     nothing measurable at 640×480 (the labels are the same), and when the
                     cores are busy with other work every parallel region waits for its
                     slowest thread (median 35 vs 78 ms a frame on 2 loaded cores)
    """

    num_components: int = 50
    compactness: float = 8.0
    min_size_factor: float = 0.25
    max_iter: int = 10
    num_threads: int = 1


class SlicMasker:
    """One region per superpixel, in label order."""

    name = "slic"

    def __init__(self, config: SlicConfig | None = None, max_pixels: int = DEFAULT_MAX_PIXELS):
        self.config = config or SlicConfig()
        self.max_pixels = max_pixels
        self.slic_class = _slic_class()

    @property
    def arch(self) -> str:
        return self.slic_class.arch_name

    def partition(self, rgb) -> Partition:
        """The superpixels, numbered 0..K-1 (consecutive)."""
        rgb = as_rgb8(rgb, max_pixels=self.max_pixels)
        c = self.config
        # A fresh model per image: fast-slic keeps its cluster centres between calls.
        slic = self.slic_class(
            num_components=c.num_components,
            compactness=c.compactness,
            min_size_factor=c.min_size_factor,
            num_threads=c.num_threads,
        )
        # Connectivity enforcement can leave gaps in the numbering: close them (rare).
        return Partition.from_labels(slic.iterate(rgb, max_iter=c.max_iter)).without_empty()

    def labels(self, rgb) -> np.ndarray:
        """H×W int32 superpixel labels 0..K-1 (consecutive)."""
        return self.partition(rgb).labels.astype(np.int32, copy=False)

    def __call__(self, rgb) -> MaskProposals:
        """One region per superpixel, as a partition (the mask stack is built only on demand)."""
        return MaskProposals.from_partition(self.partition(rgb), SOURCE_SLIC)
