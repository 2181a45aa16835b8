"""Generated rooms and their regions for the object map's tests (small frames, cached)."""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from regiond.masks.carry import CarryConfig, MaskTracker
from regiond.masks.truth import GroundTruthMasker
from regiond.scenes.synthetic import SyntheticScene

W, H = 160, 120


@lru_cache(maxsize=4)
def room_frames(seed: int = 5, frames: int = 48) -> tuple:
    """A loop around generated room `seed` in `frames` frames of W×H."""
    scene = SyntheticScene(seed, frames, W, H)
    return tuple(scene.frame(k) for k in range(frames))


@lru_cache(maxsize=1)
def lite_extractor():
    from regiond.extraction.profiles import build_extractor

    return build_extractor("lite")


def regions_of(frames, masker: str = "truth", every: int = 1) -> list:
    """The frames' RegionSets: the ground-truth masker ("truth") or lite's SLIC ("lite"),
    with masks carried between keyframes every `every` frames."""
    ex = lite_extractor()
    tracker = MaskTracker(CarryConfig(every=every))
    if masker == "truth":
        from dataclasses import replace

        ex = replace(ex, masker=GroundTruthMasker())
    return [ex.extract(f, carry=tracker.ticket()) for f in frames]


def true_classes(frames) -> dict[int, int]:
    """Instance id → NYU40 class of every object in the frames."""
    classes = {}
    for f in frames:
        inst, lab = f.meta["instances"], f.labels
        for i in np.unique(inst[inst > 0]).tolist():
            classes[i] = int(np.bincount(lab[inst == i]).argmax())
    return classes


def true_objects(frames) -> set[int]:
    """Instance ids of the objects of evaluated classes (not wall, floor, ceiling) in the frames."""
    return {i for i, c in true_classes(frames).items() if c not in (1, 2, 22)}
