"""A `regiond serve` whose model hangs (as a wedged GPU driver would), for the stop tests.

    python tests/support_stuck.py PORT DATA_DIR GRACE

serves the lite profile with an index in DATA_DIR on 127.0.0.1:PORT through serve's own loop
(signals, stop, exit). Its model runs the warm-up and the first request's extraction; every
later one blocks forever on an event nothing sets, so the worker running it is stuck for good
(an IndexImages call without a deadline waits on it until stop cancels the call), and stop
must get past it.
"""
from __future__ import annotations

import logging
import sys
import threading
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from daemon.commands.serve import serve_until_signalled  # noqa: E402
from daemon.extraction import build_extractor  # noqa: E402
from daemon.service.config import ServeConfig  # noqa: E402
from daemon.service.server import RegionServer  # noqa: E402

STUCK_LINE = "support_stuck: a model call is stuck"


class HangingExtractor:
    """The lite extractor, except that after `works` more extractions each one blocks forever."""

    def __init__(self, inner):
        self._inner = inner
        self.works: float = float("inf")

    def __getattr__(self, name):
        return getattr(self._inner, name)

    def extract(self, frame, **kw):
        if self.works <= 0:
            print(STUCK_LINE, file=sys.stderr, flush=True)
            threading.Event().wait()  # never set
        self.works -= 1
        return self._inner.extract(frame, **kw)


def main(port: int, data_dir: Path, grace: float) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")  # as `regiond serve` logs
    ex = HangingExtractor(build_extractor("lite"))
    config = ServeConfig(listen=f"127.0.0.1:{port}", profile="lite", data_dir=data_dir, grace=grace)
    server = RegionServer(config, extractor=ex).start()  # the warm-up runs the real model
    ex.works = 1
    return serve_until_signalled(server)


if __name__ == "__main__":
    sys.exit(main(int(sys.argv[1]), Path(sys.argv[2]), float(sys.argv[3])))
