"""Voxel hashing: an open-addressing hash table from int64 keys (voxel keys, or any
non-negative integers) to slots 0, 1, 2, ... in the order the keys arrived, probed for a whole
frame's keys at once with numpy (linear probing, Fibonacci hashing).

Looking up a frame costs O(its keys) whatever the size of the scene (OnlineAnySeg's and
InfiniTAM's voxel hashing), and memory grows with the keys held, never with the frames (the
table doubles when half full). Whoever keeps data per slot grows its arrays with `grown`.
"""

from __future__ import annotations

import numpy as np

from regiond.core.runs import ordered

_EMPTY = np.int64(-1)  # the keys are non-negative
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


class VoxelHash:
    """capacity  keys to hold before the first growth (a scan's first seconds fill 32k voxels;
    each growth costs its frame about a millisecond)"""

    def __init__(self, capacity: int = 1 << 15):
        self._bits = max(int(2 * capacity - 1).bit_length(), 4)  # half full at capacity
        self._keys = np.full(1 << self._bits, _EMPTY, np.int64)  # hash table: keys ...
        self._slot = np.zeros(1 << self._bits, np.int64)  # ... and their slots
        self.n = 0
        self.keys = np.zeros(capacity, np.int64)  # each slot's key

    def __len__(self) -> int:
        return self.n

    def nbytes(self) -> int:
        return self._keys.nbytes + self._slot.nbytes + self.keys.nbytes

    def lookup(self, keys: np.ndarray) -> np.ndarray:
        """Slots of M keys, -1 for keys not held."""
        pos, found = self._probe(keys)
        return np.where(found, self._slot[pos], -1)

    def insert(self, keys: np.ndarray) -> np.ndarray:
        """Slots for M distinct keys not held yet: n, n+1, ... in their order."""
        m = len(keys)
        if 2 * (self.n + m) > len(self._keys):
            self._rehash(2 * (self.n + m))
        self.keys = grown(self.keys, self.n + m, self.n)
        slots = np.arange(self.n, self.n + m)
        self.keys[slots] = keys
        self.n += m
        self._place(keys, slots)
        return slots

    def slots(self, keys: np.ndarray) -> np.ndarray:
        """Slots of M distinct keys, inserting those not held yet."""
        slots = self.lookup(keys)
        new = np.flatnonzero(slots < 0)
        if new.size:
            slots[new] = self.insert(keys[new])
        return slots

    def _home(self, keys: np.ndarray) -> np.ndarray:
        return ((keys.astype(np.uint64) * _GOLDEN) >> np.uint64(64 - self._bits)).astype(np.int64)

    def _probe(self, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(hash position, found) of each key: where it is, or the empty place ending its probe."""
        pos = self._home(keys)
        at = self._keys[pos]  # the first place of every key directly (most end there) ...
        found = at == keys
        todo = np.flatnonzero(~found & (at != _EMPTY))
        mask = len(self._keys) - 1
        while len(todo):  # ... then the next places of those that go on
            pos[todo] = (pos[todo] + 1) & mask
            at = self._keys[pos[todo]]
            hit = at == keys[todo]
            found[todo[hit]] = True
            todo = todo[~hit & (at != _EMPTY)]
        return pos, found

    def _place(self, keys: np.ndarray, slots: np.ndarray) -> None:
        """Put distinct new keys in the hash table: each claims the empty end of its probe;
        where several claim one place, one wins and the others probe on."""
        mask = len(self._keys) - 1
        pos = self._home(keys)
        todo = np.arange(len(keys))
        while len(todo):
            while True:  # move each past places taken by other keys
                busy = self._keys[pos[todo]] != _EMPTY
                if not busy.any():
                    break
                pos[todo[busy]] = (pos[todo[busy]] + 1) & mask
            self._keys[pos[todo]] = keys[todo]
            won = self._keys[pos[todo]] == keys[todo]
            self._slot[pos[todo[won]]] = slots[todo[won]]
            todo = todo[~won]

    def _rehash(self, size: int) -> None:
        self._bits = max(int(size - 1).bit_length(), 4)
        self._keys = np.full(1 << self._bits, _EMPTY, np.int64)
        self._slot = np.zeros(1 << self._bits, np.int64)
        # Into the empty table, in order of home place, each key takes the first place free from
        # its home on: one running maximum instead of probing rounds (twice as fast); the few
        # that run past the end probe on from the start as ever.
        keys = self.keys[: self.n]
        home, order = ordered(self._home(keys))
        step = np.arange(self.n)
        pos = np.maximum.accumulate(home - step) + step
        fits = pos < len(self._keys)
        self._keys[pos[fits]] = keys[order[fits]]
        self._slot[pos[fits]] = order[fits]
        if not fits.all():
            self._place(keys[order[~fits]], order[~fits])


def grown(array: np.ndarray, rows: int, used: int, axis: int = 0) -> np.ndarray:
    """`array` itself when it has `rows` along `axis`, else one twice as long (or `rows`) of
    zeros with its first `used` copied: the rest stays untouched (no page faults) until used,
    unlike a concatenation's."""
    if array.shape[axis] >= rows:
        return array
    shape = list(array.shape)
    shape[axis] = max(2 * array.shape[axis], rows)
    new = np.zeros(shape, array.dtype)
    index = (slice(None),) * axis + (slice(0, used),)
    new[index] = array[index]
    return new
