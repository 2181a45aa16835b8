"""The bounded work queue between RPC handlers and the models.

Every extraction (and every head call) goes through one queue of `capacity` jobs served by
`workers` threads, so the models see a bounded amount of work whatever the number of
clients:

- streams submit with `wait=None`: they block while the queue is full, which stops them
  reading their requests, which gRPC flow control turns into backpressure on the client;
- unary calls submit with a short `wait` and get QueueFull (→ RESOURCE_EXHAUSTED) when the
  queue stays full for that long;
- a job whose call was cancelled or passed its deadline (its `alive()` turns false) is
  dropped when a worker reaches it, so dead calls cost no model time; its caller, waiting
  with `wait_result`, stops waiting then too.

A job's future resolves to a JobResult: the value and how long the job waited in the queue.

A worker takes up to `max_batch` queued extraction jobs at once and hands them to
`extractor.extract_batch(frames)` when the extractor has one (models that batch across
images: frames from concurrent streams share one forward pass); otherwise it runs them one
by one, which is what the CPU `lite` profile wants.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

from regiond.core.frames import Frame
from regiond.core.regionset import RegionSet

_local = threading.local()
_POLL = 0.05
T = TypeVar("T")


class FrameExtractor(Protocol):
    """What the scheduler runs: an Extractor, or anything with the same two methods."""

    can_batch: bool

    def extract(self, frame: Frame, carry: Any = None) -> RegionSet: ...

    def extract_batch(self, frames: list[Frame]) -> list[RegionSet]: ...


@dataclass(frozen=True)
class JobResult(Generic[T]):
    """What a job's future resolves to: its value and the seconds it waited for a worker."""

    value: T
    queue_seconds: float


def on_worker_thread() -> bool:
    """True inside a scheduler worker (work submitted from there would wait on itself)."""
    return getattr(_local, "worker", False)


class QueueFull(RuntimeError):
    """The work queue stayed full for the caller's whole wait."""


class Cancelled(RuntimeError):
    """The job's call ended before a worker reached it (or while its caller waited)."""


class ShuttingDown(RuntimeError):
    """The scheduler no longer accepts work."""


def wait_result(fut: Future, alive: Callable[[], bool]) -> JobResult:
    """A job's JobResult, polling `alive` so that a call that ends (cancelled, deadline
    passed) stops the wait with Cancelled; the workers then drop the job if it is still queued."""
    while True:
        try:
            return fut.result(timeout=_POLL)
        except FutureTimeout:
            if not alive():
                raise Cancelled("call ended") from None


@dataclass
class Job:
    """One unit of model work. Exactly one of `frame` (an extraction) or `fn` (a call)."""

    future: Future
    alive: Callable[[], bool]
    frame: Any = None
    fn: Callable[[], Any] | None = None
    carry: Any = None  # the frame's CarryTicket when its stream carries masks
    enqueued: float = field(default_factory=time.perf_counter)
    started: float = 0.0


class Scheduler:
    """Bounded queue + worker threads in front of an Extractor.

    extractor  a FrameExtractor, or a list of them, one per worker: models with per-call
               state (SAM's predictor keeps the current image) must not be shared between workers
    capacity   jobs waiting at most (not counting the ones being run)
    workers    threads running jobs (default: one per extractor given)
    max_batch  extraction jobs taken together when the extractor batches
    on_depth   called with the queue depth after every change (metrics)
    """

    def __init__(
        self,
        extractor: FrameExtractor | list[FrameExtractor],
        capacity: int = 32,
        workers: int | None = None,
        max_batch: int = 8,
        on_depth: Callable[[int], None] | None = None,
    ):
        extractors = list(extractor) if isinstance(extractor, (list, tuple)) else [extractor]
        workers = workers or len(extractors)
        if capacity < 1 or workers < 1 or max_batch < 1 or not extractors:
            raise ValueError("capacity, workers, max_batch and extractors must be at least 1")
        self.extractor = extractors[0]
        self.capacity = capacity
        # batch only where it pays: an Extractor says so (`can_batch`: its backbone runs several
        # frames in one pass); batching a per-frame backbone would only delay the first frame
        self.max_batch = max_batch if self.extractor.can_batch else 1
        self._q: queue.Queue[Job | None] = queue.Queue(maxsize=capacity)
        self._on_depth = on_depth or (lambda n: None)
        self._closed = threading.Event()
        self._running = 0
        self._lock = threading.Lock()
        self._threads = [
            threading.Thread(
                target=self._work, args=(extractors[i % len(extractors)],), name=f"regiond-worker-{i}", daemon=True
            )
            for i in range(workers)
        ]
        for t in self._threads:
            t.start()

    # --- submitting ---------------------------------------------------------------------------

    @property
    def depth(self) -> int:
        return self._q.qsize()

    @property
    def busy(self) -> int:
        """Jobs queued or running."""
        with self._lock:
            return self._q.qsize() + self._running

    def submit_extract(
        self, frame: Frame, alive: Callable[[], bool], wait: float | None = None, carry: Any = None
    ) -> Future:
        """Queue an extraction; the future resolves to JobResult[RegionSet]. `carry`: the
        frame's turn in a stream that carries masks (regiond.masks.carry.CarryTicket); such
        frames run one by one, never in a batch."""
        return self._submit(Job(Future(), alive, frame=frame, carry=carry), wait)

    def submit_call(self, fn: Callable[[], T], alive: Callable[[], bool], wait: float | None = None) -> Future:
        """Queue a call; the future resolves to JobResult[T]."""
        return self._submit(Job(Future(), alive, fn=fn), wait)

    def _submit(self, job: Job, wait: float | None) -> Future:
        """wait=None blocks (polling `alive`) until there is room; a number waits that long."""
        deadline = None if wait is None else time.monotonic() + wait
        while True:
            if self._closed.is_set():
                raise ShuttingDown("the daemon is shutting down")
            if not job.alive():
                raise Cancelled("call ended while waiting for the queue")
            step = _POLL if deadline is None else max(0.0, min(_POLL, deadline - time.monotonic()))
            try:
                self._q.put(job, timeout=step) if step > 0 else self._q.put_nowait(job)
                self._on_depth(self._q.qsize())
                return job.future
            except queue.Full:
                if deadline is not None and time.monotonic() >= deadline:
                    raise QueueFull(f"work queue full ({self.capacity} jobs) for {wait:.2f} s") from None

    # --- working ------------------------------------------------------------------------------

    def _take(self) -> list[Job]:
        job = self._q.get()
        if job is None:
            return []
        jobs = [job]
        while job.frame is not None and len(jobs) < self.max_batch:
            try:
                nxt = self._q.get_nowait()
            except queue.Empty:
                break
            if nxt is None:  # keep the stop marker for the other workers
                self._q.put(None)
                break
            jobs.append(nxt)
            if nxt.frame is None:
                break
        return jobs

    def _work(self, extractor: FrameExtractor) -> None:
        _local.worker = True
        while True:
            jobs = self._take()
            self._on_depth(self._q.qsize())
            if not jobs:
                return
            live = []
            for j in jobs:
                if j.alive() and j.future.set_running_or_notify_cancel():
                    live.append(j)
                else:
                    if j.carry is not None:
                        j.carry.release()  # the stream's later frames must not wait for it
                    if not j.future.done():
                        j.future.set_exception(Cancelled("call ended before its job ran"))
            with self._lock:
                self._running += len(live)
            try:
                self._run(live, extractor)
            finally:
                with self._lock:
                    self._running -= len(live)

    def _run(self, jobs: list[Job], extractor: FrameExtractor) -> None:
        now = time.perf_counter()
        for j in jobs:
            j.started = now
        frames = [j for j in jobs if j.frame is not None and j.carry is None]
        carried = [j for j in jobs if j.carry is not None]
        calls = [j for j in jobs if j.frame is None]
        if len(frames) > 1:
            try:
                results = extractor.extract_batch([j.frame for j in frames])
            except BaseException:  # one bad frame must not fail the others: retry one by one
                results = None
            if results is not None:
                for j, r in zip(frames, results):
                    j.future.set_result(JobResult(r, j.started - j.enqueued))
                frames = []
        for j in frames:
            self._settle(j, lambda f=j.frame: extractor.extract(f))
        for j in carried:
            self._settle(j, lambda f=j.frame, c=j.carry: extractor.extract(f, carry=c))
            j.carry.release()
        for j in calls:
            self._settle(j, j.fn)

    @staticmethod
    def _settle(job: Job, fn: Callable[[], Any]) -> None:
        try:
            job.future.set_result(JobResult(fn(), job.started - job.enqueued))
        except BaseException as e:  # delivered to the waiting handler
            job.future.set_exception(e)

    # --- stopping -----------------------------------------------------------------------------

    def close(self, timeout: float | None = None) -> bool:
        """Stop accepting work, let the workers finish what is queued, join them. False when
        one is still running after `timeout` s (inside a model call, which cannot be cut short)."""
        if not self._closed.is_set():
            self._closed.set()
            for _ in self._threads:
                self._q.put(None)
        end = None if timeout is None else time.monotonic() + timeout
        for t in self._threads:
            t.join(None if end is None else max(0.0, end - time.monotonic()))
        return not any(t.is_alive() for t in self._threads)
