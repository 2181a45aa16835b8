"""`regiond label`: scene labelling as a batch job. Its label maps equal what a daemon serving
the same heads streams back to clients/scan_scene.py, in one process and on Ray (2 actors);
a re-run skips the scenes done, a bad scene is reported and skipped, and its per-scene mIoU
is the one `regiond eval labels` computes from the files."""

from __future__ import annotations

import json

import numpy as np
import pytest
from support_service import lite_extractor, running_server, tiny_heads

from regiond.cli import main
from regiond.core.label_spaces import read_label_png
from regiond.heads.cache_jobs import evaluate_label_folder

pytestmark = pytest.mark.timeout(300)

SCENE = ["--max-frames", "4", "--size", "160", "120"]


@pytest.fixture(scope="module")
def heads(tmp_path_factory):
    d = tmp_path_factory.mktemp("heads")
    tiny_heads(d, lite_extractor())
    return d


def maps(folder) -> dict:
    return {p.name: read_label_png(p) for p in sorted(folder.glob("*.png"))}


def test_label_job_equals_the_daemon_and_reruns_skip(heads, tmp_path, capsys):
    from regiond.client import scan_scene

    with running_server(lite_extractor(), tmp_path, heads=heads) as srv:
        assert (
            scan_scene.main(
                [
                    "synthetic:4",
                    "--server",
                    srv.address,
                    "--out",
                    str(tmp_path / "scan"),
                    "--max-frames",
                    "4",
                    "--size",
                    "160x120",
                    "--overlays",
                    "none",
                    "--encoding",
                    "png",
                ]
            )
            == 0
        )
    daemon_maps = maps(tmp_path / "scan" / "labels")
    assert sorted(daemon_maps) == [f"synthetic-4_{i:06d}.png" for i in range(4)]

    out = tmp_path / "out"
    args = [
        "label",
        "synthetic:4",
        "synthetic:5",
        str(tmp_path / "nope"),
        "--heads",
        str(heads),
        "--out",
        str(out),
        "--profile",
        "lite",
        *SCENE,
    ]
    assert main(args) == 1  # nope fails
    cap = capsys.readouterr()
    assert "nope" in cap.err and "2 scenes labelled (8 frames), 0 already done, 1 failed" in cap.out
    got = maps(out / "labels")
    assert len(got) == 8 and all(np.array_equal(got[k], v) for k, v in daemon_maps.items())
    record = json.loads((out / "scenes" / "synthetic-4.json").read_text())
    assert record["frames"] == 4 and record["source"] == "synthetic:4" and record["truth_frames"] == 4

    assert main(args[:3] + args[4:]) == 0  # without the bad scene: nothing to do
    assert "0 scenes labelled (0 frames), 2 already done, 0 failed" in capsys.readouterr().out

    single = tmp_path / "one"  # `regiond eval labels` reads one scene's folder
    single.mkdir()
    for name in got:
        if name.startswith("synthetic-4_"):
            (single / name).write_bytes((out / "labels" / name).read_bytes())
    rep = evaluate_label_folder(single, "synthetic:4", max_frames=4, size=(160, 120))
    assert rep.metrics["frames"] == 4 and rep.metrics["miou"] == pytest.approx(record["miou"])


def test_label_job_on_ray_equals_one_process(ray_local, heads, tmp_path):
    from regiond.extraction.pool import RayOptions
    from regiond.heads.label_job import label_scenes

    sources = ["synthetic:4", "synthetic:5"]
    one = label_scenes(
        sources, tmp_path / "one", lite_extractor(), str(heads), max_frames=4, size=(160, 120), show_progress=False
    )
    ray = label_scenes(
        sources,
        tmp_path / "ray",
        {"profile": "lite", "preset": "scene"},
        str(heads),
        max_frames=4,
        size=(160, 120),
        ray=RayOptions(actors=2, cpus_per_actor=0.5),
    )
    assert not one.failures and not ray.failures and len(ray.labelled) == 2
    a, b = maps(tmp_path / "one" / "labels"), maps(tmp_path / "ray" / "labels")
    assert sorted(a) == sorted(b) and all(np.array_equal(a[k], b[k]) for k in a)
    assert ray.confusion.miou() == pytest.approx(one.confusion.miou())
    assert not (tmp_path / "ray" / ".partial").exists()
