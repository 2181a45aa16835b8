"""Per-group arg-max over flat arrays: the one idiom the object map's vectorised steps share."""

from __future__ import annotations

import numpy as np


def best_per_group(group: np.ndarray, score: np.ndarray, tie: np.ndarray | None = None) -> np.ndarray:
    """Indices of the highest `score` of each distinct `group` value, in increasing group order;
    ties go to the smallest `tie` (default: the position)."""
    keys = (-np.asarray(score), np.asarray(group))
    if tie is not None:
        keys = (np.asarray(tie),) + keys
    order = np.lexsort(keys)
    g = np.asarray(group)[order]
    return order[np.r_[True, g[1:] != g[:-1]]] if len(order) else order
