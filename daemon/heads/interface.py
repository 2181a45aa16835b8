"""What a served head looks like to the daemon: the interfaces daemon/service calls.

SceneLabeler: per-frame labels while a scene streams, then the scene transformer's refined
labels for every frame once the scene is complete.
ActivityScorer: class scores for a window of `window` (8) frames' RegionSets.
daemon/heads/serving.py implements both; the service only knows these types.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from regiond.core.frames import Frame
from regiond.core.regionset import RegionSet


@dataclass(frozen=True)
class HeadMeta:
    """What GetInfo reports about a head. class_ids are NYU40 ids for scene heads."""

    kind: str  # "scene" | "activity" | "segment"
    name: str
    class_ids: list[int] = field(default_factory=list)
    class_names: list[str] = field(default_factory=list)
    window: int = 0  # activity: frames per window
    # per head directory behind it: its config.json's meta.trained_on plus "head" (segment,
    # scene, activity); heads/trained_on.py
    trained_on: tuple = ()

    def names(self) -> dict[int, str]:
        return dict(zip(self.class_ids, self.class_names))


@dataclass
class FrameLabels:
    """Labels of one frame.

    region_labels  N class ids (-1 unknown), in the frame's region order
    region_scores  N×C probabilities in HeadMeta.class_ids order, or None
    label_map      H×W uint8 NYU40 ids, 0 = unlabelled (no region covers the pixel): painted
                   by `paint` when first read, so a scene's refined frames are painted one by
                   one as they are sent (a client's work on one overlaps the next's painting)
    """

    frame_index: int
    region_labels: np.ndarray
    region_scores: np.ndarray | None
    paint: Callable[[], np.ndarray] = field(repr=False)

    @functools.cached_property
    def label_map(self) -> np.ndarray:
        return self.paint()


class SceneLabeler(Protocol):
    meta: HeadMeta

    def new_scene(self) -> Any:
        """Fresh per-scene state (kept by the stream's session, freed with it)."""

    def label_frame(self, state: Any, frame: Frame, regions: RegionSet) -> FrameLabels:
        """Labels for one frame as it arrives; may also remember the frame's tokens in state."""

    def refine(self, state: Any) -> list[FrameLabels]:
        """After the last frame: labels for every frame with all frames' tokens in view."""


class ActivityScorer(Protocol):
    meta: HeadMeta  # window = frames per window (8)

    def score(self, frames: list[RegionSet]) -> np.ndarray:
        """C class probabilities (HeadMeta.class_ids order) for `meta.window` frames in order."""


@dataclass
class ServingHeads:
    scene: SceneLabeler | None = None
    activity: ActivityScorer | None = None

    def metas(self) -> list[HeadMeta]:
        return [h.meta for h in (self.scene, self.activity) if h is not None]
