"""`regiond serve` as a user starts it: what it prints while starting."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter

from regiond.commands.serve import LISTENING_PREFIX, READY_PREFIX, spawn_daemon

FAISS_LOADER = ("Loading faiss", "Could not load library", "Successfully loaded faiss")


def test_serve_prints_each_startup_line_once_and_no_faiss_loader_line(tmp_path):
    """No weights (an empty --weights folder): the fallback-to-lite line, the listening line,
    the warm-up line and the ready line, each once and in that order; FAISS's loader (the
    region index loads it) says nothing."""
    (tmp_path / "weights").mkdir()
    log = tmp_path / "serve.log"
    proc, address = spawn_daemon(
        ["--listen", "127.0.0.1:0", "--data-dir", tmp_path / "d", "--weights", tmp_path / "weights"], log
    )
    try:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    lines = [line for line in log.read_text().splitlines() if line.strip()]
    startup = lines[: next(i for i, line in enumerate(lines) if line.startswith(READY_PREFIX)) + 1]
    assert not [line for line in lines if line.startswith(FAISS_LOADER) or "swigfaiss" in line], lines
    repeated = {line: n for line, n in Counter(startup).items() if n > 1}
    assert not repeated, f"printed more than once: {repeated}"
    assert sum("using the 'lite' profile" in line for line in startup) == 1
    described = f"{address} (profile lite, TLS off, token off)"
    listening = [i for i, line in enumerate(startup) if line.startswith(LISTENING_PREFIX + described)]
    warmed = [i for i, line in enumerate(startup) if re.match(r"start-up \[ *[\d.]+ s\] warmed up in", line)]
    assert len(listening) == len(warmed) == 1 and listening[0] < warmed[0] < len(startup) - 1, startup
    assert [line for line in lines if "serving" in line] == [startup[-1]]
    assert re.fullmatch(re.escape(READY_PREFIX + described) + r"; started in [\d.]+ s", startup[-1])


def test_start_up_objects_leave_full_collections_but_their_garbage_is_collected():
    """freeze_startup_objects (called once the daemon serves): what the start-up made is frozen,
    out of later full collections; a reference cycle the start-up dropped is collected first."""
    code = """
import gc, weakref
from regiond.commands.serve import freeze_startup_objects
class Node: pass
kept, cycle = Node(), Node()
cycle.me = cycle
dropped = weakref.ref(cycle)
del cycle
gc.disable()  # only the freeze's own collection may find the cycle
freeze_startup_objects()
print(gc.get_freeze_count() > 0, dropped() is None, not any(o is kept for o in gc.get_objects()))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["True", "True", "True"]


def _gone(pid: int) -> bool:
    """No such process, or a zombie waiting for a parent that is no longer ours to reap it."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rpartition(")")[2].split()[0] == "Z"
    except FileNotFoundError:
        return True


def test_a_daemon_stops_when_the_process_that_spawned_it_is_killed(tmp_path):
    """spawn_daemon's daemon watches its starter (--exit-with-parent): a starter killed before it
    could stop the daemon (a crashed script or test run) leaves no daemon behind."""
    starter = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\n"
            "from pathlib import Path\n"
            "from regiond.commands.serve import spawn_daemon\n"
            "d = Path(sys.argv[1])\n"
            "proc, _ = spawn_daemon(['--listen', '127.0.0.1:0', '--data-dir', d / 'data', '--no-index'], d / 'log')\n"
            "print(proc.pid, flush=True)\n"
            "time.sleep(600)\n",
            str(tmp_path),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        daemon = int(starter.stdout.readline())
        assert not _gone(daemon)
    finally:
        starter.kill()
        starter.wait()
    deadline = time.monotonic() + 60
    while not _gone(daemon) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _gone(daemon), (tmp_path / "log").read_text()[-2000:]
    assert f"the process that started it (PID {starter.pid}) is gone, stopping" in (tmp_path / "log").read_text()


def test_exit_with_parent_names_the_parent(tmp_path):
    """Another process's PID is refused before any model loads."""
    out = subprocess.run(
        [sys.executable, "-m", "regiond", "serve", "--listen", "127.0.0.1:0", "--data-dir", str(tmp_path)]
        + ["--exit-with-parent", "1"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode != 0
    assert f"--exit-with-parent 1: the daemon was started by process {os.getpid()}" in out.stderr
