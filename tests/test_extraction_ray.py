"""`regiond extract --ray`: a token cache built by a pool of 2 Ray actors (a local Ray
instance, conftest.ray_local) equals the one built in one process; a bad source is reported
and skipped, a re-run skips what is there, an actor killed mid-item is restarted and its
item done again, and a job killed between an item's commit and the manifest loses nothing.
The tests' Ray start waits 120 s for Ray's GCS server (Ray's default 30 s ran out once on a
cold machine) and retries a start that times out once (support_ray's docstring says why)."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from regiond.core.regionset import RegionSet
from regiond.extraction.cache import PARTIAL, TokenCache
from regiond.extraction.extract_job import extract_on_ray, extract_to_cache
from regiond.extraction.pool import RayOptions
from regiond.extraction.profiles import build_extractor

pytestmark = pytest.mark.timeout(300)

ACTORS = dict(actors=2, cpus_per_actor=0.5)


def image_folders(root: Path, n: int, images: int = 3, size=(96, 128)) -> list[Path]:
    """n folders (images/ and labels/) of blocky random pictures, each folder its own seed."""
    out = []
    for f in range(n):
        d = root / f"set{f}"
        (d / "images").mkdir(parents=True)
        (d / "labels").mkdir()
        rng = np.random.default_rng(f)
        for k in range(images):
            small = rng.integers(0, 255, (6, 8, 3), dtype=np.uint8)
            rgb = np.kron(small, np.ones((size[0] // 6, size[1] // 8, 1), np.uint8))
            rgb = np.clip(rgb + rng.normal(0, 5, rgb.shape), 0, 255).astype(np.uint8)
            Image.fromarray(rgb).save(d / "images" / f"im{k}.png")
            Image.fromarray((small[..., 0] // 64 + 1).repeat(size[0] // 6, 0).repeat(size[1] // 8, 1)).save(
                d / "labels" / f"im{k}.png"
            )
        out.append(d)
    return out


def contents(root: Path) -> dict:
    """A cache as comparable data: items (without where they came from) and every array."""
    cache = TokenCache.open(root)
    out = {"versions": cache.versions}
    for item in cache.items:
        frames = []
        for i in range(len(item.frames)):
            r = cache.regions(item, i)
            frames.append(
                {
                    "counts": [c.tolist() for c in r.counts],
                    "features": r.features.tolist(),
                    "boxes": r.boxes.tolist(),
                    "labels": None if r.labels is None else r.labels.tolist(),
                    "label_map": cache.label_map(item, i).tolist(),
                }
            )
        out[item.name] = {"kind": item.kind, "frames": item.frames, "meta": item.meta, "data": frames}
    return out


@pytest.fixture(scope="module")
def lite():
    return build_extractor("lite", preset="image")


def ray_job(sources, out, **kw):
    return extract_on_ray(sources, out, {"profile": "lite", "preset": "image"}, RayOptions(**{**ACTORS, **kw}))


def test_ray_cache_equals_one_process_and_reruns_skip(ray_local, tmp_path, lite):
    sources = image_folders(tmp_path / "src", 4)
    broken = tmp_path / "src" / "broken"
    (broken / "images").mkdir(parents=True)
    (broken / "images" / "a.png").write_bytes(b"not a png")
    sources += [broken, tmp_path / "missing"]

    one = extract_to_cache(sources, tmp_path / "one", lite, show_progress=False)
    ray = ray_job(sources, tmp_path / "ray")
    assert [i.name for i in ray.extracted] and len(ray.extracted) == len(one.extracted) == 4
    assert (
        sorted(s for s, _ in ray.failures)
        == sorted(s for s, _ in one.failures)
        == sorted([str(broken), str(tmp_path / "missing")])
    )
    assert all(e for _, e in ray.failures)
    assert contents(tmp_path / "ray") == contents(tmp_path / "one")
    assert [i.name for i in TokenCache.open(tmp_path / "ray").items] == [f"set{k}" for k in range(4)]  # plan order
    assert not (tmp_path / "ray" / PARTIAL).exists()

    again = ray_job(sources, tmp_path / "ray")
    assert (again.extracted, sorted(again.skipped)) == ([], [f"set{k}" for k in range(4)])
    assert len(again.failures) == 2  # bad sources stay bad: tried again, reported again
    assert "4 already in the cache, 2 failed" in again.summary()


def test_actors_killed_mid_item_are_restarted_and_an_item_that_kills_every_try_fails(ray_local, tmp_path, lite):
    """set0's first writer is killed once: Ray restarts the actor, the item is done again.
    Every writer of set2 is killed: after max_tries (2) dead writers it is failed, not retried
    for ever. Kills are SIGKILLs of the processes named by the items' partial directories."""
    sources = image_folders(tmp_path / "src", 3, images=30, size=(120, 160))
    out = tmp_path / "ray"
    killed: dict[str, list[int]] = {"set0": [], "set2": []}
    done = threading.Event()

    def killer():
        while not done.is_set():
            for d in list((out / PARTIAL).glob("*")) if (out / PARTIAL).is_dir() else []:
                name, pid = d.name.split(".")[0], int(d.name.split(".")[-2])
                due = name == "set2" or (name == "set0" and not killed["set0"])
                if due and pid not in killed[name] and len(list(d.glob("*.npz"))) >= 2:  # well inside the item
                    os.kill(pid, signal.SIGKILL)
                    killed[name].append(pid)
            time.sleep(0.005)

    t = threading.Thread(target=killer)
    t.start()
    try:
        report = ray_job(sources, out, max_tries=2)
    finally:
        done.set()
        t.join()
    assert len(killed["set0"]) == 1 and len(killed["set2"]) == 2, killed
    for pid in killed["set0"] + killed["set2"]:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    assert report.failures == [(str(sources[2]), "RuntimeError: its writer died on each of 2 tries")]
    assert sorted(i.name for i in report.extracted) == ["set0", "set1"]
    one = extract_to_cache(sources[:2], tmp_path / "one", lite, show_progress=False)
    assert not one.failures and contents(out) == contents(tmp_path / "one")
    assert not (out / PARTIAL).exists()  # the killed writers' half items are gone


def test_an_item_committed_but_not_recorded_is_adopted(tmp_path, lite):
    """A job killed between moving an item into place and writing the manifest: the next run
    records the item instead of extracting it again, and names nothing twice."""
    sources = image_folders(tmp_path / "src", 2)
    out = tmp_path / "cache"
    extract_to_cache(sources, out, lite, show_progress=False)
    man = json.loads((out / "manifest.json").read_text())
    man["items"] = man["items"][:1]  # set1 committed, never recorded
    (out / "manifest.json").write_text(json.dumps(man))
    before = RegionSet.load(out / "set1" / "000000.npz").features
    report = extract_to_cache(sources, out, lite, show_progress=False)
    assert (report.extracted, sorted(report.skipped)) == ([], ["set0", "set1"])
    assert [i.name for i in TokenCache.open(out).items] == ["set0", "set1"]
    np.testing.assert_array_equal(RegionSet.load(out / "set1" / "000000.npz").features, before)


def test_extract_cli_on_ray_prints_a_summary(ray_local, tmp_path, capsys):
    from regiond.cli import main

    sources = image_folders(tmp_path / "src", 2)
    opts = [
        "--kind",
        "images",
        "--out",
        str(tmp_path / "cache"),
        "--profile",
        "lite",
        "--ray",
        "--actors",
        "2",
        "--cpus-per-actor",
        "0.5",
    ]
    assert main(["extract", *map(str, sources), str(tmp_path / "missing_set"), *opts]) == 1  # a source failed
    cap = capsys.readouterr()
    assert "missing_set" in cap.err
    assert "2 items extracted (6 frames), 0 already in the cache, 1 failed" in cap.out
    assert main(["extract", *map(str, sources), *opts]) == 0  # without the bad source: everything skipped
    assert "0 items extracted (0 frames), 2 already in the cache, 0 failed" in capsys.readouterr().out


def test_a_ray_start_that_times_out_is_retried_once_and_leaves_nothing_behind(tmp_path):
    """The tests' Ray start (support_ray.start_ray, whose docstring says why a start can time
    out on a cold machine): a first try given no time for the GCS server fails as the cold
    start did (`Timed out waiting for file .../gcs_server_port_...`), its processes are ended,
    and the second try starts Ray. In a child process: this session's Ray may be running."""
    import subprocess
    import sys

    script = (
        "import os\n"
        "from support_ray import children, processes_of, start_ray, stop_ray\n"
        "started = start_ray(waits=(0, 120))\n"
        "assert processes_of(*started), 'no Ray processes after the second try'\n"
        "stop_ray(started)\n"
        "left = [p.name for p in children()]\n"
        "assert not left, f'left behind: {left}'\n"
        "print('second try started Ray')\n"
    )
    tests = Path(__file__).parent
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(tests), os.environ.get("PYTHONPATH")]))}
    p = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=240)
    assert p.returncode == 0, p.stderr[-3000:]
    assert "second try started Ray" in p.stdout
    assert "start 1 timed out" in p.stderr and "Timed out waiting for file" in p.stderr
    assert "gcs_server_port" in p.stderr


def test_a_local_ray_start_waits_for_its_gcs_unless_the_user_says(monkeypatch):
    from regiond.extraction import pool

    monkeypatch.delenv(pool.GCS_WAIT_ENV, raising=False)
    pool._ray()
    assert os.environ[pool.GCS_WAIT_ENV] == str(pool.GCS_WAIT_S) == "120"  # not Ray's 30 s
    monkeypatch.setenv(pool.GCS_WAIT_ENV, "45")
    pool._ray()
    assert os.environ[pool.GCS_WAIT_ENV] == "45"
