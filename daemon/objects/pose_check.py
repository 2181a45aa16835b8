"""Frames whose pose disagrees with the map: left out so that they cannot smear objects.

Three signs, each against the recent accepted frames (a scan moves smoothly and sees mostly
what it saw a moment ago):
- its points land on mapped voxels far less often than the recent frames' did (the view moved
  off the room: depth and pose disagree);
- its depth sees through the last accepted frame's surfaces: those points, projected with the
  frame's pose, lie in front of what its depth measures there, for a larger share of them than
  for the recent frames (a wrong rotation about the camera centre, a roll facing a wall
  included: the wall's points stay on the wall, but the things before it and the floor do not);
- the camera jumped: it moved several times farther than the recent steps, and at least
  MIN_JUMP metres (a shift along a wall keeps the points on the wall, but not the camera path).
A frame is left out once; the frame after it is taken whatever it shows (two in a row are the
scene, not one bad pose), so a real jump costs one frame.
"""

from __future__ import annotations

import numpy as np

from regiond.geometry import project

REASON = "pose disagrees with the map"
HISTORY = 5
HIT_DROP = 0.5  # a frame with under this share of the recent frames' hits on the map is off it
JUMP = 4.0  # a step this many times the recent median step is a jump ...
MIN_JUMP = 0.3  # ... when it is also at least this many metres
CLOUD = 3000  # points of the last accepted frame kept to check the next frame's depth against
MISS = 0.015  # a frame seeing through more of the last frame's surfaces than this share ...
MISS_RISE = 3.0  # ... and this many times the recent frames' share is placed wrong
AGREE_TOL = 0.05  # a depth within this share (plus 2 cm) of a point's is the same surface


class PoseCheck:
    def __init__(self):
        self._hits: list[float] = []
        self._steps: list[float] = []
        self._last: np.ndarray | None = None  # camera position of the last accepted frame
        self._rejected_last = False
        self._misses: list[float] = []  # the recent frames' share of points seen behind
        self._cloud: np.ndarray | None = None  # the last accepted frame's points (world, at most CLOUD)

    def __call__(self, hit: float, pose: np.ndarray, depth=None, camera=None, points=None) -> str | None:
        """Why the frame is left out, or None (it is accepted and remembered). hit: the share of
        its voxels already mapped; depth, camera, points: its depth image, intrinsics and world
        points (the depth check; without them, only the other two)."""
        position = np.asarray(pose, np.float64)[:3, 3]
        step = float(np.linalg.norm(position - self._last)) if self._last is not None else 0.0
        agree = self.agreement(depth, camera, pose)
        why = None if self._rejected_last else self._why(hit, step, agree)
        self._rejected_last = why is not None
        if why is None:
            self._hits = self._hits[-(HISTORY - 1) :] + [hit]
            if self._last is not None:
                self._steps = self._steps[-(HISTORY - 1) :] + [step]
            self._last = position
            if agree is not None:
                self._misses = self._misses[-(HISTORY - 1) :] + [1.0 - agree]
            if points is not None and len(points):
                self._cloud = points[:: max(1, len(points) // CLOUD)].copy()  # not a view of the frame
        return why

    def agreement(self, depth, camera, pose) -> float | None:
        """The share of the last accepted frame's points in view that this frame's depth sees
        where they are rather than behind them (None: too few in view to say)."""
        if self._cloud is None or depth is None:
            return None
        d = np.asarray(depth, np.float32)
        h, w = d.shape
        uv, z = project(self._cloud, camera, pose)
        u = np.floor((uv[:, 0] + 0.5) * w / camera.width).astype(np.int64)
        v = np.floor((uv[:, 1] + 0.5) * h / camera.height).astype(np.int64)
        ok = (z > 0.1) & (u >= 0) & (u < w) & (v >= 0) & (v < h)
        seen = d.reshape(-1).take(np.compress(ok, v * w + u))  # (a third of d[v[ok], u[ok]]'s time)
        z = z[ok][seen > 0]
        seen = seen[seen > 0]
        tol = AGREE_TOL * z + 0.02
        agree = np.abs(seen - z) <= tol
        behind = seen > z + tol  # free space where a surface was: a wrong pose (or a thing moved)
        n = int(agree.sum() + behind.sum())
        return float(agree.sum() / n) if n >= 50 else None

    def _why(self, hit: float, step: float, agree: float | None) -> str | None:
        if len(self._hits) >= 3:
            typical = _median(self._hits)
            if typical >= 0.3 and hit < HIT_DROP * typical:
                return (
                    f"{REASON}: {100 * hit:.0f}% of its points on mapped surfaces, recent frames' {100 * typical:.0f}%"
                )
        if agree is not None and len(self._misses) >= 3:
            usual = _median(self._misses)
            if 1 - agree > max(MISS, MISS_RISE * usual):
                return (
                    f"{REASON}: it sees through {100 * (1 - agree):.1f}% of the last frame's surfaces, "
                    f"recent frames {100 * usual:.1f}%"
                )
        if len(self._steps) >= 3:
            usual = _median(self._steps)
            if step >= MIN_JUMP and step > JUMP * usual:
                return f"{REASON}: the camera jumped {step:.2f} m, recent steps {usual:.2f} m"
        return None


def _median(values: list[float]) -> float:
    """np.median of a few floats, without its overheads (three a frame)."""
    s, k = sorted(values), len(values) // 2
    return s[k] if len(s) % 2 else (s[k - 1] + s[k]) / 2
