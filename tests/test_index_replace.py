"""Replacing an indexed image is atomic for readers: a region lookup of that image never finds
it missing half-way (the soak found `'img4' is not indexed` from a Search racing a replace)."""

from __future__ import annotations

import threading
import time

from support_index import open_at, region_set

from regiond.core.errors import InputError


def test_region_lookup_never_sees_a_replaced_image_missing(tmp_path):
    idx = open_at(tmp_path, "faiss")
    idx.add("img", region_set(0, n=3), {})
    stop, failures = threading.Event(), []

    def replace():
        i = 1
        while not stop.is_set():
            idx.add("img", region_set(i, n=3), {}, on_exists="replace")
            i += 1

    t = threading.Thread(target=replace)
    t.start()
    lookups, end = 0, time.monotonic() + 3
    try:
        while time.monotonic() < end:
            try:
                idx.region_vector("img", 0)
            except InputError as e:
                failures.append(str(e))
            lookups += 1
    finally:
        stop.set()
        t.join()
        idx.close()
    assert lookups > 100 and not failures, failures[:3]
