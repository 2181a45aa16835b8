"""Runs of equal values in sorted arrays: the step every sort-based grouping shares (the
fusion's voxels, the object map's groups)."""

from __future__ import annotations

import numpy as np


def run_starts(sorted_values: np.ndarray) -> np.ndarray:
    """Where each run of equal values starts in a sorted array (True at 0 when non-empty)."""
    new = np.empty(len(sorted_values), bool)
    new[:1] = True
    np.not_equal(sorted_values[1:], sorted_values[:-1], out=new[1:])
    return new
