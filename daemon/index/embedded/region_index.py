"""RegionIndex, the embedded backend of the region index (searching.Searching): FAISS over
SQLite in a directory; and open_index, which opens an index by location (this, or
milvus.MilvusIndex).

Layout under the data directory (`<data_dir>/index/`):
  regions.sqlite   the source of truth (store.py): metadata, RLE masks, boxes, raw feature
                   vectors, and the feature normaliser (normaliser.py) the index maps them with
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
from collections.abc import Callable
from pathlib import Path

import numpy as np

from regiond.core.errors import InputError
from regiond.core.json_docs import read_json_object
from regiond.core.regionset import RegionSet
from regiond.index.config import IndexConfig
from regiond.index.embedded.rwlock import RWLock
from regiond.index.embedded.store import SQLiteStore
from regiond.index.embedded.vectors import VectorIndex
from regiond.index.hits import ImageHit, IndexFileError, RegionHit, SearchFilter
from regiond.index.normalising.normaliser import Normaliser
from regiond.index.ranking import MAX_REGIONS, rank_images, region_ids, split_ids
from regiond.index.searching import Ranked, Searching

log = logging.getLogger(__name__)

DB_NAME = "regions.sqlite"
CONFIG_NAME = "index.json"
SNAPSHOT_NAME = "faiss.snapshot"
LEGACY_NOTE = (
    "built before feature normalisation, so searched with its original raw-feature scores; "
    "`regiond index renormalise {dir}` adopts the normaliser in place, without re-extracting"
)


#: A filter leaving at most this many images is searched exactly over their regions.
SMALL_SUBSET = 2048


class RegionIndex(Searching):
    """The embedded backend: FAISS over SQLite. Open (or create) the index in `directory`.
    `dim` is the feature dimension the caller's extractor produces and `features` names it
    (profile/backbone/pooling); an existing index with another dimension or other features
    is refused.

    normaliser  what a new index maps region features with before comparing them (or a
                function giving it, called only for a new index; corpus.normaliser_for(extractor)
                is the one for an extractor); None: the identity. An existing index keeps the
                one it recorded; one built before normalisation keeps its raw scores.
    """

    def __init__(
        self,
        directory,
        dim: int | None = None,
        config: IndexConfig | None = None,
        features: str | None = None,
        normaliser: Normaliser | Callable[[], Normaliser] | None = None,
    ):
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
            self.store = SQLiteStore(self.dir / DB_NAME, dim, self.config.storage_dtype, features, normaliser)
            self._remember_settings()
            self.dim = self.store.dim
            self.normaliser = self.store.normaliser
            if self.store.legacy:
                log.warning("%s: %s", self.dir, LEGACY_NOTE.format(dir=self.dir))
            self._n_images, self._n_regions = self.store.count_images(), self.store.count_regions()
            self.rw = RWLock()
            self._swap = RWLock()  # a replace (remove + add) against lookups of one image's rows
            self._since_checkpoint = 0
            self.vectors = self._open_vectors()
        except sqlite3.DatabaseError as e:
            self._release()
            raise IndexFileError(
                f"{self.dir / DB_NAME} is damaged ({e}); left untouched. Restore it from a "
                "backup, or move it away to start an empty index"
            ) from None
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
                return IndexConfig.from_dict(read_json_object(path, "index"))
            except (ValueError, TypeError) as e:  # InputError included
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
            vi, seq = VectorIndex.load(snap, self.config, self.dim, self.normaliser)
            if vi is None:
                log.info("%s was built with other settings; rebuilding from the database", snap)
        if vi is None:
            return self._rebuild(self._empty_vectors())
        for _seq, op, key in self.store.log_after(seq):  # replay what the snapshot lacks
            if op == "add":
                vi.add(key, self.store.features_of(key))  # empty when removed later: nothing added
            else:
                vi.remove(key)
            self._since_checkpoint += 1
        return vi

    def _empty_vectors(self) -> VectorIndex:
        return VectorIndex(self.config, self.dim, self.normaliser)

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
            fresh = self._rebuild(self._empty_vectors())  # searches keep using the old one meanwhile
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

    def normaliser_note(self) -> str:
        """How this index maps features, in a line (GetInfo, `regiond index info`)."""
        if self.store.legacy:
            return "none (" + LEGACY_NOTE.format(dir=self.dir) + ")"
        return self.normaliser.describe()

    def renormalise(self, normaliser: Normaliser):
        """Record another normaliser and rebuild the FAISS side from the stored raw features
        (how an index built before normalisation adopts one). Durable when it returns."""
        with self.store.write_lock:
            self.store.set_normaliser(normaliser)
            fresh = self._rebuild(VectorIndex(self.config, self.dim, normaliser))
            with self.rw.write():  # queries prepared meanwhile may still use the old one: run it offline
                self.normaliser, self.vectors = normaliser, fresh
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

    # --- writes ----------------------------------------------------------------------------

    max_regions = MAX_REGIONS

    def _write(self, image_id: str, regions: RegionSet, feats: np.ndarray, metadata: dict, on_exists: str) -> bool:
        with self.store.write_lock:
            old = self.store.key_of(image_id)
            if old is not None:
                if on_exists == "skip":
                    return False
                if on_exists != "replace":
                    raise InputError("image_id", f"{image_id!r} is already indexed")
            with self._swap.write():  # a lookup never finds a replaced image missing half-way
                if old is not None:
                    self._remove_locked(old)
                key, _seq = self.store.add_image(
                    image_id,
                    regions.width,
                    regions.height,
                    metadata,
                    regions.counts,
                    regions.boxes,
                    regions.areas,
                    feats,
                )
                with self.rw.write():
                    self.vectors.add(key, feats)
            self._n_images += 1
            self._n_regions += len(feats)
            self._after_write_locked()
        return True

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

    # --- reads -------------------------------------------------------------------------------

    def __len__(self) -> int:
        return self._n_images

    def __contains__(self, image_id: str) -> bool:
        return self.store.key_of(image_id) is not None

    @property
    def num_regions(self) -> int:
        return self._n_regions

    def _raw_features(self, image_id: str) -> np.ndarray | None:
        with self._swap.read():
            key = self.store.key_of(image_id)
            return None if key is None else self.store.features_of(key)

    def random_vectors(self, n: int, seed: int = 0, exclude: set[str] | None = None) -> np.ndarray:
        rng = np.random.default_rng(seed)
        skip = {self.store.key_of(i) for i in exclude or ()}
        rows = [f for key, f in self.store.iter_features(self.store.sample_keys(max(1, n), seed)) if key not in skip]
        if not rows:
            return np.zeros((0, self.dim), np.float32)
        allv = np.concatenate(rows)
        return allv[rng.permutation(len(allv))[:n]]

    def _admissible(self, flt: SearchFilter, exclude: set[str]) -> tuple[set[int] | None, set[int]]:
        """(keys the filter allows, None for all; keys excluded)."""
        excluded = {self.store.key_of(i) for i in exclude} - {None}
        if not flt:
            return None, excluded
        return set(self.store.filter_keys(flt.image_id_prefix, flt.metadata).tolist()) - excluded, excluded

    def _nearest(self, q, k, per, flt, exclude) -> list[ImageHit]:
        allowed, excluded = self._admissible(flt, exclude)
        if allowed is not None and len(allowed) <= SMALL_SUBSET:
            scores, ids = self._search_subset(q, sorted(allowed))
        else:
            with self.rw.read():
                scores, ids = self.vectors.search_images(q, k + len(excluded), per, allowed, excluded)
        keys = split_ids(ids)[0]
        ok = ~np.isin(keys, list(excluded)) if excluded else np.ones(len(ids), bool)
        if allowed is not None:
            ok &= np.isin(keys, list(allowed))
        ranked = [(key, lst[0][1], lst) for key, lst in rank_images(scores[ok], ids[ok], k, per)]
        if per > 1:  # the short list may hold only some of an image's best regions
            ranked = self._best_regions(q, [(key, score) for key, score, _ in ranked], per)
        return self._hits(ranked)

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

    def _candidates(self, q, n, flt, exclude):
        allowed, excluded = self._admissible(flt, exclude)
        if allowed is not None and len(allowed) <= SMALL_SUBSET:
            return self._prepared(allowed)
        with self.rw.read():
            _, ids = self.vectors.search(q, max(64, 8 * n))
            dead = self.vectors.tombstones | excluded
        keys = set(split_ids(ids[ids >= 0])[0].tolist()) - dead
        return self._prepared(keys if allowed is None else keys & allowed)

    def _everything(self):
        names = self.store.image_ids()
        for key, feats in self.store.iter_features():
            if len(feats) and key in names:  # not one added since names was read
                yield names[key], self.prepare(feats)

    def _best_scores(self, q) -> dict[str, float]:
        names = self.store.image_ids()
        with self.rw.read():
            scores, ids = self.vectors.search_images(q, max(1, self._n_images))
        order = np.argsort(-scores, kind="stable")
        keys, first = np.unique(split_ids(ids[order])[0], return_index=True)  # first = best region
        best = scores[order][first]
        return {names[int(k)]: float(s) for k, s in zip(keys, best) if int(k) in names}

    def _hits(self, ranked: Ranked) -> list[ImageHit]:
        images = self.store.images([key for key, _, _ in ranked])
        rrows = self.store.regions([(key, r) for key, _, lst in ranked for r, _ in lst])
        hits = []
        for key, score, lst in ranked:
            img = images.get(key)
            if img is None:  # removed between the vector search and now
                continue
            regions = [
                RegionHit(r, s, rrows[(key, r)].box, rrows[(key, r)].area, rrows[(key, r)].counts)
                for r, s in lst
                if (key, r) in rrows
            ]
            hits.append(ImageHit(img.image_id, score, img.width, img.height, img.metadata, regions))
        return hits


__all__ = ["RegionIndex", "IndexConfig", "IndexFileError"]
