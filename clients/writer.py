"""A bounded background thread for a client's per-frame output work (drawing, PNG encoding,
writing files), so the thread reading the daemon's replies never waits on the disk.

numpy, OpenCV's PNG encoder and file writes release the GIL, so the work overlaps with the
gRPC threads. The queue has a bound: when output work falls behind, submit() blocks, and the
daemon sees backpressure instead of the client's memory growing.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable

from regiond.client.priority import lower_thread_priority

_STOP = object()


class WriterError(RuntimeError):
    """An output job failed; the scan stops rather than go on with missing outputs."""


class BackgroundWriter:
    """Runs submitted jobs in order on one thread, at most `bound` waiting.

    The first job that raises stops the writer: later jobs are dropped, and submit() and
    close() raise WriterError with the cause. Use as a context manager: leaving the block
    normally waits for every job; leaving it by an exception (Ctrl-C included) drops the
    jobs still waiting and joins the thread after the one in progress. `nice`: the thread's
    CPU priority is lowered by this much (priority.lower_thread_priority).
    """

    def __init__(self, bound: int = 8, name: str = "output-writer", nice: int = 0):
        self._nice = nice
        self._jobs: queue.Queue = queue.Queue(maxsize=bound)
        self._error: BaseException | None = None
        self._dropping = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def submit(self, fn: Callable, *args) -> None:
        """Queue fn(*args); blocks while `bound` jobs wait. Raises WriterError after a failure."""
        self._raise_error()
        while True:
            try:
                self._jobs.put((fn, args), timeout=0.2)
                return
            except queue.Full:
                self._raise_error()  # the writer may have died while we waited

    def close(self) -> None:
        """Wait for every queued job, stop the thread, raise WriterError if a job failed."""
        self._put_stop()
        self._thread.join()
        self._raise_error()

    def abort(self) -> None:
        """Drop the jobs still waiting, let the one in progress finish, stop the thread."""
        self._dropping.set()
        self._put_stop()
        self._thread.join()

    def __enter__(self) -> BackgroundWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    def _put_stop(self) -> None:
        while self._thread.is_alive():
            try:
                self._jobs.put(_STOP, timeout=0.2)
                return
            except queue.Full:
                continue

    def _raise_error(self) -> None:
        if self._error is not None:
            raise WriterError(f"{type(self._error).__name__}: {self._error}") from self._error

    def _run(self) -> None:
        lower_thread_priority(self._nice)
        while True:
            job = self._jobs.get()
            if job is _STOP:
                return
            if self._error is not None or self._dropping.is_set():
                continue
            fn, args = job
            try:
                fn(*args)
            except BaseException as e:  # surfaced in the submitting thread
                self._error = e
