"""The per-pixel rule, the >50% training-label rule, top-k and `regiond eval labels`, against
hand-computed cases (the ScanNet 20-class scorer itself: test_core_confusion.py)."""

from __future__ import annotations

import numpy as np
import pytest

from regiond.core.confusion import EvalProtocol
from regiond.core.label_spaces import UNLABELLED
from regiond.core.regionset import RegionSet, region_labels
from regiond.heads.label_maps import pixel_labels
from regiond.heads.scores import topk_accuracy


def _regions(*masks):
    return RegionSet.from_masks(np.stack([np.asarray(m, bool) for m in masks]))


def reference_pixel_labels(regions, probs, class_ids, unlabelled=UNLABELLED):
    """The dense rule pixel_labels replaced (kept as the reference): N×HW masks times the
    probabilities, divided by the coverage, argmax."""
    import torch

    p = torch.as_tensor(np.asarray(probs, np.float32))
    n, c = p.shape
    h, w = regions.height, regions.width
    masks = torch.from_numpy(regions.masks().reshape(n, h * w)).float()
    total = p.T @ masks
    count = masks.sum(0)
    covered = count > 0
    mean = torch.where(covered, total / count.clamp_min(1), torch.zeros_like(total)).reshape(c, h, w).numpy()
    out = np.asarray(class_ids, np.int32)[mean.argmax(0)]
    return np.where(covered.reshape(h, w).numpy(), out, unlabelled).astype(np.int32)


def test_pixel_rule_averages_covering_regions_and_leaves_uncovered_unlabelled():
    a = [[1, 1, 0], [1, 1, 0]]
    b = [[0, 1, 1], [0, 0, 0]]
    regions = _regions(a, b)  # pixel (1, 2) is in no region
    probs = np.array([[0.8, 0.2], [0.3, 0.7]])
    labels = pixel_labels(regions, probs, class_ids=[5, 7])
    assert labels.tolist() == [[5, 5, 7], [5, 5, UNLABELLED]]  # (0, 1): mean 0.55 / 0.45 → 5
    assert labels.dtype == np.int32


@pytest.mark.parametrize("overlap", [False, True])
def test_pixel_rule_equals_the_dense_computation(overlap):
    rng = np.random.default_rng(int(overlap))
    h, w, n, c = 37, 53, 12, 6
    seeds = rng.random((n, 2)) * (h, w)
    yy, xx = np.mgrid[:h, :w]
    owner = np.argmin((yy[None] - seeds[:, :1, None]) ** 2 + (xx[None] - seeds[:, 1:, None]) ** 2, axis=0)
    masks = owner[None] == np.arange(n)[:, None, None]  # a tiling (SLIC)
    masks[:, :3] = False  # some pixels uncovered
    if overlap:  # plus SAM-like masks across it
        masks = np.concatenate([masks, rng.random((5, h, w)) < 0.3, np.ones((1, h, w), bool)])
    regions = _regions(*masks)
    probs = rng.dirichlet(np.ones(c), len(masks))
    ids = [3, 1, 22, 7, 9, 4]
    got = pixel_labels(regions, probs, ids)
    assert np.array_equal(got, reference_pixel_labels(regions, probs, ids))
    assert (got[:3] == UNLABELLED).all() != overlap
    small = pixel_labels(regions, probs, ids, dtype=np.uint8)  # painted in 8 bits for a PNG
    assert small.dtype == np.uint8 and small.flags.c_contiguous and np.array_equal(small, got)
    with pytest.raises(ValueError, match="do not fit uint8"):
        pixel_labels(regions, probs, [3, 1, 22, 7, 9, 300], dtype=np.uint8)


def test_pixel_rule_overlap_can_flip_to_the_other_class():
    # a says class 7 weakly, b says class 5 strongly: the mean at the overlap is class 5
    regions = _regions([[1, 1]], [[0, 1]])
    labels = pixel_labels(regions, np.array([[0.4, 0.6], [0.9, 0.1]]), class_ids=[5, 7])
    assert labels.tolist() == [[7, 5]]


def test_no_regions_means_all_unlabelled():
    regions = RegionSet.from_masks(np.zeros((0, 2, 3), bool))
    assert (pixel_labels(regions, np.zeros((0, 4)), [1, 2, 3, 4]) == UNLABELLED).all()


def test_region_label_needs_a_strict_majority():
    gt = np.array([[5, 5, 5, 7, 7], [5, 5, 7, 7, 0], [0, 0, 0, 0, 3]])
    r60 = np.zeros_like(gt, bool)
    r60[0, :5] = True  # 3×5, 2×7 → 5 (60%)
    r50 = np.zeros_like(gt, bool)
    r50[1, :4] = True  # 2×5, 2×7 → none (50%)
    r0 = np.zeros_like(gt, bool)
    r0[2, :] = True  # 4×0, 1×3 → none (unannotated)
    regions = _regions(r60, r50, r0)
    assert region_labels(regions, gt).tolist() == [5, -1, -1]
    with pytest.raises(ValueError, match="does not match"):
        region_labels(regions, gt[:2])


def test_topk():
    scores = np.array([[0.1, 0.5, 0.4], [0.6, 0.3, 0.1], [0.2, 0.3, 0.5]])
    targets = np.array([2, 0, 0])
    assert topk_accuracy(scores, targets, 1) == pytest.approx(1 / 3)
    assert topk_accuracy(scores, targets, 2) == pytest.approx(2 / 3)
    assert topk_accuracy(scores, targets, 3) == pytest.approx(1.0)


def test_evaluate_label_folder_against_a_synthetic_room(tmp_path):
    from regiond.core.label_spaces import write_label_png
    from regiond.heads.cache_jobs import evaluate_label_folder
    from regiond.scenes import open_source

    opts = dict(frames=3, width=64, height=48)
    frames = list(open_source("synthetic:5", **opts))
    # frame 0 predicted perfectly, frame 1 predicted as all wall, frame 2 not predicted
    write_label_png(tmp_path / f"room_{frames[0].index:06d}.png", frames[0].labels)
    write_label_png(tmp_path / f"room_{frames[1].index:06d}.png", np.ones_like(frames[1].labels))
    rep = evaluate_label_folder(tmp_path, "synthetic:5", **opts)
    assert rep.metrics["frames"] == 2 and rep.metrics["frames_without_prediction"] == 1
    proto = EvalProtocol.scannet20()
    conf = proto.confusion()
    proto.add(conf, frames[0].labels, frames[0].labels)
    proto.add(conf, frames[1].labels, np.ones_like(frames[1].labels))
    assert rep.metrics["miou"] == pytest.approx(conf.miou())
    assert 0 < rep.metrics["miou"] < 1
