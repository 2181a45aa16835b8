"""Waiting for a daemon that is still starting.

`regiond serve` opens its port before its models are warm and its search normaliser fitted:
health says NOT_SERVING, GetInfo says "starting" and which step runs, every other call answers
UNAVAILABLE. A client that connects then waits here, printing the daemon's progress, instead
of failing its first call.
"""

from __future__ import annotations

import sys
import time

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from regiond.api.v1 import regions_pb2 as pb
from regiond.api.v1 import regions_pb2_grpc as pb_grpc

SERVICE = pb.DESCRIPTOR.services_by_name["RegionService"].full_name
POLL_SECONDS = 0.5
REPORT_SECONDS = 10.0


class DaemonNotServing(RuntimeError):
    """The daemon stopped, failed or went away instead of starting to serve."""


def wait_until_serving(channel: grpc.Channel, server: str, metadata: tuple = ()) -> None:
    """Return once the daemon at `server` reports SERVING, printing what it is doing on stderr
    (at once, then every REPORT_SECONDS) while it starts. A daemon without health checking, or
    one that refuses the call (a missing token), is left to answer the real calls itself.
    DaemonNotServing when it stops, fails or goes away instead."""
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
        if info.state != "starting":
            raise DaemonNotServing(f"regiond at {server} is not serving ({info.state or 'shutting down'})")
        if reported is None or time.monotonic() - reported >= REPORT_SECONDS:
            print(f"regiond at {server} is starting ({info.state_detail}); waiting until it serves", file=sys.stderr)
            reported = time.monotonic()
        time.sleep(POLL_SECONDS)
