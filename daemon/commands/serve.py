"""`regiond serve`: run the gRPC daemon until SIGTERM/SIGINT, then stop gracefully."""

from __future__ import annotations

import argparse
import logging
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from regiond.commands.regions import add_sam_generator_option
from regiond.service.config import DEFAULT_LISTEN, ServeConfig

TOKEN_ENV = "REGIOND_TOKEN"
# The line `regiond serve` prints once its port is open: health answers NOT_SERVING, GetInfo
# answers, every other call UNAVAILABLE while the models warm up and the index opens.
LISTENING_PREFIX = "regiond: listening on "
# The line it prints once it serves, ready for work (health SERVING); spawn_daemon waits for it.
READY_PREFIX = "regiond: serving regions.v1.RegionService on "


def register(sub) -> None:
    p = sub.add_parser(
        "serve",
        help="run the gRPC daemon",
        description="Serve regions.v1.RegionService (plus grpc.health.v1.Health and server reflection). "
        "Stops gracefully on SIGTERM or Ctrl-C: health turns NOT_SERVING, calls in flight "
        "finish within --grace seconds, the region index is persisted.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument(
        "--listen",
        default=DEFAULT_LISTEN,
        metavar="HOST:PORT",
        help="address to listen on (port 0 = any free port); a non-loopback host needs a token or --insecure",
    )
    p.add_argument(
        "--data-dir",
        type=Path,
        default=Path.home() / ".local" / "share" / "regiond",
        metavar="DIR",
        help="where the daemon keeps its region index",
    )
    p.add_argument(
        "--profile",
        default="auto",
        help="extractor profile (paper, balanced, lite); auto = the best one whose weights are present, else lite",
    )
    p.add_argument(
        "--weights",
        type=Path,
        metavar="DIR",
        help="weights directory (default: $REGIOND_WEIGHTS or ~/.cache/regiond/weights)",
    )
    add_sam_generator_option(p)
    p.add_argument(
        "--token",
        default=None,
        help=f"bearer token every call must carry as 'authorization: Bearer T' metadata "
        f"(default: ${TOKEN_ENV}; none = no authentication)",
    )
    p.add_argument("--tls-cert", type=Path, metavar="FILE", help="PEM certificate chain (enables TLS)")
    p.add_argument("--tls-key", type=Path, metavar="FILE", help="PEM private key for --tls-cert")
    p.add_argument("--insecure", action="store_true", help="allow a non-loopback --listen address without a token")
    p.add_argument(
        "--metrics-port",
        type=int,
        default=None,
        metavar="P",
        help="serve Prometheus metrics on this port of the listen host (0 = any free port; default: off)",
    )
    p.add_argument(
        "--max-message-mb",
        type=int,
        default=None,
        metavar="N",
        help="largest request and reply message, in MiB (default: requests up to a raw RGB8 "
        "image with float32 depth at --max-pixels plus 1 MiB, i.e. 7 bytes a pixel "
        "+ 1 MiB = 113 MiB at 4096×4096; replies up to 64 MiB)",
    )
    p.add_argument(
        "--max-pixels",
        type=int,
        default=None,
        metavar="N",
        help="largest image accepted, in pixels (default 4096×4096)",
    )
    p.add_argument(
        "--queue",
        type=int,
        default=32,
        metavar="N",
        help="work-queue capacity: streams wait (backpressure) and unary calls get "
        "RESOURCE_EXHAUSTED when it stays full",
    )
    p.add_argument("--workers", type=int, default=1, metavar="N", help="threads running the models")
    p.add_argument(
        "--torch-threads",
        type=int,
        default=None,
        metavar="N",
        help="torch intra-op threads (default: 1 for lite, whose ops are too small to split; all cores for "
        "network backbones); 1 suits --workers > 1 on a small CPU",
    )
    p.add_argument(
        "--unary-wait", type=float, default=0.5, metavar="S", help="seconds a unary call waits for room in a full queue"
    )
    p.add_argument(
        "--window-step",
        type=int,
        default=4,
        metavar="K",
        help="default frames between activity windows (clients may set their own)",
    )
    p.add_argument(
        "--heads",
        type=Path,
        metavar="DIR|bundled",
        help="directory of trained heads (scene labeler, activity scorer) to serve: "
        "segment/, scene/, activity/ as `regiond train` writes them; 'bundled': the "
        "heads that ship with the package for the profile (lite: classic-32, trained "
        "on synthetic rooms and clips)",
    )
    p.add_argument(
        "--index",
        default=None,
        metavar="LOCATION",
        help="where the region index is: a directory (FAISS over SQLite; default DATA_DIR/index), "
        "milvus://HOST:PORT[/COLLECTION][?index=auto|flat|hnsw|ivfpq&expected_regions=N] (a Milvus "
        "server or cluster; several daemons may share one collection), or milvus-lite:PATH "
        "(Milvus Lite in this process)",
    )
    p.add_argument(
        "--no-index", action="store_true", help="keep no region index (IndexImages and Search answer UNIMPLEMENTED)"
    )
    p.add_argument(
        "--grace", type=float, default=10.0, metavar="S", help="seconds in-flight calls get to finish on shutdown"
    )
    p.add_argument(
        "--idle-timeout",
        type=float,
        default=300.0,
        metavar="S",
        help="close a stream (StreamVideo, StreamScene, IndexImages) whose client sent nothing "
        "for S seconds with DEADLINE_EXCEEDED (default 300; 0: never)",
    )
    p.add_argument("--log-level", default="INFO", help="log level (access log: one JSON line per call)")
    p.set_defaults(func=run)


def config_from_args(args):
    kw = {}
    if args.max_pixels is not None:
        kw["max_pixels"] = args.max_pixels
    return ServeConfig(
        listen=args.listen,
        data_dir=args.data_dir,
        profile=args.profile,
        weights=args.weights,
        sam_generator=args.sam_generator,
        token=args.token if args.token is not None else (os.environ.get(TOKEN_ENV) or None),
        tls_cert=args.tls_cert,
        tls_key=args.tls_key,
        insecure=args.insecure,
        metrics_port=args.metrics_port,
        max_message_mb=args.max_message_mb,
        queue=args.queue,
        workers=args.workers,
        torch_threads=args.torch_threads,
        unary_wait=args.unary_wait,
        window_step=args.window_step,
        heads=args.heads,
        index=not args.no_index,
        index_location=args.index,
        grace=args.grace,
        idle_timeout=args.idle_timeout,
        **kw,
    )


def run(args) -> int:
    started = time.monotonic()
    run_logging(args)
    config = config_from_args(args)
    signals = StopSignals(config.grace)
    from regiond.service.server import RegionServer  # torch: only when the command runs (--help stays light)
    from regiond.service.startup import Startup

    config.check()  # refuse a bad configuration before loading models
    server = RegionServer(config, announce=lambda m: print(m, file=sys.stderr), startup=Startup(started))
    return serve_until_signalled(server, signals)


def run_logging(args) -> None:
    """The daemon's log: plain lines on stderr at --log-level."""
    logging.basicConfig(
        level=getattr(logging, str(args.log_level).upper(), logging.INFO), format="%(message)s", stream=sys.stderr
    )


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
    signals = signals or StopSignals(server.config.grace)
    signals.loading = False
    startup = server.startup

    def listening():
        print(
            f"{LISTENING_PREFIX}{server.address} ({server.describe_security()}; {startup.elapsed():.1f} s since start; "
            "starting: health NOT_SERVING until ready)",
            file=sys.stderr,
            flush=True,
        )

    if server.listening:
        listening()
    else:
        server.start(background=True, on_listening=listening)
    extra = f", metrics on :{server.metrics_port}/metrics" if server.metrics_port else ""
    announced, status = False, 0
    while not signals.event.wait(0.1):
        if announced or not startup.finished.is_set():
            continue
        if startup.error is not None:
            print(f"regiond: error: the start-up failed: {startup.error}", file=sys.stderr, flush=True)
            status = 1
            break
        print(
            f"{READY_PREFIX}{server.address} (profile {server.extractor.profile}{extra}; "
            f"started in {startup.elapsed():.1f} s)",
            file=sys.stderr,
            flush=True,
        )
        announced = True
    if not server.stop(grace=0 if status else None):
        # A call grpc never finished, or a start-up step that cannot be cut short (a model
        # call), holds a thread the interpreter would join at exit: leave without it (the
        # index is already persisted).
        logging.shutdown()
        sys.stderr.flush()
        os._exit(status)
    return status


def spawn_daemon(serve_args: list[str], log_path: Path, timeout: float = 180.0, env=None, until: str = READY_PREFIX):
    """`regiond serve SERVE_ARGS` in a child process, its output in log_path; returns
    (process, address) once it serves (until=LISTENING_PREFIX: once its port is open, still
    starting). Pass `--listen 127.0.0.1:0` for a free port: the address comes from that
    line. RuntimeError when it exits or times out first."""
    log = open(log_path, "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "regiond", "serve", *map(str, serve_args)],
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
