"""The geometry's compiled loops (numba): the voxel hash, the fusion, and a partition's
points for the 3D statistics. Each key, point or pixel is handled where it comes, in one pass
without temporaries: a scene frame's fusion took 7.0-8.6 ms as numpy's sort-based grouping and
2.6-4.5 here, the same cloud (docs/benchmarks.md, "Scene frames, compiled loops"). Imported
when first needed (numba loads in about 0.2 s); each loop is compiled once and cached beside
this file (cache=True), and the daemon's warm-up loads them (regiond.geometry.fusion.warm_up).

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


#: a voxel block's side in voxels, as a shift (4: 64 voxels, a 256-byte table a block): the
#: fusion hashes blocks and finds a voxel in its block's table. Neighbouring points share a
#: block, so a frame's points look up a few thousand blocks instead of tens of thousands of
#: voxels, whose lookups missed the cache (InfiniTAM's voxel block hashing; 8-voxel blocks were
#: no faster and cost 2 kB for a lone voxel)
BLOCK_SHIFT = 2
BLOCK_VOXELS = 1 << (3 * BLOCK_SHIFT)


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
    blocks,
    block_voxels,
    voxel_keys,
    n,
    sums,
    first,
    first_count,
    pairs,
    pair_counts,
):
    """Add points from `start` on to their voxels' sums and label counts, in their order.

    points       3×P world coordinates (float32 or float64)
    rows         P: each point's row in colours and labels (a frame's pixel, flat)
    colours      rows × C uint8 (the first three channels are summed)
    labels       rows of labels (< 1: none), or an empty array: none at all
    wanted       per row, whether its point is added (an empty array: every point)
    voxel, bits  the voxels' size; a voxel key's bits per axis (coordinates offset by 2^(bits-1)
                 to be non-negative: fusion.py's keys)
    blocks       (table, slot_keys, n, shift, limit) of the hash of voxel blocks (VoxelHash.arrays)
    block_voxels per block, its BLOCK_VOXELS voxels' slots + 1 (0: none yet)
    voxel_keys   per voxel slot, its key; n slots are in use
    sums         per voxel slot: sums of x, y, z, r, g, b and the number of points
    first, first_count
                 per voxel slot: its first label and how often it fell there
    pairs        (table, slot_keys, n, shift, limit) of the hash of the other
                 (slot << 32 | label) pairs, whose counts are pair_counts
    Returns (where it stopped, the blocks', the voxels' and the pairs' numbers of slots): it
    stops before a point when a hash is half full or the voxel arrays are full."""
    table, block_keys, nb, shift, limit = blocks
    ptable, pslot_keys, pn, pshift, plimit = pairs
    labelled = len(labels) > 0
    offset = np.int64(1) << (bits - 1)
    low = (1 << BLOCK_SHIFT) - 1
    last_block, b = -1, -1
    for i in range(start, points.shape[1]):
        if nb >= limit or pn >= plimit or n >= len(voxel_keys):
            return i, nb, n, pn
        row = rows[i]
        if len(wanted) and not wanted[row]:
            continue
        ix = np.int64(math.floor(np.float64(points[0, i]) / voxel)) + offset
        iy = np.int64(math.floor(np.float64(points[1, i]) / voxel)) + offset
        iz = np.int64(math.floor(np.float64(points[2, i]) / voxel)) + offset
        block = ((ix >> BLOCK_SHIFT) << (2 * bits)) | ((iy >> BLOCK_SHIFT) << bits) | (iz >> BLOCK_SHIFT)
        if block != last_block:  # neighbouring pixels mostly share a block
            b, nb = _slot(table, block_keys, nb, block, shift)
            last_block = block
        local = (((ix & low) << BLOCK_SHIFT | (iy & low)) << BLOCK_SHIFT) | (iz & low)
        slot = block_voxels[b, local] - 1
        if slot < 0:
            slot = n
            block_voxels[b, local] = n + 1
            voxel_keys[n] = (ix << (2 * bits)) | (iy << bits) | iz
            n += 1
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
    return points.shape[1], nb, n, pn


@numba.njit(nogil=True, cache=True)
def partition_points(labels, n, depth, max_depth, width, stride, min_samples, xs, ys, pose):
    """A partition's valid pixels for its 3D statistics (stats._partition_points): each region's
    valid pixels on every stride-th row and column, or all of them when fewer than min_samples
    lie there (and more off it), region after region, each in image order; and their points.

    labels      H·W region of each pixel (outside 0..n-1: none)
    depth       H·W depth, valid above 0 and at most max_depth (finite, in its dtype: NaN and
                infinities fail the comparisons)
    xs, ys      H·W rays (x/z, y/z) of the camera at this size, float32
    pose        4×4 float32 camera-to-world, or a 0×0 array: camera coordinates
    Returns (valid pixels per region, pixels read per region, their flat pixels, 3×P float32
    points): the arithmetic of points.frame_points and points._moved, in float32."""
    counts = np.zeros(n + 1, np.int64)  # n: outside every region
    near = np.zeros(n + 1, np.int64)
    height = len(labels) // width
    for y in range(height):
        base = y * width
        for x in range(width):
            r = labels[base + x]
            d = depth[base + x]
            counts[r if 0 <= r < n else n] += (d > 0) & (d <= max_depth)
    for y in range(0, height, stride):
        base = y * width
        for x in range(0, width, stride):
            r = labels[base + x]
            d = depth[base + x]
            near[r if 0 <= r < n else n] += (d > 0) & (d <= max_depth)
    counts, near = counts[:n], near[:n]
    few = (near < min_samples) & (counts > near)
    sampled = np.where(few, counts, near)
    at = np.zeros(n, np.int64)  # each region's next place among the pixels
    for r in range(1, n):
        at[r] = at[r - 1] + sampled[r - 1]
    total = at[n - 1] + sampled[n - 1] if n else 0
    pixels = np.empty(total, np.int64)
    pts = np.empty((3, total), np.float32)
    world = pose.shape[0] == 4
    step = 1 if few.any() else stride  # off the grid only for the regions with few pixels on it
    for y in range(0, height, step):
        row_on = y % stride == 0
        col = 0  # x % stride, counted
        for x in range(0, width, step):
            p = y * width + x
            r = labels[p]
            on = row_on and col == 0
            col += step
            if col >= stride:
                col = 0
            if r < 0 or r >= n or not (on or few[r]):
                continue
            d = depth[p]
            if not (d > 0 and d <= max_depth):
                continue
            k = at[r]
            at[r] += 1
            pixels[k] = p
            z = np.float32(d)
            px, py = xs[p] * z, ys[p] * z
            if world:
                for i in range(3):
                    o = px * pose[i, 0]
                    o += py * pose[i, 1]
                    o += z * pose[i, 2]
                    o += pose[i, 3]
                    pts[i, k] = o
            else:
                pts[0, k], pts[1, k], pts[2, k] = px, py, z
    return counts, sampled, pixels, pts
