"""The per-pixel rule, the >50% training-label rule and the ScanNet 20-class evaluation,
against hand-computed cases."""
from __future__ import annotations

import numpy as np
import pytest

from core.labels import UNLABELLED
from core.regionset import RegionSet, region_labels
from daemon.heads.labels import pixel_labels, pixel_probabilities
from daemon.heads.metrics import SCANNET20, Confusion, Protocol, evaluate_label_map, resize_nearest, topk_accuracy


def _regions(*masks):
    return RegionSet.from_masks(np.stack([np.asarray(m, bool) for m in masks]))


def test_pixel_rule_averages_covering_regions_and_leaves_uncovered_unlabelled():
    a = [[1, 1, 0], [1, 1, 0]]
    b = [[0, 1, 1], [0, 0, 0]]
    regions = _regions(a, b)  # pixel (1, 2) is in no region
    probs = np.array([[0.8, 0.2], [0.3, 0.7]])
    mean, covered = pixel_probabilities(regions, probs)
    assert mean[:, 0, 1] == pytest.approx([0.55, 0.45])      # overlap: mean of both
    assert mean[:, 0, 2] == pytest.approx([0.3, 0.7])        # only b
    assert not covered[1, 2] and mean[:, 1, 2].tolist() == [0, 0]
    labels = pixel_labels(regions, probs, class_ids=[5, 7])
    assert labels.tolist() == [[5, 5, 7], [5, 5, UNLABELLED]]


def test_pixel_rule_overlap_can_flip_to_the_other_class():
    # a says class 7 weakly, b says class 5 strongly: the mean at the overlap is class 5
    regions = _regions([[1, 1]], [[0, 1]])
    labels = pixel_labels(regions, np.array([[0.4, 0.6], [0.9, 0.1]]), class_ids=[5, 7])
    assert labels.tolist() == [[7, 5]]


def test_no_regions_means_all_unlabelled():
    regions = RegionSet.from_masks(np.zeros((0, 2, 3), bool))
    assert (pixel_labels(regions, np.zeros((0, 4)), [1, 2, 3, 4]) == UNLABELLED).all()


def test_region_label_needs_a_strict_majority():
    gt = np.array([[5, 5, 5, 7, 7],
                   [5, 5, 7, 7, 0],
                   [0, 0, 0, 0, 3]])
    r60 = np.zeros_like(gt, bool); r60[0, :5] = True            # 3×5, 2×7 → 5 (60%)
    r50 = np.zeros_like(gt, bool); r50[1, :4] = True            # 2×5, 2×7 → none (50%)
    r0 = np.zeros_like(gt, bool); r0[2, :] = True               # 4×0, 1×3 → none (unannotated)
    regions = _regions(r60, r50, r0)
    assert region_labels(regions, gt).tolist() == [5, -1, -1]
    with pytest.raises(ValueError, match="does not match"):
        region_labels(regions, gt[:2])


def test_scannet20_hand_computed():
    # gt 40 (otherprop) is outside the 20 classes: ignored whatever is predicted there
    gt = np.array([[1, 1], [2, 40]])
    pred = np.array([[1, 2], [0, 1]])
    conf = Confusion(SCANNET20)
    evaluate_label_map(conf, gt, pred, None)
    iou = dict(zip(SCANNET20, conf.iou()))
    assert iou[1] == pytest.approx(1 / 2)   # TP 1, FN 1 (predicted 2), FP 0 (the FP on gt 40 is ignored)
    assert iou[2] == pytest.approx(0.0)     # TP 0, FN 1 (unlabelled), FP 1
    assert all(np.isnan(iou[c]) for c in SCANNET20 if c not in (1, 2))
    assert conf.miou() == pytest.approx(0.25)
    assert conf.accuracy() == pytest.approx(1 / 3)
    assert conf.counts[SCANNET20.index(2), -1] == 1   # the unlabelled prediction is a miss in "other"


def test_scannet20_protocol_resamples_to_640x480():
    proto = Protocol.scannet20()
    assert proto.size == (640, 480)
    gt = np.array([[1, 1], [2, 40]])
    pred = np.array([[1, 2], [0, 1]])
    conf = Confusion(proto.class_ids)
    evaluate_label_map(conf, gt, pred, proto.size)
    assert conf.counts.sum() == 3 * 320 * 240
    assert conf.miou() == pytest.approx(0.25)
    # a prediction at another size is compared at 640×480 too
    conf2 = Confusion(proto.class_ids)
    evaluate_label_map(conf2, np.full((480, 640), 3), np.full((240, 320), 3), proto.size)
    assert conf2.miou() == pytest.approx(1.0)


def test_resize_nearest_pixel_centres():
    a = np.arange(6).reshape(2, 3)
    assert resize_nearest(a, 6, 4).tolist() == [[0, 0, 1, 1, 2, 2]] * 2 + [[3, 3, 4, 4, 5, 5]] * 2
    assert resize_nearest(resize_nearest(a, 6, 4), 3, 2).tolist() == a.tolist()


def test_topk():
    scores = np.array([[0.1, 0.5, 0.4], [0.6, 0.3, 0.1], [0.2, 0.3, 0.5]])
    targets = np.array([2, 0, 0])
    assert topk_accuracy(scores, targets, 1) == pytest.approx(1 / 3)
    assert topk_accuracy(scores, targets, 2) == pytest.approx(2 / 3)
    assert topk_accuracy(scores, targets, 3) == pytest.approx(1.0)


def test_confusion_png(tmp_path):
    from PIL import Image

    conf = Confusion((1, 2, 5), ("wall", "floor", "chair"))
    conf.add_ids([1, 1, 2, 5], [1, 2, 2, 0])
    path = conf.save_png(tmp_path / "c.png", title="t")
    with Image.open(path) as img:
        assert img.format == "PNG" and img.size[0] > 100
    assert "mIoU" in conf.table()


def test_evaluate_label_folder_against_a_synthetic_room(tmp_path):
    from core.labels import write_label_png
    from daemon.heads.jobs import evaluate_label_folder
    from scenes import open_source

    opts = dict(frames=3, width=64, height=48)
    frames = list(open_source("synthetic:5", **opts))
    # frame 0 predicted perfectly, frame 1 predicted as all wall, frame 2 not predicted
    write_label_png(tmp_path / f"room_{frames[0].index:06d}.png", frames[0].labels)
    write_label_png(tmp_path / f"room_{frames[1].index:06d}.png", np.ones_like(frames[1].labels))
    rep = evaluate_label_folder(tmp_path, "synthetic:5", **opts)
    assert rep.metrics["frames"] == 2 and rep.metrics["frames_without_prediction"] == 1
    conf = Confusion(SCANNET20)
    evaluate_label_map(conf, frames[0].labels, frames[0].labels, (640, 480))
    evaluate_label_map(conf, frames[1].labels, np.ones_like(frames[1].labels), (640, 480))
    assert rep.metrics["miou"] == pytest.approx(conf.miou())
    assert 0 < rep.metrics["miou"] < 1
