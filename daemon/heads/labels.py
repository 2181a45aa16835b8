"""From region scores to label maps (the training labels of regions are
core.regionset.region_labels).

- pixel_labels: a pixel's prediction is the mean of the softmax probabilities of all regions
  covering it; pixels no region covers are `unlabelled` (0), never silently a class.
"""
from __future__ import annotations

import numpy as np

from core.labels import UNLABELLED
from core.regionset import RegionSet
from core.rle import MaskPixels


def pixel_labels(regions: RegionSet, probs, class_ids, unlabelled: int = UNLABELLED) -> np.ndarray:
    """H×W int32 label map of class ids: at each pixel, class_ids[argmax] of the mean of the
    probabilities of the regions covering it; `unlabelled` where no region covers it.

    probs  N×C region class probabilities (rows sum to 1)
    A pixel inside one region takes that region's class, so the map is painted from the
    regions' own classes (masks decoded all at once, no N×H×W or C×H×W arrays); only the
    pixels several regions share are averaged."""
    p = np.asarray(probs, np.float32)
    ids = np.asarray(class_ids, np.int32)
    n = len(regions)
    if p.ndim != 2 or p.shape[0] != n:
        raise ValueError(f"{p.shape[0] if p.ndim == 2 else p.shape} rows of probabilities for {n} regions")
    if len(ids) != p.shape[1]:
        raise ValueError(f"{len(ids)} class ids for {p.shape[1]} classes")
    h, w = regions.height, regions.width
    out = np.full(w * h, unlabelled, np.int32)  # column-major, as RLE
    if n and len(ids):
        mp = MaskPixels.from_counts(regions.counts, h, w)
        depth = np.bincount(mp.pixel, minlength=h * w)
        alone = depth[mp.pixel] == 1
        out[mp.pixel[alone]] = ids[p.argmax(1)][mp.mask[alone]]
        if not alone.all():
            shared, inv = np.unique(mp.pixel[~alone], return_inverse=True)
            total = np.zeros((shared.size, p.shape[1]), np.float32)
            np.add.at(total, inv.reshape(-1), p[mp.mask[~alone]])
            out[shared] = ids[(total / depth[shared, None].astype(np.float32)).argmax(1)]
    return np.ascontiguousarray(out.reshape(w, h).T)
