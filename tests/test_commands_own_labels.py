"""Your own labels end to end, the path docs/own-labels.md walks: a ScanNet export (generated
rooms written in ScanNet's export layout with raw ScanNet label ids, the label table above the
scene folders, no generator marker: what a user's own scans look like) and folders of RGB
images with NYU40 label PNGs, through `regiond extract`, `regiond train segment|scene`,
`regiond eval --record`, `regiond serve --heads`, `clients/scan_scene.py`, ExtractRegions and
`regiond eval labels`. The served heads label a held-out room and held-out images better than
labelling every pixel with the training data's most frequent class."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys

import grpc
import numpy as np
import pytest
from PIL import Image
from support_service import run_client

from regiond.api.v1 import regions_pb2 as pb
from regiond.api.v1 import regions_pb2_grpc as pb_grpc
from regiond.commands.serve import spawn_daemon
from regiond.core import rle
from regiond.core.confusion import EvalProtocol
from regiond.core.label_spaces import NYU40_NAMES, read_label_png
from regiond.scenes.folders import LABEL_TABLE
from regiond.scenes.synthetic import SyntheticScene, write_scene_folder

TRAIN_ROOMS, TEST_ROOM = (1, 2, 3, 5, 6, 7), 4
SIZE, FRAMES = (160, 120), 12
RAW = 1000  # raw ScanNet id = RAW + NYU40 id in the table written beside the scans


def regiond(*args, timeout: float = 300) -> str:
    """`regiond ARGS` as a user runs it; its stdout (fails the test with its output otherwise)."""
    r = subprocess.run(
        [sys.executable, "-m", "regiond", *map(str, args)], capture_output=True, text=True, timeout=timeout
    )
    assert r.returncode == 0, f"regiond {' '.join(map(str, args))}: {r.returncode}\n{r.stdout}\n{r.stderr[-3000:]}"
    return r.stdout


def own_scan(seed: int, scan_dir, photo_dir) -> None:
    """A generated room as a user's ScanNet export (raw ids in label-filt/, no regiond-scene.json)
    and as an image folder (images/ + labels/ with NYU40 ids)."""
    write_scene_folder(SyntheticScene(seed, FRAMES, *SIZE), scan_dir)
    (scan_dir / "regiond-scene.json").unlink()
    (photo_dir / "images").mkdir(parents=True)
    (photo_dir / "labels").mkdir()
    for png in sorted((scan_dir / "label-filt").glob("*.png")):
        nyu = read_label_png(png)
        Image.fromarray(nyu.astype(np.uint8)).save(photo_dir / "labels" / png.name)
        shutil.copy(scan_dir / "color" / f"{png.stem}.jpg", photo_dir / "images")
        Image.fromarray(np.where(nyu > 0, RAW + nyu, 0).astype(np.uint16)).save(png)


def scores(pairs) -> dict:
    """ScanNet-20 mIoU and pixel accuracy of (truth, prediction) NYU40 label maps."""
    proto = EvalProtocol.scannet20()
    conf = proto.confusion()
    for truth, pred in pairs:
        proto.add(conf, truth, pred)
    return {"miou": conf.miou(), "pixel_acc": conf.accuracy()}


@pytest.fixture(scope="module")
def own(tmp_path_factory):
    root = tmp_path_factory.mktemp("own")
    (root / "ScanNet").mkdir()
    rows = "".join(f"{RAW + i}\t{name}\t{i}\n" for i, name in enumerate(NYU40_NAMES) if i)
    (root / "ScanNet" / LABEL_TABLE).write_text("id\tcategory\tnyu40id\n" + rows)
    for s in TRAIN_ROOMS:
        own_scan(s, root / "ScanNet" / "scans" / f"room{s}", root / "photos" / f"room{s}")
    own_scan(TEST_ROOM, root / "ScanNet" / "scans_test" / "room4", root / "photos_test" / "room4")
    return root


def test_own_scans_and_images_train_heads_that_beat_a_constant_class(own, tmp_path):
    scans, photos, heads = sorted((own / "ScanNet" / "scans").iterdir()), sorted((own / "photos").iterdir()), tmp_path
    out = regiond("extract", *scans, "--out", tmp_path / "cache_scans", "--profile", "lite")
    assert "6 items, 72 frames, profile lite" in out
    regiond("extract", *photos, "--out", tmp_path / "cache_photos", "--profile", "lite")
    regiond("extract", own / "photos_test" / "room4", "--out", tmp_path / "cache_photos_test", "--profile", "lite")
    out = regiond(
        "train", "segment", "--cache", tmp_path / "cache_photos", "--out", heads / "heads" / "segment",
        "--head", "region-linear", "--lr", "0.01", "--epochs", "100", "--patience", "15",
    )  # fmt: skip
    assert "5 image folders of token cache" in out and "own data, 60 frames" in out
    regiond(
        "train", "scene", "--cache", tmp_path / "cache_scans", "--out", heads / "heads" / "scene",
        "--dim", "32", "--frames-per-view", "4", "--epochs", "25",
    )  # fmt: skip
    out = regiond(
        "eval", "segment", "--head", heads / "heads" / "segment", "--cache", tmp_path / "cache_photos_test", "--record"
    )
    recorded = float(re.search(r"held-out ScanNet-20 mIoU ([\d.]+) %", out).group(1))

    # the most frequent class of the training labels: the constant-class baseline
    counts = np.zeros(41, np.int64)
    for p in own.glob("photos/*/labels/*.png"):
        counts += np.bincount(read_label_png(p).ravel(), minlength=41)[:41]
    constant = int(np.argmax(counts[1:]) + 1)
    assert constant == 1  # wall

    log = tmp_path / "serve.log"
    proc, address = spawn_daemon(
        ["--heads", heads / "heads", "--profile", "lite", "--no-index", "--listen", "127.0.0.1:0",
         "--data-dir", tmp_path / "data"],
        log,
    )  # fmt: skip
    try:
        ch = grpc.insecure_channel(address)
        stub = pb_grpc.RegionServiceStub(ch)
        info = stub.GetInfo(pb.InfoRequest(), timeout=30)
        (scene,) = [h for h in info.heads if h.kind == "scene"]
        by_head = {t.head: t for t in scene.trained_on}
        assert by_head["segment"].origin == pb.DATA_ORIGIN_OWN and by_head["scene"].origin == pb.DATA_ORIGIN_OWN
        assert by_head["scene"].frames == 60 and by_head["scene"].profile == "lite"
        assert by_head["segment"].held_out_score == pytest.approx(recorded / 100, abs=1e-3)
        assert "demonstration" not in log.read_text()  # own data: no word of generated heads

        # single images: ExtractRegions labels each region with the segment head
        pairs, constant_pairs = [], []
        for img in sorted((own / "photos_test" / "room4" / "images").iterdir()):
            rs = stub.ExtractRegions(pb.ExtractRequest(image=pb.Image(data=img.read_bytes())), timeout=60)
            pred = np.zeros((rs.height, rs.width), np.int32)
            for r in rs.regions:
                assert r.HasField("label") and len(r.label_scores) == len(scene.class_ids)
                pred[rle.decode(r.mask.counts, rs.height, rs.width)] = r.label
            truth = read_label_png(own / "photos_test" / "room4" / "labels" / f"{img.stem}.png")
            pairs.append((truth, pred))
            constant_pairs.append((truth, np.full_like(truth, constant)))
        served, base = scores(pairs), scores(constant_pairs)
        assert served["miou"] > 2 * base["miou"], (served, base)

        # a scan: scan_scene through the daemon, its label PNGs scored by regiond eval labels
        scan = run_client(
            "scan_scene", own / "ScanNet" / "scans_test" / "room4", "--server", address, "--out", tmp_path / "scan",
            "--overlays", "none",
        )  # fmt: skip
        assert scan.returncode == 0, scan.stderr[-3000:]
        client_miou = float(re.search(r"mIoU ([\d.]+) over", scan.stdout).group(1))
        assert "generated rooms only" not in scan.stdout
    finally:
        proc.terminate()
        proc.wait(30)
        ch.close()
    assert proc.returncode == 0
    test_room = own / "ScanNet" / "scans_test" / "room4"
    labels = json.loads(regiond("eval", "labels", tmp_path / "scan" / "labels", "--scene", test_room, "--json")
                        .splitlines()[-1])  # fmt: skip
    assert labels["frames"] == FRAMES and labels["miou"] * 100 == pytest.approx(client_miou, abs=0.06)
    base_dir = tmp_path / "constant"
    base_dir.mkdir()
    for p in (tmp_path / "scan" / "labels").iterdir():
        Image.fromarray(np.full_like(read_label_png(p), constant).astype(np.uint8)).save(base_dir / p.name)
    base = json.loads(regiond("eval", "labels", base_dir, "--scene", test_room, "--json").splitlines()[-1])
    assert labels["miou"] > 2 * base["miou"] and labels["pixel_acc"] > base["pixel_acc"], (labels, base)
