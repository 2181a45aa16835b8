"""Region search index: FAISS over region features with SQLite as the durable source of truth
(RegionIndex, the embedded default), or Milvus (MilvusIndex, milvus.py); open_index picks by
location. Both are a Searching (searching.py): what the service, the queries and the
evaluation use."""

from regiond.index.config import INDEX_KINDS, IndexConfig
from regiond.index.embedded.region_index import RegionIndex
from regiond.index.hits import AddResult, ImageHit, IndexFileError, RegionHit, SearchFilter
from regiond.index.locations import open_index
from regiond.index.region_extractor import RegionExtractor
from regiond.index.searching import Searching

__all__ = [
    "INDEX_KINDS",
    "IndexConfig",
    "RegionIndex",
    "SearchFilter",
    "ImageHit",
    "RegionHit",
    "AddResult",
    "IndexFileError",
    "open_index",
    "RegionExtractor",
    "Searching",
]
