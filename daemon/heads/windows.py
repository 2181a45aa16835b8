"""Which frames of a video stream an activity head scores: the window rule.

A window spans `span` consecutive frames (at least the head's `window`, the clip length it was
trained on) from which `window` frames are taken evenly, first and last included (as training
clips were sampled); a window is scored when the first `span` frames have arrived and then
every `step` frames.
"""

from __future__ import annotations

from collections import deque

from regiond.core.frames import evenly_spaced
from regiond.core.regionset import RegionSet


class ActivityWindows:
    """window  frames the head reads per window
    span    consecutive frames a window covers (default: window)
    step    frames between the starts of two scored windows"""

    def __init__(self, window: int, span: int | None = None, step: int = 4):
        if window < 1 or step < 1:
            raise ValueError(f"window and step must be at least 1, got {window}, {step}")
        self.window = window
        self.span = max(span or window, window)
        self.step = step
        self._recent: deque = deque(maxlen=self.span)  # (frame_index, RegionSet)
        self._since = 0
        self.scored = 0

    def push(self, index: int, regions: RegionSet) -> list[tuple[int, RegionSet]] | None:
        """Add a frame; returns the window's chosen (frame_index, RegionSet) when one is due."""
        self._recent.append((index, regions))
        self._since += 1
        if len(self._recent) < self.span or (self.scored and self._since < self.step):
            return None
        self._since = 0
        self.scored += 1
        frames = list(self._recent)
        return [frames[i] for i in evenly_spaced(len(frames), self.window)]

    @property
    def first_frame(self) -> int:
        """Frame index the current window starts at."""
        return self._recent[0][0]

    @property
    def last_frame(self) -> int:
        return self._recent[-1][0]

    def clear(self) -> None:
        self._recent.clear()
