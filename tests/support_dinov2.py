"""DINOv2 as the official code computes it (position-embedding interpolation, forward pass) and
checkpoints in the official key layout, as references for the backbone's tests."""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

ARCHITECTURES = {  # name: (embed dim, depth, heads, FFN), as hub/backbones.py builds them
    "dinov2_vits14": (384, 12, 6, "mlp"),
    "dinov2_vitb14": (768, 12, 12, "mlp"),
    "dinov2_vitl14": (1024, 24, 16, "mlp"),
    "dinov2_vitg14": (1536, 40, 24, "swiglufused"),
    "dinov2_tiny": (32, 2, 2, "mlp"),
    "dinov2_tiny_swiglu": (32, 2, 2, "swiglufused"),
}


class _OfficialInterpolation(nn.Module):
    """DinoVisionTransformer.interpolate_pos_encoding (interpolate_offset 0.1, antialias
    False), kept with its own variable names: the input is B×C×w×h, so its "w" is the height."""

    def __init__(self, pos_embed: torch.Tensor, patch_size: int = 14):
        super().__init__()
        self.pos_embed, self.patch_size = pos_embed, patch_size
        self.interpolate_offset, self.interpolate_antialias = 0.1, False

    def forward(self, x, w, h):
        npatch = x.shape[1] - 1
        N = self.pos_embed.shape[1] - 1
        if npatch == N and w == h:
            return self.pos_embed
        pos_embed = self.pos_embed.float()
        class_pos_embed = pos_embed[:, 0]
        patch_pos_embed = pos_embed[:, 1:]
        dim = x.shape[-1]
        w0 = w // self.patch_size
        h0 = h // self.patch_size
        M = int(math.sqrt(N))
        assert N == M * M
        sx = float(w0 + self.interpolate_offset) / M
        sy = float(h0 + self.interpolate_offset) / M
        patch_pos_embed = nn.functional.interpolate(
            patch_pos_embed.reshape(1, M, M, dim).permute(0, 3, 1, 2),
            mode="bicubic",
            antialias=self.interpolate_antialias,
            scale_factor=(sx, sy),
        )
        assert (w0, h0) == patch_pos_embed.shape[-2:]
        patch_pos_embed = patch_pos_embed.permute(0, 2, 3, 1).view(1, -1, dim)
        return torch.cat((class_pos_embed.unsqueeze(0), patch_pos_embed), dim=1)


def official_forward(sd: dict, x: torch.Tensor, heads: int) -> torch.Tensor:
    """DinoVisionTransformer.forward_features (eval, no masks) written out over a state dict in
    the official layout: prepare_tokens_with_masks → Block × depth (attention, LayerScale,
    Mlp or SwiGLUFFN) → norm; patch tokens as B×C×h×w (x: normalised, padded B×3×H×W)."""
    B, nc, w, h = x.shape
    t = F.conv2d(x, sd["patch_embed.proj.weight"], sd["patch_embed.proj.bias"], stride=14)
    gh, gw = t.shape[-2:]
    t = torch.cat((sd["cls_token"].expand(B, -1, -1), t.flatten(2).transpose(1, 2)), dim=1)
    t = t + _OfficialInterpolation(sd["pos_embed"])(t, w, h)
    N, C = t.shape[1:]

    def norm(v, name):  # partial(nn.LayerNorm, eps=1e-6)
        return F.layer_norm(v, (C,), sd[f"{name}.weight"], sd[f"{name}.bias"], eps=1e-6)

    def linear(v, name):
        return F.linear(v, sd[f"{name}.weight"], sd[f"{name}.bias"])

    depth = len({k.split(".")[1] for k in sd if k.startswith("blocks.")})
    for i in range(depth):
        b = f"blocks.{i}"
        qkv = linear(norm(t, f"{b}.norm1"), f"{b}.attn.qkv").reshape(B, N, 3, heads, C // heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0] * (C // heads) ** -0.5, qkv[1], qkv[2]
        attn = (q @ k.transpose(-2, -1)).softmax(dim=-1)
        t = t + sd[f"{b}.ls1.gamma"] * linear((attn @ v).transpose(1, 2).reshape(B, N, C), f"{b}.attn.proj")
        y = norm(t, f"{b}.norm2")
        if f"{b}.mlp.w12.weight" in sd:  # SwiGLUFFN: silu(x1) · x2, x1 the first half of w12
            x1, x2 = linear(y, f"{b}.mlp.w12").chunk(2, dim=-1)
            y = linear(F.silu(x1) * x2, f"{b}.mlp.w3")
        else:  # Mlp: fc1 → GELU → fc2
            y = linear(F.gelu(linear(y, f"{b}.mlp.fc1")), f"{b}.mlp.fc2")
        t = t + sd[f"{b}.ls2.gamma"] * y
    t = norm(t, "norm")
    return t[:, 1:].reshape(B, gh, gw, -1).permute(0, 3, 1, 2)


def official_shapes(name: str) -> dict[str, tuple]:
    """Every tensor of the official `<name>_pretrain.pth` and its shape."""
    dim, depth, _, ffn = ARCHITECTURES[name]
    shapes = {
        "cls_token": (1, 1, dim),
        "pos_embed": (1, 1 + 37 * 37, dim),
        "mask_token": (1, dim),
        "patch_embed.proj.weight": (dim, 3, 14, 14),
        "patch_embed.proj.bias": (dim,),
        "norm.weight": (dim,),
        "norm.bias": (dim,),
    }
    if ffn == "swiglufused":
        hidden = (int(4 * dim * 2 / 3) + 7) // 8 * 8
        mlp = {
            "mlp.w12.weight": (2 * hidden, dim),
            "mlp.w12.bias": (2 * hidden,),
            "mlp.w3.weight": (dim, hidden),
            "mlp.w3.bias": (dim,),
        }
    else:
        mlp = {
            "mlp.fc1.weight": (4 * dim, dim),
            "mlp.fc1.bias": (4 * dim,),
            "mlp.fc2.weight": (dim, 4 * dim),
            "mlp.fc2.bias": (dim,),
        }
    block = {
        "norm1.weight": (dim,),
        "norm1.bias": (dim,),
        "attn.qkv.weight": (3 * dim, dim),
        "attn.qkv.bias": (3 * dim,),
        "attn.proj.weight": (dim, dim),
        "attn.proj.bias": (dim,),
        "ls1.gamma": (dim,),
        "norm2.weight": (dim,),
        "norm2.bias": (dim,),
        **mlp,
        "ls2.gamma": (dim,),
    }
    for i in range(depth):
        shapes.update({f"blocks.{i}.{k}": shape for k, shape in block.items()})
    return shapes


def official_checkpoint(name: str, seed: int) -> dict[str, torch.Tensor]:
    """Random weights in the official layout (scales, gains and LayerScales near 1)."""
    g = torch.Generator().manual_seed(seed)
    sd = {}
    for key, shape in official_shapes(name).items():
        t = 0.1 * torch.randn(shape, generator=g)
        sd[key] = t + 1 if key.endswith(("norm1.weight", "norm2.weight", "norm.weight", ".gamma")) else t
    return sd


class _Pickled:
    """Not a tensor: a weights-only load must refuse it."""
