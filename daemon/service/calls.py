"""What a handler adds to its call's log line.

The interceptor opens a record for every call before the handler runs and writes it into the
call's structured log line when the call ends; a handler adds to it with
`calls.stats(context).update(frames=..., regions=...)`. A handler run without the
interceptor (a test calling the servicer directly) gets a record nobody reads.
"""

from __future__ import annotations

import threading
from typing import Any

CallStats = dict[str, Any]


class CallLog:
    """Open calls' records, keyed by their ServicerContext."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._open: dict[int, CallStats] = {}

    def open(self, context: Any) -> CallStats:
        stats: CallStats = {}
        with self._lock:
            self._open[id(context)] = stats
        return stats

    def stats(self, context: Any) -> CallStats:
        with self._lock:
            return self._open.get(id(context), {})

    def close(self, context: Any) -> CallStats:
        with self._lock:
            return self._open.pop(id(context), {})
