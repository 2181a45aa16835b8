"""Shared fixtures. Area-specific helpers live in tests/support_*.py modules."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import regiond  # noqa: F401  (sets the OpenMP wait policy before torch loads)

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("REGIOND_SHARED_DATA", REPO.parent / "shared" / "data"))

torch_threads = int(os.environ.get("REGIOND_TEST_THREADS", "2"))
#: repository folder -> where it lives in the installed regiond (pyproject's package-dir)
NAMESPACE = {"daemon": "", "core": "core", "scenes": "scenes", "clients": "client", "protos/regions": "api"}


def pytest_sessionstart(session):
    """The tests run the installed regiond: with the editable link tree (tools/relink.sh), a
    module added since the install would be missing from it and fail far from the cause."""
    installed = Path(regiond.__file__).parent
    if not (REPO / "build").is_dir() or REPO / "build" not in installed.parents:
        return  # not this clone's editable install
    missing = [
        f"{folder}/{p.relative_to(REPO / folder)}"
        for folder, sub in NAMESPACE.items()
        for p in (REPO / folder).rglob("*.py")
        if not (installed / sub / p.relative_to(REPO / folder)).exists()
    ]
    if missing:
        pytest.exit(
            f"{len(missing)} module(s) are not in the editable install ({', '.join(missing[:5])}): "
            "run `make relink` (tools/relink.sh)",
            returncode=4,
        )


@pytest.fixture(scope="session", autouse=True)
def _limit_threads():
    import torch

    torch.set_num_threads(torch_threads)


@pytest.fixture(scope="session", autouse=True)
def _rerun_analytics_off(tmp_path_factory):
    """Rerun (SDK, CLI) sends no usage data from the tests: its switch, off, in a config
    folder of the session's own (XDG_CONFIG_HOME, inherited by every process started)."""
    from regiond.core.analytics import rerun_analytics_off

    before = os.environ.get("XDG_CONFIG_HOME")
    os.environ.update(rerun_analytics_off(tmp_path_factory.mktemp("xdg-config"), {}))
    yield
    if before is None:
        os.environ.pop("XDG_CONFIG_HOME", None)
    else:
        os.environ["XDG_CONFIG_HOME"] = before


@pytest.fixture(scope="session", autouse=True)
def _user_cache_of_the_session(tmp_path_factory):
    """What regiond caches for the user (fitted normalisers, checkpoint digests) goes to a
    folder of the session's own (XDG_CACHE_HOME, inherited by every process started), never
    to the home directory of whoever runs the tests."""
    before = os.environ.get("XDG_CACHE_HOME")
    os.environ["XDG_CACHE_HOME"] = str(tmp_path_factory.mktemp("xdg-cache"))
    yield
    if before is None:
        os.environ.pop("XDG_CACHE_HOME", None)
    else:
        os.environ["XDG_CACHE_HOME"] = before


@pytest.fixture(scope="module")
def labelling_daemon(tmp_path_factory):
    """A lite daemon serving small untrained scene and activity heads (label maps, refined
    labels, activity windows), shared by a module's tests."""
    from support_service import lite_extractor, running_server, tiny_heads

    tmp = tmp_path_factory.mktemp("daemon")
    ex = lite_extractor()
    tiny_heads(tmp / "heads", ex)
    with running_server(ex, tmp, heads=tmp / "heads") as srv:
        yield srv


def sample_data(path: Path, what: str) -> Path:
    """`path` in the team's real sample data (../shared/data, or $REGIOND_SHARED_DATA), or a skip
    naming what is missing: a clone without ../shared runs everything else."""
    if not path.exists():
        pytest.skip(f"needs {what} at {path}: the team's sample data (../shared/data; set REGIOND_SHARED_DATA)")
    return path


@pytest.fixture(scope="session")
def sevenscenes_dir() -> Path:
    return sample_data(SHARED_DATA / "rgbd" / "7scenes-150-169", "20 real 7-Scenes RGB-D frames")


@pytest.fixture(scope="session")
def video_path() -> Path:
    return sample_data(SHARED_DATA / "video" / "test.mp4", "a real h264 video")


@pytest.fixture(scope="session")
def avi_path() -> Path:
    return sample_data(SHARED_DATA / "video" / "test.avi", "a real MPEG-4 part 2 video")


@pytest.fixture(scope="session")
def scannet_labels_tsv() -> Path:
    """ScanNet's label table: a copy ships with the tests (57 KB; tests/data/README.md)."""
    return REPO / "tests" / "data" / "scannetv2-labels.combined.tsv"


@pytest.fixture(scope="session")
def ray_local():
    """One local Ray instance for every Ray test of the session (starting one takes seconds):
    2 CPUs, a small object store, no dashboard, no usage statistics. Stopped at the end, and
    checked to leave no process of its session behind."""
    from support_ray import start_ray, stop_ray

    started = start_ray()
    yield started
    stop_ray(started)
