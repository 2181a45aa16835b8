"""Compiled loops (numba) of the voxel hash and of the fusion: each key, or each point of a
frame, is hashed and added where it comes, in one pass without temporaries. A scene frame's
fusion took 7.8 ms as numpy's sort-based grouping, 2.5 ms here, the same cloud
(docs/benchmarks.md). Imported when a hash is first built: numba loads in about 0.3 s, and
each loop is compiled once and cached beside this file (cache=True).

The hash (VoxelHash's arrays): open addressing, linear probing, Fibonacci hashing of
non-negative int64 keys; `table` holds 2^b places of (key, slot) (key -1: empty), the slots
numbered 0, 1, 2, ... in the order the keys arrived; `slot_keys` each slot's key. The
loops stop before a slot beyond `limit` would be given (the table half full), and say where
they stopped: the caller grows the arrays and goes on from there.
"""

from __future__ import annotations

import math

import numba
import numpy as np

EMPTY = -1
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


@numba.njit(nogil=True, cache=True, inline="always")
def _find(table, key, shift):
    """The place of `key` in the table, or the empty place ending its probe."""
    mask = len(table) - 1
    pos = np.int64((np.uint64(key) * _GOLDEN) >> np.uint64(shift))
    while table[pos, 0] != key and table[pos, 0] != EMPTY:
        pos = (pos + 1) & mask
    return pos


@numba.njit(nogil=True, cache=True, inline="always")
def _slot(table, slot_keys, n, key, shift):
    """(the slot of `key`, the number of slots): a key not held yet gets slot n."""
    pos = _find(table, key, shift)
    if table[pos, 0] == key:
        return table[pos, 1], n
    table[pos, 0] = key
    table[pos, 1] = n
    slot_keys[n] = key
    return n, n + 1


@numba.njit(nogil=True, cache=True)
def lookup(table, keys, shift, out):
    """out[i]: the slot of keys[i], -1 when it is not held."""
    for i in range(len(keys)):
        pos = _find(table, keys[i], shift)
        out[i] = table[pos, 1] if table[pos, 0] == keys[i] else -1


@numba.njit(nogil=True, cache=True)
def slots(table, slot_keys, n, keys, shift, out, start, limit):
    """out[i]: the slot of keys[i] for i from `start`, new keys getting the next slots.
    Returns (where it stopped: len(keys) when done, the number of slots)."""
    for i in range(start, len(keys)):
        if n >= limit:
            return i, n
        out[i], n = _slot(table, slot_keys, n, keys[i], shift)
    return len(keys), n


@numba.njit(nogil=True, cache=True)
def rehash(table, slot_keys, n, shift):
    """Place the n keys of slot_keys, each with its slot, in an empty table."""
    for s in range(n):
        pos = _find(table, slot_keys[s], shift)
        table[pos, 0] = slot_keys[s]
        table[pos, 1] = s


@numba.njit(nogil=True, cache=True)
def fuse(
    points,
    rows,
    colours,
    labels,
    wanted,
    voxel,
    bits,
    start,
    voxels,
    sums,
    first,
    first_count,
    pairs,
    pair_counts,
):
    """Add points from `start` on to the voxels' sums and label counts, in their order.

    points       3×P world coordinates (float32 or float64)
    rows         P: each point's row in colours and labels (a frame's pixel, flat)
    colours      rows × C uint8 (the first three channels are summed)
    labels       rows of labels (< 1: none), or an empty array: none at all
    wanted       per row, whether its point is added (an empty array: every point)
    voxel, bits  the voxels' size; a voxel key's bits per axis (coordinates offset by 2^(bits-1)
                 to be non-negative: fusion.py's keys)
    voxels       (table, slot_keys, n, shift, limit) of the voxel hash (VoxelHash.arrays)
    sums         per voxel slot: sums of x, y, z, r, g, b and the number of points
    first, first_count
                 per voxel slot: its first label and how often it fell there
    pairs        (table, slot_keys, n, shift, limit) of the hash of the other
                 (slot << 32 | label) pairs, whose counts are pair_counts
    Returns (where it stopped, the voxels' number of slots, the pairs'): it stops before a
    point when either hash is half full."""
    table, slot_keys, n, shift, limit = voxels
    ptable, pslot_keys, pn, pshift, plimit = pairs
    labelled = len(labels) > 0
    offset = np.int64(1) << (bits - 1)
    last_key, slot = -1, -1
    for i in range(start, points.shape[1]):
        if n >= limit or pn >= plimit:
            return i, n, pn
        row = rows[i]
        if len(wanted) and not wanted[row]:
            continue
        key = np.int64(0)
        for a in range(3):
            key = (key << bits) | (np.int64(math.floor(np.float64(points[a, i]) / voxel)) + offset)
        if key != last_key:  # neighbouring pixels mostly share a voxel
            slot, n = _slot(table, slot_keys, n, key, shift)
            last_key = key
        s = sums[slot]
        for a in range(3):
            s[a] += points[a, i]
            s[3 + a] += colours[row, a]
        s[6] += 1.0
        if labelled:
            label = np.int64(labels[row])
            if label > 0:
                if first[slot] == 0:
                    first[slot] = label
                if first[slot] == label:
                    first_count[slot] += 1
                else:
                    p, pn = _slot(ptable, pslot_keys, pn, (np.int64(slot) << 32) | label, pshift)
                    pair_counts[p] += 1
    return points.shape[1], n, pn
