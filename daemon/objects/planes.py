"""The end of a scan: pieces of one large plane merged (a wall, the floor, the ceiling).

A wall is seen a part at a time, and its parts meet the map as objects of their own where a
region overlaps too little of the wall seen so far; they stay apart when no later region lies
across two of them. At the end, two objects whose voxels touch merge when both are planar
(their voxels' means spread off a plane by at most `plane_gap`, a standard deviation, and
along it by at least PLANE_SIZE), their planes are parallel (within PLANE_ANGLE) and one: the
centre of each lies within `plane_gap` of the other's plane. A picture or a door on a wall stands off it by its
thickness (4-6 cm), more than `plane_gap`. Pieces merge pairwise, the pairs touching most
first, and a merged pair goes on as one piece.
"""

from __future__ import annotations

import numpy as np

from regiond.geometry import voxel_centres, voxel_keys

PLANE_SIZE = 0.1  # metres: the spread along the plane (second largest axis' standard deviation)
PLANE_ANGLE = 10.0  # degrees between the two planes' normals
_NEIGHBOURS = np.eye(3)  # one way: each touching pair once (two voxels apart: a thing merged, rooms 3-6)


def merge_planes(omap) -> int:
    """Merge the map's touching coplanar pieces; returns how many merges it made."""
    c, v, table = omap.config, omap.voxels, omap.objects
    if c.plane_gap <= 0 or not c.associate or not len(v):
        return 0
    n = len(v)
    slots = np.flatnonzero((v.seen[:n] >= c.min_seen) & (v.owner[:n] > 0))
    if not len(slots):
        return 0
    owner = table.root(v.owner[slots].astype(np.int64))
    moments = _moments(owner, v.means(slots))
    merges = 0
    for a, b in _touching(v, slots, owner, c.voxel):
        ra, rb = (int(x) for x in table.root(np.array([a, b])))
        if ra == rb or ra not in moments or rb not in moments:
            continue
        if _coplanar(moments[ra], moments[rb], c.plane_gap) and table.merge(ra, rb):
            merges += 1
            kept = int(table.root(np.array([ra]))[0])
            moments[kept] = tuple(x + y for x, y in zip(moments.pop(ra), moments.pop(rb)))
    return merges


def _moments(owner: np.ndarray, means: np.ndarray) -> dict[int, tuple]:
    """Object → (voxels, sum of their means, sum of their outer products): planes of unions."""
    order = np.argsort(owner, kind="stable")
    ids, starts = np.unique(owner[order], return_index=True)
    p = means[order]
    sums = np.add.reduceat(p, starts, axis=0)
    outer = np.add.reduceat(p[:, :, None] * p[:, None, :], starts, axis=0)
    counts = np.diff(np.r_[starts, len(p)])
    return {int(i): (int(k), s, o) for i, k, s, o in zip(ids, counts, sums, outer)}


def _plane(m) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(centre, standard deviations along the axes, smallest first; the axes as columns)."""
    k, s, o = m
    centre = s / k
    w, axes = np.linalg.eigh(o / k - np.outer(centre, centre))
    return centre, np.sqrt(np.maximum(w, 0.0)), axes


def _coplanar(a, b, gap: float) -> bool:
    """Both pieces planar and wide, their planes parallel and one: each centre on the other's
    plane (a picture's centre stands off its wall by its thickness)."""
    if a[0] < 10 or b[0] < 10:
        return False
    (ca, sa, xa), (cb, sb, xb) = _plane(a), _plane(b)
    if max(sa[0], sb[0]) > gap or min(sa[1], sb[1]) < PLANE_SIZE:
        return False
    na, nb = xa[:, 0], xb[:, 0]
    if abs(float(na @ nb)) < np.cos(np.deg2rad(PLANE_ANGLE)):
        return False
    return abs(float(na @ (cb - ca))) <= gap and abs(float(nb @ (ca - cb))) <= gap


def _touching(v, slots: np.ndarray, owner: np.ndarray, voxel: float) -> list[tuple[int, int]]:
    """Pairs of objects (a < b) with voxels side by side, most touching first."""
    keys = v.keys[slots]
    centres = voxel_centres(keys, voxel).astype(np.float64)
    where = np.full(len(v), -1, np.int64)
    where[slots] = np.arange(len(slots))
    pairs = []
    for step in _NEIGHBOURS:
        near = v.lookup(voxel_keys(centres + step * voxel, voxel))
        ok = near >= 0
        j = where[near[ok]]
        good = j >= 0
        a, b = owner[ok][good], owner[j[good]]
        diff = a != b
        pairs.append(np.stack([np.minimum(a, b)[diff], np.maximum(a, b)[diff]], axis=1))
    both = np.concatenate(pairs)
    if not len(both):
        return []
    uniq, count = np.unique(both, axis=0, return_counts=True)
    return [tuple(int(x) for x in uniq[k]) for k in np.argsort(-count, kind="stable")]
