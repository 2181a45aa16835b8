"""Scenes with a corrupt frame: strict by default (the source ends at that frame), and with
skip_bad_frames the frame is reported by index and reason and the others still come."""

from __future__ import annotations

import shutil

import pytest
from support_corrupt import sens_with_bad_frame

from regiond import scenes


def _strict_indices(source, match: str) -> list[int]:
    """The frame indices a strict source yields before it raises SourceError matching `match`."""
    got = []
    with pytest.raises(scenes.SourceError, match=match):
        for f in scenes.open_source(source):
            got.append(f.index)
    return got


@pytest.mark.parametrize("part", ["colour", "depth"])
def test_sens_corrupt_frame(tmp_path, part):
    path = sens_with_bad_frame(tmp_path / "x.sens", part)
    assert _strict_indices(path, "frame 1") == [0]
    src = scenes.open_source(path, skip_bad_frames=True)
    told = []
    src.on_skip = told.append
    assert [f.index for f in src] == [0, 2, 3]
    assert [s["frame"] for s in src.skipped] == [1] and told == src.skipped
    assert ("decode" if part == "colour" else "decompress") in src.skipped[0]["reason"]
    assert [f.index for f in src] == [0, 2, 3] and len(src.skipped) == 1  # a second pass starts afresh


def test_sens_truncated_inside_a_frame(tmp_path):
    path = sens_with_bad_frame(tmp_path / "x.sens", "depth", bad=-1)
    path.write_bytes(path.read_bytes()[:-300])  # the last frame is cut short
    src = scenes.open_source(path, skip_bad_frames=True)
    assert [f.index for f in src] == [0, 1, 2]
    assert src.skipped[0]["frame"] == 3 and "truncated" in src.skipped[0]["reason"]


def test_folder_truncated_image_and_missing_depth(sevenscenes_dir, tmp_path):
    d = tmp_path / "seven"
    d.mkdir()
    for n in (150, 151, 152, 153):
        for suffix in ("color.png", "depth.png", "pose.txt"):
            shutil.copy(sevenscenes_dir / f"frame-{n:06d}.{suffix}", d)
    if (sevenscenes_dir / "camera-intrinsics.txt").exists():
        shutil.copy(sevenscenes_dir / "camera-intrinsics.txt", d)
    colour = d / "frame-000151.color.png"
    colour.write_bytes(colour.read_bytes()[:200])  # truncated image
    (d / "frame-000153.depth.png").unlink()  # missing depth file
    assert _strict_indices(d, "frame-000151") == [150]
    src = scenes.open_source(d, skip_bad_frames=True)
    assert [f.index for f in src] == [150, 152]
    assert [s["frame"] for s in src.skipped] == [151, 153]
    assert "no depth file" in src.skipped[1]["reason"]
