"""bench/gpu.py: without CUDA it says so and exits 0; a row runs on the CPU with the tiny
models and reports through the protocol the table reads (its GPU figures come from a GPU)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

GPU = Path(__file__).resolve().parents[1] / "bench" / "gpu.py"


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA: bench/gpu.py would measure")
def test_without_cuda_says_so_and_exits_0():
    p = subprocess.run([sys.executable, str(GPU)], capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-2000:]
    assert "no CUDA device here" in p.stdout and "nothing to measure" in p.stdout


def test_a_row_dry_runs_on_the_cpu():
    p = subprocess.run(
        [sys.executable, str(GPU), "--row", "dinov2", "--device", "cpu", "--dry-run", "--frames", "1"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert p.returncode == 0, p.stderr[-2000:]
    line = next(x for x in p.stdout.splitlines() if x.startswith("RESULT "))
    assert float(json.loads(line[len("RESULT ") :])["value"]) > 0
