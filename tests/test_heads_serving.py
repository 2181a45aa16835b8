"""Serving heads: SceneLabeler / ActivityScorer as plain objects, and through the real daemon
(StreamScene returns label maps and refined labels, StreamVideo returns activity windows)."""

from __future__ import annotations

import io

import numpy as np
import pytest
from support_heads import image_folder

from regiond.core.frames import evenly_spaced
from regiond.heads.registry import create_head, save_head
from regiond.heads.serving import TrainedActivityScorer, TrainedSceneLabeler, load_serving_heads
from regiond.scenes.synthetic.clips import ACTIVITY_CLASSES, render_clip


@pytest.fixture(scope="module")
def lite():
    from regiond.extraction.profiles import build_extractor

    return build_extractor("lite")


@pytest.fixture(scope="module")
def heads_dir(tmp_path_factory, lite):
    """segment/ and scene/ trained briefly on lite tokens; activity/ initialised for lite tokens."""
    from regiond.extraction.cache import extractor_versions
    from regiond.extraction.extract_job import extract_to_cache
    from regiond.heads.cache_jobs import train_on_cache
    from regiond.heads.config import TrainConfig

    root = tmp_path_factory.mktemp("serving")
    src = image_folder(root / "imgs", n=3)
    extract_to_cache([src], root / "cache", lite, show_progress=False)
    cfg = TrainConfig(epochs=3, warmup=2)
    train_on_cache(
        "segment",
        root / "cache",
        root / "heads" / "segment",
        head="region-linear",
        val_cache=root / "cache",
        cfg=cfg,
        progress=False,
    )
    # the scene task reads scene items: relabel the image folder as one scene for this test
    import json

    man = json.loads((root / "cache" / "manifest.json").read_text())
    man["items"][0]["kind"] = "scene"
    (root / "cache" / "manifest.json").write_text(json.dumps(man))
    train_on_cache(
        "scene",
        root / "cache",
        root / "heads" / "scene",
        val_cache=root / "cache",
        cfg=cfg,
        head_overrides={"dim": 32, "heads": 4},
        progress=False,
    )
    act = create_head("activity-transformer", in_dim=lite.dim, num_classes=3, dim=32, heads=4)
    save_head(
        act,
        root / "heads" / "activity",
        [{"id": i, "name": n} for i, n in enumerate(("a", "b", "c"))],
        {"versions": extractor_versions(lite)},
    )
    return root / "heads"


def _frames(n=3):
    from regiond.core.frames import Frame

    rng = np.random.default_rng(1)
    out = []
    for k in range(n):
        rgb = np.empty((48, 64, 3), np.uint8)
        rgb[:] = (200, 200, 210)
        rgb[24:] = (90, 60, 30)
        rgb[8:32, 16 + 8 * k : 40 + 8 * k] = (20, 150, 40)
        out.append(Frame(rgb=np.clip(rgb + rng.normal(0, 4, rgb.shape), 0, 255).astype(np.uint8), index=10 + k))
    return out


def test_scene_labeler_plain_api(heads_dir, lite):
    heads = load_serving_heads(heads_dir, lite)
    labeler = heads.scene
    assert isinstance(labeler, TrainedSceneLabeler) and isinstance(heads.activity, TrainedActivityScorer)
    assert set(labeler.meta.class_ids) == {1, 2, 5} and labeler.meta.class_names[0] == "wall"
    state = labeler.new_scene()
    per_frame = []
    for f in _frames():
        regions = lite.extract(f)
        fl = labeler.label_frame(state, f, regions)
        assert fl.frame_index == f.index
        assert fl.label_map.dtype == np.uint8 and fl.label_map.shape == (48, 64)
        assert set(np.unique(fl.label_map)) <= {0, 1, 2, 5}
        assert fl.region_scores.shape == (len(regions), 3)
        np.testing.assert_allclose(fl.region_scores.sum(1), 1, atol=1e-5)
        per_frame.append(fl)
    refined = labeler.refine(state)
    assert [r.frame_index for r in refined] == [10, 11, 12]
    assert all(r.label_map.shape == (48, 64) for r in refined)
    # it learnt something: the brown lower half is mostly floor after refinement
    assert np.mean(refined[0].label_map[30:] == 2) > 0.5


def test_activity_scorer_window(heads_dir, lite):
    import torch

    scorer = TrainedActivityScorer.from_dir(heads_dir, lite)
    regions = [lite.extract(f) for f in _frames(2)]
    p = scorer.score([regions[k % 2] for k in range(8)])
    assert p.shape == (3,) and abs(p.sum() - 1) < 1e-5
    with pytest.raises(ValueError, match="8 frames"):
        scorer.score(regions)
    # a known answer: an output layer that ignores its input and gives the logits log(1, 2, 5)
    # scores every window (1, 2, 5)/8, so the top two are "c" (0.625), then "b" (0.25)
    with torch.no_grad():
        scorer.head.model.out.weight.zero_()
        scorer.head.model.out.bias.copy_(torch.log(torch.tensor([1.0, 2.0, 5.0])))
    np.testing.assert_allclose(scorer.score([regions[0]] * 8), [0.125, 0.25, 0.625], atol=1e-6)
    top = scorer.top([regions[k % 2] for k in range(8)], k=2)
    assert [n for n, _ in top] == ["c", "b"] and [s for _, s in top] == pytest.approx([0.625, 0.25], abs=1e-6)


def test_heads_of_other_tokens_are_refused(tmp_path, lite):
    """A head of another profile's features is refused naming both profiles; one whose record
    names no profile (older heads) is refused by its backbone and width."""
    from regiond.extraction.cache import extractor_versions, versions

    head = create_head("region-linear", in_dim=768, num_classes=2)
    classes = [{"id": 1, "name": "wall"}, {"id": 2, "name": "floor"}]
    balanced = versions("balanced", "sam+slic", "dinov2_vitb14", 768, "mean")
    save_head(head, tmp_path / "balanced" / "segment", classes, {"versions": balanced})
    with pytest.raises(ValueError) as e:
        load_serving_heads(tmp_path / "balanced", lite)
    msg = str(e.value)
    assert "trained on the balanced profile's features (dinov2_vitb14 768-d, mean pooling)" in msg
    assert "this daemon runs the lite profile (classic 32-d, mean pooling)" in msg
    assert "--profile balanced" in msg and "--profile lite" in msg

    old = create_head("region-linear", in_dim=lite.dim + 1, num_classes=2)
    save_head(old, tmp_path / "old" / "segment", classes, {"versions": {"backbone": "dinov2_vitb14"}})
    with pytest.raises(ValueError, match="trained on another profile's features .dinov2_vitb14 33-d"):
        load_serving_heads(tmp_path / "old", lite)
    # the same features under another profile's name (a lite head the tiny profile would serve)
    save_head(
        create_head("region-linear", in_dim=lite.dim, num_classes=2),
        tmp_path / "renamed" / "segment",
        classes,
        {"versions": {**extractor_versions(lite), "profile": "tiny"}},
    )
    with pytest.raises(ValueError, match="trained on the tiny profile's features"):
        load_serving_heads(tmp_path / "renamed", lite)


def test_daemon_streams_labels_and_activities(heads_dir, lite, tmp_path):
    from PIL import Image
    from support_service import image_pb, running_server, stub_for

    from regiond.api.v1 import regions_pb2 as pb

    with running_server(lite, tmp_path, heads=heads_dir) as server:
        ch, stub = stub_for(server)
        frames = _frames()

        def scene_reqs():
            for k, f in enumerate(frames):
                req = pb.SceneFrame(color=image_pb(f.rgb), index=f.index)
                if k == 0:
                    req.options.scene_id = "s"
                    req.options.return_label_maps = True
                yield req

        ups = list(stub.StreamScene(scene_reqs(), timeout=60))
        live = [u for u in ups if u.label_map_png]
        refined = [u.refined for u in ups if u.HasField("refined")]
        assert len(live) == 3 and len(refined) == 3
        lab = np.asarray(Image.open(io.BytesIO(refined[0].label_map_png)))
        assert lab.dtype == np.uint8 and lab.shape == (48, 64) and set(np.unique(lab)) <= {0, 1, 2, 5}
        assert ups[-1].HasField("summary")

        def video_reqs():
            for k in range(9):
                yield pb.VideoFrame(image=image_pb(frames[k % 3].rgb), index=k)

        vups = list(stub.StreamVideo(video_reqs(), timeout=60))
        windows = [w for u in vups for w in u.windows]
        assert windows and len(windows[0].scores) == 3
        assert abs(sum(s.score for s in windows[0].scores) - 1) < 1e-4
        ch.close()


def test_bundled_demo_heads_serve_the_lite_profile(lite, tmp_path):
    from regiond.heads.demo_heads import demo_heads
    from regiond.heads.serving import bundled_heads

    found = bundled_heads(lite)
    assert found is not None
    assert demo_heads(tmp_path / "h", lite, log=lambda m: None) == found
    heads = load_serving_heads("bundled", lite)  # regiond serve --heads bundled
    assert heads.scene.meta == load_serving_heads(found, lite).scene.meta
    with pytest.raises(FileNotFoundError, match="no heads ship for this profile's features.*classic-32"):
        load_serving_heads("bundled", None)
    assert heads.scene is not None and heads.activity is not None
    assert {1, 2, 22} <= set(heads.scene.meta.class_ids)  # wall, floor, ceiling
    state = heads.scene.new_scene()
    f = _frames(1)[0]
    regions = lite.extract(f)
    fl = heads.scene.label_frame(state, f, regions)
    assert fl.label_map.shape == (48, 64)
    # by hand: lite's SLIC pieces tile the image, so a pixel's mean probability is its one
    # region's, and the label map paints each region with the id of its most likely class
    masks = regions.masks()
    assert (masks.sum(0) == 1).all()
    np.testing.assert_allclose(fl.region_scores.sum(1), 1, atol=1e-5)
    ids = np.asarray(heads.scene.meta.class_ids)
    assert (fl.region_labels == ids[fl.region_scores.argmax(1)]).all()
    painted = np.zeros_like(fl.label_map)
    for m, label in zip(masks, fl.region_labels):
        painted[m] = label
    np.testing.assert_array_equal(fl.label_map, painted)
    # the activity head is the trained one: a generated clip of a known motion is recognised
    assert len(heads.activity.meta.class_names) == 9
    clip = render_clip(ACTIVITY_CLASSES.index("moving_left"), seed=1000, frames=16, width=160, height=120)
    window = [lite.extract(clip.frames[i]) for i in evenly_spaced(16, heads.activity.meta.window)]
    ((name, p),) = heads.activity.top(window, k=1)
    assert name == "moving_left" and p > 0.9, (name, p)
