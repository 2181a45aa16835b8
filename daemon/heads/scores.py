"""Evaluation: ScanNet's 20-class 2D protocol, mIoU, top-k accuracy, confusion pictures.

ScanNet 2D protocol (DESIGN.md): predictions and ground truth are compared at 640×480
(nearest-neighbour resampling); ground-truth pixels whose NYU40 id is not one of the 20
benchmark classes are ignored; a prediction outside the 20 (including unlabelled) on a
counted pixel is a miss for the true class. IoU = TP / (TP + FP + FN) per class; mIoU is
the mean over every class of the protocol that occurs in the ground truth or the
predictions (a class absent from both has no IoU, rather than a free 1 or 0).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from regiond.core.label_spaces import BENCHMARK_NYU40 as SCANNET20  # the 20 NYU40 ids of ScanNet's benchmark
from regiond.core.legend import confusion_png

SCANNET_EVAL_SIZE = (640, 480)  # width, height


def resize_nearest(label_map: np.ndarray, width: int, height: int) -> np.ndarray:
    """Nearest-neighbour resampling of an integer map (pixel-centre convention)."""
    label_map = np.asarray(label_map)
    h, w = label_map.shape
    if (w, h) == (width, height):
        return label_map
    rows = np.minimum(((np.arange(height) + 0.5) * h / height).astype(np.int64), h - 1)
    cols = np.minimum(((np.arange(width) + 0.5) * w / width).astype(np.int64), w - 1)
    return label_map[rows[:, None], cols[None, :]]


@dataclass
class Protocol:
    """Which classes count and at what size maps are compared.

    class_ids  the evaluated classes (ground truth outside them is ignored)
    size       (width, height) both maps are resampled to (nearest), or None = as given
    """

    class_ids: tuple
    size: tuple | None = None
    names: tuple = ()

    @classmethod
    def scannet20(cls, names: dict | None = None) -> Protocol:
        names = names or {}
        return cls(SCANNET20, SCANNET_EVAL_SIZE, tuple(names.get(i, str(i)) for i in SCANNET20))


@dataclass
class Confusion:
    """K×(K+1) counts: rows ground-truth class, columns predicted class; the last column
    collects predictions outside the classes (unlabelled or another id)."""

    class_ids: tuple
    names: tuple = ()
    counts: np.ndarray = field(default=None)

    def __post_init__(self):
        self.class_ids = tuple(int(c) for c in self.class_ids)
        if self.counts is None:
            self.counts = np.zeros((len(self.class_ids), len(self.class_ids) + 1), np.int64)
        if not self.names:
            self.names = tuple(str(c) for c in self.class_ids)

    def _index(self, ids: np.ndarray) -> np.ndarray:
        """Class id → row/column index; K (the 'other' column) for ids not in the classes."""
        lut_size = max(max(self.class_ids, default=0), int(ids.max(initial=0))) + 1
        lut = np.full(lut_size, len(self.class_ids), np.int64)
        lut[list(self.class_ids)] = np.arange(len(self.class_ids))
        out = np.full(ids.shape, len(self.class_ids), np.int64)
        ok = ids >= 0
        out[ok] = lut[ids[ok]]
        return out

    def add_ids(self, gt, pred) -> None:
        """Add flat arrays of ground-truth and predicted class ids; gt outside the classes
        is ignored."""
        gt = np.asarray(gt, np.int64).ravel()
        pred = np.asarray(pred, np.int64).ravel()
        if gt.shape != pred.shape:
            raise ValueError(f"ground truth has {gt.size} entries, prediction {pred.size}")
        gi = self._index(gt)
        keep = gi < len(self.class_ids)
        pi = self._index(pred[keep])
        k = len(self.class_ids)
        self.counts += np.bincount(gi[keep] * (k + 1) + pi, minlength=k * (k + 1)).reshape(k, k + 1)

    def iou(self) -> np.ndarray:
        """Per-class IoU; NaN for classes absent from both ground truth and predictions."""
        k = len(self.class_ids)
        tp = np.diag(self.counts[:, :k]).astype(np.float64)
        gt = self.counts.sum(1)
        pred = self.counts[:, :k].sum(0)
        union = gt + pred - tp
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(union > 0, tp / union, np.nan)

    def miou(self) -> float:
        v = self.iou()
        return float(np.nanmean(v)) if np.isfinite(v).any() else float("nan")

    def accuracy(self) -> float:
        k = len(self.class_ids)
        total = self.counts.sum()
        return float(np.trace(self.counts[:, :k]) / total) if total else float("nan")

    def table(self) -> str:
        lines = [f"{'class':<20} {'id':>4} {'IoU':>7} {'pixels':>10}"]
        for cid, name, v, n in zip(self.class_ids, self.names, self.iou(), self.counts.sum(1)):
            lines.append(f"{name[:20]:<20} {cid:>4} {'   -   ' if np.isnan(v) else f'{100 * v:7.2f}'} {n:>10}")
        lines.append(f"{'mIoU':<20} {'':>4} {100 * self.miou():7.2f}")
        return "\n".join(lines)

    def save_png(self, path, title: str = "", colours: np.ndarray | None = None) -> Path:
        """The confusion picture (regiond.core.legend.confusion_png); `colours`, one per class, are
        drawn beside the class names (label colours: label_colours()[class_ids])."""
        return confusion_png(
            self.counts, list(self.names) + ["other"], path, title, rows=list(self.names), colours=colours
        )


def evaluate_label_map(conf: Confusion, gt: np.ndarray, pred: np.ndarray, size: tuple | None) -> None:
    """Add one image: both maps resampled (nearest) to size=(width, height) when given."""
    gt, pred = np.asarray(gt), np.asarray(pred)
    if size is not None:
        gt, pred = resize_nearest(gt, *size), resize_nearest(pred, *size)
    elif gt.shape != pred.shape:
        raise ValueError(f"ground truth {gt.shape} and prediction {pred.shape} differ in size")
    conf.add_ids(gt, pred)


def topk_accuracy(scores: np.ndarray, targets: np.ndarray, k: int) -> float:
    """Fraction of rows whose target is among the k highest scores."""
    scores, targets = np.asarray(scores), np.asarray(targets)
    if not len(targets):
        return float("nan")
    top = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return float((top == targets[:, None]).any(axis=1).mean())
