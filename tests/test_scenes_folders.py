"""7-Scenes folders, ScanNet exported folders, sampling and resampling."""

from __future__ import annotations

import shutil

import cv2
import numpy as np
import pytest

from regiond import scenes
from regiond.core.errors import InputError
from regiond.core.frames import Camera


def test_sevenscenes_frames(sevenscenes_dir):
    src = scenes.open_source(sevenscenes_dir)
    d = src.describe()
    assert d["kind"] == "7scenes-folder" and len(src) == 20 and d["size"] == [640, 480]
    f = next(iter(src))
    assert f.index == 150 and f.rgb.shape == (480, 640, 3) and f.rgb.dtype == np.uint8
    assert f.camera == Camera(585, 585, 320, 240, 640, 480)
    np.testing.assert_allclose(f.pose, np.loadtxt(sevenscenes_dir / "frame-000150.pose.txt"))
    raw = cv2.imread(str(sevenscenes_dir / "frame-000150.depth.png"), cv2.IMREAD_UNCHANGED)
    np.testing.assert_array_equal(f.depth, np.where(raw == 65535, 0, raw).astype(np.float32) / np.float32(1000))
    assert f.time == pytest.approx(150 / 30)


def test_sampling_options(sevenscenes_dir):
    assert [f.index for f in scenes.open_source(sevenscenes_dir, every=5)] == [150, 155, 160, 165]
    assert [f.index for f in scenes.open_source(sevenscenes_dir, count=3)] == [150, 160, 169]
    assert [f.index for f in scenes.open_source(sevenscenes_dir, every=2, max_frames=2)] == [150, 152]
    src = scenes.open_source(sevenscenes_dir, max_frames=1, size=(320, 240))
    f = next(iter(src))
    assert f.rgb.shape == (240, 320, 3) and f.depth.shape == (240, 320)
    assert f.camera == Camera(585, 585, 320, 240, 640, 480).scaled(320, 240)
    assert f.camera.fx == pytest.approx(292.5) and f.camera.cx == pytest.approx(159.75)  # (320 + 0.5)/2 − 0.5
    assert f.camera.fy == pytest.approx(292.5) and f.camera.cy == pytest.approx(119.75)  # (240 + 0.5)/2 − 0.5
    assert src.describe()["resampled_to"] == [320, 240]


@pytest.mark.parametrize(
    "kw, field",
    [
        (dict(every=0), "every"),
        (dict(count=0), "count"),
        (dict(max_frames=-1), "max_frames"),
        (dict(size=(0, 10)), "size"),
        (dict(size=(10,)), "size"),
        (dict(every=1.5), "every"),
    ],
)
def test_bad_sampling(sevenscenes_dir, kw, field):
    with pytest.raises(InputError) as e:
        scenes.open_source(sevenscenes_dir, **kw)
    assert e.value.field == field


def _copy_frames(src_dir, dst, numbers):
    dst.mkdir(parents=True, exist_ok=True)
    for n in numbers:
        for kind in ("color.png", "depth.png", "pose.txt"):
            shutil.copy(src_dir / f"frame-{n:06d}.{kind}", dst / f"frame-{n:06d}.{kind}")
    return dst


def test_sevenscenes_without_intrinsics_uses_the_published_values(sevenscenes_dir, tmp_path):
    d = _copy_frames(sevenscenes_dir, tmp_path / "s", [150, 151])
    src = scenes.open_source(d)
    assert "default" in src.describe()["intrinsics_from"]
    assert src.describe()["camera"]["fx"] == 585


def test_sevenscenes_colour_of_another_size_is_resampled(sevenscenes_dir, tmp_path):
    d = _copy_frames(sevenscenes_dir, tmp_path / "s", [150])
    shutil.copy(sevenscenes_dir / "camera-intrinsics.txt", d)
    big = cv2.imread(str(d / "frame-000150.color.png"))
    cv2.imwrite(str(d / "frame-000150.color.png"), cv2.resize(big, (1280, 960)))
    f = next(iter(scenes.open_source(d)))
    assert f.rgb.shape == (480, 640, 3) and f.camera.width == 640
    assert np.abs(f.rgb.astype(int) - big[:, :, ::-1]).mean() < 3


def test_sevenscenes_bad_folders(sevenscenes_dir, tmp_path):
    (tmp_path / "seq-01").mkdir()
    (tmp_path / "seq-01" / "frame-000000.depth.png").touch()
    with pytest.raises(scenes.SourceError, match="seq-01"):
        scenes.open_source(tmp_path)
    d = _copy_frames(sevenscenes_dir, tmp_path / "nocolor", [150])
    (d / "frame-000150.color.png").unlink()
    with pytest.raises(scenes.SourceError, match="no colour"):
        scenes.open_source(d)
    d = _copy_frames(sevenscenes_dir, tmp_path / "badpose", [150, 151])
    (d / "frame-000151.pose.txt").write_text("1 2 3\n")
    got = []
    with pytest.raises(scenes.SourceError, match="frame-000151.pose.txt"):
        for f in scenes.open_source(d):
            got.append(f.index)
    assert got == [150]
    d = _copy_frames(sevenscenes_dir, tmp_path / "nanK", [150])
    (d / "camera-intrinsics.txt").write_text("nan 0 320\n0 585 240\n0 0 1\n")
    with pytest.raises(scenes.SourceError, match="camera-intrinsics"):
        scenes.open_source(d)
    d = _copy_frames(sevenscenes_dir, tmp_path / "baddepth", [150])
    cv2.imwrite(str(d / "frame-000150.depth.png"), np.zeros((480, 640, 3), np.uint8))
    with pytest.raises(scenes.SourceError, match="16-bit"):
        list(scenes.open_source(d))


def _scannet_folder(sevenscenes_dir, root, numbers=(150, 151, 152), raw_labels=True):
    """A ScanNet exported folder made from real frames: 1296×968 JPEG colour, 640×480 depth."""
    for sub in ("color", "depth", "pose", "intrinsic", "label-filt"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    Kd = np.eye(4)
    Kd[:3, :3] = Camera(585, 585, 320, 240, 640, 480).K
    Kc = np.eye(4)
    # the same camera at 1296×968, by hand (pixel-centre convention, c' = (c + 0.5)·s − 0.5):
    # sx = 1296/640 = 2.025, sy = 968/480; fx = 585·2.025 = 1184.625, fy = 585·968/480 = 1179.75,
    # cx = 320.5·2.025 − 0.5 = 648.5125, cy = 240.5·968/480 − 0.5 = 484.508333
    Kc[:3, :3] = [[1184.625, 0, 648.5125], [0, 1179.75, 484.508333], [0, 0, 1]]
    np.savetxt(root / "intrinsic" / "intrinsic_depth.txt", Kd, fmt="%f")
    np.savetxt(root / "intrinsic" / "intrinsic_color.txt", Kc, fmt="%f")
    for k, n in enumerate(numbers):
        c = cv2.imread(str(sevenscenes_dir / f"frame-{n:06d}.color.png"))
        cv2.imwrite(str(root / "color" / f"{k}.jpg"), cv2.resize(c, (1296, 968)))
        shutil.copy(sevenscenes_dir / f"frame-{n:06d}.depth.png", root / "depth" / f"{k}.png")
        shutil.copy(sevenscenes_dir / f"frame-{n:06d}.pose.txt", root / "pose" / f"{k}.txt")
        lab = np.zeros((968, 1296), np.uint16)
        lab[:484] = 107 if raw_labels else 38  # raw 107 "pipes" → NYU40 38 (the last row wins)
        lab[484:] = 2 if raw_labels else 5  # raw 2 "chair" → NYU40 5
        cv2.imwrite(str(root / "label-filt" / f"{k}.png"), lab)
    return root


def test_scannet_folder_with_label_table(sevenscenes_dir, scannet_labels_tsv, tmp_path):
    root = _scannet_folder(sevenscenes_dir, tmp_path / "scene0000_00")
    (root / "pose" / "1.txt").write_text("-inf -inf -inf -inf\n" * 4)
    src = scenes.open_source(root, labels_tsv=scannet_labels_tsv)
    d = src.describe()
    assert d["kind"] == "scannet-folder" and d["has_labels"] and len(src) == 3
    frames = list(src)
    assert [f.index for f in frames] == [0, 1, 2]
    f = frames[0]
    assert f.rgb.shape == (480, 640, 3) and f.depth.shape == (480, 640) and f.labels.shape == (480, 640)
    assert f.camera == Camera(585, 585, 320, 240, 640, 480)
    assert set(np.unique(f.labels)) == {38, 5}
    assert (f.labels[:240] == 38).all() and (f.labels[241:] == 5).all()
    assert frames[1].pose is None and frames[2].pose is not None
    ref = next(iter(scenes.open_source(sevenscenes_dir)))
    np.testing.assert_array_equal(f.depth, ref.depth)
    assert np.abs(f.rgb.astype(int) - ref.rgb).mean() < 6  # JPEG and two resamplings


def test_scannet_folder_numeric_order_and_missing_table(sevenscenes_dir, tmp_path):
    root = _scannet_folder(sevenscenes_dir, tmp_path / "s", numbers=[150] * 11)
    src = scenes.open_source(root)
    assert [f.index for f in src][:3] == [0, 1, 2] and len(src) == 11
    assert [f.index for f in src][-2:] == [9, 10]  # 10 after 9, not after 1
    assert "labels_tsv" in src.describe()["labels"] and not src.describe()["has_labels"]
    assert next(iter(src)).labels is None


def test_scannet_folder_bad_inputs(sevenscenes_dir, tmp_path):
    root = _scannet_folder(sevenscenes_dir, tmp_path / "s", numbers=[150, 151])
    (root / "color" / "1.jpg").unlink()
    with pytest.raises(scenes.SourceError, match="no color"):
        scenes.open_source(root)
    root = _scannet_folder(sevenscenes_dir, tmp_path / "t", numbers=[150])
    for p in (root / "intrinsic").iterdir():
        p.unlink()
    with pytest.raises(scenes.SourceError, match="intrinsic"):
        scenes.open_source(root)
    root = _scannet_folder(sevenscenes_dir, tmp_path / "u", numbers=[150])
    (root / "pose" / "0.txt").write_text("nan 0 0 0\n" * 4)
    with pytest.raises(scenes.SourceError, match="NaN"):
        list(scenes.open_source(root))
    with pytest.raises(scenes.SourceError, match="label table"):
        scenes.open_source(root, labels_tsv=tmp_path / "none.tsv")
    with pytest.raises(InputError, match="options"):
        scenes.open_source(root, no_such_option=1)


def test_unknown_specs(tmp_path):
    with pytest.raises(scenes.SourceError, match="no such file"):
        scenes.open_source(tmp_path / "nothing")
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(scenes.SourceError, match="not a known source"):
        scenes.open_source(tmp_path / "notes.txt")
    with pytest.raises(InputError, match="integer"):
        scenes.open_source("synthetic:abc")
    with pytest.raises(InputError, match="integer"):
        scenes.open_source("camera:front")


def test_nyu40_label_folder_rejects_other_ids(sevenscenes_dir, tmp_path):
    import json

    root = _scannet_folder(sevenscenes_dir, tmp_path / "s", numbers=[150], raw_labels=True)  # ids 107 and 2
    (root / "regiond-scene.json").write_text(json.dumps({"label_space": "nyu40"}))
    with pytest.raises(scenes.SourceError, match=r"label-filt/0.png: ids 107 \(153600 pixels\) are not NYU40 ids"):
        list(scenes.open_source(root))
    root = _scannet_folder(sevenscenes_dir, tmp_path / "t", numbers=[150], raw_labels=False)
    (root / "regiond-scene.json").write_text(json.dumps({"label_space": "nyu40"}))
    f = next(iter(scenes.open_source(root)))
    assert set(np.unique(f.labels)) == {38, 5}


def test_scannet_colour_intrinsics_are_scaled_to_the_depth(sevenscenes_dir, tmp_path):
    root = _scannet_folder(sevenscenes_dir, tmp_path / "s", numbers=[150])
    (root / "intrinsic" / "intrinsic_depth.txt").unlink()
    cam = scenes.open_source(root).describe()["camera"]
    ref = Camera(585, 585, 320, 240, 640, 480)
    assert cam["width"] == 640 and cam["height"] == 480
    for k in ("fx", "fy", "cx", "cy"):
        assert cam[k] == pytest.approx(getattr(ref, k), abs=1e-3)
