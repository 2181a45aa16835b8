"""Which frames of a video stream an activity head scores: the window rules.

A window spans `span` consecutive frames (at least the head's `window`, the clip length it was
trained on) from which `window` frames are taken evenly, first and last included (as training
clips were sampled); a window is scored when the first `span` frames have arrived and then
every `step` frames. A live stream's windows are defined in time instead (TimeWindows).
"""

from __future__ import annotations

from collections import deque

import numpy as np

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

    def clear(self) -> None:
        self._recent.clear()


#: a live stream's window without VideoOptions.window_seconds, and the longest one accepted
DEFAULT_WINDOW_SECONDS = 2.0
MAX_WINDOW_SECONDS = 60.0
_KEPT = 1024  # processed frames a live window may hold at most (memory stays bounded)


class TimeWindows:
    """Activity windows of a live stream, defined in time: frames are processed as they can
    be (the newest wins), so a count of frames says nothing about how much of the scene a
    window saw.

    A window spans `seconds` on the stream's clock and ends at the newest processed frame; the
    head gets `window` frames sampled evenly in time from the frames processed in that span
    (for each of `window` evenly spaced instants from the span's start to its end, the
    processed frame nearest to it; a frame may serve two instants when fewer were processed).
    The first window is due once the stream has run for `seconds`, then every `step` processed
    frames."""

    def __init__(self, window: int, seconds: float, step: int = 4):
        if window < 1 or step < 1 or not 0 < seconds <= MAX_WINDOW_SECONDS:
            raise ValueError(f"window, step and seconds out of range: {window}, {step}, {seconds}")
        self.window = window
        self.seconds = float(seconds)
        self.step = step
        self._recent: deque = deque(maxlen=_KEPT)  # (time, frame_index, RegionSet), oldest first
        self._start: float | None = None
        self._since = 0
        self.scored = 0
        self.span: tuple[float, float] = (0.0, 0.0)  # the last window's first and last frame times

    def push(self, index: int, time: float, regions: RegionSet) -> list[tuple[int, RegionSet]] | None:
        """Add a processed frame at `time` seconds; returns the window's chosen
        (frame_index, RegionSet) when one is due (`span` then holds its times)."""
        if self._start is None:
            self._start = time
        self._recent.append((time, index, regions))
        while self._recent and self._recent[0][0] < time - self.seconds:
            self._recent.popleft()
        self._since += 1
        if time - self._start < self.seconds * (1 - 1e-9) or (self.scored and self._since < self.step):
            return None
        self._since = 0
        self.scored += 1
        frames = sorted(self._recent, key=lambda f: f[0])
        times = np.array([f[0] for f in frames])
        targets = np.linspace(time - self.seconds, time, self.window)
        at = np.zeros(self.window, np.intp)
        if len(times) > 1:  # the nearer of the two frames around each instant (ties: the earlier)
            at = np.clip(np.searchsorted(times, targets), 1, len(times) - 1)
            at = np.where(np.abs(times[at - 1] - targets) <= np.abs(times[at] - targets), at - 1, at)
        chosen = [frames[k] for k in at]
        self.span = (chosen[0][0], chosen[-1][0])
        return [(i, r) for _, i, r in chosen]

    def clear(self) -> None:
        self._recent.clear()
