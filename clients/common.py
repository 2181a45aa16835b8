"""What the regiond clients share: connecting (token, TLS, clear errors when the daemon is not
there), turning Frames into API messages, reading RegionSets back, and re-running a stream
after the daemon restarts.

Clients use only the generated API code (regions.v1) and `scenes`; nothing here imports the
daemon's internals.
"""

from __future__ import annotations

import argparse
import io
import ipaddress
import os
import random
import sys
import threading
import time
from dataclasses import dataclass

import grpc
import numpy as np
from PIL import Image

from regiond.api.v1 import regions_pb2 as pb
from regiond.api.v1 import regions_pb2_grpc as pb_grpc
from regiond.client.daemon_start import DaemonNotServing, wait_until_serving
from regiond.core.rle import MaskPixels

DEFAULT_SERVER = "127.0.0.1:50051"
TOKEN_ENV = "REGIOND_TOKEN"
MAX_MESSAGE = 64 * 1024 * 1024
#: status codes after which a stream is worth re-opening (the daemon restarted or is restarting)
RETRYABLE = (grpc.StatusCode.UNAVAILABLE,)


class RequestFeed:
    """A request iterator for a streaming call that can be stopped and waited out.

    gRPC pulls requests on its own thread, and pulling a frame decodes video or images in
    OpenCV with the GIL released. A thread still inside such C++ code when the interpreter
    exits aborts the whole process ("FATAL: exception not rethrown"), so before a client
    returns it calls `close()`: no new pull starts, and the one in progress is waited for.
    """

    def __init__(self, requests, stop: threading.Event):
        self._it = iter(requests)
        self._stop = stop  # also seen by the request generator, so a pull blocked in it returns
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

    def raise_source_error(self, conn: Connection, prog: str) -> None:
        """After the call failed: if reading the frames was the cause (a bad frame of a strict
        source), end the client with that message (exit 1), not the call's status."""
        if self.error is not None:
            conn.close()
            raise ClientExit(fail(prog, str(self.error), 1))

    def close(self, timeout: float = 10.0) -> None:
        with self._lock:
            self._stop.set()
        self._idle.wait(timeout)


class Unreachable(RuntimeError):
    """The daemon could not be reached (in time)."""


class DefaultsHelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows each option's default, except where there is none (None, an off switch) or its help says it."""

    def _get_help_string(self, action):
        if action.default is None or action.default is False or "(default" in (action.help or ""):
            return action.help
        return super()._get_help_string(action)


def add_connection_args(p, default_server: str = DEFAULT_SERVER, subcommand: bool = False) -> None:
    """--server, --token, --tls-ca, --tls-name, --connect-timeout, --retry-for: the same in every
    client. A client with subcommands adds them to its main parser and again to every
    subcommand (subcommand=True: no defaults there, so a value given before the subcommand
    stands unless repeated after it): `search.py --server H index DIR` and
    `search.py index DIR --server H` both work."""

    def default(value):
        return argparse.SUPPRESS if subcommand else value

    p.add_argument(
        "--server",
        default=default(default_server),
        metavar="HOST:PORT",
        help=f"the regiond daemon (default: {default_server})",
    )
    p.add_argument(
        "--token",
        default=default(None),
        help=f"bearer token (default: ${TOKEN_ENV}; none when the daemon has no token)",
    )
    p.add_argument(
        "--tls-ca",
        default=default(None),
        metavar="PEM",
        help="connect with TLS, trusting this CA or self-signed certificate",
    )
    p.add_argument(
        "--tls-name",
        default=default(None),
        metavar="NAME",
        help="expected server name in its certificate (default: the --server host)",
    )
    p.add_argument(
        "--connect-timeout",
        type=float,
        default=default(10.0),
        metavar="S",
        help="give up when the daemon does not answer within this many seconds (default: 10)",
    )
    p.add_argument(
        "--retry-for",
        type=float,
        default=default(60.0),
        metavar="S",
        help="after the daemon goes away mid-run, keep reconnecting (with backoff) this long (default: 60)",
    )


@dataclass
class Connection:
    """A channel to the daemon with its stub and the call metadata (token)."""

    server: str
    channel: grpc.Channel
    stub: pb_grpc.RegionServiceStub
    metadata: tuple

    def close(self) -> None:
        self.channel.close()


def connect(
    server: str, token: str | None = None, tls_ca: str | None = None, tls_name: str | None = None, timeout: float = 10.0
) -> Connection:
    """Open a channel and wait until it is ready and the daemon serves (daemon_start: one still
    starting is waited for, its progress printed). Raises Unreachable with a clear message."""
    token = token if token is not None else (os.environ.get(TOKEN_ENV) or None)
    options = [("grpc.max_send_message_length", MAX_MESSAGE), ("grpc.max_receive_message_length", MAX_MESSAGE)]
    if tls_ca:
        with open(tls_ca, "rb") as fh:
            creds = grpc.ssl_channel_credentials(root_certificates=fh.read())
        if tls_name:
            options.append(("grpc.ssl_target_name_override", tls_name))
        channel = grpc.secure_channel(server, creds, options=options)
    else:
        channel = grpc.insecure_channel(server, options=options)
    try:
        grpc.channel_ready_future(channel).result(timeout=timeout)
    except grpc.FutureTimeoutError:
        channel.close()
        raise Unreachable(
            f"cannot reach regiond at {server} within {timeout:g} s "
            f"(is `regiond serve` running there{', with TLS' if tls_ca else ''}?)"
        ) from None
    metadata = (("authorization", f"Bearer {token}"),) if token else ()
    try:
        wait_until_serving(channel, server, metadata)  # a daemon still starting answers, but not yet for work
    except DaemonNotServing as e:
        channel.close()
        raise Unreachable(str(e)) from None
    return Connection(server, channel, pb_grpc.RegionServiceStub(channel), metadata)


def connect_from_args(args) -> Connection:
    return connect(args.server, args.token, args.tls_ca, args.tls_name, args.connect_timeout)


def describe_rpc_error(e: grpc.RpcError) -> str:
    code = e.code() if hasattr(e, "code") else None
    details = e.details() if hasattr(e, "details") else str(e)
    hint = {
        grpc.StatusCode.UNAUTHENTICATED: " (give --token or set $REGIOND_TOKEN)",
        grpc.StatusCode.UNAVAILABLE: " (is the daemon running?)",
    }.get(code, "")
    return f"{code.name if code else 'error'}: {details}{hint}"


def run_main(prog: str, build_parser, run, argv=None) -> int:
    """A client's entry point: parse, run, and turn Ctrl-C into a message and exit 130."""
    args = build_parser().parse_args(argv)
    try:
        return run(args)
    except ClientExit as e:
        return e.code
    except KeyboardInterrupt:
        return fail(prog, "interrupted", 130)


def fail(prog: str, message: str, code: int = 2) -> int:
    print(f"{prog}: error: {message}", file=sys.stderr)
    return code


class Backoff:
    """Exponential backoff with jitter, for at most `total` seconds overall."""

    def __init__(self, total: float, first: float = 0.5, cap: float = 8.0):
        self.deadline = time.monotonic() + total
        self.delay = first
        self.cap = cap

    def wait(self) -> bool:
        """Sleep before the next try; False when the time is up."""
        left = self.deadline - time.monotonic()
        if left <= 0:
            return False
        time.sleep(min(left, self.delay * (0.75 + 0.5 * random.random())))
        self.delay = min(self.cap, self.delay * 2)
        return True


class ClientExit(Exception):
    """Ends a client with `code`; its message was already printed."""

    def __init__(self, code: int):
        super().__init__(code)
        self.code = code


def reopen_after(err: grpc.RpcError, call, conn: Connection, args, prog: str) -> Connection:
    """After a streaming call failed: a fresh connection when the daemon went away and came
    back, else ClientExit (message printed). The old channel is closed either way, before
    exiting too: gRPC's threads must not outlive their channel."""
    if err.code() not in RETRYABLE:
        call.cancel()
        conn.close()
        raise ClientExit(fail(prog, describe_rpc_error(err)))
    conn.close()
    try:
        return reconnect(args, prog, err)
    except Unreachable as u:
        raise ClientExit(fail(prog, str(u))) from None


def reconnect(args, prog: str, err: grpc.RpcError) -> Connection:
    """After the daemon went away: reconnect with backoff for --retry-for seconds, or raise."""
    print(f"{prog}: lost the daemon ({describe_rpc_error(err)}); reconnecting", file=sys.stderr)
    backoff = Backoff(args.retry_for)
    while backoff.wait():
        try:
            conn = connect(args.server, args.token, args.tls_ca, args.tls_name, timeout=2.0)
        except Unreachable:
            continue
        print(f"{prog}: reconnected to {args.server}", file=sys.stderr)
        return conn
    raise Unreachable(f"regiond at {args.server} did not come back within {args.retry_for:g} s")


# --- masks carried across frames ------------------------------------------------------------


def add_carry_args(p, how: str) -> None:
    """--keyframe-every K and --min-coverage F, the same in the streaming clients."""
    p.add_argument(
        "--keyframe-every",
        type=int,
        default=0,
        metavar="K",
        help=f"generate masks on every K-th frame only and carry them to the frames between ({how}; "
        f"SLIC fills the gaps); 0 or 1: generate on every frame",
    )
    p.add_argument(
        "--min-coverage",
        type=float,
        default=0.0,
        metavar="F",
        help="with --keyframe-every: a frame whose carried masks cover less than this share of what "
        "its keyframe's covered becomes a keyframe (0: the daemon's default, 0.8)",
    )


def carry_options(args) -> pb.CarryOptions | None:
    """The stream's CarryOptions from --keyframe-every / --min-coverage (None: off)."""
    if args.keyframe_every <= 1:
        return None
    return pb.CarryOptions(keyframe_every=args.keyframe_every, min_coverage=args.min_coverage)


class KeyframeCount:
    """Frames whose masks were generated vs carried, from the replies' CarryState."""

    def __init__(self):
        self.keyframes = self.carried = 0

    def add(self, regions: pb.RegionSet) -> None:
        if regions.HasField("carry"):
            if regions.carry.keyframe:
                self.keyframes += 1
            else:
                self.carried += 1

    def line(self) -> str:
        """ "" when the stream carried nothing."""
        n = self.keyframes + self.carried
        return f"masks generated on {self.keyframes} of {n} frames, carried to {self.carried}" if n else ""


# --- frames → messages ----------------------------------------------------------------------


def add_encoding_arg(p, what: str = "colour") -> None:
    """--encoding auto|jpeg|png|raw, the same in the streaming clients."""
    p.add_argument(
        "--encoding",
        choices=("auto", "jpeg", "png", "raw"),
        default="auto",
        help=f"how {what} travels: raw RGB (no coding cost, 0.9 MB a 640×480 frame), jpeg or png; "
        f"auto (default): raw to a daemon on this machine (a loopback --server), else jpeg",
    )


def frame_encoding(choice: str, server: str) -> str:
    """The encoding --encoding picks for frames sent to `server` (HOST:PORT)."""
    if choice != "auto":
        return choice
    host = server.rpartition(":")[0].strip("[]") or server
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    return "raw" if loopback else "jpeg"


def image_pb(rgb: np.ndarray, encoding: str = "jpeg", quality: int = 95) -> pb.Image:
    """H×W×3 uint8 → Image: "raw" (RGB8, no coding cost, for loopback), "jpeg" or "png"."""
    rgb = np.ascontiguousarray(rgb, dtype=np.uint8)
    if encoding == "raw":
        h, w = rgb.shape[:2]
        return pb.Image(data=rgb.tobytes(), encoding=pb.Image.RGB8, width=w, height=h)
    import cv2  # heavy: only when frames are sent as JPEG or PNG

    ext, params = {
        "jpeg": (".jpg", [cv2.IMWRITE_JPEG_QUALITY, quality]),
        "png": (".png", [cv2.IMWRITE_PNG_COMPRESSION, 1]),
    }[encoding]
    ok, buf = cv2.imencode(ext, rgb[:, :, ::-1], params)
    if not ok:
        raise ValueError(f"could not encode the image as {encoding}")
    return pb.Image(data=buf.tobytes())


def depth_pb(depth: np.ndarray) -> pb.Depth:
    """Metres (float, NaN/0 = none) → millimetre UINT16 depth (half the bytes of float32)."""
    d = np.nan_to_num(np.asarray(depth, dtype=np.float32), nan=0.0, posinf=0.0, neginf=0.0)
    mm = np.clip(np.rint(d * 1000.0), 0, 65535).astype("<u2")
    h, w = mm.shape
    return pb.Depth(data=mm.tobytes(), dtype=pb.Depth.UINT16, width=w, height=h, scale=0.001)


def intrinsics_pb(camera) -> pb.Intrinsics:
    return pb.Intrinsics(
        fx=camera.fx, fy=camera.fy, cx=camera.cx, cy=camera.cy, width=camera.width, height=camera.height
    )


def pose_pb(pose: np.ndarray) -> pb.Pose:
    return pb.Pose(matrix=np.asarray(pose, dtype=np.float64).reshape(16).tolist())


def scene_frame_pb(frame, encoding: str = "jpeg", **fields) -> pb.SceneFrame:
    """A scenes Frame → SceneFrame (depth, intrinsics and pose when the frame has them)."""
    msg = pb.SceneFrame(color=image_pb(frame.rgb, encoding), index=int(frame.index), **fields)
    if frame.time is not None:
        msg.time = float(frame.time)
    if frame.depth is not None:
        msg.depth.CopyFrom(depth_pb(frame.depth))
    if frame.camera is not None:
        msg.intrinsics.CopyFrom(intrinsics_pb(frame.camera))
    if frame.pose is not None:
        msg.pose.CopyFrom(pose_pb(frame.pose))
    return msg


def video_frame_pb(frame, encoding: str = "jpeg", **fields) -> pb.VideoFrame:
    msg = pb.VideoFrame(image=image_pb(frame.rgb, encoding), index=int(frame.index), **fields)
    if frame.time is not None:
        msg.time = float(frame.time)
    return msg


# --- messages → arrays ----------------------------------------------------------------------

_SOURCE_CODE = {pb.SOURCE_SAM: 0, pb.SOURCE_SLIC: 1}  # regiond.core.regionset source codes


def region_pixels(rs: pb.RegionSet) -> MaskPixels:
    """The masks of a RegionSet message, decoded all at once (regions without masks are empty)."""
    counts = [r.mask.counts if r.mask.counts else (rs.height * rs.width,) for r in rs.regions]
    return MaskPixels.from_counts(counts, rs.height, rs.width)


def region_sources(rs: pb.RegionSet) -> np.ndarray:
    return np.array([_SOURCE_CODE.get(r.source, 0) for r in rs.regions], dtype=np.uint8)


def region_features(rs: pb.RegionSet) -> np.ndarray | None:
    """N×D float32 features, or None when the reply has none."""
    dtype = {pb.FEATURES_FLOAT16: "<f2", pb.FEATURES_FLOAT32: "<f4"}.get(rs.feature_encoding)
    if dtype is None or not rs.regions:
        return None
    return np.stack([np.frombuffer(r.features, dtype=dtype) for r in rs.regions]).astype(np.float32)


def decode_png(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as im:
        return np.asarray(im)
