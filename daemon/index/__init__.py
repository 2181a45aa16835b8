"""Region search index: FAISS over region features, SQLite as the durable source of truth."""
from .config import INDEX_KINDS, IndexConfig
from .extractor import RegionExtractor
from .hits import AddResult, ImageHit, RegionHit, SearchFilter
from .region_index import RegionIndex, open_index
from .store import IndexFileError

__all__ = ["INDEX_KINDS", "IndexConfig", "RegionIndex", "SearchFilter", "ImageHit", "RegionHit",
           "AddResult", "IndexFileError", "open_index", "RegionExtractor"]
