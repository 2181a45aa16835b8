"""The layering holds (import-linter's contracts in pyproject.toml) and no module grows past
400 lines: the shape of the code is checked like its behaviour."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import tomllib

REPO = Path(__file__).resolve().parents[1]
OURS = ("core", "daemon", "scenes", "clients", "bench", "tests", "tools")
MAX_LINES = 400


def test_import_contracts_are_kept():
    lint = Path(sys.executable).with_name("lint-imports")
    out = subprocess.run([str(lint), "--no-cache"], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]
    assert "0 broken" in out.stdout


def test_contracts_cover_every_layer_and_ignore_nothing():
    cfg = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["importlinter"]
    contracts = cfg["contracts"]
    assert not any("ignore_imports" in c for c in contracts), "fix the import instead of ignoring it"
    layers = next(c for c in contracts if c["type"] == "layers")["layers"]
    rooms = {r.strip() for layer in layers for r in layer.split("|")}
    packages = {f"daemon.{p.name}" for p in (REPO / "daemon").iterdir() if (p / "__init__.py").is_file()}
    assert packages <= rooms, f"rooms missing from the layers contract: {sorted(packages - rooms)}"
    assert {"core", "scenes"} <= rooms


def test_no_module_over_400_lines():
    long = {}
    for top in OURS:
        for path in (REPO / top).rglob("*.py"):
            n = len(path.read_text().splitlines())
            if n > MAX_LINES:
                long[str(path.relative_to(REPO))] = n
    assert not long, f"split these modules (over {MAX_LINES} lines): {long}"
