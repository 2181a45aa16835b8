"""The shape of the code, checked like its behaviour: the layering holds (import-linter's
contracts in pyproject.toml), no module grows past 400 lines, one name means one thing (no two
shipped modules share a file name unless they are the same kind of thing in parallel rooms, and
none shadows the standard library), the installed package lists every folder, and test files
are named after the room they test."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import tomllib

REPO = Path(__file__).resolve().parents[1]
OURS = ("core", "daemon", "scenes", "clients", "protos", "bench", "tests", "tools")
MAX_LINES = 400


def test_import_contracts_are_kept():
    lint = Path(sys.executable).with_name("lint-imports")
    out = subprocess.run([str(lint), "--no-cache"], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]
    assert "0 broken" in out.stdout


def test_ruff_format_and_lint_are_clean():
    ruff = Path(sys.executable).with_name("ruff")
    for args in (["format", "--check"], ["check"]):
        out = subprocess.run([str(ruff), *args, "."], cwd=REPO, capture_output=True, text=True, timeout=300)
        assert out.returncode == 0, f"ruff {' '.join(args)}:\n{out.stdout[-3000:]}{out.stderr[-1000:]}"


def test_contracts_cover_every_layer_and_ignore_nothing():
    cfg = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["importlinter"]
    contracts = cfg["contracts"]
    assert not any("ignore_imports" in c for c in contracts), "fix the import instead of ignoring it"
    layers = next(c for c in contracts if c["type"] == "layers")["layers"]
    rooms = {r.strip() for layer in layers for r in layer.split("|")}
    packages = {p.name for p in (REPO / "daemon").iterdir() if (p / "__init__.py").is_file()}
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


#: the one import namespace: repository folder -> package (pyproject's package-dir; README "Layout")
NAMESPACE = {
    "daemon": "regiond",
    "core": "regiond.core",
    "scenes": "regiond.scenes",
    "clients": "regiond.client",
    "protos/regions": "regiond.api",
}
#: file names that may repeat: the same kind of thing in parallel rooms
SHARED_NAMES = {"__init__.py", "__main__.py", "config.py", "registry.py"}
#: test files are test_<room>_<what>.py
TEST_ROOMS = {
    "core",
    "scenes",
    "geometry",
    "masks",
    "features",
    "extraction",
    "heads",
    "index",
    "objects",
    "service",
    "commands",
    "client",
    "api",
    "bench",
    "project",
}


def shipped_modules() -> list[Path]:
    return sorted(p for folder in NAMESPACE for p in (REPO / folder).rglob("*.py"))


def test_the_package_lists_every_folder():
    setuptools = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert setuptools["package-dir"] == {name: folder for folder, name in NAMESPACE.items()}
    found = set()
    for folder, name in NAMESPACE.items():
        for init in (REPO / folder).rglob("__init__.py"):
            rel = init.parent.relative_to(REPO / folder).parts
            found.add(".".join((name, *rel)))
    assert set(setuptools["packages"]) == found, "pyproject.toml's packages differ from the package folders"


def test_one_name_one_meaning():
    by_name: dict[str, list[str]] = {}
    for p in shipped_modules():
        by_name.setdefault(p.name, []).append(str(p.relative_to(REPO)))
    repeated = {n: paths for n, paths in by_name.items() if len(paths) > 1 and n not in SHARED_NAMES}
    assert not repeated, f"modules sharing a file name: {repeated}"
    scripts = [p for d in ("bench", "tools", "clients") for p in (REPO / d).glob("*.py")]
    shadowing = sorted(
        str(p.relative_to(REPO)) for p in [*shipped_modules(), *scripts] if p.stem in sys.stdlib_module_names
    )
    assert not shadowing, f"these shadow a standard-library module: {shadowing}"


def test_test_files_are_named_after_their_room():
    bad = [p.name for p in (REPO / "tests").glob("test_*.py") if p.stem.split("_")[1] not in TEST_ROOMS]
    assert not bad, f"name these test_<room>_<what>.py, room one of {sorted(TEST_ROOMS)}: {bad}"
