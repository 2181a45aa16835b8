"""open_index: the region index at a location, whichever backend keeps it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from regiond.index.config import IndexConfig
from regiond.index.embedded.region_index import RegionIndex
from regiond.index.milvus.schema import is_milvus
from regiond.index.normalising.normaliser import Normaliser
from regiond.index.searching import Searching


def open_index(
    location: str | Path,
    dim: int | None = None,
    config: IndexConfig | None = None,
    features: str | None = None,
    normaliser: Normaliser | Callable[[], Normaliser] | None = None,
) -> Searching:
    """The region index at `location`: milvus://HOST:PORT[/COLLECTION][?...] or
    milvus-lite:PATH (milvus.MilvusIndex, see milvus_schema.py), else a directory (RegionIndex:
    FAISS over SQLite). The arguments are RegionIndex's."""
    if is_milvus(location):
        from regiond.index.milvus.backend import MilvusIndex  # pymilvus: only with a Milvus index

        return MilvusIndex(str(location), dim=dim, config=config, features=features, normaliser=normaliser)
    return RegionIndex(Path(location), dim=dim, config=config, features=features, normaliser=normaliser)
