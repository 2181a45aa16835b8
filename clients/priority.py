"""A batch client's work at background CPU priority beside the daemon it feeds.

Beside a daemon on the same machine, a scan's bottleneck is the daemon's pipeline (its worker
and the backbone's thread wait on each other), while the client's reading and writing have
slack: they wait on the daemon's backpressure. Run at a lower priority, the client's threads
yield the cores to the daemon and do their work in the gaps it leaves; the scan is faster.
Only the client's own work threads are lowered, not the process: nothing outlives the scan.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading

from regiond.core.net import address_host, is_loopback

#: how far the work threads are lowered beside a daemon on this machine (nice's own default)
BACKGROUND_NICE = 10
MAX_NICE = 19


def add_nice_arg(p: argparse.ArgumentParser) -> None:
    """--nice N (background_niceness resolves its default)."""

    def niceness(text: str) -> int:
        try:
            n = int(text)
        except ValueError:
            n = -1
        if not 0 <= n <= MAX_NICE:
            raise argparse.ArgumentTypeError(f"{text!r}: expected a niceness from 0 (unchanged) to {MAX_NICE} (lowest)")
        return n

    p.add_argument(
        "--nice",
        type=niceness,
        default=None,
        metavar="N",
        help=f"lower the CPU priority of this client's reading and writing threads by N, 0-{MAX_NICE} (default: "
        f"{BACKGROUND_NICE} when --server is on this machine, else 0; Linux). Beside the daemon they then "
        "yield the cores to its pipeline, the scan's bottleneck, and work in the gaps it leaves",
    )


def background_niceness(nice: int | None, server: str) -> int:
    """--nice as given, else BACKGROUND_NICE for a daemon on this machine and 0 for another."""
    if nice is not None:
        return nice
    return BACKGROUND_NICE if is_loopback(address_host(server)) else 0


def lower_thread_priority(n: int) -> None:
    """Lower the calling thread's CPU priority by n (at most to MAX_NICE). Linux only, where
    each thread has its own niceness; elsewhere it does nothing (there, a thread id given to
    setpriority would name a process). Never raises: a sandbox that refuses the call leaves
    the thread as it was, and the work goes on."""
    if n <= 0 or not sys.platform.startswith("linux"):
        return
    tid = threading.get_native_id()
    try:
        os.setpriority(os.PRIO_PROCESS, tid, min(MAX_NICE, os.getpriority(os.PRIO_PROCESS, tid) + n))
    except OSError:
        pass
