"""The end of a scan: final ids after merges, small or rarely seen objects dropped, and what
a user wants of each object (class by vote, centroid and box, points, frames, best view)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from regiond.core.runs import distinct
from regiond.geometry import voxel_centres
from regiond.objects.groups import best_per_group
from regiond.objects.map import ObjectMap
from regiond.objects.planes import merge_planes


@dataclass
class MapObject:
    """One object of the scene.

    label, label_score  class by the vote of its regions' labels (weighted by their voxels)
                        and the winning share of the vote; -1 and 0 without labels
    confidence          class-agnostic: the share of the frames it was in view in which a
                        region was assigned to it (ranks objects for instance AP)
    centroid, box       of its points: world metres, box [xmin, ymin, zmin, xmax, ymax, zmax]
    points              points of the fused cloud it holds
    frames              frames in which a region got it
    best_frame, best_box  the frame where its regions covered the most pixels, and their box
                        there [x0, y0, x1, y1] (pixels, x1/y1 exclusive)"""

    id: int
    label: int
    label_score: float
    confidence: float
    centroid: np.ndarray
    box: np.ndarray
    points: int
    frames: int
    best_frame: int
    best_box: np.ndarray

    def as_dict(self, names: dict[int, str] | None = None) -> dict:
        return {
            "id": self.id,
            "class": (names or {}).get(self.label, str(self.label)) if self.label >= 0 else None,
            "class_id": self.label if self.label >= 0 else None,
            "score": round(self.label_score, 4),
            "confidence": round(self.confidence, 4),
            "centroid": [round(float(v), 4) for v in self.centroid],
            "box": [round(float(v), 4) for v in self.box],
            "points": self.points,
            "frames": self.frames,
            "best_view": {"frame": self.best_frame, "box": [round(float(v), 1) for v in self.best_box]},
        }


@dataclass
class ObjectsResult:
    """objects    the kept objects, by id
    frame_ids  frame index → final object id of each of its regions (0: none)
    instances  object of each point of the cloud summarise() was given (0: none)
    final      any id the map handed out → its final id (0: dropped)"""

    objects: list[MapObject]
    frame_ids: dict[int, np.ndarray] = field(default_factory=dict)
    instances: np.ndarray | None = None
    dropped: int = 0
    final: np.ndarray | None = None

    def instances_of(self, omap: ObjectMap, points: np.ndarray) -> np.ndarray:
        """The final object of each of M×3 points (the map's voxels, then merges and drops)."""
        return self.final[omap.instance_of(points, omap.config.min_seen)]


def summarise(omap: ObjectMap, points: np.ndarray | None = None, labels: dict[int, np.ndarray] | None = None):
    """The map's objects over `points` (the fused cloud; None: the map's own voxel centres).
    labels: frame index → its regions' final classes (a scene head's refined ones), replacing
    the per-frame labels the map was given."""
    c, table = omap.config, omap.objects
    merge_planes(omap)
    if points is None:
        keys, _ = omap.voxels.items()
        points = voxel_centres(keys, c.voxel)
    points = np.asarray(points, np.float32).reshape(-1, 3)
    inst = omap.instance_of(points, c.min_seen)
    recs = omap.records
    n = table.count + 1
    rid = [table.root(r.ids.astype(np.int64)) for r in recs]
    frame_of = np.concatenate([np.full(len(r.ids), r.frame_index, np.int64) for r in recs]) if recs else np.zeros(0)
    roots = np.concatenate(rid) if recs else np.zeros(0, np.int64)
    seen = roots > 0
    frame_obj = distinct(frame_of[seen] * n + roots[seen])
    frames = np.bincount(frame_obj % n, minlength=n)
    npoints = np.bincount(inst, minlength=n)
    keep = (frames >= c.min_frames) & (npoints >= c.min_points)
    keep[0] = False
    final = np.where(keep, np.arange(n), 0)
    result = ObjectsResult([], {r.frame_index: final[x].astype(np.uint32) for r, x in zip(recs, rid)})
    result.final = final[table.root(np.arange(n))]
    result.instances = final[inst]
    result.dropped = int(((frames > 0) | (npoints > 0))[1:].sum() - keep.sum())
    kept = np.flatnonzero(keep)
    if not len(kept):
        return result
    cls, share = _vote(recs, rid, final, n, labels)
    best_frame, best_box = _best_views(recs, rid, final, n)
    order = np.argsort(result.instances, kind="stable")
    starts = np.searchsorted(result.instances[order], kept)
    for k, i in enumerate(kept):
        p = points[order[starts[k] : starts[k] + npoints[i]]]
        lo, hi = p.min(axis=0), p.max(axis=0)
        result.objects.append(
            MapObject(
                id=int(i),
                label=int(cls[i]),
                label_score=float(share[i]),
                confidence=float(min(1.0, frames[i] / max(int(table.in_view[i]), 1))),
                centroid=np.clip(p.mean(axis=0, dtype=np.float64), lo, hi),  # float32 rounding stays inside
                box=np.concatenate([lo, hi]).astype(np.float64),
                points=int(npoints[i]),
                frames=int(frames[i]),
                best_frame=int(best_frame[i]),
                best_box=best_box[i],
            )
        )
    return result


def _vote(recs, rid, final, n, labels) -> tuple[np.ndarray, np.ndarray]:
    """Per object: the class with the most region voxels, and its share of the labelled voxels."""
    obj, lab, w = [], [], []
    for r, roots in zip(recs, rid):
        lb = (labels or {}).get(r.frame_index, r.labels)
        if lb is None or len(lb) != len(roots):
            continue
        obj.append(final[roots])
        lab.append(np.asarray(lb, np.int64))
        w.append(r.weight.astype(np.float64))
    cls, share = np.full(n, -1, np.int64), np.zeros(n)
    if not obj:
        return cls, share
    obj, lab, w = np.concatenate(obj), np.concatenate(lab), np.concatenate(w)
    m = (obj > 0) & (lab >= 0)
    if not m.any():
        return cls, share
    width = int(lab[m].max()) + 1
    ol, wsum = np.unique(obj[m] * width + lab[m], return_inverse=True)
    weight = np.bincount(wsum, weights=w[m])
    o, lb = ol // width, ol % width
    total = np.bincount(o, weights=weight, minlength=n)
    best = best_per_group(o, weight)
    cls[o[best]] = lb[best]
    share[o[best]] = weight[best] / np.maximum(total[o[best]], 1e-12)
    return cls, share


def _best_views(recs, rid, final, n) -> tuple[np.ndarray, np.ndarray]:
    """Per object: the frame where its regions cover the most pixels, and their union box."""
    best_area = np.zeros(n, np.int64)
    best_frame = np.full(n, -1, np.int64)
    best_box = np.zeros((n, 4), np.float32)
    for r, roots in zip(recs, rid):
        f = final[roots]
        m = f > 0
        if not m.any():
            continue
        o = f[m]
        area = np.bincount(o, weights=r.area[m], minlength=n).astype(np.int64)
        better = np.flatnonzero(area > best_area)
        if not len(better):
            continue
        best_area[better] = area[better]
        best_frame[better] = r.frame_index
        b = r.boxes[m]
        for i in better:
            bi = b[o == i]
            best_box[i] = (bi[:, 0].min(), bi[:, 1].min(), bi[:, 2].max(), bi[:, 3].max())
    return best_frame, best_box
