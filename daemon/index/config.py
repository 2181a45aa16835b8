"""Typed configuration of the region index, and the registry of FAISS index kinds.

Each kind maps to a FAISS factory string built from the config; adding a kind means adding
one entry to INDEX_KINDS, not another branch somewhere else.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass

METRICS = ("cosine", "dot")
REFINE_KINDS = ("Flat", "SQfp16", "SQ8", "")


@dataclass(frozen=True)
class IndexKind:
    """How to build one kind of FAISS index.

    factory      config -> FAISS index_factory string (inner-product metric always)
    trained      True when the index needs `train()` on a sample before vectors can be added
    removable    config -> True when the index supports remove_ids (the others hide removed
                 images behind tombstones until the next compaction)
    """

    factory: Callable[[IndexConfig], str]
    trained: bool
    removable: Callable[[IndexConfig], bool]


INDEX_KINDS: dict[str, IndexKind] = {
    # Exact search: scores every vector. The default, and the reference for recall.
    "flat": IndexKind(lambda c: "Flat", trained=False, removable=lambda c: True),
    # Inverted lists over k-means cells, product-quantised residuals, exact re-ranking of the
    # short list from the stored float vectors (refine) so recall stays high at small nprobe.
    "ivfpq": IndexKind(
        # "np": no polysemous training (slow, and only useful for Hamming filtering we don't use)
        lambda c: f"IVF{c.nlist},PQ{c.pq_m}x{c.pq_nbits}np" + (f",Refine({c.refine})" if c.refine else ""),
        trained=True,
        removable=lambda c: not c.refine,
    ),  # IndexRefine has no remove_ids
    # Graph search; needs no training, cannot remove (tombstones until compaction).
    "hnsw": IndexKind(lambda c: f"HNSW{c.hnsw_m},Flat", trained=False, removable=lambda c: False),
}


@dataclass(frozen=True)
class IndexConfig:
    """Region index settings (stored with the index; reopening checks dim and metric).

    kind             "flat" (exact), "ivfpq" or "hnsw" (see INDEX_KINDS)
    metric           "cosine": inner product of L2-normalised features (the paper);
                     "dot": raw inner product of the features as given
    nlist            IVF cells (ivfpq)
    nprobe           IVF cells visited per query (ivfpq)
    pq_m, pq_nbits   PQ sub-quantisers and bits per code (ivfpq); dim must divide by pq_m
    refine           re-rank the IVF-PQ short list with vectors stored as "Flat" (exact),
                     "SQfp16" or "SQ8" (half / quarter the memory); "" = no re-ranking (ivfpq)
    refine_factor    short-list size = refine_factor × k (ivfpq with refine)
    hnsw_m           graph degree (hnsw)
    ef_search        search beam (hnsw)
    ef_construction  build beam (hnsw)
    train_size       vectors sampled to train a trained kind; training waits until this many
                     (at least 39 × nlist) exist, and search is exact until then
    checkpoint_every image adds/removes after which the FAISS snapshot is rewritten (or a
                     quarter of the image count, when that is more)
    storage_dtype    "float32" or "float16": how vectors are kept in the SQLite source of truth
    search_threads   OpenMP threads one query may use. 1 (default): a query never waits for a
                     second thread to be scheduled (on a busy 2-core machine that wait cost
                     5-20 ms a query), and concurrent queries run in parallel instead
    """

    kind: str = "flat"
    metric: str = "cosine"
    nlist: int = 1024
    nprobe: int = 16
    pq_m: int = 48
    pq_nbits: int = 8
    refine: str = "SQfp16"
    refine_factor: int = 8
    hnsw_m: int = 32
    ef_search: int = 64
    ef_construction: int = 80
    train_size: int = 100_000
    checkpoint_every: int = 1000
    search_threads: int = 1
    storage_dtype: str = "float32"

    def __post_init__(self):
        if self.kind not in INDEX_KINDS:
            raise ValueError(f"index kind {self.kind!r} unknown; choose from {sorted(INDEX_KINDS)}")
        if self.metric not in METRICS:
            raise ValueError(f"index metric {self.metric!r} unknown; choose from {list(METRICS)}")
        if self.refine not in REFINE_KINDS:
            raise ValueError(f"refine {self.refine!r} unknown; choose from {list(REFINE_KINDS)}")
        if self.storage_dtype not in ("float32", "float16"):
            raise ValueError(f"storage_dtype must be float32 or float16, got {self.storage_dtype!r}")

    @property
    def spec(self) -> IndexKind:
        return INDEX_KINDS[self.kind]

    def factory_string(self) -> str:
        return self.spec.factory(self)

    def search_params(self) -> str:
        """The search-time settings of this kind, for reports."""
        return {
            "ivfpq": f"nprobe {self.nprobe}, refine ×{self.refine_factor}" if self.refine else f"nprobe {self.nprobe}",
            "hnsw": f"efSearch {self.ef_search}",
        }.get(self.kind, "exact")

    def min_train(self) -> int:
        """Vectors needed before a trained kind is trained (FAISS wants ≥ 39 per centroid)."""
        if not self.spec.trained:
            return 0
        return max(39 * self.nlist, 39 * 2**self.pq_nbits, self.train_size)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> IndexConfig:
        """The config recorded in index.json; TypeError for a value of the wrong type (every
        field is a str or an int, as its default)."""
        known = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        for k, v in known.items():
            kind = type(getattr(cls, k))
            if not isinstance(v, kind) or isinstance(v, bool):
                raise TypeError(f"{k} must be {'a string' if kind is str else 'an integer'}, got {v!r}")
        return cls(**known)
