"""Per-group arg-max over flat arrays: the one idiom the object map's vectorised steps share."""

from __future__ import annotations

import numpy as np


def distinct(values: np.ndarray) -> np.ndarray:
    """The sorted distinct values: np.unique by one sort (numpy 2.4's hashing np.unique takes
    seconds on some integer arrays, e.g. 300,000 consecutive ones)."""
    s = np.sort(np.asarray(values).ravel())
    return s[np.r_[True, s[1:] != s[:-1]]] if len(s) else s


def best_per_group(group: np.ndarray, score: np.ndarray, tie: np.ndarray | None = None) -> np.ndarray:
    """Indices of the highest `score` of each distinct `group` value, in increasing group order;
    ties go to the smallest `tie` (default: the position)."""
    keys = (-np.asarray(score), np.asarray(group))
    if tie is not None:
        keys = (np.asarray(tie),) + keys
    order = np.lexsort(keys)
    g = np.asarray(group)[order]
    return order[np.r_[True, g[1:] != g[:-1]]] if len(order) else order
