"""Instance evaluation: ScanNet's class-agnostic AP rules, the instance layout's files, 2D
consistency, and `regiond eval instances` on a generated room (with malformed inputs)."""

import json

import cv2
import numpy as np
import pytest
from support_objects import regions_of

from regiond.cli import main
from regiond.core.errors import InputError
from regiond.core.instance_files import read_instance_masks, write_instance_masks
from regiond.geometry import VoxelFusion, write_ply
from regiond.objects import ObjectConfig, ObjectMap, summarise
from regiond.objects.instance_ap import instance_scores, match_scene, pooled_scores
from regiond.objects.instance_truth import Consistency
from regiond.objects.pixels import strided_owner
from regiond.scenes import open_source
from regiond.scenes.synthetic import SyntheticScene, write_scene_folder

# ground truth over 1000 points: objects A (200 points) and B (200), a wall (300), a small
# object (50), nothing (250)
GT = np.zeros(1000, int)
GT[:200], GT[200:400], GT[400:700], GT[700:750] = 1, 2, 3, 4
CLASSES = {1: 5, 2: 7, 3: 1, 4: 11}  # chair, table, wall, picture


def _scores(pred, conf):
    return instance_scores(pred, conf, GT, CLASSES)


def test_perfect_objects_score_one_and_what_is_ignored_costs_nothing():
    pred = GT.copy()
    pred[pred == 3] = 0  # no wall object
    s = _scores(pred, {1: 0.9, 2: 0.8, 4: 0.7})
    assert (s.ap, s.ap50, s.ap25) == (1.0, 1.0, 1.0)
    assert s.gt_objects == 2  # the wall is excluded, the small object ignored
    assert s.predictions == 2  # the 50-point prediction is under 100 points
    pred[400:700] = 9  # an object on the wall: void, not a false positive
    assert _scores(pred, {1: 0.9, 2: 0.8, 9: 0.99}).ap == 1.0


def test_a_duplicate_is_a_false_positive_with_the_lower_confidence():
    pred = np.zeros((3, 1000), bool)
    pred[0, :200], pred[1, 200:400], pred[2, :190] = True, True, True  # the third duplicates A
    s = instance_scores(pred, [0.9, 0.8, 0.95], GT, CLASSES)
    # worked by hand from ScanNet's evaluate_matches: TP 0.95, FP 0.9, TP 0.8 → AP 0.7917
    assert s.ap50 == pytest.approx(0.25 * (2 / 3) + 0.25 * 0.5 + 0.25 + 0.25)


def test_iou_must_be_above_the_threshold():
    pred = np.zeros(1000, int)
    pred[:100] = 1  # half of A: IoU 0.5, not above 0.5
    pred[200:400] = 2
    s = _scores(pred, {1: 0.9, 2: 0.8})
    assert s.per_overlap[0.5] < 1.0 and s.ap25 == 1.0


def test_scenes_pool_their_matches():
    pred = GT.copy()
    pred[pred == 3] = 0
    one = match_scene(pred, {1: 0.9, 2: 0.8}, GT, CLASSES)
    miss = match_scene(np.zeros(1000, int), {}, GT, CLASSES)  # a scene where nothing was found
    assert pooled_scores([one]).ap50 == 1.0
    assert pooled_scores([one, miss]).ap50 == pytest.approx(0.5)  # recall halves, precision stays
    masks = np.stack([pred == 1, pred == 2])  # masks and ids agree
    assert pooled_scores([match_scene(masks, [0.9, 0.8], GT, CLASSES)]).per_overlap == pooled_scores([one]).per_overlap


def test_instance_layout_round_trip_and_malformed_files_are_named(tmp_path):
    ids = np.array([0, 3, 3, 5, 0, 5])
    path = write_instance_masks(tmp_path, "scene0", ids, [(3, 5, 0.75), (5, 7, 0.5)])
    got = read_instance_masks(path, 6)
    assert got.masks.astype(int).tolist() == [[0, 1, 1, 0, 0, 0], [0, 0, 0, 1, 0, 1]]
    assert got.labels.tolist() == [5, 7] and got.confidences.tolist() == [0.75, 0.5]
    with pytest.raises(InputError, match="7 points"):
        read_instance_masks(path, 7)
    mask = tmp_path / "pred_mask" / "scene0_000.txt"
    mask.write_text("0\n1\nx\n")
    with pytest.raises(InputError, match="scene0_000.txt"):
        read_instance_masks(path, 6)
    path.write_text("pred_mask/scene0_001.txt five 0.5\n")
    with pytest.raises(InputError, match="scene0.txt:1"):
        read_instance_masks(path, 6)
    path.write_text("pred_mask/missing.txt 5 0.5\n")
    with pytest.raises(InputError, match="missing.txt"):
        read_instance_masks(path, 6)


def test_consistency_counts_the_ids_each_true_object_got():
    c = Consistency()
    truth = np.zeros((20, 20), int)
    truth[:, :10], truth[:, 10:] = 1, 2
    for left in (7, 7, 8):  # object 1 gets ids 7, 7, 8; object 2 always 9
        pred = np.where(truth == 1, left, 9)
        pred[0, 10:] = 4  # a sliver of another id on object 2: not its main id
        c.add(truth, pred)
    got = c.result({1: 5, 2: 7})
    assert got["per_object"] == {1: 2, 2: 1} and got["ids_per_object"] == 1.5


@pytest.fixture(scope="module")
def room_scan(tmp_path_factory):
    """A generated room written as a ScanNet folder, and a scan folder of its objects as
    clients/scan_scene.py --objects writes one (made here with the library)."""
    root = tmp_path_factory.mktemp("room")
    scene = write_scene_folder(SyntheticScene(5, 48, 160, 120), root / "scene")
    frames = list(open_source(scene, every=2))
    regions = regions_of(frames, "truth")
    omap, fusion = ObjectMap(ObjectConfig(min_points=20)), VoxelFusion(0.02)
    for f, r in zip(frames, regions):
        omap.add(f, r)
        fusion.add_frame(f, stride=2)
    cloud = fusion.cloud()
    result = summarise(omap, cloud.points)
    scan = root / "scan"
    cloud.instances = result.instances.astype(np.int32)
    write_ply(scan / "scene.ply", cloud)
    write_instance_masks(
        scan / "instances", "scene", result.instances, [(o.id, 0, o.confidence) for o in result.objects]
    )
    (scan / "object_ids").mkdir()
    for f, r in zip(frames, regions):
        own = strided_owner(r, 1)
        ids = np.where(own >= 0, result.frame_ids[f.index][np.maximum(own, 0)], 0).astype(np.uint16)
        cv2.imwrite(str(scan / "object_ids" / f"{f.index:06d}.png"), ids)
    settings = {"scene": str(scene), "every": 2, "max_frames": None, "size": None, "voxel": 0.02}
    (scan / "scan-progress.jsonl").write_text(json.dumps({"scan": settings}) + "\n")
    return scene, scan


def test_eval_instances_scores_a_scan(room_scan, capsys):
    _, scan = room_scan
    assert main(["eval", "instances", str(scan), "--json"]) == 0
    text, metrics = capsys.readouterr().out.strip().rsplit("\n", 1)
    m = json.loads(metrics)
    assert m["ap50"] >= 0.8 and m["gt_objects"] >= 5, text
    assert 1.0 <= m["consistency"]["ids_per_object"] <= 1.2
    assert "AP50" in text and "ids per object" in text


def test_eval_instances_names_a_malformed_instance_map(room_scan, tmp_path, capsys):
    scene, scan = room_scan
    import shutil

    bad = tmp_path / "scene"
    shutil.copytree(scene, bad)
    target = bad / "instance-filt" / "4.png"
    cv2.imwrite(str(target), np.zeros((120, 160, 3), np.uint8))  # three channels: not an instance map
    assert main(["eval", "instances", str(scan), "--scene", str(bad)]) == 1
    assert str(target) in capsys.readouterr().err
    target.write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    assert main(["eval", "instances", str(scan), "--scene", str(bad)]) == 1
    assert str(target) in capsys.readouterr().err


def test_eval_instances_names_a_malformed_id_table(room_scan, tmp_path, capsys):
    import shutil

    _, scan = room_scan
    copy = tmp_path / "scan"
    shutil.copytree(scan, copy)
    table = copy / "object_ids" / "final.json"
    table.write_text('{"3": "x"}')
    assert main(["eval", "instances", str(copy)]) == 1
    assert str(table) in capsys.readouterr().err
