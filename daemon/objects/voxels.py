"""The object map's voxel table: which object owns each occupied voxel of the scene, its slots
those of a VoxelHash of the voxels' keys (regiond.geometry.voxel_hash: a frame's lookup costs
O(its voxels) whatever the size of the scene, and memory grows with the occupied voxels only).

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

from regiond.geometry.voxel_hash import VoxelHash, grown

#: votes a voxel's owner can bank: later frames can still take a voxel over after at most
#: this many frames that disagree
MAX_VOTES = 8


class VoxelTable:
    def __init__(self, capacity: int = 1 << 15):
        self._hash = VoxelHash(capacity)
        self.owner = np.zeros(capacity, np.int32)  # per slot: object id, 0 = none
        self.votes = np.zeros(capacity, np.int16)
        self.seen = np.zeros(capacity, np.uint8)
        self.sums = np.zeros((capacity, 3), np.float64)  # the owner's points: sum ...
        self.points = np.zeros(capacity, np.float64)  # ... and count

    def __len__(self) -> int:
        return self._hash.n

    @property
    def n(self) -> int:
        return self._hash.n

    @property
    def keys(self) -> np.ndarray:
        return self._hash.keys

    def nbytes(self) -> int:
        return self._hash.nbytes() + sum(a.nbytes for a in (self.owner, self.votes, self.seen, self.sums, self.points))

    def lookup(self, keys: np.ndarray) -> np.ndarray:
        """Slots of M voxel keys, -1 for voxels not in the table."""
        return self._hash.lookup(keys)

    def insert(self, keys: np.ndarray) -> np.ndarray:
        """Slots for M distinct keys not in the table yet (owner 0, no votes)."""
        used = self.n
        slots = self._hash.slots(keys)
        for name in ("owner", "votes", "seen", "sums", "points"):
            setattr(self, name, grown(getattr(self, name), self.n, used))
        return slots

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
