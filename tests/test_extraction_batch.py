"""Extractor.extract_batch: the same tokens as one frame at a time, one forward pass per size."""

from dataclasses import replace

import numpy as np
import pytest

from regiond.core.errors import InputError
from regiond.core.frames import Frame
from regiond.extraction.extractor import Extractor
from regiond.extraction.profiles import build_extractor
from regiond.features import build_backbone
from regiond.masks import build_masker


def _photo(h, w, seed):
    rng = np.random.default_rng(seed)
    img = np.zeros((h, w, 3), np.uint8)
    img[: h // 2] = rng.integers(0, 255, 3)
    img[h // 2 :, : w // 3] = rng.integers(0, 255, 3)
    return np.clip(img + rng.normal(0, 6, img.shape), 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def tiny_dino_extractor():
    return Extractor(build_masker("slic"), build_backbone("dinov2_tiny"), profile="test")


def test_batch_equals_one_by_one_across_sizes(tiny_dino_extractor):
    ex = tiny_dino_extractor
    frames = [
        Frame(rgb=_photo(70, 98, 0), index=0),
        Frame(rgb=_photo(70, 98, 1), index=1),
        Frame(rgb=_photo(57, 83, 2), index=2),
    ]
    assert ex.can_batch
    batched = ex.extract_batch(frames)
    for f, b in zip(frames, batched):
        single = ex.extract(f)
        assert len(single) == len(b) and b.meta["frame_index"] == f.index
        assert all(np.array_equal(x, y) for x, y in zip(single.counts, b.counts))
        np.testing.assert_allclose(b.features, single.features, atol=1e-4)


def test_forward_passes_grouped_by_size(tiny_dino_extractor):
    bb = tiny_dino_extractor.backbone
    calls = []
    original = bb.vit.forward_features
    bb.vit.forward_features = lambda x: calls.append(tuple(x.shape)) or original(x)
    try:
        bb.batch([_photo(70, 98, 0), _photo(70, 98, 1), _photo(57, 83, 2)])
    finally:
        bb.vit.forward_features = original
    assert sorted(calls) == sorted([(2, 3, 70, 98), (1, 3, 70, 84)])


class _CountingMasker:
    """The extractor's masker, recording every image it is called on."""

    def __init__(self, masker):
        self.masker, self.name, self.calls = masker, masker.name, []

    def __call__(self, rgb):
        self.calls.append(rgb.shape)
        return self.masker(rgb)


@pytest.mark.parametrize("overlap", [False, True])
def test_a_bad_frame_fails_the_batch_before_any_model_runs(tiny_dino_extractor, overlap):
    masker = _CountingMasker(tiny_dino_extractor.masker)
    ex = replace(tiny_dino_extractor, masker=masker, overlap=overlap)
    vit = ex.backbone.vit
    forwards = []
    original = vit.forward_features
    vit.forward_features = lambda x: forwards.append(tuple(x.shape)) or original(x)
    try:
        with pytest.raises(InputError) as e:
            ex.extract_batch([Frame(rgb=_photo(40, 40, 0)), Frame(rgb=np.zeros((0, 5, 3), np.uint8))])
        assert e.value.field == "image"
        assert masker.calls == [] and forwards == []  # the good first frame was not worked on
        ex.extract_batch([Frame(rgb=_photo(40, 40, 0)), Frame(rgb=_photo(40, 40, 1))])
        # the counters do count: two masks, and one batched forward pass (two when overlapped)
        batched = [(1, 3, 42, 42)] * 2 if overlap else [(2, 3, 42, 42)]
        assert len(masker.calls) == 2 and forwards == batched
    finally:
        vit.forward_features = original
        if ex._helper is not None:
            ex._helper.shutdown()


def test_lite_does_not_claim_to_batch():
    assert not build_extractor("lite").can_batch
