"""Per-group arg-max and grouping over flat arrays: the idioms the object map's vectorised steps share."""

from __future__ import annotations

import numpy as np

from regiond.core.runs import run_starts


def distinct(values: np.ndarray) -> np.ndarray:
    """The sorted distinct values: np.unique by one sort (numpy 2.4's hashing np.unique takes
    seconds on some integer arrays, e.g. 300,000 consecutive ones)."""
    s = np.sort(np.asarray(values).ravel())
    return s[run_starts(s)] if len(s) else s


def counted(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(sorted distinct values, how often each occurs): np.unique(return_counts=True) by one
    sort, without its overheads (the object map calls it on every frame)."""
    s = np.sort(values)
    at = np.flatnonzero(run_starts(s))
    return s[at], np.diff(at, append=len(s))


def ordered(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(the integer values sorted as int64, the order sorting them): np.argsort by one sort of
    (value, position) packed in one integer where their range allows (twice as fast; equal
    values then keep their order), else by np.argsort (equal values in no particular order)."""
    values = np.asarray(values, np.int64)
    n = len(values)
    if n:
        lo, bits = int(values.min()), n.bit_length()
        if (int(values.max()) - lo) >> (62 - bits) == 0:
            s = np.sort(((values - lo) << bits) | np.arange(n))
            order = s & ((1 << bits) - 1)
            s >>= bits
            s += lo
            return s, order
    order = np.argsort(values)
    return values[order], order


def grouped(values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(sorted distinct values, the index of each value's among them, how often each occurs) of
    integer values: np.unique(return_inverse=True, return_counts=True) by one sort (ordered)."""
    s, order = ordered(values)
    at = np.flatnonzero(run_starts(s))
    counts = np.diff(at, append=len(s))
    inverse = np.empty(len(s), np.int64)
    inverse[order] = np.repeat(np.arange(len(at)), counts)
    return s[at], inverse, counts


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
