"""One-to-one matching of two mask sets (the fast generator against the reference)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Match:
    """How two mask sets correspond: `pairs` (i in a, j in b) maximise the summed IoU."""

    n_a: int
    n_b: int
    pairs: np.ndarray  # K×2 int
    iou: np.ndarray  # K mask IoU of each pair

    @property
    def min_iou(self) -> float:
        return float(self.iou.min()) if len(self.iou) else (1.0 if self.n_a == self.n_b == 0 else 0.0)

    def ok(self, min_iou: float = 0.99) -> bool:
        """Same count, and every mask matched to one of the other set with IoU ≥ min_iou."""
        return self.n_a == self.n_b and len(self.pairs) == self.n_a and self.min_iou >= min_iou

    def line(self) -> str:
        good = int((self.iou >= 0.99).sum())
        return f"masks matched {good}/{max(self.n_a, self.n_b)}, min IoU {self.min_iou:.4f}"


def mask_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """N×H×W and M×H×W bool → N×M IoU."""
    fa = a.reshape(len(a), -1).astype(np.float32)
    fb = b.reshape(len(b), -1).astype(np.float32)
    inter = fa @ fb.T
    union = fa.sum(1)[:, None] + fb.sum(1)[None, :] - inter
    return inter / np.maximum(union, 1.0)


def match_masks(a: np.ndarray, b: np.ndarray) -> Match:
    """Pair the masks of a and b one to one (Hungarian assignment on IoU)."""
    from scipy.optimize import linear_sum_assignment  # heavy: only when comparing

    if len(a) == 0 or len(b) == 0:
        return Match(len(a), len(b), np.zeros((0, 2), np.int64), np.zeros(0, np.float32))
    iou = mask_iou(a, b)
    rows, cols = linear_sum_assignment(-iou)
    return Match(len(a), len(b), np.stack([rows, cols], 1), iou[rows, cols])
