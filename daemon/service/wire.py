"""Request bytes → messages, done by us instead of by grpc.

grpc's Python server answers a request message that does not parse with INTERNAL from inside
its receive callback, while the handler keeps running; when a streaming handler then returns,
grpc starts a second SendStatus batch that the core refuses, and that batch's token stays in
the call's pending set forever: `server.stop()` never completes (grpcio 1.85). So every
handler is registered with `tolerant(deserializer)`: bytes that do not parse become an
`Unparsable` item carrying an InputError, and the handler answers it like any other bad input
(INVALID_ARGUMENT for a unary call, a frame error in a stream, an entry in IndexImages' errors).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from regiond.core.errors import InputError

REQUEST_FIELD = "request"


@dataclass(frozen=True)
class Unparsable:
    """A request message whose bytes did not parse; `error` says why."""

    error: InputError
    size: int


def parse(deserializer: Callable[[bytes], Any] | None, data: bytes) -> Any:
    """The message, or raise InputError("request", ...) for bytes that are not one."""
    if deserializer is None:
        return data
    try:
        return deserializer(data)
    except Exception as e:  # DecodeError, RecursionError on deep nesting, ...: all bad input
        raise InputError(REQUEST_FIELD, f"cannot parse the {len(data)}-byte message: {type(e).__name__}: {e}") from None


def tolerant(deserializer: Callable[[bytes], Any] | None) -> Callable[[bytes], Any] | None:
    """A deserializer that never raises: bytes that do not parse become an Unparsable."""
    if deserializer is None:
        return None

    def deserialize(data: bytes) -> Any:
        try:
            return parse(deserializer, data)
        except InputError as e:
            return Unparsable(e, len(data))

    return deserialize


def check_parsed(request: Any) -> Any:
    """The request, or raise its InputError when it did not parse."""
    if isinstance(request, Unparsable):
        raise request.error
    return request
