"""What the command-line clients share: their arguments (connection, carried masks, frame
encoding), the RegionClient those make, and how they end (messages, exit codes, going on
after the daemon restarted). Everything else is RegionClient's (clients/region_client.py).
"""

from __future__ import annotations

import argparse
import os
import sys

import grpc

from regiond.client.admission import wait_until_admitted
from regiond.client.connection import DEFAULT_SERVER, SERVER_ENV, TOKEN_ENV, RegionError, Unreachable
from regiond.client.region_client import RegionClient
from regiond.core.regionset import RegionSet


class DefaultsHelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows each option's default, except where there is none (None, an off switch) or its help says it."""

    def _get_help_string(self, action):
        if action.default is None or action.default is False or "(default" in (action.help or ""):
            return action.help
        return super()._get_help_string(action)


def add_connection_args(p, default_server: str | None = None, subcommand: bool = False) -> None:
    """--server, --token, --tls-ca, --tls-name, --connect-timeout, --retry-for: the same in every
    client. A client with subcommands adds them to its main parser and again to every
    subcommand (subcommand=True: no defaults there, so a value given before the subcommand
    stands unless repeated after it): `search.py --server H index DIR` and
    `search.py index DIR --server H` both work."""

    def default(value):
        return argparse.SUPPRESS if subcommand else value

    server = default_server or os.environ.get(SERVER_ENV) or DEFAULT_SERVER
    p.add_argument(
        "--server",
        default=default(server),
        metavar="HOST:PORT",
        help=f"the regiond daemon (default: {server}; ${SERVER_ENV} sets another)",
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


def client_from_args(args, encoding: str = "auto") -> RegionClient:
    """The RegionClient the connection arguments describe. Raises Unreachable."""
    return RegionClient(
        args.server,
        token=args.token,
        tls_ca=args.tls_ca,
        tls_name=args.tls_name,
        connect_timeout=args.connect_timeout,
        retry_for=args.retry_for,
        encoding=encoding,
        on_starting=lambda line: print(line, file=sys.stderr, flush=True),
    )


def describe(e: RegionError) -> str:
    """A failed call as the clients print it, with what to do where that is clear."""
    if isinstance(e, Unreachable):
        return str(e)
    hint = {
        grpc.StatusCode.UNAUTHENTICATED: f" (give --token or set ${TOKEN_ENV})",
        grpc.StatusCode.UNAVAILABLE: " (is the daemon running?)",
    }.get(e.code, "")
    return f"{e}{hint}"


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


class ClientExit(Exception):
    """Ends a client with `code`; its message was already printed."""

    def __init__(self, code: int):
        super().__init__(code)
        self.code = code


def wait_for_return(err: RegionError, client: RegionClient, prog: str) -> None:
    """After a stream failed: return once the daemon that went away (UNAVAILABLE) is back, or
    once a daemon serving its maximum of streams asked us to wait (RESOURCE_EXHAUSTED with
    retry-after-ms, within --retry-for), else end the client (ClientExit, message printed; the
    client is closed)."""
    if wait_until_admitted(err, client, prog):
        return
    if err.code != grpc.StatusCode.UNAVAILABLE:
        client.close()
        raise ClientExit(fail(prog, describe(err)))
    print(f"{prog}: lost the daemon ({describe(err)}); reconnecting", file=sys.stderr)
    try:
        client.reconnect()
    except Unreachable as u:
        client.close()
        raise ClientExit(fail(prog, str(u))) from None
    print(f"{prog}: reconnected to {client.address}", file=sys.stderr)


# --- masks carried across frames, frame encoding ---------------------------------------------


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


def carry_args(args) -> dict:
    """The stream's keyframe_every / min_coverage keywords from --keyframe-every / --min-coverage."""
    return {"keyframe_every": args.keyframe_every, "min_coverage": args.min_coverage}


class KeyframeCount:
    """Frames whose masks were generated vs carried, from the replies' carry state."""

    def __init__(self):
        self.keyframes = self.carried = 0

    def add(self, regions: RegionSet) -> None:
        carry = regions.meta.get("carry")
        if carry:
            if carry["keyframe"]:
                self.keyframes += 1
            else:
                self.carried += 1

    def line(self) -> str:
        """ "" when the stream carried nothing."""
        n = self.keyframes + self.carried
        return f"masks generated on {self.keyframes} of {n} frames, carried to {self.carried}" if n else ""


def add_encoding_arg(p, what: str = "colour") -> None:
    """--encoding auto|jpeg|png|raw, the same in the streaming clients."""
    p.add_argument(
        "--encoding",
        choices=("auto", "jpeg", "png", "raw"),
        default="auto",
        help=f"how {what} travels: raw RGB (no coding cost, 0.9 MB a 640×480 frame), jpeg or png; "
        f"auto (default): raw to a daemon on this machine (a loopback --server), else jpeg",
    )
