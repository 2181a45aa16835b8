"""Video files and cameras through OpenCV."""

from __future__ import annotations

import numpy as np
import pytest

from regiond import scenes


def test_mp4_frames_and_times(video_path):
    src = scenes.open_source(video_path)
    d = src.describe()
    assert d["kind"] == "video" and len(src) == 300 and d["size"] == [340, 256] and d["fps"] == 30
    frames = list(scenes.open_source(video_path, count=8))
    assert [f.index for f in frames] == [0, 43, 85, 128, 171, 214, 256, 299]
    assert all(f.rgb.shape == (256, 340, 3) and f.depth is None and f.pose is None for f in frames)
    assert frames[1].time == pytest.approx(43 / 30)
    # the frames skipped by grab() are the frames a full decode sees
    full = [f for f in scenes.open_source(video_path, max_frames=44)]
    np.testing.assert_array_equal(full[43].rgb, frames[1].rgb)


def test_avi_every_and_size(avi_path):
    src = scenes.open_source(avi_path, every=40, size=(160, 120))
    frames = list(src)
    assert len(src) == len(frames) == 5 and [f.index for f in frames] == [0, 40, 80, 120, 160]
    assert frames[0].rgb.shape == (120, 160, 3)


def test_bad_videos(tmp_path):
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"not a video at all" * 10)
    with pytest.raises(scenes.SourceError, match="broken.mp4"):
        scenes.open_source(bad)
    with pytest.raises(scenes.SourceError, match="no such video"):
        from regiond.scenes.video import VideoSource

        VideoSource(tmp_path / "missing.mp4")


def test_missing_camera():
    with pytest.raises(scenes.SourceError, match="camera:97"):
        scenes.open_source("camera:97")
