"""A local Ray instance for the tests (conftest.ray_local), and the check that it leaves
nothing running.

Why a start can time out, and what is done about it: ray.init starts Ray's GCS server and
waits for it to write its port file into the session folder, RAY_gcs_server_port_wait_time_s
seconds (ray._private.node.Node.start_gcs_server; Ray's default 30, regiond's GCS_WAIT_S). The GCS binds in about
0.1 s once running, even at load 11 on this 2-core machine; what can take longer is the
process start itself on a cold machine, where Ray's 40 MB gcs_server and raylet binaries and
its libraries are first read from disk while the test session loads torch: a fresh-clone
`make test` once failed with `RuntimeError: Timed out waiting for file .../gcs_server_port_...`,
and a second fresh clone, finding those files cached, passed. So the tests' start waits
GCS_WAIT_S, as `regiond extract --ray` does, and a start that still runs out of time is
retried once, after ending what the failed try started.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import time
from pathlib import Path

from regiond.extraction.pool import GCS_WAIT_ENV, GCS_WAIT_S  # what `regiond extract --ray` waits

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

#: what ray.init raises when a start runs out of time: waiting for the GCS port file, or for
#: the raylet to register (a fixed 30 s)
START_TIMEOUTS = ("Timed out waiting for file", "timed out during startup")


def start_ray(cpus: int = 2, waits: tuple[float, ...] = (GCS_WAIT_S, GCS_WAIT_S)) -> tuple[str, list[str]]:
    """Start Ray in this process; returns its session directory and the pids of its daemons
    (raylet, GCS, ...), whose children are the workers. One try per entry of `waits` (the GCS
    wait of each, seconds): a try that times out is followed by the next, any other error raises."""
    import ray

    before = os.environ.get(GCS_WAIT_ENV)
    try:
        for n, wait in enumerate(waits, 1):
            os.environ[GCS_WAIT_ENV] = str(int(wait))
            try:
                ray.init(
                    num_cpus=cpus, object_store_memory=80 << 20, include_dashboard=False, logging_level=logging.WARNING
                )
                break
            except Exception as e:
                if n == len(waits) or not any(m in str(e) for m in START_TIMEOUTS):
                    raise
                print(f"support_ray: Ray's start {n} timed out ({e}); starting again", file=sys.stderr)
                end_failed_start()
    finally:
        if before is None:
            os.environ.pop(GCS_WAIT_ENV, None)
        else:
            os.environ[GCS_WAIT_ENV] = before
    session = ray._private.worker._global_node.get_session_dir_path()
    return session, [p.name for p in _procs() if session.encode() in _read(p / "cmdline")]


def end_failed_start(timeout: float = 30.0) -> list[int]:
    """Kill, by pid, the Ray processes a failed ray.init left: this process's children that name a
    Ray session folder (no Ray runs in this process then). Returns their pids once they are gone."""
    import ray

    ray.shutdown()  # whatever of the failed try ray.init recorded
    pids = [int(p.name) for p in children() if b"/session_" in _read(p / "cmdline")]
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    end = time.monotonic() + timeout
    for pid in pids:
        while time.monotonic() < end:
            try:
                if os.waitpid(pid, os.WNOHANG)[0]:
                    break
            except ChildProcessError:  # reaped already
                break
            time.sleep(0.05)
    return pids


def children() -> list[Path]:
    """The running child processes of this process."""
    me = str(os.getpid()).encode()
    return [p for p in _procs() if _read(p / "stat").rpartition(b")")[2].split()[1:2] == [me]]


def _procs() -> list[Path]:
    return [p for p in Path("/proc").iterdir() if p.name.isdigit() and int(p.name) != os.getpid()]


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError:
        return b""


def processes_of(session: str, daemons: list[str]) -> list[str]:
    """The running processes of a Ray session: its daemons (the session directory is on their
    command line) and its workers (their environment names the session's raylet)."""
    markers = [f"RAY_RAYLET_PID={pid}".encode() for pid in daemons]
    left = [
        p
        for p in _procs()
        if session.encode() in _read(p / "cmdline") or any(m in _read(p / "environ").split(b"\0") for m in markers)
    ]
    return [p.name + ": " + _read(p / "cmdline").replace(b"\0", b" ").decode(errors="replace")[:100] for p in left]


def stop_ray(started: tuple[str, list[str]], timeout: float = 30.0) -> None:
    """Shut Ray down and wait until no process of its session is left."""
    import ray

    ray.shutdown()
    end = time.monotonic() + timeout
    while (left := processes_of(*started)) and time.monotonic() < end:
        time.sleep(0.2)
    assert not left, f"Ray left processes behind: {left}"
