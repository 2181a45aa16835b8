"""Positional embeddings of region tokens: 2D box, 3D position, time.

Plain arrays in, plain float32 arrays out, so any head (torch or not) can use them.
Each embedding is `fourier_features` of a normalised quantity: for a value x and a period
P the features are sin(2πx/P) and cos(2πx/P), with `num_bands` periods spaced
geometrically from `max_period` (coarse: unique over the whole range when max_period is at
least twice the range) down to `min_period` (fine detail).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from regiond.core.errors import InputError


@lru_cache(maxsize=64)
def fourier_periods(num_bands: int, min_period: float, max_period: float) -> np.ndarray:
    """The `num_bands` periods, from max_period down to min_period (geometric spacing; read-only:
    computed once for each setting, every region token's embedding asks for them)."""
    if num_bands < 1:
        raise InputError("num_bands", f"must be at least 1, got {num_bands}")
    if not (0 < min_period <= max_period) or not np.isfinite(max_period):
        raise InputError("period", f"need 0 < min_period <= max_period, got {min_period}, {max_period}")
    periods = np.array([max_period], np.float64) if num_bands == 1 else np.geomspace(max_period, min_period, num_bands)
    periods.flags.writeable = False
    return periods


def fourier_features(
    x, num_bands: int = 8, min_period: float = 1.0 / 64, max_period: float = 2.0, include_input: bool = False
) -> np.ndarray:
    """Fourier features of the last axis of `x`.

    x            (..., D) values (a 1-D array is read as D = 1 per element: shape (N,) → (N, 1))
    num_bands    number of periods per input dimension
    min_period, max_period  shortest and longest period, in the units of x
    include_input  also append x itself (after the sin/cos blocks)

    Returns (..., D·2·num_bands [+ D]) float32, laid out as [sin(d0,p0..pK), cos(d0,p0..pK),
    sin(d1,...), cos(d1,...), ...]. Non-finite entries give all-zero features (use the
    `missing` column of embed_3d to tell a missing value from a zero one).
    """
    a = np.asarray(x, dtype=np.float64)
    if a.ndim == 1:
        a = a[:, None]
    if a.ndim == 0:
        a = a.reshape(1, 1)
    periods = fourier_periods(num_bands, min_period, max_period)
    finite = np.isfinite(a)
    safe = np.where(finite, a, 0.0)
    ang = 2.0 * np.pi * safe[..., None] / periods  # (..., D, K)
    feats = np.concatenate([np.sin(ang), np.cos(ang)], axis=-1)  # (..., D, 2K)
    feats = np.where(finite[..., None], feats, 0.0)
    out = feats.reshape(*a.shape[:-1], a.shape[-1] * 2 * num_bands)
    if include_input:
        out = np.concatenate([out, safe], axis=-1)
    return out.astype(np.float32)


def box_positions(boxes, width: int, height: int) -> np.ndarray:
    """N×4 [x0, y0, x1, y1] pixel boxes → N×4 float32 [cx, cy, w, h] as fractions of the image."""
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    if width <= 0 or height <= 0:
        raise InputError("image size", f"must be positive, got {width}×{height}")
    scale = np.array([width, height], np.float64)
    centre = (b[:, :2] + b[:, 2:]) / 2 / scale
    size = (b[:, 2:] - b[:, :2]) / scale
    return np.concatenate([centre, size], axis=1).astype(np.float32)


def embed_2d(boxes, width: int, height: int, num_bands: int = 8) -> np.ndarray:
    """2D embedding of boxes: Fourier features of box centre and size in image fractions.

    Returns N×(4·2·num_bands) float32. Periods run from 2 (unique over [0, 1]) down to
    2/2^(num_bands-1).
    """
    pos = box_positions(boxes, width, height)
    return fourier_features(pos, num_bands, min_period=2.0 / 2 ** (num_bands - 1), max_period=2.0)


def scene_origin(centroids) -> np.ndarray:
    """The scene's origin for 3D embeddings: the per-axis median of all known centroids.

    centroids  (M×3) world-space region centroids of the whole scene (NaN rows ignored)
    Returns a float32 3-vector; zeros when no centroid is known.
    """
    c = np.asarray(centroids, dtype=np.float64).reshape(-1, 3)
    c = c[np.isfinite(c).all(axis=1)]
    if not len(c):
        return np.zeros(3, np.float32)
    return np.median(c, axis=0).astype(np.float32)


def embed_3d(
    centroids, origin=None, num_bands: int = 8, min_period: float = 0.1, max_period: float = 20.0
) -> np.ndarray:
    """3D embedding: Fourier features of the centroid relative to the scene origin (metres).

    centroids  N×3 world-space centroids, NaN rows = position unknown
    origin     3-vector (metres), e.g. scene_origin(all centroids of the scene); None = zeros
    min_period, max_period  in metres (defaults: 10 cm detail, unique over ±10 m)

    Returns N×(3·2·num_bands + 1) float32: the features, then a `missing` column that is 1
    for rows without a position (whose features are all zero) and 0 otherwise.
    """
    c = np.asarray(centroids, dtype=np.float64).reshape(-1, 3)
    o = np.zeros(3) if origin is None else np.asarray(origin, dtype=np.float64).reshape(3)
    rel = c - o
    missing = ~np.isfinite(rel).all(axis=1)
    rel[missing] = np.nan
    feats = fourier_features(rel, num_bands, min_period=min_period, max_period=max_period)
    return np.concatenate([feats, missing[:, None].astype(np.float32)], axis=1)


def embed_time(times, num_bands: int = 4, min_period: float = 0.5, max_period: float = 64.0) -> np.ndarray:
    """Time embedding: Fourier features of times (seconds or frame numbers; any one unit).

    times      N values, usually relative to the first frame of the clip or scene
    Returns N×(2·num_bands) float32.
    """
    t = np.asarray(times, dtype=np.float64).reshape(-1)
    return fourier_features(t, num_bands, min_period=min_period, max_period=max_period)
