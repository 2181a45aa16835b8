"""The region index's fuzz target: add/search/remove sequences and damaged index files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from fuzz_inputs import WORK, picture


def index_setup() -> None:
    index_seeds()


def index_run(data: bytes) -> None:
    import shutil

    from regiond.index import open_index

    which, body = (data[0] % 2, data[1:]) if data else (0, b"")
    src, d = WORK / "index-seed", WORK / "index-fuzz"
    if d.exists():
        shutil.rmtree(d)
    shutil.copytree(src, d)
    (d / _index_file(src, which)).write_bytes(body)
    idx = open_index(d, dim=32)
    try:
        if len(idx):
            idx.search(np.ones(idx.dim, np.float32), k=2)
    finally:
        idx.close()


def _index_file(directory: Path, which: int) -> str:
    names = sorted(p.name for p in directory.iterdir() if p.is_file() and p.name != "LOCK")
    return names[which % len(names)]


def index_seeds() -> dict[str, bytes]:
    from regiond.extraction import build_extractor
    from regiond.index import open_index

    d = WORK / "index-seed"
    if not d.exists():
        ex = build_extractor("lite")
        idx = open_index(d, dim=ex.dim, features=ex.features_name)
        for i in range(2):
            idx.add(f"p{i}", ex.extract(picture(32, 24, seed=i)), {})
        idx.checkpoint()
        idx.close()
    names = sorted(p.name for p in d.iterdir() if p.is_file() and p.name != "LOCK")
    return {f"file{i}-{n}": bytes([i]) + (d / n).read_bytes() for i, n in enumerate(names)}
