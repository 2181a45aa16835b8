"""Voxel hashing: a hash table from int64 keys (voxel keys, or any non-negative integers) to
slots 0, 1, 2, ... in the order the keys arrived. Its loops are compiled
(regiond.geometry.compiled): open addressing, linear probing, Fibonacci hashing.

Looking up a frame costs O(its keys) whatever the size of the scene (OnlineAnySeg's and
InfiniTAM's voxel hashing), and memory grows with the keys held, never with the frames (the
table doubles when half full). Whoever keeps data per slot grows its arrays with `grown`.
"""

from __future__ import annotations

import numpy as np

_EMPTY = -1  # the keys are non-negative (compiled.EMPTY)


class VoxelHash:
    """capacity  keys to hold before the first growth (a scan's first seconds fill 32k voxels;
    each growth costs its frame about a millisecond)"""

    def __init__(self, capacity: int = 1 << 15):
        from regiond.geometry import compiled  # numba: loaded when a hash is first built

        self._compiled = compiled
        self._bits = max(int(2 * capacity - 1).bit_length(), 4)  # half full at capacity
        self._table = _empty_table(self._bits)
        self.n = 0
        self.keys = np.zeros(self.limit, np.int64)  # each slot's key

    def __len__(self) -> int:
        return self.n

    @property
    def limit(self) -> int:
        """The keys it holds before it grows (half its table)."""
        return len(self._table) // 2

    def nbytes(self) -> int:
        return self._table.nbytes + self.keys.nbytes

    def lookup(self, keys: np.ndarray) -> np.ndarray:
        """Slots of M keys, -1 for keys not held."""
        keys = np.ascontiguousarray(keys, np.int64)
        out = np.empty(len(keys), np.int64)
        self._compiled.lookup(self._table, keys, 64 - self._bits, out)
        return out

    def slots(self, keys: np.ndarray) -> np.ndarray:
        """Slots of M keys, those not held yet inserted (the next slots, in their order)."""
        keys = np.ascontiguousarray(keys, np.int64)
        out = np.empty(len(keys), np.int64)
        done = 0
        while done < len(keys):
            done, self.n = self._compiled.slots(
                self._table, self.keys, self.n, keys, 64 - self._bits, out, done, self.limit
            )
            if done < len(keys):
                self.grow()
        return out

    def arrays(self) -> tuple:
        """(table, slot_keys, n, shift, limit): what the compiled loops take."""
        return self._table, self.keys, self.n, 64 - self._bits, self.limit

    def grow(self) -> None:
        """Double the table (and the slots' keys), its keys placed again."""
        self._bits += 1
        self._table = _empty_table(self._bits)
        self.keys = grown(self.keys, self.limit, self.n)
        self._compiled.rehash(self._table, self.keys, self.n, 64 - self._bits)


def _empty_table(bits: int) -> np.ndarray:
    """2^bits places of (key, slot), all empty: a place's key and slot share a cache line."""
    table = np.zeros((1 << bits, 2), np.int64)
    table[:, 0] = _EMPTY
    return table


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
