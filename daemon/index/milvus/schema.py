"""How a region index lives in Milvus (milvus.MilvusIndex): where it is (MilvusLocation), the
collections' schemas, the vector index chosen by scale, rows and filter expressions.

A location is
    milvus://HOST:PORT[/COLLECTION][?index=auto|flat|hnsw|ivfpq&expected_regions=N&db=NAME]
        a Milvus server or cluster (Standalone, Distributed, Zilliz); any number of daemons
        may share one collection
    milvus-lite:PATH[?collection=NAME&index=...]
        Milvus Lite (the `milvus-lite` package: Milvus's engine running in this process, on
        the directory PATH); one process at a time

Two collections per index: COLLECTION holds one row per region and one per image (region
-1, carrying what a search answers about the image), COLLECTION_meta what the index is:
its format, feature width, the extractor that made the features, the index settings and the
feature normaliser (its bytes in chunks), so every daemon maps queries exactly as the
vectors were mapped.
"""

from __future__ import annotations

import base64
import math
import zlib
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

import numpy as np

from regiond.index.config import IndexConfig

FORMAT = "regiond.milvus/1"
SCHEMES = ("milvus://", "milvus-lite:")
DEFAULT_COLLECTION = "regiond_regions"
MAX_ID_BYTES = 2048  # image ids: 512 characters of up to 4 UTF-8 bytes
MAX_TEXT = 65535  # Milvus's VARCHAR limit
MAX_REGIONS = 1024  # per image: one insert, one query page of a few images
QUERY_PAGE = 16384  # Milvus's limit on one query's (or search's) rows
#: auto: HNSW (every vector and its graph in memory, the best recall per millisecond) up to
#: this many regions, then IVF-PQ (a code of dim/4 bytes a region, and no graph)
HNSW_MAX_REGIONS = 20_000_000
RAND_RANGE = 1 << 31  # each image's `rand`: a uniform sample of regions is a range of it
HIT_FIELDS = ["image_id", "region", "box", "area", "rle", "width", "height", "metadata"]


def is_milvus(location) -> bool:
    return isinstance(location, str) and location.startswith(SCHEMES)


@dataclass(frozen=True)
class MilvusLocation:
    """A parsed location (see the module docstring)."""

    uri: str | None  # http://HOST:PORT of a server; None for Milvus Lite
    lite_path: str | None  # Milvus Lite's data directory
    collection: str = DEFAULT_COLLECTION
    db: str = ""
    index: str = "auto"
    expected_regions: int = 0

    @classmethod
    def parse(cls, text: str) -> MilvusLocation:
        opts: dict = {}
        if text.startswith("milvus-lite:"):
            path, _, query = text[len("milvus-lite:") :].partition("?")
            if not path:
                raise ValueError(f"--index {text}: milvus-lite:PATH needs a directory")
            uri, lite, collection = None, path, None
        else:
            u = urlsplit(text)
            if not u.hostname or not u.port:
                raise ValueError(f"--index {text}: expected milvus://HOST:PORT[/COLLECTION]")
            uri, lite, collection, query = f"http://{u.hostname}:{u.port}", None, u.path.strip("/") or None, u.query
        for k, v in parse_qs(query, strict_parsing=bool(query)).items():
            opts[k] = v[-1]
        unknown = set(opts) - {"collection", "db", "index", "expected_regions"}
        if unknown:
            raise ValueError(
                f"--index {text}: unknown options {sorted(unknown)} (collection, db, index, expected_regions)"
            )
        index = opts.get("index", "auto")
        if index not in ("auto", "flat", "hnsw", "ivfpq"):
            raise ValueError(f"--index {text}: index={index!r}; one of auto, flat, hnsw, ivfpq")
        return cls(
            uri,
            lite,
            collection or opts.get("collection", DEFAULT_COLLECTION),
            opts.get("db", ""),
            index,
            int(float(opts.get("expected_regions", 0))),
        )

    def __str__(self) -> str:
        return f"milvus-lite:{self.lite_path}" if self.lite_path else f"milvus://{self.uri[7:]}/{self.collection}"

    def config(self, dim: int, base: IndexConfig | None) -> IndexConfig:
        """The settings of a new collection: `base` when given (its kind), else the kind this
        location asks for, `auto` choosing by the expected number of regions."""
        if base is not None:
            return base
        kind = self.index
        if kind == "auto":
            kind = "hnsw" if self.lite_path or self.expected_regions <= HNSW_MAX_REGIONS else "ivfpq"
        n = max(self.expected_regions, 1)
        nlist = int(min(65536, max(1024, 4 * math.sqrt(n))))
        pq_m = max(m for m in range(1, max(2, dim // 4) + 1) if dim % m == 0)  # ~4 dims a sub-quantiser
        return IndexConfig(kind=kind, nlist=nlist, pq_m=pq_m, nprobe=max(16, nlist // 64), refine="")


def vector_index(config: IndexConfig, lite: bool) -> tuple[dict, dict]:
    """(Milvus index parameters, search parameters) of an IndexConfig's kind. Metric IP: the
    vectors are prepared (normalised, then L2 for cosine) before they reach Milvus."""
    if config.kind == "flat":
        return {"index_type": "FLAT", "metric_type": "IP", "params": {}}, {}
    if config.kind == "hnsw":
        return (
            {
                "index_type": "HNSW",
                "metric_type": "IP",
                "params": {"M": config.hnsw_m, "efConstruction": config.ef_construction},
            },
            {"ef": config.ef_search},
        )
    if lite:
        raise ValueError(
            "Milvus Lite has no product-quantised indexes (IVF_PQ): use index=hnsw or flat there, or a Milvus server"
        )
    return (
        {
            "index_type": "IVF_PQ",
            "metric_type": "IP",
            "params": {"nlist": config.nlist, "m": config.pq_m, "nbits": config.pq_nbits},
        },
        {"nprobe": config.nprobe},
    )


def region_schema(client_cls, dim: int):
    """The regions collection: one row per region, plus one per image (region -1)."""
    from pymilvus import DataType  # heavy: only with a Milvus index

    s = client_cls.create_schema(auto_id=False, enable_dynamic_field=False)
    s.add_field("pk", DataType.VARCHAR, is_primary=True, max_length=MAX_ID_BYTES + 8)  # "<image id>#<region>"
    s.add_field("image_id", DataType.VARCHAR, max_length=MAX_ID_BYTES)
    s.add_field("region", DataType.INT64)  # -1: the image's own row
    s.add_field("vector", DataType.FLOAT_VECTOR, dim=dim)  # in the index's space (prepared)
    s.add_field("raw", DataType.ARRAY, element_type=DataType.FLOAT, max_capacity=max(1, dim))  # as extracted
    s.add_field("box", DataType.ARRAY, element_type=DataType.FLOAT, max_capacity=4)
    s.add_field("area", DataType.INT64)
    s.add_field("rle", DataType.VARCHAR, max_length=MAX_TEXT)  # COCO counts, zlib + base64
    s.add_field("width", DataType.INT64)
    s.add_field("height", DataType.INT64)
    s.add_field("n_regions", DataType.INT64)
    s.add_field("metadata", DataType.JSON)
    s.add_field("rand", DataType.INT64)  # per image: uniform in [0, RAND_RANGE)
    return s


def meta_schema(client_cls):
    """The meta collection: key → text (a vector field because Milvus wants one)."""
    from pymilvus import DataType  # heavy: only with a Milvus index

    s = client_cls.create_schema(auto_id=False, enable_dynamic_field=False)
    s.add_field("key", DataType.VARCHAR, is_primary=True, max_length=256)
    s.add_field("value", DataType.VARCHAR, max_length=MAX_TEXT)
    s.add_field("vec", DataType.FLOAT_VECTOR, dim=2)
    return s


# --- rows ------------------------------------------------------------------------------------


def pk(image_id: str, region: int) -> str:
    return f"{image_id}#{int(region)}"


def encode_rle(counts) -> str:
    text = base64.b64encode(zlib.compress(np.asarray(counts, "<u4").tobytes(), 6)).decode()
    if len(text) > MAX_TEXT:
        raise ValueError("a region's mask has too many runs for Milvus")
    return text


def decode_rle(text: str) -> np.ndarray:
    return (
        np.frombuffer(zlib.decompress(base64.b64decode(text)), "<u4").astype(np.uint32)
        if text
        else np.zeros(0, np.uint32)
    )


def chunks(data: bytes, size: int = 48 * 1024) -> list[str]:
    """Bytes as base64 texts that each fit a VARCHAR."""
    text = base64.b64encode(data).decode()
    return [text[i : i + size] for i in range(0, len(text), size)] or [""]


# --- filter expressions ----------------------------------------------------------------------

_ESCAPES = str.maketrans({"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t"})


def literal(text: str) -> str:
    """A string literal of Milvus's expression language (the escapes every Milvus reads:
    backslash, quote, newline, return, tab; anything else as it is)."""
    return '"' + str(text).translate(_ESCAPES) + '"'


def after_prefix(prefix: str) -> str | None:
    """The least string above every string starting with `prefix` (None: there is none)."""
    p = prefix.rstrip(chr(0x10FFFF))
    return p[:-1] + chr(ord(p[-1]) + 1) if p else None


def filter_expr(prefix: str = "", metadata: dict | None = None, exclude=(), regions: bool = True) -> str:
    """Regions (or image rows) whose image id starts with prefix, whose metadata holds every
    key = value, and whose image is not excluded."""
    parts = ["region >= 0" if regions else "region == -1"]
    if prefix:
        parts.append(f"image_id >= {literal(prefix)}")
        if (upper := after_prefix(prefix)) is not None:
            parts.append(f"image_id < {literal(upper)}")
    for k, v in (metadata or {}).items():
        parts.append(f"metadata[{literal(k)}] == {literal(v)}")
    if exclude:
        parts.append(f"image_id not in [{', '.join(literal(i) for i in sorted(exclude))}]")
    return " and ".join(parts)
