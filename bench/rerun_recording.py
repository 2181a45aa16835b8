"""What writing a Rerun recording (--rerun) adds to a scan, in one run.

    python bench/rerun_recording.py [--frames 60] [--distinct 20] [--size 640x480] [--rounds 2]

The same rendered synthetic room (bench/scan.py's folder: --distinct frames rendered at
640×480, repeated up to --frames) is scanned by `clients/scan_scene.py` as a user runs it,
through one `regiond serve --heads bundled` (lite), without and with `--rerun FILE.rrd`,
alternating for --rounds rounds (best of each). Prints `scan_scene N frames/s, with --rerun
M frames/s: the recording adds X ms per frame (ratio M/N); recording S MB`, and the load.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
import tempfile
from pathlib import Path

import regiond  # noqa: F401  (first: sets the OpenMP wait policy before torch loads)

REPO = Path(__file__).resolve().parents[1]


def bench_scan():
    """bench/scan.py (its rendering and its timed scan_scene run), loaded by path."""
    spec = importlib.util.spec_from_file_location("bench_scan", Path(__file__).with_name("scan.py"))
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--frames", type=int, default=60, help="frames scanned (default 60)")
    ap.add_argument("--distinct", type=int, default=20, help="frames rendered, repeated up to --frames (default 20)")
    ap.add_argument("--size", default="640x480", help="frames resampled to WxH before sending (default 640x480)")
    ap.add_argument("--rounds", type=int, default=2, help="alternating rounds (best of each is reported)")
    args = ap.parse_args()
    bs = bench_scan()
    from regiond.core.analytics import rerun_analytics_off

    load_start = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="bench-rerun-") as tmp:
        tmp = Path(tmp)
        os.environ.update(rerun_analytics_off(tmp / "config"))  # no Rerun usage data from the bench
        folder = bs.render_scene(tmp / "scene", args.frames, min(args.distinct, args.frames), 5)
        proc, address = bs.scan_daemon(tmp)
        rrd = tmp / "scan.rrd"
        plain, recorded = [], []
        try:
            bs.scan_scene(address, folder, tmp / "warm", 5, ["--max-frames", "5"], proc.pid)  # warm-up
            for _ in range(args.rounds):
                plain.append(bs.scan_scene(address, folder, tmp / "scan", args.frames, ["--size", args.size], proc.pid))
                recorded.append(
                    bs.scan_scene(
                        address, folder, tmp / "scan", args.frames, ["--size", args.size, "--rerun", str(rrd)], proc.pid
                    )
                )
        finally:
            proc.terminate()
            proc.wait(30)
        size_mb = rrd.stat().st_size / 1e6
    a, b = max(plain, key=lambda r: r.fps), max(recorded, key=lambda r: r.fps)
    x, y = a.fps, b.fps
    load_end = os.getloadavg()
    print(
        f"scan_scene {x:.1f} frames/s, with --rerun {y:.1f} frames/s: the recording adds "
        f"{1000 * (1 / y - 1 / x):.0f} ms per frame (ratio {y / x:.2f}); recording {size_mb:.1f} MB "
        f"({args.frames} frames at {args.size}, {size_mb / args.frames:.2f} MB per frame)"
    )
    print(
        f"client CPU {a.client_cpu:.0f} ms per frame, with --rerun {b.client_cpu:.0f} ms "
        f"(+{b.client_cpu - a.client_cpu:.0f} ms; process start and the final cloud included); peak RSS "
        f"{a.rss:.0f} MiB, with --rerun {b.rss:.0f} MiB"
    )
    print(f"load average {load_start[0]:.1f} at start, {load_end[0]:.1f} at end ({os.cpu_count()} CPUs)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
