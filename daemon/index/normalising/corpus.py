"""The corpus feature normalisers are fitted on, and the statistics the package ships.

The corpus is generated, so every machine rebuilds the same one and no image of the user's
(or of an evaluation) leaks into it: CORPUS_IMAGES images of the synthetic collection
(collection.py: objects of six classes on smooth, striped, gradient or cluttered
backgrounds) with a seed no evaluation uses by default, cut into SLIC superpixels (the
lite profile's own regions) and pooled by the extractor's backbone. Superpixels rather than
the extractor's own masks keep the fit cheap for every profile (SAM would cost seconds an
image on a CPU); for lite they are exactly its regions.

Statistics for the lite profile ship in `normalisers/<features name>.npz`, so a new lite
index needs no fit; `regiond index fit-normaliser --profile lite` rebuilds that file (a test
checks it is what a fresh fit gives). Other extractors (DINOv2 with local weights, the tiny
test models) are fitted when an index is created, and the index records the result.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from regiond.index.normalising.normaliser import DEFAULT_KIND, DEFAULT_SHRINKAGE, IDENTITY, Normaliser, fit_normaliser
from regiond.index.region_extractor import RegionExtractor
from regiond.masks import build_masker
from regiond.scenes.annotated_images import synthetic_images

log = logging.getLogger(__name__)

CORPUS = "synthetic-collection/1"  # change when the corpus below changes
CORPUS_IMAGES = 400
CORPUS_SEED = 1000
CORPUS_SIZE = (160, 160)
SHIPPED_DIR = Path(__file__).with_name("normalisers")


def shipped_path(features_name: str) -> Path:
    """Where the package keeps the statistics of `features_name` ("lite/classic/mean")."""
    return SHIPPED_DIR / (features_name.replace("/", ".") + ".npz")


def corpus_features(
    extractor: RegionExtractor, images: int | None = None, seed: int = CORPUS_SEED, progress: bool = False
) -> np.ndarray:
    """N×D pooled features of the corpus's superpixels (its first `images`, default all)."""
    images = images or CORPUS_IMAGES
    slic = build_masker("slic")
    rows = []
    for rgb, _ in tqdm(
        synthetic_images(images, seed, CORPUS_SIZE),
        total=images,
        desc="normaliser corpus",
        unit="image",
        disable=not progress,
    ):
        rows.append(np.asarray(extractor.pool(rgb, slic(rgb).masks), np.float32))
    return np.concatenate(rows)


def fit_for(
    extractor: RegionExtractor,
    kind: str = DEFAULT_KIND,
    shrinkage: float = DEFAULT_SHRINKAGE,
    images: int | None = None,
    progress: bool = False,
) -> Normaliser:
    """A normaliser for the extractor's features, fitted on the generated corpus."""
    if kind == "none":
        return IDENTITY
    images = images or CORPUS_IMAGES
    feats = corpus_features(extractor, images, progress=progress)
    return fit_normaliser(
        feats,
        kind,
        shrinkage,
        fitted_on=(
            f"{extractor.features_name} superpixels of {images} generated images ({CORPUS}, seed {CORPUS_SEED}; "
            f"{len(feats)} regions)"
        ),
    )


def normaliser_for(extractor: RegionExtractor, kind: str = DEFAULT_KIND) -> Normaliser:
    """The normaliser a new index of this extractor's features gets: the shipped statistics
    when the package has them (default kind), else a fit on the corpus (logged: it runs the
    backbone over CORPUS_IMAGES small images, once per new index)."""
    path = shipped_path(extractor.features_name)
    if kind == DEFAULT_KIND and path.is_file():
        n = Normaliser.from_bytes(path.read_bytes(), where=str(path))
        if n.dim == extractor.dim:
            return n
        log.warning("%s is %s-d but the extractor gives %d-d features; fitting instead", path, n.dim, extractor.dim)
    t0 = time.perf_counter()
    log.info(
        "fitting a %s feature normaliser for %s on %d generated images (once per new index)",
        kind,
        extractor.features_name,
        CORPUS_IMAGES,
    )
    n = fit_for(extractor, kind)
    log.info("fitted in %.1f s: %s", time.perf_counter() - t0, n.describe())
    return n
