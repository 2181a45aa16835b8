"""Extraction: frames → region tokens, one profile at a time, and token caches of them.

extractor.py     Extractor: masks, feature grid, pooled features, 3D geometry of one frame
profiles.py      profiles (paper, balanced, lite), weight discovery, build_extractor
cache.py         the token-cache format (manifest + one RegionSet .npz per frame)
extract_job.py   the one extraction loop: sources → a token cache (`regiond extract`), items
                 planned, extracted once and written atomically
pool.py          running a job's items in this process or on a pool of Ray actors (--ray);
                 light, so the CLI reads RayOptions' flags without loading the models

The names below load on first use, not with the package.
"""

from __future__ import annotations

__all__ = ["Extractor", "StageTimer", "PROFILES", "build_extractor", "resolve_profile"]


def __getattr__(name: str):
    if name in ("Extractor", "StageTimer"):
        from regiond.extraction import extractor  # torch: only when used

        return getattr(extractor, name)
    if name in __all__:
        from regiond.extraction import profiles  # torch: only when used

        return getattr(profiles, name)
    raise AttributeError(f"module 'regiond.extraction' has no attribute {name!r}")
