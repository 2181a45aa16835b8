"""A fixed set of SQLite read connections, opened with the store and lent one query at a time.

Why fixed: a connection per thread, opened the first time a thread read, grew the daemon's
open descriptors whenever another gRPC handler thread first searched (+2 each: the database
and its WAL; SQLite shares the -shm per process), so a soak saw them drift. These are all
opened up front, WAL files included, and closed together: the descriptor count is the same
from the first request to close(), whichever threads read.

A connection is held only while one store method runs its query to the end (never across a
yield, never while its caller waits on a lock), so borrowers wait only for another query to
finish and cannot deadlock on each other.
"""

from __future__ import annotations

import queue
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager

#: Read connections per store: more than the queries that overlap on a few cores; a reader
#: finding all of them lent waits for one query, not for a lock.
READERS = 4


class ReadPool:
    def __init__(self, connect: Callable[[], sqlite3.Connection], size: int = READERS):
        if size < 1:
            raise ValueError(f"a read pool needs at least one connection, not {size}")
        self._all: list[sqlite3.Connection] = []
        try:
            for _ in range(size):
                self._all.append(connect())
        except BaseException:
            self.close()
            raise
        self._idle: queue.SimpleQueue[sqlite3.Connection] = queue.SimpleQueue()
        for con in self._all:
            self._idle.put(con)

    @contextmanager
    def connection(self) -> Iterator[sqlite3.Connection]:
        """Borrow a connection for one query; blocks while all are lent."""
        con = self._idle.get()
        try:
            yield con
        finally:
            self._idle.put(con)

    def close(self):
        """Close every connection (a later borrow gets a closed one: sqlite3.ProgrammingError)."""
        for con in self._all:
            try:
                con.close()
            except sqlite3.Error:
                pass
