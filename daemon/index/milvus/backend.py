"""MilvusIndex: the region index in Milvus (a server or cluster, or Milvus Lite in this
process), for collections past one machine and many daemons sharing one collection.

Everything a search answers comes from Milvus: vectors, image ids, boxes, areas, masks (RLE),
metadata (for filters too), counts; the daemon keeps nothing but a connection, so daemons
behind one load balancer answer alike. Layout and locations: schema.py; creating and checking
the collections: catalog.py.

Durability: add() returns once Milvus has acknowledged the upsert of the image's rows (one
call: the image row and every region row). A Milvus server acknowledges a write once it is in
its write-ahead log (the message queue: Woodpecker, Pulsar or Kafka), which it replays after
a crash; Milvus Lite writes its WAL file before it answers (flushed to the operating system,
fsynced when its memtable is flushed). So a `kill -9` of the daemon, of Lite with it, or of a
Milvus process loses nothing acknowledged; a power cut can lose Lite's last writes since its
last flush. close() (a daemon's graceful stop) flushes: Milvus seals the segments and Lite
fsyncs them. Writes from one daemon are serialised (Milvus Lite wants one writer a
collection); reads run in parallel.
"""

from __future__ import annotations

import logging
import threading
import time
import zlib
from collections.abc import Callable, Iterable

import numpy as np

from regiond.core.errors import InputError
from regiond.core.regionset import RegionSet
from regiond.index.config import IndexConfig
from regiond.index.hits import ImageHit, RegionHit, SearchFilter
from regiond.index.milvus.catalog import CONSISTENCY, check_meta, create_collections, read_meta, start_lite
from regiond.index.milvus.schema import (
    HIT_FIELDS,
    MAX_REGIONS,
    QUERY_PAGE,
    RAND_RANGE,
    MilvusLocation,
    decode_rle,
    encode_rle,
    filter_expr,
    literal,
    pk,
    vector_index,
)
from regiond.index.normalising.normaliser import Normaliser
from regiond.index.searching import Ranked, Searching

log = logging.getLogger(__name__)

COUNT_TTL = 1.0  # seconds the image/region counts are reused (own writes refresh them)
#: Milvus Lite searches rows it has not flushed (its memtable, up to 128 MB) one by one, about
#: 10x slower than its indexed segments: it is flushed every this many rows written
LITE_FLUSH_ROWS = 5000


class MilvusIndex(Searching):
    """Open (or create) the index at a Milvus location (milvus_schema.MilvusLocation).
    `dim`, `features`, `config` and `normaliser` as for RegionIndex: a new collection records
    them, an existing one is checked against them (another extractor's features are refused)."""

    max_regions = MAX_REGIONS

    def __init__(
        self,
        location: str,
        dim: int | None = None,
        config: IndexConfig | None = None,
        features: str | None = None,
        normaliser: Normaliser | Callable[[], Normaliser] | None = None,
    ):
        from pymilvus import MilvusClient  # heavy: only with a Milvus index

        self.location = MilvusLocation.parse(location)
        self._lite = None
        uri = self.location.uri
        if not uri:
            self._lite, uri = start_lite(self.location)
        try:
            self.client = MilvusClient(uri=uri, db_name=self.location.db, timeout=60)
            self.name, self.meta_name = self.location.collection, self.location.collection + "_meta"
            lite = self._lite is not None
            meta = read_meta(self.client, self.location) or create_collections(
                self.client, self.location, dim, config, features, normaliser, lite
            )
            check_meta(self.location, meta, dim, features)
            self.dim = int(meta["dim"])
            self.features = meta["features"]
            self.config = IndexConfig.from_dict(meta["config"])
            self.normaliser = meta["normaliser"]
            self.index_params, self.search_params = vector_index(self.config, self._lite is not None)
            self.client.load_collection(self.name)
        except BaseException:
            self._release()
            raise
        self.write_lock = threading.Lock()
        self._counts: tuple[float, int, int] | None = None
        self._unflushed = 0
        self._closed = False

    def normaliser_note(self) -> str:
        return self.normaliser.describe()

    def close(self) -> None:
        """Flush (Milvus persists the segments) and disconnect; stops Milvus Lite."""
        if getattr(self, "_closed", True):
            return
        self._closed = True
        try:
            self.client.flush(self.name)
        finally:
            self._release()

    def _release(self) -> None:
        if getattr(self, "client", None) is not None:
            self.client.close()
        if self._lite is not None:
            server, db = self._lite
            server.stop(grace=2).wait()
            db.close()
            self._lite = None

    # --- counts ----------------------------------------------------------------------------

    def _count(self, expr: str) -> int:
        return int(
            self.client.query(self.name, filter=expr, output_fields=["count(*)"], consistency_level=CONSISTENCY)[0][
                "count(*)"
            ]
        )

    def _cached_counts(self) -> tuple[int, int]:
        c = self._counts
        if c is None or time.monotonic() - c[0] > COUNT_TTL:
            c = self._counts = (time.monotonic(), self._count("region == -1"), self._count("region >= 0"))
        return c[1], c[2]

    def __len__(self) -> int:
        return self._cached_counts()[0]

    @property
    def num_regions(self) -> int:
        return self._cached_counts()[1]

    def __contains__(self, image_id: str) -> bool:
        return bool(self._get([pk(image_id, -1)], ["region"]))

    # --- writes ----------------------------------------------------------------------------

    def _write(self, image_id: str, regions: RegionSet, feats: np.ndarray, metadata: dict, on_exists: str) -> bool:
        vecs = self.prepare(feats)
        try:
            rles = [encode_rle(c) for c in regions.counts]
        except ValueError as e:
            raise InputError("regions", str(e)) from None
        common = {
            "image_id": image_id,
            "width": int(regions.width),
            "height": int(regions.height),
            "n_regions": len(feats),
            "metadata": metadata,
            "rand": int(zlib.crc32(image_id.encode()) * 2654435761 % RAND_RANGE),
        }
        rows = [
            {
                **common,
                "pk": pk(image_id, -1),
                "region": -1,
                "vector": [0.0] * self.dim,
                "raw": [],
                "box": [0.0, 0.0, float(regions.width), float(regions.height)],
                "area": 0,
                "rle": "",
            }
        ]
        rows += [
            {
                **common,
                "pk": pk(image_id, i),
                "region": i,
                "vector": vecs[i].tolist(),
                "raw": feats[i].tolist(),
                "box": [float(b) for b in regions.boxes[i]],
                "area": int(regions.areas[i]),
                "rle": rles[i],
            }
            for i in range(len(feats))
        ]
        with self.write_lock:
            old = self._image_row(image_id)
            if old is not None:
                if on_exists == "skip":
                    return False
                if on_exists != "replace":
                    raise InputError("image_id", f"{image_id!r} is already indexed")
            self.client.upsert(self.name, rows)  # one call: the acknowledgement (idempotent: daemons may race)
            if old is not None and old["n_regions"] > len(feats):
                self.client.delete(self.name, filter=f"image_id == {literal(image_id)} and region >= {len(feats)}")
            self._counts = None
            self._unflushed += len(rows)
            if self._lite is not None and self._unflushed >= LITE_FLUSH_ROWS:
                self.client.flush(self.name)
                self._unflushed = 0
        return True

    def remove(self, image_id: str) -> bool:
        with self.write_lock:
            if image_id not in self:
                return False
            self.client.delete(self.name, filter=f"image_id == {literal(image_id)}")
            self._counts = None
        return True

    def _image_row(self, image_id: str) -> dict | None:
        rows = self._get([pk(image_id, -1)], ["n_regions"])
        return rows[0] if rows else None

    # --- reads -----------------------------------------------------------------------------

    def _get(self, pks: list[str], fields: list[str]) -> list[dict]:
        """Rows by primary key (MilvusClient.get quotes keys in a way Milvus Lite misreads)."""
        return self._rows(f"pk in [{', '.join(literal(p) for p in pks)}]", fields, limit=len(pks))

    def _rows(self, expr: str, fields: list[str], limit: int = QUERY_PAGE) -> list[dict]:
        return self.client.query(
            self.name, filter=expr, output_fields=fields, limit=limit, consistency_level=CONSISTENCY
        )

    def _raw_features(self, image_id: str) -> np.ndarray | None:
        if image_id not in self:
            return None
        rows = sorted(
            self._rows(f"image_id == {literal(image_id)} and region >= 0", ["region", "raw"]), key=lambda r: r["region"]
        )
        return np.asarray([r["raw"] for r in rows], np.float32).reshape(len(rows), self.dim)

    def random_vectors(self, n: int, seed: int = 0, exclude: set[str] | None = None) -> np.ndarray:
        """Regions of the images whose `rand` falls in a window of the right width: each image
        is in it independently of what it shows (about n regions, a uniform sample)."""
        n = max(1, min(int(n), QUERY_PAGE))
        total = max(1, self.num_regions)
        width = RAND_RANGE if total <= n else int(RAND_RANGE * min(1.0, 1.5 * n / total))
        start = int(np.random.default_rng(seed).integers(0, RAND_RANGE - width + 1))
        expr = filter_expr(exclude=exclude or ()) + f" and rand >= {start} and rand < {start + width}"
        rows = self._rows(expr, ["raw"], limit=n)
        return np.asarray([r["raw"] for r in rows], np.float32).reshape(len(rows), self.dim)

    def _search(self, vectors: np.ndarray, limit: int, expr: str, fields: list[str], **kw) -> list:
        params = dict(self.search_params)
        if "ef" in params:
            params["ef"] = max(params["ef"], limit)
        return self.client.search(
            self.name,
            data=[v.tolist() for v in np.atleast_2d(vectors)],
            anns_field="vector",
            limit=min(limit, QUERY_PAGE),
            filter=expr,
            output_fields=fields,
            search_params={"metric_type": "IP", "params": params},
            consistency_level=CONSISTENCY,
            **kw,
        )

    def _nearest(self, q, k, per, flt: SearchFilter, exclude) -> list[ImageHit]:
        """The top-k images by their best region (_best_images); with more regions an image,
        each image's best `per` are scored exactly from its vectors. (Milvus Lite's
        group_size reads strict_group_size=False as true and fills groups from a short list:
        both would change what an image answers.)"""
        best = self._best_images(
            q, k, filter_expr(flt.image_id_prefix, flt.metadata, exclude), HIT_FIELDS if per == 1 else ["image_id"]
        )
        if per == 1:
            return [
                ImageHit(e["image_id"], s, int(e["width"]), int(e["height"]), dict(e["metadata"]), [_region_hit(s, e)])
                for e, s in best
            ]
        return self._hits(self._best_regions(q, [(e["image_id"], s) for e, s in best], per))

    def _best_images(self, q, k: int, expr: str, fields: list[str]) -> list[tuple[dict, float]]:
        """(best region's row, score) of the top-k images: Milvus's search grouped by image.
        Milvus Lite groups a short list of region hits (10·k), so when that left fewer than k
        images the region hits are widened 4× at a time and grouped here, as RegionIndex does."""
        res = self._search(q, k, expr, fields, group_by_field="image_id", group_size=1)[0]
        best = [(h["entity"], float(h["distance"])) for h in res]
        limit = max(64, 8 * k)
        while len(best) < k:
            hits = self._search(q, limit, expr, fields)[0]
            seen: dict[str, tuple[dict, float]] = {}
            for h in hits:  # in score order: an image's first hit is its best region
                seen.setdefault(h["entity"]["image_id"], (h["entity"], float(h["distance"])))
            if len(seen) > len(best):
                best = list(seen.values())[:k]
            if len(hits) < limit or limit == QUERY_PAGE:
                break  # every admissible region seen
            limit = min(QUERY_PAGE, limit * 4)
        return best

    def _prepared(self, image_ids: Iterable[str]) -> Iterable[tuple[str, np.ndarray]]:
        ids = sorted(image_ids)
        page = max(1, QUERY_PAGE // MAX_REGIONS)
        for i in range(0, len(ids), page):
            rows: dict[str, list] = {}
            expr = f"image_id in [{', '.join(literal(x) for x in ids[i : i + page])}] and region >= 0"
            for r in self._rows(expr, ["image_id", "region", "vector"]):
                rows.setdefault(r["image_id"], []).append((r["region"], r["vector"]))
            for image_id in ids[i : i + page]:
                if rows.get(image_id):
                    yield image_id, np.asarray([v for _, v in sorted(rows[image_id])], np.float32)

    def _candidates(self, q, n, flt, exclude):
        res = self._search(q, max(64, 8 * n), filter_expr(flt.image_id_prefix, flt.metadata, exclude), ["image_id"])
        return self._prepared({h["entity"]["image_id"] for row in res for h in row})

    def _everything(self):
        ids = [r["image_id"] for r in self._iterate("region == -1", ["image_id"])]
        return self._prepared(ids)

    def _iterate(self, expr: str, fields: list[str]) -> Iterable[dict]:
        it = self.client.query_iterator(self.name, filter=expr, output_fields=fields, batch_size=1000)
        try:
            while batch := it.next():
                yield from batch
        finally:
            it.close()

    def _best_scores(self, q) -> dict[str, float]:
        res = self._search(q, max(1, len(self)), filter_expr(), ["image_id"], group_by_field="image_id", group_size=1)
        return {h["entity"]["image_id"]: float(h["distance"]) for h in res[0]}

    def _hits(self, ranked: Ranked) -> list[ImageHit]:
        keys = [pk(i, -1) for i, _, _ in ranked] + [pk(i, r) for i, _, lst in ranked for r, _ in lst]
        rows = {}
        for j in range(0, len(keys), QUERY_PAGE):
            rows.update({r["pk"]: r for r in self._get(keys[j : j + QUERY_PAGE], ["pk", *HIT_FIELDS])})
        hits = []
        for image_id, score, lst in ranked:
            img = rows.get(pk(image_id, -1))
            if img is None:  # removed meanwhile
                continue
            regions = [_region_hit(s, rows[pk(image_id, r)]) for r, s in lst if pk(image_id, r) in rows]
            hits.append(
                ImageHit(image_id, score, int(img["width"]), int(img["height"]), dict(img["metadata"]), regions)
            )
        return hits


def _region_hit(score: float, e: dict) -> RegionHit:
    return RegionHit(
        int(e["region"]), float(score), np.asarray(e["box"], np.float32), int(e["area"]), decode_rle(e["rle"])
    )
