"""A `regiond serve` with a part that hangs (a wedged GPU driver, a disk that stops answering),
for the stop tests.

    python tests/support_stuck.py PORT DATA_DIR GRACE model|index

serves the lite profile with an index in DATA_DIR on 127.0.0.1:PORT through serve's own loop
(signals, stop, exit). The hanging part does its first two jobs after start-up and blocks
forever on an event nothing sets from the third one on:
  model  the model (the warm-up and two extractions run): the worker running it is stuck
         for good, and the calls waiting on it follow their call's cancellation;
  index  the region index's SQLite store writing an image (after two images): the
         IndexImages handler is stuck in the index's add on grpc's thread, holding the
         index's write lock as a real write does, and sees no cancellation.
Stop must get past it either way.
"""

from __future__ import annotations

import logging
import sys
import threading
from pathlib import Path

from regiond.commands.serve import serve_until_signalled  # noqa: E402
from regiond.extraction import build_extractor  # noqa: E402
from regiond.service.config import ServeConfig  # noqa: E402
from regiond.service.server import RegionServer  # noqa: E402

STUCK_LINE = "support_stuck: stuck in "  # + the method that hangs


class Hanging:
    """A real part, except that after `works` more calls of its hanging method each one blocks forever."""

    def __init__(self, inner):
        self._inner = inner
        self.works: float = float("inf")

    def __getattr__(self, name):
        return getattr(self._inner, name)

    def _pass_or_hang(self, method: str) -> None:
        if self.works <= 0:
            print(STUCK_LINE + method, file=sys.stderr, flush=True)
            threading.Event().wait()  # never set
        self.works -= 1


class HangingExtractor(Hanging):
    def extract(self, frame, **kw):
        self._pass_or_hang("extract")
        return self._inner.extract(frame, **kw)


class HangingStore(Hanging):
    """The index's SQLiteStore; RegionIndex calls add_image holding the store's write lock."""

    def add_image(self, *args, **kw):
        self._pass_or_hang("add_image")
        return self._inner.add_image(*args, **kw)


def main(port: int, data_dir: Path, grace: float, where: str) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")  # as `regiond serve` logs
    ex = build_extractor("lite")
    if where == "model":
        ex = HangingExtractor(ex)
    config = ServeConfig(listen=f"127.0.0.1:{port}", profile="lite", data_dir=data_dir, grace=grace)
    server = RegionServer(config, extractor=ex).start()  # the warm-up runs the real model
    if where == "model":
        hanging = ex
    elif where == "index":
        hanging = server.search.index.store = HangingStore(server.search.index.store)
    else:
        raise SystemExit(f"where: model or index, not {where!r}")
    hanging.works = 2  # a new index checkpoints at its first add: the second leaves one due at close
    return serve_until_signalled(server)


if __name__ == "__main__":
    sys.exit(main(int(sys.argv[1]), Path(sys.argv[2]), float(sys.argv[3]), sys.argv[4]))
