"""SAM through segment-anything's real automatic mask generator, with a tiny random SAM built by
segment_anything's own _build_sam, saved and reloaded in the official checkpoint layout."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch
from segment_anything import SamAutomaticMaskGenerator
from segment_anything.build_sam import sam_model_registry
from skimage import data

from regiond.masks import MaskerSpec, build_masker
from regiond.masks.generator import SOURCE_SAM, SOURCE_SLIC
from regiond.masks.sam import (
    PRESETS,
    SAM_ARCHS,
    SamGeneratorConfig,
    SamMasker,
    build_sam_model,
    generator_config,
    save_sam_checkpoint,
)

#: Thresholds off so a random model still yields masks; few prompts keep it quick.
OPEN = dict(points_per_side=4, points_per_batch=16, pred_iou_thresh=0.0, stability_score_thresh=0.0)
FEW = dict(OPEN, points_per_side=2)  # where only the code path matters


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    return np.ascontiguousarray(data.astronaut()[::4, ::4])  # 128×128 real photo


@pytest.fixture(scope="module")
def tiny_sam():
    return build_sam_model("tiny", seed=0)


def test_presets_are_the_papers_numbers():
    img, scene, act = PRESETS["image"], PRESETS["scene"], PRESETS["activity"]
    assert (
        img.points_per_side,
        img.pred_iou_thresh,
        img.stability_score_thresh,
        img.stability_score_offset,
        img.box_nms_thresh,
        img.min_mask_region_area,
    ) == (32, 0.88, 0.95, 1.0, 0.7, 0)
    assert (scene.points_per_side, scene.stability_score_thresh, scene.pred_iou_thresh) == (16, 0.85, 0.88)
    assert (act.points_per_side, act.stability_score_thresh, act.min_mask_region_area) == (8, 0.85, 500)


def test_generator_config_matches_segment_anything_signature():
    import inspect

    params = inspect.signature(SamAutomaticMaskGenerator.__init__).parameters
    defaults = SamGeneratorConfig()
    for name, value in vars(defaults).items():
        assert name in params, name
        assert params[name].default == value, name  # our defaults are the library's


def test_every_parameter_overridable():
    cfg = generator_config("scene", points_per_side=4, box_nms_thresh=0.5, crop_n_layers=1)
    assert (cfg.points_per_side, cfg.box_nms_thresh, cfg.crop_n_layers) == (4, 0.5, 1)
    assert cfg.stability_score_thresh == 0.85  # the rest of the preset stays
    with pytest.raises(ValueError, match="unknown SAM generator parameters"):
        generator_config("image", points_per_sde=4)
    with pytest.raises(ValueError, match="unknown SAM preset"):
        generator_config("video")


@pytest.mark.parametrize("name", ["vit_h", "vit_l", "vit_b"])
def test_official_archs_match_segment_anything(name, monkeypatch):
    """Our encoder sizes are the arguments segment_anything's own registry passes to _build_sam."""
    bs = sys.modules["segment_anything.build_sam"]  # the package re-exports a function of that name
    calls = {}
    monkeypatch.setattr(bs, "_build_sam", lambda **kw: calls.setdefault("kw", kw))
    sam_model_registry[name]()
    kw, arch = calls["kw"], SAM_ARCHS[name]
    assert (
        kw["encoder_embed_dim"],
        kw["encoder_depth"],
        kw["encoder_num_heads"],
        tuple(kw["encoder_global_attn_indexes"]),
    ) == (arch.encoder_embed_dim, arch.encoder_depth, arch.encoder_num_heads, arch.encoder_global_attn_indexes)


def test_tiny_sam_through_the_real_generator(tiny_sam, photo):
    masker = SamMasker(tiny_sam, generator_config("image", **OPEN), model_name="tiny", generator="reference")
    assert isinstance(masker.generator, SamAutomaticMaskGenerator)
    assert masker.generator.pred_iou_thresh == 0.0 and masker.generator.box_nms_thresh == 0.7
    props = masker(photo)
    assert len(props) >= 1
    assert props.masks.shape[1:] == photo.shape[:2] and props.masks.dtype == bool
    assert (props.source == SOURCE_SAM).all()
    assert np.isfinite(props.scores).all()
    assert props.masks.reshape(len(props), -1).any(1).all()  # no empty masks


def test_checkpoint_in_official_layout_round_trip(tiny_sam, photo, tmp_path):
    path = save_sam_checkpoint(tiny_sam, tmp_path / "sam_tiny.pth")
    state = torch.load(path, weights_only=True)  # a plain state dict: loads with no code
    assert isinstance(state, dict) and all(isinstance(v, torch.Tensor) for v in state.values())
    prefixes = {k.split(".")[0] for k in state}
    assert prefixes == {"image_encoder", "prompt_encoder", "mask_decoder"}
    assert "image_encoder.patch_embed.proj.weight" in state
    other = build_sam_model("tiny", seed=123)  # different init ...
    loaded = build_sam_model("tiny", path)  # ... the file wins
    for k, v in loaded.state_dict().items():
        assert torch.equal(v, state[k]), k
    assert not torch.equal(
        other.state_dict()["mask_decoder.iou_prediction_head.layers.0.weight"],
        state["mask_decoder.iou_prediction_head.layers.0.weight"],
    )
    a = SamMasker(tiny_sam, generator_config("image", **FEW))(photo)
    b = SamMasker(loaded, generator_config("image", **FEW))(photo)
    assert len(a) >= 1
    assert np.array_equal(a.masks, b.masks) and np.allclose(a.scores, b.scores)


def test_damaged_checkpoint_is_a_clear_error(tiny_sam, tmp_path):
    state = tiny_sam.state_dict()
    state.pop("mask_decoder.iou_token.weight")
    path = tmp_path / "broken.pth"
    torch.save(state, path)
    with pytest.raises(ValueError, match="broken.pth is not a SAM tiny checkpoint"):
        build_sam_model("tiny", path)
    with pytest.raises(ValueError, match="needs its official checkpoint"):
        build_sam_model("vit_b", None)


def test_cover_with_sam_masks_then_slic_pieces(photo):
    gen = build_masker(MaskerSpec("sam+slic", "tiny", sam_overrides=FEW, min_piece=50))
    props = gen(photo)
    n_sam = int((props.source == SOURCE_SAM).sum())
    assert n_sam >= 1 and (props.source[:n_sam] == SOURCE_SAM).all()
    assert (props.source[n_sam:] == SOURCE_SLIC).all()
    sam_union = props.masks[:n_sam].any(0)
    assert not (props.masks[n_sam:] & sam_union).any()


def test_real_generator_with_no_masks_gives_whole_superpixels(photo):
    # pred_iou_thresh above 1: segment-anything's filter drops every mask.
    gen = build_masker(MaskerSpec("sam+slic", "tiny", sam_overrides=dict(FEW, pred_iou_thresh=1.01)))
    props = gen(photo)
    assert len(props) > 10 and (props.source == SOURCE_SLIC).all()
    assert (props.masks.sum(0) == 1).all()


def test_one_masker_shared_by_threads(tiny_sam, photo):
    """The service shares one Extractor across streams: concurrent calls must not mix images."""
    from concurrent.futures import ThreadPoolExecutor

    masker = SamMasker(tiny_sam, generator_config("image", **FEW))
    images = [photo, np.ascontiguousarray(photo[::-1, :, ::-1][:96])]
    expected = [masker(im) for im in images]
    with ThreadPoolExecutor(2) as pool:
        got = list(pool.map(masker, images))
    for i, props in enumerate(got):
        want = expected[i % 2]
        assert np.array_equal(props.masks, want.masks) and np.allclose(props.scores, want.scores)
