"""DINOv2 ViT-S/B/L/g/14 through timm's VisionTransformer, loaded offline.

What the paper (and DESIGN.md) fixes, and how it is done here:

* Weights come from a local file only (timm models are built with pretrained=False):
  the official facebookresearch release (`dinov2_vitl14_pretrain.pth`: `mask_token`,
  `blocks.N.ls1.gamma`, `pos_embed` of 1 + 37·37 tokens, `mlp.w12`/`mlp.w3` SwiGLU for g/14)
  or a timm file (.pth or .safetensors). The official layout is mapped with timm's own
  `checkpoint_filter_fn` (it drops `mask_token` and renames w12/w3 to fc1/fc2).
  `torch.load(weights_only=True)`, never a pickle.
* The image at native resolution, optionally capped on its long side; ImageNet mean/std
  normalisation first, then zero padding to a multiple of 14 with the floor of the padding
  on top/left. This is what the official code does: its segmentation/depth heads normalise
  in the data pipeline and pad the *normalised* tensor with zeros in a forward pre-hook
  (`CenterPadding`), so the padding is the ImageNet mean colour, not black.
* Position embeddings are interpolated exactly as the official
  `DinoVisionTransformer.interpolate_pos_encoding`: the M×M patch grid (M = 37) is resized
  by F.interpolate(mode="bicubic", antialias=False,
  scale_factor=((Hp/14 + 0.1)/M, (Wp/14 + 0.1)/M)) and used as is when the grid is M×M.
  timm's dynamic resampling (antialiased, by output size) differs from it, so the model's
  `_pos_embed` is replaced by `official_pos_embed`.
* Output: the last block after the final norm, patch tokens only (no class token).
"""

from __future__ import annotations

import math
import re
import types
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file

from regiond.core.errors import InputError, MissingWeightsError
from regiond.core.frames import as_rgb8
from regiond.features.backbone import FeatureGrid, cap_long_side, padding

PATCH = 14
PRETRAIN_IMG_SIZE = 518  # 37×37 position grid in every released model
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
INTERPOLATE_OFFSET = 0.1  # the official code's offset against floating point error


@dataclass(frozen=True)
class Dinov2Arch:
    """One DINOv2 architecture.

    timm_name  the timm model function (built with pretrained=False), or None for a tiny
               test variant built from `vit_kwargs` directly
    checkpoint the official release file name (None for tiny variants: random weights)
    vit_kwargs VisionTransformer arguments for tiny variants
    """

    name: str
    dim: int
    timm_name: str | None = None
    checkpoint: str | None = None
    vit_kwargs: dict = field(default_factory=dict)
    description: str = ""


def _tiny(name: str, swiglu: bool, description: str) -> Dinov2Arch:
    kw = dict(embed_dim=32, depth=2, num_heads=2, init_values=1.0)
    if swiglu:
        # The g/14 layout: official SwiGLUFFNFused hidden = (int(4·D·2/3) + 7) // 8 · 8 = 88
        # for D = 32; timm's packed fc1 is twice that wide.
        kw.update(mlp_ratio=2 * 88 / 32, mlp_layer="swiglu_packed", act_layer="silu")
    return Dinov2Arch(name, 32, vit_kwargs=kw, description=description)


ARCHS: dict[str, Dinov2Arch] = {
    a.name: a
    for a in (
        Dinov2Arch(
            "dinov2_vits14",
            384,
            "vit_small_patch14_dinov2",
            "dinov2_vits14_pretrain.pth",
            description="DINOv2 ViT-S/14",
        ),
        Dinov2Arch(
            "dinov2_vitb14", 768, "vit_base_patch14_dinov2", "dinov2_vitb14_pretrain.pth", description="DINOv2 ViT-B/14"
        ),
        Dinov2Arch(
            "dinov2_vitl14",
            1024,
            "vit_large_patch14_dinov2",
            "dinov2_vitl14_pretrain.pth",
            description="DINOv2 ViT-L/14",
        ),
        Dinov2Arch(
            "dinov2_vitg14",
            1536,
            "vit_giant_patch14_dinov2",
            "dinov2_vitg14_pretrain.pth",
            description="DINOv2 ViT-g/14 (SwiGLU)",
        ),
        _tiny("dinov2_tiny", False, "tiny random DINOv2-layout ViT (tests)"),
        _tiny("dinov2_tiny_swiglu", True, "tiny random DINOv2-layout ViT with the g/14 SwiGLU FFN (tests)"),
    )
}


def create_vit(arch: Dinov2Arch | str, seed: int = 0, device: str | torch.device | None = None):
    """The timm VisionTransformer of an architecture, randomly initialised (deterministic in
    `seed`), at the 518 pre-training size so the position grid is 37×37, with the official
    position-embedding interpolation installed. device="meta" skips the initialisation
    (for loading a checkpoint with assign=True)."""
    import timm  # heavy: only when a DINOv2 model is built
    from timm.layers import SwiGLUPacked  # heavy: only when a DINOv2 model is built
    from timm.models.vision_transformer import VisionTransformer  # heavy: only when a DINOv2 model is built

    arch = ARCHS[arch] if isinstance(arch, str) else arch
    common = dict(img_size=PRETRAIN_IMG_SIZE, num_classes=0, dynamic_img_size=True)
    with torch.random.fork_rng(devices=[]), torch.device(device or "cpu"):
        torch.manual_seed(seed)
        if arch.timm_name is not None:
            vit = timm.create_model(arch.timm_name, pretrained=False, **common)
        else:
            kw = dict(arch.vit_kwargs)
            if kw.get("mlp_layer") == "swiglu_packed":
                kw["mlp_layer"] = SwiGLUPacked
            vit = VisionTransformer(patch_size=PATCH, **common, **kw)
    install_official_pos_embed(vit)
    return vit.eval()


# --- position embeddings -----------------------------------------------------------------


def interpolate_patch_pos_embed(patch_pos: torch.Tensor, grid_h: int, grid_w: int) -> torch.Tensor:
    """The official DINOv2 resampling of the 1×M²×C patch position embeddings to
    1×(grid_h·grid_w)×C; unchanged when the grid is M×M."""
    n, c = patch_pos.shape[1], patch_pos.shape[2]
    m = int(math.sqrt(n))
    if m * m != n:
        raise ValueError(f"position embedding of {n} patches is not a square grid")
    if grid_h * grid_w == n and grid_h == grid_w:
        return patch_pos
    dtype = patch_pos.dtype
    out = F.interpolate(
        patch_pos.float().reshape(1, m, m, c).permute(0, 3, 1, 2),
        scale_factor=((grid_h + INTERPOLATE_OFFSET) / m, (grid_w + INTERPOLATE_OFFSET) / m),
        mode="bicubic",
        antialias=False,
    )
    if tuple(out.shape[-2:]) != (grid_h, grid_w):
        raise AssertionError(f"interpolated grid {tuple(out.shape[-2:])} != {(grid_h, grid_w)}")
    return out.permute(0, 2, 3, 1).reshape(1, grid_h * grid_w, c).to(dtype)


def official_pos_embed(vit, x: torch.Tensor) -> torch.Tensor:
    """Replacement for VisionTransformer._pos_embed (dynamic_img_size, B×h×w×C patches in):
    class token first, then the official interpolation of the patch position embeddings."""
    b, gh, gw, c = x.shape
    pos = vit.pos_embed  # 1×(1 + M²)×C, class position first
    patch_pos = interpolate_patch_pos_embed(pos[:, 1:], gh, gw)
    tokens = torch.cat([vit.cls_token.expand(b, -1, -1), x.reshape(b, gh * gw, c)], dim=1)
    return vit.pos_drop(tokens + torch.cat([pos[:, :1], patch_pos], dim=1))


def install_official_pos_embed(vit) -> None:
    """Make `vit` (a timm VisionTransformer with dynamic_img_size, a class token, no
    registers) add position embeddings the official DINOv2 way."""
    if not vit.dynamic_img_size or vit.cls_token is None or vit.reg_token is not None or vit.no_embed_class:
        raise ValueError("official DINOv2 position embeddings need dynamic_img_size, a class token and no registers")
    vit._pos_embed = types.MethodType(official_pos_embed, vit)


# --- checkpoints --------------------------------------------------------------------------


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Tensors of a checkpoint file (.safetensors, or a torch file loaded weights-only)."""
    path = Path(path)
    if not path.is_file():
        raise MissingWeightsError(f"checkpoint not found: {path}")
    try:
        if path.suffix == ".safetensors":
            return load_file(str(path), device="cpu")
        sd = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # corrupt file, or a pickle that needs arbitrary code
        raise ValueError(
            f"{path}: cannot read as a weights-only checkpoint ({type(e).__name__}: {str(e)[:200]})"
        ) from e
    if not isinstance(sd, dict):
        raise ValueError(f"{path}: not a state dict")
    for wrapper in ("model", "state_dict", "teacher"):
        if wrapper in sd and isinstance(sd[wrapper], dict):
            sd = sd[wrapper]
    return sd


def to_timm_state_dict(sd: dict[str, torch.Tensor], vit) -> dict[str, torch.Tensor]:
    """Official facebookresearch keys (or timm keys) → this timm model's keys."""
    from timm.models.vision_transformer import checkpoint_filter_fn  # heavy: only when a DINOv2 checkpoint is loaded

    if "register_tokens" in sd:
        raise ValueError("DINOv2 checkpoints with registers are not supported (register-free models only)")
    # Training checkpoints chunk blocks for FSDP (blocks.<chunk>.<index>.…); index is global.
    sd = {re.sub(r"^blocks\.\d+\.(\d+)\.", r"blocks.\1.", k): v for k, v in sd.items()}
    sd = {k.removeprefix("backbone."): v for k, v in sd.items()}
    return checkpoint_filter_fn(sd, vit)


def load_checkpoint(vit, path: str | Path) -> None:
    """Load an official-layout or timm-layout DINOv2 checkpoint into `vit` (strict)."""
    sd = to_timm_state_dict(read_state_dict(path), vit)
    own = vit.state_dict()
    missing = sorted(set(own) - set(sd))
    unexpected = sorted(set(sd) - set(own))
    wrong = sorted(k for k in set(sd) & set(own) if sd[k].shape != own[k].shape)
    if missing or unexpected or wrong:

        def few(keys):
            return ", ".join(keys[:4]) + (" …" if len(keys) > 4 else "")

        raise ValueError(
            f"{path} does not fit this model (embed dim {vit.embed_dim}, depth {len(vit.blocks)}): "
            f"missing [{few(missing)}], unexpected [{few(unexpected)}], wrong shape [{few(wrong)}]"
        )
    on_meta = any(p.is_meta for p in vit.parameters())
    vit.load_state_dict(sd, strict=True, assign=on_meta)


def to_official_state_dict(vit) -> dict[str, torch.Tensor]:
    """The facebookresearch layout of a timm DINOv2 model's weights (adds a zero
    `mask_token`; SwiGLU fc1/fc2 become w12/w3). Used to write test checkpoints."""
    from timm.layers import GluMlp  # heavy: only when a DINOv2 checkpoint is written

    out = {}
    swiglu = {f"blocks.{i}.mlp." for i, b in enumerate(vit.blocks) if isinstance(b.mlp, GluMlp)}
    for k, v in vit.state_dict().items():
        prefix = k[: k.index(".mlp.") + 5] if ".mlp." in k else None
        if prefix in swiglu:
            k = k.replace(".mlp.fc1.", ".mlp.w12.").replace(".mlp.fc2.", ".mlp.w3.")
        out[k] = v.detach().clone()
    out["mask_token"] = torch.zeros(1, vit.embed_dim)
    return out


def save_official_checkpoint(vit, path: str | Path) -> Path:
    """Write `vit`'s weights as an official-layout DINOv2 .pth (plain tensors only)."""
    path = Path(path)
    torch.save(to_official_state_dict(vit), path)
    return path


# --- the backbone -------------------------------------------------------------------------


@dataclass
class Dinov2Backbone:
    """Patch features of a DINOv2 model at native resolution (see the module docstring).

    vit:      the timm VisionTransformer (official position embeddings installed)
    max_side: cap on the image's long side (area resize first); None keeps native size
    device:   torch device the model runs on
    """

    vit: object
    name: str
    max_side: int | None = None
    device: str = "cpu"
    stride: int = PATCH

    def __post_init__(self):
        self.vit = self.vit.to(self.device).eval()
        self._mean = torch.tensor(IMAGENET_MEAN, device=self.device).view(3, 1, 1)
        self._std = torch.tensor(IMAGENET_STD, device=self.device).view(3, 1, 1)

    @property
    def dim(self) -> int:
        return int(self.vit.embed_dim)

    def prepare(
        self, rgb: np.ndarray
    ) -> tuple[torch.Tensor, tuple[int, int, int, int], tuple[int, int], float, tuple[int, int]]:
        """Image → normalised, zero-padded 1×3×Hp×Wp tensor, padding, image size, scale, original size."""
        rgb = as_rgb8(rgb)
        original = rgb.shape[:2]
        rgb, scale = cap_long_side(rgb, self.max_side)
        h, w = rgb.shape[:2]
        pad = padding(h, w, PATCH)
        x = torch.from_numpy(rgb).to(self.device).permute(2, 0, 1).float().div_(255.0)
        x = (x - self._mean) / self._std
        x = F.pad(x, (pad[2], pad[3], pad[0], pad[1]))  # zeros in normalised space
        return x[None], pad, (h, w), scale, original

    def __call__(self, rgb: np.ndarray) -> FeatureGrid:
        return self.batch([rgb])[0]

    @torch.no_grad()  # not inference_mode: callers may use the features in autograd code
    def batch(self, rgbs: list[np.ndarray]) -> list[FeatureGrid]:
        """Feature grids of several images; images whose padded sizes agree share one forward
        pass (frames of one video, or of concurrent streams of one camera model)."""
        prepared = [self.prepare(rgb) for rgb in rgbs]
        grids: list[FeatureGrid | None] = [None] * len(rgbs)
        by_shape: dict[tuple, list[int]] = {}
        for i, (x, *_rest) in enumerate(prepared):
            by_shape.setdefault(tuple(x.shape), []).append(i)
        for shape, idx in by_shape.items():
            gh, gw = shape[2] // PATCH, shape[3] // PATCH
            tokens = self.vit.forward_features(torch.cat([prepared[i][0] for i in idx]))  # after the final norm
            for row, i in enumerate(idx):
                _, pad, size, scale, original = prepared[i]
                patches = tokens[row, self.vit.num_prefix_tokens :]  # drop the class token
                feats = patches.reshape(gh, gw, -1).permute(2, 0, 1).float().contiguous()
                grids[i] = FeatureGrid(
                    feats, PATCH, pad, size, scale, original_size=tuple(original) if scale != 1.0 else None
                )
        return grids


def build_dinov2(
    name: str, checkpoint: str | Path | None = None, device: str = "cpu", max_side: int | None = None, seed: int = 0
) -> Dinov2Backbone:
    """A DINOv2 backbone (through build_backbone, which checks the arguments). Released
    models need their checkpoint; tiny variants are random (deterministic in `seed`) unless
    a checkpoint is given."""
    if name not in ARCHS:
        raise InputError("backbone", f"unknown DINOv2 model {name!r}; known: {sorted(ARCHS)}")
    arch = ARCHS[name]
    if checkpoint is None and arch.checkpoint is not None:
        raise MissingWeightsError(f"{name} needs its checkpoint file {arch.checkpoint} (never downloaded)")
    if checkpoint is not None:
        vit = create_vit(arch, device="meta")  # no random init of weights about to be replaced
        load_checkpoint(vit, checkpoint)
    else:
        vit = create_vit(arch, seed=seed)
    return Dinov2Backbone(vit, name, max_side=max_side, device=device)
