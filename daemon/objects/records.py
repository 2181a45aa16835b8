"""What the object map keeps besides its voxels: the objects (merges, mean features, how often
they were in view) and, per frame, which object each region got.

Objects are numbered 1, 2, ... in the order they start; a merge keeps the older (smaller) id,
so the ids a client saw early stay valid, and `root` maps any id ever handed out to the one
that survives.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from regiond.core.regionset import RegionSet


class ObjectTable:
    def __init__(self, capacity: int = 256):
        self.count = 0  # ids 1..count handed out
        self._rep = np.zeros(capacity, np.int64)  # id → surviving id (0 → 0)
        self.in_view = np.zeros(capacity, np.int32)  # frames with the object's voxels in view
        self._feat: np.ndarray | None = None  # id × D summed unit features
        self._weight = np.zeros(capacity, np.float64)
        self.merges = 0

    def _grow(self, n: int) -> None:
        cap = len(self._rep)
        if n < cap:
            return
        new = max(2 * cap, n + 1)
        self._rep = np.concatenate([self._rep, np.zeros(new - cap, np.int64)])
        self.in_view = np.concatenate([self.in_view, np.zeros(new - cap, np.int32)])
        self._weight = np.concatenate([self._weight, np.zeros(new - cap)])
        if self._feat is not None:
            self._feat = np.concatenate([self._feat, np.zeros((new - cap, self._feat.shape[1]), np.float32)])

    def new(self, n: int) -> np.ndarray:
        """n fresh ids."""
        self._grow(self.count + n)
        ids = np.arange(self.count + 1, self.count + n + 1)
        self._rep[ids] = ids
        self.count += n
        return ids

    def root(self, ids) -> np.ndarray:
        return self._rep[np.asarray(ids, np.int64)]

    def merge(self, a: int, b: int) -> tuple[int, int] | None:
        """Merge the objects of ids a and b; (kept, merged) or None when they are one already."""
        a, b = int(self._rep[a]), int(self._rep[b])
        if a == b or not a or not b:
            return None
        keep, gone = min(a, b), max(a, b)
        n = self.count + 1
        self._rep[:n][self._rep[:n] == gone] = keep
        self.in_view[keep] = max(self.in_view[keep], self.in_view[gone])
        self._weight[keep] += self._weight[gone]
        if self._feat is not None:
            self._feat[keep] += self._feat[gone]
        self.merges += 1
        return keep, gone

    def saw(self, ids: np.ndarray) -> None:
        """These (surviving) objects had voxels in view in one more frame."""
        self.in_view[ids] += 1

    def add_features(self, ids: np.ndarray, features: np.ndarray, weights: np.ndarray) -> None:
        f = np.asarray(features, np.float32)
        if self._feat is None:
            self._feat = np.zeros((len(self._rep), f.shape[1]), np.float32)
        if f.shape[1] != self._feat.shape[1]:
            return  # another backbone mid-stream: features do not compare
        unit = f / np.maximum(np.linalg.norm(f, axis=1, keepdims=True), 1e-12)
        np.add.at(self._feat, ids, unit * weights[:, None].astype(np.float32))
        np.add.at(self._weight, ids, weights)

    def similarity(self, ids: np.ndarray, features: np.ndarray) -> np.ndarray:
        """Cosine similarity of each object's mean feature and a feature (0 without features)."""
        if self._feat is None or features.shape[1] != self._feat.shape[1]:
            return np.zeros(len(ids))
        m = self._feat[ids]
        m = m / np.maximum(np.linalg.norm(m, axis=1, keepdims=True), 1e-12)
        f = features / np.maximum(np.linalg.norm(features, axis=1, keepdims=True), 1e-12)
        return (m * f).sum(axis=1)

    def has_features(self) -> bool:
        return self._feat is not None

    def pair_similarity(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Cosine similarity of the mean features of objects a[i] and b[i]."""
        fa = self._feat[a]
        return self.similarity(b, fa) if len(a) else np.zeros(0)

    def nbytes(self) -> int:
        return (
            self._rep.nbytes
            + self.in_view.nbytes
            + self._weight.nbytes
            + (self._feat.nbytes if self._feat is not None else 0)
        )


@dataclass
class FrameRecord:
    """One frame's regions as the object map saw them: object ids (as handed out; roots are
    resolved at the end), weight (the region's voxels), area, 2D box, class (-1 unknown)."""

    frame_index: int
    ids: np.ndarray  # uint32
    weight: np.ndarray  # int32
    area: np.ndarray  # int32
    boxes: np.ndarray  # float32 N×4
    labels: np.ndarray | None  # int32

    @classmethod
    def of(cls, index: int, regions: RegionSet, ids: np.ndarray, weight: np.ndarray, labels) -> FrameRecord:
        return cls(
            int(index),
            ids.copy(),
            weight.astype(np.int32),
            np.asarray(regions.areas).astype(np.int32),
            np.asarray(regions.boxes, np.float32),
            None if labels is None else np.asarray(labels).astype(np.int32),
        )

    def nbytes(self) -> int:
        return sum(a.nbytes for a in (self.ids, self.weight, self.area, self.boxes) if a is not None) + (
            self.labels.nbytes if self.labels is not None else 0
        )
