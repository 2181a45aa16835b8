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
from regiond.heads.windows import ActivityWindows
from regiond.service.convert import frame_error_pb, region_set_pb, video_frame
from regiond.service.streams import Pending, StreamDeps, StreamSession, carry_tracker, frame_index, output_of
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
        self.windows: ActivityWindows | None = None

    def decode(self, req: pb.VideoFrame, index: int) -> Frame:
        check_parsed(req)
        if index == 0:
            self.output = req.output
            self.tracker = carry_tracker(req.options, "flow")
            if self.scorer is not None:
                self.windows = ActivityWindows(
                    self.scorer.meta.window,
                    int(req.options.window_span) or None,
                    int(req.options.window_step) or self.window_step,
                )
        return video_frame(req, self.limits, frame_index(req, index))

    def respond(self, p: Pending, regions: RegionSet) -> pb.VideoUpdate:
        idx = p.frame.index
        up = pb.VideoUpdate(frame_index=idx, regions=region_set_pb(regions, output_of(p.request, self.output), idx))
        if self.windows is not None:
            chosen = self.windows.push(idx, regions)
            if chosen is not None:
                up.windows.append(self._score(chosen))
        up.server_seconds = time.perf_counter() - p.t0
        return up

    def _score(self, chosen: list[tuple[int, RegionSet]]) -> pb.ActivityWindow:
        scorer = self.scorer
        probs = np.asarray(self.call(lambda: scorer.score([r for _, r in chosen]), "activity"), np.float64)
        meta = scorer.meta
        w = pb.ActivityWindow(
            start_frame=self.windows.first_frame,
            end_frame=self.windows.last_frame,
            frame_indices=[i for i, _ in chosen],
        )
        for k in np.argsort(-probs, kind="stable"):
            w.scores.add(id=int(meta.class_ids[k]), name=str(meta.class_names[k]), score=float(probs[k]))
        return w

    def respond_error(self, p: Pending) -> pb.VideoUpdate:
        return pb.VideoUpdate(
            frame_index=frame_index(p.request, p.index),
            error=frame_error_pb(p.error, p.code),
            server_seconds=time.perf_counter() - p.t0,
        )

    def stats(self) -> dict[str, Any]:
        return {**super().stats(), "windows": self.windows.scored if self.windows else 0}

    def release(self) -> None:
        super().release()
        if self.windows is not None:
            self.windows.clear()
