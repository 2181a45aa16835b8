"""What a head was trained on (heads/trained_on.py): which sources regiond's generator made,
the record `regiond train` writes into config.json, and `regiond eval --record`'s held-out score."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from support_heads import image_folder
from support_service import lite_extractor

from regiond.extraction.extract_job import extract_to_cache
from regiond.heads.cache_jobs import train_on_cache
from regiond.heads.trained_on import is_demonstration, origin_of, summary
from regiond.heads.training import TrainConfig
from regiond.scenes import is_generated
from regiond.scenes.synthetic import SyntheticScene, write_clips, write_scene_folder, write_scene_sens


def regiond(*args) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "regiond", *map(str, args)], capture_output=True, text=True, timeout=300
    )


def test_generated_sources_are_told_from_others(tmp_path):
    room = write_scene_folder(SyntheticScene(1, 2, 64, 48), tmp_path / "room")
    sens = write_scene_sens(SyntheticScene(1, 2, 64, 48), tmp_path / "room.sens")
    write_clips(tmp_path / "clips", 1, frames=4, width=48, height=32, classes=[0])
    (video,) = (tmp_path / "clips").glob("*/*.mp4")
    own = image_folder(tmp_path / "photos")
    assert [is_generated(s) for s in ("synthetic:3", room, sens, video)] == [True] * 4
    assert is_generated(own) is False and is_generated(tmp_path / "gone") is None
    (room / "regiond-scene.json").unlink()  # a copy without the generator's marker: someone's own scan
    assert is_generated(room) is False
    assert [origin_of(f) for f in ([True, True], [False], [True, False], [True, None], [])] == [
        "generated",
        "own",
        "mixed",
        "unknown",
        "unknown",
    ]
    assert is_demonstration([{"origin": "generated", "head": "segment"}])
    assert not is_demonstration([{"origin": "generated"}, {"head": "scene"}])  # one head says nothing
    assert summary(None) == "what it was trained on is not recorded"


@pytest.fixture(scope="module")
def caches(tmp_path_factory):
    root = tmp_path_factory.mktemp("trained_on")
    ex = lite_extractor()
    own = [image_folder(root / f"photos{k}", n=2) for k in range(2)]
    room = write_scene_folder(SyntheticScene(2, 3, 64, 48), root / "room")
    extract_to_cache(own, root / "own", ex, show_progress=False)
    extract_to_cache([own[0]], root / "test", ex, show_progress=False)
    extract_to_cache([*own, room], root / "mixed", ex, show_progress=False)
    return root


def test_train_records_the_data_the_profile_and_the_validation_score(caches, tmp_path):
    cfg = TrainConfig(epochs=2, warmup=1)
    job = train_on_cache("segment", caches / "own", tmp_path / "own", head="region-linear", cfg=cfg, progress=False)
    rec = json.loads((tmp_path / "own" / "config.json").read_text())["meta"]["trained_on"]
    assert rec == job.trained_on
    assert rec["origin"] == "own" and rec["profile"] == "lite" and rec["items"] == 1 and rec["frames"] == 2
    assert rec["dataset"].startswith(f"1 image folder of token cache {caches / 'own'} (")
    assert rec["held_out"]["metric"] == "region accuracy"
    assert rec["held_out"]["score"] == pytest.approx(job.result.val_metric)
    assert rec["held_out"]["on"].startswith("1 validation item (early stopping's")
    mixed = train_on_cache(
        "segment",
        caches / "mixed",
        tmp_path / "mixed",
        head="region-linear",
        val_cache=caches / "mixed",
        cfg=cfg,
        progress=False,
        dataset="two photo folders and a generated room",
    )
    assert mixed.trained_on["origin"] == "mixed" and mixed.trained_on["frames"] == 7
    assert mixed.trained_on["dataset"] == "two photo folders and a generated room"


def test_eval_record_puts_a_test_score_in_the_head_and_refuses_its_training_data(caches, tmp_path):
    train_on_cache(
        "segment",
        caches / "own",
        tmp_path / "head",
        head="region-linear",
        cfg=TrainConfig(epochs=2, warmup=1),
        progress=False,
    )
    r = regiond("eval", "segment", "--head", tmp_path / "head", "--cache", caches / "test", "--record", "--json")
    assert r.returncode == 0, r.stderr
    miou = json.loads(r.stdout.splitlines()[-2])["miou"]
    assert f"held-out ScanNet-20 mIoU {100 * miou:.1f} %" in r.stdout
    doc = json.loads((tmp_path / "head" / "config.json").read_text())
    held = doc["meta"]["trained_on"]["held_out"]
    assert held == {
        "metric": "ScanNet-20 mIoU",
        "score": pytest.approx(miou),
        "on": f"2 frames of token cache {caches / 'test'}",
    }
    assert doc["meta"]["trained_on"]["origin"] == "own" and doc["name"] == "region-linear"  # the rest is kept
    r = regiond("eval", "segment", "--head", tmp_path / "head", "--cache", caches / "own", "--record")
    assert r.returncode == 1 and "training or validation cache: --record wants held-out data" in r.stderr
    assert json.loads((tmp_path / "head" / "config.json").read_text())["meta"]["trained_on"]["held_out"] == held
