"""bench/scan.py runs end to end at a tiny scale: a rendered folder, the daemon with the bundled
heads, both measurements and the stage costs (no timing is asserted; its figures come from
the full run)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_scan_bench_small(tmp_path):
    p = subprocess.run(
        [
            sys.executable,
            str(REPO / "bench" / "scan.py"),
            "--frames",
            "4",
            "--distinct",
            "2",
            "--rounds",
            "1",
            "--stages",
            "--scene",
            str(tmp_path / "scene"),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert p.returncode == 0, p.stderr[-3000:]
    line = re.search(
        r"scan_scene end to end ([\d.]+) frames/s, daemon alone ([\d.]+) frames/s, ratio ([\d.]+)", p.stdout
    )
    assert line, p.stdout
    x, y, ratio = map(float, line.groups())
    # x and y are printed to one decimal: the ratio must lie within what those roundings allow
    assert x > 0 and y > 0
    assert (x - 0.05) / (y + 0.05) - 0.005 <= ratio <= (x + 0.05) / max(y - 0.05, 1e-9) + 0.005
    assert "load average" in p.stdout and "client peak RSS" in p.stdout and "overlay draw" in p.stdout
    assert len(list((tmp_path / "scene" / "color").iterdir())) == 4  # 2 rendered, 2 repeated


def test_scan_bench_with_empty_keyframes(tmp_path):
    """--empty-every: the daemon runs through bench/empty_masks.py, its keyframe generator finds
    nothing on every 2nd keyframe, and every frame of both measurements is still answered."""
    p = subprocess.run(
        [
            sys.executable,
            str(REPO / "bench" / "scan.py"),
            *("--frames", "4", "--distinct", "2", "--rounds", "1", "--overlays", "none"),
            *("--keyframe-every", "2", "--empty-every", "2", "--scene", str(tmp_path / "scene")),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert p.returncode == 0, p.stderr[-3000:]
    assert re.search(
        r"masks: all 4 frames answered .*; generated on [1-4], carried to [0-3] \(keyframe every 2\)", p.stdout
    )
    assert "the keyframe generator's masks: none on 1 keyframe in 2" in p.stdout
