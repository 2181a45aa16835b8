"""scan_scene's --nice: the client's work threads at background CPU priority beside a daemon on
this machine (regiond.client.priority), and nothing else lowered."""

from __future__ import annotations

import os
import sys
import threading

import pytest

from regiond.client.priority import BACKGROUND_NICE, MAX_NICE, background_niceness, lower_thread_priority
from regiond.client.writer import BackgroundWriter

linux = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="threads have their own niceness on Linux")


def own_niceness() -> int:
    return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())


def in_thread(fn):
    out = []
    t = threading.Thread(target=lambda: out.append(fn()))
    t.start()
    t.join()
    return out[0]


def test_default_niceness_follows_where_the_daemon_runs():
    assert background_niceness(None, "127.0.0.1:50051") == BACKGROUND_NICE
    assert background_niceness(None, "localhost:50051") == BACKGROUND_NICE
    assert background_niceness(None, "[::1]:50051") == BACKGROUND_NICE
    assert background_niceness(None, "10.0.0.7:50051") == 0  # another machine: nothing to yield to
    assert background_niceness(None, "gpu-box:50051") == 0
    assert background_niceness(0, "127.0.0.1:50051") == 0  # given: as given
    assert background_niceness(19, "10.0.0.7:50051") == 19


@linux
def test_only_the_calling_thread_is_lowered():
    main = own_niceness()

    def lowered():
        lower_thread_priority(5)
        return own_niceness()

    assert in_thread(lowered) == min(MAX_NICE, own_niceness() + 5)
    assert own_niceness() == main  # the process and its other threads: unchanged
    assert in_thread(own_niceness) == main  # a new thread starts at the process's

    def twice():
        lower_thread_priority(15)
        lower_thread_priority(15)
        return own_niceness()

    assert in_thread(twice) == MAX_NICE  # capped, not an error
    lower_thread_priority(0)
    assert own_niceness() == main


@linux
def test_the_background_writer_runs_its_jobs_at_its_niceness():
    seen = []
    with BackgroundWriter(2, nice=7) as writer:
        writer.submit(lambda: seen.append(own_niceness()))
    assert seen == [min(MAX_NICE, own_niceness() + 7)]
    with BackgroundWriter(2) as writer:  # by default: as started
        writer.submit(lambda: seen.append(own_niceness()))
    assert seen[1] == own_niceness()


@linux
def test_a_refused_priority_change_leaves_the_work_going(monkeypatch):
    """A sandbox may refuse setpriority: the writer still runs its jobs (no hang, no error)."""

    def refused(*args):
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(os, "setpriority", refused)
    done = []
    with BackgroundWriter(1, nice=10) as writer:
        for k in range(5):  # more than its bound: a dead writer thread would block submit()
            writer.submit(done.append, k)
    assert done == [0, 1, 2, 3, 4]
    lower_thread_priority(10)  # and in the caller's thread


@pytest.mark.parametrize("value", ["20", "-1", "high"])
def test_scan_scene_refuses_a_niceness_outside_0_to_19(value, capsys):
    from regiond.client import scan_scene

    with pytest.raises(SystemExit) as e:
        scan_scene.main(["synthetic:1", "--nice", value])
    assert e.value.code == 2
    assert "--nice" in capsys.readouterr().err
