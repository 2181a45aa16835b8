"""Prometheus metrics of one daemon, in their own registry (several daemons can live in one
process, as they do in the tests), served over HTTP on a separate port."""

from __future__ import annotations

from dataclasses import dataclass
from http.server import ThreadingHTTPServer

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)


@dataclass
class Metrics:
    registry: CollectorRegistry
    calls: Counter  # calls started, by method
    errors: Counter  # calls ended with a non-OK status, by method and code
    call_seconds: Histogram  # whole-call latency, by method
    frames: Counter  # frames answered, by method (rate() gives frames/s)
    frame_errors: Counter  # frames answered with a FrameError, by method and field
    frames_skipped: Counter  # live streams' frames overtaken by a newer one, dropped unprocessed
    streams_refused: Counter  # streams refused at --max-streams, by method
    frame_seconds: Histogram  # per-frame latency in the daemon (queue included), by method
    stage_seconds: Histogram  # per-stage latency (masks, features, pooling, geometry, queue, heads)
    queue_depth: Gauge
    sessions: Gauge  # open stream sessions, by kind

    @classmethod
    def create(cls) -> Metrics:
        r = CollectorRegistry()
        return cls(
            registry=r,
            calls=Counter("regiond_calls", "RPCs started", ["method"], registry=r),
            errors=Counter("regiond_errors", "RPCs ended with a non-OK status", ["method", "code"], registry=r),
            call_seconds=Histogram(
                "regiond_call_seconds", "RPC duration", ["method"], registry=r, buckets=_LATENCY_BUCKETS
            ),
            frames=Counter("regiond_frames", "frames answered", ["method"], registry=r),
            frame_errors=Counter(
                "regiond_frame_errors", "frames answered with an in-band error", ["method", "field"], registry=r
            ),
            frames_skipped=Counter(
                "regiond_frames_skipped", "live frames overtaken by a newer one, not processed", ["method"], registry=r
            ),
            streams_refused=Counter(
                "regiond_streams_refused", "streams refused at the --max-streams cap", ["method"], registry=r
            ),
            frame_seconds=Histogram(
                "regiond_frame_seconds",
                "time of one frame in the daemon",
                ["method"],
                registry=r,
                buckets=_LATENCY_BUCKETS,
            ),
            stage_seconds=Histogram(
                "regiond_stage_seconds", "time per extraction stage", ["stage"], registry=r, buckets=_LATENCY_BUCKETS
            ),
            queue_depth=Gauge("regiond_queue_depth", "jobs waiting in the work queue", registry=r),
            sessions=Gauge("regiond_sessions", "open stream sessions", ["kind"], registry=r),
        )

    def observe_stages(self, seconds: dict) -> None:
        for stage, s in seconds.items():
            self.stage_seconds.labels(stage).observe(float(s))

    def serve(self, port: int, host: str = "127.0.0.1") -> ThreadingHTTPServer:
        """Start the HTTP exporter; returns the http server (call .shutdown() to stop)."""
        server, _thread = start_http_server(port, addr=host, registry=self.registry)
        return server
