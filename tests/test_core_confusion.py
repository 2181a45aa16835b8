"""The one ScanNet 20-class scorer (regiond.core.confusion): hand-computed cases, the 640×480
resampling, and the scan client and `regiond eval labels` agreeing on the same maps at a
non-integer scale."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from regiond.core.confusion import SCANNET20, Confusion, EvalProtocol
from regiond.core.label_spaces import resize_nearest


def test_scannet20_hand_computed():
    # gt 40 (otherprop) is outside the 20 classes: ignored whatever is predicted there
    gt = np.array([[1, 1], [2, 40]])
    pred = np.array([[1, 2], [0, 1]])
    conf = Confusion(SCANNET20)
    EvalProtocol(SCANNET20).add(conf, gt, pred)
    iou = dict(zip(SCANNET20, conf.iou()))
    assert iou[1] == pytest.approx(1 / 2)  # TP 1, FN 1 (predicted 2), FP 0 (the FP on gt 40 is ignored)
    assert iou[2] == pytest.approx(0.0)  # TP 0, FN 1 (unlabelled), FP 1
    assert all(np.isnan(iou[c]) for c in SCANNET20 if c not in (1, 2))
    assert conf.miou() == pytest.approx(0.25)
    assert conf.accuracy() == pytest.approx(1 / 3)
    assert conf.counts[SCANNET20.index(2), -1] == 1  # the unlabelled prediction is a miss in "other"


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.int32, np.int64])
def test_scores_by_class_name_hand_computed(dtype):
    # NYU40 1 wall, 2 floor, 3 cabinet; 40 otherprop is ignored in the truth, 0 is unlabelled
    truth = np.array([[1, 1, 2, 2], [3, 3, 40, 40]], dtype)
    pred = np.array([[1, 2, 2, 2], [0, 3, 1, 3]], dtype)
    conf = Confusion(SCANNET20, EvalProtocol.scannet20().names)
    conf.add_ids(truth, pred)
    assert conf.counts.shape == (20, 21) and conf.counts.sum() == 6  # ignored truth pixels are not counted
    s = conf.scores()
    # wall: tp 1, fn 1 (→ floor) → 1/2; floor: tp 2, fp 1 → 2/3; cabinet: tp 1, fn 1 (unlabelled) → 1/2
    assert s["iou"]["wall"] == pytest.approx(0.5) and s["iou"]["floor"] == pytest.approx(0.6667, abs=1e-4)
    assert s["iou"]["cabinet"] == pytest.approx(0.5) and s["iou"]["bed"] is None
    assert s["classes_present"] == 3 and s["miou"] == pytest.approx((0.5 + 2 / 3 + 0.5) / 3)


def test_label_png_maps_count_as_any_other_ids():
    """uint8 maps (label PNGs) are counted by id pairs, folded into classes: the same counts as
    the general path, ids outside the classes and 255 included."""
    rng = np.random.default_rng(3)
    truth = rng.choice([0, 1, 2, 3, 5, 39, 40, 41, 255], size=(48, 64)).astype(np.uint8)
    pred = rng.integers(0, 256, size=(48, 64)).astype(np.uint8)
    pred[:10] = truth[:10]
    fast, general = Confusion(SCANNET20), Confusion(SCANNET20)
    fast.add_ids(truth, pred)
    fast.add_ids(truth, pred)
    general.add_ids(truth.astype(np.int64), pred.astype(np.int64))
    assert fast.counts.dtype == np.int64 and np.array_equal(fast.counts, 2 * general.counts)
    assert general.counts.sum() == np.isin(truth, SCANNET20).sum()


def test_label_png_maps_past_float32_exact_counts():
    """From 2^24 pixels on (where OpenCV's float32 histogram would round) uint8 maps are
    counted by numpy: the same counts as the map's four quarters counted apart."""
    rng = np.random.default_rng(4)
    truth = rng.choice(np.array([0, 1, 2, 3, 255], np.uint8), size=(4096, 4096))
    pred = np.where(rng.random((4096, 4096)) < 0.9, truth, 2).astype(np.uint8)
    whole, quarters = Confusion(SCANNET20), Confusion(SCANNET20)
    whole.add_ids(truth, pred)
    for rows in (slice(0, 2048), slice(2048, None)):
        for cols in (slice(0, 2048), slice(2048, None)):
            quarters.add_ids(truth[rows, cols], pred[rows, cols])
    assert whole.counts.sum() == np.isin(truth, SCANNET20).sum() > 1 << 23
    assert np.array_equal(whole.counts, quarters.counts)


def test_scannet20_protocol_resamples_to_640x480():
    proto = EvalProtocol.scannet20()
    assert proto.size == (640, 480) and proto.names[:2] == ("wall", "floor")
    gt = np.array([[1, 1], [2, 40]])
    pred = np.array([[1, 2], [0, 1]])
    conf = proto.confusion()
    proto.add(conf, gt, pred)
    assert conf.counts.sum() == 3 * 320 * 240
    assert conf.miou() == pytest.approx(0.25)
    # a prediction at another size is compared at 640×480 too
    conf2 = proto.confusion()
    proto.add(conf2, np.full((480, 640), 3), np.full((240, 320), 3))
    assert conf2.miou() == pytest.approx(1.0)


def test_resize_nearest_pixel_centres():
    a = np.arange(6).reshape(2, 3)
    assert resize_nearest(a, 6, 4).tolist() == [[0, 0, 1, 1, 2, 2]] * 2 + [[3, 3, 4, 4, 5, 5]] * 2
    assert resize_nearest(resize_nearest(a, 6, 4), 3, 2).tolist() == a.tolist()
    # 5 → 2 columns: pixel centres 1.25 and 3.75 fall in columns 1 and 3 (OpenCV's INTER_NEAREST: 0 and 2)
    assert resize_nearest(np.arange(5)[None], 2, 1).tolist() == [[1, 3]]


def test_confusion_png(tmp_path):
    conf = Confusion((1, 2, 5), ("wall", "floor", "chair"))
    conf.add_ids([1, 1, 2, 5], [1, 2, 2, 0])
    path = conf.save_png(tmp_path / "c.png", title="t")
    with Image.open(path) as img:
        assert img.format == "PNG" and img.size[0] > 100
    assert "mIoU" in conf.table()


def _png(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(a.astype(np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def test_scan_client_and_eval_labels_agree_at_a_non_integer_scale(tmp_path):
    """640×480 label maps against 1296×968 ground truth (ScanNet's colour size: a 2.025× scale)
    score the same through the scan client's summary (LabelScores) and `regiond eval labels`
    (evaluate_label_folder, which regiond label's per-scene scores share)."""
    import cv2

    from regiond.client.scan_outputs import LabelScores
    from regiond.core.label_spaces import write_label_png
    from regiond.core.viz import decode_label_png
    from regiond.heads.cache_jobs import evaluate_label_folder
    from regiond.scenes import open_source

    opts = dict(frames=2, width=1296, height=968)
    frames = list(open_source("synthetic:5", **opts))
    assert frames[0].labels.shape == (968, 1296)
    client = LabelScores()
    (tmp_path / "labels").mkdir()
    for k, f in enumerate(frames):
        # a prediction at 640×480 with errors along every edge: the truth shifted by k + 1 pixels
        pred = np.roll(cv2.resize(f.labels, (640, 480), interpolation=cv2.INTER_NEAREST), k + 1, axis=1)
        write_label_png(tmp_path / "labels" / f"synthetic-5_{f.index:06d}.png", pred)
        client.truth(int(f.index), f.labels)
        client.predict(int(f.index), decode_label_png(_png(pred)))
    ours = client.result()
    theirs = evaluate_label_folder(tmp_path / "labels", "synthetic:5", **opts).metrics
    assert ours["frames"] == theirs["frames"] == 2
    assert 0.3 < ours["miou"] < 0.99
    assert ours["miou"] == pytest.approx(theirs["miou"], abs=1e-12)
    assert client.confusion().counts.sum() == 2 * 640 * 480 - sum(
        int((~np.isin(resize_nearest(f.labels, 640, 480), SCANNET20)).sum()) for f in frames
    )

    # the two resampling conventions the paths used to differ by pick other pixels at this
    # scale, so this test tells them apart
    old = EvalProtocol(SCANNET20, None).confusion()
    for k, f in enumerate(frames):
        pred = np.roll(cv2.resize(f.labels, (640, 480), interpolation=cv2.INTER_NEAREST), k + 1, axis=1)
        old.add_ids(cv2.resize(f.labels, (640, 480), interpolation=cv2.INTER_NEAREST), pred)
    assert abs(old.miou() - ours["miou"]) > 1e-6
