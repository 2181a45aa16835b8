"""clients/scan_scene.py --objects against a real daemon: objects.json, the PLY's instance
property, ScanNet's instance layout, final per-frame id maps, crops and the report's table, the
Rerun boxes; and `regiond eval instances` on what it wrote."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
from support_service import lite_extractor, run_client, running_server

from regiond.cli import main
from regiond.core.instance_files import find_scene_file, read_instance_masks
from regiond.geometry import read_ply
from regiond.scenes.synthetic import SyntheticScene, write_scene_folder


@pytest.fixture(scope="module")
def scanned(tmp_path_factory):
    root = tmp_path_factory.mktemp("objects-client")
    scene = write_scene_folder(SyntheticScene(5, 48, 160, 120), root / "room")
    with running_server(lite_extractor(), root) as srv:
        out = root / "scan"
        rrd = root / "scan.rrd"
        r = run_client(
            "scan_scene", scene, "--server", srv.address, "--out", out, "--every", 2, "--objects", "--rerun", rrd
        )
    assert r.returncode == 0, r.stderr
    return scene, out, rrd, r.stdout


def test_scan_writes_the_objects(scanned):
    _, out, _, stdout = scanned
    objects = json.loads((out / "objects.json").read_text())
    assert len(objects) >= 5 and "objects (" in stdout
    ids = {o["id"] for o in objects}
    for o in objects:
        assert set(o) >= {"id", "class", "score", "centroid", "box", "points", "frames", "best_view"}
        lo, hi = np.array(o["box"][:3]), np.array(o["box"][3:])
        assert (lo <= o["centroid"]).all() and (np.array(o["centroid"]) <= hi).all()
        assert o["class"] is None and o["points"] >= 100  # no scene head: class-agnostic
    cloud = read_ply(out / "scene.ply")
    counts = dict(zip(*np.unique(cloud.instances, return_counts=True)))
    assert {int(k) for k in counts} - {0} == ids
    assert all(counts[o["id"]] == o["points"] for o in objects)
    # ScanNet's instance layout over the cloud: one mask per object with its points
    masks = read_instance_masks(find_scene_file(out / "instances"), len(cloud))
    assert sorted(masks.masks.sum(axis=1).tolist()) == sorted(o["points"] for o in objects)
    # per-frame maps of the ids as streamed, and the table to their final ids (objects of the summary, or 0)
    maps = sorted((out / "object_ids").glob("*.png"))
    final = {int(k): v for k, v in json.loads((out / "object_ids" / "final.json").read_text()).items()}
    assert len(maps) == 24 and set(final.values()) - {0} == ids
    seen = set()
    for p in maps:
        a = cv2.imread(str(p), cv2.IMREAD_UNCHANGED)
        assert a.dtype == np.uint16 and a.shape == (120, 160)
        seen |= set(np.unique(a).tolist())
    assert seen - {0} <= set(final) and len({final[i] for i in seen - {0}} & ids) >= 0.8 * len(ids)
    # best views: crops, shown in the report's table
    crops = [o["best_view"]["crop"] for o in objects if o["best_view"]["crop"]]
    assert len(crops) >= 0.8 * len(objects) and all((out / c).is_file() for c in crops)
    page = (out / "index.html").read_text()
    assert f"Objects: {len(objects)}" in page and all(c in page for c in crops)


def test_the_recording_holds_the_boxes(scanned):
    _, out, rrd, _ = scanned
    from rerun.chunk import RrdReader

    batches = {}
    for c in RrdReader(rrd).stream():
        batches.setdefault(c.entity_path, []).append(c.to_record_batch())
    objects = json.loads((out / "objects.json").read_text())
    boxes = [b for b in batches["/world/objects"] if "Boxes3D:half_sizes" in b.schema.names]
    labels = boxes[0].column("Boxes3D:labels").to_pylist()[0]
    assert len(labels) == len(objects) and labels[0] == f"object #{objects[0]['id']}"
    points = [b for b in batches["/world/objects/points"] if "Points3D:positions" in b.schema.names]
    assert len(points[0].column("Points3D:positions").to_pylist()[0]) == sum(o["points"] for o in objects)


def test_eval_instances_scores_the_scan(scanned, capsys):
    _, out, _, _ = scanned
    assert main(["eval", "instances", str(out), "--json"]) == 0
    text, metrics = capsys.readouterr().out.strip().rsplit("\n", 1)
    m = json.loads(metrics)
    assert m["gt_objects"] >= 5 and m["ap25"] > 0.2 and m["consistency"]["objects"] >= 5, text


def test_the_demo_counts_found_objects_against_the_rooms(scanned):
    from regiond.commands.demo import objects_line

    _, out, _, _ = scanned
    found = len(json.loads((out / "objects.json").read_text()))
    room = SyntheticScene(5, 48, 160, 120)
    line = objects_line(out, room)
    things = sum(o["nyu40"] not in (1, 2, 22) for o in room.objects())
    assert line.startswith(f"objects: {found} found") and f"the room has {things} things" in line


def test_a_real_scan_has_its_objects_inside_the_scene(sevenscenes_dir, tmp_path):
    """20 real Kinect frames (7-Scenes, held out from every choice of the map): the objects'
    boxes lie inside the scene's bounds (the frames' back-projected depth) and none spans it."""
    from regiond.geometry import backproject
    from regiond.scenes import open_source

    with running_server(lite_extractor(), tmp_path) as srv:
        out = tmp_path / "scan"
        r = run_client("scan_scene", sevenscenes_dir, "--server", srv.address, "--out", out, "--objects")
    assert r.returncode == 0, r.stderr
    pts = [backproject(f.depth, f.camera, f.pose)[0].reshape(-1, 3) for f in open_source(sevenscenes_dir)]
    pts = np.concatenate(pts)
    lo, hi = np.nanmin(pts, axis=0), np.nanmax(pts, axis=0)
    objects = json.loads((out / "objects.json").read_text())
    assert len(objects) >= 3
    for o in objects:
        box = np.array(o["box"])
        assert (box[:3] >= lo - 0.02).all() and (box[3:] <= hi + 0.02).all(), (o, lo, hi)
        assert np.prod(box[3:] - box[:3]) < 0.5 * np.prod(hi - lo)
