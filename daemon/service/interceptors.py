"""Server interceptor: bearer-token check, metrics and one JSON log line for every call.

Every method goes through it, health and reflection included: with a token configured, a
call without `authorization: Bearer <token>` metadata is refused with UNAUTHENTICATED before
its handler runs (the convention of grpc's token-auth example, which guards every call).

What handlers add to the call's record in the CallLog (frames, frame errors, session id, ...)
goes into the call's log line.

Every handler's request deserializer is made tolerant (wire.py): bytes that do not parse
reach the handler as an `Unparsable` instead of grpc answering INTERNAL itself, which can
leave the call unfinished and `server.stop()` waiting forever (see wire.py). A unary call
carrying one is answered INVALID_ARGUMENT here; RegionService's streams answer it per message
(a frame error, an IndexImages error entry); other services' streams end INVALID_ARGUMENT.
"""

from __future__ import annotations

import hmac
import json
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import grpc

from regiond.service.calls import CallLog, CallStats
from regiond.service.prometheus import Metrics
from regiond.service.wire import Unparsable, tolerant

log = logging.getLogger("regiond.access")
#: (handler behaviour, request, context, streaming_response) → the behaviour's result
Around = Callable[[Callable, Any, grpc.ServicerContext, bool], Any]


def _final_code(context: grpc.ServicerContext) -> grpc.StatusCode:
    code = context.code()
    if code is not None:
        return code if isinstance(code, grpc.StatusCode) else grpc.StatusCode.UNKNOWN
    if not context.is_active():
        remaining = context.time_remaining()
        if remaining is not None and remaining <= 0:
            return grpc.StatusCode.DEADLINE_EXCEEDED
        return grpc.StatusCode.CANCELLED
    return grpc.StatusCode.OK


class ServiceInterceptor(grpc.ServerInterceptor):
    """token    required bearer token (None: no authentication)
    metrics  the daemon's metrics
    calls    where handlers add to their call's log line"""

    def __init__(self, token: str | None, metrics: Metrics, calls: CallLog, own_service: str = ""):
        self._expected = f"Bearer {token}".encode() if token else None
        self._own_service = own_service  # its stream handlers take Unparsable items themselves
        self._metrics = metrics
        self._calls = calls

    # --- auth ---------------------------------------------------------------------------------

    def _authorized(self, metadata: Sequence[tuple[str, str | bytes]] | None) -> bool:
        if self._expected is None:
            return True
        for key, value in metadata or ():
            if key == "authorization":
                got = value.encode() if isinstance(value, str) else value
                return hmac.compare_digest(got, self._expected)
        return False

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler | None],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        handler = continuation(details)
        if handler is None:
            return None
        method = details.method.rsplit("/", 1)[-1]
        service = details.method.strip("/").split("/", 1)[0]
        own = service == self._own_service
        if not self._authorized(details.invocation_metadata):
            return _wrap(handler, self._deny(method, service), own)
        return _wrap(handler, self._observe(method, service), own)

    def _deny(self, method: str, service: str) -> Around:
        metrics = self._metrics

        def around(behavior: Callable, request: Any, context: grpc.ServicerContext, streaming_response: bool) -> Any:
            metrics.calls.labels(method).inc()
            metrics.errors.labels(method, "UNAUTHENTICATED").inc()
            _log_line(service, method, context, grpc.StatusCode.UNAUTHENTICATED, 0.0, {})
            context.abort(
                grpc.StatusCode.UNAUTHENTICATED,
                "missing or wrong bearer token (metadata 'authorization: Bearer <token>')",
            )

        return around

    # --- observation --------------------------------------------------------------------------

    def _observe(self, method: str, service: str) -> Around:
        metrics, calls = self._metrics, self._calls

        def finish(context: grpc.ServicerContext, t0: float) -> None:
            stats = calls.close(context)
            code = _final_code(context)
            seconds = time.perf_counter() - t0
            metrics.call_seconds.labels(method).observe(seconds)
            if code != grpc.StatusCode.OK:
                metrics.errors.labels(method, code.name).inc()
            _log_line(service, method, context, code, seconds, stats)

        def around(behavior: Callable, request: Any, context: grpc.ServicerContext, streaming_response: bool) -> Any:
            metrics.calls.labels(method).inc()
            calls.open(context)
            t0 = time.perf_counter()
            if not streaming_response:
                try:
                    return behavior(request, context)
                finally:
                    finish(context, t0)

            def gen() -> Iterator[Any]:
                try:
                    yield from behavior(request, context)
                finally:
                    finish(context, t0)

            return gen()

        return around


def _parsed_stream(requests: Iterator[Any], context: grpc.ServicerContext) -> Iterator[Any]:
    for req in requests:
        if isinstance(req, Unparsable):
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(req.error))
        yield req


def _wrap(handler: grpc.RpcMethodHandler, around: Around, takes_unparsable: bool) -> grpc.RpcMethodHandler:
    """A handler of the same kind as `handler` whose behaviour runs inside `around`, with a
    tolerant deserializer. Streams of requests reach the handler with their Unparsable items
    when `takes_unparsable`; otherwise the first one ends the call INVALID_ARGUMENT."""
    if handler.unary_unary:
        fn, make, streaming = handler.unary_unary, grpc.unary_unary_rpc_method_handler, False
    elif handler.unary_stream:
        fn, make, streaming = handler.unary_stream, grpc.unary_stream_rpc_method_handler, True
    elif handler.stream_unary:
        fn, make, streaming = handler.stream_unary, grpc.stream_unary_rpc_method_handler, False
    else:
        fn, make, streaming = handler.stream_stream, grpc.stream_stream_rpc_method_handler, True

    streaming_request = handler.request_streaming

    def parsed(request: Any, context: grpc.ServicerContext) -> Any:
        if not streaming_request and isinstance(request, Unparsable):
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(request.error))
        if streaming_request and not takes_unparsable:
            request = _parsed_stream(request, context)
        return fn(request, context)

    def behavior(request: Any, context: grpc.ServicerContext) -> Any:
        return around(parsed, request, context, streaming)

    return make(
        behavior,
        request_deserializer=tolerant(handler.request_deserializer),
        response_serializer=handler.response_serializer,
    )


def _log_line(
    service: str, method: str, context: grpc.ServicerContext, code: grpc.StatusCode, seconds: float, stats: CallStats
) -> None:
    if not log.isEnabledFor(logging.INFO):
        return
    rec = {
        "ts": round(time.time(), 3),
        "service": service,
        "method": method,
        "peer": context.peer(),
        "code": code.name,
        "seconds": round(seconds, 4),
    }
    details = context.details() if code != grpc.StatusCode.OK else None
    if details:
        rec["details"] = details.decode() if isinstance(details, bytes) else str(details)
    rec.update(stats)
    log.info(json.dumps(rec, default=str))
