"""From region scores to label maps (the training labels of regions are
core.regionset.region_labels).

- pixel_labels: a pixel's prediction is the mean of the softmax probabilities of all regions
  covering it; pixels no region covers are `unlabelled` (0), never silently a class.
"""
from __future__ import annotations

import numpy as np
import torch

from core.labels import UNLABELLED
from core.regionset import RegionSet


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
