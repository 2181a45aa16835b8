"""`regiond extract` in one process vs on Ray with 1 and 2 actors, on the same frames, in one run.

    .venv/bin/python bench/ray_extract.py [--frames 200] [--items 10] [--size 640x480] [--rounds 2]

Frames: generated activity clips (regiond.scenes.synthetic) saved as `--items` image folders, the
lite profile, one torch thread per extractor. Baseline: jobs.extract_to_cache in this
process. Ray: a local Ray instance (2 CPUs, a 128 MB object store, no dashboard), started
once and not timed; each job is a Ray Data pipeline with an actor pool of extractors
(jobs.run_job with the ExtractWorker of extract_on_ray, each actor reserving 1 CPU at 1 actor and
0.5 at 2 actors). Every job writes a fresh cache.

Per Ray job it prints two rates: steady state (frames over the span from the first item's
start to the last item's end, as the actors timed them: what a long job gets) and end to end
(the whole job, including starting the actors and loading their models, seconds that a job of
weeks does not notice). The target is the steady-state overhead at 1 actor: <= 15 %. Each
figure is the best of --rounds rounds, the configurations interleaved in every round.
On 2 cores shared with other work expect little gain from a second actor.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

import regiond  # noqa: F401  (first: sets the OpenMP wait policy before torch loads)

REPO = Path(__file__).resolve().parents[1]

from regiond.extraction.extract_job import ExtractWorker  # noqa: E402


class TimedWorker(ExtractWorker):
    """The actors' worker, also noting in each item's meta when it started and finished it."""

    def __call__(self, payload: str) -> str:
        t0 = time.time()
        item = json.loads(super().__call__(payload))
        item["meta"]["bench"] = {"t0": t0, "t1": time.time()}
        return json.dumps(item)


def make_items(root: Path, frames: int, items: int, width: int, height: int) -> list[Path]:
    from PIL import Image

    from regiond.scenes.synthetic import render_clip

    per = frames // items
    out = []
    for k in range(items):
        d = root / f"clip{k:02d}"
        (d / "images").mkdir(parents=True)
        for j, f in enumerate(render_clip(label=k % 9, seed=k, frames=per, width=width, height=height).frames):
            Image.fromarray(f).save(d / "images" / f"{j:03d}.png", compress_level=1)
        out.append(d)
    return out


def one_process(sources, out: Path) -> tuple[float, int]:
    from regiond.extraction.extract_job import extract_to_cache
    from regiond.extraction.profiles import build_extractor

    ex = build_extractor("lite", preset="image")
    report = extract_to_cache(sources, out, ex, show_progress=False)
    assert not report.failures, report.failures
    return report.seconds, report.frames


def on_ray(sources, out: Path, actors: int) -> tuple[float, float, int]:
    """(steady-state seconds, end-to-end seconds, frames) of one Ray job."""
    from regiond.extraction.extract_job import run_job
    from regiond.extraction.pool import RayOptions
    from regiond.extraction.profiles import profile_versions

    opts = RayOptions(actors=actors, cpus_per_actor=1.0 / actors)
    versions = profile_versions("lite")
    build = {"profile": "lite", "preset": "image"}
    report = run_job(sources, out, versions, lambda root: partial(TimedWorker, str(root), build, versions, 1), opts)
    assert not report.failures and len(report.extracted) == len(sources), report.failures
    spans = [i.meta["bench"] for i in report.extracted]
    steady = max(s["t1"] for s in spans) - min(s["t0"] for s in spans)
    return steady, report.seconds, report.frames


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--frames", type=int, default=200)
    p.add_argument("--items", type=int, default=10, help="image folders the frames are split into (Ray's unit of work)")
    p.add_argument("--size", default="640x480")
    p.add_argument("--rounds", type=int, default=2)
    args = p.parse_args(argv)
    w, h = map(int, args.size.split("x"))

    import torch

    from regiond.extraction.pool import RayOptions, ray_cluster

    torch.set_num_threads(1)
    tmp = Path(tempfile.mkdtemp(prefix="regiond-ray-bench-"))
    try:
        sources = make_items(tmp / "src", args.frames, args.items, w, h)
        best: dict[str, tuple] = {}
        t0 = time.perf_counter()
        with ray_cluster(RayOptions()):
            print(f"Ray started in {time.perf_counter() - t0:.1f} s (not timed below)", flush=True)
            for r in range(args.rounds):
                for name, fn in (
                    ("one process", lambda out: _one(sources, out)),
                    ("ray, 1 actor", lambda out: on_ray(sources, out, 1)),
                    ("ray, 2 actors", lambda out: on_ray(sources, out, 2)),
                ):
                    out = tmp / f"cache-{r}-{name.replace(' ', '').replace(',', '')}"
                    res = fn(out)
                    shutil.rmtree(out)
                    if name not in best or res[0] < best[name][0]:
                        best[name] = res
                    print(f"  round {r + 1}: {name:<14} {res[2] / res[0]:6.1f} frames/s", flush=True)
        base = best["one process"][2] / best["one process"][0]
        print(
            f"\n{args.frames} frames of {w}x{h} in {args.items} items, lite profile; best of {args.rounds} rounds; "
            f"load {os.getloadavg()[0]:.1f}"
        )
        print(f"{'':<16}{'frames/s':>10}{'vs one process':>16}{'end to end (frames/s, s)':>28}")
        print(f"{'one process':<16}{base:>10.1f}{'1.00x':>16}")
        for name in ("ray, 1 actor", "ray, 2 actors"):
            steady, whole, n = best[name]
            print(f"{name:<16}{n / steady:>10.1f}{(n / steady) / base:>15.2f}x{n / whole:>18.1f}, {whole:5.1f} s")
        overhead = 1 - (best["ray, 1 actor"][2] / best["ray, 1 actor"][0]) / base
        print(f"Ray overhead at 1 actor (steady state): {100 * overhead:.1f} % (target <= 15 %)")
        print(f"2 actors vs 1: {best['ray, 1 actor'][0] / best['ray, 2 actors'][0]:.2f}x")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


def _one(sources, out: Path) -> tuple[float, None, int]:
    seconds, frames = one_process(sources, out)
    return seconds, None, frames


if __name__ == "__main__":
    sys.exit(main())
