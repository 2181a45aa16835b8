"""The fuzz harnesses (tests/fuzz/): a short coverage-guided run of each, and every input that
once found a defect (tests/fuzz/regressions/HARNESS/) replayed: the only acceptable outcomes
are a result or our own error type with a message. `make fuzz` runs them for longer."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest
from runner import HARNESSES  # tests/fuzz is on pytest's pythonpath (pyproject.toml)

FUZZ = Path(__file__).resolve().parent / "fuzz"

SHORT_RUNS = 2000
REGRESSIONS = sorted(p for p in (FUZZ / "regressions").glob("*/*") if p.is_file())
needs_atheris = pytest.mark.skipif(
    importlib.util.find_spec("atheris") is None,
    reason="atheris is not installed: the dev extra installs atheris 3.0.0 only where "
    "it has wheels (CPython 3.11-3.13 on x86-64 Linux); elsewhere it "
    "must be built with clang and libFuzzer",
)


@needs_atheris
@pytest.mark.parametrize("harness", HARNESSES)
def test_short_fuzz_run_finds_nothing(harness, tmp_path):
    p = subprocess.run(
        [
            sys.executable,
            str(FUZZ / "runner.py"),
            "--runs",
            str(SHORT_RUNS),
            "--seed",
            "1",
            "--out",
            str(tmp_path),
            harness,
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    line = re.search(rf"^{harness.upper()}: (\d+) executions, (\d+) crashes$", p.stdout, re.M)
    assert line, p.stdout + p.stderr
    assert int(line.group(2)) == 0, p.stdout + (tmp_path / harness / "fuzz.log").read_text()[-3000:]
    assert int(line.group(1)) >= SHORT_RUNS and p.returncode == 0


def test_seed_corpora_are_small():
    for h in HARNESSES:
        seeds = list((FUZZ / "corpus" / h).iterdir())
        assert seeds and sum(s.stat().st_size for s in seeds) < 100_000, h


@pytest.fixture(scope="module")
def targets():
    import targets as t

    for name in {p.parent.name for p in REGRESSIONS}:
        t.TARGETS[name].setup()
    return t


@pytest.mark.parametrize("path", REGRESSIONS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_regression_input(path, targets):
    """A finding of the fuzzer, fixed: its input gives a result or our error with a message."""
    try:
        targets.TARGETS[path.parent.name].run(path.read_bytes())
    except targets.allowed_errors() as e:
        assert str(e).strip()
