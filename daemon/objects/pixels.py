"""Which region owns each pixel of a coarse grid: the pixels the object map back-projects.

The object map samples every `stride`-th pixel each way (a 640×480 frame at stride 4 is
160×120 points), so the regions' masks are decoded straight from their RLE runs onto that
grid, never at full size. Where masks overlap (SAM's), the largest one owns the pixel: the
object map wants whole objects, and the smaller masks inside them (parts) then take their
object from the pixels they cover (region_objects).
"""

from __future__ import annotations

import numpy as np

from regiond.core.regionset import RegionSet
from regiond.core.rle import foreground_runs


def strided_owner(regions: RegionSet, stride: int, priority: np.ndarray | None = None) -> np.ndarray:
    """(⌈H/stride⌉ × ⌈W/stride⌉) int32: the region owning pixel (stride·i, stride·j), -1 for
    none. Where masks overlap, the one of highest `priority` (default: area) wins."""
    h, w, s = regions.height, regions.width, int(stride)
    out = np.full((-(-h // s), -(-w // s)), -1, np.int32)
    if not len(regions):
        return out
    mask, start, size = foreground_runs(regions.counts, h, w)
    end = start + size
    # A column-major run may continue into the next columns: split it at column ends.
    x0, x1 = start // h, (end - 1) // h
    hit = np.flatnonzero(x1 // s > (x0 - 1) // s)  # the runs in a sampled column (a sixth at stride 6)
    mask, start, end, x0, x1 = (a.take(hit) for a in (mask, start, end, x0, x1))
    pieces = x1 - x0 + 1
    run = np.repeat(np.arange(len(start)), pieces)
    x = x0[run] + (np.arange(len(run)) - np.repeat(np.cumsum(pieces) - pieces, pieces))
    on = x % s == 0
    run, x = run[on], x[on]
    col = x * h
    y_first = -(-(np.maximum(start[run], col) - col) // s)  # first sampled row in the piece
    y_end = -(-(np.minimum(end[run], col + h) - col) // s)  # one past the last
    n = np.maximum(y_end - y_first, 0)
    rows = np.repeat(y_first - (np.cumsum(n) - n), n) + np.arange(int(n.sum()))
    cols = np.repeat(x // s, n)
    owners = np.repeat(mask[run], n).astype(np.int32)
    flat = rows * out.shape[1] + cols
    if np.bincount(flat, minlength=out.size).max(initial=0) > 1:  # overlapping masks: the largest one wins
        rank = regions.areas if priority is None else np.asarray(priority)
        order = np.lexsort((rank[owners], flat))
        flat, owners = flat[order], owners[order]
        last = np.r_[flat[1:] != flat[:-1], True]
        flat, owners = flat[last], owners[last]
    out.reshape(-1)[flat] = owners
    return out
