"""DINOv2 through timm: offline checkpoint loading (official and timm layouts), the official
position-embedding interpolation, padding and the long-side cap."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from support_dinov2 import (
    ARCHITECTURES,
    _OfficialInterpolation,
    _Pickled,
    official_checkpoint,
    official_forward,
    official_shapes,
)

from regiond.core.errors import InputError, MissingWeightsError
from regiond.features import BACKBONES, CHECKPOINT_FILES, build_backbone
from regiond.features.dinov2 import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    create_vit,
    interpolate_patch_pos_embed,
    read_state_dict,
    save_official_checkpoint,
    to_official_state_dict,
    to_timm_state_dict,
)


def image(h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


# --- the official formula, written out as facebookresearch/dinov2 has it ------------------


# --- the official checkpoint layout, written out from facebookresearch/dinov2 ---------------
# models/vision_transformer.py (DinoVisionTransformer: cls_token, pos_embed, mask_token,
# patch_embed.proj, blocks, norm), layers/block.py (norm1, attn.qkv, attn.proj, ls1.gamma, norm2,
# mlp, ls2.gamma), layers/mlp.py (fc1, fc2), layers/swiglu_ffn.py (SwiGLUFFNFused: w12 =
# Linear(D, 2·hidden), w3 = Linear(hidden, D), hidden = (int(4·D·2/3) + 7) // 8 · 8), and
# hub/backbones.py (img_size 518 → 37×37 positions; block_chunks=0 → keys blocks.N.…).


@pytest.fixture(scope="module")
def tiny():
    return build_backbone("dinov2_tiny", seed=3)


# --- registry -----------------------------------------------------------------------------


def test_registry_and_checkpoint_names():
    assert CHECKPOINT_FILES == {
        "dinov2_vits14": "dinov2_vits14_pretrain.pth",
        "dinov2_vitb14": "dinov2_vitb14_pretrain.pth",
        "dinov2_vitl14": "dinov2_vitl14_pretrain.pth",
        "dinov2_vitg14": "dinov2_vitg14_pretrain.pth",
    }
    assert {n: BACKBONES[n].dim for n in CHECKPOINT_FILES} == {
        "dinov2_vits14": 384,
        "dinov2_vitb14": 768,
        "dinov2_vitl14": 1024,
        "dinov2_vitg14": 1536,
    }
    assert all(s.stride == 14 for s in BACKBONES.values())


@pytest.mark.parametrize("name", sorted(CHECKPOINT_FILES))
def test_released_architectures_match_their_checkpoint_layout(name):
    """timm's architecture (built on the meta device: no memory) takes exactly the official
    checkpoint's tensors once mapped, and writes exactly them (37×37 position grid; ViT-g's
    SwiGLU w12 is 2·4096 wide, w3 4096 → 1536)."""
    vit = create_vit(name, device="meta")
    assert vit.embed_dim == BACKBONES[name].dim == ARCHITECTURES[name][0]
    official = official_shapes(name)
    if name == "dinov2_vitg14":
        assert official["blocks.0.mlp.w12.weight"] == (8192, 1536) and official["blocks.0.mlp.w3.weight"] == (
            1536,
            4096,
        )
    mapped = to_timm_state_dict({k: torch.empty(shape, device="meta") for k, shape in official.items()}, vit)
    assert {k: tuple(v.shape) for k, v in mapped.items()} == {k: tuple(v.shape) for k, v in vit.state_dict().items()}
    assert {k: tuple(v.shape) for k, v in to_official_state_dict(vit).items()} == official


def test_released_models_need_their_checkpoint(tmp_path):
    with pytest.raises(MissingWeightsError, match="dinov2_vitl14_pretrain.pth"):
        build_backbone("dinov2_vitl14")
    with pytest.raises(MissingWeightsError, match="not found"):
        build_backbone("dinov2_vits14", checkpoint=tmp_path / "dinov2_vits14_pretrain.pth")
    with pytest.raises(InputError, match="backbone"):
        build_backbone("dinov3_vitl16")
    with pytest.raises(InputError, match="max_side"):
        build_backbone("dinov2_tiny", max_side=10)


# --- loading ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["dinov2_tiny", "dinov2_tiny_swiglu"])
def test_official_layout_checkpoint_loads_offline(tmp_path, name):
    """A checkpoint built from the official key table loads, and the model computes what the
    official forward computes over that checkpoint; the checkpoints this code writes hold
    what the official forward reads the same way."""
    heads = ARCHITECTURES[name][2]
    sd = official_checkpoint(name, seed=1)
    torch.save(sd, tmp_path / "official.pth")
    loaded = build_backbone(name, checkpoint=tmp_path / "official.pth", seed=2)
    img = image(45, 71)
    x = loaded.prepare(img)[0]
    torch.testing.assert_close(loaded(img).features, official_forward(sd, x, heads)[0], rtol=0, atol=1e-5)
    assert not torch.allclose(build_backbone(name, seed=2)(img).features, loaded(img).features, atol=1e-3)

    source = build_backbone(name, seed=3)
    written = torch.load(save_official_checkpoint(source.vit, tmp_path / "written.pth"), weights_only=True)
    assert {k: tuple(v.shape) for k, v in written.items()} == official_shapes(name)
    torch.testing.assert_close(source(img).features, official_forward(written, x, heads)[0], rtol=0, atol=1e-5)


def test_released_architecture_loads_official_layout(tmp_path):
    """The real ViT-S/14 layout through the official key names (random weights)."""
    sd = official_checkpoint("dinov2_vits14", seed=5)
    torch.save(sd, tmp_path / "dinov2_vits14_pretrain.pth")
    bb = build_backbone("dinov2_vits14", checkpoint=tmp_path / "dinov2_vits14_pretrain.pth")
    img = image(28, 42)
    want = official_forward(sd, bb.prepare(img)[0], heads=ARCHITECTURES["dinov2_vits14"][2])
    torch.testing.assert_close(bb(img).features, want[0], rtol=0, atol=1e-5)


@pytest.mark.parametrize("suffix", [".safetensors", ".pth"])
def test_timm_layout_checkpoint_loads(tmp_path, tiny, suffix):
    path = tmp_path / f"timm{suffix}"
    sd = {k: v.contiguous() for k, v in tiny.vit.state_dict().items()}
    if suffix == ".safetensors":
        from safetensors.torch import save_file

        save_file(sd, str(path))
    else:
        torch.save({"state_dict": sd}, path)
    assert "mask_token" not in read_state_dict(path)
    loaded = build_backbone("dinov2_tiny", checkpoint=path, seed=9)
    img = image(30, 30)
    assert torch.equal(loaded(img).features, tiny(img).features)


def test_wrong_checkpoints_are_refused(tmp_path, tiny):
    path = save_official_checkpoint(tiny.vit, tmp_path / "tiny.pth")
    with pytest.raises(ValueError, match="does not fit"):
        build_backbone("dinov2_tiny_swiglu", checkpoint=path)
    sd = torch.load(path, weights_only=True)
    sd["register_tokens"] = torch.zeros(1, 4, 32)
    torch.save(sd, tmp_path / "reg.pth")
    with pytest.raises(ValueError, match="registers"):
        build_backbone("dinov2_tiny", checkpoint=tmp_path / "reg.pth")
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="junk.pth: cannot read"):
        build_backbone("dinov2_tiny", checkpoint=tmp_path / "junk.pth")
    torch.save({"model": _Pickled()}, tmp_path / "pickle.pth")  # arbitrary objects: refused
    with pytest.raises(ValueError, match="weights-only"):
        build_backbone("dinov2_tiny", checkpoint=tmp_path / "pickle.pth")


# --- position embeddings ------------------------------------------------------------------


@pytest.mark.parametrize("hp,wp", [(448, 448), (518, 518), (252, 364), (70, 518), (532, 98), (14, 14)])
def test_interpolation_is_the_official_formula(tiny, hp, wp):
    pos = tiny.vit.pos_embed.detach()
    x = torch.zeros(1, 1 + (hp // 14) * (wp // 14), pos.shape[-1])
    want = _OfficialInterpolation(pos)(x, hp, wp)
    got = torch.cat([pos[:, :1], interpolate_patch_pos_embed(pos[:, 1:], hp // 14, wp // 14)], dim=1)
    assert torch.equal(got, want)


@pytest.mark.parametrize("h,w", [(448, 448), (61, 97), (518, 518)])
def test_backbone_equals_official_forward(tiny, h, w):
    x, pad, size, scale, _ = tiny.prepare(image(h, w))
    sd = tiny.vit.state_dict()  # timm's names for the plain-MLP layout are the official ones
    torch.testing.assert_close(tiny(image(h, w)).features, official_forward(sd, x, heads=2)[0], rtol=0, atol=1e-5)


def test_timm_default_resampling_differs_from_official():
    """timm's dynamic resampling (antialiased, by output size) is not the official one: at
    448×448 (a 32×32 grid from 37×37) the position embeddings and the patch tokens differ;
    at 518×518 both use the embeddings as they are."""
    from timm.layers import resample_abs_pos_embed
    from timm.models.vision_transformer import VisionTransformer

    bb = build_backbone("dinov2_tiny", seed=4)
    vit = bb.vit
    with torch.no_grad():  # smooth embeddings, as trained ones are: the gap is then interpolation alone
        yy, xx = torch.meshgrid(torch.linspace(0, 3, 37), torch.linspace(0, 3, 37), indexing="ij")
        waves = torch.stack([torch.sin(yy * (k % 5 + 1) + xx * (k // 5)) for k in range(32)], -1)
        vit.pos_embed[0, 1:] = waves.reshape(37 * 37, 32) * 0.5
    pos = vit.pos_embed.detach()
    ours = interpolate_patch_pos_embed(pos[:, 1:], 32, 32)
    timm_default = resample_abs_pos_embed(pos[:, 1:], new_size=(32, 32), old_size=(37, 37), num_prefix_tokens=0)
    gap = (ours - timm_default).abs().max().item()
    assert gap > 1e-2, gap

    img = image(448, 448)
    x = bb.prepare(img)[0]
    with torch.no_grad():
        t = vit.patch_embed(x)
        timm_tokens = vit.norm(vit.blocks(VisionTransformer._pos_embed(vit, t)))[0, 1:]
    ours_tokens = bb(img).features.reshape(32, -1).T
    assert (ours_tokens - timm_tokens).abs().max().item() > 1e-3

    img = image(518, 518)
    with torch.no_grad():
        t = vit.patch_embed(bb.prepare(img)[0])
        timm_tokens = vit.norm(vit.blocks(VisionTransformer._pos_embed(vit, t)))[0, 1:]
    torch.testing.assert_close(bb(img).features.reshape(32, -1).T, timm_tokens, rtol=0, atol=1e-5)


# --- padding and cap ----------------------------------------------------------------------


def test_normalise_then_zero_pad(tiny):
    img = image(50, 71)
    x, pad, size, scale, original = tiny.prepare(img)
    assert pad == (3, 3, 6, 7) and x.shape == (1, 3, 56, 84) and size == (50, 71) and scale == 1.0
    inner = x[0, :, 3:53, 6:77]
    want = (
        torch.from_numpy(img).permute(2, 0, 1).float() / 255 - torch.tensor(IMAGENET_MEAN)[:, None, None]
    ) / torch.tensor(IMAGENET_STD)[:, None, None]
    torch.testing.assert_close(inner, want)
    assert x[0, :, :3].abs().max() == 0 and x[0, :, 53:].abs().max() == 0
    assert x[0, :, :, :6].abs().max() == 0 and x[0, :, :, 77:].abs().max() == 0
    g = tiny(img)
    assert g.features.shape == (32, 4, 6) and g.pad == pad and g.image_size == (50, 71)
    assert g.features.dtype == torch.float32 and torch.isfinite(g.features).all()


def test_last_layer_after_final_norm(tiny):
    """LayerNorm output without affine shift: every token has zero mean over channels once
    the norm's bias is removed and its weight is one."""
    bb = build_backbone("dinov2_tiny", seed=3)
    with torch.no_grad():
        bb.vit.norm.weight.fill_(1.0)
        bb.vit.norm.bias.zero_()
    f = bb(image(30, 44)).features
    torch.testing.assert_close(f.mean(0), torch.zeros(f.shape[1:]), rtol=0, atol=1e-5)
    torch.testing.assert_close(f.var(0, unbiased=False), torch.ones(f.shape[1:]), rtol=0, atol=1e-3)


def test_long_side_cap():
    bb = build_backbone("dinov2_tiny", max_side=140)
    g = bb(image(210, 420))
    assert g.image_size == (70, 140) and g.scale == pytest.approx(1 / 3) and g.source_size == (210, 420)
    assert g.features.shape == (32, 5, 10) and g.pad == (0, 0, 0, 0)
    small = bb(image(100, 60))  # under the cap: untouched
    assert small.image_size == (100, 60) and small.scale == 1.0 and small.original_size is None


def test_bad_images(tiny):
    for bad in (np.zeros((0, 5, 3), np.uint8), np.zeros((5, 5, 5), np.uint8), "not an image"):
        with pytest.raises(InputError) as e:
            tiny(bad)
        assert e.value.field == "image"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_gpu_matches_cpu(tiny):
    gpu = build_backbone("dinov2_tiny", seed=3, device="cuda")
    img = image(61, 97)
    out = gpu(img)
    assert out.features.device.type == "cuda"
    torch.testing.assert_close(out.features.cpu(), tiny(img).features, rtol=0, atol=1e-4)
