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


def masks_of(ids: np.ndarray, confidence: dict[int, float]) -> tuple[np.ndarray, np.ndarray]:
    """(K×N bool masks, K confidences) of the objects of N per-point ids (0: none)."""
    ids = np.asarray(ids, np.int64).ravel()
    objects = np.unique(ids[ids > 0])
    return ids[None, :] == objects[:, None], np.array([float(confidence.get(int(i), 0.0)) for i in objects])


def instance_scores(
    masks: np.ndarray,
    conf: np.ndarray,
    gt: np.ndarray,
    gt_class: dict[int, int],
    excluded=EXCLUDED_CLASSES,
    min_points: int = MIN_REGION_POINTS,
) -> InstanceScores:
    """masks  K×N bool: the points of each predicted object (they may overlap, as ScanNet's
           masks may), conf its K confidences (masks_of() makes both from per-point ids)
    gt     N ground truth instance per point (0: none); gt_class: instance → NYU40 class"""
    masks, gt = np.asarray(masks, bool).reshape(-1, np.size(gt)), np.asarray(gt, np.int64).ravel()
    conf = np.asarray(conf, np.float64).ravel()
    if len(conf) != len(masks):
        raise ValueError(f"{len(conf)} confidences for {len(masks)} predicted objects")
    gt_ids, gt_count = np.unique(gt[gt > 0], return_counts=True)
    valid_class = np.array([gt_class.get(int(i), 0) not in excluded for i in gt_ids], bool)
    counted = gt_ids[valid_class]  # instances of evaluated classes (any size): matched_gt in ScanNet
    counted_size = gt_count[valid_class]
    evaluated = counted_size >= min_points
    void = ~np.isin(gt, counted)  # no instance, or one of an excluded class
    pred_count = masks.sum(axis=1)
    keep = pred_count >= min_points  # ScanNet skips smaller predictions
    masks, pred_count, conf = masks[keep], pred_count[keep], conf[keep]
    # intersections of every prediction with every counted ground truth instance
    gi = np.full(len(gt), len(counted))  # len(counted): void
    gi[~void] = np.searchsorted(counted, gt[~void])
    inter = np.stack([np.bincount(gi[m], minlength=len(counted) + 1) for m in masks]) if len(masks) else None
    inter = inter if inter is not None else np.zeros((0, len(counted) + 1), np.int64)
    void_inter, inter = inter[:, -1], inter[:, :-1]
    union = counted_size[None, :] + pred_count[:, None] - inter
    iou = np.where(inter > 0, inter / np.maximum(union, 1), 0.0)
    aps = {th: _ap(iou, inter, conf, pred_count, void_inter, evaluated, th) for th in OVERLAPS}
    main = [aps[th] for th in OVERLAPS if not np.isclose(th, 0.25)]
    return InstanceScores(
        ap=float(np.nanmean(main)),
        ap50=float(aps[OVERLAPS[0]]),
        ap25=float(aps[0.25]),
        gt_objects=int(evaluated.sum()),
        predictions=len(masks),
        per_overlap={round(th, 2): float(v) for th, v in aps.items()},
    )


def _ap(iou, inter, conf, pred_count, void_inter, evaluated, th) -> float:
    """One threshold's AP, ScanNet's evaluate_matches for one scene and one class."""
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
    has_gt, has_pred = bool(evaluated.any()), n_pred > 0
    if not has_gt:
        return float("nan")
    if not has_pred:
        return 0.0
    return _integrate(np.asarray(y_true, np.float64), np.asarray(y_score, np.float64), hard_fn)


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
