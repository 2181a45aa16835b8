"""The `regiond` command. Each subcommand lives in its own module under daemon/commands
and exposes `register(subparsers)`; heavy imports (torch, models) happen only when a
command runs, so `regiond --help` stays instant."""

from __future__ import annotations

import argparse
import importlib
import sys

from regiond import __version__

# Order here is the order `regiond --help` lists them.
COMMAND_MODULES = [
    "regiond.commands.demo",
    "regiond.commands.regions",
    "regiond.commands.models",
    "regiond.commands.serve",
    "regiond.commands.scene",
    "regiond.commands.synth",
    "regiond.commands.extract",
    "regiond.commands.label",
    "regiond.commands.train",
    "regiond.commands.eval",
    "regiond.commands.index",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="regiond",
        description="Region tokens (SAM + SLIC masks, DINOv2 features, 3D positions) for video, "
        "RGB-D scenes and image search, served over gRPC.",
    )
    parser.add_argument("--version", action="version", version=f"regiond {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as e:
            if e.name != name:  # a real missing dependency, not a command still being written
                raise
            continue
        module.register(sub)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except (ValueError, FileNotFoundError) as e:  # InputError, MissingWeightsError, bad files
        print(f"regiond {args.command}: error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
