"""Frame → RegionSet: masks, feature grid, pooled features and (with depth) 3D geometry.

One Extractor per profile; it is stateless between calls, so the service can share it
across streams.
"""

from __future__ import annotations

import time
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from functools import partial

import numpy as np
import torch

from regiond.core.errors import InputError
from regiond.core.frames import DEFAULT_MAX_PIXELS, Frame
from regiond.core.partition import Partition
from regiond.core.regionset import RegionSet
from regiond.core.timing import StageTimer
from regiond.extraction.working_size import at_size, working_frame
from regiond.features.backbone import Backbone
from regiond.features.partition_pooling import PartitionPooling
from regiond.features.pooling import pool_masks
from regiond.geometry import POINTS_KEY, region_geometry
from regiond.masks.carry import CarryClosed, CarryTicket
from regiond.masks.generator import MaskGenerationError, MaskGenerator, MaskProposals


@dataclass
class Extractor:
    """masker      mask generator (regiond.masks)
    backbone    feature grid of an image (regiond.features)
    pooling     "mean" (the paper) or "max"
    profile     the profile it was built from (recorded in every RegionSet)
    max_pixels  larger images are refused with an InputError
    max_depth   metres; farther depth counts as invalid
    weights     checkpoint file per model role ("masker", "backbone"); absent: no weights
    overlap     run the backbone on a helper thread while the masker runs (they are
                independent): for a masker and a backbone that are single-threaded CPU code
                releasing the GIL (lite's SLIC and classic), the features then cost no time
                beside the masks when a second core is free
    work_side   the working size: a frame with a longer side is processed (masks, features,
                pooling) with its long side at this size, and its masks returned at its own
                size (working_size.py); None: every frame at its own size"""

    masker: MaskGenerator
    backbone: Backbone
    pooling: str = "mean"
    profile: str = "custom"
    max_pixels: int = DEFAULT_MAX_PIXELS
    max_depth: float = 10.0
    weights: dict[str, str] = field(default_factory=dict)
    overlap: bool = False
    work_side: int | None = None
    _helper: ThreadPoolExecutor | None = field(default=None, init=False, repr=False, compare=False)

    @property
    def dim(self) -> int:
        return self.backbone.dim

    @property
    def features_name(self) -> str:
        """What produces the region features, e.g. "lite/classic/mean": features of another
        name do not compare (a token cache or an index refuses to mix them)."""
        return f"{self.profile}/{self.backbone.name}/{self.pooling}"

    @property
    def can_batch(self) -> bool:
        """Whether extract_batch does better than one extract per frame."""
        return hasattr(self.backbone, "batch")

    def extract(self, frame: Frame | np.ndarray, features: bool = True, carry: CarryTicket | None = None) -> RegionSet:
        """Region tokens of one frame (or a bare image). Raises InputError on bad input and
        MaskGenerationError when the mask generator fails.

        carry  the frame's turn in a stream whose masks are carried between keyframes
               (regiond.masks.carry): its masks come from there, and meta["carry"] says how"""
        if carry is None:
            return self._extract([frame], features)[0]
        try:
            frame = self._validated(frame)
        except BaseException:
            carry.release()  # its turn is given up: the frames after it go on
            raise
        timer = StageTimer()
        work = self._working(frame, timer)
        if features and self.overlap:
            return self._overlapped(frame, work, timer, carry)
        props, info = self._masks(work, timer, carry)
        grid = None
        if features:
            with timer.stage("features"):
                grid = self.backbone(work.rgb)
        return self._regions(frame, work, props, grid, timer, info)

    def extract_batch(self, frames: list, features: bool = True) -> list[RegionSet]:
        """Region tokens of several frames. Every frame is checked before any model runs, so
        one bad frame raises InputError without wasted work; backbones with a `batch` method
        (DINOv2) run frames of one size through the network together."""
        return self._extract(frames, features)

    def pool(self, frame: Frame | np.ndarray, masks: np.ndarray) -> np.ndarray:
        """N×D float32 features of the given N×H×W masks of the image, by the same backbone,
        size cap and pooling as extract(): how a query mask compares with indexed regions."""
        frame = self._validated(frame)
        with torch.inference_mode():
            return pool_masks(self.backbone(frame.rgb), masks, mode=self.pooling).float().cpu().numpy()

    def _validated(self, frame: Frame | np.ndarray) -> Frame:
        """The frame checked once: a Frame validated at its boundary (e.g. the service's request
        conversion) passes as it is."""
        return (frame if isinstance(frame, Frame) else Frame(rgb=frame)).validated(self.max_pixels)

    def _extract(self, frames: list, features: bool) -> list[RegionSet]:
        frames = [self._validated(f) for f in frames]
        timers = [StageTimer() for _ in frames]
        works = [self._working(f, t) for f, t in zip(frames, timers)]
        if features and self.overlap:
            return [self._overlapped(f, w, t) for f, w, t in zip(frames, works, timers)]
        props = [self._masks(work, timer)[0] for work, timer in zip(works, timers)]
        grids = [None] * len(frames)
        if features:
            batch = getattr(self.backbone, "batch", None)
            if batch is not None and len(frames) > 1:
                t0 = time.perf_counter()
                grids = batch([w.rgb for w in works])
                share = (time.perf_counter() - t0) / len(frames)
                for timer in timers:
                    timer.seconds["features"] = share
            else:
                for i, (work, timer) in enumerate(zip(works, timers)):
                    with timer.stage("features"):
                        grids[i] = self.backbone(work.rgb)
        return [self._regions(*args) for args in zip(frames, works, props, grids, timers)]

    def _working(self, frame: Frame, timer: StageTimer) -> Frame:
        """The frame at the working size (itself when it is no larger)."""
        if self.work_side is None or max(frame.height, frame.width) <= self.work_side:
            return frame
        with timer.stage("resize"):
            return working_frame(frame, self.work_side)

    def _masks(
        self, frame: Frame, timer: StageTimer, carry: CarryTicket | None = None
    ) -> tuple[MaskProposals, dict | None]:
        """The frame's masks (generated, or carried by `carry`) and how they were made. A
        failure of the generator itself (not bad input) becomes MaskGenerationError."""
        with timer.stage("masks"):
            try:
                if carry is None:
                    return self.masker(frame.rgb), None
                props, info = carry(frame, self.masker)
                return props, info.as_dict()
            except (InputError, CarryClosed):
                raise
            except Exception as e:
                raise MaskGenerationError(f"{type(e).__name__}: {e}") from e

    def _overlapped(self, frame: Frame, work: Frame, timer: StageTimer, carry: CarryTicket | None = None) -> RegionSet:
        """Masks here and features on the helper thread at the same time; each stage's time
        is its own (they overlap)."""
        if self._helper is None:
            self._helper = ThreadPoolExecutor(max_workers=1, thread_name_prefix="regiond-features")

        def grid():
            with timer.stage("features"):
                return self.backbone(work.rgb)

        pending = self._helper.submit(grid)
        try:
            props, info = self._masks(work, timer, carry)
        except BaseException:
            wait([pending])  # no work left behind; the masker's error is the one raised
            raise
        return self._regions(frame, work, props, pending, timer, info)

    def _pooling(self, frame: Frame, regions):
        """Pooling of `regions` as a function of the feature grid. For a partition, mean
        pooling and a backbone that knows its grid's layout (classic), the weights are
        prepared now: with overlap, while the backbone is still running."""
        layout = getattr(self.backbone, "layout", None)
        if self.pooling == "mean" and isinstance(regions, Partition) and layout is not None:
            return PartitionPooling.of(layout(frame.height, frame.width), regions)
        return partial(pool_masks, masks=regions, mode=self.pooling)

    def _regions(
        self, frame: Frame, work: Frame, props, grid, timer: StageTimer, carry: dict | None = None
    ) -> RegionSet:
        """grid: the FeatureGrid, None (no features), or a Future of it (the backbone on the
        helper thread): what needs no features (RLE, boxes, pooling weights) is done first.
        Pooling reads the masks at the working size (`work`, the grid's image); the RegionSet
        and the 3D statistics have them at the frame's own size."""
        masks = props.regions
        if work is not frame:
            with timer.stage("resize"):
                masks = at_size(masks, frame.height, frame.width)
        regions = RegionSet.from_masks(
            masks,
            source=props.source,
            scores=props.scores,
            meta={
                "profile": self.profile,
                "masker": self.masker.name,
                "backbone": self.backbone.name,
                "frame_index": frame.index,
                "time": frame.time,
            },
        )
        if grid is not None:
            with timer.stage("pooling"):
                pool = self._pooling(work, props.regions)
            grid = grid.result() if isinstance(grid, Future) else grid
            with timer.stage("pooling"):
                regions.features = pool(grid).cpu().numpy()
        if frame.depth is not None and frame.camera is not None:
            with timer.stage("geometry"):
                geo = region_geometry(masks, frame.depth, frame.camera, frame.pose, max_depth=self.max_depth)
            regions.centroids, regions.extents = geo.centroids, geo.extents
            regions.valid_depth, regions.point_count = geo.valid_fraction, geo.point_count
            if POINTS_KEY in frame.meta:  # asked for (a scene stream's fusion): back-projected once
                frame.meta[POINTS_KEY] = geo.points
        if carry is not None:
            regions.meta["carry"] = carry
        regions.meta["seconds"] = timer.seconds
        return regions
