"""Retrieval evaluation: COCO reading, AP, and regions beating the whole-image baseline."""

from __future__ import annotations

import json

import numpy as np
import pytest

from regiond.core import rle
from regiond.index.evaluation.one_shot import average_precision, evaluate_retrieval, precision_at
from regiond.index.searching import SERVED_EXPANSION
from regiond.scenes.annotated_images import load_coco, make_synthetic_collection


def test_average_precision_and_precision_at_k():
    scores = np.array([0.9, 0.8, 0.7, 0.6])
    rel = np.array([True, False, True, False])
    assert average_precision(scores, rel) == pytest.approx((1 + 2 / 3) / 2)
    assert average_precision(-scores, rel) == pytest.approx((1 / 2 + 2 / 4) / 2)
    assert precision_at(scores, rel, 2) == 0.5 and precision_at(scores, rel, 50) == 0.5


def test_coco_reader_takes_polygons_and_both_rle_forms(tmp_path):
    from pycocotools import mask as cmask

    make_synthetic_collection(tmp_path, 2, seed=3, size=(40, 48))
    data = json.loads((tmp_path / "annotations.json").read_text())
    truth = [rle.decode(x["segmentation"]["counts"], 40, 48) for x in data["annotations"]]
    # rewrite the first annotation as compressed RLE and add a polygon one
    enc = cmask.encode(np.asfortranarray(truth[0].astype(np.uint8)))
    data["annotations"][0]["segmentation"] = {"size": enc["size"], "counts": enc["counts"].decode()}
    data["annotations"].append(
        {"id": 999, "image_id": 1, "category_id": 1, "iscrowd": 0, "segmentation": [[2, 2, 12, 2, 12, 10, 2, 10]]}
    )
    (tmp_path / "annotations.json").write_text(json.dumps(data))
    c = load_coco(tmp_path)
    masks = [i.mask for im in c.images for i in im.instances]
    np.testing.assert_array_equal(masks[0], truth[0])
    poly = c.images[0].instances[-1].mask
    assert poly[5, 5] and not poly[20, 30] and 60 <= poly.sum() <= 120
    (tmp_path / "annotations.json").write_text("{}")
    with pytest.raises(ValueError, match="not a COCO annotations file"):
        load_coco(tmp_path)


def test_region_ranking_beats_whole_image_on_synthetic_collection(tmp_path):
    from regiond.extraction.profiles import build_extractor

    make_synthetic_collection(tmp_path / "coll", 30, seed=11, size=(120, 120))
    collection = load_coco(tmp_path / "coll")
    extractor = build_extractor("lite")
    report = evaluate_retrieval(collection, extractor, index_dir=tmp_path / "index", queries_per_class=6)
    regions, whole = report.methods["regions"], report.methods["whole-image"]
    print(report.text())
    assert report.images == 30 and report.queries > 20
    assert len(regions.per_class) == 6
    assert regions.mean_ap > whole.mean_ap + 0.1, (regions.mean_ap, whole.mean_ap)
    # the index built for the evaluation is reused, not duplicated
    again = evaluate_retrieval(collection, extractor, index_dir=tmp_path / "index", queries_per_class=6)
    assert again.regions == report.regions and again.methods["regions"].mean_ap == pytest.approx(regions.mean_ap)


def test_temporal_retrieval_on_a_real_video(avi_path):
    """Nearby frames of a real video show the same things: the region-matched box finds them."""
    from regiond.extraction.profiles import build_extractor
    from regiond.index.evaluation.temporal import evaluate_temporal
    from regiond.scenes import open_source

    rep = evaluate_temporal(open_source(avi_path), build_extractor("lite"), every=4)
    assert (rep.frames, rep.indexed, rep.queries) == (164, 41, 17)
    indexed = np.arange(0, 164, 4)
    ceiling = np.mean([min(5, np.sum((np.abs(indexed - q) <= 10) & (indexed != q))) / 5 for q in range(0, 164, 10)])
    assert rep.ceiling == pytest.approx(ceiling) and rep.ceiling < 1  # every 4th frame: 4 neighbours in ±10
    print(rep.text())
    assert rep.precision["regions"] > rep.precision["pooled"] and rep.precision["regions"] > 0.5
    assert f"temporal P@5 = {rep.precision['regions']:.3f}" in rep.text()


@pytest.mark.parametrize("expand", [None, 0, 2])
def test_temporal_eval_ranks_every_box_as_the_daemons_search(sevenscenes_dir, tmp_path, expand):
    """Each box query of the temporal evaluation, pooled and by regions, has the hits that the
    daemon's Search returns for the same box and query expansion (None: the request leaves it
    unset, the evaluation its default): the printed P@5 is what a daemon user gets."""
    from support_service import lite_extractor, png_bytes

    from regiond.api.v1 import regions_pb2 as pb
    from regiond.index.evaluation.temporal import central_box, evaluate_temporal, frame_id
    from regiond.scenes import open_source
    from regiond.service.search_rpc import SearchRPC

    ex = lite_extractor()
    frames = list(open_source(sevenscenes_dir))
    rep = evaluate_temporal(frames, ex, query_every=5, **({} if expand is None else {"expand": expand}))
    assert rep.expansion == (SERVED_EXPANSION if expand is None else expand)
    assert sorted(rep.rankings["pooled"]) == [0, 5, 10, 15]
    rpc = SearchRPC(ex, tmp_path / "index")
    try:
        images = [pb.Image(data=png_bytes(f.rgb)) for f in frames]
        summary = rpc.index_images(
            pb.IndexRequest(image_id=frame_id(i), image=img, metadata={"frame": str(i)}) for i, img in enumerate(images)
        )
        assert summary.indexed == len(frames) and not summary.errors
        for match, name in ((pb.QUERY_MATCH_POOLED, "pooled"), (pb.QUERY_MATCH_REGIONS, "regions")):
            for i, want in rep.rankings[name].items():
                x0, y0, x1, y1 = central_box(frames[i].height, frames[i].width, rep.box)
                req = pb.SearchRequest(
                    top_k=rep.k, box=pb.BoxQuery(image=images[i], match=match, box=pb.Box(x0=x0, y0=y0, x1=x1, y1=y1))
                )
                req.filter.exclude_image_ids.append(frame_id(i))
                if expand is not None:
                    req.query_expansion = expand
                got = rpc.search(req).hits
                assert [h.image_id for h in got] == [image_id for image_id, _ in want], (name, i)
                assert [h.score for h in got] == pytest.approx([score for _, score in want], abs=1e-4), (name, i)
    finally:
        rpc.close()


def test_eval_retrieval_video_command_on_a_folder_of_frames(sevenscenes_dir, capsys):
    from regiond.cli import main

    assert main(["eval", "retrieval", "--video", str(sevenscenes_dir), "--profile", "lite", "--match", "pooled"]) == 0
    out = capsys.readouterr().out
    assert "20 frames, 20 indexed" in out and "feature normaliser: whiten" in out
    assert f"query expansion: {SERVED_EXPANSION} images" in out  # the daemon's default
    pooled = [line for line in out.splitlines() if line.startswith("pooled")][0].split()[-1]
    assert f"temporal P@5 = {pooled}   (--match pooled" in out
    assert main(["eval", "retrieval", "--video", str(sevenscenes_dir), "--profile", "lite", "--expand", "0"]) == 0
    assert "query expansion: none" in capsys.readouterr().out
    assert main(["eval", "retrieval", "--video", str(sevenscenes_dir), "--profile", "lite", "--expand", "101"]) == 1
    assert "query_expansion" in capsys.readouterr().err
    assert main(["eval", "retrieval", "--video", str(sevenscenes_dir), "--synthetic", "3"]) == 2
