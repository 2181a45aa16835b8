"""The daemon's start-up as its log and its clients see it.

`regiond serve` loads the models, opens its port with grpc.health.v1 NOT_SERVING, then runs
the slow steps (the warm-up, opening the region index, which may fit the search normaliser)
and only then reports SERVING. Meanwhile GetInfo answers at once with the state and the step,
and the calls that need the models answer UNAVAILABLE with the same words and a
`retry-after-ms` hint. Each step logs a line with the seconds since the start, and a long
step (the normaliser fit) its progress every tenth.
"""

from __future__ import annotations

import logging
import threading
import time

log = logging.getLogger(__name__)

#: trailing metadata of an UNAVAILABLE answer during start-up: milliseconds worth waiting
RETRY_AFTER_KEY = "retry-after-ms"
RETRY_AFTER_MS = (500, 10_000)  # the hint's bounds: a client checks back at least every 10 s
STARTING, SERVING, STOPPING, FAILED = "starting", "serving", "stopping", "failed"


class StartupCancelled(Exception):
    """The daemon was told to stop while it was starting."""


class Startup:
    """Where the start-up is. Thread-safe: the start-up thread moves it on, RPC handlers read it.

    t0  time.monotonic() when the daemon began (the process, for `regiond serve`)"""

    def __init__(self, t0: float | None = None):
        self.t0 = time.monotonic() if t0 is None else t0
        self._lock = threading.Lock()
        self.state = STARTING
        self.step = "loading models"
        self._step_t0 = self.t0
        self._done = self._total = 0
        self._logged_tenth = 0
        self.cancelled = threading.Event()
        self.finished = threading.Event()  # serving, failed or cancelled
        self.error: BaseException | None = None

    def elapsed(self) -> float:
        return time.monotonic() - self.t0

    def note(self, message: str, *args) -> None:
        """A start-up log line, stamped with the seconds since the start."""
        log.info("start-up [%5.1f s] " + message, self.elapsed(), *args)

    def begin(self, step: str, detail: str = "") -> None:
        """A new step (StartupCancelled when the daemon is stopping)."""
        self.check()
        with self._lock:
            self.step, self._step_t0 = step, time.monotonic()
            self._done = self._total = self._logged_tenth = 0
        self.note("%s%s", step, f" ({detail})" if detail else "")

    def progress(self, done: int, total: int) -> None:
        """`done` of `total` units of the current step; logged at every tenth. Raises
        StartupCancelled when the daemon is stopping, which ends the step there."""
        with self._lock:
            self._done, self._total = done, total
            tenth = (10 * done) // max(total, 1)
            due = tenth > self._logged_tenth
            if due:
                self._logged_tenth = tenth
        if due:
            self.note("%s", self._describe_step())
        self.check()

    def check(self) -> None:
        if self.cancelled.is_set():
            raise StartupCancelled(self.step)

    def serving(self) -> None:
        with self._lock:
            self.state, self.step = SERVING, ""
        self.finished.set()

    def fail(self, error: BaseException) -> None:
        with self._lock:
            self.state, self.error = FAILED, error
        self.finished.set()

    def stop(self) -> None:
        """The daemon is stopping: the start-up ends at its next check."""
        with self._lock:
            if self.state != FAILED:
                self.state = STOPPING
        self.cancelled.set()

    # --- what clients are told -----------------------------------------------------------------

    def _describe_step(self) -> str:
        """Under the lock or from its holder: "STEP: DONE/TOTAL (P %), about S s left"."""
        if not self._total:
            return self.step
        pct = 100 * self._done // self._total
        left = self._seconds_left()
        eta = f", about {left:.0f} s left" if left is not None and self._done < self._total else ""
        return f"{self.step}: {self._done}/{self._total} ({pct} %){eta}"

    def _seconds_left(self) -> float | None:
        if not self._total or not self._done:
            return None
        spent = time.monotonic() - self._step_t0
        return spent * (self._total - self._done) / self._done

    def describe(self) -> str:
        """The step running and its progress ("" once serving)."""
        with self._lock:
            return self._describe_step() if self.state == STARTING else ""

    def retry_after_ms(self) -> int:
        """How long a client should wait before trying again: the current step's estimated
        remainder where it reports progress, else a second; within RETRY_AFTER_MS."""
        with self._lock:
            left = self._seconds_left()
        ms = 1000 if left is None else int(left * 1000)
        return max(RETRY_AFTER_MS[0], min(RETRY_AFTER_MS[1], ms))

    def unavailable_message(self) -> str:
        """Why a call that needs the models cannot run yet."""
        with self._lock:
            state, what = self.state, self._describe_step()
        if state == STARTING:
            return (
                f"regiond is starting ({what}; {self.elapsed():.0f} s since start): retry later, "
                "or wait for grpc.health.v1 to report SERVING"
            )
        if state == FAILED:
            return f"regiond failed to start: {self.error}"
        return "the daemon is shutting down"
