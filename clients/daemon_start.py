"""Waiting for a daemon that is still starting.

`regiond serve` opens its port before its models are warm and its search normaliser fitted:
health says NOT_SERVING, GetInfo says "starting" and which step runs, every other call answers
UNAVAILABLE (with a `retry-after-ms` trailing metadata hint). A client that connects then, or
whose call meets a restarted daemon that is starting, waits here (saying what the daemon is
doing) instead of failing.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from regiond.api.v1 import regions_pb2 as pb
from regiond.api.v1 import regions_pb2_grpc as pb_grpc

SERVICE = pb.DESCRIPTOR.services_by_name["RegionService"].full_name
POLL_SECONDS = 0.5
REPORT_SECONDS = 10.0
#: trailing metadata of the UNAVAILABLE a starting daemon answers: milliseconds worth waiting
RETRY_AFTER_KEY = "retry-after-ms"


class DaemonNotServing(RuntimeError):
    """The daemon stopped, failed or went away instead of starting to serve."""


def starting(e: grpc.RpcError) -> bool:
    """Whether a failed call was refused by a daemon that is still starting."""
    return e.code() == grpc.StatusCode.UNAVAILABLE and any(k == RETRY_AFTER_KEY for k, _ in e.trailing_metadata() or ())


def wait_until_serving(
    channel: grpc.Channel, server: str, metadata: tuple = (), report: Callable[[str], None] | None = None
) -> None:
    """Return once the daemon at `server` reports SERVING. While it starts, `report` gets a line
    saying what it is doing (at once, then every REPORT_SECONDS). A daemon without health
    checking, or one that refuses the call (a missing token), is left to answer the real calls
    itself. DaemonNotServing when it stops, fails or goes away instead."""
    health = health_pb2_grpc.HealthStub(channel)
    stub = pb_grpc.RegionServiceStub(channel)
    reported = None
    while True:
        try:
            status = health.Check(health_pb2.HealthCheckRequest(service=SERVICE), timeout=10, metadata=metadata).status
            if status == health_pb2.HealthCheckResponse.SERVING:
                return
            info = stub.GetInfo(pb.InfoRequest(), timeout=10, metadata=metadata)
        except grpc.RpcError as e:
            if e.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
                raise DaemonNotServing(f"regiond at {server} went away before serving ({e.details()})") from None
            return  # UNIMPLEMENTED, UNAUTHENTICATED, ...: the real calls say what is wrong
        if info.state == "serving":
            return  # it started between the two calls
        if info.state != "starting":
            raise DaemonNotServing(f"regiond at {server} is not serving ({info.state or 'shutting down'})")
        if report is not None and (reported is None or time.monotonic() - reported >= REPORT_SECONDS):
            report(f"regiond at {server} is starting ({info.state_detail}); waiting until it serves")
            reported = time.monotonic()
        time.sleep(POLL_SECONDS)
