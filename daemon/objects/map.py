"""The online object map: every region of an RGB-D stream assigned to a persistent 3D object.

Per frame with depth, intrinsics and a pose:
1. every `stride`-th pixel is back-projected (regiond.geometry.backproject) and given the
   region that owns it (pixels.py); a region's points split into segments where their depth
   jumps (a superpixel straddling an object and the wall behind it);
2. the frame's voxels are looked up in the voxel hash (voxels.py): O(the frame's voxels);
3. each segment joins the object owning most of its voxels when that holds at least `assign`
   of them, or when the segment holds at least `contain` of that object's voxels in view
   (a whole object seen after its parts); between `ambiguous` and `assign`, the features
   decide (cosine similarity of the region's pooled feature and the object's mean); otherwise
   it starts a new object. A region carried from a keyframe (regiond.masks.carry) keeps its
   keyframe region's object;
4. a segment holding most of the visible voxels of two objects merges them (parts of one
   thing: mutual containment, as OnlineAnySeg and ESAM merge);
5. each voxel votes for the object its points went to (a streaming majority vote).

What the frame's regions got is recorded (a few numbers per region) so that finish()
(summary.py) can give every frame its final ids after merges and describe every object.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from regiond.core.frames import Frame, check_pose
from regiond.core.regionset import RegionSet
from regiond.core.runs import counted, distinct, grouped, ordered
from regiond.geometry import backproject, voxel_keys
from regiond.objects import pose_check
from regiond.objects.config import ObjectConfig
from regiond.objects.groups import best_per_group
from regiond.objects.pixels import strided_owner
from regiond.objects.records import FrameRecord, ObjectTable
from regiond.objects.voxels import VoxelTable


@dataclass
class FrameObjects:
    """ids     N uint32 object per region (0: none)
    reason  why the frame's regions got no ids ("" when they did)"""

    frame_index: int
    ids: np.ndarray
    reason: str = ""
    seconds: float = 0.0

    @property
    def pose_rejected(self) -> bool:
        """The frame's pose disagrees with the map (its points would land in the wrong place)."""
        return self.reason.startswith(pose_check.REASON)


class ObjectMap:
    def __init__(self, config: ObjectConfig | None = None):
        self.config = config or ObjectConfig()
        self.voxels = VoxelTable()
        self.objects = ObjectTable()
        self.records: list[FrameRecord] = []
        self._key: tuple[int, np.ndarray] | None = None  # the last keyframe: (index, its region ids)
        self._pose = pose_check.PoseCheck() if self.config.check_pose else None
        self.frames = 0
        self.frames_skipped = 0

    # --- one frame -------------------------------------------------------------------------

    def add(self, frame: Frame, regions: RegionSet, labels: np.ndarray | None = None) -> FrameObjects:
        """Assign the frame's regions to objects. labels: the regions' classes (a scene head's,
        -1 unknown) to vote the objects' classes with."""
        t0 = time.perf_counter()
        self.frames += 1
        ids = np.zeros(len(regions), np.uint32)
        why = _unmappable(frame)
        if why is None:
            why = self._assign(frame, regions, ids, labels)
        if why:
            self.frames_skipped += 1
            self._key = None if _is_keyframe(regions) else self._key
        return FrameObjects(int(frame.index), ids, why or "", time.perf_counter() - t0)

    def _assign(self, frame: Frame, regions: RegionSet, ids: np.ndarray, labels) -> str | None:
        c = self.config
        stride = c.stride_for(regions.width)
        pts, valid = backproject(frame.depth, frame.camera, frame.pose, c.max_depth, stride=stride)
        owner = strided_owner(regions, stride).reshape(-1)
        if c.edge > 0:
            valid &= ~depth_edges(frame.depth, stride, c.edge)
        valid = valid.reshape(-1)
        points = np.compress(valid, pts.reshape(-1, 3), axis=0)  # (5 times as fast as [valid])
        owner = owner[valid]
        if not len(points):
            return "no valid depth"
        fkeys, finv, _ = grouped(voxel_keys(points, c.voxel))
        slots = self.voxels.lookup(fkeys)
        known = slots >= 0
        fobj = np.zeros(len(fkeys), np.int64)
        fobj[known] = self.objects.root(self.voxels.owner[slots[known]])
        if self._pose is not None:
            why = self._pose(float((fobj > 0).mean()), frame.pose, frame.depth, frame.camera, points)
            if why:
                return why

        # segments: each region's points, split where the depth jumps
        inside = owner >= 0
        if not inside.all():  # (a full cover, lite's, needs no copies)
            owner, points, finv = owner[inside], np.compress(inside, points, axis=0), finv[inside]
        seg, seg_region = _segments(owner, points, frame.pose, c.depth_gap)
        nseg, nf = len(seg_region), len(fkeys)
        pseg, pvox = _split(distinct(_pair(seg, finv, nf)), nf)
        seg_size = np.bincount(pseg, minlength=nseg)
        seg_points = np.bincount(seg, minlength=nseg)
        in_view = np.bincount(fobj, minlength=self.objects.count + 1)  # |F ∩ O|

        pobj = fobj[pvox]
        overlap = self._overlap(pseg, pobj)
        seg_obj = self._associate(regions, overlap, seg_size, seg_region, in_view)
        merges = self._merge(overlap, seg_size, seg_obj, in_view)
        if merges:
            seg_obj = self.objects.root(seg_obj)
        self._vote(fkeys, slots, fobj, finv, points, seg_obj[seg])
        self.objects.saw(np.flatnonzero(in_view[1:] >= c.min_voxels) + 1)

        # a region's object: its largest segment's
        first = best_per_group(seg_region, seg_points)
        ids[seg_region[first]] = seg_obj[first]
        self._inherit(regions, ids, seg_region)
        self._features(regions, ids, seg_region, seg_size)
        weight = np.bincount(seg_region, weights=seg_size, minlength=len(regions)).astype(np.int32)
        self.records.append(FrameRecord.of(frame.index, regions, ids, weight, labels))
        if _is_keyframe(regions):
            self._key = (int(frame.index), ids.copy())
        return None

    def _overlap(self, pseg, pobj) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        """(segment, object, voxels) of each segment's voxels in each mapped object, in order of
        segment then object (None: no association, or no segment on mapped voxels)."""
        m = pobj > 0
        if not m.any() or not self.config.associate:
            return None
        width = self.objects.count + 1
        so, cnt = counted(_pair(pseg[m], pobj[m], width))
        return *_split(so, width), cnt

    def _associate(self, regions, overlap, seg_size, seg_region, in_view) -> np.ndarray:
        """Each segment's object: an existing one by overlap (and features where the overlap is
        ambiguous), its keyframe region's when carried, else a new one (0: too small)."""
        c = self.config
        nseg = len(seg_region)
        seg_obj = np.zeros(nseg, np.int64)
        if overlap is not None:
            sseg, sobj, cnt = overlap
            best = best_per_group(sseg, cnt)
            s, o, n = sseg[best], sobj[best], cnt[best]
            a, b = n / seg_size[s], n / np.maximum(in_view[o], 1)
            take = (a >= c.assign) | ((b >= c.contain) & (in_view[o] >= c.min_voxels))
            maybe = ~take & (a >= c.ambiguous)
            if maybe.any() and regions.features is not None:
                sim = self.objects.similarity(o[maybe], regions.features[seg_region[s[maybe]]])
                take[np.flatnonzero(maybe)[sim >= c.similar]] = True
            seg_obj[s[take]] = o[take]
        carried = self._carried_objects(regions)
        if carried is not None:
            from_key = carried[seg_region]
            seg_obj = np.where(from_key > 0, from_key, seg_obj)
        new = (seg_obj == 0) & (seg_size >= c.min_voxels)
        if new.any():
            seg_obj[new] = self.objects.new(int(new.sum()))
        return seg_obj

    def _carried_objects(self, regions: RegionSet) -> np.ndarray | None:
        """Per region, the object of the keyframe region it was carried from (0: none)."""
        carry = regions.meta.get("carry") or {}
        origin = np.asarray(carry.get("origin", ()), np.int64)
        if carry.get("keyframe", True) or self._key is None or not len(origin):
            return None
        key_index, key_ids = self._key
        if int(carry.get("keyframe_index", -1)) != key_index:
            return None
        out = np.zeros(len(regions), np.int64)
        ok = origin < len(key_ids)
        out[: len(origin)][ok] = self.objects.root(key_ids[origin[ok]].astype(np.int64))
        return out

    def _inherit(self, regions: RegionSet, ids: np.ndarray, seg_region: np.ndarray) -> None:
        """Carried regions without a point at the map's stride still keep their keyframe's object."""
        carried = self._carried_objects(regions)
        if carried is not None:
            none = (ids == 0) & (carried > 0)
            ids[none] = carried[none]

    def _merge(self, overlap, seg_size, seg_obj, in_view) -> list[tuple[int, int]]:
        """Objects whose visible voxels a segment mostly holds are parts of the segment's object."""
        c = self.config
        if overlap is None:
            return []
        m = seg_obj[overlap[0]] > 0
        if not m.any():
            return []
        s, o, cnt = (a[m] for a in overlap)
        part = (
            (cnt >= c.merge * in_view[o])
            & (cnt >= c.merge_part * seg_size[s])
            & (in_view[o] >= c.min_voxels)
            & (o != seg_obj[s])
        )
        if c.merge_similar <= 1 and self.objects.has_features():
            # a segment lying across two objects whose features agree: parts of one thing
            # (voxels of it in each: slivers at the edges of whole masks are no evidence)
            own = np.zeros(len(seg_size), np.int64)
            mine = o == seg_obj[s]
            own[s[mine]] = cnt[mine]
            cand = ~part & ~mine & (cnt >= c.bridge * seg_size[s]) & (in_view[o] >= c.min_voxels)
            cand &= (cnt >= c.bridge_voxels) & (own[s] >= c.bridge_voxels)
            if cand.any():
                cand[cand] = self.objects.pair_similarity(seg_obj[s[cand]], o[cand]) >= c.merge_similar
            part |= cand
        merges = []
        for seg, obj in zip(s[part].tolist(), o[part].tolist()):
            kept = self.objects.merge(int(seg_obj[seg]), obj)
            if kept:
                merges.append(kept)
        return merges

    def _vote(self, fkeys, slots, fobj, vox_of, xyz, obj) -> None:
        """Each voxel votes once for the object most of its points in this frame went to (vox_of,
        xyz, obj: each point's voxel among the frame's, position and object)."""
        m = obj > 0
        if not m.any():
            return
        width = self.objects.count + 1
        vo, w, n = grouped(_pair(vox_of[m], obj[m], width))
        vox, ob = _split(vo, width)
        best = best_per_group(vox, n)
        vox, ob = vox[best], ob[best]
        at = np.full(len(obj), len(vo))  # the points of no object sum into one bin past the groups'
        at[m] = w
        sums = np.stack([np.bincount(at, weights=xyz[:, k], minlength=len(vo) + 1)[best] for k in range(3)]).T
        s = slots[vox]
        fresh = s < 0
        if fresh.any():
            s[fresh] = self.voxels.insert(fkeys[vox[fresh]])
        self.voxels.vote(s, ob.astype(np.int32), fobj[vox].astype(np.int32), sums, n[best].astype(np.float64))

    def _features(self, regions: RegionSet, ids: np.ndarray, seg_region, seg_size) -> None:
        if regions.features is None:
            return
        has = np.flatnonzero(ids > 0)
        if len(has):
            w = np.bincount(seg_region, weights=seg_size, minlength=len(regions))[has]
            self.objects.add_features(ids[has].astype(np.int64), regions.features[has], w)

    # --- what the map holds ----------------------------------------------------------------

    def instance_of(self, points: np.ndarray, min_seen: int = 1) -> np.ndarray:
        """M int64 object (survivor of merges; 0: none) of each of M×3 points: the owner of the
        voxel whose owner's points' mean is nearest, among the voxels around the point's own
        (finer than the voxels where objects meet); none beyond them, and voxels fewer than
        `min_seen` frames put points in count as empty."""
        from scipy.spatial import cKDTree

        pts = np.asarray(points, np.float64).reshape(-1, 3)
        out = np.zeros(len(pts), np.int64)
        ok = np.isfinite(pts).all(axis=1)
        v = self.voxels
        trusted = np.flatnonzero((v.seen[: len(v)] >= min_seen) & (v.owner[: len(v)] > 0))
        if not ok.any() or not len(trusted):
            return out
        dist, near = cKDTree(v.means(trusted)).query(pts[ok], distance_upper_bound=self.config.voxel)
        hit = np.isfinite(dist)
        got = np.zeros(int(ok.sum()), np.int64)
        got[hit] = self.objects.root(v.owner[trusted[near[hit]]])
        out[ok] = got
        return out

    def memory_bytes(self) -> int:
        """Approximate bytes held: voxel arrays and dict entries, object arrays, frame records."""
        return (
            self.voxels.nbytes()
            + 100 * len(self.voxels)
            + self.objects.nbytes()
            + sum(r.nbytes() for r in self.records)
        )


def _pair(a: np.ndarray, b: np.ndarray, n: int) -> np.ndarray:
    """One int64 per (a, b) with 0 <= b < n, ordered as the pairs are (bits, not a division to undo)."""
    return (a << int(n - 1).bit_length()) | b


def _split(ab: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """_pair's inverse."""
    bits = int(n - 1).bit_length()
    return ab >> bits, ab & ((1 << bits) - 1)


def _unmappable(frame: Frame) -> str | None:
    if frame.depth is None:
        return "no depth"
    if frame.camera is None:
        return "no intrinsics"
    if check_pose(frame.pose) is None:
        return "no pose"
    return None


def _is_keyframe(regions: RegionSet) -> bool:
    carry = regions.meta.get("carry")
    return not carry or bool(carry.get("keyframe", True))


def depth_edges(depth: np.ndarray, stride: int, gap: float) -> np.ndarray:
    """At every stride-th pixel each way, whether a neighbouring pixel's depth is more than `gap`
    of it nearer or farther: a depth edge, where a depth camera's readings mix the two sides
    (flying pixels) and its registration to the colour errs by a pixel or two."""
    d = np.asarray(depth, np.float32)
    h, w = d.shape
    r, c = np.arange(0, h, stride), np.arange(0, w, stride)
    here = d[np.ix_(r, c)]
    edge = np.zeros(here.shape, bool)
    for rr, cc in (
        (np.maximum(r - 1, 0), c),
        (np.minimum(r + 1, h - 1), c),
        (r, np.maximum(c - 1, 0)),
        (r, np.minimum(c + 1, w - 1)),
    ):
        there = d[np.ix_(rr, cc)]
        edge |= (there > 0) & (np.abs(there - here) > gap * here)
    return edge


def _segments(region: np.ndarray, points: np.ndarray, pose, gap: float) -> tuple[np.ndarray, np.ndarray]:
    """(segment of each point, region of each segment): each region's points in order of
    depth, cut where the depth jumps by more than `gap` of it (0: one segment a region)."""
    if not len(region):
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    if gap <= 0:
        regs, seg, _ = grouped(region)
        return seg, regs
    c2w = check_pose(pose)
    depth = (points - c2w[:3, 3]) @ c2w[:3, 2]  # along the optical axis
    mm = np.clip(depth * 1000.0, 0, (1 << 31) - 1).astype(np.int64)  # one int64 sort key: region, then depth
    key, order = ordered((region.astype(np.int64) << 32) | mm)
    r, d = key >> 32, depth[order]
    cut = np.empty(len(r), bool)
    cut[0] = True
    np.greater(np.diff(d), gap * d[1:], out=cut[1:])
    cut[1:] |= r[1:] != r[:-1]
    at = np.flatnonzero(cut)
    seg = np.empty(len(r), np.int64)
    seg[order] = np.repeat(np.arange(len(at)), np.diff(at, append=len(r)))
    return seg, r[at]
