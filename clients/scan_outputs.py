"""What scan_scene writes per frame, and its mIoU, done on a BackgroundWriter so that reading
the daemon's replies never waits on drawing, PNG encoding or the disk.

Memory stays bounded on long scenes: frames are not kept once their outputs are written;
for scoring, each frame keeps only its ground truth (zlib-compressed) and the confusion
counts of its latest prediction (the scene head's refined labels replace the per-frame ones
at the end of the scan).
"""

from __future__ import annotations

import argparse
import math
import zlib
from pathlib import Path

import numpy as np

from regiond.client.scan_progress import Progress
from regiond.client.writer import BackgroundWriter
from regiond.core.confusion import Confusion, EvalProtocol
from regiond.core.label_spaces import resize_nearest
from regiond.core.regionset import RegionSet
from regiond.core.rle import MaskPixels
from regiond.core.viz import colour_label_png, decode_label_png, encode_jpeg, labelled_overlay, overlay_regions

#: default --overlays: every frame of scenes up to this many frames; longer ones are
#: subsampled to about this many overlays: pictures to look at (a 640×480 one is about 0.5 MB
#: and takes about 9 ms of the client's CPU to draw and encode), where labels/ has every frame
AUTO_OVERLAYS = 100
UNKNOWN_LENGTH_STEP = 10  # default step when the scene's length is not known up front
#: overlays are pictures to look at, not data: JPEG at this quality with full-resolution colour
#: looks the same as PNG (38 dB PSNR on scan overlays) at a fifth of the time (2.2 against 11.4
#: ms at 640×480) and two thirds of the size; label maps stay PNG
OVERLAY_QUALITY = 95
OVERLAY_SUFFIX = ".jpg"


def parse_overlays(text: str) -> int | None:
    """--overlays: "none" → 0, "all" → 1, K → every K-th frame, "auto" → None (decided by
    the scene's length). Raises ValueError."""
    t = text.strip().lower()
    if t in ("auto", "none", "all"):
        return {"auto": None, "none": 0, "all": 1}[t]
    try:
        k = int(t.removeprefix("every").strip())
    except ValueError:
        k = 0
    if k < 1:
        raise ValueError(f"--overlays {text!r}: expected auto, none, all or a frame step K ≥ 1")
    return k


def add_overlays_arg(p: argparse.ArgumentParser) -> None:
    """scan_scene's --overlays (parsed by parse_overlays; overlay_step decides the step)."""

    def overlays(text: str) -> int | None:
        try:
            return parse_overlays(text)
        except ValueError as e:
            raise argparse.ArgumentTypeError(str(e)) from None

    p.add_argument(
        "--overlays",
        type=overlays,
        default=None,
        metavar="K|all|none|auto",
        help=f"which frames get an overlay (and a colour label picture): every K-th frame "
        f"scanned, all, none, or auto (default): all when the scene has up to "
        f"{AUTO_OVERLAYS} frames, else every K-th with K = ceil(frames / {AUTO_OVERLAYS}) "
        f"(about {AUTO_OVERLAYS} overlays, ~0.5 MB each at 640×480); every "
        f"{UNKNOWN_LENGTH_STEP}th when the length is unknown",
    )


def overlay_step(choice: int | None, frames: int | None) -> int:
    """Draw every step-th frame scanned (0: none), from --overlays and the scene's length."""
    if choice is not None:
        return choice
    if frames is None:
        return UNKNOWN_LENGTH_STEP
    return max(1, math.ceil(frames / AUTO_OVERLAYS))


def draws_overlay(position: int, step: int) -> bool:
    """Whether the position-th frame scanned (0-based) gets an overlay at overlay_step's `step`."""
    return step > 0 and position % step == 0


def overlay_picture(rgb: np.ndarray, regions: RegionSet, masks: MaskPixels | None = None) -> np.ndarray:
    """A frame's overlay: its regions in their class colours with a legend when a head labelled
    them, else each in its own colour; `masks`: the regions' pixels when already decoded."""
    if masks is None:
        masks = MaskPixels.from_counts(regions.counts, regions.height, regions.width)
    if regions.labels is None:
        return overlay_regions(rgb, masks, regions.source)
    names = regions.meta.get("label_names", {})
    return labelled_overlay(rgb, masks, regions.source, regions.labels.tolist(), names)


def overlay_bytes(picture: np.ndarray) -> bytes:
    """An overlay picture as the file scan_scene writes (OVERLAY_SUFFIX)."""
    return encode_jpeg(picture, OVERLAY_QUALITY)


class LabelScores:
    """ScanNet-20 scores (regiond.core.confusion, as `regiond eval labels` scores label folders)
    of the latest prediction of every frame that has ground truth."""

    def __init__(self):
        self.protocol = EvalProtocol.scannet20()
        self._truth: dict[int, bytes] = {}  # frame → compressed ground truth at 640×480 (uint8 ids)
        self._conf: dict[int, np.ndarray] = {}  # frame → confusion counts of its latest prediction

    def truth(self, idx: int, labels: np.ndarray) -> None:
        # resampled now (the protocol's resampling, so scoring it again is the identity) and kept
        # as uint8: ids past 255 are none of the 20 classes, and 255 is none either, so clipping
        # them there changes no score
        a = resize_nearest(labels, *self.protocol.size)
        self._truth[idx] = zlib.compress(np.clip(a, 0, 255).astype(np.uint8).tobytes(), 1)

    def has_truth(self, idx: int) -> bool:
        return idx in self._truth

    def predict(self, idx: int, labels: np.ndarray) -> None:
        """Score frame idx's latest prediction (its label map, decoded); nothing without truth."""
        if idx not in self._truth:
            return
        w, h = self.protocol.size
        truth = np.frombuffer(zlib.decompress(self._truth[idx]), np.uint8).reshape(h, w)
        conf = self.protocol.confusion()
        self.protocol.add(conf, truth, labels)
        self._conf[idx] = conf.counts.astype(np.int32)

    def confusion(self) -> Confusion | None:
        """The summed confusion of the frames scored, None when none were."""
        if not self._conf:
            return None
        conf = self.protocol.confusion()
        conf.counts = sum(c.astype(np.int64) for c in self._conf.values())
        return conf

    def result(self) -> dict | None:
        """summary.json's "miou": frames scored, mIoU, classes present, IoU per class."""
        conf = self.confusion()
        return None if conf is None else {"frames": len(self._conf), **conf.scores()}


class ScanOutputs:
    """The per-frame files of one scan under `out`, written by `writer`, kept across reconnects:
        overlays/NNNNNN.jpg          every `step`-th frame scanned (0: none)
        labels/<scene>_NNNNNN.png    every frame the daemon labels (benchmark layout)
        labels_color/NNNNNN.png      the same labels in colour, for the frames with overlays
    A frame's label map is written as it comes; the scene head's refined one replaces it at
    the end of the scan, and only the final one is coloured and scored (frames that never get
    a refined one: their own, at finish()).
    """

    def __init__(self, out: Path, scene_id: str, step: int, writer: BackgroundWriter, progress: Progress | None = None):
        self.out, self.scene_id, self.step, self.writer = out, scene_id, step, writer
        self.progress = progress
        self.resumed = set(progress.done) if progress else set()  # frames an earlier run wrote (--resume)
        self.scores = LabelScores()
        self.drawn: set[int] = set()  # frames whose overlay is written (or queued)
        self.pictured: set[int] = set()  # frames that get pictures (overlay, colour labels)
        self._unrefined: set[int] = set()  # frames with a per-frame label map only (writer thread)
        self._dirs: set[str] = set()

    def wants_picture(self, position: int) -> bool:
        """Whether the position-th frame scanned (0-based) gets an overlay."""
        return draws_overlay(position, self.step)

    def frame(
        self, idx: int, rgb: np.ndarray | None, regions: RegionSet, label_png: bytes, truth: np.ndarray | None
    ) -> None:
        """Queue a frame's outputs; rgb only for frames that get pictures. A frame an earlier
        run wrote (--resume) is only scored: its files are there."""
        written = idx in self.resumed
        if rgb is not None:
            self.pictured.add(idx)
            if idx not in self.drawn:
                self.drawn.add(idx)
                if not written:
                    self.writer.submit(self._overlay, idx, rgb, regions)
        if label_png:
            if truth is not None:
                self.writer.submit(self.scores.truth, idx, truth)
            if written:
                self.writer.submit(self._unrefined.add, idx)
            else:
                self.writer.submit(self._provisional_labels, idx, label_png)

    def frame_done(self, idx: int) -> None:
        """Queue the journal line saying frame idx's outputs are written (after its files)."""
        if self.progress is not None:
            self.writer.submit(self.progress.frame_done, idx)

    def refined(self, idx: int, png: bytes) -> None:
        """Queue a frame's final label map (the scene head's, after the last frame)."""
        self.writer.submit(self._final_labels, idx, png)

    def finish(self) -> None:
        """Queue the end of the scan: frames whose label map was never refined are coloured
        and scored from their per-frame one."""
        self.writer.submit(self._finish)

    def _dir(self, name: str) -> Path:
        d = self.out / name
        if name not in self._dirs:
            d.mkdir(parents=True, exist_ok=True)
            self._dirs.add(name)
        return d

    def _label_file(self, idx: int) -> Path:
        return self._dir("labels") / f"{self.scene_id}_{idx:06d}.png"

    def _overlay(self, idx: int, rgb: np.ndarray, regions: RegionSet) -> None:
        (self._dir("overlays") / f"{idx:06d}{OVERLAY_SUFFIX}").write_bytes(overlay_bytes(overlay_picture(rgb, regions)))

    def _provisional_labels(self, idx: int, png: bytes) -> None:
        self._label_file(idx).write_bytes(png)
        self._unrefined.add(idx)

    def _final_labels(self, idx: int, png: bytes) -> None:
        self._label_file(idx).write_bytes(png)
        self._unrefined.discard(idx)
        pictured, scored = idx in self.pictured, self.scores.has_truth(idx)
        labels = decode_label_png(png) if pictured or scored else None  # once, for both
        # the benchmark PNG holds raw ids (near black to the eye): a picture to look at beside it
        if pictured:
            (self._dir("labels_color") / f"{idx:06d}.png").write_bytes(colour_label_png(labels))
        if scored:
            self.scores.predict(idx, labels)

    def _finish(self) -> None:
        for idx in sorted(self._unrefined):
            self._final_labels(idx, self._label_file(idx).read_bytes())
