"""Ground truth objects from a scene's instance maps (`instance-filt/`: ScanNet exports and the
generated rooms), on the points of a fused cloud and frame by frame in 2D.

On the cloud: the scene's frames are fused with their instance ids as labels (the same voxel
fusion as the scan's cloud; a frame's meta["depth_instances"], where it has one, gives the
instance of each depth pixel when the depth is not registered to the colour), and each point
of the cloud takes the instance of the nearest fused ground truth point (none beyond two
voxels). Each instance's class is the NYU40 label
most of its pixels carry over all frames.

In 2D (consistency): per frame, each ground truth object gets the predicted id covering most
of its pixels; an object's count is the number of distinct ids it got over the frames it
appears in (1 is perfect).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

from regiond.core.errors import InputError
from regiond.core.frames import Frame
from regiond.geometry import VoxelFusion
from regiond.objects.groups import best_per_group
from regiond.objects.instance_ap import EXCLUDED_CLASSES

#: a ground truth object counts in a frame when it covers at least this many pixels there
MIN_FRAME_PIXELS = 100


def instance_map(frame: Frame) -> np.ndarray:
    """The frame's instance map (H×W ints, 0 = none), checked against its image size."""
    inst = frame.meta.get("instances")
    where = frame.meta.get("source", "the scene")
    if inst is None:
        raise InputError("scene", f"{where}: frame {frame.index} has no instance map (instance-filt/)")
    inst = np.asarray(inst)
    if inst.ndim != 2 or not np.issubdtype(inst.dtype, np.integer):
        raise InputError("scene", f"{where}: frame {frame.index}'s instance map is not an H×W integer image")
    if inst.shape != np.shape(frame.depth if frame.depth is not None else frame.rgb)[:2]:
        raise InputError(
            "scene", f"{where}: frame {frame.index}'s instance map is {inst.shape}, its frame {frame.rgb.shape[:2]}"
        )
    return inst


@dataclass
class TruthFusion:
    """Accumulates a scene's ground truth objects frame by frame."""

    voxel: float = 0.02
    stride: int = 2
    fusion: VoxelFusion = None
    _pairs: dict = field(default_factory=dict)  # (instance, class) → pixels

    def __post_init__(self):
        self.fusion = VoxelFusion(self.voxel)

    def add(self, frame: Frame) -> np.ndarray:
        """Fuse one frame's instances; returns its instance map."""
        inst = instance_map(frame)
        if frame.labels is not None:
            lab = np.asarray(frame.labels).astype(np.int64)
            m = inst > 0
            key, n = np.unique(inst[m].astype(np.int64) * 4096 + lab[m], return_counts=True)
            for k, c in zip(key.tolist(), n.tolist()):
                self._pairs[k] = self._pairs.get(k, 0) + c
        # the true instance of each depth pixel where the depth camera is not registered to the
        # colour (a generated room seen through a sensor model): the cloud's points are the depth's
        on_depth = frame.meta.get("depth_instances")
        on_depth = inst if on_depth is None else np.asarray(on_depth)
        self.fusion.add_frame(frame, labels=on_depth.astype(np.int32), stride=self.stride)
        return inst

    def classes(self) -> dict[int, int]:
        """Instance → its majority NYU40 class (0 when the scene has no labels)."""
        best: dict[int, tuple[int, int]] = {}
        for k, n in self._pairs.items():
            i, c = divmod(k, 4096)
            if n > best.get(i, (-1, 0))[0]:
                best[i] = (n, c)
        return {i: c for i, (_, c) in best.items()}

    def on_points(self, points: np.ndarray) -> np.ndarray:
        """The ground truth instance of each of M×3 points (0: none within two voxels)."""
        from scipy.spatial import cKDTree

        cloud = self.fusion.cloud()
        out = np.zeros(len(points), np.int64)
        if not len(cloud) or cloud.labels is None or not len(points):
            return out
        dist, idx = cKDTree(cloud.points).query(np.asarray(points, np.float32), distance_upper_bound=2 * self.voxel)
        hit = np.isfinite(dist)
        out[hit] = cloud.labels[idx[hit]]
        return out


def fuse_truth(frames: Iterable[Frame], voxel: float = 0.02) -> TruthFusion:
    truth = TruthFusion(voxel)
    for f in frames:
        truth.add(f)
    return truth


class Consistency:
    """Distinct predicted ids per ground truth object over the frames (2D consistency)."""

    def __init__(self, excluded=EXCLUDED_CLASSES):
        self.excluded = excluded
        self._ids: dict[int, set] = {}
        self._frames: dict[int, int] = {}

    def add(self, truth: np.ndarray, pred: np.ndarray) -> None:
        """One frame: ground truth instance map and predicted object id map (0: none), same size."""
        truth, pred = np.asarray(truth).astype(np.int64), np.asarray(pred).astype(np.int64)
        if truth.shape != pred.shape:
            raise InputError("objects", f"a predicted id map of {pred.shape} for ground truth of {truth.shape}")
        m = truth > 0
        ids, n = np.unique(truth[m], return_counts=True)
        big = set(ids[n >= MIN_FRAME_PIXELS].tolist())
        m &= pred > 0
        pair, cnt = np.unique(truth[m] * (int(pred.max()) + 1) + pred[m], return_counts=True)
        t, p = pair // (int(pred.max()) + 1), pair % (int(pred.max()) + 1)
        first = best_per_group(t, cnt)
        for gt, pid in zip(t[first].tolist(), p[first].tolist()):
            if gt in big:
                self._ids.setdefault(gt, set()).add(pid)
                self._frames[gt] = self._frames.get(gt, 0) + 1

    def result(self, classes: dict[int, int] | None = None) -> dict:
        """Mean distinct ids over the ground truth objects of evaluated classes that got any."""
        counts = {g: len(s) for g, s in self._ids.items() if classes is None or classes.get(g, 0) not in self.excluded}
        return {
            "ids_per_object": float(np.mean(list(counts.values()))) if counts else float("nan"),
            "objects": len(counts),
            "per_object": {int(g): n for g, n in sorted(counts.items())},
        }
