"""RegionService: the six RPCs of regions.proto over one Extractor, one work queue and the
optional heads and region index."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from typing import Any

import grpc
import numpy as np

from regiond import __version__
from regiond.api.v1 import regions_pb2 as pb
from regiond.api.v1 import regions_pb2_grpc as pb_grpc
from regiond.core.errors import InputError
from regiond.core.frames import Frame
from regiond.core.regionset import RegionSet
from regiond.extraction import Extractor
from regiond.heads.interface import SceneLabeler, ServingHeads
from regiond.service.calls import CallLog
from regiond.service.convert import Limits, RegionLabels, extract_request_frame, region_set_pb, trained_on_pb
from regiond.service.idle import IdleWatch, prefetched
from regiond.service.prometheus import Metrics
from regiond.service.scene_stream import SceneSession
from regiond.service.scheduler import Cancelled, QueueFull, Scheduler, ShuttingDown, on_worker_thread, wait_result
from regiond.service.search_rpc import SearchRPC
from regiond.service.startup import RETRY_AFTER_KEY, SERVING, Startup
from regiond.service.streams import SessionRegistry, StreamDeps, StreamSession, StreamsFull
from regiond.service.video_stream import VideoSession

log = logging.getLogger(__name__)


class QueuedExtractor:
    """The extractor as the search RPCs see it (an index.RegionExtractor): `extract` and `pool`
    go through the work queue (blocking while it is full), so indexing and queries share the
    models' bounded capacity with the streams. Called from a worker thread (a Search job pools
    its query there), they run directly instead of queueing behind themselves.

    `for_call(context.is_active)` is the same extractor for one call: once the call ends
    (cancelled, deadline passed) its waits stop with Cancelled and its queued jobs are dropped.
    Unbound (library use), it waits for as long as the work takes."""

    def __init__(self, extractor: Extractor, scheduler: Scheduler, alive: Callable[[], bool] = lambda: True):
        self._extractor = extractor
        self._scheduler = scheduler
        self._alive = alive
        self.dim = extractor.dim
        self.features_name = extractor.features_name
        self.max_pixels = extractor.max_pixels
        self.weights = extractor.weights

    def for_call(self, alive: Callable[[], bool]) -> QueuedExtractor:
        return QueuedExtractor(self._extractor, self._scheduler, alive)

    def extract(self, frame: Frame | np.ndarray) -> RegionSet:
        if on_worker_thread():
            return self._extractor.extract(frame)
        return wait_result(self._scheduler.submit_extract(frame, self._alive), self._alive).value

    def pool(self, frame: Frame | np.ndarray, masks: np.ndarray) -> np.ndarray:
        if on_worker_thread():
            return self._extractor.pool(frame, masks)
        fut = self._scheduler.submit_call(lambda: self._extractor.pool(frame, masks), self._alive)
        return wait_result(fut, self._alive).value


def labelled_extract(
    extractor: Extractor, labeler: SceneLabeler | None, frame: Frame
) -> tuple[RegionSet, RegionLabels | None]:
    """One image's regions and, with a scene labeller, their labels: the labeller's per-frame
    labels of a scene holding this frame alone (its "heads" time in the stage seconds)."""
    regions = extractor.extract(frame)
    if labeler is None:
        return regions, None
    t0 = time.perf_counter()
    fl = labeler.label_frame(labeler.new_scene(), frame, regions)
    regions.meta.setdefault("seconds", {})["heads"] = time.perf_counter() - t0
    return regions, RegionLabels(fl.region_labels, fl.region_scores, labeler.meta.names())


class RegionServicer(pb_grpc.RegionServiceServicer):
    """config        the daemon's ServeConfig (regiond.service.config)
    extractor     the profile's Extractor (GetInfo describes it; the scheduler runs it)
    heads         the served heads (scene labeler, activity scorer; either may be None)
    scheduler     the bounded work queue every model call goes through
    metrics       Prometheus metrics
    calls         the per-call log records the interceptor writes out
    search        the index's RPCs, or None (IndexImages/Search answer UNIMPLEMENTED once started)
    startup       the daemon's start-up: until it is over, the calls that need the models answer
                  UNAVAILABLE (None: started already)
    profile_note  why this profile was chosen (e.g. the fallback to lite), for GetInfo"""

    def __init__(
        self,
        config: Any,
        extractor: Extractor,
        heads: ServingHeads,
        scheduler: Scheduler,
        metrics: Metrics,
        calls: CallLog,
        search: SearchRPC | None = None,
        startup: Startup | None = None,
        profile_note: str = "",
    ):
        self.config = config
        self.extractor = extractor
        self.heads = heads
        self.metrics = metrics
        self.scheduler = scheduler
        self.calls = calls
        self.search = search
        if startup is None:
            startup = Startup()
            startup.serving()
        self.startup = startup
        self.profile_note = profile_note
        self.limits = Limits(max_pixels=config.max_pixels)
        self.sessions = SessionRegistry(metrics)
        self.streams = StreamDeps(
            scheduler,
            metrics,
            self.limits,
            self.sessions,
            calls,
            config.inflight,
            config.idle_timeout,
            config.max_streams,
        )

    # --- helpers ------------------------------------------------------------------------------

    def _require_started(self, context: grpc.ServicerContext) -> None:
        """UNAVAILABLE, saying which step runs and with a retry-after-ms hint, until the start-up is over."""
        if self.startup.state == SERVING:
            return
        context.set_trailing_metadata(((RETRY_AFTER_KEY, str(self.startup.retry_after_ms())),))
        context.abort(grpc.StatusCode.UNAVAILABLE, self.startup.unavailable_message())

    def _run_unary(self, fn: Callable[[], Any], context: grpc.ServicerContext, what: str) -> Any:
        """Run fn on a worker: RESOURCE_EXHAUSTED when the queue stays full for unary_wait.
        Returns the JobResult."""
        try:
            fut = self.scheduler.submit_call(fn, context.is_active, wait=self.config.unary_wait)
        except QueueFull as e:
            context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, f"{what}: {e}; retry later")
        except ShuttingDown as e:
            context.abort(grpc.StatusCode.UNAVAILABLE, str(e))
        except Cancelled:
            context.abort(grpc.StatusCode.CANCELLED, "call ended while queued")
        try:
            return wait_result(fut, context.is_active)
        except Cancelled:
            context.abort(grpc.StatusCode.CANCELLED, "call ended before its job finished")
        except InputError as e:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(e))

    # --- RPCs ---------------------------------------------------------------------------------

    def ExtractRegions(self, request: pb.ExtractRequest, context: grpc.ServicerContext) -> pb.RegionSet:
        self._require_started(context)
        try:
            frame = extract_request_frame(request, self.limits)
        except InputError as e:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(e))
        labeler = None if request.skip_labels else self.heads.scene
        done = self._run_unary(lambda: labelled_extract(self.extractor, labeler, frame), context, "ExtractRegions")
        regions, labels = done.value
        regions.meta.setdefault("seconds", {})["queue"] = done.queue_seconds
        self.metrics.observe_stages(regions.meta["seconds"])
        self.metrics.frames.labels("ExtractRegions").inc()
        self.calls.stats(context).update(frame_size=f"{frame.width}x{frame.height}", regions=len(regions))
        try:
            return region_set_pb(regions, request.output, world=frame.pose is not None, labels=labels)
        except InputError as e:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(e))

    def StreamVideo(
        self, request_iterator: Iterator[pb.VideoFrame], context: grpc.ServicerContext
    ) -> Iterator[pb.VideoUpdate]:
        self._require_started(context)
        return _admitted(
            lambda: VideoSession(self.streams, self.heads.activity, self.config.window_step, request_iterator, context),
            context,
        )

    def StreamScene(
        self, request_iterator: Iterator[pb.SceneFrame], context: grpc.ServicerContext
    ) -> Iterator[pb.SceneUpdate]:
        self._require_started(context)
        return _admitted(
            lambda: SceneSession(
                self.streams, self.heads.scene, self.config.max_message_bytes, request_iterator, context
            ),
            context,
        )

    def IndexImages(
        self, request_iterator: Iterator[pb.IndexRequest], context: grpc.ServicerContext
    ) -> pb.IndexSummary:
        self._require_started(context)
        if self.search is None:
            context.abort(grpc.StatusCode.UNIMPLEMENTED, "this daemon has no region index")
        requests = prefetched(IdleWatch(request_iterator, self.config.idle_timeout), context)
        summary = self.search.index_images(requests, context)
        self.calls.stats(context).update(received=summary.received, indexed=summary.indexed, errors=len(summary.errors))
        return summary

    def Search(self, request: pb.SearchRequest, context: grpc.ServicerContext) -> pb.SearchResponse:
        self._require_started(context)
        if self.search is None:
            context.abort(grpc.StatusCode.UNIMPLEMENTED, "this daemon has no region index")
        resp = self._run_unary(lambda: self.search.search(request, context), context, "Search").value
        self.calls.stats(context).update(hits=len(resp.hits))
        return resp

    def GetInfo(self, request: pb.InfoRequest, context: grpc.ServicerContext) -> pb.ServerInfo:
        ex = self.extractor
        info = pb.ServerInfo(
            version=__version__,
            profile=ex.profile,
            profile_note=self.profile_note,
            feature_dim=int(ex.dim),
            max_message_bytes=max(self.config.max_message_bytes, self.config.receive_message_bytes),
            max_pixels=self.config.max_pixels,
            queue_size=self.config.queue,
            workers=self.scheduler.workers,
            max_streams=self.config.max_streams,
            state=self.startup.state,
            state_detail=self.startup.describe(),
        )
        info.models.add(role="masker", name=ex.masker.name, weights=ex.weights.get("masker", "none"))
        info.models.add(
            role="backbone", name=ex.backbone.name, feature_dim=int(ex.dim), weights=ex.weights.get("backbone", "none")
        )
        for m in self.heads.metas():
            info.heads.add(
                kind=m.kind,
                name=m.name,
                class_ids=list(m.class_ids),
                class_names=list(m.class_names),
                window=int(m.window),
                trained_on=[trained_on_pb(r) for r in m.trained_on],
            )
        if self.search is not None:
            idx = self.search.index
            info.index_images, info.index_regions = len(idx), int(idx.num_regions)
            info.index_normaliser = idx.normaliser_note()
        return info


def _admitted(session: Callable[[], StreamSession], context: grpc.ServicerContext) -> Iterator[Any]:
    """The session's response stream; over --max-streams, RESOURCE_EXHAUSTED with trailing
    metadata `retry-after-ms` before any of the call's messages is read."""
    try:
        return session().run()
    except StreamsFull as e:
        context.set_trailing_metadata(((RETRY_AFTER_KEY, str(e.retry_after_ms)),))
        context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, str(e))
