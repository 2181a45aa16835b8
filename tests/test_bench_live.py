"""bench/live.py runs end to end at a tiny scale: capacity, a live and a not-live stream, two
live streams at once and the latency plot (no timing is asserted; the figures come from the
full run)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FIELDS = (
    r"p95 latency (\d+) ms = ([\d.]+)× one frame's processing, latency slope (-?[\d.]+|nan) ms/s, "
    r"processed ([\d.]+) frames/s = ([\d.]+) of capacity, dropped ([\d.]+) %"
)


def test_live_bench_small(tmp_path):
    plot = tmp_path / "latency.png"
    p = subprocess.run(
        [
            sys.executable,
            str(REPO / "bench" / "live.py"),
            "--seconds",
            "3",
            "--size",
            "160x90",
            "--capacity-frames",
            "5",
            "--streams",
            "2",
            "--plot",
            str(plot),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert p.returncode == 0, p.stderr[-3000:]
    live = re.search(r"^live: " + FIELDS, p.stdout, re.M)
    not_live = re.search(r"^not live: " + FIELDS, p.stdout, re.M)
    assert live and not_live, p.stdout
    assert float(not_live.group(6)) == 0.0  # without live mode nothing is dropped
    assert re.search(r"^2 live streams: processed min/max = [\d.]+", p.stdout, re.M), p.stdout
    assert plot.stat().st_size > 10_000 and plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
