"""The paper's SAM+SLIC cover: SAM masks, then SLIC pieces over what SAM left uncovered.

A pixel is uncovered when no SAM mask holds it. Each superpixel contributes the piece
superpixel ∩ uncovered when that piece has at least `min_piece` pixels (paper: 300). SAM
masks come first, then the pieces in superpixel order. With no SAM masks at all every
superpixel is kept whole (whatever its size), so the image is still fully covered.
"""

from __future__ import annotations

import numpy as np

from regiond.core.frames import DEFAULT_MAX_PIXELS, as_rgb8
from regiond.core.partition import Partition
from regiond.masks.generator import SOURCE_SLIC, MaskGenerator, MaskProposals


def slic_pieces(labels: np.ndarray, covered: np.ndarray, min_piece: int) -> np.ndarray:
    """K'×H×W bool pieces (label ∩ ~covered) of at least `min_piece` pixels (and never empty),
    in label order."""
    uncovered = ~covered
    k = int(labels.max()) + 1 if labels.size else 0
    sizes = np.bincount(labels[uncovered], minlength=k)
    keep = np.flatnonzero(sizes >= max(min_piece, 1))
    # One pass over the image: an uncovered pixel's piece id, or -1.
    piece_of = np.where(uncovered, labels, -1)
    return piece_of[None, :, :] == keep[:, None, None].astype(piece_of.dtype)


def cover(sam: MaskProposals, labels: np.ndarray, min_piece: int = 300) -> MaskProposals:
    """Combine SAM proposals with a SLIC label map (H×W, labels 0..K-1) by the paper's rule."""
    if len(sam) == 0:
        return MaskProposals.from_partition(Partition.from_labels(labels), SOURCE_SLIC)
    pieces = slic_pieces(labels, sam.masks.any(axis=0), min_piece)
    n = pieces.shape[0]
    return MaskProposals(
        masks=np.concatenate([sam.masks.astype(bool, copy=False), pieces]),
        source=np.concatenate([sam.source, np.full(n, SOURCE_SLIC, np.uint8)]),
        scores=np.concatenate([sam.scores.astype(np.float32), np.full(n, np.nan, np.float32)]),
    )


class SamSlicCover:
    """SAM masks, with SLIC superpixel pieces filling the gaps (the paper's region proposals)."""

    name = "sam+slic"

    def __init__(self, sam: MaskGenerator, slic, min_piece: int = 300, max_pixels: int = DEFAULT_MAX_PIXELS):
        self.sam = sam  # a MaskGenerator (normally SamMasker)
        self.slic = slic  # a SlicMasker (needs .labels(rgb))
        self.min_piece = int(min_piece)
        self.max_pixels = max_pixels

    def __call__(self, rgb) -> MaskProposals:
        rgb = as_rgb8(rgb, max_pixels=self.max_pixels)
        return cover(self.sam(rgb), self.slic.labels(rgb), self.min_piece)
