"""The connection under RegionClient: channel (TLS, bearer token, message size), per-call
timeouts, retrying unary calls while the daemon restarts, and streams whose request
iterators are stopped and waited out. Errors come out as RegionError, never as gRPC's own.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import grpc

from regiond.api.v1 import regions_pb2_grpc as pb_grpc
from regiond.client.daemon_start import DaemonNotServing, starting, wait_until_serving
from regiond.client.messages import frame_encoding

DEFAULT_SERVER = "127.0.0.1:50051"
SERVER_ENV = "REGIOND_SERVER"
TOKEN_ENV = "REGIOND_TOKEN"
MAX_MESSAGE = 64 * 1024 * 1024
# gRPC's own reconnection, tighter than its defaults (1 s, growing to 120 s), so a restarted
# daemon is found within a few seconds of its return.
RECONNECT_BACKOFF = (("grpc.initial_reconnect_backoff_ms", 250), ("grpc.max_reconnect_backoff_ms", 2000))


class RegionError(RuntimeError):
    """A call the daemon refused or could not answer. `code` is its grpc.StatusCode; `details`
    its message (for INVALID_ARGUMENT it starts with the offending field, "depth: ...")."""

    def __init__(self, code: grpc.StatusCode, details: str, message: str | None = None):
        super().__init__(message or f"{code.name}: {details}")
        self.code = code
        self.details = details
        self.retry_after_ms: int | None = None  # the wait the daemon asked for (trailing retry-after-ms)

    @classmethod
    def from_rpc(cls, e: grpc.RpcError) -> RegionError:
        code = e.code() if hasattr(e, "code") else grpc.StatusCode.UNKNOWN
        err = cls(code, e.details() if hasattr(e, "details") else str(e))
        trailing = e.trailing_metadata() if hasattr(e, "trailing_metadata") else None
        for key, value in trailing or ():
            if key == "retry-after-ms" and str(value).isdigit():
                err.retry_after_ms = int(value)
        return err


class Unreachable(RegionError):
    """The daemon could not be reached (in time), or did not come back."""

    def __init__(self, message: str):
        super().__init__(grpc.StatusCode.UNAVAILABLE, message, message)


class InputReadError(ValueError):
    """Reading the frames or images given to a call failed (a corrupt frame of a strict
    source, a file that is not there); `__cause__` is what their iterator raised."""


class RequestFeed:
    """A request iterator for a streaming call that can be stopped and waited out.

    gRPC pulls requests on its own thread, and pulling a frame decodes video or images in
    OpenCV with the GIL released. A thread still inside such C++ code when the interpreter
    exits aborts the whole process ("FATAL: exception not rethrown"), so a stream ends with
    `close()`: no new pull starts, and the one in progress is waited for.
    """

    def __init__(self, requests: Iterable, stop: threading.Event):
        self._it = iter(requests)
        self._stop = stop  # also seen by the caller's frames iterator, so a pull blocked in it returns
        self._idle = threading.Event()
        self._idle.set()
        self._lock = threading.Lock()
        self.error: Exception | None = None  # reading the frames failed (gRPC only says UNKNOWN)

    def __iter__(self):
        return self

    def __next__(self):
        with self._lock:
            if self._stop.is_set():
                raise StopIteration
            self._idle.clear()
        try:
            return next(self._it)
        except StopIteration:
            raise
        except Exception as e:
            self.error = e
            raise
        finally:
            self._idle.set()

    def close(self, timeout: float = 10.0) -> None:
        with self._lock:
            self._stop.set()
        self._idle.wait(timeout)

    def failure(self, e: grpc.RpcError) -> Exception:
        """What the call's failure `e` means: reading the requests failed (InputReadError), or
        the call did (RegionError). Closes the feed first."""
        self.close()
        if self.error is not None:
            return InputReadError(str(self.error))
        return RegionError.from_rpc(e)


class Connection:
    """A channel to a regiond daemon; its arguments are RegionClient's (documented there).
    `address`, `timeout`, `retry_for` and `encoding` (as resolved for the address) stay readable."""

    def __init__(
        self,
        address: str | None = None,
        *,
        token: str | None = None,
        tls_ca: str | Path | bytes | None = None,
        tls_name: str | None = None,
        timeout: float | None = None,
        connect_timeout: float = 10.0,
        retry_for: float = 60.0,
        encoding: str = "auto",
        on_starting: Callable[[str], None] | None = None,
    ):
        self.address = address or os.environ.get(SERVER_ENV) or DEFAULT_SERVER
        self._on_starting = on_starting
        self.timeout = timeout
        self.retry_for = retry_for
        self.encoding = frame_encoding(encoding, self.address)  # how pixels travel to this daemon
        token = token if token is not None else (os.environ.get(TOKEN_ENV) or None)
        self._metadata = (("authorization", f"Bearer {token}"),) if token else ()
        self._tls = tls_ca is not None
        options = [
            ("grpc.max_send_message_length", MAX_MESSAGE),
            ("grpc.max_receive_message_length", MAX_MESSAGE),
            *RECONNECT_BACKOFF,
        ]
        if tls_ca is not None:
            pem = tls_ca if isinstance(tls_ca, bytes) else Path(tls_ca).read_bytes()
            if tls_name:
                options.append(("grpc.ssl_target_name_override", tls_name))
            self._channel = grpc.secure_channel(self.address, grpc.ssl_channel_credentials(pem), options=options)
        else:
            self._channel = grpc.insecure_channel(self.address, options=options)
        self._stub = pb_grpc.RegionServiceStub(self._channel)
        try:
            self.wait_ready(connect_timeout)
        except Unreachable:
            self.close()
            raise

    # --- connection ---------------------------------------------------------------------------

    def close(self) -> None:
        """Close the channel (calls still running end with CANCELLED)."""
        self._channel.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def wait_ready(self, timeout: float) -> None:
        """Until the daemon answers (at most `timeout` s) and serves (as long as it says it is
        starting: its models warming up, its search normaliser being fitted)."""
        try:
            grpc.channel_ready_future(self._channel).result(timeout=timeout)
        except grpc.FutureTimeoutError:
            raise Unreachable(
                f"cannot reach regiond at {self.address} within {timeout:g} s "
                f"(is `regiond serve` running there{', with TLS' if self._tls else ''}?)"
            ) from None
        self._wait_serving()

    def _wait_serving(self) -> None:
        try:
            wait_until_serving(self._channel, self.address, self._metadata, self._on_starting)
        except DaemonNotServing as e:
            raise Unreachable(str(e)) from None

    def reconnect(self, retry_for: float | None = None) -> None:
        """After a stream lost the daemon (RegionError UNAVAILABLE): wait until it is back, for
        at most `retry_for` seconds (default: the client's). Raises Unreachable if it is not."""
        wait = self.retry_for if retry_for is None else retry_for
        try:
            self.wait_ready(wait)
        except Unreachable:
            raise Unreachable(f"regiond at {self.address} did not come back within {wait:g} s") from None

    def unary(self, method: str, request, timeout: float | None):
        """Call `method`; while the daemon is gone (UNAVAILABLE), try again as soon as the
        channel is ready, for at most retry_for seconds (and within the call's timeout)."""
        call = getattr(self._stub, method)
        timeout = self.timeout if timeout is None else timeout
        start = time.monotonic()
        deadline = None if timeout is None else start + timeout
        retry_until = start + self.retry_for
        retries = 0
        while True:
            ends = [t for t in (deadline, retry_until if retries else None) if t is not None]
            try:
                limit = min(ends) - time.monotonic() if ends else None
                # the first try fails fast; a retry waits (in gRPC) for the channel to be ready
                return call(request, metadata=self._metadata, timeout=limit, wait_for_ready=retries > 0)
            except grpc.RpcError as e:
                code, now = e.code(), time.monotonic()
                budget_out = now >= retry_until and (deadline is None or retry_until < deadline)
                if retries and budget_out and code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
                    raise Unreachable(
                        f"regiond at {self.address} did not come back within {self.retry_for:g} s"
                    ) from None
                if starting(e):  # a restarted daemon, still starting: wait for it, then try afresh
                    self._wait_serving()
                    retry_until = time.monotonic() + self.retry_for
                    continue
                if code != grpc.StatusCode.UNAVAILABLE or now >= retry_until:
                    raise RegionError.from_rpc(e) from None
            # a daemon that answers UNAVAILABLE itself (shutting down) must not be asked in a busy loop
            time.sleep(min(0.05 * 2**retries, 1.0, max(0.0, retry_until - time.monotonic())))
            retries += 1

    def stream(self, method: str, requests: Iterable, stop: threading.Event | None, timeout: float | None):
        """Replies of a streaming call. The frames iterator failing is an InputReadError, the call
        failing a RegionError; leaving early (or close()) cancels the call."""
        stop = stop or threading.Event()
        feed = RequestFeed(requests, stop)
        call = getattr(self._stub, method)(feed, metadata=self._metadata, timeout=timeout)
        try:
            yield from call
        except grpc.RpcError as e:
            raise feed.failure(e) from feed.error
        finally:
            call.cancel()  # no-op after the end; stops the daemon's work when the caller left early
            feed.close()

    def upload(self, method: str, requests: Iterator, timeout: float | None):
        """The reply of a client-streaming call (not retried: `requests` may be read once).
        Raises as stream() does."""
        feed = RequestFeed(requests, threading.Event())
        timeout = self.timeout if timeout is None else timeout
        try:
            return getattr(self._stub, method)(feed, metadata=self._metadata, timeout=timeout)
        except grpc.RpcError as e:
            raise feed.failure(e) from feed.error
        finally:
            feed.close()
