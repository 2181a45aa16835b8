"""Scoring label maps: confusion counts, per-class IoU and mIoU, and ScanNet's 20-class 2D
protocol. The one scorer of the project: the scan client's summary.json, `regiond eval` and
`regiond label` all score with it, so they report the same mIoU for the same maps.

ScanNet 2D protocol: prediction and ground truth are compared at 640×480, both resampled with
nearest neighbour at pixel centres (resize_nearest); ground-truth pixels whose NYU40 id is not
one of the 20 benchmark classes are ignored; a prediction outside the 20 (unlabelled included)
on a counted pixel is a miss for the true class. IoU = TP / (TP + FP + FN) per class; mIoU is
the mean over every class of the protocol (none is dropped) that occurs in the ground truth or
the predictions: a class absent from both has no IoU, rather than a free 1 or 0.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from regiond.core.label_spaces import BENCHMARK_NAMES, BENCHMARK_NYU40, resize_nearest
from regiond.core.legend import confusion_png

SCANNET20 = BENCHMARK_NYU40  # the 20 NYU40 ids of ScanNet's benchmark
SCANNET_EVAL_SIZE = (640, 480)  # width, height


@dataclass
class EvalProtocol:
    """Which classes count and at what size maps are compared.

    class_ids  the evaluated classes (ground truth outside them is ignored)
    size       (width, height) both maps are resampled to (nearest), or None = as given
    names      one per class
    """

    class_ids: tuple
    size: tuple | None = None
    names: tuple = ()

    @classmethod
    def scannet20(cls) -> EvalProtocol:
        return cls(SCANNET20, SCANNET_EVAL_SIZE, BENCHMARK_NAMES)

    def confusion(self) -> Confusion:
        """Empty counts for this protocol's classes."""
        return Confusion(self.class_ids, self.names)

    def add(self, conf: Confusion, gt: np.ndarray, pred: np.ndarray) -> None:
        """Score one image: both maps resampled (nearest) to the protocol's size when it has one."""
        gt, pred = np.asarray(gt), np.asarray(pred)
        if self.size is not None:
            gt, pred = resize_nearest(gt, *self.size), resize_nearest(pred, *self.size)
        elif gt.shape != pred.shape:
            raise ValueError(f"ground truth {gt.shape} and prediction {pred.shape} differ in size")
        conf.add_ids(gt, pred)


def _id_pairs(gt: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """65,536 counts of (ground-truth id, predicted id) pairs of two flat uint8 arrays, at
    gt · 256 + pred. OpenCV's 2D histogram takes a third of numpy's bincount time (a scan
    scores every frame's map at its end); its float32 counts are exact below 2^24 pixels."""
    if gt.size < 1 << 24:
        hist = cv2.calcHist([gt.reshape(-1, 1), pred.reshape(-1, 1)], [0, 1], None, [256, 256], [0, 256, 0, 256])
        return hist.ravel().astype(np.int64)
    return np.bincount((gt.astype(np.uint16) << 8) | pred, minlength=1 << 16)


@functools.lru_cache(maxsize=8)
def _class_table(class_ids: tuple, size: int) -> np.ndarray:
    """Id → class index (K, the 'other' column, for ids not in the classes) of the ids below
    `size`: the one lookup of label PNGs' ids (read-only: it is shared)."""
    lut = np.full(size, len(class_ids), np.int64)
    for j, c in enumerate(class_ids):
        if 0 <= c < size:
            lut[c] = j
    lut.flags.writeable = False
    return lut


@functools.lru_cache(maxsize=8)
def _class_pairs(class_ids: tuple) -> np.ndarray:
    """For each id pair gt · 256 + pred: its cell of the (K+1)×(K+1) class-pair table."""
    k = len(class_ids)
    cells = _class_table(class_ids, 256)
    pairs = (cells[:, None] * (k + 1) + cells[None, :]).ravel()
    pairs.flags.writeable = False
    return pairs


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
        k = len(self.class_ids)
        if ids.dtype in (np.uint8, np.uint16):  # label PNGs: one table lookup
            return _class_table(self.class_ids, 1 << (8 * ids.itemsize))[ids]
        ids = ids.astype(np.int64)
        lut = np.full(max(max(self.class_ids, default=0), int(ids.max(initial=0))) + 1, k, np.int64)
        lut[list(self.class_ids)] = np.arange(k)
        out = np.full(ids.shape, k, np.int64)
        ok = ids >= 0
        out[ok] = lut[ids[ok]]
        return out

    def add_ids(self, gt, pred) -> None:
        """Add flat arrays of ground-truth and predicted class ids; gt outside the classes
        is ignored."""
        gt, pred = np.asarray(gt).ravel(), np.asarray(pred).ravel()
        if gt.shape != pred.shape:
            raise ValueError(f"ground truth has {gt.size} entries, prediction {pred.size}")
        k = len(self.class_ids)
        if gt.dtype == pred.dtype == np.uint8:  # label PNGs: count id pairs, then fold them into classes
            pairs = _id_pairs(gt, pred)
            seen = np.flatnonzero(pairs)  # a few dozen of the 65,536
            both = _class_pairs(self.class_ids)[seen]
            folded = np.bincount(both, weights=pairs[seen], minlength=(k + 1) ** 2).astype(np.int64)  # exact below 2^53
        else:
            both = self._index(gt) * (k + 1) + self._index(pred)
            folded = np.bincount(both, minlength=(k + 1) ** 2)
        self.counts += folded.reshape(k + 1, k + 1)[:k]  # the last row: ignored

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

    def scores(self) -> dict:
        """mIoU (None without any class present), classes present, IoU per class name (None
        where absent): what summary.json and reports hold."""
        iou = self.iou()
        present = np.isfinite(iou)
        return {
            "miou": float(np.nanmean(iou)) if present.any() else None,
            "classes_present": int(present.sum()),
            "iou": {name: (None if np.isnan(v) else round(float(v), 4)) for name, v in zip(self.names, iou)},
        }

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
