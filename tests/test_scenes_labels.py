"""ScanNet label table → NYU40 → the 20 benchmark classes."""

from __future__ import annotations

import numpy as np
import pytest

from regiond import scenes
from regiond.core.errors import InputError
from regiond.core.label_spaces import BENCHMARK_NAMES, BENCHMARK_NYU40, IGNORE, NYU40_NAMES, nyu40_to_benchmark
from regiond.scenes.scannet_labels import load_scannet_labels


def test_real_table_last_row_wins(scannet_labels_tsv):
    t = load_scannet_labels(scannet_labels_tsv)
    assert len(t.raw_to_nyu40) == 549
    assert t.raw_to_nyu40[107] == 38 and t.raw_to_nyu40[188] == 38 and t.raw_to_nyu40[385] == 3
    assert t.raw_to_nyu40[1] == 1 and t.raw_to_nyu40[2] == 5
    raw = np.array([[1, 2, 107], [0, 65000, 385]], np.uint16)
    np.testing.assert_array_equal(t.to_nyu40(raw), [[1, 5, 38], [0, 0, 3]])


def test_benchmark_mapping():
    assert len(BENCHMARK_NYU40) == 20 and NYU40_NAMES[22] == "ceiling"
    nyu = np.array([1, 2, 39, 22, 0, 40, 14, 300])
    np.testing.assert_array_equal(nyu40_to_benchmark(nyu), [0, 1, 19, IGNORE, IGNORE, IGNORE, 12, IGNORE])
    assert BENCHMARK_NAMES[12] == "desk"


def test_benchmark_mapping_is_the_same_for_every_integer_type():
    ids = np.array([[0, 1, 2, 39, 40], [41, 255, 256, 300, 65535]])
    want = nyu40_to_benchmark(ids.astype(np.int64))
    assert want[0].tolist() == [IGNORE, 0, 1, 19, IGNORE] and (want[1] == IGNORE).all()
    for dtype in (np.uint16, np.int32, np.uint32):
        np.testing.assert_array_equal(nyu40_to_benchmark(ids.astype(dtype)), want)
    np.testing.assert_array_equal(nyu40_to_benchmark(ids[0].astype(np.uint8)), want[0])


def test_bad_tables(tmp_path):
    p = tmp_path / "t.tsv"
    p.write_text("id\tname\n1\twall\n")
    with pytest.raises(scenes.SourceError, match="nyu40id"):
        load_scannet_labels(p)
    p.write_text("id\tnyu40id\nx\t1\n")
    with pytest.raises(scenes.SourceError, match=":2"):
        load_scannet_labels(p)
    p.write_text("id\tnyu40id\n3\t41\n")
    with pytest.raises(scenes.SourceError, match="outside"):
        load_scannet_labels(p)
    p.write_text("id\tnyu40id\n")
    with pytest.raises(scenes.SourceError, match="no rows"):
        load_scannet_labels(p)
    with pytest.raises(scenes.SourceError, match="not found"):
        load_scannet_labels(tmp_path / "missing.tsv")
    with pytest.raises(InputError, match="labels"):
        nyu40_to_benchmark(np.zeros(3, np.float32))


def test_image_folder_label_ids_outside_nyu40_are_an_error_naming_the_file(tmp_path):
    """Chosen over counting them as unlabelled: a map in another label space (raw ScanNet ids,
    255 for void) would otherwise train on what it does not mean. `regiond extract` reports the
    file and extracts the other folders."""
    import subprocess
    import sys

    from PIL import Image
    from support_heads import image_folder

    from regiond.core.label_spaces import read_label_png
    from regiond.scenes.labelled_folders import image_folder_frames

    bad, good = image_folder(tmp_path / "bad"), image_folder(tmp_path / "good")
    lab = read_label_png(bad / "labels" / "im1.png")
    lab[0, :5], lab[1, :3] = 41, 255
    Image.fromarray(lab.astype(np.uint8)).save(bad / "labels" / "im1.png")
    with pytest.raises(InputError, match=r"bad/labels/im1.png: ids 41, 255 \(8 pixels\) are not NYU40 ids"):
        image_folder_frames(bad)
    assert len(image_folder_frames(good)) == 2
    r = subprocess.run(
        [sys.executable, "-m", "regiond", "extract", bad, good, "--out", tmp_path / "cache", "--profile", "lite"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 1 and "bad/labels/im1.png: ids 41, 255 (8 pixels) are not NYU40 ids" in r.stderr
    assert "1 items extracted (2 frames), 0 already in the cache, 1 failed" in r.stdout
    Image.fromarray(np.zeros((48, 64, 3), np.uint8)).save(bad / "labels" / "im1.png")  # a colour picture
    with pytest.raises(InputError, match=r"im1.png: a label map has one id per pixel"):
        image_folder_frames(bad)
