"""How often each label fell in each voxel of a fused cloud, for its majority label."""

from __future__ import annotations

import numpy as np

from regiond.core.errors import InputError
from regiond.core.runs import run_starts
from regiond.geometry.voxel_hash import VoxelHash, grown

_LABEL_BITS = 32  # a (voxel slot, label) pair's key: slot << 32 | label


class LabelCounts:
    """Counts of non-zero labels per voxel slot. A voxel's first label is counted in place
    (almost every voxel keeps the one label all frames give it: a gather and an add a frame);
    the others in a hash of (slot, label) pairs. Each pair is counted in one place only, so the
    majority is exact."""

    def __init__(self, capacity: int = 1 << 15):
        self.first = np.zeros(capacity, np.int64)  # a slot's first label (0: none yet) ...
        self.first_count = np.zeros(capacity, np.int64)  # ... and how often it fell there
        self._pairs = VoxelHash()  # the other (slot, label) pairs → their counts
        self._counts = np.zeros(len(self._pairs.keys), np.int64)
        self._slots = 0  # the slots the arrays cover
        self.empty = True  # no label counted yet

    @staticmethod
    def check(labels: np.ndarray) -> None:
        """InputError for labels too large to pair with a slot."""
        if labels.size and int(labels.max()) >= 1 << _LABEL_BITS:
            raise InputError("labels", f"must be below 2^{_LABEL_BITS}, got {int(labels.max())}")

    def add(self, slots: np.ndarray, labels: np.ndarray, counts: np.ndarray, n_slots: int) -> None:
        """Count M distinct (slot, label > 0) pairs `counts` times each; the pairs of a slot lie
        together (sorted by slot, then label); n_slots: the slots there are now."""
        self.first = grown(self.first, n_slots, self._slots)
        self.first_count = grown(self.first_count, n_slots, self._slots)
        self._slots, self.empty = n_slots, self.empty and not len(slots)
        have = self.first[slots]
        take = (have == 0) & run_starts(slots)  # a slot without a label takes its first pair's
        self.first[slots[take]] = labels[take]
        have[take] = labels[take]
        same = have == labels  # at most one pair of each slot: distinct slots
        self.first_count[slots[same]] += counts[same]
        rest = np.flatnonzero(~same)
        if rest.size:
            n = self._pairs.n
            at = self._pairs.slots((slots[rest] << _LABEL_BITS) | labels[rest])
            self._counts = grown(self._counts, self._pairs.n, n)
            self._counts[at] += counts[rest]

    def majority(self, n_slots: int) -> np.ndarray:
        """n_slots int32: each slot's most frequent label, ties to the smaller id (0: none)."""
        labelled = np.flatnonzero(self.first[:n_slots])
        keys = self._pairs.keys[: self._pairs.n]
        slot = np.concatenate([labelled, keys >> _LABEL_BITS])
        label = np.concatenate([self.first[labelled], keys & ((1 << _LABEL_BITS) - 1)])
        count = np.concatenate([self.first_count[labelled], self._counts[: self._pairs.n]])
        best = np.lexsort((label, -count, slot))
        best = best[run_starts(slot[best])]
        out = np.zeros(n_slots, np.int32)
        out[slot[best]] = label[best]
        return out
