"""Sort-based grouping of integer arrays (np.unique and np.argsort by one plain sort, without
their overheads), and the runs of equal values every such grouping reads: the object map's
groups and votes, the fused cloud's majority labels."""

from __future__ import annotations

import numpy as np


def run_starts(sorted_values: np.ndarray) -> np.ndarray:
    """Where each run of equal values starts in a sorted array (True at 0 when non-empty)."""
    new = np.empty(len(sorted_values), bool)
    new[:1] = True
    np.not_equal(sorted_values[1:], sorted_values[:-1], out=new[1:])
    return new


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
    new = run_starts(s)
    inverse = np.empty(len(s), np.int64)
    inverse[order] = np.cumsum(new) - 1
    at = np.flatnonzero(new)
    return s[at], inverse, np.diff(at, append=len(s))
