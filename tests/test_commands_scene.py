"""`regiond scene info|fuse` and `regiond synth scene|clips`, run in-process."""

from __future__ import annotations

import json

import numpy as np
import pytest

from regiond import scenes
from regiond.cli import main
from regiond.geometry import read_ply


def test_scene_info_json(sevenscenes_dir, capsys):
    assert main(["scene", "info", str(sevenscenes_dir), "--every", "5", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["frames_selected"] == 4 and info["scanned_frames"] == 4
    assert info["camera"]["fx"] == 585 and info["frames_without_pose"] == []
    lo, hi = info["depth_range_m"]
    assert 0.3 < lo < hi < 5


def test_scene_info_reports_frames_without_pose(tmp_path, capsys):
    from regiond.core.frames import Camera
    from regiond.scenes.sens_writer import SensWriter

    cam = Camera(20, 20, 7.5, 5.5, 16, 12)
    with SensWriter(tmp_path / "p.sens", (16, 12), (16, 12), cam, cam) as w:
        for k in range(3):
            w.add(
                np.zeros((12, 16, 3), np.uint8), np.full((12, 16), 1500 + k, np.uint16), None if k == 1 else np.eye(4)
            )
    assert main(["scene", "info", str(tmp_path / "p.sens"), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["frames_without_pose"] == [1] and info["depth_range_m"] == [1.5, 1.502]


def test_scene_fuse_synthetic_with_labels(tmp_path, capsys):
    out = tmp_path / "cloud.ply"
    assert (
        main(
            [
                "scene",
                "fuse",
                "synthetic:2",
                "--source-opt",
                "frames=30",
                "--source-opt",
                "width=96",
                "--source-opt",
                "height=72",
                "--max-frames",
                "4",
                "--voxel",
                "0.05",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    assert "points" in capsys.readouterr().out
    cloud = read_ply(out)
    assert len(cloud) > 500 and cloud.labels is not None
    assert set(np.unique(cloud.labels)) >= {1, 2}
    src = scenes.open_source("synthetic:2", frames=30, width=96, height=72)
    room = src.scene.room
    assert (cloud.points[:, 2] > -0.06).all() and (cloud.points[:, 2] < room.height + 0.06).all()


def test_synth_scene_folder_and_sens(tmp_path, capsys):
    assert (
        main(
            [
                "synth",
                "scene",
                "--seed",
                "3",
                "--frames",
                "2",
                "--width",
                "64",
                "--height",
                "48",
                "--out",
                str(tmp_path / "s"),
            ]
        )
        == 0
    )
    assert "2 frames 64x48" in capsys.readouterr().out
    assert len(scenes.open_source(tmp_path / "s")) == 2
    assert (
        main(
            [
                "synth",
                "scene",
                "--seed",
                "3",
                "--frames",
                "2",
                "--width",
                "64",
                "--height",
                "48",
                "--out",
                str(tmp_path),
                "--format",
                "sens",
            ]
        )
        == 0
    )
    assert len(scenes.open_source(tmp_path / "scene_0003.sens")) == 2


def test_synth_clips(tmp_path, capsys):
    assert (
        main(
            [
                "synth",
                "clips",
                "--per-class",
                "1",
                "--frames",
                "8",
                "--width",
                "64",
                "--height",
                "48",
                "--out",
                str(tmp_path),
                "--format",
                "avi",
            ]
        )
        == 0
    )
    lines = (tmp_path / "labels.csv").read_text().splitlines()
    assert len(lines) == 1 + 9 and lines[1].split(",")[0].endswith(".avi")


@pytest.mark.parametrize(
    "argv, message",
    [
        (["scene", "info", "/no/such/scene"], "no such file"),
        (["scene", "fuse", "synthetic:1", "--out", "x.txt"], ".ply"),
        (["scene", "info", "synthetic:1", "--every", "0"], "every"),
        (["scene", "info", "synthetic:1", "--source-opt", "colour=red"], "options"),
        (["synth", "scene", "--seed", "-2", "--out", "x"], "seed"),
        (["synth", "clips", "--per-class", "0", "--out", "x"], "per_class"),
    ],
)
def test_bad_arguments_exit_1_with_a_message(argv, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 1
    assert message in capsys.readouterr().err


def test_fuse_of_a_video_says_why_nothing_was_fused(video_path, tmp_path, capsys):
    assert main(["scene", "fuse", str(video_path), "--max-frames", "2", "--out", str(tmp_path / "v.ply")]) == 1
    assert "no frame had depth" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv",
    [["scene", "info", "synthetic:1", "--source-opt", "frames"], ["scene", "info", "synthetic:1", "--size", "64by48"]],
)
def test_malformed_options_are_usage_errors(argv, capsys):
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2 and "invalid" in capsys.readouterr().err
