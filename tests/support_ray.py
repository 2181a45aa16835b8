"""A local Ray instance for the tests (conftest.ray_local), and the check that it leaves
nothing running."""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")


def start_ray(cpus: int = 2) -> tuple[str, list[str]]:
    """Start Ray in this process; returns its session directory and the pids of its daemons
    (raylet, GCS, ...), whose children are the workers."""
    import ray

    ray.init(num_cpus=cpus, object_store_memory=80 << 20, include_dashboard=False, logging_level=logging.WARNING)
    session = ray._private.worker._global_node.get_session_dir_path()
    return session, [p.name for p in _procs() if session.encode() in _read(p / "cmdline")]


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
