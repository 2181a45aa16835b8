"""The index's source of truth: one SQLite database (WAL, synchronous=FULL).

Every image is added in one transaction holding its metadata, its regions' RLE masks and
boxes, and its feature vectors; a commit is the acknowledgement, so an acknowledged image
survives `kill -9` and a half-added one never appears. The FAISS index beside it is a cache
rebuilt or replayed from here (see vectors.py / region_index.py): the `log` table lists
adds and removes in commit order so a snapshot taken at `seq` S only needs the rows after S.

Image keys are AUTOINCREMENT (never reused), so the FAISS id `key << REGION_BITS | region`
names one region of one image for the life of the index.

Vectors are stored as the extractor gave them; the feature normaliser the index maps them
with (normaliser.py) is kept in the `normaliser` table (format 2). Format 1 indexes, built
before normalisation existed, have none: they are opened with their original raw-feature
scores (the identity normaliser), and `regiond index renormalise` adopts one in place,
since the raw features are all a normaliser needs. Code that predates format 2 refuses a
format 2 file (it would compare raw queries with normalised vectors) instead of mis-scoring it.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np

from regiond.index.embedded.readers import READERS, ReadPool
from regiond.index.embedded.store_schema import (
    FORMAT,
    FORMATS,
    LEGACY_FORMAT,
    NORMALISER_SCHEMA,
    SCHEMA,
    SQLITE_MAGIC,
    ImageRow,
    RegionRow,
)
from regiond.index.hits import IndexFileError
from regiond.index.normalising.normaliser import IDENTITY, Normaliser


class SQLiteStore:
    """Thread-safe: one writer connection behind a mutex, a fixed pool of reader connections
    (readers.py), each lent for one query."""

    def __init__(
        self,
        path: Path,
        dim: int | None,
        storage_dtype: str = "float32",
        features: str | None = None,
        normaliser: Normaliser | Callable[[], Normaliser] | None = None,
        readers: int = READERS,
    ):
        """features: what produced the vectors (e.g. "lite/classic"); an index built from other
        features is refused, since their scores would not compare.
        normaliser: what a new index maps its features with (or a function giving it, called
        only when the index is new); an existing index keeps the one it recorded."""
        self.path = Path(path)
        fresh = not self.path.exists() or self.path.stat().st_size == 0
        if not fresh:
            self._check_ours(dim, features)
        elif callable(normaliser):
            normaliser = normaliser()  # before the file exists: a failed fit leaves nothing behind
        normaliser = normaliser or IDENTITY
        if fresh and dim is not None and normaliser.dim not in (None, int(dim)):
            raise ValueError(f"the normaliser is {normaliser.dim}-d but the index is {dim}-d")
        self.write_lock = threading.Lock()
        self._w = self._connect()
        self._readers: ReadPool | None = None
        try:  # whatever fails from here leaves no connection open
            if fresh:
                self._create(dim, storage_dtype, features, normaliser)
            self._readers = ReadPool(self._connect, readers)
            meta = dict(self._w.execute("SELECT key, value FROM meta"))
            self.dim = int(meta["dim"])
            self.dtype = np.dtype(meta["storage_dtype"]).newbyteorder("<")
            self.format = meta["format"]
            self.features = meta.get("features", "")
            self.normaliser = self._read_normaliser()
        except BaseException:
            self.close()
            raise

    # --- opening ---------------------------------------------------------------------------

    def _create(self, dim: int | None, storage_dtype: str, features: str | None, normaliser: Normaliser):
        if dim is None:
            raise ValueError("a new index needs the feature dimension")
        self._w.executescript("BEGIN IMMEDIATE;" + SCHEMA + NORMALISER_SCHEMA)
        try:
            self._w.executemany(
                "INSERT INTO meta VALUES (?, ?)",
                [
                    ("format", FORMAT),
                    ("dim", str(int(dim))),
                    ("storage_dtype", storage_dtype),
                    ("features", features or ""),
                ],
            )
            self._put_normaliser(normaliser)
            self._w.execute("COMMIT")
        except BaseException:
            self._w.execute("ROLLBACK")
            raise

    def _check_ours(self, dim: int | None, features: str | None):
        """Read-only checks before anything can write to an existing file."""
        with open(self.path, "rb") as fh:
            head = fh.read(len(SQLITE_MAGIC))
        if head != SQLITE_MAGIC:
            raise IndexFileError(f"{self.path} is not a regiond index (not an SQLite database); left untouched")
        try:
            con = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True)
            try:
                tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
                if not {"meta", "images", "regions", "log"} <= tables:
                    raise IndexFileError(
                        f"{self.path} is an SQLite database but not a regiond index "
                        f"(tables {sorted(tables)}); left untouched"
                    )
                meta = dict(con.execute("SELECT key, value FROM meta"))
                con.execute("SELECT key, image_id, n_regions, features FROM images LIMIT 1").fetchall()
            finally:
                con.close()
        except sqlite3.DatabaseError as e:
            raise IndexFileError(f"{self.path} is not a readable regiond index ({e}); left untouched") from None
        if meta.get("format") not in FORMATS:
            raise IndexFileError(
                f"{self.path} is an SQLite database but not a regiond index this version reads "
                f"(format {meta.get('format')!r}, expected one of {list(FORMATS)}); left untouched"
            )
        if features and meta.get("features") and meta["features"] != features:
            raise IndexFileError(
                f"{self.path} holds {meta['features']} features but this extractor gives {features}; "
                "their scores do not compare: use another data directory or the matching profile"
            )
        if dim is not None and int(meta["dim"]) != int(dim):
            raise IndexFileError(
                f"{self.path} holds {meta['dim']}-d features but the extractor gives {dim}-d; "
                "use another data directory or the matching profile"
            )

    def _connect(self) -> sqlite3.Connection:
        con = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=60)
        con.execute("PRAGMA journal_mode=WAL")
        con.execute("PRAGMA synchronous=FULL")  # the pragmas open the WAL files: none opens later
        return con

    def _read(self, sql: str, args=()) -> list:
        """Every row of one query, on a pooled reader returned before this returns."""
        with self._readers.connection() as r:
            return r.execute(sql, args).fetchall()

    def close(self):
        if self._readers is not None:
            self._readers.close()
        try:
            self._w.close()
        except sqlite3.Error:
            pass

    # --- the normaliser ---------------------------------------------------------------------

    @property
    def legacy(self) -> bool:
        """Built before normalisation (format 1): raw features, scored as they always were."""
        return self.format == LEGACY_FORMAT

    def _read_normaliser(self) -> Normaliser:
        if self.legacy:
            return IDENTITY
        row = self._w.execute("SELECT data, crc FROM normaliser WHERE id = 1").fetchone()
        if row is None or zlib.crc32(row[0]) != row[1]:
            raise IndexFileError(
                f"{self.path}: the feature normaliser is missing or damaged; left untouched. "
                "Run `regiond index renormalise` to record one again (the features are intact)"
            )
        try:
            n = Normaliser.from_bytes(row[0], where=f"{self.path} normaliser")
        except ValueError as e:
            raise IndexFileError(f"{e}; left untouched. Run `regiond index renormalise` to record one again") from None
        if n.dim not in (None, self.dim):
            raise IndexFileError(f"{self.path}: its normaliser is {n.dim}-d but its features are {self.dim}-d")
        return n

    def _put_normaliser(self, normaliser: Normaliser):
        data = normaliser.to_bytes()
        self._w.execute("INSERT OR REPLACE INTO normaliser VALUES (1, ?, ?)", (data, zlib.crc32(data)))

    def set_normaliser(self, normaliser: Normaliser):
        """Record another normaliser (a format 1 index becomes format 2). The caller holds
        write_lock and rebuilds the FAISS side: its vectors were mapped with the old one."""
        if normaliser.dim not in (None, self.dim):
            raise ValueError(f"the normaliser is {normaliser.dim}-d but the index is {self.dim}-d")
        w = self._w
        w.executescript("BEGIN IMMEDIATE;" + NORMALISER_SCHEMA)
        try:
            self._put_normaliser(normaliser)
            w.execute("UPDATE meta SET value = ? WHERE key = 'format'", (FORMAT,))
            w.execute("COMMIT")
        except BaseException:
            w.execute("ROLLBACK")
            raise
        self.format, self.normaliser = FORMAT, normaliser

    # --- writes (callers hold write_lock) ----------------------------------------------------

    def add_image(
        self,
        image_id: str,
        width: int,
        height: int,
        metadata: dict,
        counts: list,
        boxes: np.ndarray,
        areas: np.ndarray,
        features: np.ndarray,
    ) -> tuple[int, int]:
        """Insert one image atomically and durably. Returns (image key, log seq)."""
        feats = np.ascontiguousarray(features, dtype=self.dtype)
        w = self._w
        w.execute("BEGIN IMMEDIATE")
        try:
            cur = w.execute(
                "INSERT INTO images (image_id, width, height, metadata, n_regions, features, crc) "
                "VALUES (?,?,?,?,?,?,?)",
                (
                    image_id,
                    int(width),
                    int(height),
                    json.dumps(metadata, sort_keys=True),
                    len(counts),
                    feats.tobytes(),
                    zlib.crc32(feats.tobytes()),
                ),
            )
            key = int(cur.lastrowid)
            w.executemany(
                "INSERT INTO regions VALUES (?,?,?,?,?,?,?,?)",
                [
                    (key, i, *map(float, boxes[i]), int(areas[i]), np.asarray(c, dtype="<u4").tobytes())
                    for i, c in enumerate(counts)
                ],
            )
            seq = int(w.execute("INSERT INTO log (op, image_key) VALUES ('add', ?)", (key,)).lastrowid)
            w.execute("COMMIT")
        except BaseException:
            w.execute("ROLLBACK")
            raise
        return key, seq

    def remove_image(self, key: int) -> int:
        w = self._w
        w.execute("BEGIN IMMEDIATE")
        try:
            w.execute("DELETE FROM regions WHERE image_key = ?", (key,))
            w.execute("DELETE FROM images WHERE key = ?", (key,))
            seq = int(w.execute("INSERT INTO log (op, image_key) VALUES ('remove', ?)", (key,)).lastrowid)
            w.execute("COMMIT")
        except BaseException:
            w.execute("ROLLBACK")
            raise
        return seq

    def prune_log(self, upto_seq: int):
        with self._w:
            self._w.execute("DELETE FROM log WHERE seq <= ?", (upto_seq,))

    # --- reads -------------------------------------------------------------------------------

    def last_seq(self) -> int:
        rows = self._read("SELECT seq FROM sqlite_sequence WHERE name = 'log'")
        return int(rows[0][0]) if rows else 0

    def log_after(self, seq: int) -> list[tuple[int, str, int]]:
        return self._read("SELECT seq, op, image_key FROM log WHERE seq > ? ORDER BY seq", (seq,))

    def count_images(self) -> int:
        return int(self._read("SELECT COUNT(*) FROM images")[0][0])

    def count_regions(self) -> int:
        return int(self._read("SELECT COALESCE(SUM(n_regions), 0) FROM images")[0][0])

    def key_of(self, image_id: str) -> int | None:
        rows = self._read("SELECT key FROM images WHERE image_id = ?", (image_id,))
        return int(rows[0][0]) if rows else None

    def image_ids(self) -> dict[int, str]:
        """key -> image id of every image."""
        return dict(self._read("SELECT key, image_id FROM images"))

    def images(self, keys) -> dict[int, ImageRow]:
        keys = [int(k) for k in keys]
        out = {}
        for chunk in _chunks(keys, 500):
            marks = ",".join("?" * len(chunk))
            q = f"SELECT key, image_id, width, height, metadata, n_regions FROM images WHERE key IN ({marks})"
            for k, iid, w, h, meta, n in self._read(q, chunk):
                out[k] = ImageRow(k, iid, w, h, json.loads(meta), n)
        return out

    def regions(self, pairs) -> dict[tuple[int, int], RegionRow]:
        out = {}
        with self._readers.connection() as r:
            rows = [
                (
                    key,
                    region,
                    r.execute(
                        "SELECT x0, y0, x1, y1, area, rle FROM regions WHERE image_key = ? AND region = ?",
                        (int(key), int(region)),
                    ).fetchone(),
                )
                for key, region in pairs
            ]
        for key, region, row in rows:
            if row:
                out[(int(key), int(region))] = RegionRow(
                    int(key),
                    int(region),
                    np.array(row[:4], np.float32),
                    int(row[4]),
                    np.frombuffer(row[5], dtype="<u4").copy(),
                )
        return out

    def features_of(self, key: int) -> np.ndarray:
        rows = self._read("SELECT n_regions, features, crc FROM images WHERE key = ?", (int(key),))
        if not rows:
            return np.zeros((0, self.dim), np.float32)
        return self._vectors(int(key), *rows[0])

    def _vectors(self, key: int, n: int, blob: bytes, crc: int) -> np.ndarray:
        if zlib.crc32(blob) != crc or len(blob) != n * self.dim * self.dtype.itemsize:
            raise sqlite3.DatabaseError(f"the features of image key {key} fail their checksum")
        return np.frombuffer(blob, dtype=self.dtype).reshape(n, self.dim).astype(np.float32)

    def iter_features(self, keys=None, batch: int = 256):
        """Yields (key, N×dim float32) for every image (or the given keys), in key order.
        A batch at a time, each its own query: no reader stays lent while the caller works, so
        images added or removed meanwhile may show or not (callers that need one state hold
        write_lock)."""
        if keys is None:
            last = 0  # AUTOINCREMENT keys start at 1
            while rows := self._read(
                "SELECT key, n_regions, features, crc FROM images WHERE key > ? ORDER BY key LIMIT ?", (last, batch)
            ):
                for k, n, blob, crc in rows:
                    yield int(k), self._vectors(int(k), n, blob, crc)
                last = rows[-1][0]
        else:
            for k in keys:
                yield int(k), self.features_of(k)

    def filter_keys(self, prefix: str = "", metadata: dict | None = None) -> np.ndarray:
        """Keys of the images whose id starts with `prefix` and whose metadata has every key=value."""
        where, args = [], []
        if prefix:
            where.append("substr(image_id, 1, ?) = ?")
            args += [len(prefix), prefix]
        for k, v in (metadata or {}).items():
            where.append("json_extract(metadata, ?) = ?")
            args += ["$." + json.dumps(str(k)), str(v)]  # a JSON-quoted label: backslashes escaped
        q = "SELECT key FROM images" + (" WHERE " + " AND ".join(where) if where else "")
        return np.array([r[0] for r in self._read(q, args)], dtype=np.int64)

    def sample_keys(self, n: int, seed: int = 0) -> np.ndarray:
        keys = np.array([r[0] for r in self._read("SELECT key FROM images")], dtype=np.int64)
        if keys.size <= n:
            return keys
        return np.sort(np.random.default_rng(seed).choice(keys, n, replace=False))


def _chunks(seq, n):
    for i in range(0, len(seq), n):
        yield seq[i : i + n]
