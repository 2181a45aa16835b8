"""The object map's voxel hash: which object owns each occupied voxel of the scene.

An open-addressing hash table (linear probing, Fibonacci hashing) from voxel key
(regiond.geometry.voxel_keys) to a slot in flat arrays, probed for all of a frame's voxels at
once with numpy: looking up a frame costs O(its voxels) whatever the size of the scene
(OnlineAnySeg's voxel hashing), and memory grows with the occupied voxels only, never with
the frames (the table doubles when half full).

Each voxel holds one owner and a vote count, updated by the streaming majority vote
(Boyer-Moore): a frame voting for the owner strengthens it, a frame voting for another object
weakens it and takes the voxel over once the owner's votes are spent. So a voxel follows the
object most frames put it in, and one frame (a wrong pose, a mask that spills over an edge)
cannot move it. Each voxel also counts the frames that voted for it (`seen`, up to 255): a
voxel only one frame put anything in is not trusted at the end (ObjectConfig.min_seen); and it
keeps the mean of its owner's points: where a voxel straddles two objects, that mean lies on
its owner's side, so points can be labelled by the nearest mean, finer than the voxels.
"""

from __future__ import annotations

import numpy as np

from regiond.objects.groups import ordered

#: votes a voxel's owner can bank: later frames can still take a voxel over after at most
#: this many frames that disagree
MAX_VOTES = 8
_EMPTY = np.int64(-1)  # no voxel key is negative (they are offset to be non-negative)
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


class VoxelTable:
    def __init__(self, capacity: int = 1 << 15):
        # 32k voxels to start (1.5 MB, most of it untouched until used): a scan's first
        # seconds fill that many, and each growth costs its frame about a millisecond
        self._bits = max(int(2 * capacity - 1).bit_length(), 4)  # the hash table: half full at capacity
        self._keys = np.full(1 << self._bits, _EMPTY, np.int64)  # hash table: keys ...
        self._slot = np.zeros(1 << self._bits, np.int64)  # ... and their slots
        self.n = 0
        self.keys = np.zeros(capacity, np.int64)  # per slot
        self.owner = np.zeros(capacity, np.int32)  # object id, 0 = none
        self.votes = np.zeros(capacity, np.int16)
        self.seen = np.zeros(capacity, np.uint8)
        self.sums = np.zeros((capacity, 3), np.float64)  # the owner's points: sum ...
        self.points = np.zeros(capacity, np.float64)  # ... and count

    def __len__(self) -> int:
        return self.n

    def nbytes(self) -> int:
        arrays = (self._keys, self._slot, self.keys, self.owner, self.votes, self.seen, self.sums, self.points)
        return sum(a.nbytes for a in arrays)

    def _home(self, keys: np.ndarray) -> np.ndarray:
        return ((keys.astype(np.uint64) * _GOLDEN) >> np.uint64(64 - self._bits)).astype(np.int64)

    def _probe(self, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(hash position, found) of each key: where it is, or the empty place ending its probe."""
        pos = self._home(keys)
        found = np.zeros(len(keys), bool)
        todo = np.arange(len(keys))
        mask = len(self._keys) - 1
        while len(todo):
            at = self._keys[pos[todo]]
            hit = at == keys[todo]
            found[todo[hit]] = True
            todo = todo[~hit & (at != _EMPTY)]
            pos[todo] = (pos[todo] + 1) & mask
        return pos, found

    def lookup(self, keys: np.ndarray) -> np.ndarray:
        """Slots of M voxel keys, -1 for voxels not in the table."""
        pos, found = self._probe(keys)
        return np.where(found, self._slot[pos], -1)

    def insert(self, keys: np.ndarray) -> np.ndarray:
        """Slots for M distinct keys not in the table yet (owner 0, no votes)."""
        m = len(keys)
        if 2 * (self.n + m) > len(self._keys):
            self._rehash(2 * (self.n + m))
        if self.n + m > len(self.keys):
            cap = max(2 * len(self.keys), self.n + m)
            for name in ("keys", "owner", "votes", "seen", "sums", "points"):
                # zeros and a copy of the used rows: the rest stays untouched (no page faults)
                # until voxels fill it, unlike a concatenation's
                old = getattr(self, name)
                new = np.zeros((cap,) + old.shape[1:], old.dtype)
                new[: self.n] = old[: self.n]
                setattr(self, name, new)
        slots = np.arange(self.n, self.n + m)
        self.keys[slots] = keys
        self.n += m
        self._place(keys, slots)
        return slots

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

    def vote(self, slots, objects, owners, sums: np.ndarray, points: np.ndarray) -> None:
        """One vote of each of M distinct slots for objects[i], with the sum (M×3) and number
        of the frame's points it votes with; owners[i] is the slot's current owner as the caller
        resolved it (merged objects count as their survivor)."""
        votes = self.votes[slots].astype(np.int32)
        same = owners == objects
        votes = np.where(same, np.minimum(votes + 1, MAX_VOTES), votes - 1)
        take = votes <= 0
        self.owner[slots] = np.where(take, objects, owners)
        self.votes[slots] = np.where(take, 1, votes)
        self.seen[slots] = np.minimum(self.seen[slots], 254) + 1
        # the owner's votes add to its mean; a new owner starts it afresh; other votes leave it
        add, new = slots[same], slots[take]
        sums = np.asarray(sums).T  # a coordinate at a time: 1-D gathers, twice as fast as rows
        for k in range(3):
            self.sums[:, k][add] += sums[k][same]
            self.sums[:, k][new] = sums[k][take]
        self.points[add] += points[same]
        self.points[new] = points[take]

    def means(self, slots: np.ndarray) -> np.ndarray:
        """M×3 mean position of the owner's points in each slot."""
        return self.sums[slots] / np.maximum(self.points[slots], 1)[:, None]

    def items(self) -> tuple[np.ndarray, np.ndarray]:
        """(keys, owners) of every voxel in the table."""
        return self.keys[: self.n].copy(), self.owner[: self.n].copy()
