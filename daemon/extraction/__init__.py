"""Extraction: frames → region tokens, one profile at a time, and token caches of them.

extractor.py  Extractor: masks, feature grid, pooled features, 3D geometry of one frame
profiles.py   profiles (paper, balanced, lite), weight discovery, build_extractor
cache.py      the token-cache format (manifest + one RegionSet .npz per frame)
jobs.py       the one extraction loop: sources → a token cache (`regiond extract`), items
              planned, extracted once and written atomically
pool.py       running a job's items in this process or on a pool of Ray actors (--ray)
"""

from regiond.extraction.extractor import Extractor, StageTimer
from regiond.extraction.profiles import PROFILES, build_extractor, resolve_profile

__all__ = ["Extractor", "StageTimer", "PROFILES", "build_extractor", "resolve_profile"]
