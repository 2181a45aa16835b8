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
# The line `regiond serve` prints once it accepts calls; spawn_daemon waits for it.
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


def spawn_daemon(serve_args: list[str], log_path: Path, timeout: float = 180.0):
    """`regiond serve SERVE_ARGS` in a child process, its output in log_path; returns
    (process, address) once it serves. Pass `--listen 127.0.0.1:0` for a free port: the
    address comes from the ready line. RuntimeError when it exits or times out first."""
    log = open(log_path, "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "regiond", "serve", *map(str, serve_args)],
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
