"""RegionSet: the region tokens of one image.

Masks are kept as COCO RLE (compact, and what the API sends); the dense masks are decoded
on demand. Everything per region is an array of length N, so a RegionSet is plain data
that saves to one `.npz` file (loaded with allow_pickle=False).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields
from pathlib import Path

import numpy as np

from regiond.core import rle
from regiond.core.errors import InputError
from regiond.core.label_spaces import UNLABELLED
from regiond.core.partition import Partition

SOURCE_SAM = 0
SOURCE_SLIC = 1
SOURCE_PATCH = 2  # a backbone grid cell standing in for a region (the patch-token baselines)
SOURCE_NAMES = {SOURCE_SAM: "sam", SOURCE_SLIC: "slic", SOURCE_PATCH: "patch"}

FORMAT = "regiond.regionset/1"
MAX_LOADED_PIXELS = 1 << 28  # a larger image size in a file's header is damage, not data


@dataclass
class RegionSet:
    """Region tokens of one H×W image.

    Per-region arrays (N = number of regions):
      counts       list of uint32 RLE counts (column-major COCO form)
      boxes        N×4 float32 [x0, y0, x1, y1], x1/y1 exclusive
      areas        N int64 pixel counts
      source       N uint8, SOURCE_SAM or SOURCE_SLIC
      scores       N float32 SAM predicted IoU (NaN for SLIC pieces)
      features     N×D float32 pooled backbone features, or None
      centroids    N×3 float32 world-space centroid in metres (NaN when unknown)
      extents      N×3 float32 robust extent (NaN when unknown)
      valid_depth  N float32 fraction of the region's pixels with valid depth
      point_count  N int64 number of back-projected points
      labels       N int64 class per region (-1 unknown), or None
    """

    height: int
    width: int
    counts: list = field(default_factory=list)
    boxes: np.ndarray = None
    areas: np.ndarray = None
    source: np.ndarray = None
    scores: np.ndarray = None
    features: np.ndarray | None = None
    centroids: np.ndarray | None = None
    extents: np.ndarray | None = None
    valid_depth: np.ndarray | None = None
    point_count: np.ndarray | None = None
    labels: np.ndarray | None = None
    meta: dict = field(default_factory=dict)  # profile, backbone, frame index, timings, ...

    def __post_init__(self):
        n = len(self.counts)
        if self.boxes is None:
            self.boxes = (
                np.stack([rle.bbox(c, self.height, self.width) for c in self.counts])
                if n
                else np.zeros((0, 4), np.float32)
            )
        if self.areas is None:
            self.areas = np.array([rle.area(c) for c in self.counts], dtype=np.int64)
        if self.source is None:
            self.source = np.zeros(n, np.uint8)
        if self.scores is None:
            self.scores = np.full(n, np.nan, np.float32)
        for name in self._ARRAYS:
            v = getattr(self, name)
            if v is not None and len(v) != n:
                raise ValueError(f"RegionSet.{name} has {len(v)} rows for {n} regions")

    @classmethod
    def from_masks(cls, masks: np.ndarray | Partition, **kw) -> RegionSet:
        """From an N×H×W bool array or a Partition (a label map of regions that never
        overlap); boxes and areas are computed here."""
        if isinstance(masks, Partition):
            (h, w), (counts, boxes, areas) = masks.shape, rle.encode_partition(masks)
        else:
            masks = np.asarray(masks, dtype=bool)
            h, w = masks.shape[1:]
            counts, boxes, areas = rle.encode_batch(masks)
        kw.setdefault("boxes", boxes)
        kw.setdefault("areas", areas)
        return cls(height=h, width=w, counts=counts, **kw)

    def __len__(self) -> int:
        return len(self.counts)

    def mask(self, i: int) -> np.ndarray:
        return rle.decode(self.counts[i], self.height, self.width)

    def masks(self) -> np.ndarray:
        """N×H×W bool."""
        return rle.decode_many(self.counts, self.height, self.width)

    def coverage(self) -> float:
        """Fraction of the image's pixels covered by at least one region."""
        if not len(self):
            return 0.0
        return float(self.masks().any(axis=0).mean())

    def subset(self, idx) -> RegionSet:
        idx = np.asarray(idx, dtype=np.int64)
        kw = {}
        for f in fields(self):
            v = getattr(self, f.name)
            if f.name == "counts":
                kw[f.name] = [v[i] for i in idx]
            elif isinstance(v, np.ndarray):
                kw[f.name] = v[idx]
            else:
                kw[f.name] = v
        return RegionSet(**kw)

    # --- persistence: one .npz, no pickle ---------------------------------------------

    _ARRAYS = (
        "boxes",
        "areas",
        "source",
        "scores",
        "features",
        "centroids",
        "extents",
        "valid_depth",
        "point_count",
        "labels",
    )

    def save(self, path) -> Path:
        path = Path(path)
        lengths = np.array([len(c) for c in self.counts], dtype=np.int64)
        flat = np.concatenate(self.counts).astype(np.uint32) if self.counts else np.zeros(0, np.uint32)
        header = {"format": FORMAT, "height": self.height, "width": self.width, "meta": self.meta}
        arrays = {
            "header": np.frombuffer(json.dumps(header).encode(), dtype=np.uint8),
            "rle_lengths": lengths,
            "rle_counts": flat,
        }
        for name in self._ARRAYS:
            v = getattr(self, name)
            if v is not None:
                arrays[name] = np.asarray(v)
        tmp = path.with_name(path.name + ".tmp")
        with open(tmp, "wb") as fh:
            np.savez_compressed(fh, **arrays)
        tmp.replace(path)
        return path

    @classmethod
    def load(cls, path) -> RegionSet:
        """A RegionSet saved by `save`. A file that is not one (damaged, truncated, another
        format, arrays that disagree) is an InputError("regions", ...) naming it."""
        path = Path(path)
        try:
            with np.load(path, allow_pickle=False) as z:
                header = json.loads(bytes(z["header"]).decode())
                if not isinstance(header, dict) or header.get("format") != FORMAT:
                    raise InputError("regions", f"{path}: not a regiond RegionSet file")
                lengths, flat = z["rle_lengths"], z["rle_counts"]
                kw = {name: z[name] for name in cls._ARRAYS if name in z.files}
        except InputError:
            raise
        except Exception as e:  # zip, npy header, JSON, missing array ...: all a damaged file
            raise InputError("regions", f"{path}: not a readable RegionSet file ({type(e).__name__}: {e})") from None
        h, w = header.get("height"), header.get("width")
        if (
            not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in (h, w))
            or h * w > MAX_LOADED_PIXELS
        ):
            raise InputError("regions", f"{path}: bad image size {h!r}×{w!r} in its header")
        if (
            lengths.ndim != 1
            or flat.ndim != 1
            or lengths.dtype.kind not in "iu"
            or flat.dtype.kind not in "iu"
            or (lengths < 0).any()
            or int(lengths.sum()) != flat.size
        ):
            raise InputError("regions", f"{path}: its RLE arrays disagree")
        counts = np.split(flat.astype(np.uint32), np.cumsum(lengths)[:-1]) if lengths.size else []
        if any(int(c.sum(dtype=np.int64)) != h * w for c in counts):
            raise InputError("regions", f"{path}: a mask's RLE counts do not cover its {w}×{h} image")
        meta = header.get("meta", {})
        try:
            return cls(height=h, width=w, counts=list(counts), meta=meta if isinstance(meta, dict) else {}, **kw)
        except (ValueError, TypeError, IndexError) as e:
            raise InputError("regions", f"{path}: arrays that disagree ({e})") from None


def region_labels(regions: RegionSet, label_map: np.ndarray, min_fraction: float = 0.5) -> np.ndarray:
    """Per-region class id by the >50% rule (strictly more than min_fraction of its pixels).

    label_map  H×W integer class ids (0 = unannotated) of the same size as the regions
    Returns N int64: the class id, or -1 where no class holds the majority (or it is 0).
    """
    label_map = np.asarray(label_map)
    if label_map.shape != (regions.height, regions.width):
        raise ValueError(
            f"label map {label_map.shape} does not match the regions' image {regions.height}×{regions.width}"
        )
    out = np.full(len(regions), -1, np.int64)
    for i in range(len(regions)):
        vals = label_map[regions.mask(i)]
        if not vals.size:
            continue
        ids, counts = np.unique(vals, return_counts=True)
        k = int(np.argmax(counts))
        if counts[k] > min_fraction * vals.size and ids[k] != UNLABELLED:
            out[i] = int(ids[k])
    return out
