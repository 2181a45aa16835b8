"""Frames whose pose disagrees with the map: left out so that they cannot smear objects.

Two signs, each against the recent accepted frames (a scan moves smoothly and sees mostly what
it saw a moment ago):
- its points land on mapped voxels far less often than the recent frames' did (the view moved
  off the room: depth and pose disagree);
- the camera jumped: it moved several times farther than the recent steps, and at least
  MIN_JUMP metres (a shift along a wall keeps the points on the wall, but not the camera path).
A frame is left out once; the frame after it is taken whatever it shows (two in a row are the
scene, not one bad pose), so a real jump costs one frame.
"""

from __future__ import annotations

import numpy as np

REASON = "pose disagrees with the map"
HISTORY = 5
HIT_DROP = 0.5  # a frame with under this share of the recent frames' hits on the map is off it
JUMP = 4.0  # a step this many times the recent median step is a jump ...
MIN_JUMP = 0.3  # ... when it is also at least this many metres


class PoseCheck:
    def __init__(self):
        self._hits: list[float] = []
        self._steps: list[float] = []
        self._last: np.ndarray | None = None  # camera position of the last accepted frame
        self._rejected_last = False

    def __call__(self, hit: float, pose: np.ndarray) -> str | None:
        """Why the frame is left out, or None (it is accepted and remembered)."""
        position = np.asarray(pose, np.float64)[:3, 3]
        step = float(np.linalg.norm(position - self._last)) if self._last is not None else 0.0
        why = None if self._rejected_last else self._why(hit, step)
        self._rejected_last = why is not None
        if why is None:
            self._hits = self._hits[-(HISTORY - 1) :] + [hit]
            if self._last is not None:
                self._steps = self._steps[-(HISTORY - 1) :] + [step]
            self._last = position
        return why

    def _why(self, hit: float, step: float) -> str | None:
        if len(self._hits) >= 3:
            typical = float(np.median(self._hits))
            if typical >= 0.3 and hit < HIT_DROP * typical:
                return (
                    f"{REASON}: {100 * hit:.0f}% of its points on mapped surfaces, recent frames' {100 * typical:.0f}%"
                )
        if len(self._steps) >= 3:
            usual = float(np.median(self._steps))
            if step >= MIN_JUMP and step > JUMP * usual:
                return f"{REASON}: the camera jumped {step:.2f} m, recent steps {usual:.2f} m"
        return None
