"""Token caches from real files (images + label maps, videos + labels.csv) through the lite
extractor, the refusal to mix extractors, and the train/eval CLI on a tiny cache."""

from __future__ import annotations

import json

import numpy as np
import pytest
from support_heads import image_folder
from support_toydata import write_toy_cache

from regiond.cli import main
from regiond.core.errors import InputError
from regiond.core.label_spaces import BENCHMARK_NYU40, read_label_png
from regiond.extraction.cache import TokenCache
from regiond.extraction.extract_job import extract_to_cache
from regiond.scenes.labelled_folders import read_clip_labels


@pytest.fixture(scope="module")
def lite():
    from regiond.extraction.profiles import build_extractor

    return build_extractor("lite")


def test_extract_image_folder_cli(tmp_path):
    src = image_folder(tmp_path / "imgs")
    assert main(["extract", str(src), "--out", str(tmp_path / "cache"), "--profile", "lite", "--patches"]) == 0
    cache = TokenCache.open(tmp_path / "cache")
    assert cache.versions["profile"] == "lite" and cache.versions["dim"] > 0
    (item,) = cache.items
    assert item.kind == "images" and len(item.frames) == 2 and item.patches
    gt = cache.label_map(item, 0)
    assert gt.shape == (48, 64) and set(np.unique(gt)) == {1, 2, 5}
    r = cache.regions(item, 0)
    assert r.features.shape == (len(r), cache.versions["dim"])
    # every region's label follows the >50% rule on the stored label map
    for i in range(len(r)):
        vals, counts = np.unique(gt[r.mask(i)], return_counts=True)
        want = vals[counts.argmax()] if counts.max() > r.areas[i] / 2 else -1
        assert r.labels[i] == want
    p = cache.regions(item, 0, patches=True)
    assert p.coverage() == 1.0 and p.masks().sum(0).max() == 1  # cells tile the image once
    assert p.features.shape[1] == cache.versions["dim"]


def test_cache_refuses_to_mix_extractors(tmp_path, lite):
    from regiond.extraction.profiles import build_extractor

    src = image_folder(tmp_path / "imgs", n=1)
    extract_to_cache([src], tmp_path / "cache", lite, show_progress=False)
    other = build_extractor("lite", pooling="max")
    with pytest.raises(InputError, match="another extractor.*pooling"):
        extract_to_cache([src], tmp_path / "cache", other, show_progress=False)
    # the refused call lost nothing
    assert len(TokenCache.open(tmp_path / "cache").items) == 1
    # the same extractor may extend it (a re-run skips what is there)
    assert extract_to_cache([src], tmp_path / "cache", lite, show_progress=False).skipped == ["imgs"]
    more = image_folder(tmp_path / "more", n=1)
    extract_to_cache([more], tmp_path / "cache", lite, show_progress=False)
    assert len(TokenCache.open(tmp_path / "cache").items) == 2
    with pytest.raises(InputError, match="another extractor"):
        TokenCache.create(tmp_path / "cache", {**lite_versions(lite), "backbone": "dinov2_vitb14", "dim": 768})


def lite_versions(extractor):
    from regiond.extraction.cache import extractor_versions

    return extractor_versions(extractor)


def test_extract_clip_folder(tmp_path, lite):
    import cv2

    d = tmp_path / "clips"
    d.mkdir()
    for name, direction in (("a.avi", 1), ("b.avi", -1)):
        w = cv2.VideoWriter(str(d / name), cv2.VideoWriter_fourcc(*"MJPG"), 10, (64, 48))
        for f in range(12):
            img = np.full((48, 64, 3), 180, np.uint8)
            x = 26 + direction * 2 * (f - 6)
            img[18:30, x : x + 12] = (0, 0, 255)
            w.write(img)
        w.release()
    (d / "labels.csv").write_text("file,label\na.avi,right\nb.avi,left\n")
    assert [p.name for p, _ in read_clip_labels(d)] == ["a.avi", "b.avi"]
    cache = extract_to_cache([d], tmp_path / "cache", lite, show_progress=False).cache
    clips = cache.of_kind("clip")
    assert [c.label for c in clips] == ["right", "left"] and all(len(c.frames) == 8 for c in clips)
    assert cache.clip_classes() == ["left", "right"]
    (d / "labels.csv").write_text("file,label\nmissing.avi,left\n")
    with pytest.raises(InputError, match="missing.avi"):
        read_clip_labels(d)


def test_label_png_round_trip(tmp_path):
    from regiond.core.label_spaces import write_label_png

    a = np.array([[0, 1], [40, 255]])
    assert (read_label_png(write_label_png(tmp_path / "a.png", a)) == a).all()
    b = np.array([[0, 1000]])
    assert (read_label_png(write_label_png(tmp_path / "b.png", b)) == b).all()


def _label_maps_here(task: str, head_dir, cache_dir) -> list[tuple[np.ndarray, np.ndarray]]:
    """(ground truth, prediction) NYU40 maps of every scene frame, predicted in-process by the
    saved head (the scene head sees a scene's frames together)."""
    from regiond.heads.label_maps import pixel_labels
    from regiond.heads.predict import frame_probs
    from regiond.heads.registry import load_head

    head, cache = load_head(head_dir), TokenCache.open(cache_dir)
    pairs = []
    for item in cache.of_kind("scene"):
        frames = cache.frames(item)
        for i, (r, p) in enumerate(zip(frames, frame_probs(head.model, frames, joint=task == "scene"))):
            pairs.append((cache.label_map(item, i), pixel_labels(r, p, head.class_ids)))
    return pairs


def _scannet20_miou_by_hand(pairs) -> float:
    """ScanNet-20 mIoU: pixels whose truth is not one of the 20 classes do not count; a counted
    pixel predicted as anything else (unlabelled, ceiling) is a miss; a class scores when it
    occurs in the counted truth or predictions. (The protocol's 640×480 nearest resampling of
    these 64×48 maps repeats each pixel 10×10: it changes no ratio.)"""
    ious = []
    for c in BENCHMARK_NYU40:
        inter = union = 0
        for gt, pred in pairs:
            counted = np.isin(gt, BENCHMARK_NYU40)
            inter += np.sum((gt == c) & (pred == c))
            union += np.sum((gt == c) | ((pred == c) & counted))
        if union:
            ious.append(inter / union)
    return float(np.mean(ious))


def _top1_here(head_dir, cache_dir) -> tuple[float, int]:
    from regiond.heads.predict import clip_scores
    from regiond.heads.registry import load_head

    head, cache = load_head(head_dir), TokenCache.open(cache_dir)
    hits = [
        head.class_names[int(np.argmax(clip_scores(head.model, cache.frames(it))))] == it.label
        for it in cache.of_kind("clip")
    ]
    return float(np.mean(hits)), len(hits)


def test_train_and_eval_cli_smoke(tmp_path, capsys):
    write_toy_cache(tmp_path / "train", scenes=3, frames=3, clips_per_class=2, seed=0)
    write_toy_cache(tmp_path / "test", scenes=1, frames=3, clips_per_class=1, seed=1, uncovered=True)
    small = ["--dim", "32", "--attention-heads", "4", "--epochs", "2", "--warmup", "2"]
    for task in ("segment", "scene", "activity"):
        out = tmp_path / "heads" / task
        assert (
            main(
                [
                    "train",
                    task,
                    "--cache",
                    str(tmp_path / "train"),
                    "--out",
                    str(out),
                    "--val-cache",
                    str(tmp_path / "test"),
                ]
                + (small if task != "segment" else ["--epochs", "2"])
            )
            == 0
        )
        line = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
        assert line["epochs_run"] == 2 and (out / "model.safetensors").is_file()
        png = tmp_path / f"{task}.png"
        args = ["eval", task, "--head", str(out), "--cache", str(tmp_path / "test"), "--confusion", str(png), "--json"]
        assert main(args) == 0
        text = capsys.readouterr().out
        assert png.is_file()
        metrics = json.loads(text.strip().splitlines()[-1])
        if task == "activity":
            top1, clips = _top1_here(out, tmp_path / "test")
            assert metrics["clips"] == clips == 4 and metrics["top1"] == pytest.approx(top1)
            assert metrics["top5"] == 1.0  # 4 classes: every target is among the top 5
        else:
            pairs = _label_maps_here(task, out, tmp_path / "test")
            assert "mIoU" in text and metrics["frames"] == len(pairs) == 3
            assert metrics["miou"] == pytest.approx(_scannet20_miou_by_hand(pairs), abs=1e-9)
    # a head cannot be evaluated on tokens of another extractor
    other = tmp_path / "other"
    TokenCache.create(other, {"profile": "lite", "masker": "slic", "backbone": "classic", "dim": 32, "pooling": "mean"})
    assert main(["eval", "scene", "--head", str(tmp_path / "heads" / "scene"), "--cache", str(other)]) == 1
    assert "another extractor" in capsys.readouterr().err


def test_train_is_deterministic_by_seed(tmp_path):
    from regiond.heads.cache_jobs import train_on_cache
    from regiond.heads.config import TrainConfig

    write_toy_cache(tmp_path / "c", scenes=3, frames=2, clips_per_class=0)
    cfg = TrainConfig(epochs=2, warmup=2, seed=3)
    kw = dict(head="scene-transformer", cfg=cfg, head_overrides={"dim": 32, "heads": 4}, progress=False)
    a = train_on_cache("scene", tmp_path / "c", tmp_path / "a", **kw)
    b = train_on_cache("scene", tmp_path / "c", tmp_path / "b", **kw)
    assert a.result.history == b.result.history
    from safetensors.torch import load_file

    wa, wb = load_file(str(tmp_path / "a" / "model.safetensors")), load_file(str(tmp_path / "b" / "model.safetensors"))
    assert wa.keys() == wb.keys() and all((wa[k] == wb[k]).all() for k in wa)
