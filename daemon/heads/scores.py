"""Scores of activity heads: top-k accuracy. (Label maps are scored by regiond.core.confusion.)"""

from __future__ import annotations

import numpy as np


def topk_accuracy(scores: np.ndarray, targets: np.ndarray, k: int) -> float:
    """Fraction of rows whose target is among the k highest scores."""
    scores, targets = np.asarray(scores), np.asarray(targets)
    if not len(targets):
        return float("nan")
    top = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return float((top == targets[:, None]).any(axis=1).mean())
