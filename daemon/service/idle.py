"""Closing calls whose client stopped sending (slowloris): `--idle-timeout`.

A stream's request iterator is wrapped in an IdleWatch, which knows how long the daemon has
been waiting for the client's next message. Whoever owns the call's handler thread checks it
while it has nothing else to do (a stream's responder when no frame is in flight; IndexImages
between images, reading ahead with `prefetched`) and ends the call with DEADLINE_EXCEEDED.
Time the daemon spends working (a full queue, a slow model) never counts as idle.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterator
from typing import Any

import grpc

_POLL = 0.05
_END = object()


class IdleWatch:
    """requests  the call's request iterator
    timeout   seconds the daemon waits for one message (0 or None: forever)"""

    def __init__(self, requests: Iterator[Any], timeout: float | None):
        self._it = iter(requests)
        self.timeout = float(timeout or 0)
        self._waiting_since: float | None = None

    def __iter__(self) -> IdleWatch:
        return self

    def __next__(self) -> Any:
        self._waiting_since = time.monotonic()
        try:
            return next(self._it)
        finally:
            self._waiting_since = None

    def expired(self) -> bool:
        """Waiting for the client's next message for longer than the timeout."""
        since = self._waiting_since
        return bool(self.timeout) and since is not None and time.monotonic() - since > self.timeout

    def abort(self, context: grpc.ServicerContext) -> None:
        context.abort(
            grpc.StatusCode.DEADLINE_EXCEEDED,
            f"no request message for {self.timeout:g} s (the daemon's --idle-timeout): call closed",
        )


def prefetched(watch: IdleWatch, context: grpc.ServicerContext) -> Iterator[Any]:
    """The watched requests, read ahead by one on a helper thread so that the handler thread
    can end the call when the client goes idle. Reader errors (the client went away) end the
    iteration; the helper stops when the call or this generator ends."""
    box: queue.Queue = queue.Queue(maxsize=1)
    done = threading.Event()

    def put(item: Any) -> None:
        while not done.is_set():
            try:
                box.put(item, timeout=_POLL)
                return
            except queue.Full:
                continue

    def read() -> None:
        try:
            for req in watch:
                put(req)
                if done.is_set():
                    return
        except grpc.RpcError:
            pass
        finally:
            put(_END)

    threading.Thread(target=read, name="regiond-prefetch", daemon=True).start()
    try:
        while True:
            try:
                item = box.get(timeout=_POLL)
            except queue.Empty:
                if watch.expired():
                    watch.abort(context)
                if not context.is_active():
                    return
                continue
            if item is _END:
                return
            yield item
    finally:
        done.set()
