"""What an index answers (ImageHit, RegionHit, AddResult), how a search is narrowed
(SearchFilter), and the checks on what is indexed and queried, shared by the service and the
queries."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from regiond.core.errors import InputError

MAX_IMAGE_ID = 512


class IndexFileError(ValueError):
    """An index file that is not ours, or is damaged. The file is left as it was."""


@dataclass
class SearchFilter:
    """Restrict a search to images whose id starts with `image_id_prefix` and whose metadata
    holds every key = value of `metadata`."""

    image_id_prefix: str = ""
    metadata: dict = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.image_id_prefix or self.metadata)


@dataclass
class RegionHit:
    region_id: int
    score: float
    box: np.ndarray  # [x0, y0, x1, y1], x1/y1 exclusive
    area: int
    counts: np.ndarray  # uint32 COCO RLE counts (column-major) for height × width


@dataclass
class ImageHit:
    image_id: str
    score: float  # the best region's score
    width: int
    height: int
    metadata: dict
    regions: list[RegionHit]


@dataclass
class AddResult:
    image_id: str
    added: bool  # False: it was already indexed (and on_exists="skip")
    regions: int


# --- validation shared by the service and the queries -------------------------------------


def check_image_id(image_id) -> str:
    if not isinstance(image_id, str) or not image_id:
        raise InputError("image_id", "must be a non-empty string")
    if len(image_id) > MAX_IMAGE_ID:
        raise InputError("image_id", f"longer than {MAX_IMAGE_ID} characters")
    return image_id


def check_metadata(metadata, field: str = "metadata") -> dict:
    metadata = dict(metadata or {})
    for k, v in metadata.items():
        if not isinstance(k, str) or not k or '"' in k:
            raise InputError(field, f"keys must be non-empty strings without '\"', got {k!r}")
        if not isinstance(v, str):
            raise InputError(field, f"value of {k!r} must be a string, got {type(v).__name__}")
    return metadata


def check_vector(v, dim: int, field: str) -> np.ndarray:
    try:
        a = np.asarray(v, dtype=np.float32).reshape(-1)
    except (TypeError, ValueError):
        raise InputError(field, "not a numeric vector") from None
    if a.size != dim:
        raise InputError(field, f"expected {dim} numbers, got {a.size}")
    if not np.all(np.isfinite(a)):
        raise InputError(field, "non-finite values")
    return a


def check_vectors(v, dim: int, field: str) -> np.ndarray:
    """A dim-vector or M×dim rows (a set of region features) → M×dim float32, M ≥ 1."""
    a = np.asarray(v, dtype=np.float32) if isinstance(v, np.ndarray) and v.ndim == 2 else None
    if a is None:
        return check_vector(v, dim, field)[None]
    if a.shape[1] != dim or len(a) == 0:
        raise InputError(field, f"expected M×{dim} region features, got shape {a.shape}")
    if not np.all(np.isfinite(a)):
        raise InputError(field, "non-finite values")
    return a


def check_weights(weights, n: int, field: str = "weights") -> np.ndarray:
    """Weights of n query regions, normalised to sum to 1 (None: equal)."""
    if weights is None:
        return np.full(n, 1.0 / n, np.float32)
    w = np.asarray(weights, dtype=np.float32).reshape(-1)
    if w.size != n or not np.all(np.isfinite(w)) or np.any(w < 0) or not w.sum() > 0:
        raise InputError(field, f"expected {n} non-negative weights with a positive sum, got {w.tolist()}")
    return w / w.sum()
