"""RegionService: the six RPCs of regions.proto over one Extractor, one work queue and the
optional heads and region index."""
from __future__ import annotations

import logging
import time
from concurrent.futures import TimeoutError as FutureTimeout

import grpc

from regions.v1 import regions_pb2 as pb
from regions.v1 import regions_pb2_grpc as pb_grpc

from .. import __version__
from core.errors import InputError
from .convert import Limits, extract_request_frame, region_set_pb
from .heads import ServingHeads
from .scheduler import Cancelled, QueueFull, Scheduler, ShuttingDown
from .sessions import SceneSession, SessionRegistry, VideoSession

log = logging.getLogger(__name__)


class QueuedExtractor:
    """The extractor as other parts see it (the search RPCs): `extract` goes through the work
    queue (blocking while it is full), everything else is the real extractor's. Called from a
    worker thread (a job that extracts), it runs directly instead of queueing behind itself."""

    def __init__(self, extractor, scheduler: Scheduler, on_worker):
        self._extractor = extractor
        self._scheduler = scheduler
        self._on_worker = on_worker

    def extract(self, frame, **kw):
        if self._on_worker() or kw:
            return self._extractor.extract(frame, **kw)
        return self._scheduler.submit_extract(frame, lambda: True).result()

    def __getattr__(self, name):
        return getattr(self._extractor, name)


class RegionServicer(pb_grpc.RegionServiceServicer):
    """config     daemon.service.server.ServeConfig
    extractor  daemon.extraction.Extractor
    heads      ServingHeads (scene labeler, activity scorer; either may be None)
    metrics    daemon.service.metrics.Metrics
    search     the index's RPCs (daemon.service.search_rpc.SearchRPC) or None"""

    def __init__(self, config, extractor, heads: ServingHeads, metrics, scheduler: Scheduler,
                 search=None, profile_note: str = ""):
        self.config = config
        self.extractor = extractor
        self.heads = heads
        self.metrics = metrics
        self.scheduler = scheduler
        self.search = search
        self.profile_note = profile_note
        self.limits = Limits(max_pixels=config.max_pixels)
        self.sessions = SessionRegistry(metrics)

    # --- helpers ------------------------------------------------------------------------------

    def _run_unary(self, fn, context, what: str):
        """Run fn on a worker: RESOURCE_EXHAUSTED when the queue stays full for unary_wait."""
        try:
            fut = self.scheduler.submit_call(fn, context.is_active, wait=self.config.unary_wait)
        except QueueFull as e:
            context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, f"{what}: {e}; retry later")
        except ShuttingDown as e:
            context.abort(grpc.StatusCode.UNAVAILABLE, str(e))
        except Cancelled:
            context.abort(grpc.StatusCode.CANCELLED, "call ended while queued")
        while True:
            try:
                return fut.result(timeout=0.05)
            except FutureTimeout:
                if not context.is_active():
                    context.abort(grpc.StatusCode.CANCELLED, "call ended")
            except Cancelled:
                context.abort(grpc.StatusCode.CANCELLED, "call ended before its job ran")
            except InputError as e:
                context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(e))

    # --- RPCs ---------------------------------------------------------------------------------

    def ExtractRegions(self, request: pb.ExtractRequest, context):
        try:
            frame = extract_request_frame(request, self.limits)
        except InputError as e:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(e))
        t_enqueued = time.perf_counter()

        def job():
            queued = time.perf_counter() - t_enqueued
            rs = self.extractor.extract(frame)
            rs.meta.setdefault("seconds", {})["queue"] = queued
            return rs

        regions = self._run_unary(job, context, "ExtractRegions")
        self.metrics.observe_stages(regions.meta.get("seconds", {}))
        self.metrics.frames.labels("ExtractRegions").inc()
        context.stats.update(frame_size=f"{frame.width}x{frame.height}", regions=len(regions))
        try:
            return region_set_pb(regions, request.output, world=frame.pose is not None)
        except InputError as e:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(e))

    def StreamVideo(self, request_iterator, context):
        return VideoSession(self, request_iterator, context, self.config.inflight).run()

    def StreamScene(self, request_iterator, context):
        return SceneSession(self, request_iterator, context, self.config.inflight).run()

    def IndexImages(self, request_iterator, context):
        if self.search is None:
            context.abort(grpc.StatusCode.UNIMPLEMENTED, "this daemon has no region index")
        summary = self.search.index_images(request_iterator, context)
        context.stats.update(received=summary.received, indexed=summary.indexed, errors=len(summary.errors))
        return summary

    def Search(self, request, context):
        if self.search is None:
            context.abort(grpc.StatusCode.UNIMPLEMENTED, "this daemon has no region index")
        resp = self._run_unary(lambda: self.search.search(request, context), context, "Search")
        context.stats.update(hits=len(resp.hits))
        return resp

    def GetInfo(self, request, context):
        ex = self.extractor
        info = pb.ServerInfo(version=__version__, profile=str(getattr(ex, "profile", "")),
                             profile_note=self.profile_note, feature_dim=int(ex.dim),
                             max_message_bytes=self.config.max_message_bytes,
                             max_pixels=self.config.max_pixels, queue_size=self.config.queue)
        info.models.add(role="masker", name=str(getattr(ex.masker, "name", type(ex.masker).__name__)),
                        weights=str(getattr(ex.masker, "weights", "") or "none"))
        info.models.add(role="backbone", name=str(getattr(ex.backbone, "name", type(ex.backbone).__name__)),
                        feature_dim=int(ex.dim), weights=str(getattr(ex.backbone, "weights", "") or "none"))
        for m in self.heads.metas():
            info.heads.add(kind=m.kind, name=m.name, class_ids=list(m.class_ids),
                           class_names=list(m.class_names), window=int(m.window))
        if self.search is not None:
            idx = self.search.index
            info.index_images, info.index_regions = len(idx), int(idx.num_regions)
        return info

