"""The reads of a RegionIndex: searches (one vector, or a set of region features), stored
region vectors, and the scores the evaluation ranks by. A mixin of RegionIndex, which holds
what these use: `store` (SQLite), `vectors` (FAISS) behind the readers-writer lock `rw`,
`config`, `normaliser`, `dim` and the image/region counts.
"""
from __future__ import annotations

import numpy as np

from core.errors import InputError

from .hits import ImageHit, RegionHit, SearchFilter, check_metadata, check_vectors, check_weights
from .ranking import rank_images, rank_sets
from .store import region_ids, split_ids
from .vectors import prepare


class Searching:
    def __len__(self) -> int:
        return self._n_images

    def __contains__(self, image_id: str) -> bool:
        return self.store.key_of(image_id) is not None

    @property
    def num_regions(self) -> int:
        return self._n_regions

    def region_vector(self, image_id: str, region_id: int) -> np.ndarray:
        """The stored feature of one region. InputError for an unknown image or region."""
        key = self.store.key_of(image_id)
        if key is None:
            raise InputError("image_id", f"{image_id!r} is not indexed")
        feats = self.store.features_of(key)
        if not 0 <= int(region_id) < len(feats):
            raise InputError("region_id", f"image {image_id!r} has regions 0..{len(feats) - 1}, not {region_id}")
        return feats[int(region_id)]

    def random_vectors(self, n: int, seed: int = 0, exclude: set | None = None) -> np.ndarray:
        """About `n` stored region vectors from random images (e.g. negatives for a classifier)."""
        rng = np.random.default_rng(seed)
        rows = []
        for key, f in self.store.iter_features(self.store.sample_keys(max(1, n), seed)):
            if exclude and key in exclude:
                continue
            rows.append(f)
        if not rows:
            return np.zeros((0, self.dim), np.float32)
        allv = np.concatenate(rows)
        return allv[rng.permutation(len(allv))[:n]]

    def prepare(self, features: np.ndarray) -> np.ndarray:
        """Raw region features → the vectors this index compares: its normaliser, then L2
        normalisation under the cosine metric. A linear probe's weights act on these."""
        return prepare(features, self.config.metric, self.normaliser)

    def search(self, query: np.ndarray, k: int = 10, regions_per_image: int = 3,
               filter: SearchFilter | None = None, bias: float = 0.0, normalize: bool = True,
               exclude_image_ids=(), weights=None) -> list[ImageHit]:
        """Top-k images ranked by their best region's score against `query`.

        query       a dim-vector: a region feature as the extractor gives it (mapped as the
                    indexed ones are: see prepare) or, with normalize=False, a vector already
                    in the index's space (a linear probe's weights; `bias` added to every score);
                    or M×dim region features matched as a set (weights, default equal): an
                    image scores the weighted mean of each query region's best match in it
        regions_per_image   best regions returned per image (at least 1)
        """
        q = self._query(query, normalize)
        if bias and len(q) > 1:
            raise InputError("bias", "a bias goes with one query vector (a linear probe), not a set of regions")
        k = int(k)
        if k < 1:
            raise InputError("k", f"must be at least 1, got {k}")
        per = max(1, int(regions_per_image))
        excluded = {self.store.key_of(i) for i in exclude_image_ids} - {None}
        allowed = None
        if filter:
            check_metadata(filter.metadata, field="filter.metadata")
            allowed = set(self.store.filter_keys(filter.image_id_prefix, filter.metadata).tolist()) - excluded
            if not allowed:
                return []
        if len(q) > 1:
            keys = allowed if allowed is not None and len(allowed) <= 2048 else self._candidates(q, k * per, allowed, excluded)
            return self._materialise(rank_sets(q, check_weights(weights, len(q)), self._prepared(keys), k, per))
        if allowed is not None and len(allowed) <= 2048:
            scores, ids = self._search_subset(q[0], sorted(allowed))
        else:
            scores, ids = self._search_faiss(q[0], k + len(excluded), per, allowed, excluded)
        return self._hits(scores + np.float32(bias), ids, k, per, allowed, excluded)

    def _search_faiss(self, q, k, per, allowed, excluded):
        with self.rw.read():
            return self.vectors.search_images(q, k, per, allowed, excluded)

    def _prepared(self, keys):
        """(key, prepared N×dim) of the given images, in key order."""
        for key, feats in self.store.iter_features(sorted(keys)):
            if len(feats):
                yield key, self.prepare(feats)

    def _search_subset(self, q, keys):
        """Exact scores over the regions of a few images (filters that select little)."""
        scores, ids = [], []
        for key, x in self._prepared(keys):
            scores.append(x @ q)
            ids.append(region_ids(key, len(x)))
        if not scores:
            return np.zeros(0, np.float32), np.zeros(0, np.int64)
        return np.concatenate(scores).astype(np.float32), np.concatenate(ids)

    def _candidates(self, q, n, allowed, excluded) -> set[int]:
        """Images holding one of the best regions of any query row (a set query's short list,
        scored exactly afterwards)."""
        with self.rw.read():
            _, ids = self.vectors.search(q, max(64, 8 * n))
            dead = self.vectors.tombstones | excluded
        keys = set(split_ids(ids[ids >= 0])[0].tolist()) - dead
        return keys if allowed is None else keys & allowed

    def _hits(self, scores, ids, k, per, allowed, excluded) -> list[ImageHit]:
        keys = split_ids(ids)[0]
        ok = ~np.isin(keys, list(excluded)) if excluded else np.ones(len(ids), bool)
        if allowed is not None:
            ok &= np.isin(keys, list(allowed))
        return self._materialise([(key, lst[0][1], lst) for key, lst in rank_images(scores[ok], ids[ok], k, per)])

    def _materialise(self, ranked) -> list[ImageHit]:
        """[(image key, image score, [(region, score)...])] → ImageHits with masks and metadata."""
        images = self.store.images([key for key, _, _ in ranked])
        rrows = self.store.regions([(key, r) for key, _, lst in ranked for r, _ in lst])
        hits = []
        for key, score, lst in ranked:
            img = images.get(key)
            if img is None:  # removed between the vector search and now
                continue
            regions = [RegionHit(r, s, rrows[(key, r)].box, rrows[(key, r)].area, rrows[(key, r)].counts)
                       for r, s in lst if (key, r) in rrows]
            hits.append(ImageHit(img.image_id, score, img.width, img.height, img.metadata, regions))
        return hits

    def _query(self, query, normalize: bool) -> np.ndarray:
        """M×dim query rows in the index's space."""
        rows = check_vectors(query, self.dim, "vector")
        if normalize:
            rows = self.prepare(rows)
            if self.config.metric == "cosine" and not np.all(np.linalg.norm(rows, axis=1) > 0):
                raise InputError("vector", "the zero vector has no direction (after the index's normaliser)")
        return rows

    def score_images(self, query: np.ndarray, normalize: bool = True, weights=None) -> dict[str, float]:
        """Every indexed image's score (the evaluation protocol ranks all of them): its best
        region's (straight from FAISS, without fetching masks and metadata), or for M×dim
        query rows, the set score of search()."""
        q = self._query(query, normalize)
        names = self.store.image_ids()
        if len(q) > 1:
            ranked = rank_sets(q, check_weights(weights, len(q)), self._prepared(names), len(names), 1)
            return {names[key]: score for key, score, _ in ranked}
        with self.rw.read():
            scores, ids = self.vectors.search_images(q[0], max(1, self._n_images))
        order = np.argsort(-scores, kind="stable")
        keys, first = np.unique(split_ids(ids[order])[0], return_index=True)  # first = best region
        best = scores[order][first]
        return {names[int(k)]: float(s) for k, s in zip(keys, best) if int(k) in names}


