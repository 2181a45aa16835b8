"""Mask generators: SAM, SLIC superpixels, and the paper's SAM+SLIC cover.

`build_masker(spec)` is the one way to make a generator; every generator takes C-contiguous
H×W×3 uint8 RGB and returns `MaskProposals` (see base.py). torch and segment-anything are
imported only when a SAM generator is built.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from regiond.core.frames import DEFAULT_MAX_PIXELS
from regiond.masks.cover import SamSlicCover
from regiond.masks.generator import MaskGenerator, MaskProposals  # noqa: F401
from regiond.masks.sam import SAM_GENERATORS, build_sam_masker
from regiond.masks.sam_fast import FastOptions
from regiond.masks.slic import SlicConfig, SlicMasker

#: Pixels a SLIC piece (superpixel ∩ uncovered) needs to become a region (the paper's 300).
MIN_PIECE_PIXELS = 300


@dataclass(frozen=True)
class MaskerSpec:
    """What mask generator to build.

    kind            "slic" (superpixels only), "sam" (SAM masks only) or "sam+slic" (the
                    paper's cover: SAM masks, then SLIC pieces over what SAM left uncovered)
    sam_model       SAM encoder: "vit_h", "vit_l", "vit_b", or "tiny" (random, for tests)
    sam_checkpoint  official checkpoint file; None only for "tiny" (random initialisation)
    preset          SAM generator preset: "image", "scene" or "activity" (see sam.PRESETS)
    sam_overrides   SamAutomaticMaskGenerator parameters that replace the preset's
    sam_generator   "fast" (default: the same masks several times faster) or "reference"
                    (segment_anything's own SamAutomaticMaskGenerator)
    sam_fast        options of the fast generator (sam_fast.FastOptions; defaults are exact)
    slic            SLIC parameters (paper: 50 components, compactness 8)
    min_piece       pixels a SLIC piece needs to be kept (paper: 300)
    device          torch device SAM runs on
    seed            initialisation seed of the random "tiny" SAM
    max_pixels      larger images are refused with an InputError
    """

    kind: str = "slic"
    sam_model: str | None = None
    sam_checkpoint: str | Path | None = None
    preset: str = "image"
    sam_overrides: dict = field(default_factory=dict)
    sam_generator: str = "fast"
    sam_fast: FastOptions = field(default_factory=FastOptions)
    slic: SlicConfig = field(default_factory=SlicConfig)
    min_piece: int = MIN_PIECE_PIXELS
    device: str = "cpu"
    seed: int = 0
    max_pixels: int = DEFAULT_MAX_PIXELS

    def __post_init__(self):
        if self.sam_generator not in SAM_GENERATORS:
            raise ValueError(f"unknown SAM generator {self.sam_generator!r}; known: {', '.join(SAM_GENERATORS)}")

    @property
    def uses_sam(self) -> bool:
        return "sam" in self.kind.split("+")


def _build_slic(spec: MaskerSpec) -> MaskGenerator:
    return SlicMasker(spec.slic, max_pixels=spec.max_pixels)


def _build_sam(spec: MaskerSpec) -> MaskGenerator:
    return build_sam_masker(
        spec.sam_model,
        spec.sam_checkpoint,
        preset=spec.preset,
        overrides=spec.sam_overrides,
        device=spec.device,
        seed=spec.seed,
        max_pixels=spec.max_pixels,
        generator=spec.sam_generator,
        fast=spec.sam_fast,
    )


def _build_cover(spec: MaskerSpec) -> MaskGenerator:
    return SamSlicCover(
        _build_sam(spec),
        SlicMasker(spec.slic, max_pixels=spec.max_pixels),
        min_piece=spec.min_piece,
        max_pixels=spec.max_pixels,
    )


#: kind → builder. New generators register here.
MASKERS: dict[str, Callable[[MaskerSpec], MaskGenerator]] = {
    "slic": _build_slic,
    "sam": _build_sam,
    "sam+slic": _build_cover,
}


def build_masker(spec: MaskerSpec | str) -> MaskGenerator:
    """A mask generator from a spec (or a bare kind name: "slic", "sam", "sam+slic")."""
    if isinstance(spec, str):
        spec = MaskerSpec(kind=spec)
    try:
        builder = MASKERS[spec.kind]
    except KeyError:
        raise ValueError(f"unknown masker kind {spec.kind!r}; known: {sorted(MASKERS)}") from None
    return builder(spec)
