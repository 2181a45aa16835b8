"""Profiles, weight discovery, the missing-weights message, and Extractors built from them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from skimage import data

from regiond.core.errors import MissingWeightsError
from regiond.core.regionset import SOURCE_SAM, SOURCE_SLIC
from regiond.extraction.profiles import (
    CHECKPOINTS,
    PROFILES,
    WEIGHTS_ENV,
    build_extractor,
    find_weights,
    resolve_profile,
    resolve_weights_dir,
)

OPEN_SAM = dict(points_per_side=2, points_per_batch=16, pred_iou_thresh=0.0, stability_score_thresh=0.0)


def _touch(d, *names):
    for n in names:
        p = d / n
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"x")


def test_profiles_are_what_design_says():
    paper, balanced, lite = PROFILES["paper"], PROFILES["balanced"], PROFILES["lite"]
    assert (paper.masker.kind, paper.masker.sam_model, paper.backbone) == ("sam+slic", "vit_h", "dinov2_vitl14")
    assert (balanced.masker.kind, balanced.masker.sam_model, balanced.backbone) == (
        "sam+slic",
        "vit_b",
        "dinov2_vitb14",
    )
    assert (lite.masker.kind, lite.backbone) == ("slic", "classic")
    assert [c.official for c in paper.required()] == ["sam_vit_h_4b8939.pth", "dinov2_vitl14_pretrain.pth"]
    assert [c.official for c in balanced.required()] == ["sam_vit_b_01ec64.pth", "dinov2_vitb14_pretrain.pth"]
    assert lite.required() == [] and PROFILES["tiny"].required() == []
    assert all(p.masker.preset == "image" and p.masker.min_piece == 300 for p in PROFILES.values())
    assert CHECKPOINTS["vit_l"].official == "sam_vit_l_0b3195.pth"


def test_weights_dir_argument_then_env_then_default(tmp_path, monkeypatch):
    monkeypatch.delenv(WEIGHTS_ENV, raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    assert resolve_weights_dir() == Path.home() / ".cache" / "regiond" / "weights"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert resolve_weights_dir() == tmp_path / "xdg" / "regiond" / "weights"  # the user's cache, as the memo's
    monkeypatch.setenv(WEIGHTS_ENV, str(tmp_path / "env"))
    assert resolve_weights_dir() == tmp_path / "env"
    assert resolve_weights_dir(tmp_path / "arg") == tmp_path / "arg"


def test_find_weights_official_and_timm_names(tmp_path):
    _touch(
        tmp_path,
        "sam_vit_b_01ec64.pth",
        "dinov2_vitl14_pretrain.pth",
        "vit_base_patch14_dinov2.lvd142m/model.safetensors",
        "unrelated.pth",
    )
    found = find_weights(tmp_path)
    assert found == {
        "vit_b": tmp_path / "sam_vit_b_01ec64.pth",
        "dinov2_vitl14": tmp_path / "dinov2_vitl14_pretrain.pth",
        "dinov2_vitb14": tmp_path / "vit_base_patch14_dinov2.lvd142m" / "model.safetensors",
    }


def test_explicit_profile_with_missing_weights_names_the_files(tmp_path):
    _touch(tmp_path, "dinov2_vitb14_pretrain.pth")
    with pytest.raises(MissingWeightsError) as e:
        resolve_profile("balanced", tmp_path)
    msg = str(e.value)
    assert str(tmp_path / "sam_vit_b_01ec64.pth") in msg
    assert "dinov2_vitb14" not in msg.split("(")[0]  # only what is missing
    with pytest.raises(MissingWeightsError, match="sam_vit_h_4b8939.pth"):
        build_extractor("paper", weights_dir=tmp_path)


def test_env_var_is_where_missing_files_are_looked_for(tmp_path, monkeypatch):
    monkeypatch.setenv(WEIGHTS_ENV, str(tmp_path))
    with pytest.raises(MissingWeightsError, match=str(tmp_path / "sam_vit_h_4b8939.pth")):
        resolve_profile("paper")


def test_auto_picks_the_best_profile_with_weights(tmp_path):
    notes = []
    assert resolve_profile("auto", tmp_path, announce=notes.append).name == "lite"
    assert len(notes) == 1 and "'lite'" in notes[0] and str(tmp_path) in notes[0]
    _touch(tmp_path, "sam_vit_b_01ec64.pth", "dinov2_vitb14_pretrain.pth")
    notes.clear()
    assert resolve_profile("auto", tmp_path, announce=notes.append).name == "balanced"
    assert notes == []
    _touch(tmp_path, "sam_vit_h_4b8939.pth", "dinov2_vitl14_pretrain.pth")
    assert resolve_profile("auto", tmp_path).name == "paper"


def test_unknown_profile_and_override():
    with pytest.raises(ValueError, match="unknown profile"):
        resolve_profile("huge")
    with pytest.raises(ValueError, match="unknown build_extractor overrides"):
        build_extractor("lite", colour="blue")


@pytest.fixture(scope="module")
def photo():
    return np.ascontiguousarray(data.astronaut()[::4, ::4])


def test_lite_extractor_on_a_real_photo(tmp_path, photo):
    ex = build_extractor("lite", weights_dir=tmp_path)
    assert (ex.profile, ex.masker.name, ex.backbone.name) == ("lite", "slic", "classic")
    rs = ex.extract(photo)
    assert len(rs) > 20 and (rs.source == SOURCE_SLIC).all()
    assert rs.features.shape == (len(rs), ex.dim) and np.isfinite(rs.features).all()
    assert rs.coverage() == 1.0
    assert set(rs.meta["seconds"]) == {"masks", "features", "pooling"}


def test_tiny_extractor_runs_the_balanced_code_path(tmp_path, photo):
    """Tiny random SAM + tiny random DINOv2 through the same builders as `balanced`."""
    ex = build_extractor("tiny", weights_dir=tmp_path, sam_overrides=OPEN_SAM, min_piece=50)
    assert ex.masker.name == "sam+slic" and ex.backbone.name.startswith("dinov2")
    rs = ex.extract(photo)
    n_sam = int((rs.source == SOURCE_SAM).sum())
    assert n_sam >= 1 and (rs.source[n_sam:] == SOURCE_SLIC).all()
    assert rs.features.shape == (len(rs), ex.dim) and np.isfinite(rs.features).all()


def test_extractor_from_a_saved_tiny_sam_checkpoint(tmp_path, photo):
    from regiond.masks.sam import build_sam_model, save_sam_checkpoint

    path = save_sam_checkpoint(build_sam_model("tiny", seed=7), tmp_path / "tiny_sam.pth")
    a = build_extractor("tiny", sam_checkpoint=path, seed=0)
    b = build_extractor("tiny", seed=7)
    sa = a.masker.sam.model.state_dict()
    sb = b.masker.sam.model.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sb)  # the file's weights, not the seed-0 init
    c = build_extractor("tiny", seed=0).masker.sam.model.state_dict()
    assert not all(torch.equal(sa[k], c[k]) for k in c)


def test_max_pixels_reaches_extractor_and_masker(photo):
    from regiond.core.errors import InputError

    ex = build_extractor("lite", max_pixels=100 * 100)
    assert ex.max_pixels == 100 * 100 and ex.masker.max_pixels == 100 * 100
    with pytest.raises(InputError, match="exceeds the limit"):
        ex.extract(photo)  # 128×128
    big = build_extractor("lite", max_pixels=5000 * 5000)
    assert big.masker.max_pixels == 5000 * 5000
