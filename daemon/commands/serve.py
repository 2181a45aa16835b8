"""`regiond serve`: run the gRPC daemon until SIGTERM/SIGINT, then stop gracefully."""

from __future__ import annotations

import logging
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from regiond.core.flags import add_flags, flag_values
from regiond.service.config import TOKEN_ENV, ServeConfig

# The line `regiond serve` prints once it accepts calls; spawn_daemon waits for it.
READY_PREFIX = "regiond: serving regions.v1.RegionService on "


def register(sub) -> None:
    p = sub.add_parser(
        "serve",
        help="run the gRPC daemon",
        description="Serve regions.v1.RegionService (plus grpc.health.v1.Health and server reflection). "
        "Stops gracefully on SIGTERM or Ctrl-C: health turns NOT_SERVING, calls in flight "
        "finish within --grace seconds, the region index is persisted.",
    )
    add_flags(p, ServeConfig)
    p.add_argument(
        "--log-level",
        default="INFO",
        metavar="LEVEL",
        help="log level (access log: one JSON line per call; default: INFO)",
    )
    p.set_defaults(func=run)


def config_from_args(args) -> ServeConfig:
    """The ServeConfig of `regiond serve`'s flags; the token from $REGIOND_TOKEN when --token is not given."""
    config = ServeConfig(**flag_values(args, ServeConfig))
    if config.token is None:
        config.token = os.environ.get(TOKEN_ENV) or None
    return config


def configure_logging(level: str) -> None:
    """The daemon's log: one line a record on stderr, from `level` up. Every startup line comes
    once, through this log or as the ready line. FAISS's loader logs at INFO which CPU build it
    tries (9 lines at each start): only its warnings and errors show."""
    logging.basicConfig(
        level=getattr(logging, str(level).upper(), logging.INFO), format="%(message)s", stream=sys.stderr
    )
    logging.getLogger("faiss.loader").setLevel(logging.WARNING)


def run(args) -> int:
    configure_logging(args.log_level)
    from regiond.service.server import RegionServer  # torch: only when the command runs (--help stays light)

    config = config_from_args(args)
    config.check()  # refuse a bad configuration before loading models
    return serve_until_signalled(RegionServer(config).start())


def serve_until_signalled(server) -> int:
    """Announce the started `server`, serve until SIGTERM/SIGINT, stop it within its grace
    period (plus the short drain) whatever its calls are doing, and return the exit status."""
    config = server.config
    stop = threading.Event()

    def on_signal(signum, _frame):
        print(f"regiond: {signal.Signals(signum).name}, stopping (grace {config.grace:g} s)", file=sys.stderr)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    print(f"{READY_PREFIX}{server.describe()}", file=sys.stderr, flush=True)
    while not stop.wait(0.5):
        pass
    if not server.stop():
        # A call grpc never finished holds one of its pool threads, which the interpreter
        # would join at exit: leave without it (the index is already persisted).
        logging.shutdown()
        sys.stderr.flush()
        os._exit(0)
    return 0


def spawn_daemon(serve_args: list[str], log_path: Path, timeout: float = 180.0, program: list[str] | None = None):
    """`regiond serve SERVE_ARGS` in a child process, its output in log_path; returns
    (process, address) once it serves. Pass `--listen 127.0.0.1:0` for a free port: the
    address comes from the ready line. RuntimeError when it exits or times out first.
    program: what runs instead of `python -m regiond serve` (a script serving through
    serve_until_signalled, e.g. bench/empty_masks.py)."""
    log = open(log_path, "w")
    proc = subprocess.Popen(
        [*(program or [sys.executable, "-m", "regiond", "serve"]), *map(str, serve_args)],
        stdout=log,
        stderr=subprocess.STDOUT,
        text=True,
    )
    ready = re.compile(re.escape(READY_PREFIX) + r"(\S+)")
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        m = ready.search(log_path.read_text())
        if m:
            return proc, m.group(1)
        if proc.poll() is not None:
            raise RuntimeError(f"the daemon exited with status {proc.returncode}; see {log_path}")
        time.sleep(0.1)
    proc.kill()
    raise RuntimeError(f"the daemon did not start within {timeout:g} s; see {log_path}")
