"""Labels and what the heads are, through a real lite daemon: ExtractRegions labels one image
with the scene labeller (unless skip_labels), GetInfo says what each head was trained on, the
start-up log says bundled heads are a demonstration, and a heads directory trained on another
profile's features is refused at start naming both profiles."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from support_service import image_pb, lite_extractor, running_server, sample_image, stub_for

from regiond.api.v1 import regions_pb2 as pb
from regiond.commands.serve import spawn_daemon
from regiond.core import rle
from regiond.heads.serving import load_serving_heads
from regiond.service.convert import Limits, image_frame


@pytest.fixture(scope="module")
def bundled_server(tmp_path_factory):
    """`regiond serve --heads bundled` in process: lite with the shipped heads."""
    with running_server(lite_extractor(), tmp_path_factory.mktemp("bundled"), heads="bundled") as srv:
        yield srv


@pytest.fixture(scope="module")
def bundled(bundled_server):
    ch, stub = stub_for(bundled_server)
    yield stub
    ch.close()


def test_extract_regions_labels_one_image_as_the_segment_head_does(bundled):
    img = image_pb(sample_image(120, 90, seed=3))
    info = bundled.GetInfo(pb.InfoRequest())
    (scene,) = [h for h in info.heads if h.kind == "scene"]
    rs = bundled.ExtractRegions(pb.ExtractRequest(image=img))
    assert len(rs.regions) > 3 and "heads" in rs.stage_seconds
    # the labeller of the same heads, in process, on the frame as the daemon decoded it
    ex = lite_extractor()
    labeler = load_serving_heads("bundled", ex).scene
    frame = image_frame(img, "image", Limits())
    regions = ex.extract(frame)
    want = labeler.label_frame(labeler.new_scene(), frame, regions)
    names = dict(zip(scene.class_ids, scene.class_names))
    for k, r in enumerate(rs.regions):
        scores = np.asarray(r.label_scores)
        assert len(scores) == len(scene.class_ids) and scores.sum() == pytest.approx(1, abs=1e-4)
        assert r.label == scene.class_ids[int(scores.argmax())] == want.region_labels[k]
        assert r.label_name == names[r.label]
        np.testing.assert_allclose(scores, want.region_scores[k], atol=1e-5)
        assert (rle.decode(r.mask.counts, rs.height, rs.width) == regions.masks()[k]).all()
    # skip_labels: the same regions, no labels
    bare = bundled.ExtractRegions(pb.ExtractRequest(image=img, skip_labels=True))
    assert len(bare.regions) == len(rs.regions) and "heads" not in bare.stage_seconds
    assert not any(r.HasField("label") or r.label_scores or r.label_name for r in bare.regions)


def test_a_daemon_without_heads_labels_nothing(tmp_path):
    with running_server(lite_extractor(), tmp_path) as srv:
        ch, stub = stub_for(srv)
        rs = stub.ExtractRegions(pb.ExtractRequest(image=image_pb(sample_image())))
        ch.close()
    assert rs.regions and not any(r.HasField("label") or r.label_scores for r in rs.regions)


def test_get_info_says_what_the_bundled_heads_were_trained_on(bundled):
    info = bundled.GetInfo(pb.InfoRequest())
    got = {t.head: t for h in info.heads for t in h.trained_on}
    assert set(got) == {"segment", "scene", "activity"}
    assert all(t.origin == pb.DATA_ORIGIN_GENERATED and t.profile == "lite" for t in got.values())
    assert (got["scene"].frames, got["scene"].items, got["activity"].clips) == (240, 6, 720)
    assert got["scene"].held_out_metric == "ScanNet-20 mIoU" and got["scene"].held_out_score == pytest.approx(0.5778)
    assert got["segment"].held_out_score == pytest.approx(0.3741) and got["activity"].held_out_score == pytest.approx(
        0.922
    )
    assert "seeds 30-32" in got["scene"].held_out_on and "synthetic rooms" in got["scene"].dataset
    assert got["scene"].summary.startswith("trained on 6 synthetic rooms") and "57.8 %" in got["scene"].summary


def test_serve_logs_what_the_heads_are_and_that_bundled_ones_are_a_demonstration(tmp_path):
    log = tmp_path / "serve.log"
    proc, _ = spawn_daemon(
        ["--heads", "bundled", "--profile", "lite", "--no-index", "--listen", "127.0.0.1:0", "--data-dir", tmp_path],
        log,
    )
    proc.terminate()
    assert proc.wait(30) == 0
    text = log.read_text()
    for head in ("segment", "scene", "activity"):
        assert f"classic-32/{head} trained on " in text
    assert "generated data only" in text and "not a model of real rooms" in text
    assert "train heads on your own labelled scans, with DINOv2 weights" in text


def test_heads_of_another_profile_are_refused_at_start_naming_both(tmp_path):
    from regiond.extraction.cache import versions
    from regiond.heads.registry import create_head, save_head

    save_head(
        create_head("region-linear", in_dim=768, num_classes=2),
        tmp_path / "heads" / "segment",
        [{"id": 1, "name": "wall"}, {"id": 2, "name": "floor"}],
        {"versions": versions("balanced", "sam+slic", "dinov2_vitb14", 768, "mean")},
    )
    r = subprocess.run(
        [sys.executable, "-m", "regiond", "serve", "--heads", tmp_path / "heads", "--profile", "lite"]
        + ["--listen", "127.0.0.1:0", "--no-index", "--data-dir", tmp_path / "d"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 1
    assert "trained on the balanced profile's features" in r.stderr and "runs the lite profile" in r.stderr
    assert "serving" not in r.stderr


def test_the_python_client_gets_labels_and_what_the_heads_learnt_from(bundled_server):
    from regiond.client import RegionClient, TrainedOn

    with RegionClient(bundled_server.address) as client:
        info = client.info()
        (scene,) = [h for h in info.heads if h.kind == "scene"]
        assert [t.head for t in scene.trained_on] == ["segment", "scene"]
        assert isinstance(scene.trained_on[1], TrainedOn) and scene.trained_on[1].held_out_score == 0.5778
        assert scene.trained_on[1].origin == pb.DATA_ORIGIN_GENERATED
        rs = client.extract(sample_image(120, 90, seed=3))
        assert rs.labels is not None and set(rs.labels.tolist()) <= set(scene.class_ids)
        assert set(rs.meta["label_names"].values()) <= set(scene.class_names)
        assert client.extract(sample_image(120, 90, seed=3), labels=False).labels is None
