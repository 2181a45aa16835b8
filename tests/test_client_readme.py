"""The README's Python example, exactly as written there, run as a user runs it: in a fresh
interpreter outside the repository, against a real lite daemon (with a region index) whose
address it reads from $REGIOND_SERVER, as the example says it does."""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from pathlib import Path

from support_service import lite_extractor, running_server

README = Path(__file__).resolve().parents[1] / "README.md"


def readme_example() -> str:
    """The first ```python block after the `## Python client` heading."""
    text = README.read_text()
    start = text.index("\n## Python client\n")
    m = re.compile(r"^```python\n(.*?)^```$", re.S | re.M).search(text, start)
    assert m, "no ```python block after `## Python client`"
    return m.group(1)


def test_the_example_is_short_python():
    code = readme_example()
    assert len(code.strip().splitlines()) <= 10
    ast.parse(code)


def test_the_readme_example_runs_against_a_daemon(tmp_path):
    code = readme_example()
    env = {k: v for k, v in os.environ.items() if k not in ("REGIOND_TOKEN", "PYTHONPATH")}
    with running_server(lite_extractor(), tmp_path, index=True) as srv:
        env["REGIOND_SERVER"] = srv.address
        run = subprocess.run(
            [sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
        )
    assert run.returncode == 0, run.stderr
    first, hits = run.stdout.splitlines()
    m = re.fullmatch(r"lite (\d+) regions \((\d+), (\d+)\)", first)
    assert m and int(m.group(1)) == int(m.group(2)) > 10 and int(m.group(3)) > 0, first
    ranked = ast.literal_eval(hits)
    assert ranked[0] == ("astronaut", 1.0)  # the one image indexed, found by its own regions
