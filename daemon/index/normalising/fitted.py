"""Fitted normalisers kept between starts, so a daemon fits its profile's once, not at every
new index: <user cache>/normalisers/<features name>-<key>.npz.

The key is a digest of everything the fit depends on: the features name (profile, backbone,
pooling) and dimension, the backbone's weights by content (extraction.fingerprint; "random
init" for the test models without a checkpoint), the normaliser kind and shrinkage, the corpus
recipe (its version, image count, seed and size) and the regiond version. A change in any of
them is another file, so a stale one is never used. A file that cannot be read or does not
hold a sound normaliser (its digest is checked) is fitted again with a warning, never a crash.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

from regiond import __version__
from regiond.core.atomic_files import write_atomic
from regiond.extraction.fingerprint import file_sha256, user_cache_dir
from regiond.index.normalising.normaliser import Normaliser
from regiond.index.region_extractor import RegionExtractor

log = logging.getLogger(__name__)

SUBDIR = "normalisers"


class NormaliserCache:
    """directory  where the files are (default: <user cache>/normalisers); the checkpoint
    digests are memoised in the user cache, or in `directory` when one is given"""

    def __init__(self, directory: str | Path | None = None):
        self.dir = Path(directory) if directory is not None else user_cache_dir() / SUBDIR
        self._memo_dir = self.dir if directory is not None else None

    def recipe(self, extractor: RegionExtractor, kind: str, shrinkage: float, corpus: dict) -> dict:
        """What a fit for this extractor depends on (the file name holds its digest)."""
        ckpt = extractor.weights.get("backbone")
        return {
            "features": extractor.features_name,
            "dim": int(extractor.dim),
            "backbone_weights": file_sha256(ckpt, self._memo_dir) if ckpt else "random init",
            "kind": kind,
            "shrinkage": float(shrinkage),
            "corpus": corpus,
            "regiond": __version__,
        }

    def path_for(self, recipe: dict) -> Path:
        key = hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:16]
        return self.dir / f"{recipe['features'].replace('/', '.')}-{key}.npz"

    def load(self, recipe: dict) -> Normaliser | None:
        """The normaliser fitted for `recipe`, or None (not cached yet, or a damaged file: warned)."""
        path = self.path_for(recipe)
        try:
            n = Normaliser.from_bytes(path.read_bytes(), where=str(path))
        except FileNotFoundError:
            return None
        except Exception as e:  # whatever a damaged file raises: a cache is never worth a failed start
            log.warning("the cached normaliser is unusable, fitting it again: %s: %s", path, e)
            return None
        if n.dim != recipe["dim"]:
            log.warning("the cached normaliser %s is %s-d, not %d-d; fitting it again", path, n.dim, recipe["dim"])
            return None
        return n

    def save(self, recipe: dict, normaliser: Normaliser) -> Path | None:
        """Keep `normaliser` for `recipe` (atomic write); None, with a warning, where it cannot be written."""
        path = self.path_for(recipe)
        try:
            return write_atomic(path, normaliser.to_bytes())
        except OSError as e:
            log.warning("cannot cache the fitted normaliser in %s (%s); the next new index fits it again", path, e)
            return None
