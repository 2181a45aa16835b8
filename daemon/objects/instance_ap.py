"""Class-agnostic instance AP over the points of a cloud, by ScanNet's instance-evaluation rules
(BenchmarkScripts/3d_evaluation/evaluate_semantic_instance.py), all objects one class:

- IoU thresholds 0.5, 0.55, ..., 0.9 (AP is their mean), AP50 at 0.5, AP25 at 0.25; a match
  needs IoU strictly above the threshold;
- ground truth instances of excluded classes (wall, floor, ceiling) are not evaluated, and
  their points count as void; ground truth instances under 100 points are not evaluated;
- predictions under 100 points are skipped;
- greedy matching, ground truth by ground truth: a second prediction matching one ground truth
  object is a false positive (duplicates), with the lower confidence of the two;
- an unmatched prediction is a false positive unless more than the threshold's share of its
  points are void or lie on unevaluated ground truth;
- AP from the precision-recall curve over the predictions' confidences, as ScanNet integrates it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: ScanNet's thresholds: np.arange(0.5, 0.95, 0.05) and 0.25
OVERLAPS = tuple(np.append(np.arange(0.5, 0.95, 0.05), 0.25).tolist())
MIN_REGION_POINTS = 100
#: NYU40 ids of the classes instance evaluation leaves out: wall, floor, ceiling
EXCLUDED_CLASSES = (1, 2, 22)


@dataclass
class InstanceScores:
    ap: float
    ap50: float
    ap25: float
    gt_objects: int  # ground truth objects evaluated
    predictions: int  # predictions of at least MIN_REGION_POINTS points
    per_overlap: dict

    def as_dict(self) -> dict:
        return {
            "ap": self.ap,
            "ap50": self.ap50,
            "ap25": self.ap25,
            "gt_objects": self.gt_objects,
            "predictions": self.predictions,
            "per_overlap": self.per_overlap,
        }


@dataclass
class SceneMatches:
    """One scene's matches at every threshold: (y_true, y_score, hard false negatives)."""

    by_overlap: dict
    gt_objects: int
    predictions: int


def match_scene(
    pred: np.ndarray,
    conf,
    gt: np.ndarray,
    gt_class: dict[int, int],
    excluded=EXCLUDED_CLASSES,
    min_points: int = MIN_REGION_POINTS,
) -> SceneMatches:
    """pred   N predicted object per point (0: none) with conf {object id: confidence}, or
           K×N bool masks (they may overlap, as ScanNet's may) with conf K confidences
    gt     N ground truth instance per point (0: none); gt_class: instance → NYU40 class"""
    gt = np.asarray(gt, np.int64).ravel()
    gt_ids, gt_count = np.unique(gt[gt > 0], return_counts=True)
    valid_class = np.array([gt_class.get(int(i), 0) not in excluded for i in gt_ids], bool)
    counted = gt_ids[valid_class]  # instances of evaluated classes (any size): matched_gt in ScanNet
    counted_size = gt_count[valid_class]
    evaluated = counted_size >= min_points
    void = ~np.isin(gt, counted)  # no instance, or one of an excluded class
    gi = np.full(len(gt), len(counted))  # len(counted): void
    gi[~void] = np.searchsorted(counted, gt[~void])
    inter, confidence = _intersections(pred, conf, gi, len(counted) + 1)
    pred_count = inter.sum(axis=1)
    keep = pred_count >= min_points  # ScanNet skips smaller predictions
    inter, pred_count, confidence = inter[keep], pred_count[keep], confidence[keep]
    void_inter, inter = inter[:, -1], inter[:, :-1]
    union = counted_size[None, :] + pred_count[:, None] - inter
    iou = np.where(inter > 0, inter / np.maximum(union, 1), 0.0)
    by = {th: _matches(iou, inter, confidence, pred_count, void_inter, evaluated, th) for th in OVERLAPS}
    return SceneMatches(by, int(evaluated.sum()), len(confidence))


def _intersections(pred, conf, gi: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray]:
    """(K×width points of each prediction per ground truth column, K confidences)."""
    pred = np.asarray(pred)
    if pred.ndim == 2:
        masks = pred.astype(bool).reshape(len(pred), len(gi))
        inter = np.stack([np.bincount(gi[m], minlength=width) for m in masks]) if len(masks) else None
        return (inter if inter is not None else np.zeros((0, width), np.int64)), np.asarray(conf, np.float64)
    ids = pred.astype(np.int64).ravel()
    if ids.shape != gi.shape:
        raise ValueError(f"{len(ids)} predicted labels for {len(gi)} ground truth points")
    objects, k = np.unique(ids[ids > 0], return_inverse=True)
    inter = np.bincount(k * width + gi[ids > 0], minlength=len(objects) * width).reshape(len(objects), width)
    return inter, np.array([float(conf.get(int(i), 0.0)) for i in objects])


def pooled_scores(scenes: list[SceneMatches]) -> InstanceScores:
    """AP over several scenes: their matches pooled per threshold, as ScanNet's evaluation pools
    all scenes of a class before computing the curve."""
    aps = {}
    for th in OVERLAPS:
        parts = [s.by_overlap[th] for s in scenes]
        has_gt = any(s.gt_objects for s in scenes)
        has_pred = any(s.predictions for s in scenes)
        if not has_gt:
            aps[th] = float("nan")
        elif not has_pred:
            aps[th] = 0.0
        else:
            y_true = np.concatenate([p[0] for p in parts])
            y_score = np.concatenate([p[1] for p in parts])
            aps[th] = _integrate(y_true, y_score, sum(p[2] for p in parts))
    main = [aps[th] for th in OVERLAPS if not np.isclose(th, 0.25)]
    return InstanceScores(
        ap=float(np.nanmean(main)) if not np.isnan(main).all() else float("nan"),
        ap50=float(aps[OVERLAPS[0]]),
        ap25=float(aps[0.25]),
        gt_objects=sum(s.gt_objects for s in scenes),
        predictions=sum(s.predictions for s in scenes),
        per_overlap={round(th, 2): float(v) for th, v in aps.items()},
    )


def instance_scores(pred, conf, gt, gt_class, excluded=EXCLUDED_CLASSES, min_points: int = MIN_REGION_POINTS):
    """One scene's scores (match_scene's arguments)."""
    return pooled_scores([match_scene(pred, conf, gt, gt_class, excluded, min_points)])


def _matches(iou, inter, conf, pred_count, void_inter, evaluated, th) -> tuple[np.ndarray, np.ndarray, int]:
    """One threshold's (y_true, y_score, hard false negatives): ScanNet's evaluate_matches for
    one scene and one class."""
    n_pred = len(conf)
    visited = np.zeros(n_pred, bool)
    y_true, y_score = [], []
    hard_fn = 0
    for g in np.flatnonzero(evaluated):
        matched, score = False, -np.inf
        for p in np.flatnonzero(inter[:, g] > 0):  # predictions in order, as ScanNet lists them
            if visited[p] or not iou[p, g] > th:
                continue
            if matched:  # a duplicate: the lower confidence is a false positive
                y_true.append(0)
                y_score.append(min(score, conf[p]))
                score = max(score, conf[p])
            else:
                matched, score = True, conf[p]
                visited[p] = True
        if matched:
            y_true.append(1)
            y_score.append(score)
        else:
            hard_fn += 1
    for p in range(n_pred):
        if (iou[p] > th).any():
            continue
        ignore = void_inter[p] + inter[p, ~evaluated].sum()
        if ignore / pred_count[p] <= th:
            y_true.append(0)
            y_score.append(conf[p])
    return np.asarray(y_true, np.float64), np.asarray(y_score, np.float64), hard_fn


def _integrate(y_true: np.ndarray, y_score: np.ndarray, hard_fn: int) -> float:
    if not len(y_true):
        return 0.0
    order = np.argsort(y_score, kind="stable")
    scores, trues = y_score[order], y_true[order]
    cumsum = np.cumsum(trues)
    _, unique_idx = np.unique(scores, return_index=True)
    n_pr = len(unique_idx) + 1
    n, n_true = len(scores), cumsum[-1]
    precision, recall = np.zeros(n_pr), np.zeros(n_pr)
    cumsum = np.append(cumsum, 0)
    for k, idx in enumerate(unique_idx):
        c = cumsum[idx - 1]
        tp = n_true - c
        fp = n - idx - tp
        fn = c + hard_fn
        precision[k] = tp / (tp + fp) if tp + fp > 0 else 0.0
        recall[k] = tp / (tp + fn) if tp + fn > 0 else 0.0
    precision[-1], recall[-1] = 1.0, 0.0
    r = np.concatenate([[recall[0]], recall, [0.0]])
    steps = np.convolve(r, [-0.5, 0, 0.5], "valid")
    return float(np.dot(precision, steps))
