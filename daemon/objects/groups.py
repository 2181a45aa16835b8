"""Per-group arg-max over flat arrays: an idiom the object map's vectorised steps share (the
sort-based groupings themselves are regiond.core.runs')."""

from __future__ import annotations

import numpy as np

from regiond.core.runs import run_starts


def best_per_group(group: np.ndarray, score: np.ndarray, tie: np.ndarray | None = None) -> np.ndarray:
    """Indices of the highest `score` of each distinct `group` value, in increasing group order;
    ties go to the smallest `tie` (default: the position)."""
    group, score = np.asarray(group), np.asarray(score)
    if tie is None and len(group) and not (group[1:] < group[:-1]).any():
        return _best_per_run(group, score)
    keys = (-score, group)
    if tie is not None:
        keys = (np.asarray(tie),) + keys
    order = np.lexsort(keys)
    g = group[order]
    return order[np.r_[True, g[1:] != g[:-1]]] if len(order) else order


def _best_per_run(group: np.ndarray, score: np.ndarray) -> np.ndarray:
    """best_per_group of a sorted `group`: the first highest score of each run, without a sort."""
    at = np.flatnonzero(run_starts(group))
    run = np.cumsum(run_starts(group)) - 1
    top = score == np.maximum.reduceat(score, at)[run]
    hit = np.flatnonzero(top)  # each run has one at least: the first one is its best
    return hit[run_starts(run[hit])]
