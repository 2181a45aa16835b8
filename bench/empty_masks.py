"""A daemon whose mask generator sometimes finds nothing, for the benchmarks' --empty-every N.

    python bench/empty_masks.py N [regiond serve options]

Serves like `regiond serve` (its options, ready line, signals and stop), with the profile's
extractor, except that the generator run on keyframes returns no masks on every N-th call:
SAM on a blank wall, a dark frame or a covered lens. For a SAM profile that is its SAM; for
lite (no SAM) SLIC stands in for it, SLIC filling the gaps as SAM+SLIC does, so its empty
keyframes come out as whole superpixels. bench/scan.py and bench/stream.py start it with
--empty-every.
"""

from __future__ import annotations

import argparse
import sys
import threading

import regiond  # noqa: F401  (first: sets the OpenMP wait policy before torch loads)


class SometimesEmpty:
    """A mask generator that finds nothing on every `every`-th call, else the wrapped one's masks."""

    def __init__(self, inner, every: int):
        self.inner, self.every, self.calls = inner, int(every), 0
        self.name = inner.name
        self._lock = threading.Lock()

    def __call__(self, rgb):
        from regiond.masks.generator import MaskProposals

        with self._lock:
            self.calls += 1
            empty = self.calls % self.every == 0
        return MaskProposals.empty(*rgb.shape[:2]) if empty else self.inner(rgb)


def sometimes_empty(masker, every: int):
    """The masker with its keyframe generator wrapped in SometimesEmpty (see the docstring)."""
    from regiond.masks.cover import SamSlicCover
    from regiond.masks.slic import SlicMasker

    if isinstance(masker, SamSlicCover):
        return SamSlicCover(SometimesEmpty(masker.sam, every), masker.slic, masker.min_piece, masker.max_pixels)
    if isinstance(masker, SlicMasker):
        return SamSlicCover(SometimesEmpty(masker, every), masker, min_piece=0, max_pixels=masker.max_pixels)
    return SometimesEmpty(masker, every)


def main(argv: list[str]) -> int:
    from regiond.commands import serve
    from regiond.extraction import build_extractor
    from regiond.service.server import RegionServer

    if not argv or not argv[0].isdigit() or int(argv[0]) < 1:
        raise SystemExit("usage: bench/empty_masks.py N [regiond serve options] (N >= 1)")
    parser = argparse.ArgumentParser(prog="bench/empty_masks.py")
    serve.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["serve", *argv[1:]])
    serve.configure_logging(args.log_level)
    config = serve.config_from_args(args)
    ex = build_extractor(config.profile, config.weights, sam_generator=config.sam_generator)
    ex.masker = sometimes_empty(ex.masker, int(argv[0]))
    print(f"bench/empty_masks: no masks on every {argv[0]}-th keyframe ({ex.masker.name})", file=sys.stderr)
    return serve.serve_until_signalled(RegionServer(config, extractor=ex).start())


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
