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
test models) are fitted when an index is created, and the index records the result; the fit
is kept in the user's cache (fitted.py), so the next new index of the same extractor and
weights reuses it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from tqdm import tqdm

from regiond.index.normalising.fitted import NormaliserCache
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
#: called before the first corpus image and after each with (images done, images in all); what it
#: raises ends the fit
OnImage = Callable[[int, int], None]


def shipped_path(features_name: str) -> Path:
    """Where the package keeps the statistics of `features_name` ("lite/classic/mean")."""
    return SHIPPED_DIR / (features_name.replace("/", ".") + ".npz")


def corpus_recipe(images: int | None = None) -> dict:
    """What the corpus of `images` images is (a fitted normaliser's cache key includes it)."""
    return {"name": CORPUS, "images": images or CORPUS_IMAGES, "seed": CORPUS_SEED, "size": list(CORPUS_SIZE)}


def corpus_features(
    extractor: RegionExtractor,
    images: int | None = None,
    seed: int = CORPUS_SEED,
    progress: bool = False,
    on_image: OnImage | None = None,
) -> np.ndarray:
    """N×D pooled features of the corpus's superpixels (its first `images`, default all).
    progress: a tqdm bar on stderr; on_image: see OnImage."""
    images = images or CORPUS_IMAGES
    slic = build_masker("slic")
    rows = []
    if on_image is not None:
        on_image(0, images)
    for i, (rgb, _) in enumerate(
        tqdm(
            synthetic_images(images, seed, CORPUS_SIZE),
            total=images,
            desc="normaliser corpus",
            unit="image",
            disable=not progress,
        )
    ):
        rows.append(np.asarray(extractor.pool(rgb, slic(rgb).masks), np.float32))
        if on_image is not None:
            on_image(i + 1, images)
    return np.concatenate(rows)


def fit_for(
    extractor: RegionExtractor,
    kind: str = DEFAULT_KIND,
    shrinkage: float = DEFAULT_SHRINKAGE,
    images: int | None = None,
    progress: bool = False,
    on_image: OnImage | None = None,
) -> Normaliser:
    """A normaliser for the extractor's features, fitted on the generated corpus."""
    if kind == "none":
        return IDENTITY
    images = images or CORPUS_IMAGES
    feats = corpus_features(extractor, images, progress=progress, on_image=on_image)
    return fit_normaliser(
        feats,
        kind,
        shrinkage,
        fitted_on=(
            f"{extractor.features_name} superpixels of {images} generated images ({CORPUS}, seed {CORPUS_SEED}; "
            f"{len(feats)} regions)"
        ),
    )


def normaliser_for(
    extractor: RegionExtractor,
    kind: str = DEFAULT_KIND,
    cache: NormaliserCache | None = None,
    on_image: OnImage | None = None,
) -> Normaliser:
    """The normaliser a new index of this extractor's features gets: the shipped statistics
    when the package has them (default kind), else the one fitted before for the same
    extractor and weights (`cache`, default the user's: fitted.py), else a fit on the corpus,
    which is then cached (logged: it runs the backbone over CORPUS_IMAGES small images)."""
    path = shipped_path(extractor.features_name)
    if kind == DEFAULT_KIND and path.is_file():
        n = Normaliser.from_bytes(path.read_bytes(), where=str(path))
        if n.dim == extractor.dim:
            return n
        log.warning("%s is %s-d but the extractor gives %d-d features; fitting instead", path, n.dim, extractor.dim)
    cache = cache or NormaliserCache()
    recipe = cache.recipe(extractor, kind, DEFAULT_SHRINKAGE, corpus_recipe())
    n = cache.load(recipe)
    if n is not None:
        log.info("reusing the cached feature normaliser %s: %s", cache.path_for(recipe), n.describe())
        return n
    t0 = time.perf_counter()
    log.info(
        "fitting a %s feature normaliser for %s on %d generated images (once for these weights: it is cached)",
        kind,
        extractor.features_name,
        CORPUS_IMAGES,
    )
    n = fit_for(extractor, kind, on_image=on_image)
    saved = cache.save(recipe, n)
    log.info(
        "fitted in %.1f s%s: %s",
        time.perf_counter() - t0,
        f", cached in {saved}" if saved else "",
        n.describe(),
    )
    return n
