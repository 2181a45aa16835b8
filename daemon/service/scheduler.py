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
  with `wait_result`, stops waiting then too;
- each stream is a lane of its own (as is each unary call): the lanes take turns (fair
  queueing), so streams share the models evenly however many frames each keeps queued;
- a live stream's new frame drops the frames of its lane still queued (Overtaken): the
  newest frame wins and the stream's latency stays bounded.

A job's future resolves to a JobResult: the value and how long the job waited in the queue.

A worker takes up to `max_batch` queued extraction jobs at once and hands them to
`extractor.extract_batch(frames)` when the extractor has one (models that batch across
images: frames from concurrent streams share one forward pass); otherwise it runs them one
by one, which is what the CPU `lite` profile wants.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Hashable
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
    tag: int = 0  # its turn (start-time fair queueing: the lowest tag is served first)


class Overtaken(Cancelled):
    """A live stream's queued frame that a newer frame of the same stream replaced (dropped
    unprocessed: the newest frame wins)."""


class Scheduler:
    """Bounded queue + worker threads in front of an Extractor, serving its lanes in turn.

    A lane is one stream (its session id) or one unary call: each lane's jobs run in order,
    and the lanes take turns (start-time fair queueing): a job's turn is its lane's previous
    job's turn + 1, or the turn now being served if that is later, and the lowest turn goes
    first (ties: the older job). So a client that keeps many frames queued waits its turn
    like one that keeps one (first come first served would let it starve the others), and a
    live stream whose next frame comes just after its turn has passed is served next, not
    after a whole round of the others.

    extractor  a FrameExtractor, or a list of them, one per worker: models with per-call
               state (SAM's predictor keeps the current image) must not be shared between workers
    capacity   jobs waiting at most, all lanes together (not counting the ones being run)
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
        self.workers = workers
        # batch only where it pays: an Extractor says so (`can_batch`: its backbone runs several
        # frames in one pass); batching a per-frame backbone would only delay the first frame
        self.max_batch = max_batch if self.extractor.can_batch else 1
        self._cond = threading.Condition()
        self._lanes: dict[Hashable, deque[Job]] = {}  # lane → its queued jobs, oldest first
        self._next_turn: dict[Hashable, int] = {}  # lane → the turn its next job gets at the earliest
        self._turn = 0  # the turn being served
        self._queued = 0
        self._running = 0
        self._on_depth = on_depth or (lambda n: None)
        self._closed = False
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
        return self._queued

    @property
    def busy(self) -> int:
        """Jobs queued or running."""
        with self._cond:
            return self._queued + self._running

    def submit_extract(
        self,
        frame: Frame,
        alive: Callable[[], bool],
        wait: float | None = None,
        carry: Any = None,
        lane: Hashable | None = None,
        newest: bool = False,
    ) -> Future:
        """Queue an extraction; the future resolves to JobResult[RegionSet]. `carry`: the
        frame's turn in a stream that carries masks (regiond.masks.carry.CarryTicket); such
        frames run one by one, never in a batch. `lane`: the stream's key (None: a lane of its
        own). `newest`: a live stream's frame; the lane's extractions still queued are dropped
        (their futures raise Overtaken)."""
        return self._submit(Job(Future(), alive, frame=frame, carry=carry), wait, lane, newest)

    def submit_call(
        self, fn: Callable[[], T], alive: Callable[[], bool], wait: float | None = None, lane: Hashable | None = None
    ) -> Future:
        """Queue a call; the future resolves to JobResult[T]."""
        return self._submit(Job(Future(), alive, fn=fn), wait, lane)

    def _submit(self, job: Job, wait: float | None, lane: Hashable | None, newest: bool = False) -> Future:
        """wait=None blocks (polling `alive`) until there is room; a number waits that long."""
        deadline = None if wait is None else time.monotonic() + wait
        lane = object() if lane is None else lane
        overtaken: list[Job] = []
        try:
            with self._cond:
                while True:
                    if self._closed:
                        raise ShuttingDown("the daemon is shutting down")
                    if not job.alive():
                        raise Cancelled("call ended while waiting for the queue")
                    if newest:
                        overtaken += self._drop_frames(lane)
                    if self._queued < self.capacity:
                        self._enqueue(lane, job)
                        break
                    step = _POLL if deadline is None else min(_POLL, deadline - time.monotonic())
                    if step <= 0:
                        raise QueueFull(f"work queue full ({self.capacity} jobs) for {wait:.2f} s")
                    self._cond.wait(step)
        finally:
            for j in overtaken:
                _drop(j, Overtaken("a newer frame of the live stream overtook it"))
            self._on_depth(self._queued)
        return job.future

    def _enqueue(self, lane: Hashable, job: Job) -> None:
        job.tag = max(self._turn, self._next_turn.get(lane, 0))
        self._next_turn[lane] = job.tag + 1
        self._lanes.setdefault(lane, deque()).append(job)
        self._queued += 1
        self._cond.notify_all()

    def _drop_frames(self, lane: Hashable) -> list[Job]:
        """Take the lane's queued extractions out of the queue (its calls stay)."""
        jobs = self._lanes.get(lane)
        if not jobs:
            return []
        dropped = [j for j in jobs if j.frame is not None]
        if dropped:
            kept = [j for j in jobs if j.frame is None]
            jobs.clear()
            jobs.extend(kept)
            self._queued -= len(dropped)
            # the turns of dropped jobs are given back: the frame replacing them takes the first
            self._next_turn[lane] = kept[-1].tag + 1 if kept else dropped[0].tag
            if not jobs:
                del self._lanes[lane]
            self._cond.notify_all()
        return dropped

    # --- working ------------------------------------------------------------------------------

    def _take(self) -> list[Job]:
        """The queued jobs with the lowest turns, one lane's oldest at a time: up to max_batch
        extractions (a call goes alone, or ends a batch). [] once closed and drained."""
        with self._cond:
            while not self._lanes and not self._closed:
                self._cond.wait()
            jobs: list[Job] = []
            while self._lanes and len(jobs) < self.max_batch:
                lane, lane_jobs = min(self._lanes.items(), key=lambda kv: (kv[1][0].tag, kv[1][0].enqueued))
                job = lane_jobs.popleft()
                if not lane_jobs:
                    del self._lanes[lane]
                self._turn = max(self._turn, job.tag)
                jobs.append(job)
                if job.frame is None or jobs[0].frame is None:
                    break
            # lanes without queued jobs whose next turn has come need no record
            for lane in [k for k, t in self._next_turn.items() if t <= self._turn and k not in self._lanes]:
                del self._next_turn[lane]
            self._queued -= len(jobs)
            self._running += len(jobs)
            self._cond.notify_all()
            return jobs

    def _work(self, extractor: FrameExtractor) -> None:
        _local.worker = True
        while True:
            jobs = self._take()
            self._on_depth(self._queued)
            if not jobs:
                return
            live = []
            for j in jobs:
                if j.alive() and j.future.set_running_or_notify_cancel():
                    live.append(j)
                else:
                    _drop(j, Cancelled("call ended before its job ran"))
            try:
                self._run(live, extractor)
            finally:
                with self._cond:
                    self._running -= len(jobs)

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
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        end = None if timeout is None else time.monotonic() + timeout
        for t in self._threads:
            t.join(None if end is None else max(0.0, end - time.monotonic()))
        return not any(t.is_alive() for t in self._threads)


def _drop(job: Job, error: Cancelled) -> None:
    """A job that will not run: its carry turn is given up (the stream's later frames must not
    wait for it) and its waiter gets `error`."""
    if job.carry is not None:
        job.carry.release()
    if not job.future.done():
        job.future.set_exception(error)
