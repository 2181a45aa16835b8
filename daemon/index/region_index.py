"""RegionIndex: add and remove images' region tokens, search images by their best region.

Layout under the data directory (`<data_dir>/index/`):
  regions.sqlite   the source of truth (store.py): metadata, RLE masks, boxes, vectors
  faiss.snapshot   a checkpoint of the FAISS index (vectors.py), replayed forward on open
  index.json       the index settings (IndexConfig): kind, metric, IVF/HNSW parameters
  LOCK             flock held while open, so two processes cannot write one index

Concurrency: adds and removes are serialised by the store's write lock; each commits to
SQLite first (the acknowledgement) and then updates FAISS under the write side of a
readers-writer lock, while searches hold the read side and may run in parallel.
"""
from __future__ import annotations

import fcntl
import json
import logging
import os
import sqlite3
from pathlib import Path

import numpy as np

from core.errors import InputError
from core.regionset import RegionSet

from .config import IndexConfig
from .hits import AddResult, ImageHit, RegionHit, SearchFilter, check_image_id, check_metadata, check_vector
from .rwlock import RWLock
from .store import MAX_REGIONS, IndexFileError, SQLiteStore, region_ids, split_ids
from .vectors import VectorIndex, prepare, rank_images

log = logging.getLogger(__name__)

DB_NAME = "regions.sqlite"
CONFIG_NAME = "index.json"
SNAPSHOT_NAME = "faiss.snapshot"


class RegionIndex:
    """Open (or create) the index in `directory`. `dim` is the feature dimension the caller's
    extractor produces and `features` names it (profile/backbone/pooling); an existing index
    with another dimension or other features is refused."""

    def __init__(self, directory, dim: int | None = None, config: IndexConfig | None = None,
                 features: str | None = None):
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self._lock_fh = open(self.dir / "LOCK", "a+")
        try:
            fcntl.flock(self._lock_fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lock_fh.close()
            raise IndexFileError(f"{self.dir} is open in another process (LOCK held)") from None
        try:
            self.config = self._settings(config)
            self.store = SQLiteStore(self.dir / DB_NAME, dim, self.config.storage_dtype, features)
            self._remember_settings()
            self.dim = self.store.dim
            self._n_images, self._n_regions = self.store.count_images(), self.store.count_regions()
            self.rw = RWLock()
            self._since_checkpoint = 0
            self.vectors = self._open_vectors()
        except sqlite3.DatabaseError as e:
            self._release()
            raise IndexFileError(f"{self.dir / DB_NAME} is damaged ({e}); left untouched. Restore it from a "
                                 "backup, or move it away to start an empty index") from None
        except BaseException:
            self._release()
            raise

    # --- opening and checkpoints -----------------------------------------------------------

    def _settings(self, config: IndexConfig | None) -> IndexConfig:
        """The given config (remembered in index.json), else index.json, else the defaults.

        index.json is how a daemon's index is configured: edit its "kind" (flat, ivfpq,
        hnsw) and parameters and restart; the FAISS index is rebuilt from the database."""
        path = self.dir / CONFIG_NAME
        if config is None and path.exists():
            try:
                return IndexConfig.from_dict(json.loads(path.read_text()))
            except (ValueError, TypeError) as e:
                raise IndexFileError(f"{path}: bad index configuration ({e})") from None
        return config or IndexConfig()

    def _remember_settings(self):
        """Write index.json (after the database proved to be ours), when it changed."""
        path = self.dir / CONFIG_NAME
        text = json.dumps(self.config.to_dict(), indent=2) + "\n"
        if not path.exists() or path.read_text() != text:
            tmp = path.with_name(path.name + ".tmp")
            tmp.write_text(text)
            os.replace(tmp, path)

    def _open_vectors(self) -> VectorIndex:
        snap = self.dir / SNAPSHOT_NAME
        vi, seq = (None, 0)
        if snap.exists():
            vi, seq = VectorIndex.load(snap, self.config, self.dim)
            if vi is None:
                log.info("%s was built with other settings; rebuilding from the database", snap)
        if vi is None:
            vi = self._rebuild(VectorIndex(self.config, self.dim))
            return vi
        for _seq, op, key in self.store.log_after(seq):  # replay what the snapshot lacks
            if op == "add":
                vi.add(key, self.store.features_of(key))  # empty when removed later: nothing added
            else:
                vi.remove(key)
            self._since_checkpoint += 1
        return vi

    def _rebuild(self, vi: VectorIndex) -> VectorIndex:
        """Fill `vi` from the store, training it first when it is due."""
        if vi.needs_training(self._n_regions):
            vi.train(self._training_sample())
        else:
            vi.reset()
        for key, feats in self.store.iter_features():
            vi.add(key, feats)
        self._since_checkpoint = self.config.checkpoint_every  # write a snapshot at the next chance
        return vi

    def _training_sample(self) -> np.ndarray:
        n = max(self.config.min_train(), self.config.train_size)
        per_image = max(1, self._n_regions // max(1, self._n_images))
        rows = [f for _key, f in self.store.iter_features(self.store.sample_keys(n // per_image + 1))]
        return np.concatenate(rows)[:n]

    def checkpoint(self):
        """Write the FAISS snapshot and drop the log rows it covers."""
        with self.store.write_lock:
            self._checkpoint_locked()

    def _checkpoint_locked(self):
        seq = self.store.last_seq()
        with self.rw.read():  # no FAISS mutation can run: we hold the store's write lock
            self.vectors.save(self.dir / SNAPSHOT_NAME, seq)
        self.store.prune_log(seq)
        self._since_checkpoint = 0

    def _after_write_locked(self):
        self._since_checkpoint += 1
        vi = self.vectors
        if vi.needs_training(self._n_regions):
            fresh = VectorIndex(self.config, self.dim)
            fresh = self._rebuild(fresh)  # searches keep using the old one meanwhile
            with self.rw.write():
                self.vectors = fresh
        elif vi.tombstones and len(vi.tombstones) * 10 > max(1, self._n_images):
            with self.rw.write():  # compaction: drop tombstoned vectors
                self._rebuild(vi)
        # a snapshot costs the whole index: write one when the log to replay has grown by a
        # quarter of the index (or checkpoint_every changes, whichever is more), so the
        # snapshot cost per add stays constant as the index grows
        if self._since_checkpoint >= max(self.config.checkpoint_every, self._n_images // 4):
            self._checkpoint_locked()

    def close(self):
        """Checkpoint and release. Safe to call twice."""
        if getattr(self, "_closed", False):
            return
        try:
            if self._since_checkpoint:
                self.checkpoint()
        finally:
            self._release()

    def _release(self):
        self._closed = True
        if hasattr(self, "store"):
            self.store.close()
        try:
            fcntl.flock(self._lock_fh, fcntl.LOCK_UN)
        finally:
            self._lock_fh.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # --- writes ----------------------------------------------------------------------------

    def add(self, image_id: str, regions: RegionSet, metadata: dict | None = None,
            on_exists: str = "error") -> AddResult:
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
        if len(regions) >= MAX_REGIONS:
            raise InputError("regions", f"{len(regions)} regions exceed the limit of {MAX_REGIONS - 1}")
        with self.store.write_lock:
            old = self.store.key_of(image_id)
            if old is not None:
                if on_exists == "skip":
                    return AddResult(image_id, False, 0)
                if on_exists != "replace":
                    raise InputError("image_id", f"{image_id!r} is already indexed")
                self._remove_locked(old)
            key, _seq = self.store.add_image(image_id, regions.width, regions.height, metadata,
                                             regions.counts, regions.boxes, regions.areas, feats)
            with self.rw.write():
                self.vectors.add(key, feats)
            self._n_images += 1
            self._n_regions += len(feats)
            self._after_write_locked()
        return AddResult(image_id, True, len(regions))

    def remove(self, image_id: str) -> bool:
        """Remove an image; False when it was not indexed."""
        with self.store.write_lock:
            key = self.store.key_of(image_id)
            if key is None:
                return False
            self._remove_locked(key)
            self._after_write_locked()
        return True

    def _remove_locked(self, key: int):
        n = self.store.images([key])[key].n_regions
        self.store.remove_image(key)
        with self.rw.write():
            self.vectors.remove(key)
        self._n_images -= 1
        self._n_regions -= n

    # --- reads -----------------------------------------------------------------------------

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

    def search(self, query: np.ndarray, k: int = 10, regions_per_image: int = 3,
               filter: SearchFilter | None = None, bias: float = 0.0, normalize: bool | None = None,
               exclude_image_ids=()) -> list[ImageHit]:
        """Top-k images ranked by their best region's score against `query`.

        query       a dim-vector: a region feature (normalised under the cosine metric unless
                    normalize=False) or a linear classifier's weights (normalize=False, `bias`
                    added to every score)
        regions_per_image   best regions returned per image (at least 1)
        """
        q = self._query(query, normalize)
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
        if allowed is not None and len(allowed) <= 2048:
            scores, ids = self._search_subset(q, sorted(allowed))
        else:
            scores, ids = self._search_faiss(q, k + len(excluded), per, allowed, excluded)
        return self._hits(scores + np.float32(bias), ids, k, per, allowed, excluded)

    def _search_faiss(self, q, k, per, allowed, excluded):
        with self.rw.read():
            return self.vectors.search_images(q, k, per, allowed, excluded)

    def _search_subset(self, q, keys):
        """Exact scores over the regions of a few images (filters that select little)."""
        scores, ids = [], []
        for key, feats in self.store.iter_features(keys):
            if len(feats):
                x = prepare(feats, self.config.metric)
                scores.append(x @ q)
                ids.append(region_ids(key, len(feats)))
        if not scores:
            return np.zeros(0, np.float32), np.zeros(0, np.int64)
        return np.concatenate(scores).astype(np.float32), np.concatenate(ids)

    def _hits(self, scores, ids, k, per, allowed, excluded) -> list[ImageHit]:
        keys = split_ids(ids)[0]
        ok = ~np.isin(keys, list(excluded)) if excluded else np.ones(len(ids), bool)
        if allowed is not None:
            ok &= np.isin(keys, list(allowed))
        ranked = rank_images(scores[ok], ids[ok], k, per)
        images = self.store.images([key for key, _ in ranked])
        rrows = self.store.regions([(key, r) for key, lst in ranked for r, _ in lst])
        hits = []
        for key, lst in ranked:
            img = images.get(key)
            if img is None:  # removed between the vector search and now
                continue
            regions = [RegionHit(r, s, rrows[(key, r)].box, rrows[(key, r)].area, rrows[(key, r)].counts)
                       for r, s in lst if (key, r) in rrows]
            hits.append(ImageHit(img.image_id, lst[0][1], img.width, img.height, img.metadata, regions))
        return hits

    def _query(self, query, normalize: bool | None) -> np.ndarray:
        q = check_vector(query, self.dim, "vector")
        if normalize is None:
            normalize = self.config.metric == "cosine"
        if normalize:
            if not np.linalg.norm(q) > 0:
                raise InputError("vector", "the zero vector has no direction")
            q = prepare(q[None], "cosine")[0]
        return q

    def score_images(self, query: np.ndarray, normalize: bool | None = None) -> dict[str, float]:
        """Every indexed image's best-region score (the evaluation protocol ranks all of them);
        straight from FAISS, without fetching masks and metadata."""
        q = self._query(query, normalize)
        with self.rw.read():
            scores, ids = self.vectors.search_images(q, max(1, self._n_images))
        order = np.argsort(-scores, kind="stable")
        keys, first = np.unique(split_ids(ids[order])[0], return_index=True)  # first = best region
        names = self.store.image_ids()
        best = scores[order][first]
        return {names[int(k)]: float(s) for k, s in zip(keys, best) if int(k) in names}


def open_index(data_dir, dim: int | None = None, config: IndexConfig | None = None,
               features: str | None = None) -> RegionIndex:
    """The index of a daemon data directory (`<data_dir>/index`)."""
    return RegionIndex(Path(data_dir) / "index", dim=dim, config=config, features=features)


__all__ = ["RegionIndex", "IndexConfig", "IndexFileError", "open_index"]
