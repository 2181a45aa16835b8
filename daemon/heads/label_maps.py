"""From region scores to label maps (the training labels of regions are
regiond.core.regionset.region_labels).

- pixel_labels: a pixel's prediction is the mean of the softmax probabilities of all regions
  covering it; pixels no region covers are `unlabelled` (0), never silently a class.
"""

from __future__ import annotations

import numpy as np

from regiond.core.label_spaces import UNLABELLED
from regiond.core.regionset import RegionSet
from regiond.core.rle import MaskPixels, foreground_runs


def pixel_labels(regions: RegionSet, probs, class_ids, unlabelled: int = UNLABELLED, dtype=np.int32) -> np.ndarray:
    """H×W label map of class ids: at each pixel, class_ids[argmax] of the mean of the
    probabilities of the regions covering it; `unlabelled` where no region covers it.

    probs  N×C region class probabilities (rows sum to 1)
    dtype  of the map (uint8 for a PNG: painted in it, a quarter of the bytes to lay out
           row-major; every id must fit)
    A pixel inside one region takes that region's class, so the map is painted from the
    regions' own classes (masks decoded all at once, no N×H×W or C×H×W arrays); only the
    pixels several regions share are averaged. Regions that share no pixel are painted run
    by run, without decoding them at all."""
    p = np.asarray(probs, np.float32)
    ids = np.asarray(class_ids, np.int32)
    n = len(regions)
    if p.ndim != 2 or p.shape[0] != n:
        raise ValueError(f"{p.shape[0] if p.ndim == 2 else p.shape} rows of probabilities for {n} regions")
    if len(ids) != p.shape[1]:
        raise ValueError(f"{len(ids)} class ids for {p.shape[1]} classes")
    h, w = regions.height, regions.width
    if not n or not len(ids):
        return np.full((h, w), unlabelled, dtype)
    info = np.iinfo(dtype)
    if not info.min <= min(int(ids.min()), unlabelled) <= max(int(ids.max()), unlabelled) <= info.max:
        raise ValueError(f"class ids {ids.min()}..{ids.max()} and {unlabelled} do not fit {np.dtype(dtype).name}")
    ids = ids.astype(dtype)
    region_class = ids[p.argmax(1)]
    mask, start, size = foreground_runs(regions.counts, h, w)
    out = _painted(mask, start, size, region_class, unlabelled, h * w)  # column-major, as RLE
    if out is None:
        out = np.full(w * h, unlabelled, dtype)
        mp = MaskPixels.from_runs(n, h, w, mask, start, size)
        depth = np.bincount(mp.pixel, minlength=h * w)
        alone = depth[mp.pixel] == 1
        out[mp.pixel[alone]] = region_class[mp.mask[alone]]
        shared, inv = np.unique(mp.pixel[~alone], return_inverse=True)
        total = np.zeros((shared.size, p.shape[1]), np.float32)
        np.add.at(total, inv.reshape(-1), p[mp.mask[~alone]])
        out[shared] = ids[(total / depth[shared, None].astype(np.float32)).argmax(1)]
    return np.ascontiguousarray(out.reshape(w, h).T)


def _painted(mask, start, size, region_class, unlabelled: int, pixels: int) -> np.ndarray | None:
    """The column-major label map painted run by run (one np.repeat) when no pixel lies in two
    regions (a partition's pieces, e.g. SLIC's), else None."""
    order = np.argsort(start, kind="stable")
    start, size = start[order], size[order]
    end = start + size
    if (start[1:] < end[:-1]).any():
        return None
    values = np.full(2 * len(start) + 1, unlabelled, region_class.dtype)  # gap, run, gap, run, ..., gap
    values[1::2] = region_class[mask[order]]
    lengths = np.empty(len(values), np.int64)
    lengths[1::2] = size
    lengths[0:-1:2] = start - np.concatenate(([0], end[:-1]))
    lengths[-1] = pixels - (end[-1] if len(end) else 0)
    return np.repeat(values, lengths)
