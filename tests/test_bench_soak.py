"""bench/soak.py runs end to end at a tiny scale: every kind of load against one daemon, the
per-minute line and the final soak line with no unexpected error (no timing is asserted; the
figures come from the 10-minute run in docs/benchmarks.md)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_soak_small():
    p = subprocess.run(
        [sys.executable, str(REPO / "bench" / "soak.py"), "--minutes", "0.25", "--fps", "2"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    minute = re.search(
        r"^minute 1: calls (.*); ([\d.]+) frames/s; latency p50 \d+ ms p99 \d+ ms; "
        r"daemon RSS \d+ MB, open fds \d+$",
        p.stdout,
        re.M,
    )
    assert minute, p.stdout
    codes = dict(kv.split("=") for kv in minute.group(1).split())
    assert {"OK", "INVALID_ARGUMENT", "CANCELLED"} <= set(codes) and float(minute.group(2)) > 0
    assert re.search(r"^soak 0.25 min: 0 unexpected errors, RSS drift -?[\d.]+ %, fd drift -?\d+$", p.stdout, re.M)
    assert "daemon stopped in" in p.stdout
