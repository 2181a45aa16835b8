"""`regiond serve` on the tiny random models (SAM + DINOv2, the balanced code path), for the
start-up tests.

    python tests/support_startup.py SERVE_OPTIONS...

takes `regiond serve`'s own options and runs serve's own loop (signals, the listening and
ready lines, the start-up thread, stop, exit status); only the extractor differs: the tiny
profile with SAM prompted by 2×2 points, so its warm-up takes a second instead of a minute.
The tiny DINOv2 has no shipped normaliser statistics, so a new index fits them on the corpus
(seconds) or takes them from the user cache ($XDG_CACHE_HOME/regiond/normalisers), as the
balanced profile does.
"""

from __future__ import annotations

import argparse
import sys
import time

from regiond.commands import serve
from regiond.extraction import build_extractor
from regiond.service.server import RegionServer
from regiond.service.startup import Startup

TINY_SAM = dict(points_per_side=2, points_per_batch=16)


def main(argv: list[str]) -> int:
    started = time.monotonic()
    parser = argparse.ArgumentParser(prog="support_startup")
    serve.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["serve", *argv])
    serve.configure_logging(args.log_level)
    config = serve.config_from_args(args)
    config.profile = "tiny"  # a test profile: --profile does not offer it
    signals = serve.StopSignals(config.grace)
    extractor = build_extractor("tiny", sam_overrides=TINY_SAM)
    return serve.serve_until_signalled(RegionServer(config, extractor=extractor, startup=Startup(started)), signals)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
