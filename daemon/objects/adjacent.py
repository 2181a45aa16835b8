"""SegmentAnything3D's bidirectional adjacent-frame merge (Pointcept/SegmentAnything3D,
sam3d.py and util.py), re-implemented faithfully as the baseline of bench/objects.py.

Per frame, the masks are painted onto the back-projected points (the last mask painted wins;
SAM3D paints SAM's list in reverse, so the first mask wins) and the frame is voxelised (one
point per 5 cm voxel). Then, until one cloud is left, clouds are merged in pairs (0,1),
(2,3), ...: in each pair, every point of one cloud is matched to its nearest point of the
other within 1.5 voxels; an unlabelled matched point takes the other's group; a group takes
the other cloud's group it overlaps most when that overlap is at least half of the smaller of
the two groups; done both ways, then the two clouds are concatenated, renumbered and
voxelised again. Groups under 50 points are dropped before each pair's matching and at the
end. The groups are carried to the scene's points by their nearest neighbour (none beyond
0.6 m). It is offline: every frame is kept until the end.
"""

from __future__ import annotations

import numpy as np

from regiond.core.frames import Frame, check_pose
from regiond.core.regionset import RegionSet
from regiond.geometry import backproject
from regiond.objects.config import ObjectConfig
from regiond.objects.groups import best_per_group
from regiond.objects.pixels import strided_owner

VOXEL = 0.05  # SAM3D's --voxel_size
SMALL_GROUP = 50  # --th: groups under this many points are noise
RATIO = 0.5  # cal_group's overlap ratio
MAX_DISTANCE = 0.6  # metres: scene points farther from every merged point get no group


def _natural(group: np.ndarray) -> np.ndarray:
    """num_to_natural: ids renumbered 0..K-1 in increasing order, -1 kept."""
    out = np.full(len(group), -1, np.int64)
    m = group != -1
    if m.any():
        out[m] = np.unique(group[m], return_inverse=True)[1]
    return out


def _drop_small(group: np.ndarray, th: int = SMALL_GROUP) -> np.ndarray:
    """remove_small_group: groups under th points become -1 (-1 counts as a group too)."""
    ids, inv, counts = np.unique(group, return_inverse=True, return_counts=True)
    return np.where(counts[inv] < th, -1, group)


def _voxelise(cloud: dict, voxel: float = VOXEL) -> dict:
    """Voxelize (train mode): the first point of each voxel."""
    coord = np.floor(cloud["coord"] / voxel).astype(np.int64)
    coord -= coord.min(axis=0)
    span = coord.max(axis=0) + 1
    key = (coord[:, 0] * span[1] + coord[:, 1]) * span[2] + coord[:, 2]
    _, first = np.unique(key, return_index=True)
    first.sort()
    return {k: v[first] for k, v in cloud.items()}


def _cal_group(g0: np.ndarray, g1: np.ndarray, i1: np.ndarray, j0: np.ndarray) -> np.ndarray:
    """cal_group: cloud 1's groups after matching its points i1 to cloud 0's points j0."""
    g1 = g1.copy()
    g1[g1 != -1] += g0.max() + 1
    ids1, n1 = np.unique(g1, return_counts=True)
    ids0, n0 = np.unique(g0, return_counts=True)
    a, b = g1[i1], g0[j0]
    free = a == -1
    g1[i1[free]] = b[free]  # an unlabelled point takes the other cloud's group
    both = ~free & (b != -1)
    if not both.any():
        return g1
    a, b = a[both], b[both]
    pair, first, count = np.unique(a * (g0.max() + 1) + b, return_index=True, return_counts=True)
    ga, gb = pair // (g0.max() + 1), pair % (g0.max() + 1)
    # per group of cloud 1: its most overlapping group of cloud 0 (ties: the first matched)
    best = best_per_group(ga, count, tie=first)
    size1 = n1[np.searchsorted(ids1, ga[best])]
    size0 = n0[np.searchsorted(ids0, gb[best])]
    take = count[best] / np.minimum(size0, size1) >= RATIO
    relabel = dict(zip(ga[best][take].tolist(), gb[best][take].tolist()))
    if relabel:
        src = np.fromiter(relabel.keys(), np.int64, len(relabel))
        dst = np.fromiter(relabel.values(), np.int64, len(relabel))
        order = np.argsort(src)
        src, dst = src[order], dst[order]
        pos = np.searchsorted(src, g1)
        hit = (pos < len(src)) & (src[np.minimum(pos, len(src) - 1)] == g1)
        g1 = np.where(hit, dst[np.minimum(pos, len(src) - 1)], g1)
    return g1


def _nearest(src: np.ndarray, dst: np.ndarray, within: float) -> tuple[np.ndarray, np.ndarray]:
    """(i, j): each point i of src whose nearest point j of dst is closer than `within`."""
    from scipy.spatial import cKDTree

    dist, j = cKDTree(dst).query(src, distance_upper_bound=within)
    i = np.flatnonzero(np.isfinite(dist))
    return i, j[i]


def merge_pair(c0: dict, c1: dict, voxel: float = VOXEL) -> dict:
    """cal_2_scenes: two clouds merged into one."""
    c0["group"] = _drop_small(c0["group"])
    c1["group"] = _drop_small(c1["group"])
    i1, j0 = _nearest(c1["coord"], c0["coord"], 1.5 * voxel)
    g1 = _cal_group(c0["group"], c1["group"], i1, j0)
    i0, j1 = _nearest(c0["coord"], c1["coord"], 1.5 * voxel)
    g0 = _cal_group(g1, c0["group"], i0, j1)
    merged = {
        "coord": np.concatenate([c0["coord"], c1["coord"]]),
        "group": _natural(np.concatenate([g0, g1])),
    }
    return _voxelise(merged, voxel)


class AdjacentMerge:
    """SAM3D's merge over a stream's frames (same regions and points as the object map)."""

    def __init__(self, stride: int = ObjectConfig.stride, voxel: float = VOXEL, max_depth: float = 10.0):
        self.stride, self.voxel, self.max_depth = stride, voxel, max_depth
        self.clouds: list[dict] = []

    def add(self, frame: Frame, regions: RegionSet) -> None:
        if frame.depth is None or frame.camera is None or check_pose(frame.pose) is None:
            return
        stride = ObjectConfig(stride=self.stride).stride_for(regions.width)  # the object map's points
        pts, valid = backproject(frame.depth, frame.camera, frame.pose, self.max_depth, stride=stride)
        owner = strided_owner(regions, stride, priority=-np.arange(len(regions))).reshape(-1)  # first wins
        valid = valid.reshape(-1)
        coord = pts.reshape(-1, 3)[valid].astype(np.float64)
        if not len(coord):
            return
        self.clouds.append(_voxelise({"coord": coord, "group": _natural(owner[valid].astype(np.int64))}, self.voxel))

    def groups(self) -> dict:
        """The merged cloud: {"coord": M×3, "group": M (-1: none)}."""
        clouds = list(self.clouds)
        if not clouds:
            return {"coord": np.zeros((0, 3)), "group": np.zeros(0, np.int64)}
        while len(clouds) > 1:
            clouds = [
                merge_pair(clouds[k], clouds[k + 1], self.voxel) if k + 1 < len(clouds) else clouds[k]
                for k in range(0, len(clouds), 2)
            ]
        out = clouds[0]
        out["group"] = _natural(_drop_small(out["group"]))
        return out

    def instance_of(self, points: np.ndarray) -> np.ndarray:
        """Object (group + 1; 0: none) of each of M×3 scene points by its nearest merged point."""
        merged = self.groups()
        out = np.zeros(len(points), np.int64)
        if not len(merged["coord"]):
            return out
        from scipy.spatial import cKDTree

        dist, j = cKDTree(merged["coord"]).query(np.asarray(points, np.float64))
        near = dist <= MAX_DISTANCE
        out[near] = merged["group"][j[near]] + 1
        return out
