"""Masks carried across frames: full mask generation on keyframes only.

A MaskTracker belongs to one stream (a scene, a clip, a video). On a keyframe it runs the
stream's mask generator; on the frames after it, it carries the keyframe's masks instead:

- "depth" (RGB-D): every frame's pixels are matched with the keyframe's through depth and both
  poses, with the keyframe's depth as z-buffer (regiond.geometry.reproject), so the masks land
  on the same surfaces and nothing leaks onto what the keyframe did not see;
- "flow" (video): masks follow dense optical flow from frame to frame (flow.py).

Where the frame shows what the keyframe did not (it came into view, or was hidden), a carried
mask grows over the unseen part of every superpixel of the frame that it mostly holds (`grow`:
superpixels follow colour edges, so a floor extends as far as the floor does); what is still
uncovered is filled by SLIC by the paper's cover rule (cover.py), so a carried frame needs no
SAM at all. A new keyframe comes after `every` frames, or at once when
the carried masks cover less than `min_coverage` of what the keyframe's covered, or when a
frame cannot be carried to (a scene frame without depth or pose, another size, the frame after
a failed generation); every frame's CarryInfo says which it was and why. A keyframe whose
generator found nothing (SAM on a blank wall, a dark frame, a covered lens) has nothing to
lose: its frames are carried (coverage 1) and SLIC covers each of them, as it covered the
keyframe; carried masks that all shrink below MIN_CARRIED_AREA leave coverage 0.

Memory: only the last keyframe's masks and geometry (and, for flow, the last frame's carried
masks) are held; a keyframe replaces them and `close()` drops them.

Frames of a stream may be extracted on several worker threads at once: `ticket()` (taken in
stream order) makes a frame wait for its predecessors, so a carried frame always sees its
keyframe's masks.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import asdict, dataclass

import numpy as np

from regiond.core.errors import InputError
from regiond.core.frames import Frame
from regiond.geometry import DEFAULT_MAX_DEPTH
from regiond.geometry.reproject import DEPTH_TOLERANCE, carry_masks, correspondences
from regiond.masks.cover import SamSlicCover, cover
from regiond.masks.generator import MaskGenerator, MaskProposals
from regiond.masks.slic import SlicMasker

log = logging.getLogger(__name__)

CARRY_METHODS = ("depth", "flow")
#: Carried masks smaller than this (pixels) are dropped: slivers at the image border.
MIN_CARRIED_AREA = 64
#: The default share of the keyframe's coverage below which a carried frame becomes a keyframe.
DEFAULT_MIN_COVERAGE = 0.8


class CarryClosed(RuntimeError):
    """The tracker's stream ended while a frame waited for its turn."""


@dataclass(frozen=True)
class CarryConfig:
    """every         a keyframe at least every `every` frames (1: every frame, nothing carried)
    min_coverage  a carried frame whose masks cover less than this share of the pixels the
                  keyframe's masks covered becomes a keyframe itself
    method        "depth" (reprojection; RGB-D) or "flow" (optical flow; video)
    tolerance     relative depth difference still counted as the same surface ("depth")
    grow          let carried masks grow into unseen pixels by superpixels (needs a SLIC filler)"""

    every: int = 5
    min_coverage: float = DEFAULT_MIN_COVERAGE
    method: str = "depth"
    tolerance: float = DEPTH_TOLERANCE
    max_depth: float = DEFAULT_MAX_DEPTH
    grow: bool = True

    def __post_init__(self):
        if not isinstance(self.every, (int, np.integer)) or self.every < 1:
            raise InputError("carry.keyframe_every", f"must be a positive number of frames, got {self.every!r}")
        if not (np.isfinite(self.min_coverage) and 0.0 <= self.min_coverage <= 1.0):
            raise InputError("carry.min_coverage", f"must be between 0 and 1, got {self.min_coverage!r}")
        if self.method not in CARRY_METHODS:
            raise InputError("carry.method", f"unknown method {self.method!r}; known: {', '.join(CARRY_METHODS)}")


@dataclass(frozen=True)
class CarryInfo:
    """What happened to one frame's masks.

    keyframe        the masks were generated (True) or carried (False)
    keyframe_index  the frame index of the keyframe they come from
    coverage        carried frames: pixels the carried masks cover over those the keyframe's
                    masks covered (1 on keyframes)
    reason          why a keyframe: "first frame", "every 5 frames", "coverage 0.62 < 0.80",
                    "no depth", "no pose", ... ("" for carried frames)
    origin          carried frames: the keyframe region each of the frame's first len(origin)
                    regions was carried from (its index in the keyframe's RegionSet); the
                    regions after them are new SLIC pieces. Empty on keyframes."""

    keyframe: bool
    keyframe_index: int
    coverage: float = 1.0
    reason: str = ""
    origin: tuple[int, ...] = ()

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class _Key:
    """The state carried from: the keyframe's masks and what carrying needs of it."""

    frame: Frame
    masks: np.ndarray  # N×H×W bool: the generated masks (SAM's, not SLIC's pieces)
    source: np.ndarray
    scores: np.ndarray
    covered: float  # share of the keyframe's pixels in some mask
    prev_gray: np.ndarray | None = None  # flow: the last frame and its carried masks
    prev_masks: np.ndarray | None = None


def split_masker(masker: MaskGenerator) -> tuple[MaskGenerator, SlicMasker | None, int]:
    """(what runs on keyframes, what fills the gaps, the cover rule's minimum piece): a SAM+SLIC
    cover carries its SAM masks and fills with its SLIC; SLIC alone carries its superpixels
    and fills with new ones; anything else is carried alone."""
    if isinstance(masker, SamSlicCover):
        return masker.sam, masker.slic, masker.min_piece
    if isinstance(masker, SlicMasker):
        return masker, masker, 0
    return masker, None, 0


def _generate(key: MaskGenerator, frame: Frame) -> MaskProposals:
    """A frame-aware generator (the evaluation-only ground truth) gets the frame, others its pixels."""
    from_frame = getattr(key, "from_frame", None)
    return from_frame(frame) if from_frame is not None else key(frame.rgb)


class MaskTracker:
    """Carries one stream's masks between keyframes (see the module docstring)."""

    def __init__(self, config: CarryConfig):
        self.config = config
        self._key: _Key | None = None
        self._since = 0  # frames since the keyframe
        self._reason = "first frame"  # why the next frame must be a keyframe, if it must
        self._flow = None
        self._cond = threading.Condition()
        self._issued = 0
        self._next = 0
        self._released: set[int] = set()
        self._closed = False
        self.keyframes = 0
        self.frames = 0

    # --- ordering across worker threads ---------------------------------------------------------

    def ticket(self) -> CarryTicket:
        """The next frame's place in the stream (take tickets in stream order)."""
        with self._cond:
            seq, self._issued = self._issued, self._issued + 1
        return CarryTicket(self, seq)

    def _wait_turn(self, seq: int) -> None:
        with self._cond:
            while self._next != seq:
                if self._closed:
                    raise CarryClosed("the stream ended")
                self._cond.wait(0.05)

    def _release(self, seq: int) -> None:
        with self._cond:
            self._released.add(seq)
            while self._next in self._released:
                self._released.discard(self._next)
                self._next += 1
            self._cond.notify_all()

    def close(self) -> None:
        """Drop the carried state; frames still waiting for their turn raise CarryClosed."""
        with self._cond:
            self._closed = True
            self._key = None
            self._cond.notify_all()

    # --- carrying -------------------------------------------------------------------------------

    def propose(self, frame: Frame, masker: MaskGenerator) -> tuple[MaskProposals, CarryInfo]:
        """The masks of the stream's next frame (frames in order), with what was done.
        A generator error propagates and makes the next frame a keyframe; a fault in carrying
        itself is logged (naming the frame) and the frame's masks are generated instead.
        CarryClosed once the stream has ended (close())."""
        if self._closed:
            raise CarryClosed("the stream ended")
        self.frames += 1
        key, fill, min_piece = split_masker(masker)
        why = self._must_key(frame)
        if why is None:
            try:
                carried, why = self._carried(frame, fill, min_piece)
            except Exception as e:  # any fault here: the frame still gets masks
                if self._closed:  # close() dropped the keyframe under it: not a fault
                    raise CarryClosed("the stream ended") from e
                log.exception("carrying masks to frame %s failed; generating them instead", frame.index)
                carried, why = None, f"carrying failed: {type(e).__name__}"
            if carried is not None:
                return carried
        return self._keyframe(frame, key, fill, min_piece, why)

    def _carried(
        self, frame: Frame, fill: SlicMasker | None, min_piece: int
    ) -> tuple[tuple[MaskProposals, CarryInfo] | None, str | None]:
        """(the carried masks and their CarryInfo, None), or (None, why a keyframe instead)."""
        k = self._key
        labels = fill.labels(frame.rgb) if fill is not None else None
        if len(k.masks):
            masks, unseen = self._carry(frame)
            if labels is not None and self.config.grow:
                masks = grow(masks, unseen, labels)
        else:  # an empty keyframe (SAM found nothing): nothing to carry, the filler covers the frame
            masks = k.masks
        if self.config.method == "flow":
            k.prev_masks = masks
        keep = np.count_nonzero(masks, axis=(1, 2)) >= MIN_CARRIED_AREA
        masks = masks[keep]
        covered = float(masks.any(axis=0).mean()) if len(masks) else 0.0
        coverage = min(1.0, covered / k.covered) if k.covered > 0 else 1.0
        if coverage < self.config.min_coverage:
            return None, f"coverage {coverage:.2f} < {self.config.min_coverage:.2f}"
        self._since += 1
        props = MaskProposals(masks, k.source[keep], k.scores[keep])
        if labels is not None:
            props = cover(props, labels, min_piece)
        origin = tuple(np.flatnonzero(keep).tolist())
        return (props, CarryInfo(False, k.frame.index, round(float(coverage), 4), origin=origin)), None

    def _must_key(self, frame: Frame) -> str | None:
        k, c = self._key, self.config
        if k is None:
            return self._reason
        if self._since + 1 >= c.every:
            return f"every {c.every} frames"
        if frame.rgb.shape != k.frame.rgb.shape:
            return "frame size changed"
        if c.method == "depth":
            if frame.depth is None or frame.camera is None:
                return "no depth"
            if frame.pose is None:
                return "no pose"
            if k.frame.depth is None or k.frame.camera is None or k.frame.pose is None:
                return "keyframe had no depth or pose"
        return None

    def _keyframe(
        self, frame: Frame, key: MaskGenerator, fill: SlicMasker | None, min_piece: int, why: str
    ) -> tuple[MaskProposals, CarryInfo]:
        self._key, self._reason = None, "after a failed mask generation"
        generated = _generate(key, frame)
        masks = generated.masks.astype(bool, copy=False)
        covered = float(masks.any(axis=0).mean()) if len(generated) else 0.0
        k = _Key(
            frame=Frame(rgb=frame.rgb, depth=frame.depth, camera=frame.camera, pose=frame.pose, index=frame.index),
            masks=masks,
            source=generated.source,
            scores=generated.scores,
            covered=covered,
        )
        if self.config.method == "flow":
            from regiond.masks.flow import gray

            k.prev_gray, k.prev_masks = gray(frame.rgb), masks
        with self._cond:  # a stream that ended meanwhile keeps nothing (close() holds the same lock)
            if not self._closed:
                self._key, self._since, self._reason = k, 0, "first frame"
        self.keyframes += 1
        props = generated if fill is None or fill is key else cover(generated, fill.labels(frame.rgb), min_piece)
        return props, CarryInfo(True, frame.index, 1.0, why)

    def _carry(self, frame: Frame) -> tuple[np.ndarray, np.ndarray]:
        """The keyframe's N masks on this frame, and its pixels the keyframe did not see."""
        k, c = self._key, self.config
        if c.method == "depth":
            index = correspondences(
                k.frame.depth,
                k.frame.camera,
                k.frame.pose,
                frame.depth,
                frame.camera,
                frame.pose,
                max_depth=c.max_depth,
                tolerance=c.tolerance,
            )
            return carry_masks(k.masks, index), index < 0
        from regiond.masks.flow import FlowCarrier, gray

        if self._flow is None:
            self._flow = FlowCarrier()
        g = gray(frame.rgb)
        map_x, map_y = self._flow.backward_map(k.prev_gray, g)
        k.prev_gray = g
        h, w = g.shape
        unseen = (map_x < -0.5) | (map_x > w - 0.5) | (map_y < -0.5) | (map_y > h - 0.5)
        return self._flow.warp(k.prev_masks, map_x, map_y), unseen


def grow(
    masks: np.ndarray, unseen: np.ndarray, labels: np.ndarray, share: float = 0.5, min_seen: float = 0.25
) -> np.ndarray:
    """Carried N×H×W masks grown into the `unseen` pixels by superpixels (`labels`, H×W): a
    superpixel at least `min_seen` seen joins mask i over its unseen part when mask i holds at
    least `share` of its seen pixels."""
    if not len(masks) or not unseen.any():
        return masks
    flat = labels.reshape(-1)
    k = int(flat.max()) + 1
    seen = ~unseen.reshape(-1)
    size = np.bincount(flat, minlength=k)
    seen_size = np.bincount(flat[seen], minlength=k)
    where = np.flatnonzero(~seen)
    lab_unseen = flat[where]
    ok = seen_size >= min_seen * np.maximum(size, 1)
    out = masks.copy()
    flat_out = out.reshape(len(masks), -1)
    for i, m in enumerate(masks.reshape(len(masks), -1)):
        held = np.bincount(flat[m], minlength=k)
        take = ok & (held > 0) & (held >= share * seen_size)
        if take.any():
            flat_out[i, where[take[lab_unseen]]] = True
    return out


class CarryTicket:
    """One frame's turn in its stream: calling it waits for the frames before it, then
    carries or generates the masks; `release()` gives up the turn unused (a dropped job).
    Safe to release more than once."""

    def __init__(self, tracker: MaskTracker, seq: int):
        self.tracker, self.seq = tracker, seq
        self._done = False

    def __call__(self, frame: Frame, masker: MaskGenerator) -> tuple[MaskProposals, CarryInfo]:
        self.tracker._wait_turn(self.seq)
        try:
            return self.tracker.propose(frame, masker)
        finally:
            self.release()

    def release(self) -> None:
        if not self._done:
            self._done = True
            self.tracker._release(self.seq)
