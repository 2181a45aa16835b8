"""Ranking images from region scores: by their best region (one query vector), or by how
well they hold a whole set of query regions."""

from __future__ import annotations

from collections.abc import Hashable, Iterable

import numpy as np

REGION_BITS = 20  # vector ids are `image key << REGION_BITS | region`: 2^20 regions an image, 2^43 images
MAX_REGIONS = 1 << REGION_BITS


def region_ids(image_key: int, n: int) -> np.ndarray:
    return (np.int64(image_key) << REGION_BITS) | np.arange(n, dtype=np.int64)


def split_ids(ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    ids = np.asarray(ids, dtype=np.int64)
    return ids >> REGION_BITS, ids & (MAX_REGIONS - 1)


def rank_images(scores: np.ndarray, ids: np.ndarray, k: int, per: int = 1) -> list[tuple[int, list[tuple[int, float]]]]:
    """Group region hits by image: the top-k (image key, [(region, score), ...best `per`]),
    images ordered by their best region's score."""
    order = np.argsort(-scores, kind="stable")
    keys = ids >> REGION_BITS
    regs = ids & ((1 << REGION_BITS) - 1)
    best: dict[int, list[tuple[int, float]]] = {}
    for i in order:  # highest first, so each image's first entry is its best region
        lst = best.setdefault(int(keys[i]), [])
        if len(lst) < per:
            lst.append((int(regs[i]), float(scores[i])))
        elif len(best) >= k and all(len(v) >= per for v in best.values()):
            break
    return sorted(best.items(), key=lambda kv: -kv[1][0][1])[:k]


def rank_sets(
    queries: np.ndarray, weights: np.ndarray, images: Iterable[tuple[Hashable, np.ndarray]], k: int, per: int = 1
) -> list[tuple[Hashable, float, list[tuple[int, float]]]]:
    """Score images against M query regions at once: an image scores Σ weights[m] · (the best
    score of query region m among the image's regions), so it ranks high when it holds a match
    for every part of the query. Returns the top-k (image key, score, [(region, score), ...]),
    each image's `per` regions that best match some query region.

    queries  M×D and images (key, N×D) already in the index's space; keys are the caller's
    """
    ranked = []
    for key, x in images:
        s = queries @ x.T  # M×N
        score = float(weights @ s.max(axis=1))
        region_best = s.max(axis=0)
        top = np.argsort(-region_best, kind="stable")[:per]
        ranked.append((key, score, [(int(r), float(region_best[r])) for r in top]))
    ranked.sort(key=lambda t: -t[1])
    return ranked[:k]
