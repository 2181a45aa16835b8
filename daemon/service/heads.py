"""How the daemon loads trained heads from `--heads DIR`.

A heads directory is read by `daemon.heads.serving.load_serving_heads(directory, extractor)`,
which returns a `ServingHeads` (either part may be None); the interfaces are in
daemon/heads/interface.py. Without `--heads` the daemon serves regions only.
"""
from __future__ import annotations

from pathlib import Path

from ..heads.interface import ActivityScorer, FrameLabels, HeadMeta, SceneLabeler, ServingHeads  # noqa: F401


def load_heads(directory: str | Path | None, extractor) -> ServingHeads:
    """The heads in `directory` (None: no heads). Raises FileNotFoundError / ValueError."""
    if directory is None:
        return ServingHeads()
    d = Path(directory)
    if not d.is_dir():
        raise FileNotFoundError(f"--heads {d}: no such directory")
    from ..heads.serving import load_serving_heads  # torch-heavy: only when heads are asked for

    heads = load_serving_heads(d, extractor)
    if heads.scene is None and heads.activity is None:
        raise ValueError(f"--heads {d}: no scene or activity head found there")
    return heads
