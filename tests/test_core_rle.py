"""COCO RLE against pycocotools, and RegionSet's one-file save/load (no pickle)."""

from __future__ import annotations

import numpy as np
import pytest
from pycocotools import mask as mask_utils

from regiond.core import rle
from regiond.core.regionset import SOURCE_SAM, SOURCE_SLIC, RegionSet


def _masks(rng) -> list[np.ndarray]:
    h, w = 37, 23  # odd, non-square: row/column-major mix-ups show
    blob = np.zeros((h, w), bool)
    blob[5:20, 3:11] = True
    first = np.zeros((h, w), bool)
    first[0, 0] = True  # foreground at index 0: counts start with an empty background run
    last = np.zeros((h, w), bool)
    last[-1, -1] = True
    return [
        np.zeros((h, w), bool),
        np.ones((h, w), bool),
        blob,
        first,
        last,
        rng.random((h, w)) < 0.5,
        np.zeros((1, 1), bool),
        np.ones((1, 1), bool),
    ]


def test_rle_matches_pycocotools():
    rng = np.random.default_rng(0)
    for m in _masks(rng):
        h, w = m.shape
        counts = rle.encode(m)
        assert counts.dtype == np.uint32 and int(counts.sum()) == h * w
        obj = mask_utils.frPyObjects({"size": [h, w], "counts": counts.tolist()}, h, w)
        assert np.array_equal(mask_utils.decode(obj).astype(bool), m)
        assert np.array_equal(rle.decode(counts, h, w), m)
        ref = mask_utils.encode(np.asfortranarray(m.astype(np.uint8)))
        # the same runs as pycocotools' own encoding: its compressed string is one-to-one with
        # the counts, so an extra zero-length run (which still decodes right) shows here
        assert obj["counts"] == ref["counts"], (counts[:8], m.shape)
        assert rle.area(counts) == int(mask_utils.area(ref)) == int(m.sum())
        x, y, bw, bh = mask_utils.toBbox(ref)
        box = rle.bbox(counts, h, w)
        if m.any():
            assert np.allclose(box, [x, y, x + bw, y + bh])
        else:
            assert not box.any()


def test_rle_decode_rejects_counts_of_the_wrong_total():
    with pytest.raises(ValueError, match="sum to"):
        rle.decode(np.array([3, 4], np.uint32), 3, 3)


def _regionset(rng, with_features=True) -> RegionSet:
    h, w = 31, 45
    masks = rng.random((5, h, w)) < 0.3
    masks[2] = False  # an empty region survives the trip
    return RegionSet.from_masks(
        masks,
        source=np.array([SOURCE_SAM, SOURCE_SAM, SOURCE_SLIC, SOURCE_SLIC, SOURCE_SLIC], np.uint8),
        scores=np.array([0.9, 0.8, np.nan, np.nan, np.nan], np.float32),
        features=rng.standard_normal((5, 16)).astype(np.float32) if with_features else None,
        meta={"profile": "lite", "seconds": {"masks": 0.01}},
    )


def test_regionset_save_load_round_trip(tmp_path):
    rng = np.random.default_rng(2)
    rs = _regionset(rng)
    path = rs.save(tmp_path / "r.regions.npz")
    with np.load(path, allow_pickle=False) as z:  # plain arrays only
        assert "rle_counts" in z.files
    back = RegionSet.load(path)
    assert (back.height, back.width, len(back)) == (rs.height, rs.width, len(rs))
    assert np.array_equal(back.masks(), rs.masks())
    for name in ("boxes", "areas", "source", "features"):
        assert np.array_equal(getattr(back, name), getattr(rs, name)), name
    assert np.array_equal(back.scores, rs.scores, equal_nan=True)
    assert back.meta == rs.meta
    assert back.areas[2] == 0 and not back.boxes[2].any()
    assert np.array_equal(back.areas, rs.masks().reshape(5, -1).sum(1))


def test_regionset_without_regions_or_features(tmp_path):
    empty = RegionSet.from_masks(np.zeros((0, 8, 9), bool))
    back = RegionSet.load(empty.save(tmp_path / "e.npz"))
    assert len(back) == 0 and back.masks().shape == (0, 8, 9) and back.features is None
    rs = _regionset(np.random.default_rng(3), with_features=False)
    assert RegionSet.load(rs.save(tmp_path / "n.npz")).features is None


def test_loading_a_foreign_npz_is_a_clear_error(tmp_path):
    path = tmp_path / "other.npz"
    np.savez(path, header=np.frombuffer(b'{"format": "something/else"}', np.uint8))
    with pytest.raises(ValueError, match="not a regiond RegionSet"):
        RegionSet.load(path)


def test_encode_batch_equals_encode_per_mask():
    rng = np.random.default_rng(4)
    h, w = 29, 41
    masks = []
    for _ in range(60):
        m = np.zeros((h, w), bool)
        y0, x0 = rng.integers(0, h), rng.integers(0, w)
        m[y0 : y0 + rng.integers(1, h), x0 : x0 + rng.integers(1, w)] = rng.random() < 0.9
        m &= rng.random((h, w)) < rng.choice([0.3, 1.0])
        masks.append(m)
    edge = np.zeros((6, h, w), bool)
    edge[0, :, 0] = True  # first column only
    edge[1, :, -1] = True  # last column only
    edge[2, -1, -1] = True  # last pixel
    edge[3, 0, 0] = True  # first pixel
    edge[4] = True  # everything
    stack = np.concatenate([np.stack(masks), edge])  # edge[5] stays empty
    counts, boxes, areas = rle.encode_batch(stack)
    for i, m in enumerate(stack):
        assert np.array_equal(counts[i], rle.encode(m)), i
        assert counts[i].dtype == np.uint32
        assert np.array_equal(boxes[i], rle.bbox(rle.encode(m), h, w)), i
        assert areas[i] == m.sum()
