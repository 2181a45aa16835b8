"""The daemon: a gRPC server with RegionService, health, reflection, auth, metrics, a work
queue, optional heads and the region index, and a graceful stop.

    server = RegionServer(ServeConfig(listen="127.0.0.1:0"), extractor=...).start()
    ... server.port ...
    server.stop(grace=5)
"""
from __future__ import annotations

import ipaddress
import logging
import threading
import time
from concurrent import futures
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import grpc
import numpy as np
import torch
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from core.frames import DEFAULT_MAX_PIXELS
from daemon.extraction import Extractor, build_extractor
from daemon.heads.interface import ServingHeads
from daemon.heads.serving import load_serving_heads
from regions.v1 import regions_pb2 as pb
from regions.v1 import regions_pb2_grpc as pb_grpc

from .calls import CallLog
from .interceptors import ServiceInterceptor
from .metrics import Metrics
from .scheduler import Scheduler
from .search_rpc import SearchRPC
from .servicer import QueuedExtractor, RegionServicer

log = logging.getLogger(__name__)

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["RegionService"].full_name  # "regions.v1.RegionService"
DEFAULT_LISTEN = "127.0.0.1:50051"


class ConfigError(ValueError):
    """A serve configuration the daemon refuses (e.g. an open address without a token)."""


@dataclass
class ServeConfig:
    """How the daemon runs. Every field is a `regiond serve` option.

    listen          HOST:PORT to serve on (port 0 = any free port)
    data_dir        where the daemon keeps what it must keep (the region index)
    profile         extractor profile, "auto" = best one whose weights are present
    weights         weights directory (None: $REGIOND_WEIGHTS or the default)
    token           bearer token every call must carry (None: no authentication)
    tls_cert/key    PEM files; both or neither
    insecure        allow a non-loopback address without a token
    metrics_port    Prometheus exporter port on the listen host (None: off; 0: any free port)
    max_message_mb  largest request or reply message
    queue           work-queue capacity (jobs waiting)
    workers         threads running the models, each with its own extractor
    torch_threads   torch intra-op threads (None: 1 for lite, all cores for network backbones); with several
                    workers on a small CPU, 1 avoids threads spinning against each other
    max_batch       extraction jobs batched together (extractors with extract_batch)
    unary_wait      seconds a unary call waits for room in a full queue before RESOURCE_EXHAUSTED
    inflight        frames of one stream between decoding and the reply
    max_pixels      largest image accepted (pixels)
    window_step     default frames between activity windows
    heads           directory of trained heads to serve (None: regions only)
    index           keep a region index in data_dir (IndexImages/Search); False: UNIMPLEMENTED
    grace           seconds in-flight calls get to finish on shutdown
    warmup          run each extractor once before reporting SERVING (first calls pay no
                    lazy initialisation)
    rpc_threads     gRPC handler threads (each open stream holds one)
    """

    listen: str = DEFAULT_LISTEN
    data_dir: Path = field(default_factory=lambda: Path.home() / ".local" / "share" / "regiond")
    profile: str = "auto"
    weights: Path | None = None
    token: str | None = None
    tls_cert: Path | None = None
    tls_key: Path | None = None
    insecure: bool = False
    metrics_port: int | None = None
    max_message_mb: int = 64
    queue: int = 32
    workers: int = 1
    torch_threads: int | None = None
    max_batch: int = 8
    unary_wait: float = 0.5
    inflight: int = 4
    max_pixels: int = DEFAULT_MAX_PIXELS
    window_step: int = 4
    heads: Path | None = None
    index: bool = True
    grace: float = 10.0
    warmup: bool = True
    rpc_threads: int = 64

    @property
    def max_message_bytes(self) -> int:
        return int(self.max_message_mb) * 1024 * 1024

    def host_port(self) -> tuple[str, int]:
        host, sep, port = self.listen.rpartition(":")
        if not sep or not port.isdigit():
            raise ConfigError(f"--listen {self.listen!r}: expected HOST:PORT")
        return host.strip("[]") or "0.0.0.0", int(port)

    def check(self) -> None:
        host, _ = self.host_port()
        if not self.token and not self.insecure and not is_loopback(host):
            raise ConfigError(f"refusing to listen on non-loopback address {host!r} without a token: "
                              f"set --token (or REGIOND_TOKEN), or pass --insecure")
        if bool(self.tls_cert) != bool(self.tls_key):
            raise ConfigError("--tls-cert and --tls-key go together")
        for name in ("queue", "workers", "max_batch", "inflight", "max_message_mb", "max_pixels", "window_step"):
            if getattr(self, name) < 1:
                raise ConfigError(f"--{name.replace('_', '-')} must be at least 1")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class RegionServer:
    """One running daemon. `extractor` and `heads` may be given (tests build them once);
    otherwise they come from the config's profile and heads directory."""

    def __init__(self, config: ServeConfig, extractor: Extractor | None = None, heads: ServingHeads | None = None,
                 announce: Callable[[str], None] | None = None):
        config.check()
        self.config = config
        notes: list[str] = []
        extractors = [extractor] * config.workers  # given (tests): shared by the workers
        if extractor is None:
            extractor = build_extractor(config.profile, config.weights, announce=notes.append)
            for n in notes:
                (announce or log.warning)(n)
            # One extractor per worker: SAM's predictor holds the current image between calls.
            extractors = [extractor] + [build_extractor(extractor.profile, config.weights, announce=lambda m: None)
                                        for _ in range(config.workers - 1)]
        self.extractor = extractor
        threads = config.torch_threads
        if threads is None and not extractor.can_batch:
            # lite's tensor ops are too small to split: pooling takes 4 ms on one thread and
            # 12 ms on two (bench/regions.py); a network backbone keeps all cores
            threads = 1
        if threads:
            torch.set_num_threads(threads)
        self._extractors = list({id(e): e for e in extractors}.values())
        self.heads = heads if heads is not None else load_serving_heads(config.heads, extractor)
        self.metrics = Metrics.create()
        self.calls = CallLog()
        self.scheduler = Scheduler(extractors, capacity=config.queue,
                                   max_batch=config.max_batch, on_depth=self.metrics.queue_depth.set)
        self.search: SearchRPC | None = None
        if config.index:
            Path(config.data_dir).mkdir(parents=True, exist_ok=True)
            self.search = SearchRPC(QueuedExtractor(extractor, self.scheduler), config.data_dir)
        self.servicer = RegionServicer(config, extractor, self.heads, self.scheduler, self.metrics, self.calls,
                                       search=self.search, profile_note=" ".join(notes))
        self.health = health.HealthServicer()
        opts = [("grpc.max_send_message_length", config.max_message_bytes),
                ("grpc.max_receive_message_length", config.max_message_bytes),
                ("grpc.so_reuseport", 0)]
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=config.rpc_threads,
                                                             thread_name_prefix="regiond-rpc"),
                                  interceptors=[ServiceInterceptor(config.token, self.metrics, self.calls)],
                                  options=opts, maximum_concurrent_rpcs=config.rpc_threads - 4)
        pb_grpc.add_RegionServiceServicer_to_server(self.servicer, self.server)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        reflection.enable_server_reflection(
            (SERVICE_NAME, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME),
            self.server)
        host, port = config.host_port()
        addr = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        try:
            if config.tls_cert:
                creds = grpc.ssl_server_credentials([(Path(config.tls_key).read_bytes(),
                                                      Path(config.tls_cert).read_bytes())])
                self.port = self.server.add_secure_port(addr, creds)
            else:
                self.port = self.server.add_insecure_port(addr)
        except RuntimeError:
            self.port = 0
        if self.port == 0:
            self.scheduler.close(timeout=1.0)
            if self.search is not None:
                self.search.close()
            raise ConfigError(f"cannot listen on {config.listen} (address in use, or not this machine's?)")
        self.host = host
        self.metrics_http = None
        self.metrics_port = None
        self._stopped = threading.Event()

    @property
    def address(self) -> str:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "") else self.host
        return f"[{host}]:{self.port}" if ":" in host else f"{host}:{self.port}"

    def start(self) -> "RegionServer":
        if self.config.warmup:
            self._warm_up()
        self.server.start()
        for name in ("", SERVICE_NAME):
            self.health.set(name, health_pb2.HealthCheckResponse.SERVING)
        if self.config.metrics_port is not None:
            self.metrics_http = self.metrics.serve(self.config.metrics_port, self.host)
            self.metrics_port = self.metrics_http.server_address[1]
        log.info("regiond serving on %s (profile %s, TLS %s, token %s)", self.address,
                 getattr(self.extractor, "profile", "?"), "on" if self.config.tls_cert else "off",
                 "required" if self.config.token else "off")
        return self

    def _warm_up(self) -> None:
        t0 = time.perf_counter()
        rgb = np.zeros((112, 112, 3), np.uint8)
        rgb[:, 56:] = 200  # two flat halves: every stage has something to do
        for ex in self._extractors:
            ex.extract(rgb)
        log.info("warmed up %d extractor(s) in %.1f s", len(self._extractors), time.perf_counter() - t0)

    def stop(self, grace: float | None = None) -> None:
        """Graceful: health NOT_SERVING, no new calls, in-flight calls get `grace` seconds,
        then the work queue drains and the index is persisted."""
        if self._stopped.is_set():
            return
        self._stopped.set()
        grace = self.config.grace if grace is None else grace
        self.health.enter_graceful_shutdown()
        self.server.stop(grace).wait()
        self.scheduler.close(timeout=grace)
        if self.search is not None:
            try:
                self.search.close()
            except Exception:
                log.exception("persisting the index failed")
        if self.metrics_http is not None:
            self.metrics_http.shutdown()
        log.info("regiond stopped")

    def wait(self) -> None:
        self.server.wait_for_termination()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop(grace=1.0)
