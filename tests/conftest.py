"""Shared fixtures. Area-specific helpers live in tests/support_*.py modules."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

import daemon  # noqa: F401  (sets the OpenMP wait policy before torch loads)

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("REGIOND_SHARED_DATA", REPO.parent / "shared" / "data"))

torch_threads = int(os.environ.get("REGIOND_TEST_THREADS", "2"))


@pytest.fixture(scope="session", autouse=True)
def _limit_threads():
    import torch

    torch.set_num_threads(torch_threads)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The team's real sample data (../shared/data): CI and team checkouts have it."""
    if not SHARED_DATA.is_dir():
        pytest.fail(f"sample data not found at {SHARED_DATA}; set REGIOND_SHARED_DATA")
    return SHARED_DATA


@pytest.fixture(scope="session")
def sevenscenes_dir(shared_data) -> Path:
    return shared_data / "rgbd" / "7scenes-150-169"


@pytest.fixture(scope="session")
def video_path(shared_data) -> Path:
    return shared_data / "video" / "test.mp4"


@pytest.fixture(scope="session")
def scannet_labels_tsv(shared_data) -> Path:
    return shared_data / "scannet" / "scannetv2-labels.combined.tsv"


@pytest.fixture(scope="session")
def ray_local():
    """One local Ray instance for every Ray test of the session (starting one takes seconds):
    2 CPUs, a small object store, no dashboard, no usage statistics. Stopped at the end, and
    checked to leave no process of its session behind."""
    from support_ray import start_ray, stop_ray

    started = start_ray()
    yield started
    stop_ray(started)
