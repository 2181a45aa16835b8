"""A daemon at its maximum of streams refuses one more with RESOURCE_EXHAUSTED and trailing
metadata `retry-after-ms`; the clients wait that long and try again, within --retry-for."""

from __future__ import annotations

import sys
import time

import grpc


def retry_after(err: grpc.RpcError) -> float | None:
    """Seconds a busy daemon asked to wait (RESOURCE_EXHAUSTED with trailing metadata
    `retry-after-ms`: it serves its maximum of streams), else None."""
    if err.code() != grpc.StatusCode.RESOURCE_EXHAUSTED:
        return None
    for key, value in err.trailing_metadata() or ():
        if key == "retry-after-ms":
            try:
                return max(0.0, float(value) / 1000)
            except ValueError:
                return None
    return None


def wait_until_admitted(err: grpc.RpcError, args, prog: str) -> bool:
    """After a refusal with retry-after-ms: wait that long and say True, while within
    --retry-for of the first refusal; False (nothing waited) when there is none or the time
    is up."""
    delay = retry_after(err)
    if delay is None:
        return False
    now = time.monotonic()
    if getattr(args, "busy_until", None) is None:
        args.busy_until = now + args.retry_for
    if now + delay > args.busy_until:
        return False
    print(f"{prog}: the daemon is busy ({err.details()}); retrying in {delay:.1f} s", file=sys.stderr, flush=True)
    time.sleep(delay)
    return True
