"""Stream plumbing shared by StreamVideo and StreamScene: one session per call.

A session owns a reader thread that decodes the client's frames and submits them to the
scheduler (blocking when it is full: backpressure), and an ordered pipe of at most
`inflight` frames between that thread and the response generator, so decoding, the models
and sending overlap while replies keep the frames' order. Whatever way the call ends (the
client half-closes, it cancels, its deadline passes, the handler fails) `close()` runs once,
from the generator's `finally` or the RPC's termination callback: the reader stops, queued
jobs of the call are dropped by the workers, and the session's frames and tokens are freed.

What a stream kind adds (video.py, scene.py): decoding its request message, the reply for a
frame's regions or for its input error, and what comes after the last frame.
"""

from __future__ import annotations

import itertools
import logging
import queue
import random
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

import grpc

from regiond.core.errors import InputError
from regiond.core.frames import Frame
from regiond.core.regionset import RegionSet
from regiond.masks.carry import CarryClosed, CarryConfig, MaskTracker
from regiond.masks.generator import MaskGenerationError
from regiond.service.calls import CallLog
from regiond.service.convert import Limits
from regiond.service.idle import IdleWatch
from regiond.service.prometheus import Metrics
from regiond.service.scheduler import Cancelled, JobResult, Overtaken, Scheduler, ShuttingDown, wait_result
from regiond.service.wire import Unparsable

log = logging.getLogger(__name__)

_END = object()
_POLL = 0.05
_ids = itertools.count(1)


#: what a refused stream is told to wait before it tries again (jittered, so that the clients
#: refused together do not all come back at once)
RETRY_AFTER_MS = 1000


class StreamsFull(RuntimeError):
    """The daemon already serves its maximum of concurrent streams; `retry_after_ms` is the
    wait it suggests (sent as trailing metadata `retry-after-ms`)."""

    def __init__(self, cap: int):
        self.retry_after_ms = int(RETRY_AFTER_MS * random.uniform(0.75, 1.25))
        super().__init__(
            f"the daemon serves its maximum of {cap} concurrent streams (--max-streams); "
            f"retry after {self.retry_after_ms} ms"
        )


class OptionsError(InputError):
    """Stream options the stream cannot be served with (e.g. live on a scene): the call ends
    INVALID_ARGUMENT, unlike a bad frame, which is answered in-band while the stream goes on."""


@dataclass
class Pending:
    """One frame between reader and responder: its job's future, or its error (the frame's
    FrameError: `code` INVALID_ARGUMENT for bad input, INTERNAL when the mask generator failed)."""

    index: int
    t0: float
    request: Any
    frame: Frame | None = None
    future: Future | None = None
    error: InputError | None = None
    code: int = grpc.StatusCode.INVALID_ARGUMENT.value[0]
    number: int = 0  # the client's frame number (frame_index)

    def drop(self, fut: Future) -> None:
        """Done-callback of a live frame's job: once a newer frame overtook it, only its number
        is kept (the pipe may hold many such frames; their pixels go at once)."""
        if not fut.cancelled() and isinstance(fut.exception(), Overtaken):
            self.frame = self.request = None


class SessionRegistry:
    """Open sessions by id (for metrics, shutdown and tests)."""

    def __init__(self, metrics: Metrics | None = None):
        self._lock = threading.Lock()
        self._open: dict[int, StreamSession] = {}
        self._metrics = metrics

    def add(self, s: StreamSession, cap: int = 0) -> bool:
        """Register an open session; False (nothing registered) when `cap` sessions (0: no
        cap) are open already."""
        with self._lock:
            if cap and len(self._open) >= cap:
                return False
            self._open[s.id] = s
        if self._metrics:
            self._metrics.sessions.labels(s.kind).inc()
        return True

    def remove(self, s: StreamSession) -> None:
        with self._lock:
            gone = self._open.pop(s.id, None)
        if gone is not None and self._metrics:
            self._metrics.sessions.labels(s.kind).dec()

    def count(self, kind: str | None = None) -> int:
        with self._lock:
            return sum(1 for s in self._open.values() if kind is None or s.kind == kind)

    def all(self) -> list[StreamSession]:
        with self._lock:
            return list(self._open.values())


@dataclass(frozen=True)
class StreamDeps:
    """What every stream session uses of its daemon."""

    scheduler: Scheduler
    metrics: Metrics
    limits: Limits
    sessions: SessionRegistry
    calls: CallLog
    inflight: int = 4
    idle_timeout: float = 0.0
    max_streams: int = 0  # open sessions at most (0: no cap); more are refused with StreamsFull


class StreamSession:
    """Base of the stream kinds. Subclasses implement `decode(request, index)`,
    `respond(pending, regions)` and `respond_error(pending)`, and may add `finish()`."""

    kind = "stream"
    method = "Stream"

    def __init__(self, deps: StreamDeps, request_iterator: Iterator[Any], context: grpc.ServicerContext):
        self.id = next(_ids)
        if not deps.sessions.add(self, deps.max_streams):  # first: a refusal costs nothing else
            deps.metrics.streams_refused.labels(self.method).inc()
            raise StreamsFull(deps.max_streams)
        self.deps = deps
        self.scheduler = deps.scheduler
        self.metrics = deps.metrics
        self.limits = deps.limits
        self.context = context
        self.requests = IdleWatch(request_iterator, deps.idle_timeout)
        # Pending frames in order. Outside live mode at most `inflight` of them (the reader
        # waits for a slot: backpressure); a live stream's reader never waits, since its
        # frames overtaken in the queue cost nothing but their number.
        self._pipe: queue.Queue = queue.Queue()
        self._slots = threading.Semaphore(max(1, deps.inflight))
        self.live = False  # set by a kind's decode() on the first frame
        self.skipped: list[int] = []  # live: frames overtaken since the last update
        self.frames_skipped = 0
        self._done = threading.Event()  # the call is over (any reason)
        self._closed = False
        self._lock = threading.Lock()
        self.frames = 0
        self.frame_errors = 0
        self.reader_error: BaseException | None = None
        # Set by a kind's decode() on the first frame when the stream carries masks.
        self.tracker: MaskTracker | None = None
        context.add_callback(self.close)  # cancel / deadline / normal end
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
        self.deps.sessions.remove(self)

    def release(self) -> None:
        """Free per-session state (subclasses drop their buffers; call this too)."""
        if self.tracker is not None:
            self.tracker.close()

    # --- reader thread ------------------------------------------------------------------------

    def _put(self, item: Any, slot: bool = True) -> bool:
        """Queue an item for the responder; with `slot`, first wait for one of the `inflight`
        slots (the responder frees it). False once the call is over."""
        while slot and not self._slots.acquire(timeout=_POLL):
            if self._done.is_set():
                return False
        if self._done.is_set():
            return False
        self._pipe.put(item)
        return True

    def _read(self) -> None:
        try:
            for index, req in enumerate(self.requests):
                if self._done.is_set():
                    return
                p = Pending(index=index, t0=time.perf_counter(), request=req, number=frame_index(req, index))
                try:
                    p.frame = self.decode(req, index)
                except OptionsError as e:
                    self.reader_error = e
                    return
                except InputError as e:
                    p.error = e
                if p.error is None:
                    ticket = self.tracker.ticket() if self.tracker is not None else None
                    try:
                        p.future = self.scheduler.submit_extract(
                            p.frame, self.alive, carry=ticket, lane=self.id, newest=self.live
                        )
                    except (Cancelled, ShuttingDown) as e:
                        if ticket is not None:
                            ticket.release()
                        self.reader_error = e
                        return
                    if self.live:
                        p.future.add_done_callback(p.drop)
                if not self._put(p, slot=not self.live):
                    return
        except grpc.RpcError:  # the client went away while we read
            return
        except BaseException as e:  # surfaced to the client by the responder
            self.reader_error = e
            log.exception("stream reader failed")
        finally:
            self._put(_END, slot=False)

    # --- response generator -------------------------------------------------------------------

    def _next(self) -> Any:
        while not self._done.is_set():
            try:
                return self._pipe.get(timeout=_POLL)
            except queue.Empty:
                if self.requests.expired():  # nothing in flight and the client sends nothing
                    self.requests.abort(self.context)
                if not self.context.is_active():
                    return _END
        return _END

    def wait(self, fut: Future) -> JobResult:
        """A job's result, polling so that a call that ends stops the wait (Cancelled)."""
        return wait_result(fut, self.alive)

    def call(self, fn: Callable[[], Any], stage: str) -> Any:
        """Run fn (a head) on a worker, wait for it, and time it as `stage`."""
        t0 = time.perf_counter()
        value = self.wait(self.scheduler.submit_call(fn, self.alive, lane=self.id)).value
        self.metrics.stage_seconds.labels(stage).observe(time.perf_counter() - t0)
        return value

    def run(self) -> Iterator[Any]:
        """The response stream. Runs in the gRPC handler thread."""
        self._reader.start()
        try:
            while True:
                p = self._next()
                if p is _END:
                    break
                if not self.live:
                    self._slots.release()
                self.frames += 1
                if p.error is None:
                    try:
                        done = self.wait(p.future)
                    except Overtaken:  # a live stream's newer frame took its place
                        self.skipped.append(p.number)
                        self.frames_skipped += 1
                        self.metrics.frames_skipped.labels(self.method).inc()
                        continue
                    except InputError as e:  # checks the extractor makes itself
                        p.error = e
                    except MaskGenerationError as e:  # this frame fails, the stream goes on
                        log.error(
                            "mask generation failed on frame %d of %s session %d: %s",
                            frame_index(p.request, p.index),
                            self.kind,
                            self.id,
                            e,
                        )
                        p.error = InputError("masks", f"mask generation failed: {e}")
                        p.code = grpc.StatusCode.INTERNAL.value[0]
                    except (Cancelled, CarryClosed):
                        return
                    except Exception as e:  # a fault of ours, not the client's: end the call
                        where = f"frame {frame_index(p.request, p.index)} of {self.kind} session {self.id}"
                        log.exception("extraction failed on %s", where)
                        self.context.abort(
                            grpc.StatusCode.INTERNAL, f"extraction failed on {where}: {type(e).__name__}: {e}"
                        )
                if p.error is None:
                    regions: RegionSet = done.value
                    seconds = regions.meta.setdefault("seconds", {})
                    seconds["queue"] = done.queue_seconds
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
            if isinstance(self.reader_error, OptionsError):
                self.context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(self.reader_error))
            if self.reader_error is not None and not isinstance(self.reader_error, Cancelled):
                self.context.abort(grpc.StatusCode.INTERNAL, f"reading the stream failed: {self.reader_error}")
            if self.alive():
                yield from self.finish()
        finally:
            self.deps.calls.stats(self.context).update(self.stats())
            self.close()

    def stats(self) -> dict:
        out = {"session": self.id, "frames": self.frames, "frame_errors": self.frame_errors}
        if self.live:
            out.update(live=True, frames_skipped=self.frames_skipped)
        return out

    def take_skipped(self) -> list[int]:
        """The frames overtaken since the last update (for the next one), ascending."""
        out, self.skipped = sorted(self.skipped), []
        return out

    def finish(self) -> Iterator[Any]:
        """Updates after the client half-closed (scene summary)."""
        return iter(())

    # --- to implement -------------------------------------------------------------------------

    def decode(self, request: Any, index: int) -> Frame:
        raise NotImplementedError

    def respond(self, p: Pending, regions: RegionSet) -> Any:
        raise NotImplementedError

    def respond_error(self, p: Pending) -> Any:
        raise NotImplementedError


def carry_tracker(options: Any, method: str, **config: Any) -> MaskTracker | None:
    """The stream's MaskTracker when its options carry masks (CarryOptions.keyframe_every > 1),
    else None. Bad values are InputErrors naming options.carry's field."""
    if not options.HasField("carry") or options.carry.keyframe_every <= 1:
        return None
    c = options.carry
    if c.min_coverage:
        config["min_coverage"] = float(c.min_coverage)
    try:
        return MaskTracker(CarryConfig(every=int(c.keyframe_every), method=method, **config))
    except InputError as e:
        raise InputError(f"options.{e.field}", e.message) from None


def frame_index(req: Any, index: int) -> int:
    """The client's frame number when it set one, else the position in the stream (also for
    a message that did not parse)."""
    return index if isinstance(req, Unparsable) or not req.index else int(req.index)


def output_of(req: Any, default: Any) -> Any:
    """A frame's own OutputOptions when it sets them, else the stream's (from its first frame)."""
    return req.output if req.HasField("output") else default
