"""`regiond serve`: run the gRPC daemon until SIGTERM/SIGINT, then stop gracefully."""

from __future__ import annotations

import gc
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

# The line `regiond serve` prints once its port is open: health answers NOT_SERVING, GetInfo
# answers, every other call UNAVAILABLE while the models warm up and the index opens.
LISTENING_PREFIX = "regiond: listening on "
# The line it prints once it serves, ready for work (health SERVING); spawn_daemon waits for it.
READY_PREFIX = "regiond: serving regions.v1.RegionService on "
PARENT_POLL_SECONDS = 0.5  # --exit-with-parent: how often the parent is looked for


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
    started = time.monotonic()
    configure_logging(args.log_level)
    config = config_from_args(args)
    signals = StopSignals(config.grace)
    from regiond.service.server import RegionServer  # torch: only when the command runs (--help stays light)
    from regiond.service.startup import Startup

    config.check()  # refuse a bad configuration before loading models
    signals.watch_parent(config.exit_with_parent)  # from now: the models load in RegionServer()
    return serve_until_signalled(RegionServer(config, startup=Startup(started)), signals)


def freeze_startup_objects() -> None:
    """Leave the objects the start-up made (models, modules, the index: hundreds of thousands)
    out of later full garbage collections, which otherwise walk them all: 0.16–0.27 s, a stall
    of the calls then running, in the first seconds of serving a lite daemon with heads. Once
    the start-up's garbage is collected: nothing collectable is frozen."""
    gc.collect()
    gc.freeze()


class StopSignals:
    """SIGTERM and SIGINT, from the moment it is made: while the models load (before there is a
    server to stop) the process leaves at once; afterwards `event` is set and the serving loop
    stops the server."""

    def __init__(self, grace: float):
        self.grace = grace
        self.event = threading.Event()
        self.loading = True
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)

    def watch_parent(self, parent: int) -> None:
        """--exit-with-parent: once process `parent`, which started this one, is gone (this one
        was reparented), send ourselves SIGTERM, so that stop is the same as any other. 0: no watch."""
        if parent:
            threading.Thread(target=self._watch, args=(parent,), name="regiond-parent-watch", daemon=True).start()

    def _watch(self, parent: int) -> None:
        while os.getppid() == parent:
            if self.event.wait(PARENT_POLL_SECONDS):
                return  # stopping anyway
        print(f"regiond: the process that started it (PID {parent}) is gone, stopping", file=sys.stderr, flush=True)
        os.kill(os.getpid(), signal.SIGTERM)

    def _on_signal(self, signum, _frame):
        name = signal.Signals(signum).name
        if self.loading:
            print(f"regiond: {name} while loading the models, exiting", file=sys.stderr, flush=True)
            raise SystemExit(0)
        print(f"regiond: {name}, stopping (grace {self.grace:g} s)", file=sys.stderr, flush=True)
        self.event.set()


def serve_until_signalled(server, signals: StopSignals | None = None) -> int:
    """Open the server's port (start-up on a thread, unless `server` was started already), say
    so, say when it serves, serve until SIGTERM/SIGINT, stop it within its grace period (plus the
    short drain) whatever its calls or its start-up are doing, and return the exit status: 1
    when the start-up failed."""
    if signals is None:
        signals = StopSignals(server.config.grace)
        signals.watch_parent(server.config.exit_with_parent)
    signals.loading = False
    startup = server.startup

    def listening():
        print(
            f"{LISTENING_PREFIX}{server.describe()}; starting, health NOT_SERVING until ready "
            f"({startup.elapsed():.1f} s since start)",
            file=sys.stderr,
            flush=True,
        )

    def ready():
        print(f"{READY_PREFIX}{server.describe()}; started in {startup.elapsed():.1f} s", file=sys.stderr, flush=True)

    if server.listening:  # started (and so serving) already
        listening()
        ready()
    else:
        # ready() runs on the start-up thread before health turns SERVING: a client that saw
        # SERVING and stopped the daemon at once still finds the line in its log.
        server.start(background=True, on_listening=listening, on_serving=ready)
    frozen, status = False, 0
    while not signals.event.wait(0.1):
        if frozen or not startup.finished.is_set():
            continue
        if startup.error is not None:
            print(f"regiond: error: the start-up failed: {startup.error}", file=sys.stderr, flush=True)
            status = 1
            break
        freeze_startup_objects()
        frozen = True
    if not server.stop(grace=0 if status else None):
        # A call grpc never finished, or a start-up step that cannot be cut short (a model
        # call), holds a thread the interpreter would join at exit: leave without it (the
        # index is already persisted).
        logging.shutdown()
        sys.stderr.flush()
        os._exit(status)
    return status


def spawn_daemon(
    serve_args: list[str],
    log_path: Path,
    timeout: float = 180.0,
    env=None,
    until: str = READY_PREFIX,
    program: list[str] | None = None,
):
    """`regiond serve SERVE_ARGS` in a child process, its output in log_path; returns
    (process, address) once it serves (until=LISTENING_PREFIX: once its port is open, still
    starting). Pass `--listen 127.0.0.1:0` for a free port: the address comes from that
    line. RuntimeError when it exits or times out first.
    program: what runs instead of `python -m regiond serve` (a script serving through
    serve_until_signalled, e.g. bench/empty_masks.py). The daemon stops when this process is
    gone (--exit-with-parent): a caller killed before it stops the daemon leaves none behind."""
    log = open(log_path, "w")
    proc = subprocess.Popen(
        [
            *(program or [sys.executable, "-m", "regiond", "serve"]),
            *map(str, serve_args),
            "--exit-with-parent",
            str(os.getpid()),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    ready = re.compile(re.escape(until) + r"(\S+)")
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
