"""A daemon at its maximum of streams refuses one more with RESOURCE_EXHAUSTED and trailing
metadata `retry-after-ms`; the clients wait that long and try again, within --retry-for of the
first refusal."""

from __future__ import annotations

import sys
import time

import grpc


def wait_until_admitted(err, client, prog: str) -> bool:
    """After a refusal with retry-after-ms (a RegionError): wait that long and say True, while
    within the client's retry_for of the first refusal; False (nothing waited) when it is no
    such refusal or the time is up."""
    if err.code != grpc.StatusCode.RESOURCE_EXHAUSTED or err.retry_after_ms is None:
        return False
    now = time.monotonic()
    if getattr(client, "busy_until", None) is None:
        client.busy_until = now + client.retry_for
    delay = err.retry_after_ms / 1000
    if now + delay > client.busy_until:
        return False
    print(f"{prog}: the daemon is busy ({err.details}); retrying in {delay:.1f} s", file=sys.stderr, flush=True)
    time.sleep(delay)
    return True
