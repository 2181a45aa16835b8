"""How often each label fell in each voxel of a fused cloud, for its majority label."""

from __future__ import annotations

import numpy as np

from regiond.core.errors import InputError
from regiond.core.runs import run_starts
from regiond.geometry.voxel_hash import VoxelHash, grown

_LABEL_BITS = 32  # a (voxel slot, label) pair's key: slot << 32 | label


class LabelCounts:
    """Counts of non-zero labels per voxel slot. A voxel's first label is counted in place
    (almost every voxel keeps the one label all frames give it); the others in a hash of
    (slot, label) pairs. Each pair is counted in one place only, so the majority is exact.
    The fusion's compiled loop counts (regiond.geometry.compiled.fuse), on the arrays
    `arrays` gives it."""

    def __init__(self, capacity: int = 1 << 15):
        self.first = np.zeros(capacity, np.int64)  # a slot's first label (0: none yet) ...
        self.first_count = np.zeros(capacity, np.int64)  # ... and how often it fell there
        self.pairs = VoxelHash()  # the other (slot, label) pairs → their counts
        self.counts = np.zeros(self.pairs.limit, np.int64)
        self.empty = True  # no label counted yet

    @staticmethod
    def check(labels: np.ndarray) -> None:
        """InputError for labels too large to pair with a slot."""
        if labels.size and int(labels.max()) >= 1 << _LABEL_BITS:
            raise InputError("labels", f"must be below 2^{_LABEL_BITS}, got {int(labels.max())}")

    def arrays(self, slots: int, used: int) -> tuple:
        """(first, first_count, the pairs' hash arrays, their counts), grown to hold `slots`
        voxel slots (`used` of them in use) and as many pairs as the pairs' hash holds."""
        self.first = grown(self.first, slots, used)
        self.first_count = grown(self.first_count, slots, used)
        self.counts = grown(self.counts, self.pairs.limit, self.pairs.n)
        return self.first, self.first_count, self.pairs.arrays(), self.counts

    def counted(self, n_slots: int, pairs: int, labelled: bool) -> None:
        """After the loop: n_slots voxel slots and `pairs` pairs hold counts now (labelled:
        whether it was given labels; a scan without them never scans its slots for one)."""
        self.pairs.n = pairs
        if labelled and self.empty:
            self.empty = not (pairs or self.first[:n_slots].any())

    def majority(self, n_slots: int) -> np.ndarray:
        """n_slots int32: each slot's most frequent label, ties to the smaller id (0: none)."""
        labelled = np.flatnonzero(self.first[:n_slots])
        keys = self.pairs.keys[: self.pairs.n]
        slot = np.concatenate([labelled, keys >> _LABEL_BITS])
        label = np.concatenate([self.first[labelled], keys & ((1 << _LABEL_BITS) - 1)])
        count = np.concatenate([self.first_count[labelled], self.counts[: self.pairs.n]])
        best = np.lexsort((label, -count, slot))
        best = best[run_starts(slot[best])]
        out = np.zeros(n_slots, np.int32)
        out[slot[best]] = label[best]
        return out
