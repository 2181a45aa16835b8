"""COCO run-length encoding, uncompressed form (as pycocotools' `{"size", "counts"}` list).

Column-major (Fortran) order; counts alternate background/foreground runs starting with
background, so they always sum to height × width.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from regiond.core.partition import Partition


def encode(mask: np.ndarray) -> np.ndarray:
    """H×W bool mask → uint32 counts."""
    flat = np.asarray(mask, dtype=bool).ravel(order="F")
    if flat.size == 0:
        return np.zeros(1, dtype=np.uint32)
    change = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    bounds = np.concatenate(([0], change, [flat.size]))
    runs = np.diff(bounds)
    if flat[0]:  # counts start with a (possibly empty) background run
        runs = np.concatenate(([0], runs))
    return runs.astype(np.uint32)


def encode_batch(masks: np.ndarray) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
    """N×H×W bool masks → (counts per mask, N×4 float32 boxes [x0, y0, x1, y1], N int64 areas).

    The same counts as `encode`, but each mask is only read over the columns its box spans
    (column-major runs outside them are one background run), so a set of small regions costs
    about one pass over the image instead of one per region.
    """
    masks = np.asarray(masks, dtype=bool)
    n, h, w = masks.shape
    cols = masks.any(axis=1)  # N×W: the one full pass
    counts, boxes, areas = [], np.zeros((n, 4), np.float32), np.zeros(n, np.int64)
    for i in range(n):
        xs = np.flatnonzero(cols[i])
        if xs.size == 0:
            counts.append(encode(masks[i]))
            continue
        x0, x1 = int(xs[0]), int(xs[-1]) + 1
        crop = masks[i, :, x0:x1]
        runs = encode(crop).astype(np.int64)  # starts with a background run (maybe 0)
        runs[0] += x0 * h  # the empty columns before the box
        tail = (w - x1) * h  # ... and after it
        if runs.size % 2:  # ends on background: extend it
            runs[-1] += tail
        elif tail:
            runs = np.append(runs, tail)
        ys = np.flatnonzero(crop.any(axis=1))
        boxes[i] = (x0, ys[0], x1, ys[-1] + 1)
        areas[i] = runs[1::2].sum()
        counts.append(runs.astype(np.uint32))
    return counts, boxes, areas


def encode_partition(partition: Partition) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
    """The same (counts, boxes, areas) as `encode_batch(partition.masks())`, from the label
    map's column runs (about one pass over the image instead of one per region)."""
    n, (h, w) = partition.n, partition.shape
    size = h * w
    runs = partition.runs
    x, (y0, y1) = runs.columns, runs.rows
    # By region, each region's runs in image order (a radix sort when labels fit 16 bits).
    order = np.argsort(runs.labels.astype(np.int16) if n <= 2**15 else runs.labels, kind="stable")
    label, starts, ends, x, y0, y1 = (a[order] for a in (runs.labels, runs.starts, runs.ends, x, y0, y1))
    per_region = np.bincount(label, minlength=n)
    first = np.concatenate(([0], np.cumsum(per_region)[:-1]))
    present = np.flatnonzero(per_region)
    boxes = np.zeros((n, 4), np.float32)
    if present.size:
        at = first[present]
        boxes[present] = np.stack(
            [
                np.minimum.reduceat(x, at),
                np.minimum.reduceat(y0, at),
                np.maximum.reduceat(x, at) + 1,
                np.maximum.reduceat(y1, at),
            ],
            1,
        )
    areas = np.bincount(label, weights=ends - starts, minlength=n).astype(np.int64)
    # COCO runs continue from one column into the next: merge a region's runs that touch.
    joined = np.zeros(label.size, bool)
    joined[1:] = (starts[1:] == ends[:-1]) & (label[1:] == label[:-1])
    continued = np.zeros(label.size, bool)
    continued[:-1] = joined[1:]
    starts, ends, label = starts[~joined], ends[~continued], label[~joined]
    per_region = np.bincount(label, minlength=n)
    first = np.concatenate(([0], np.cumsum(per_region)[:-1]))
    return _counts_from_runs(starts, ends, per_region, first, size), boxes, areas


def _counts_from_runs(starts, ends, per_region, first, size: int) -> list[np.ndarray]:
    """Per region: (background before, run) for each of its runs (sorted by region, then
    position), then the background after its last run when there is some; a region without
    pixels is one background run. Built as one flat array, split per region."""
    n = per_region.size
    present = np.flatnonzero(per_region)
    tails = np.full(n, size, np.int64)
    tails[present] = size - ends[first[present] + per_region[present] - 1]
    has_tail = (tails > 0) | (per_region == 0)
    prev_end = np.concatenate(([0], ends[:-1]))
    prev_end[first[present]] = 0
    region_end = 2 * (first + per_region) + np.cumsum(has_tail)  # where each region's counts end
    flat = np.empty(int(region_end[-1]) if n else 0, np.uint32)
    tail_at = region_end[has_tail] - 1
    is_run = np.ones(flat.size, bool)
    is_run[tail_at] = False
    flat[tail_at] = tails[has_tail]
    runs = np.empty(2 * starts.size, np.int64)
    runs[0::2], runs[1::2] = starts - prev_end, ends - starts
    flat[is_run] = runs
    bounds = [0, *region_end.tolist()]
    return [flat[a:b] for a, b in zip(bounds[:-1], bounds[1:])]


def decode(counts, height: int, width: int) -> np.ndarray:
    """uint32 counts → H×W bool mask. Raises ValueError when counts do not cover the image."""
    return decode_many([counts], height, width)[0]


def foreground_runs(counts_list, height: int, width: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(mask, start, size) of every foreground run of N masks' RLE counts, mask after mask,
    each mask's in order; start is the run's first column-major pixel index. Raises
    ValueError when a mask's counts are negative or do not sum to height × width."""
    arrays = [np.asarray(c).ravel() for c in counts_list]
    n = len(arrays)
    lengths = np.fromiter((a.size for a in arrays), np.int64, n)
    flat = np.concatenate(arrays).astype(np.int64) if n else np.zeros(0, np.int64)
    ends = np.concatenate(([0], np.cumsum(flat)))  # ends[k]: where run k starts, all masks end to end
    first = np.cumsum(lengths) - lengths  # each mask's first run
    owner = np.repeat(np.arange(n, dtype=np.int32), lengths)
    negative = np.bincount(owner[flat < 0], minlength=n) > 0
    bad = np.flatnonzero((ends[first + lengths] - ends[first] != height * width) | negative)
    if bad.size:
        i = int(bad[0])
        raise ValueError(
            f"RLE counts of mask {i} sum to {int(arrays[i].astype(np.int64).sum())}"
            f"{' with a negative run' if negative[i] else ''}, "
            f"expected {height}×{width} = {height * width}"
        )
    # odd runs within each mask are foreground
    fg = np.flatnonzero((np.arange(flat.size) - np.repeat(first, lengths)) & 1)
    starts = ends[fg] - np.repeat(ends[first], lengths)[fg]  # run start within its mask
    return owner[fg], starts, flat[fg]


@dataclass(frozen=True)
class MaskPixels:
    """N masks over one H×W image as (mask, pixel) pairs, one per foreground pixel of each
    mask (masks may overlap), grouped by mask. `pixel` is the column-major flat index x·H + y,
    COCO RLE's order; `.dense()` gives the N×H×W masks."""

    count: int
    height: int
    width: int
    mask: np.ndarray  # int32, non-decreasing
    pixel: np.ndarray  # intp

    @classmethod
    def from_counts(cls, counts_list, height: int, width: int) -> MaskPixels:
        """Decode every mask at once: one np.repeat over all runs, no loop per mask. Raises
        ValueError when a mask's counts are negative or do not sum to height × width."""
        return cls.from_runs(len(counts_list), height, width, *foreground_runs(counts_list, height, width))

    @classmethod
    def from_runs(cls, count: int, height: int, width: int, mask, starts, sizes) -> MaskPixels:
        """From foreground_runs' (mask, start, size) of `count` masks."""
        before = np.cumsum(sizes) - sizes  # pixels of earlier runs, all masks
        pixel = np.arange(int(sizes.sum()), dtype=np.intp) + np.repeat(starts - before, sizes)
        return cls(count, int(height), int(width), np.repeat(mask, sizes), pixel)

    @classmethod
    def from_masks(cls, masks: np.ndarray) -> MaskPixels:
        """From N×H×W bool masks."""
        masks = np.asarray(masks, dtype=bool)
        n, h, w = masks.shape
        owner, pixel = np.nonzero(masks.transpose(0, 2, 1).reshape(n, w * h))
        return cls(n, h, w, owner.astype(np.int32), pixel.astype(np.intp))

    def areas(self) -> np.ndarray:
        return np.bincount(self.mask, minlength=self.count).astype(np.int64)

    def dense(self) -> np.ndarray:
        """N×H×W bool."""
        out = np.zeros((self.count, self.width * self.height), bool)
        out[self.mask, self.pixel] = True
        return np.ascontiguousarray(out.reshape(self.count, self.width, self.height).transpose(0, 2, 1))


def decode_many(counts_list, height: int, width: int) -> np.ndarray:
    """N×H×W bool masks from N RLE counts arrays, all at once (see MaskPixels)."""
    return MaskPixels.from_counts(counts_list, height, width).dense()


def area(counts) -> int:
    return int(np.asarray(counts, dtype=np.int64)[1::2].sum())


def bbox(counts, height: int, width: int) -> np.ndarray:
    """[x0, y0, x1, y1] (exclusive max) of the mask, zeros for an empty mask."""
    m = decode(counts, height, width)
    ys, xs = np.nonzero(m)
    if ys.size == 0:
        return np.zeros(4, dtype=np.float32)
    return np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], dtype=np.float32)
