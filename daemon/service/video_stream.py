"""StreamVideo: regions for every frame and, with an activity head, scores for its windows.

Which frames a window holds is the activity head's rule (regiond.heads.windows); a client may
widen the span and change the step with its stream's VideoOptions on the first frame.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import grpc
import numpy as np

from regiond.api.v1 import regions_pb2 as pb
from regiond.core.frames import Frame
from regiond.core.regionset import RegionSet
from regiond.heads.interface import ActivityScorer
from regiond.heads.windows import DEFAULT_WINDOW_SECONDS, MAX_WINDOW_SECONDS, ActivityWindows, TimeWindows
from regiond.service.convert import frame_error_pb, region_set_pb, video_frame
from regiond.service.streams import (
    OptionsError,
    Pending,
    StreamDeps,
    StreamSession,
    carry_tracker,
    frame_index,
    output_of,
)
from regiond.service.wire import check_parsed


class VideoSession(StreamSession):
    """scorer       the activity head (None: regions only)
    window_step  frames between scored windows unless the client asks for another step"""

    kind = "video"
    method = "StreamVideo"

    def __init__(
        self,
        deps: StreamDeps,
        scorer: ActivityScorer | None,
        window_step: int,
        request_iterator: Iterator[pb.VideoFrame],
        context: grpc.ServicerContext,
    ):
        super().__init__(deps, request_iterator, context)
        self.scorer = scorer
        self.window_step = window_step
        self.output = pb.OutputOptions()
        self.windows: ActivityWindows | TimeWindows | None = None
        self._arrival0: float | None = None
        self._source_clock = False

    def decode(self, req: pb.VideoFrame, index: int) -> Frame:
        check_parsed(req)
        if index == 0:
            self.output = req.output
            self.live, seconds = live_options(req.options)
            self.tracker = carry_tracker(req.options, "flow")
            if self.scorer is not None:
                step = int(req.options.window_step) or self.window_step
                if self.live:
                    self.windows = TimeWindows(self.scorer.meta.window, seconds, step)
                else:
                    self.windows = ActivityWindows(self.scorer.meta.window, int(req.options.window_span) or None, step)
        frame = video_frame(req, self.limits, frame_index(req, index))
        if self.live:
            frame.time = self.clock(req)
        return frame

    def clock(self, req: pb.VideoFrame) -> float:
        """A live frame's time: the source's (VideoFrame.time) once the stream's frames carry
        one, else seconds since the stream's first frame arrived (a first frame at time 0 is
        the start of both clocks)."""
        now = time.perf_counter()
        if self._arrival0 is None:
            self._arrival0 = now
        if req.time:
            self._source_clock = True
        return float(req.time) if self._source_clock else now - self._arrival0

    def respond(self, p: Pending, regions: RegionSet) -> pb.VideoUpdate:
        idx = p.frame.index
        up = pb.VideoUpdate(frame_index=idx, regions=region_set_pb(regions, output_of(p.request, self.output), idx))
        up.skipped.extend(self.take_skipped())
        if self.windows is not None:
            if self.live:
                chosen = self.windows.push(idx, p.frame.time, regions)
            else:
                chosen = self.windows.push(idx, regions)
            if chosen is not None:
                up.windows.append(self._score(chosen))
        up.server_seconds = time.perf_counter() - p.t0
        return up

    def _score(self, chosen: list[tuple[int, RegionSet]]) -> pb.ActivityWindow:
        scorer = self.scorer
        probs = np.asarray(self.call(lambda: scorer.score([r for _, r in chosen]), "activity"), np.float64)
        meta = scorer.meta
        w = pb.ActivityWindow(start_frame=chosen[0][0], end_frame=chosen[-1][0], frame_indices=[i for i, _ in chosen])
        if self.live:
            w.start_time, w.end_time = self.windows.span
        for k in np.argsort(-probs, kind="stable"):
            w.scores.add(id=int(meta.class_ids[k]), name=str(meta.class_names[k]), score=float(probs[k]))
        return w

    def respond_error(self, p: Pending) -> pb.VideoUpdate:
        return pb.VideoUpdate(
            frame_index=p.number,
            error=frame_error_pb(p.error, p.code),
            server_seconds=time.perf_counter() - p.t0,
            skipped=self.take_skipped(),
        )

    def stats(self) -> dict[str, Any]:
        return {**super().stats(), "windows": self.windows.scored if self.windows else 0}

    def release(self) -> None:
        super().release()
        if self.windows is not None:
            self.windows.clear()


def live_options(options: pb.VideoOptions) -> tuple[bool, float]:
    """(live, window seconds) of a stream's VideoOptions; OptionsError for values it cannot be
    served with."""
    seconds = float(options.window_seconds)
    if not options.live:
        if seconds:
            raise OptionsError(
                "options.window_seconds", "only for live streams (set options.live; window_span counts frames)"
            )
        return False, 0.0
    if options.window_span:
        raise OptionsError("options.window_span", "counts frames; a live stream's windows span window_seconds")
    if seconds == 0:
        return True, DEFAULT_WINDOW_SECONDS
    if not (np.isfinite(seconds) and 0 < seconds <= MAX_WINDOW_SECONDS):
        raise OptionsError(
            "options.window_seconds",
            f"must be more than 0 and at most {MAX_WINDOW_SECONDS:g} seconds (0: {DEFAULT_WINDOW_SECONDS:g}), "
            f"got {seconds:g}",
        )
    return True, seconds
