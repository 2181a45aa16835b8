"""Live streaming for the clients: the newest frame wins, the latency stays bounded.

A live source (a camera, or a file played at its own rate with --live) does not wait for the
daemon. `LatestFrame` reads it on a thread of its own at the source's pace and keeps only the
newest frame; `LiveFeed` sends that frame whenever one of its few in-flight slots is free
(the daemon's workers + 1: one frame running per worker and one queued behind them, so the
daemon never idles and no frame waits long). The frames that came in between are dropped
here, before they cost the daemon anything; the daemon drops the ones a newer frame overtook
in its queue and says so in the next update's `skipped`. Both count in the drop rate.

Clients use only the generated API code and `scenes`, never the daemon's internals.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Iterator

#: in-flight frames when the daemon does not say how many workers it runs
DEFAULT_IN_FLIGHT = 2
#: the first lead (share of one frame's processing) of the frame queued behind the running
#: ones, and the share of a processing such a frame should wait in the daemon's queue, which the
#: lead is tuned for
LEAD = 0.3
WAIT = 0.15


def in_flight_for(info, asked: int = 0) -> int:
    """Frames a live client keeps in flight: `asked` (--in-flight) when given, else the
    daemon's workers + 1 (ServerInfo.workers; a daemon that does not say: DEFAULT_IN_FLIGHT)."""
    if asked > 0:
        return asked
    workers = int(getattr(info, "workers", 0) or 0)
    return workers + 1 if workers else DEFAULT_IN_FLIGHT


class LatestFrame:
    """The newest frame of a source read on its own thread. A file (frames with times) is
    played at its own rate (`pace`); a camera paces itself. Every frame gets
    meta["captured"]: the perf_counter instant it became current, which latencies count from.

    frames   read: frames read from the source; dropped: indices of those replaced by a newer
             one before anyone took them"""

    def __init__(self, frames: Iterable, pace: bool = True):
        self._frames = iter(frames)
        self._pace = pace
        self._cond = threading.Condition()
        self._newest = None
        self._ended = False
        self._stop = threading.Event()
        self.read = 0
        self.dropped: list[int] = []
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="live-source", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        t0 = src0 = None
        try:
            for f in self._frames:
                if self._stop.is_set():
                    return
                if self._pace and f.time is not None:
                    if t0 is None:
                        t0, src0 = time.perf_counter(), f.time
                    due = t0 + (f.time - src0)
                    while not self._stop.is_set() and time.perf_counter() < due:
                        time.sleep(min(0.05, max(0.0, due - time.perf_counter())))
                f.meta["captured"] = time.perf_counter()
                with self._cond:
                    if self._newest is not None:
                        self.dropped.append(int(self._newest.index))
                    self._newest = f
                    self.read += 1
                    self._cond.notify_all()
        except BaseException as e:  # surfaced by take()
            self.error = e
        finally:
            with self._cond:
                self._ended = True
                self._cond.notify_all()

    def take(self, stop: threading.Event):
        """The newest frame not yet taken, waiting for one; None once the source has ended (or
        `stop` is set). Raises what reading the source raised."""
        with self._cond:
            while self._newest is None and not self._ended:
                if stop.is_set():
                    return None
                self._cond.wait(0.05)
            f, self._newest = self._newest, None
            if f is None and self.error is not None:
                raise self.error
            return f

    def close(self, timeout: float = 10.0) -> None:
        """Stop reading and wait for the reading thread (it may be inside a decoder, which must
        not outlive the interpreter)."""
        self._stop.set()
        self._thread.join(timeout)


class LiveFeed:
    """What a live stream sends: the source's newest frame whenever one of `in_flight` slots
    is free. A reply frees its frame's slot, and those of the frames it says the daemon
    skipped. After a reconnect, the frames that were in flight count as lost.

    The frame that will wait behind the running ones (the last slot) is taken just in time,
    a lead before our frame in front of it should be done (the interval between replies
    while the daemon had a frame of ours: one frame's processing per worker when the stream
    is alone, a round of all streams when others share the daemon), not as soon as its slot
    frees, which would make it wait a whole processing and so be that much older when its
    turn comes. The lead is a share of one frame's processing (the reply's server_seconds
    less its queueing), never of the interval: with other streams the frame in front is
    still queued until one processing before it is done, and a frame sent before then would
    overtake it. The lead adapts: sending, decoding and queueing a frame take their own time
    (a raw 1080p frame is 6 MB), so it is tuned until such frames wait about WAIT of a
    processing in the daemon's queue (its reply's stage_seconds["queue"]): the daemon never
    idles for them, and their latency is about one processing instead of two. Once the frames
    in front are answered, the frame waits behind nothing and goes at once (a stream whose
    lane stays empty for a whole round of the others loses its turn)."""

    def __init__(self, latest: LatestFrame, in_flight: int):
        self.latest = latest
        self.in_flight = max(1, int(in_flight))
        self._slots = threading.Semaphore(self.in_flight)
        self._lock = threading.Lock()
        self._sent: dict[int, object] = {}  # index → frame, sent and not answered
        self.skipped = 0  # by the daemon (overtaken in its queue)
        self.lost = 0  # in flight when the connection was lost
        self.reported = 0  # client drops already listed in an update's record
        self.interval: float | None = None  # seconds between replies while the daemon had ours (EWMA)
        self.processing: float | None = None  # one frame's time in the daemon, not queued (EWMA)
        self._last_reply: float | None = None  # when the last reply came
        self._idle = 0.0  # how long after it the daemon had none of our frames (we had none to send)
        self._due = 0.0  # perf_counter instant the last slot's frame is taken at
        self.lead = LEAD  # share of a processing it is taken before the frame in front should be done
        self._behind: set[int] = set()  # frames sent to wait behind running ones (they tune the lead)

    def frames(self, stop: threading.Event) -> Iterator:
        """Frames to send, until the source ends or `stop` is set."""
        while not stop.is_set():
            if not self._slots.acquire(timeout=0.05):
                continue
            # asked again while waiting: once the frames ahead are answered the frame no longer
            # waits behind anything (the stream's lane is empty), and goes at once
            while not stop.is_set() and self._behind_ahead() and time.perf_counter() < self._due:
                time.sleep(min(0.01, max(0.0, self._due - time.perf_counter())))
            f = self.latest.take(stop)
            if f is None:
                self._slots.release()
                return
            with self._lock:
                behind = self._behind_ahead()
                if not self._sent and self._last_reply is not None:
                    self._idle = time.perf_counter() - self._last_reply  # the daemon had none of ours
                self._sent[int(f.index)] = f
                if behind and self.interval is not None:
                    self._behind.add(int(f.index))
            yield f

    def _behind_ahead(self) -> bool:
        """Whether a frame sent now would wait behind ones in flight (it takes the last slot)."""
        return self.in_flight > 1 and len(self._sent) >= self.in_flight - 1

    def answered(
        self,
        frame_index: int,
        skipped: Iterable[int] = (),
        queue_seconds: float | None = None,
        server_seconds: float | None = None,
    ):
        """The frame an update answers (None if unknown: answered before a reconnect), after
        freeing its slot and those of the frames the daemon skipped; `queue_seconds`: how long
        it waited in the daemon's queue (the reply's stage_seconds["queue"]), which tunes the
        lead; `server_seconds`: its time in the daemon, queueing included (the reply's), which
        less the queueing is one frame's processing."""
        now = time.perf_counter()
        index = int(frame_index)
        with self._lock:
            f = self._sent.pop(index, None)
            gone = [self._sent.pop(int(s), None) for s in skipped]
            idle, self._idle = self._idle, 0.0
        if f is not None:
            if self._last_reply is not None:
                # the time since the last reply while the daemon had a frame of ours
                gap = max(0.0, now - self._last_reply - idle)
                self.interval = gap if self.interval is None else 0.7 * self.interval + 0.3 * gap
            if server_seconds is not None and queue_seconds is not None:
                busy = max(0.0, server_seconds - queue_seconds)
                self.processing = busy if self.processing is None else 0.7 * self.processing + 0.3 * busy
            one = self._one_processing()
            if index in self._behind and one and queue_seconds is not None:
                self._behind.discard(index)
                waited = queue_seconds / one
                self.lead = min(1.0, max(0.05, self.lead + 0.5 * (WAIT - waited)))
            self._last_reply = now
            if self.interval is not None:
                self._due = now + self.interval - self.lead * one
        self.skipped += sum(g is not None for g in gone)
        for _ in range(sum(g is not None for g in gone) + (f is not None)):
            self._slots.release()
        return f

    def reconnected(self) -> None:
        """The stream starts again on a new call: what was in flight is lost, the slots free."""
        with self._lock:
            self.lost += len(self._sent)
            self._sent.clear()
        self._slots = threading.Semaphore(self.in_flight)
        self._last_reply, self._due, self._idle = None, 0.0, 0.0
        self._behind.clear()

    def _one_processing(self) -> float:
        """One frame's processing, which the lead is a share of: the daemon's own figure, or the
        reply interval while it says none. With other streams sharing the daemon the interval
        is a round of all of them, and a frame sent a share of it early would overtake the frame
        of ours still queued in front of it (and be the one left to wait a whole round)."""
        if self.interval is None:
            return 0.0
        return self.interval if self.processing is None else min(self.processing, self.interval)

    def drops(self, processed: int) -> tuple[int, int]:
        """(frames the source gave, frames dropped: by the client, skipped by the daemon, lost)."""
        read = self.latest.read
        return read, max(0, read - processed)

    def drop_line(self, processed: int) -> str:
        read, dropped = self.drops(processed)
        share = 100.0 * dropped / read if read else 0.0
        return (
            f"live: {dropped} of {read} frames dropped ({share:.1f} %): {len(self.latest.dropped)} by the client "
            f"(a newer frame came before a slot was free), {self.skipped} skipped by the daemon, {self.lost} lost "
            f"in reconnects; {self.in_flight} frames in flight, the last sent {self.lead:.2f} of a processing early"
        )
