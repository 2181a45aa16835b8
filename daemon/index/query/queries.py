"""Turning a query into a vector for RegionIndex.search.

  mask        an image and a mask: the mask's pooled feature, by the extractor's own
              backbone and pooling (RegionExtractor.pool, so it compares with the indexed
              regions); or, matched by regions, the image's own regions inside the mask
              (region_set_query), each looked for on its own
  box         an image and a box: the same over the box
  region      an indexed region (image id + region id): its stored feature
  vector      a raw feature vector, as the extractor gives them
  classifier  a linear probe w·z + b on the index's vectors z (RegionIndex.prepare: the
              normaliser, then L2), trained here from a few example regions (logistic
              regression against random stored regions as negatives) or given as weights

Every feature (query or indexed) goes through the index's normaliser, so all kinds compare
in one space; only a probe's weights are already in it.

A query is searched as the daemon's Search runs it (Query.search: which queries are expanded),
by the Search RPC and by the evaluations alike.

Every bad input raises InputError naming the field.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from PIL import Image

from regiond.core.errors import InputError, image_decode_errors
from regiond.core.regionset import RegionSet
from regiond.index.hits import ImageHit, check_vector
from regiond.index.region_extractor import RegionExtractor
from regiond.index.searching import Searching

#: A region of the query image belongs to a region-matched query when at least this share of
#: its pixels lies inside the mask or box.
INSIDE_FRACTION = 0.5


def decode_mask_png(data: bytes, shape: tuple[int, int], field: str = "mask_image") -> np.ndarray:
    """A PNG (or JPEG) whose non-zero pixels form the mask, checked against the image's H×W
    from its header before anything is decoded (a small file may claim gigapixels)."""
    if not data:
        raise InputError(field, "no mask bytes")
    try:
        with Image.open(io.BytesIO(data)) as im:
            if (im.height, im.width) != tuple(shape):
                raise InputError(field, f"mask is {im.width}×{im.height} but the image is {shape[1]}×{shape[0]}")
            if im.format not in ("PNG", "JPEG"):
                raise InputError(field, f"expected a PNG, got {im.format}")
            arr = np.asarray(im if im.mode in ("1", "L", "I", "I;16", "RGB", "RGBA") else im.convert("RGBA"))
    except InputError:
        raise
    except image_decode_errors() as e:
        raise InputError(field, f"could not decode the bytes as an image ({e})") from None
    mask = (arr != 0) if arr.ndim == 2 else (arr[..., :3] != 0).any(axis=2)
    return check_mask(mask, shape, field)


def check_mask(mask, shape: tuple[int, int], field: str = "mask") -> np.ndarray:
    m = np.asarray(mask)
    if m.ndim != 2 or m.shape != tuple(shape):
        raise InputError(
            field,
            f"mask is {m.shape[1] if m.ndim == 2 else '?'}×{m.shape[0] if m.ndim else '?'} "
            f"(shape {m.shape}) but the image is {shape[1]}×{shape[0]}",
        )
    m = m != 0
    if not m.any():
        raise InputError(field, "the mask is empty")
    return m


def box_mask(box, shape: tuple[int, int], field: str = "box") -> np.ndarray:
    """[x0, y0, x1, y1] (x1/y1 exclusive, pixels) -> H×W bool, clipped to the image."""
    b = np.asarray(box, dtype=np.float64).reshape(-1)
    if b.size != 4 or not np.all(np.isfinite(b)):
        raise InputError(field, f"expected 4 finite numbers x0,y0,x1,y1, got {b.tolist()}")
    h, w = shape
    x0, y0 = int(np.floor(max(b[0], 0))), int(np.floor(max(b[1], 0)))
    x1, y1 = int(np.ceil(min(b[2], w))), int(np.ceil(min(b[3], h)))
    if x1 <= x0 or y1 <= y0:
        raise InputError(field, f"box {b.tolist()} covers no pixel of the {w}×{h} image")
    m = np.zeros((h, w), bool)
    m[y0:y1, x0:x1] = True
    return m


#: How a mask or box query matches (the API's QueryMatch): the query image's own regions
#: inside it, each matched on its own, or one feature pooled over it.
MATCHES = ("regions", "pooled")


@dataclass
class Query:
    """What Searching.search takes: region features (a D-vector, or M×D matched as a set
    with `weights`), or a probe's weights already in the index's space (is_feature False)."""

    vectors: np.ndarray
    weights: np.ndarray | None = None
    bias: float = 0.0
    is_feature: bool = True

    def __post_init__(self):
        if self.vectors.ndim == 2 and len(self.vectors) == 1:  # one region: the plain search
            self.vectors, self.weights = self.vectors[0], None

    def search(self, index: Searching, expand: int, **kw) -> list[ImageHit]:
        """The top hits as the daemon's Search finds them (kw: k, regions_per_image, filter,
        exclude_image_ids): one region's feature is expanded with `expand` images (αQE); a
        set of regions and a probe's weights never are."""
        return index.search(
            self.vectors,
            weights=self.weights,
            bias=self.bias,
            normalize=self.is_feature,
            expand=expand if self.is_feature and self.vectors.ndim == 1 else 0,
            **kw,
        )


def masked_query(
    extractor: RegionExtractor, frame, mask: np.ndarray, match: str, regions: RegionSet | None = None
) -> Query:
    """A mask or box query matched as `match` (MATCHES). regions: the frame's regions when
    they are extracted already (else region matching extracts them)."""
    if match == "pooled":
        return Query(extractor.pool(frame, mask[None])[0])
    if match != "regions":
        raise ValueError(f"match must be one of {MATCHES}, got {match!r}")
    return Query(*region_set_query(extractor, frame, mask, regions))


def region_set_query(
    extractor: RegionExtractor, frame, mask: np.ndarray, regions: RegionSet | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(M×D features, M weights) of the image's own regions inside `mask` (regions_inside;
    regions: the frame's, when extracted already); a mask that holds no region (smaller than
    any) is its own single pooled region."""
    inside = regions_inside(extractor.extract(frame) if regions is None else regions, mask)
    return inside if inside is not None else (extractor.pool(frame, mask[None]), np.ones(1, np.float32))


def regions_inside(regions: RegionSet, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """(features, weights) of the regions with at least INSIDE_FRACTION of their pixels in
    `mask`, weighted by those pixels; None when there is none."""
    if not len(regions) or regions.features is None:
        return None
    inside = np.array([np.count_nonzero(regions.mask(i) & mask) for i in range(len(regions))])
    keep = inside >= INSIDE_FRACTION * np.maximum(regions.areas, 1)
    if not keep.any():
        return None
    return np.asarray(regions.features[keep], np.float32), inside[keep].astype(np.float32)


@dataclass
class LinearProbe:
    """Scores a region by weights·z + bias, z its vector in the index (RegionIndex.prepare)."""

    weights: np.ndarray
    bias: float


def train_probe(
    positives: np.ndarray,
    negatives: np.ndarray,
    prepare: Callable[[np.ndarray], np.ndarray],
    l2: float = 1e-2,
    steps: int = 200,
) -> LinearProbe:
    """L2-regularised logistic regression (Newton steps; tiny problems) on positives vs negatives.

    prepare  raw features → the index's vectors (RegionIndex.prepare), so the probe's score
             w·z + b is what the index computes for every region
    """
    if len(positives) == 0:
        raise InputError("positives", "at least one positive example is needed")
    if len(negatives) == 0:
        raise InputError("negatives", "no negative examples (the index is empty?)")
    x = np.concatenate([prepare(positives), prepare(negatives)]).astype(np.float64)
    y = np.concatenate([np.ones(len(positives)), np.zeros(len(negatives))])
    # class-balanced weights: a handful of positives against many negatives
    sw = np.where(y == 1, 0.5 / len(positives), 0.5 / len(negatives))
    xb = np.hstack([x, np.ones((len(x), 1))])
    w = np.zeros(xb.shape[1])
    reg = np.full(xb.shape[1], l2)
    reg[-1] = 0.0  # the bias is not regularised
    for _ in range(steps):
        p = 1.0 / (1.0 + np.exp(-np.clip(xb @ w, -40, 40)))
        grad = xb.T @ (sw * (p - y)) + reg * w
        hess = (xb * (sw * p * (1 - p))[:, None]).T @ xb + np.diag(reg) + 1e-9 * np.eye(len(w))
        step = np.linalg.solve(hess, grad)
        w -= step
        if np.abs(step).max() < 1e-8:
            break
    return LinearProbe(w[:-1].astype(np.float32), float(w[-1]))


def probe_from_examples(
    index: Searching, examples: list[tuple[str, int]], negatives: int = 512, seed: int = 0
) -> LinearProbe:
    """Train a probe from indexed example regions against random stored regions."""
    if not examples:
        raise InputError("positives", "at least one example region is needed")
    pos = np.stack([index.region_vector(i, r) for i, r in examples])
    neg = index.random_vectors(negatives, seed=seed, exclude={i for i, _ in examples})
    return train_probe(pos, neg, index.prepare)


def linear_query(weights, bias: float, dim: int) -> LinearProbe:
    w = check_vector(weights, dim, "linear.weights")
    if not np.isfinite(bias):
        raise InputError("linear.bias", "non-finite")
    return LinearProbe(w, float(bias))
