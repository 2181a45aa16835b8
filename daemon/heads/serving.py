"""Heads as the daemon serves them (the interfaces are daemon/heads/interface.py).

A heads directory holds up to three head directories written by `regiond train`:

    HEADS/segment/   per-frame region labels as frames arrive (region-mlp, region-linear, ...)
    HEADS/scene/     the scene transformer: refined labels for every frame at the end of a scene
    HEADS/activity/  the activity transformer: class scores for each window of 8 frames

`load_serving_heads(HEADS, extractor)` returns the daemon's ServingHeads: a SceneLabeler when
segment/ or scene/ is there, an ActivityScorer when activity/ is. Heads trained on tokens of
another backbone or feature width than the daemon's extractor are refused.

Plain-data use without the daemon:

    labeler = TrainedSceneLabeler.from_dir("heads")
    state = labeler.new_scene()
    for frame, regions in ...:
        labeler.label_frame(state, frame, regions).label_map     # H×W uint8 NYU40 ids
    refined = labeler.refine(state)                              # one FrameLabels per frame
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from regiond.core.label_spaces import UNLABELLED
from regiond.core.regionset import RegionSet
from regiond.extraction import Extractor
from regiond.heads.interface import FrameLabels, HeadMeta, ServingHeads
from regiond.heads.label_maps import pixel_labels
from regiond.heads.predict import clip_scores, frame_probs
from regiond.heads.registry import LoadedHead, load_head
from regiond.heads.trained_on import DEMO_NOTE, is_demonstration, summary

SUBDIRS = ("segment", "scene", "activity")
log = logging.getLogger(__name__)


def check_head_matches(head: LoadedHead, extractor: Extractor | None, where: Path) -> None:
    """Refuse a head trained on another profile's features (another profile, backbone, feature
    width or pooling than the extractor's), naming both profiles."""
    if extractor is None:
        return
    versions = head.meta.get("versions") or {}
    want = {
        "profile": extractor.profile,
        "backbone": extractor.backbone.name,
        "dim": int(extractor.dim),
        "pooling": getattr(extractor, "pooling", None),
    }
    diff = [k for k, v in want.items() if versions.get(k) is not None and v is not None and versions.get(k) != v]
    if int(getattr(head.model.config, "in_dim", want["dim"])) != want["dim"]:
        diff.append("dim")
    if diff:
        theirs = versions.get("profile")
        named = f"the {theirs} profile's" if theirs else "another profile's"
        raise ValueError(
            f"--heads: {where} was trained on {named} features ({_features(versions, head)}), this daemon "
            f"runs the {extractor.profile} profile ({_features(want, None)}); "
            + (f"serve it with --profile {theirs}, or " if theirs else "")
            + f"train it on a cache extracted with --profile {extractor.profile}"
        )


def _features(v: dict, head: LoadedHead | None) -> str:
    dim = v.get("dim") or (getattr(head.model.config, "in_dim", "?") if head is not None else "?")
    return f"{v.get('backbone') or '?'} {dim}-d, {v.get('pooling') or '?'} pooling"


@dataclass
class SceneState:
    """What a scene's labeler remembers between frames: each frame's index and regions."""

    frames: list = field(default_factory=list)  # (frame_index, RegionSet)


class TrainedSceneLabeler:
    """Per-frame NYU40 label maps from a segment head (or, without one, the scene head on the
    frame alone), and the scene transformer's refinement over all frames at the end."""

    def __init__(self, segment: LoadedHead | None = None, scene: LoadedHead | None = None):
        if segment is None and scene is None:
            raise ValueError("a SceneLabeler needs a segment or a scene head")
        self.segment, self.scene = segment, scene
        ids = sorted(set(segment.class_ids if segment else []) | set(scene.class_ids if scene else []))
        names = {}
        for h in (segment, scene):
            if h is not None:
                names.update(zip(h.class_ids, h.class_names))
        main = scene or segment
        self.meta = HeadMeta(
            kind="scene",
            name=main.name,
            class_ids=ids,
            class_names=[names[i] for i in ids],
            trained_on=tuple(_trained_on(k, h) for k, h in (("segment", segment), ("scene", scene)) if h is not None),
        )
        self._col = {c: k for k, c in enumerate(ids)}

    @classmethod
    def from_dir(cls, directory: str | Path, extractor: Extractor | None = None) -> TrainedSceneLabeler | None:
        d = Path(directory)
        heads = {}
        for kind in ("segment", "scene"):
            if (d / kind / "config.json").is_file():
                heads[kind] = load_head(d / kind)
                check_head_matches(heads[kind], extractor, d / kind)
        return cls(**heads) if heads else None

    def _scores(self, head: LoadedHead, probs: np.ndarray) -> np.ndarray:
        """Probabilities in the labeler's class order (classes the head lacks get 0)."""
        out = np.zeros((len(probs), len(self.meta.class_ids)), np.float32)
        out[:, [self._col[c] for c in head.class_ids]] = probs
        return out

    def _labels(self, frame_index: int, regions: RegionSet, scores: np.ndarray) -> FrameLabels:
        ids = np.asarray(self.meta.class_ids, np.int64)
        region_labels = ids[scores.argmax(1)] if len(regions) else np.zeros(0, np.int64)
        paint = functools.partial(pixel_labels, regions, scores, ids, UNLABELLED, np.uint8)
        return FrameLabels(frame_index, region_labels, scores, paint)

    def new_scene(self) -> SceneState:
        return SceneState()

    def label_frame(self, state: SceneState, frame, regions: RegionSet) -> FrameLabels:
        index = int(getattr(frame, "index", len(state.frames)))
        state.frames.append((index, regions))
        head = self.segment or self.scene
        probs = frame_probs(head.model, [regions], joint=False)[0]
        return self._labels(index, regions, self._scores(head, probs))

    def refine(self, state: SceneState) -> list[FrameLabels]:
        """Labels of every frame seen, with the scene transformer looking at all of them."""
        if not state.frames:
            return []
        frames = [r for _, r in state.frames]
        if self.scene is not None:
            probs = frame_probs(self.scene.model, frames, joint=True)
            head = self.scene
        else:
            probs = frame_probs(self.segment.model, frames, joint=False)
            head = self.segment
        return [self._labels(i, r, self._scores(head, p)) for (i, r), p in zip(state.frames, probs)]


def _trained_on(kind: str, head: LoadedHead) -> dict:
    """A head's trained_on record (empty when it has none) with its directory's kind."""
    rec = head.meta.get("trained_on")
    return {**(rec if isinstance(rec, dict) else {}), "head": kind}


class TrainedActivityScorer:
    """Class probabilities for a window of `window` frames' RegionSets (the clip length the head
    was trained on, from its config)."""

    def __init__(self, head: LoadedHead):
        self.head = head
        self.meta = HeadMeta(
            kind="activity",
            name=head.name,
            class_ids=head.class_ids,
            class_names=head.class_names,
            window=int(head.model.config.window),
            trained_on=(_trained_on("activity", head),),
        )

    @classmethod
    def from_dir(cls, directory: str | Path, extractor: Extractor | None = None) -> TrainedActivityScorer | None:
        d = Path(directory) / "activity"
        if not (d / "config.json").is_file():
            return None
        head = load_head(d)
        check_head_matches(head, extractor, d)
        return cls(head)

    def score(self, frames: list[RegionSet]) -> np.ndarray:
        if len(frames) != self.meta.window:
            raise ValueError(f"an activity window has {self.meta.window} frames, got {len(frames)}")
        return clip_scores(self.head.model, frames)

    def top(self, frames: list[RegionSet], k: int = 3) -> list[tuple[str, float]]:
        """The k most likely classes with their probabilities."""
        p = self.score(frames)
        return [(self.meta.class_names[i], float(p[i])) for i in np.argsort(-p)[:k]]


#: Heads shipped with the package, per extractor: pretrained/<backbone>-<dim>/{segment,scene,activity},
#: written by bench/heads_experiments.py on synthetic rooms and clips (docs/heads.md; figures in docs/benchmarks.md).
BUNDLED_DIR = Path(__file__).with_name("pretrained")
BUNDLED = "bundled"  # `--heads bundled`: the shipped heads for the daemon's extractor


def bundled_heads(extractor: Extractor) -> Path | None:
    """The shipped heads trained on this extractor's tokens, if there are any."""
    d = BUNDLED_DIR / f"{extractor.backbone.name}-{int(extractor.dim)}"
    return d if (d / "scene" / "config.json").is_file() else None


def load_serving_heads(directory: str | Path | None, extractor: Extractor | None = None) -> ServingHeads:
    """The daemon's entry point (`--heads DIR`): the heads found in `directory` (see the module
    docstring), or with "bundled" the ones shipped for the extractor; None serves regions
    only. Raises FileNotFoundError / ValueError."""
    if directory is None:
        return ServingHeads()
    if str(directory) == BUNDLED and not Path(directory).is_dir():
        found = bundled_heads(extractor) if extractor is not None else None
        if found is None:
            shipped = ", ".join(sorted(p.name for p in BUNDLED_DIR.iterdir() if p.is_dir())) or "none"
            name = f"{extractor.backbone.name}-{int(extractor.dim)}" if extractor is not None else "?"
            raise FileNotFoundError(
                f"--heads {BUNDLED}: no heads ship for this profile's features ({name}; "
                f"shipped: {shipped}); train some (regiond train) and pass --heads DIR"
            )
        directory = found
    d = Path(directory)
    if not d.is_dir():
        raise FileNotFoundError(f"--heads {d}: no such directory")
    heads = ServingHeads(
        scene=TrainedSceneLabeler.from_dir(d, extractor), activity=TrainedActivityScorer.from_dir(d, extractor)
    )
    if heads.scene is None and heads.activity is None:
        raise ValueError(f"--heads {d}: no scene or activity head found there")
    log_trained_on(heads, f"{BUNDLED} {d.name}" if d.parent == BUNDLED_DIR else d)
    return heads


def log_trained_on(heads: ServingHeads, where: Path | str) -> None:
    """Say at start what each served head learnt from, and that heads trained on generated data
    only are a demonstration."""
    records = [r for m in heads.metas() for r in m.trained_on]
    for r in records:
        log.info("heads: %s/%s %s", where, r["head"], summary(r if len(r) > 1 else None))
    if is_demonstration(records):
        log.warning("heads: the heads in %s were %s", where, DEMO_NOTE)
