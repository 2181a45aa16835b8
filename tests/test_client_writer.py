"""The clients' background output writer: order, errors surfacing, its bound, and stopping."""

from __future__ import annotations

import threading

import pytest
from support_service import wait_until

from regiond.client.writer import BackgroundWriter, WriterError


def test_jobs_run_in_order_and_close_waits_for_them():
    done = []
    with BackgroundWriter(bound=2) as w:
        for i in range(20):
            w.submit(done.append, i)
    assert done == list(range(20))
    assert not w._thread.is_alive()


def test_a_failing_job_surfaces_in_submit_and_close():
    done = []

    def boom():
        raise OSError(28, "No space left on device")

    w = BackgroundWriter(bound=4)
    w.submit(boom)
    w.submit(done.append, 1)  # queued behind the failure: dropped

    def submit_raises() -> bool:
        try:
            w.submit(done.append, 2)
        except WriterError as e:
            assert "No space left" in str(e) and isinstance(e.__cause__, OSError)
            return True
        return False

    assert wait_until(submit_raises, 10)  # the error shows at a later submit ...
    with pytest.raises(WriterError, match="No space left"):  # ... and at close
        w.close()
    assert not w._thread.is_alive() and done == []


def test_submit_blocks_while_the_queue_is_full():
    release = threading.Event()
    w = BackgroundWriter(bound=2)
    w.submit(release.wait)  # the writer is busy with this one
    w.submit(lambda: None)
    w.submit(lambda: None)  # the queue holds `bound` jobs
    returned = threading.Event()
    t = threading.Thread(target=lambda: (w.submit(lambda: None), returned.set()))
    t.start()
    assert not returned.wait(0.5)  # blocked: nothing accumulates
    release.set()
    assert returned.wait(10)
    t.join()
    w.close()


def test_leaving_by_an_exception_drops_waiting_jobs_and_joins():
    release = threading.Event()
    done = []
    with pytest.raises(KeyboardInterrupt):
        with BackgroundWriter(bound=8) as w:
            w.submit(release.wait, 10)
            for i in range(5):
                w.submit(done.append, i)
            threading.Timer(0.2, release.set).start()
            raise KeyboardInterrupt
    assert not w._thread.is_alive() and done == []
