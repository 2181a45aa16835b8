"""The index's SQLite readers are a fixed pool opened with the store (issue 12's soak saw the
daemon's descriptors grow by two whenever another gRPC thread first searched: a connection per
thread, opened lazily and kept after the thread ended)."""

from __future__ import annotations

import os
import sqlite3
import threading

import numpy as np
import pytest
from support_index import image_id, open_at, region_set

from regiond.index.embedded.readers import READERS, ReadPool
from regiond.index.embedded.store import SQLiteStore


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def in_new_threads(fn, n: int, at_once: int = 8):
    """fn() in n threads that never ran before, `at_once` alive together; their exceptions re-raised."""
    errors = []

    def run():
        try:
            fn()
        except BaseException as e:  # noqa: BLE001 - re-raised in the test's thread
            errors.append(e)

    for start in range(0, n, at_once):
        threads = [threading.Thread(target=run) for _ in range(min(at_once, n - start))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
            assert not t.is_alive(), "a reader thread hung"
    if errors:
        raise errors[0]


def test_descriptors_stay_fixed_whichever_threads_query(tmp_path):
    before = open_fds()
    with open_at(tmp_path, "faiss") as idx:
        for i in range(12):
            idx.add(image_id(i), region_set(i), {"n": str(i)})
        q = region_set(3).features[0]
        assert idx.search(q, k=3)[0].image_id == image_id(3)
        opened = open_fds()

        def queries():
            assert idx.search(q, k=3)[0].image_id == image_id(3)
            assert len(idx.score_images(region_set(5).features[:2])) == 12  # every image's features
            assert image_id(7) in idx and len(idx.region_vector(image_id(7), 0)) == len(q)

        in_new_threads(queries, 40)
        assert open_fds() == opened, "queries from new threads opened descriptors"
        in_new_threads(lambda: idx.add(image_id(99), region_set(99), {}, on_exists="replace"), 4)
        assert open_fds() == opened
    assert open_fds() == before, "closing the index left descriptors open"


def test_more_readers_than_connections_all_finish(tmp_path):
    store = SQLiteStore(tmp_path / "x.sqlite", dim=4, readers=2)
    try:
        with store.write_lock:
            for i in range(5):
                store.add_image(
                    f"i{i}",
                    8,
                    8,
                    {},
                    [np.array([64], np.uint32)],
                    np.zeros((1, 4)),
                    np.array([64]),
                    np.full((1, 4), i, np.float32),
                )
        seen = []

        def reads():  # a generator that stops half-way must not keep a connection lent
            it = store.iter_features(batch=2)
            next(it)
            del it
            seen.append(sorted(k for k, _ in store.iter_features(batch=2)))

        in_new_threads(reads, 24, at_once=12)
        assert seen == [[1, 2, 3, 4, 5]] * 24
    finally:
        store.close()
    with pytest.raises(sqlite3.ProgrammingError):
        store.count_images()


def test_iter_features_pages_through_every_image_in_key_order(tmp_path):
    store = SQLiteStore(tmp_path / "x.sqlite", dim=4)
    try:
        with store.write_lock:
            for i in range(7):
                store.add_image(
                    f"i{i}",
                    8,
                    8,
                    {},
                    [np.array([64], np.uint32)],
                    np.zeros((1, 4)),
                    np.array([64]),
                    np.full((1, 4), i, np.float32),
                )
            store.remove_image(store.key_of("i3"))
        got = list(store.iter_features(batch=2))
        assert [k for k, _ in got] == [1, 2, 3, 5, 6, 7]
        assert [float(f[0, 0]) for _, f in got] == [0, 1, 2, 4, 5, 6]
    finally:
        store.close()


def test_pool_size_is_checked_and_a_failed_open_closes_what_it_opened(tmp_path):
    with pytest.raises(ValueError, match="at least one"):
        ReadPool(lambda: sqlite3.connect(":memory:"), 0)
    opened = []

    def connect():
        if len(opened) == 2:
            raise sqlite3.OperationalError("unable to open database file")
        opened.append(sqlite3.connect(tmp_path / "y.sqlite"))
        return opened[-1]

    with pytest.raises(sqlite3.OperationalError):
        ReadPool(connect, READERS)
    for con in opened:
        with pytest.raises(sqlite3.ProgrammingError):
            con.execute("SELECT 1")
