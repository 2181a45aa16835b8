"""Region search index: FAISS over region features with SQLite as the durable source of truth
(RegionIndex, the embedded default), or Milvus (MilvusIndex, milvus.py); open_index picks by
location. Both are a Searching (searching.py): what the service, the queries and the
evaluation use."""
from .config import INDEX_KINDS, IndexConfig
from .extractor import RegionExtractor
from .hits import AddResult, ImageHit, RegionHit, SearchFilter
from .region_index import RegionIndex, open_index
from .searching import Searching
from .store import IndexFileError

__all__ = ["INDEX_KINDS", "IndexConfig", "RegionIndex", "SearchFilter", "ImageHit", "RegionHit",
           "AddResult", "IndexFileError", "open_index", "RegionExtractor", "Searching"]
