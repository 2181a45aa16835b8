"""Per-stream sessions: the state of one StreamVideo or StreamScene call.

A session owns a reader thread that decodes the client's frames and submits them to the
scheduler (blocking when it is full: backpressure), and an ordered pipe of at most
`inflight` frames between that thread and the response generator, so decoding, the models
and sending overlap while replies keep the frames' order. Whatever way the call ends (the
client half-closes, it cancels, its deadline passes, the handler fails) `close()` runs once,
from the generator's `finally` or the RPC's termination callback: the reader stops, queued
jobs of the call are dropped by the workers, and the session's frames and tokens are freed.
"""
from __future__ import annotations

import itertools
import logging
import queue
import threading
import time
from collections import deque
from concurrent.futures import Future
from dataclasses import dataclass

import grpc
import numpy as np

from regions.v1 import regions_pb2 as pb

from core.errors import InputError
from .convert import Limits, RegionLabels, frame_error_pb, region_set_pb
from .scheduler import Cancelled, ShuttingDown

log = logging.getLogger(__name__)

_END = object()
_POLL = 0.05
_ids = itertools.count(1)


@dataclass
class Pending:
    """One frame between reader and responder: its job's future, or the input error."""

    index: int
    t0: float
    request: object
    frame: object = None
    future: Future | None = None
    error: InputError | None = None


class SessionRegistry:
    """Open sessions by id (for metrics, shutdown and tests)."""

    def __init__(self, metrics=None):
        self._lock = threading.Lock()
        self._open: dict[int, "StreamSession"] = {}
        self._metrics = metrics

    def add(self, s: "StreamSession") -> None:
        with self._lock:
            self._open[s.id] = s
        if self._metrics:
            self._metrics.sessions.labels(s.kind).inc()

    def remove(self, s: "StreamSession") -> None:
        with self._lock:
            gone = self._open.pop(s.id, None)
        if gone is not None and self._metrics:
            self._metrics.sessions.labels(s.kind).dec()

    def count(self, kind: str | None = None) -> int:
        with self._lock:
            return sum(1 for s in self._open.values() if kind is None or s.kind == kind)

    def all(self) -> list["StreamSession"]:
        with self._lock:
            return list(self._open.values())


class StreamSession:
    """Base of the two stream kinds. Subclasses implement `decode(request, index)` and
    `respond(pending, regions)` / `respond_error(pending)` and may add `finish()`."""

    kind = "stream"
    method = "Stream"

    def __init__(self, servicer, request_iterator, context, inflight: int = 4):
        self.id = next(_ids)
        self.servicer = servicer
        self.scheduler = servicer.scheduler
        self.metrics = servicer.metrics
        self.limits: Limits = servicer.limits
        self.context = context
        self.requests = request_iterator
        self._pipe: queue.Queue = queue.Queue(maxsize=max(1, inflight))
        self._done = threading.Event()      # the call is over (any reason)
        self._closed = False
        self._lock = threading.Lock()
        self.frames = 0
        self.frame_errors = 0
        self.options_seen = False
        self.reader_error: BaseException | None = None
        servicer.sessions.add(self)
        context.add_callback(self.close)     # cancel / deadline / normal end
        self._reader = threading.Thread(target=self._read, name=f"regiond-{self.kind}-{self.id}", daemon=True)

    # --- lifecycle ----------------------------------------------------------------------------

    def alive(self) -> bool:
        return not self._done.is_set() and self.context.is_active()

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._done.set()
        # Drop queued frames now: their futures are cancelled by the workers (alive() is false).
        while True:
            try:
                self._pipe.get_nowait()
            except queue.Empty:
                break
        self.release()
        self.servicer.sessions.remove(self)

    def release(self) -> None:
        """Free per-session state (subclasses drop their buffers)."""

    # --- reader thread ------------------------------------------------------------------------

    def _put(self, item) -> bool:
        while not self._done.is_set():
            try:
                self._pipe.put(item, timeout=_POLL)
                return True
            except queue.Full:
                continue
        return False

    def _read(self) -> None:
        try:
            for index, req in enumerate(self.requests):
                if self._done.is_set():
                    return
                p = Pending(index=index, t0=time.perf_counter(), request=req)
                try:
                    p.frame = self.decode(req, index)
                except InputError as e:
                    p.error = e
                if p.error is None:
                    try:
                        p.future = self.scheduler.submit_extract(p.frame, self.alive)
                    except (Cancelled, ShuttingDown) as e:
                        self.reader_error = e
                        return
                if not self._put(p):
                    return
        except grpc.RpcError:  # the client went away while we read
            return
        except BaseException as e:  # surfaced to the client by the responder
            self.reader_error = e
            log.exception("stream reader failed")
        finally:
            self._put(_END)

    # --- response generator -------------------------------------------------------------------

    def _next(self):
        while not self._done.is_set():
            try:
                return self._pipe.get(timeout=_POLL)
            except queue.Empty:
                if not self.context.is_active():
                    return _END
        return _END

    def _result(self, fut: Future):
        while True:
            try:
                return fut.result(timeout=_POLL)
            except TimeoutError:
                if not self.alive():
                    raise Cancelled("call ended") from None

    def run(self):
        """The response stream. Runs in the gRPC handler thread."""
        self._reader.start()
        try:
            while True:
                p = self._next()
                if p is _END:
                    break
                self.frames += 1
                if p.error is None:
                    try:
                        regions = self._result(p.future)
                    except InputError as e:  # checks the extractor makes itself
                        p.error = e
                    except Cancelled:
                        return
                    except Exception as e:  # a fault of ours, not the client's: end the call
                        log.exception("extraction failed in %s session %d", self.kind, self.id)
                        self.context.abort(grpc.StatusCode.INTERNAL, f"extraction failed: {type(e).__name__}: {e}")
                if p.error is None:
                    seconds = regions.meta.setdefault("seconds", {})
                    seconds["queue"] = getattr(p.future, "queue_seconds", 0.0)
                    self.metrics.observe_stages(seconds)
                    try:
                        update = self.respond(p, regions)
                    except InputError as e:  # e.g. an unknown output option on this frame
                        p.error = e
                if p.error is not None:
                    self.frame_errors += 1
                    self.metrics.frame_errors.labels(self.method, p.error.field).inc()
                    update = self.respond_error(p)
                self.metrics.frames.labels(self.method).inc()
                self.metrics.frame_seconds.labels(self.method).observe(time.perf_counter() - p.t0)
                p.frame = None
                yield update
            if isinstance(self.reader_error, ShuttingDown):
                self.context.abort(grpc.StatusCode.UNAVAILABLE, "the daemon is shutting down")
            if self.reader_error is not None and not isinstance(self.reader_error, Cancelled):
                self.context.abort(grpc.StatusCode.INTERNAL, f"reading the stream failed: {self.reader_error}")
            if self.alive():
                yield from self.finish()
        finally:
            self.context.stats.update(self.stats())
            self.close()

    def stats(self) -> dict:
        return {"session": self.id, "frames": self.frames, "frame_errors": self.frame_errors}

    def finish(self):
        """Updates after the client half-closed (scene summary)."""
        return iter(())

    # --- to implement -------------------------------------------------------------------------

    def decode(self, request, index: int):
        raise NotImplementedError

    def respond(self, p: Pending, regions):
        raise NotImplementedError

    def respond_error(self, p: Pending):
        raise NotImplementedError


def _output(req, default):
    """A frame's own OutputOptions when it sets them, else the stream's (from its first frame)."""
    return req.output if req.HasField("output") else default


def _frame_index(req, index: int) -> int:
    """The client's frame number when it set one, else the position in the stream."""
    return int(req.index) if req.index else index


class VideoSession(StreamSession):
    """StreamVideo: regions per frame; with an activity head, scores per window of frames.

    A window spans `span` consecutive frames (default: the head's window, 8) from which the
    head's `window` frames are taken evenly; windows start every `step` frames.
    """

    kind = "video"
    method = "StreamVideo"

    def __init__(self, servicer, request_iterator, context, inflight: int = 4):
        super().__init__(servicer, request_iterator, context, inflight)
        self.scorer = servicer.heads.activity
        self.step = servicer.config.window_step
        self.span = self.scorer.meta.window if self.scorer else 0
        self.output = pb.OutputOptions()
        self._window: deque = deque()   # (frame_index, RegionSet) of the last `span` frames
        self._since = 0                 # frames since the last window was scored
        self.windows = 0

    def decode(self, req: pb.VideoFrame, index: int):
        from .convert import video_frame

        if index == 0:
            self.output = req.output
            if self.scorer is not None:
                n = self.scorer.meta.window
                self.step = int(req.options.window_step) or self.step
                self.span = max(int(req.options.window_span) or n, n)
                self._window = deque(maxlen=self.span)
        return video_frame(req, self.limits, _frame_index(req, index))

    def respond(self, p: Pending, regions) -> pb.VideoUpdate:
        idx = p.frame.index
        up = pb.VideoUpdate(frame_index=idx, regions=region_set_pb(regions, _output(p.request, self.output), idx))
        if self.scorer is not None:
            self._window.append((idx, regions))
            self._since += 1
            if len(self._window) == self.span and (self.windows == 0 or self._since >= self.step):
                up.windows.append(self._score_window())
                self._since = 0
        up.server_seconds = time.perf_counter() - p.t0
        return up

    def _score_window(self) -> pb.ActivityWindow:
        n = self.scorer.meta.window
        frames = list(self._window)
        pick = np.round(np.linspace(0, len(frames) - 1, n)).astype(int)
        chosen = [frames[i] for i in pick]
        t0 = time.perf_counter()
        fut = self.scheduler.submit_call(lambda: self.scorer.score([r for _, r in chosen]), self.alive)
        probs = np.asarray(self._result(fut), dtype=np.float64)
        self.metrics.stage_seconds.labels("activity").observe(time.perf_counter() - t0)
        meta = self.scorer.meta
        order = np.argsort(-probs, kind="stable")
        w = pb.ActivityWindow(start_frame=frames[0][0], end_frame=frames[-1][0],
                              frame_indices=[i for i, _ in chosen])
        for k in order:
            w.scores.add(id=int(meta.class_ids[k]), name=str(meta.class_names[k]), score=float(probs[k]))
        self.windows += 1
        return w

    def respond_error(self, p: Pending) -> pb.VideoUpdate:
        return pb.VideoUpdate(frame_index=_frame_index(p.request, p.index),
                              error=frame_error_pb(p.error, grpc.StatusCode.INVALID_ARGUMENT.value[0]),
                              server_seconds=time.perf_counter() - p.t0)

    def stats(self) -> dict:
        return {**super().stats(), "windows": self.windows}

    def release(self) -> None:
        self._window = deque()


class SceneSession(StreamSession):
    """StreamScene: regions with 3D positions per frame, fused cloud, labels with a scene head."""

    kind = "scene"
    method = "StreamScene"
    DEFAULT_VOXEL = 0.02
    FUSION_STRIDE = 2   # every 2nd pixel each way: a quarter of the points, same voxels at 2 cm

    def __init__(self, servicer, request_iterator, context, inflight: int = 4):
        super().__init__(servicer, request_iterator, context, inflight)
        self.labeler = servicer.heads.scene
        self.label_state = self.labeler.new_scene() if self.labeler else None
        self.options = pb.SceneOptions()
        self.output = pb.OutputOptions()
        self.fusion = None
        self.regions_total = 0
        self.without_pose = 0
        self.without_depth = 0
        self.t_start = time.perf_counter()

    def decode(self, req: pb.SceneFrame, index: int):
        from .convert import scene_frame

        if index == 0:
            self.options, self.output = req.options, req.output
            voxel = float(self.options.voxel_size) or self.DEFAULT_VOXEL
            if not np.isfinite(voxel) or voxel <= 0:
                raise InputError("options.voxel_size", f"must be a positive number of metres, got {voxel}")
            from ..geometry import DEFAULT_MAX_DEPTH, VoxelFusion

            max_depth = float(self.options.max_depth) or DEFAULT_MAX_DEPTH
            self.fusion = VoxelFusion(voxel, max_depth)
        if self.fusion is None:
            raise InputError("options", "the first frame of the scene was rejected; its options were not set")
        return scene_frame(req, self.limits, _frame_index(req, index))

    def respond(self, p: Pending, regions) -> pb.SceneUpdate:
        f = p.frame
        idx = f.index
        self.regions_total += len(regions)
        if f.pose is None:
            self.without_pose += 1
        if f.depth is None:
            self.without_depth += 1
        labels, label_map = None, None
        if self.labeler is not None:
            t0 = time.perf_counter()
            fut = self.scheduler.submit_call(lambda: self.labeler.label_frame(self.label_state, f, regions), self.alive)
            fl = self._result(fut)
            self.metrics.stage_seconds.labels("scene_labels").observe(time.perf_counter() - t0)
            labels = RegionLabels(fl.region_labels, fl.region_scores, self.labeler.meta.names())
            label_map = fl.label_map
        up = pb.SceneUpdate(frame_index=idx,
                            regions=region_set_pb(regions, _output(p.request, self.output), idx,
                                                 world=f.pose is not None, labels=labels))
        if label_map is not None and self.options.return_label_maps:
            from .convert import encode_png

            up.label_map_png = encode_png(label_map)
        if self.fusion is not None:
            t0 = time.perf_counter()
            self.fusion.add_frame(f, labels=label_map, stride=self.FUSION_STRIDE)
            self.metrics.stage_seconds.labels("fusion").observe(time.perf_counter() - t0)
        up.server_seconds = time.perf_counter() - p.t0
        return up

    def respond_error(self, p: Pending) -> pb.SceneUpdate:
        return pb.SceneUpdate(frame_index=_frame_index(p.request, p.index),
                              error=frame_error_pb(p.error, grpc.StatusCode.INVALID_ARGUMENT.value[0]),
                              server_seconds=time.perf_counter() - p.t0)

    def finish(self):
        from .convert import encode_png

        if self.labeler is not None:
            fut = self.scheduler.submit_call(lambda: self.labeler.refine(self.label_state), self.alive)
            for fl in self._result(fut):
                yield pb.SceneUpdate(frame_index=fl.frame_index, refined=pb.RefinedFrame(
                    frame_index=fl.frame_index, region_labels=np.asarray(fl.region_labels).astype(int).tolist(),
                    label_map_png=encode_png(fl.label_map) if self.options.return_label_maps else b""))
        summary = pb.SceneSummary(
            scene_id=self.options.scene_id, frames=self.frames, frames_failed=self.frame_errors,
            regions=self.regions_total, frames_without_pose=self.without_pose,
            frames_without_depth=self.without_depth)
        if self.fusion is not None:
            cloud = self.fusion.cloud()
            summary.fused_points = len(cloud)
            if self.options.return_ply:
                # Leave room for the rest of the message; thin the cloud until it fits.
                summary.ply, summary.ply_voxel_size = _ply_within(
                    cloud, self.fusion.voxel, self.servicer.config.max_message_bytes * 3 // 4)
            if cloud.labels is not None and self.labeler is not None:
                summary.label_names.extend(_label_names(self.labeler.meta))
        summary.seconds = time.perf_counter() - self.t_start
        yield pb.SceneUpdate(summary=summary)

    def stats(self) -> dict:
        return {**super().stats(), "regions": self.regions_total, "scene_id": self.options.scene_id}

    def release(self) -> None:
        self.fusion = None
        self.label_state = None


def _label_names(meta) -> list[str]:
    """Names indexed by label id (ids are small NYU40 numbers), "" where unused."""
    names = [""] * (max(meta.class_ids, default=-1) + 1)
    for i, n in zip(meta.class_ids, meta.class_names):
        if i >= 0:
            names[i] = n
    return names


def _ply_within(cloud, voxel: float, limit: int) -> tuple[bytes, float]:
    """PLY bytes of the cloud, re-voxelised at doubling voxel sizes until under `limit` bytes."""
    from ..geometry import VoxelFusion

    data = _ply_bytes(cloud)
    while len(data) > limit and len(cloud) > 1:
        voxel *= 2
        coarser = VoxelFusion(voxel)
        coarser.add_points(cloud.points, cloud.colors, cloud.labels)
        cloud = coarser.cloud()
        data = _ply_bytes(cloud)
    return data, voxel


def _ply_bytes(cloud) -> bytes:
    """Binary little-endian PLY of the cloud: float x y z, uchar red green blue[, int label]
    (the layout geometry.write_ply gives). Written with numpy: importing Open3D into the daemon
    would slow every later extraction in the process (measured: ~1.5x on the lite profile)."""
    fields = [("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("red", "u1"), ("green", "u1"), ("blue", "u1")]
    if cloud.labels is not None:
        fields.append(("label", "<i4"))
    rows = np.empty(len(cloud.points), dtype=fields)
    for k, name in enumerate("xyz"):
        rows[name] = cloud.points[:, k]
    for k, name in enumerate(("red", "green", "blue")):
        rows[name] = cloud.colors[:, k]
    if cloud.labels is not None:
        rows["label"] = cloud.labels
    types = {"<f4": "float", "u1": "uchar", "<i4": "int"}
    header = "ply\nformat binary_little_endian 1.0\n" + f"element vertex {len(rows)}\n" + "".join(
        f"property {types[t]} {n}\n" for n, t in fields) + "end_header\n"
    return header.encode("ascii") + rows.tobytes()
