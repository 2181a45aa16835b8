"""What every region index does the same whatever keeps its regions: checking what is added
and asked, mapping features into the index's space, the kinds of search (one vector; a set of
region features matched as a whole; every image's score for the evaluation) and the linear
probe's bias. A backend (region_index.RegionIndex: FAISS over SQLite; milvus.MilvusIndex)
subclasses it and supplies the storage: the abstract methods below, each small.

A backend names its images by a key of its own (an int for SQLite, the image id for Milvus);
keys only pass between its own methods.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Hashable, Iterable

import numpy as np

from regiond.core.errors import InputError
from regiond.core.regionset import RegionSet
from regiond.index.config import IndexConfig
from regiond.index.hits import (
    AddResult,
    ImageHit,
    SearchFilter,
    check_image_id,
    check_metadata,
    check_vectors,
    check_weights,
)
from regiond.index.normalising.normaliser import Normaliser, prepare
from regiond.index.ranking import rank_sets

#: Ranked images as backends hand them back: (key, image score, [(region, score), ...]).
Ranked = list[tuple[Hashable, float, list[tuple[int, float]]]]

#: Query expansion is αQE (Radenović, Tolias, Chum, TPAMI 2019): the query plus the best
#: regions of its top n images, each weighted by its score to this power, so that weak
#: matches barely move it. 3 is the paper's value.
EXPANSION_ALPHA = 3.0
#: Images whose best regions expand a single-region query when a Search request leaves it
#: unset. Chosen on synthetic collections of seeds 1-4 (not the evaluation's 0), lite regions
#: mAP: n=0 0.838, 1 0.845, 2 0.848, 3 0.849, 5 0.852, 8 0.855, 12 0.857 (mean of the four).
#: Larger n kept gaining there because every class has dozens of relevant images; a user's
#: object may be in only a few, so n stays small.
SERVED_EXPANSION = 5
#: The most images a request may expand its query with.
MAX_EXPANSION = 100


def check_expansion(n) -> int:
    """A query expansion's image count, 0..MAX_EXPANSION; InputError("query_expansion") else."""
    n = int(n)
    if not 0 <= n <= MAX_EXPANSION:
        raise InputError("query_expansion", f"must be 0..{MAX_EXPANSION} images, got {n}")
    return n


class Searching(ABC):
    """The front of a region index. Subclasses set `dim`, `config` (its metric is what
    prepare() uses) and `normaliser`, and implement the abstract methods."""

    dim: int
    config: IndexConfig
    normaliser: Normaliser
    #: the most regions one image may have (a backend's id scheme may limit it)
    max_regions: int = 1 << 20

    # --- what a backend supplies ---------------------------------------------------------------

    @abstractmethod
    def __len__(self) -> int:
        """Images indexed."""

    @abstractmethod
    def __contains__(self, image_id: str) -> bool: ...

    @property
    @abstractmethod
    def num_regions(self) -> int: ...

    @abstractmethod
    def _write(self, image_id: str, regions: RegionSet, features: np.ndarray, metadata: dict, on_exists: str) -> bool:
        """Store one checked image (raw N×dim features), durably before returning. When it is
        there already: on_exists "error" raises InputError (field image_id), "skip" returns
        False, "replace" replaces it."""

    @abstractmethod
    def remove(self, image_id: str) -> bool:
        """Remove an image; False when it was not indexed. Durable when it returns."""

    @abstractmethod
    def _raw_features(self, image_id: str) -> np.ndarray | None:
        """An image's stored N×dim features as the extractor gave them; None when unknown."""

    @abstractmethod
    def random_vectors(self, n: int, seed: int = 0, exclude: set[str] | None = None) -> np.ndarray:
        """About `n` stored region features (raw) from random images, none from `exclude`
        (image ids): e.g. the negatives of a linear probe."""

    @abstractmethod
    def _nearest(self, q: np.ndarray, k: int, per: int, flt: SearchFilter, exclude: set[str]) -> list[ImageHit]:
        """The top-k images by their best region's score against q (a vector in the index's
        space), each with its best `per` regions, narrowed by flt and without `exclude`."""

    @abstractmethod
    def _prepared(self, keys: Iterable[Hashable]) -> Iterable[tuple[Hashable, np.ndarray]]:
        """(key, the image's regions in the index's space) of the given images that exist."""

    @abstractmethod
    def _candidates(
        self, q: np.ndarray, n: int, flt: SearchFilter, exclude: set[str]
    ) -> Iterable[tuple[Hashable, np.ndarray]]:
        """A set query's short list: (key, the image's regions in the index's space) of the
        images holding one of the ~n best regions of any row of q (all admissible images
        when the filter leaves few), scored exactly by the caller."""

    @abstractmethod
    def _everything(self) -> Iterable[tuple[str, np.ndarray]]:
        """(image id, regions in the index's space) of every image (evaluation of set queries)."""

    @abstractmethod
    def _best_scores(self, q: np.ndarray) -> dict[str, float]:
        """Every image's best region score against q (image id → score)."""

    @abstractmethod
    def _hits(self, ranked: Ranked) -> list[ImageHit]:
        """Ranked keys → ImageHits with masks, boxes and metadata (images removed meanwhile
        are left out)."""

    @abstractmethod
    def normaliser_note(self) -> str:
        """How this index maps features, in a line (GetInfo, `regiond index info`)."""

    @abstractmethod
    def close(self) -> None:
        """Persist and release. Safe to call twice."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # --- writes ------------------------------------------------------------------------------

    def add(
        self, image_id: str, regions: RegionSet, metadata: dict | None = None, on_exists: str = "error"
    ) -> AddResult:
        """Index one image's regions. Returns once the image is durable (the acknowledgement).

        on_exists: "error" (InputError), "skip" (returns added=False) or "replace".
        """
        image_id = check_image_id(image_id)
        metadata = check_metadata(metadata)
        feats = regions.features
        if feats is None:
            raise InputError("regions", "the region set has no features")
        feats = np.asarray(feats, dtype=np.float32)
        if feats.ndim != 2 or feats.shape[1] != self.dim:
            raise InputError("features", f"expected N×{self.dim}, got shape {feats.shape}")
        if not np.all(np.isfinite(feats)):
            raise InputError("features", "non-finite values")
        if len(regions) >= self.max_regions:
            raise InputError("regions", f"{len(regions)} regions exceed the limit of {self.max_regions - 1}")
        if on_exists not in ("error", "skip", "replace"):
            raise ValueError(f"on_exists must be error, skip or replace, got {on_exists!r}")
        added = self._write(image_id, regions, feats, metadata, on_exists)
        return AddResult(image_id, added, len(regions) if added else 0)

    # --- reads ---------------------------------------------------------------------------------

    def region_vector(self, image_id: str, region_id: int) -> np.ndarray:
        """The stored feature of one region. InputError for an unknown image or region."""
        feats = self._raw_features(image_id)
        if feats is None:
            raise InputError("image_id", f"{image_id!r} is not indexed")
        if not 0 <= int(region_id) < len(feats):
            raise InputError("region_id", f"image {image_id!r} has regions 0..{len(feats) - 1}, not {region_id}")
        return feats[int(region_id)]

    def prepare(self, features: np.ndarray) -> np.ndarray:
        """Raw region features → the vectors this index compares: its normaliser, then L2
        normalisation under the cosine metric. A linear probe's weights act on these."""
        return prepare(features, self.config.metric, self.normaliser)

    def search(
        self,
        query: np.ndarray,
        k: int = 10,
        regions_per_image: int = 3,
        filter: SearchFilter | None = None,
        bias: float = 0.0,
        normalize: bool = True,
        exclude_image_ids=(),
        weights=None,
        expand: int = 0,
    ) -> list[ImageHit]:
        """Top-k images ranked by their best region's score against `query`.

        query       a dim-vector: a region feature as the extractor gives it (mapped as the
                    indexed ones are: see prepare) or, with normalize=False, a vector already
                    in the index's space (a linear probe's weights; `bias` added to every score);
                    or M×dim region features matched as a set (weights, default equal): an
                    image scores the weighted mean of each query region's best match in it
        regions_per_image   best regions returned per image (at least 1)
        expand      query expansion (αQE, see EXPANSION_ALPHA): a single region feature is
                    searched again with the best regions of its first `expand` images (0: the
                    exact nearest images, as the metric ranks them; not for linear probes or sets)
        """
        q = self._query(query, normalize)
        if bias and len(q) > 1:
            raise InputError("bias", "a bias goes with one query vector (a linear probe), not a set of regions")
        k = int(k)
        if k < 1:
            raise InputError("k", f"must be at least 1, got {k}")
        per = max(1, int(regions_per_image))
        flt = filter or SearchFilter()
        check_metadata(flt.metadata, field="filter.metadata")
        exclude = {str(i) for i in exclude_image_ids}
        if len(q) > 1:
            w = check_weights(weights, len(q))
            return self._hits(rank_sets(q, w, self._candidates(q, k * per, flt, exclude), k, per))
        q0 = self._expanded(q[0], expand, normalize, flt, exclude)
        hits = self._nearest(q0, k, per, flt, exclude)
        if bias:
            for h in hits:
                h.score += float(bias)
                for r in h.regions:
                    r.score += float(bias)
        return hits

    def score_images(
        self, query: np.ndarray, normalize: bool = True, weights=None, expand: int = 0, exclude_image_ids=()
    ) -> dict[str, float]:
        """Every indexed image's score (the evaluation protocol ranks all of them): its best
        region's, or for M×dim query rows, the set score of search(). expand as in search();
        the expansion draws on images other than exclude_image_ids (e.g. the query's own)."""
        q = self._query(query, normalize)
        if len(q) > 1:
            ranked = rank_sets(q, check_weights(weights, len(q)), self._everything(), len(self), 1)
            return {image_id: score for image_id, score, _ in ranked}
        exclude = {str(i) for i in exclude_image_ids}
        return self._best_scores(self._expanded(q[0], expand, normalize, SearchFilter(), exclude))

    def _expanded(self, q: np.ndarray, n: int, normalize: bool, flt: SearchFilter, exclude: set[str]) -> np.ndarray:
        """q moved towards the best regions of its top n admissible images (αQE), renormalised
        under the cosine metric; q itself when n is 0."""
        n = check_expansion(n)
        if n == 0:
            return q
        if not normalize:
            raise InputError("query_expansion", "expands region features, not a linear probe's weights")
        out = q.astype(np.float64)
        for h in self._nearest(q, n, 1, flt, exclude):
            r = h.regions[0]  # its best region; only that one is mapped into the index's space
            if r.score > 0 and (feats := self._raw_features(h.image_id)) is not None:
                out += r.score**EXPANSION_ALPHA * self.prepare(feats[r.region_id][None])[0]
        if self.config.metric == "cosine":
            out /= np.linalg.norm(out)
        return out.astype(np.float32)

    def _best_regions(self, q: np.ndarray, images: list[tuple[Hashable, float]], per: int) -> Ranked:
        """Ranked images (key, score) with each one's best `per` regions against q, scored
        exactly from its vectors (a search's short list may hold only some of them)."""
        vectors = dict(self._prepared([key for key, _ in images]))
        ranked = []
        for key, score in images:
            if (x := vectors.get(key)) is not None:
                s = x @ q
                ranked.append((key, score, [(int(r), float(s[r])) for r in np.argsort(-s, kind="stable")[:per]]))
        return ranked

    def _query(self, query, normalize: bool) -> np.ndarray:
        """M×dim query rows in the index's space."""
        rows = check_vectors(query, self.dim, "vector")
        if normalize:
            rows = self.prepare(rows)
            if self.config.metric == "cosine" and not np.all(np.linalg.norm(rows, axis=1) > 0):
                raise InputError("vector", "the zero vector has no direction (after the index's normaliser)")
        return rows
