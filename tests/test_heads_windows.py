"""The activity window rules: frame-count windows and a live stream's time windows."""

from __future__ import annotations

import numpy as np
import pytest

from regiond.heads.windows import ActivityWindows, TimeWindows


def test_frame_windows_take_consecutive_frames_then_every_step():
    w = ActivityWindows(8, step=2)
    due = {i: w.push(i, f"r{i}") for i in range(12)}
    assert [i for i, c in due.items() if c] == [7, 9, 11]
    assert [i for i, _ in due[9]] == list(range(2, 10))


def test_time_windows_sample_irregular_frames_nearest_to_even_instants():
    w = TimeWindows(8, seconds=1.4, step=1)
    times = [0.0, 0.05, 0.3, 0.41, 0.9, 1.0, 1.38, 1.4]
    chosen = [w.push(i, t, f"r{i}") for i, t in enumerate(times)]
    assert chosen[:-1] == [None] * 7  # 1.4 s not yet covered
    got = [i for i, _ in chosen[-1]]
    targets = np.linspace(0.0, 1.4, 8)  # 0, .2, .4, .6, .8, 1.0, 1.2, 1.4
    assert got == [int(np.argmin([abs(t - x) for t in times])) for x in targets] == [0, 2, 3, 3, 4, 5, 6, 7]
    assert w.span == (0.0, 1.4)
    assert [r for _, r in chosen[-1]] == [f"r{i}" for i in got]


def test_time_windows_forget_frames_older_than_the_span():
    w = TimeWindows(8, seconds=1.0, step=1)
    for i in range(5000):  # 100 frames/s for 50 s: what is kept stays within the span
        chosen = w.push(i, i / 100, None)
    assert len(w._recent) <= 101
    assert chosen[0][0] == 4899 and chosen[-1][0] == 4999 and w.span == pytest.approx((48.99, 49.99))


@pytest.mark.parametrize("seconds", [0.0, -1.0, 61.0, float("nan")])
def test_time_windows_refuse_spans_out_of_range(seconds):
    with pytest.raises(ValueError):
        TimeWindows(8, seconds=seconds)
