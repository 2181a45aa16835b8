"""The daemon: a gRPC server with RegionService, health, reflection, auth, metrics, a work
queue, optional heads and the region index, and a graceful stop.

    server = RegionServer(ServeConfig(listen="127.0.0.1:0"), extractor=...).start()
    ... server.port ...
    server.stop(grace=5)

Constructing it loads the models and heads and binds the port (a bad configuration fails
there, before anything listens). start() opens the port with health NOT_SERVING, then warms
the models up and opens the region index (a new one may fit the search normaliser), and
reports SERVING (startup.py); start(background=True) returns as soon as the port is open.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent import futures
from pathlib import Path

import grpc
import numpy as np
import torch
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from regiond.api.v1 import regions_pb2 as pb
from regiond.api.v1 import regions_pb2_grpc as pb_grpc
from regiond.extraction import Extractor, build_extractor
from regiond.geometry import fusion
from regiond.heads.interface import ServingHeads
from regiond.heads.serving import load_serving_heads
from regiond.service.calls import CallLog
from regiond.service.config import RESERVED_RPC_THREADS, ConfigError, ServeConfig
from regiond.service.interceptors import ServiceInterceptor
from regiond.service.prometheus import Metrics
from regiond.service.scheduler import Scheduler
from regiond.service.search_rpc import SearchRPC
from regiond.service.servicer import QueuedExtractor, RegionServicer
from regiond.service.startup import Startup, StartupCancelled

log = logging.getLogger(__name__)

#: seconds stop() waits past the grace period for grpc to finish its calls before giving up on
#: them; after giving up, closing the index gets as long again (a stuck handler may hold it)
DRAIN_SECONDS = 2.0
SERVICE_NAME = pb.DESCRIPTOR.services_by_name["RegionService"].full_name  # "regions.v1.RegionService"


class HandlerPool(futures.ThreadPoolExecutor):
    """grpc's handler threads, counting the handlers that have not returned. grpc ends a call
    when the grace period is over (cancelled) even while its handler is still inside our
    code, e.g. waiting on a model that hangs: the server's stop completes, and the thread
    would then hold the interpreter's exit forever. stop() checks this count too."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._idle = threading.Condition()
        self.busy = 0

    def submit(self, fn, /, *args, **kwargs):
        with self._idle:
            self.busy += 1
        try:
            fut = super().submit(fn, *args, **kwargs)
        except BaseException:
            self._done(None)
            raise
        fut.add_done_callback(self._done)
        return fut

    def _done(self, _fut) -> None:
        with self._idle:
            self.busy -= 1
            self._idle.notify_all()

    def wait_idle(self, timeout: float) -> bool:
        """True once every handler has returned; False when some still run after `timeout` s."""
        with self._idle:
            return self._idle.wait_for(lambda: self.busy == 0, timeout)


class RegionServer:
    """One running daemon. `extractor` and `heads` may be given (tests build them once);
    otherwise they come from the config's profile and heads directory."""

    def __init__(
        self,
        config: ServeConfig,
        extractor: Extractor | None = None,
        heads: ServingHeads | None = None,
        announce: Callable[[str], None] | None = None,
        startup: Startup | None = None,
    ):
        config.check()
        self.config = config
        self.startup = startup or Startup()
        notes: list[str] = []
        extractors = [extractor] * config.workers  # given (tests): shared by the workers
        if extractor is None:
            self.startup.note("loading the models (profile %s)", config.profile)
            sizes = {} if config.max_side is None else {"work_side": config.max_side or None}
            extractor = build_extractor(
                config.profile, config.weights, announce=notes.append, sam_generator=config.sam_generator, **sizes
            )
            for n in notes:
                (announce or log.warning)(n)
            # One extractor per worker: SAM's predictor holds the current image between calls.
            extractors = [extractor] + [
                build_extractor(
                    extractor.profile,
                    config.weights,
                    announce=lambda m: None,
                    sam_generator=config.sam_generator,
                    **sizes,
                )
                for _ in range(config.workers - 1)
            ]
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
        self.scheduler = Scheduler(
            extractors, capacity=config.queue, max_batch=config.max_batch, on_depth=self.metrics.queue_depth.set
        )
        self.search: SearchRPC | None = None  # opened by the start-up (a new one may fit its normaliser)
        self.servicer = RegionServicer(
            config,
            extractor,
            self.heads,
            self.scheduler,
            self.metrics,
            self.calls,
            startup=self.startup,
            profile_note=" ".join(notes),
        )
        self.health = health.HealthServicer()
        for name in ("", SERVICE_NAME):  # grpc's health starts "" at SERVING: not before the start-up ends
            self.health.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)
        opts = [
            ("grpc.max_send_message_length", config.max_message_bytes),
            ("grpc.max_receive_message_length", config.receive_message_bytes),
            ("grpc.so_reuseport", 0),
        ]
        self._handlers = HandlerPool(max_workers=config.rpc_threads, thread_name_prefix="regiond-rpc")
        self.server = grpc.server(
            self._handlers,
            interceptors=[ServiceInterceptor(config.token, self.metrics, self.calls, SERVICE_NAME)],
            options=opts,
            maximum_concurrent_rpcs=config.rpc_threads - RESERVED_RPC_THREADS,
        )
        pb_grpc.add_RegionServiceServicer_to_server(self.servicer, self.server)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        reflection.enable_server_reflection(
            (SERVICE_NAME, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME),
            self.server,
        )
        host, port = config.host_port()
        addr = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        try:
            if config.tls_cert:
                creds = grpc.ssl_server_credentials(
                    [(Path(config.tls_key).read_bytes(), Path(config.tls_cert).read_bytes())]
                )
                self.port = self.server.add_secure_port(addr, creds)
            else:
                self.port = self.server.add_insecure_port(addr)
        except RuntimeError:
            self.port = 0
        if self.port == 0:
            self.scheduler.close(timeout=1.0)
            raise ConfigError(f"cannot listen on {config.listen} (address in use, or not this machine's?)")
        self.host = host
        self.metrics_http = None
        self.metrics_port = None
        self._stopped = threading.Event()
        self._state_lock = threading.Lock()  # the start-up's results against stop()
        self._startup_thread: threading.Thread | None = None
        self.listening = False  # start() opened the port
        self.startup.note("models loaded (profile %s)", extractor.profile)

    @property
    def address(self) -> str:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "") else self.host
        return f"[{host}]:{self.port}" if ":" in host else f"{host}:{self.port}"

    def start(
        self,
        background: bool = False,
        on_listening: Callable[[], None] | None = None,
        on_serving: Callable[[], None] | None = None,
    ) -> RegionServer:
        """Open the port (health NOT_SERVING; GetInfo answers, the rest UNAVAILABLE), then run
        the start-up steps and report SERVING. background: the steps run on a thread and this
        returns at once (startup.finished is set when they end; startup.error if they failed);
        otherwise this returns once serving and raises what made the start-up fail.
        on_listening is called once the port is open, before the steps begin; on_serving once
        they succeeded, before health reports SERVING (what it prints precedes any client's
        work)."""
        self.server.start()
        self.listening = True
        if self.config.metrics_port is not None:
            self.metrics_http = self.metrics.serve(self.config.metrics_port, self.host)
            self.metrics_port = self.metrics_http.server_address[1]
        if on_listening is not None:
            on_listening()
        if background:
            self._startup_thread = threading.Thread(
                target=self._start_up, args=(on_serving,), name="regiond-startup", daemon=True
            )
            self._startup_thread.start()
            return self
        self._start_up(on_serving)
        if self.startup.error is not None:
            self.stop(grace=0)
            raise self.startup.error
        return self

    def _start_up(self, on_serving: Callable[[], None] | None = None) -> None:
        """The slow steps, between the port opening and SERVING. Stopping ends them at the next
        check (between steps, each corpus image of a normaliser fit)."""
        st = self.startup
        try:
            if self.config.warmup:
                self._warm_up()
            if self.config.index:
                st.begin("opening the region index", str(self.config.index_at))
                Path(self.config.data_dir).mkdir(parents=True, exist_ok=True)
                search = self._open_index()
                with self._state_lock:
                    if self._stopped.is_set():
                        search.close()
                        raise StartupCancelled("opening the region index")
                    self.search = self.servicer.search = search
            with self._state_lock:
                st.check()
                if on_serving is not None:
                    on_serving()
                st.serving()
                for name in ("", SERVICE_NAME):
                    self.health.set(name, health_pb2.HealthCheckResponse.SERVING)
        except StartupCancelled as e:
            st.note("stopped while %s", e)
            st.finished.set()
        except BaseException as e:
            if st.cancelled.is_set():  # a wait the stop broke (the work queue closing)
                st.note("stopped while %s (%s: %s)", st.step, type(e).__name__, e)
                st.finished.set()
            else:
                log.error("start-up failed while %s: %s: %s", st.step, type(e).__name__, e)
                st.fail(e)

    def _open_index(self) -> SearchRPC:
        """The region index; a new one gets its normaliser from the cache or a fit that reports
        its progress, and stops (StartupCancelled) when the daemon does."""
        st = self.startup
        queued = QueuedExtractor(self.extractor, self.scheduler).for_call(lambda: not st.cancelled.is_set())

        def fitting(done: int, total: int) -> None:
            if done == 0:
                st.begin("fitting the search normaliser", f"{total} generated images, once for these weights")
            st.progress(done, total)

        return SearchRPC(queued, self.config.index_at, on_fit_image=fitting)

    def describe(self) -> str:
        """Where and how it serves, in a line: `regiond serve` announces it once listening and
        once serving."""
        tls, token = "on" if self.config.tls_cert else "off", "required" if self.config.token else "off"
        metrics = f", metrics on :{self.metrics_port}/metrics" if self.metrics_port else ""
        return f"{self.address} (profile {getattr(self.extractor, 'profile', '?')}, TLS {tls}, token {token}{metrics})"

    def _warm_up(self) -> None:
        t0 = time.perf_counter()
        self.startup.begin("warming up", f"{len(self._extractors)} extractor(s)")
        rgb = np.zeros((112, 112, 3), np.uint8)
        rgb[:, 56:] = 200  # two flat halves: every stage has something to do
        for ex in self._extractors:
            self.startup.check()
            ex.extract(rgb)
        fusion.warm_up()  # a scene stream's compiled fusion loops
        self.startup.note("warmed up in %.1f s", time.perf_counter() - t0)

    def stop(self, grace: float | None = None) -> bool:
        """Graceful: health NOT_SERVING, no new calls, in-flight calls get `grace` seconds,
        then the work queue drains and the index is persisted. Bounded whatever happens: a
        call grpc never finishes (a handler stuck in a model or an index write, say) is
        abandoned, and the work queue with it, DRAIN_SECONDS after the grace period, and the
        index's close DRAIN_SECONDS later (False is returned: the caller should end the
        process without joining grpc's threads)."""
        if self._stopped.is_set():
            return True
        with self._state_lock:
            self._stopped.set()
            starting = not self.startup.finished.is_set()
            self.startup.stop()
        grace = self.config.grace if grace is None else grace
        self.health.enter_graceful_shutdown()
        end = time.monotonic() + grace + DRAIN_SECONDS
        clean = self.server.stop(grace).wait(grace + DRAIN_SECONDS) and self._handlers.wait_idle(
            max(0.0, end - time.monotonic())
        )
        if not clean:
            log.warning(
                "%d call handler(s) still running %.0f s after the grace period; stopping without "
                "them (open sessions: %s)",
                self._handlers.busy,
                DRAIN_SECONDS,
                [f"{s.kind}-{s.id}" for s in self.servicer.sessions.all()] or "none",
            )
        if starting and self._startup_thread is not None:
            # a normaliser fit stops at its next image; a model call (the warm-up) cannot be cut
            self._startup_thread.join(DRAIN_SECONDS)
            if self._startup_thread.is_alive():
                log.warning("the start-up is still %s; stopping without it", self.startup.step)
                clean = False
        # the calls have ended or been given up on: the workers get what is left of the drain
        # (a worker stuck in a model is a daemon thread, left behind)
        if not self.scheduler.close(timeout=max(0.0, end - time.monotonic())):
            # a model call the stop cannot cut short: the process must not wait for it at exit
            # (a thread inside torch when the interpreter finalises aborts the process)
            log.warning(
                "a model call is still running %.0f s after the grace period; stopping without it", DRAIN_SECONDS
            )
            clean = False
        with self._state_lock:
            search = self.search  # None when the start-up stopped before opening it
        if search is not None:
            self._close_index(None if clean else DRAIN_SECONDS)
        if self.metrics_http is not None:
            self.metrics_http.shutdown()
        log.info("regiond stopped")
        return clean

    def _close_index(self, timeout: float | None) -> None:
        """Persist and release the index, waiting at most `timeout` s. A handler left running
        may hold the index's write lock (a write that hangs), which the close's checkpoint
        needs: the close is then left behind on its thread. Nothing acknowledged is lost (an
        add returns once durable; the next open replays what the last checkpoint lacks)."""

        def close():
            try:
                self.search.close()
            except Exception:
                log.exception("persisting the index failed")

        t = threading.Thread(target=close, name="regiond-index-close", daemon=True)
        t.start()
        t.join(timeout)
        if t.is_alive():
            log.warning(
                "the index did not close within %.0f s (held by a call handler still running?); "
                "stopping without its checkpoint: the next start replays its log",
                timeout,
            )

    def wait(self) -> None:
        self.server.wait_for_termination()

    def __enter__(self) -> RegionServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop(grace=1.0)
