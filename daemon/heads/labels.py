"""Between pixels and regions: training labels for regions, label maps from region scores.

- region_labels: a region's label is the class holding more than half of its pixels (the
  paper's rule); otherwise, or when that class is 0 (unannotated), it has none (-1).
- pixel_labels: a pixel's prediction is the mean of the softmax probabilities of all regions
  covering it; pixels no region covers are `unlabelled` (0), never silently a class.
"""
from __future__ import annotations

import numpy as np
import torch

from ..tokens import RegionSet

UNLABELLED = 0  # NYU40 id 0: no class


def region_labels(regions: RegionSet, label_map: np.ndarray, min_fraction: float = 0.5) -> np.ndarray:
    """Per-region class id by the >50% rule (strictly more than min_fraction of its pixels).

    label_map  H×W integer class ids (0 = unannotated) of the same size as the regions
    Returns N int64: the class id, or -1 where no class holds the majority (or it is 0).
    """
    label_map = np.asarray(label_map)
    if label_map.shape != (regions.height, regions.width):
        raise ValueError(f"label map {label_map.shape} does not match the regions' image "
                         f"{regions.height}×{regions.width}")
    out = np.full(len(regions), -1, np.int64)
    for i in range(len(regions)):
        vals = label_map[regions.mask(i)]
        if not vals.size:
            continue
        ids, counts = np.unique(vals, return_counts=True)
        k = int(np.argmax(counts))
        if counts[k] > min_fraction * vals.size and ids[k] != UNLABELLED:
            out[i] = int(ids[k])
    return out


def pixel_probabilities(regions: RegionSet, probs) -> tuple[np.ndarray, np.ndarray]:
    """Mean of the covering regions' probabilities at every pixel.

    probs  N×C region class probabilities (rows sum to 1)
    Returns (C×H×W float32 mean probabilities, zero where uncovered; H×W bool covered).
    """
    p = torch.as_tensor(np.asarray(probs, np.float32))
    n, c = p.shape
    if n != len(regions):
        raise ValueError(f"{n} rows of probabilities for {len(regions)} regions")
    h, w = regions.height, regions.width
    if n == 0:
        return np.zeros((c, h, w), np.float32), np.zeros((h, w), bool)
    masks = torch.from_numpy(regions.masks().reshape(n, h * w)).float()
    total = p.T @ masks                                   # C×HW
    count = masks.sum(0)                                  # HW
    covered = count > 0
    mean = torch.where(covered, total / count.clamp_min(1), torch.zeros_like(total))
    return mean.reshape(c, h, w).numpy(), covered.reshape(h, w).numpy()


def pixel_labels(regions: RegionSet, probs, class_ids, unlabelled: int = UNLABELLED) -> np.ndarray:
    """H×W int32 label map of class ids (class_ids[argmax of the mean probabilities]);
    `unlabelled` where no region covers the pixel."""
    mean, covered = pixel_probabilities(regions, probs)
    ids = np.asarray(class_ids, np.int32)
    if len(ids) != mean.shape[0]:
        raise ValueError(f"{len(ids)} class ids for {mean.shape[0]} classes")
    out = ids[mean.argmax(0)] if len(ids) else np.full(covered.shape, unlabelled, np.int32)
    return np.where(covered, out, unlabelled).astype(np.int32)
