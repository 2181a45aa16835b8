"""A Milvus region index's collections: starting Milvus Lite, creating the region and meta
collections, and reading and checking what the meta collection records (MilvusIndex opens
with these)."""

from __future__ import annotations

import base64
import json
import logging
import zlib

from regiond.index.hits import IndexFileError
from regiond.index.milvus.schema import (
    FORMAT,
    QUERY_PAGE,
    MilvusLocation,
    chunks,
    meta_schema,
    region_schema,
    vector_index,
)
from regiond.index.normalising.normaliser import IDENTITY, Normaliser

log = logging.getLogger(__name__)

CONSISTENCY = "Session"  # a daemon reads its own writes; others' within Milvus's staleness bound


def start_lite(location: MilvusLocation) -> tuple[tuple, str]:
    """Milvus Lite in this process for a milvus-lite:PATH location: (its server and db, its uri)."""
    from milvus_lite import DataDirLockedError  # heavy: only with Milvus Lite
    from milvus_lite.adapter.grpc.server import start_server_in_thread

    try:
        server, db, port = start_server_in_thread(location.lite_path, host="127.0.0.1", port=0)
    except DataDirLockedError:
        raise IndexFileError(f"{location.lite_path} is open in another process (Milvus Lite's lock is held)") from None
    return (server, db), f"http://127.0.0.1:{port}"


def read_meta(client, location: MilvusLocation) -> dict | None:
    """The meta collection's records, None when there is no index yet."""
    meta_name = location.collection + "_meta"
    if not client.has_collection(meta_name):
        return None
    client.load_collection(meta_name)
    rows = {
        r["key"]: r["value"]
        for r in client.query(meta_name, filter='key != ""', limit=QUERY_PAGE, output_fields=["key", "value"])
    }
    if rows.get("format") != FORMAT or "complete" not in rows:
        raise IndexFileError(
            f"{location}: collection {meta_name} is not a complete regiond index "
            f"(format {rows.get('format')!r}); left untouched"
        )
    data = "".join(rows[f"normaliser.{i}"] for i in range(int(rows["normaliser.parts"])))
    raw = base64.b64decode(data)
    if zlib.crc32(raw) != int(rows["normaliser.crc"]):
        raise IndexFileError(f"{location}: the feature normaliser recorded in {meta_name} is damaged")
    return {
        "dim": int(rows["dim"]),
        "features": rows["features"],
        "config": json.loads(rows["config"]),
        "normaliser": Normaliser.from_bytes(raw, where=f"{location} normaliser"),
    }


def create_collections(client, location: MilvusLocation, dim, config, features, normaliser, lite: bool) -> dict:
    """A new index: its region collection and its meta collection (written last, "complete")."""
    name, meta_name = location.collection, location.collection + "_meta"
    if dim is None:
        raise ValueError("a new index needs the feature dimension")
    if dim > 4096:
        raise ValueError(f"Milvus keeps raw features as arrays of at most 4096 numbers, not {dim}")
    norm = (normaliser() if callable(normaliser) else normaliser) or IDENTITY
    cfg = location.config(int(dim), config)
    params, _ = vector_index(cfg, lite)  # refuses what this Milvus cannot build
    c = client
    ip = c.prepare_index_params()
    ip.add_index(field_name="vec", index_type="FLAT", metric_type="L2")
    _create_collection(c, meta_name, meta_schema(type(c)), ip, "Strong")
    ip = c.prepare_index_params()
    ip.add_index(field_name="vector", **params)
    for field in ("image_id", "region", "rand"):
        ip.add_index(field_name=field, index_type="INVERTED")
    _create_collection(c, name, region_schema(type(c), int(dim)), ip, CONSISTENCY)
    data = norm.to_bytes()
    parts = chunks(data)
    rows = {
        "format": FORMAT,
        "dim": str(int(dim)),
        "features": features or "",
        "config": json.dumps(cfg.to_dict()),
        "normaliser.parts": str(len(parts)),
        "normaliser.crc": str(zlib.crc32(data)),
        **{f"normaliser.{i}": t for i, t in enumerate(parts)},
    }
    rows["complete"] = "1"
    c.upsert(meta_name, [{"key": k, "value": v, "vec": [0.0, 0.0]} for k, v in rows.items()])
    c.flush(meta_name)
    log.info("%s: new region index (%s, %d-d, %s)", location, cfg.kind, dim, params["index_type"])
    return {"dim": int(dim), "features": features or "", "config": cfg.to_dict(), "normaliser": norm}


def _create_collection(client, name: str, schema, index_params, consistency: str) -> None:
    # the indexes are built as segments fill: no need to wait (pymilvus polls every 0.5 s)
    client.create_collection(name, schema=schema, consistency_level=consistency)
    client.create_index(name, index_params, sync=False)
    client.load_collection(name)


def check_meta(location: MilvusLocation, meta: dict, dim, features) -> None:
    """Refuse an index whose features or dimension differ from the extractor's."""
    if features and meta["features"] and meta["features"] != features:
        raise IndexFileError(
            f"{location} holds {meta['features']} features but this extractor gives "
            f"{features}; their scores do not compare: use another collection or the matching profile"
        )
    if dim is not None and int(dim) != meta["dim"]:
        raise IndexFileError(
            f"{location} holds {meta['dim']}-d features but the extractor gives {dim}-d; "
            "use another collection or the matching profile"
        )
