"""The FAISS side of the index: region vectors under `(image key << 20) | region` ids.

A cache of the SQLite store, never the only copy: it is rebuilt from the store, or loaded
from a checkpoint snapshot and brought up to date by replaying the store's log. Snapshots
are written to a temporary file, fsynced and renamed over the old one, so a crash leaves
either the old snapshot or the new one; a header with a magic string, the configuration,
the log position and a SHA-256 of the payload lets a foreign or damaged file be refused.

Trained kinds (IVF-PQ) search exactly, in an interim flat index, until enough vectors exist
to train on a sample; then the index is trained and rebuilt once.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
from contextlib import contextmanager
from pathlib import Path

import faiss
import numpy as np

from regiond.index.config import IndexConfig
from regiond.index.hits import IndexFileError
from regiond.index.normalising.normaliser import IDENTITY, Normaliser, prepare
from regiond.index.ranking import REGION_BITS

SNAPSHOT_MAGIC = b"REGIOND-FAISS\x00v1"


class VectorIndex:
    """FAISS index with image/region ids, tombstones for kinds that cannot remove."""

    def __init__(
        self,
        config: IndexConfig,
        dim: int,
        normaliser: Normaliser = IDENTITY,
        index=None,
        trained: bool | None = None,
        tombstones=(),
    ):
        self.config = config
        self.dim = int(dim)
        self.normaliser = normaliser
        kind = config.spec
        if index is None:
            trained = not kind.trained
            index = faiss.IndexIDMap2(self._base(trained))
        self.index = index
        self.trained = bool(trained)
        self.tombstones: set[int] = set(int(t) for t in tombstones)  # image keys
        self._tune()

    def _base(self, final: bool):
        if final:
            return faiss.index_factory(self.dim, self.config.factory_string(), faiss.METRIC_INNER_PRODUCT)
        return faiss.IndexFlatIP(self.dim)  # interim exact index until a trained kind is trained

    def _tune(self):
        """Search-time parameters live in the config, not the snapshot."""
        if not self.trained:
            return
        c = self.config
        base = faiss.downcast_index(self.index.index)
        if c.kind == "ivfpq":
            faiss.extract_index_ivf(base).nprobe = c.nprobe
            if isinstance(base, faiss.IndexRefine):
                base.k_factor = float(c.refine_factor)
        elif c.kind == "hnsw":
            base.hnsw.efSearch = c.ef_search
            base.hnsw.efConstruction = c.ef_construction

    @property
    def ntotal(self) -> int:
        return int(self.index.ntotal)

    @property
    def removable(self) -> bool:
        return not self.trained or self.config.spec.removable(self.config)

    def needs_training(self, available: int) -> bool:
        return not self.trained and available >= self.config.min_train()

    def train(self, sample: np.ndarray):
        """Train the final index on a sample; the caller re-adds every vector afterwards."""
        base = self._base(True)
        base.train(self.prepare(sample))
        self.index = faiss.IndexIDMap2(base)
        self.trained = True
        self.tombstones.clear()
        self._tune()

    def prepare(self, features: np.ndarray) -> np.ndarray:
        """Raw region features → the vectors this index holds."""
        return prepare(features, self.config.metric, self.normaliser)

    def reset(self):
        """Empty the index, keeping what training learnt (for compaction)."""
        self.index.reset()
        self.tombstones.clear()

    def add(self, image_key: int, vectors: np.ndarray):
        self.add_ids((np.int64(image_key) << REGION_BITS) | np.arange(len(vectors), dtype=np.int64), vectors)

    def add_ids(self, ids: np.ndarray, vectors: np.ndarray):
        """Add vectors under explicit `(image key << REGION_BITS) | region` ids (bulk loads)."""
        if len(vectors):
            self.index.add_with_ids(self.prepare(vectors), np.asarray(ids, np.int64))

    def remove(self, image_key: int):
        if self.removable:
            lo = int(image_key) << REGION_BITS
            self.index.remove_ids(faiss.IDSelectorRange(lo, lo + (1 << REGION_BITS)))
        else:
            self.tombstones.add(int(image_key))

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Raw region search: (scores, ids), ids -1 where fewer than k were found."""
        k = max(1, min(int(k), self.ntotal))
        if not self.ntotal:
            n = len(queries)
            return np.zeros((n, 0), np.float32), np.zeros((n, 0), np.int64)
        with omp_threads(self.config.search_threads):
            return self.index.search(np.ascontiguousarray(queries, dtype=np.float32), k)

    def search_images(
        self, query: np.ndarray, k: int, per: int = 1, allowed=None, excluded=frozenset()
    ) -> tuple[np.ndarray, np.ndarray]:
        """Region hits (scores, ids) that cover the best regions of the top-k images.

        Searches k·per·8 regions (at least 64) and widens 4× at a time until k distinct
        admissible images are among them or the index runs dry. `allowed` (image keys or
        None for all) and `excluded` filter images; tombstoned images never come back.
        """
        kr = max(64, 8 * k * per)
        total = self.ntotal
        dead = self.tombstones | set(excluded)
        allowed_arr = None if allowed is None else np.fromiter(allowed, np.int64)
        dead_arr = np.fromiter(dead, np.int64) if dead else None
        while True:
            scores, ids = self.search(query[None], kr)
            scores, ids = scores[0], ids[0]
            ok = ids >= 0
            exhausted = not ok.all() or kr >= total
            keys = ids >> REGION_BITS
            if dead_arr is not None:
                ok &= ~np.isin(keys, dead_arr)
            if allowed_arr is not None:
                ok &= np.isin(keys, allowed_arr)
            scores, ids = scores[ok], ids[ok]
            if exhausted or len(np.unique(ids >> REGION_BITS)) >= k:
                return scores, ids
            kr = min(total, kr * 4)

    # --- snapshots -------------------------------------------------------------------------

    def save(self, path: Path, seq: int):
        """Atomically replace the snapshot at `path` with this index at log position `seq`."""
        payload = faiss.serialize_index(self.index).tobytes()
        header = json.dumps(
            {
                "config": self.config.to_dict(),
                "dim": self.dim,
                "normaliser": self.normaliser.digest,
                "seq": int(seq),
                "trained": self.trained,
                "tombstones": sorted(self.tombstones),
                "ntotal": self.ntotal,
                "sha256": hashlib.sha256(payload).hexdigest(),
            }
        ).encode()
        tmp = path.with_name(path.name + ".tmp")
        with open(tmp, "wb") as fh:
            fh.write(SNAPSHOT_MAGIC + struct.pack("<Q", len(header)) + header)
            fh.write(payload)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        _fsync_dir(path.parent)

    @classmethod
    def load(
        cls, path: Path, config: IndexConfig, dim: int, normaliser: Normaliser = IDENTITY
    ) -> tuple[VectorIndex | None, int]:
        """(index, seq) from a snapshot; (None, 0) when it was made with another configuration
        or normaliser (the caller rebuilds; snapshots from before normalisation hold raw
        vectors, "none"). Raises IndexFileError, touching nothing, for a foreign or damaged
        file."""
        with open(path, "rb") as fh:
            data = fh.read()
        if not data.startswith(SNAPSHOT_MAGIC):
            raise IndexFileError(f"{path} is not a regiond FAISS snapshot (bad magic); left untouched")
        try:
            off = len(SNAPSHOT_MAGIC)
            (hlen,) = struct.unpack_from("<Q", data, off)
            header = json.loads(data[off + 8 : off + 8 + hlen])
            payload = data[off + 8 + hlen :]
        except (struct.error, ValueError) as e:
            raise IndexFileError(
                f"{path}: damaged snapshot header ({e}); left untouched. "
                "Delete it to rebuild the search index from the database."
            ) from None
        if hashlib.sha256(payload).hexdigest() != header.get("sha256"):
            raise IndexFileError(
                f"{path}: snapshot checksum mismatch (damaged file); left untouched. "
                "Delete it to rebuild the search index from the database."
            )
        stored = IndexConfig.from_dict(header["config"])
        if (
            header["dim"] != dim
            or _build_fields(stored) != _build_fields(config)
            or header.get("normaliser", IDENTITY.digest) != normaliser.digest
        ):
            return None, 0
        index = faiss.deserialize_index(np.frombuffer(payload, dtype=np.uint8))
        return cls(
            config, dim, normaliser, index=index, trained=header["trained"], tombstones=header["tombstones"]
        ), int(header["seq"])


def _build_fields(c: IndexConfig) -> dict:
    """The settings baked into a built index (search-time ones can change freely)."""
    d = c.to_dict()
    for k in ("nprobe", "ef_search", "refine_factor", "checkpoint_every", "storage_dtype", "search_threads"):
        d.pop(k)
    return d


@contextmanager
def omp_threads(n: int):
    """FAISS's OpenMP thread count for this thread's calls inside the block (libgomp keeps
    the setting per calling thread, so concurrent searches do not disturb each other)."""
    prev = faiss.omp_get_max_threads()
    if n and n != prev:
        faiss.omp_set_num_threads(n)
    try:
        yield
    finally:
        if n and n != prev:
            faiss.omp_set_num_threads(prev)


def _fsync_dir(path: Path):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
