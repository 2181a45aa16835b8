"""The heads: per-region classifiers and transformers over region (or patch) tokens.

Every model takes a TokenBatch (batch.py) and returns logits: B×T×C per token, or B×C per
sample for heads with a class token. Input features are standardised with the training
set's mean and std, kept as buffers so they are saved with the weights (a linear probe
stays linear).

Registered names (create_head):
  region-linear         linear probe per region                        (segment)
  region-mlp            MLP, one hidden layer of 1000                  (segment)
  region-block          one transformer block over an image's regions  (segment)
  scene-transformer     3 layers, 8 heads, 2D + 3D embeddings          (scene)
  activity-transformer  3 layers, class token, time + 2D embeddings    (activity)
The patch-token baselines use the same names fed patch tokens (patches.py); `patch-linear`
is region-linear on patch tokens, registered separately so saved heads say what they read.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from regiond.extraction.cache import CLIP_FRAMES
from regiond.heads.batch import POS2D_DIM, POS3D_DIM, TIME_DIM, TokenBatch
from regiond.heads.catalogue import register_head


class Standardize(nn.Module):
    """(x - mean) / std with buffers set from training data (set_stats); identity until then."""

    def __init__(self, dim: int):
        super().__init__()
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("std", torch.ones(dim))

    @torch.no_grad()
    def set_stats(self, features: torch.Tensor) -> None:
        self.mean.copy_(features.mean(0))
        if len(features) < 2:
            self.std.fill_(1.0)
            return
        std = features.std(0)
        # A feature (nearly) constant in training would be blown up wherever it varies on new
        # data: floor every std at a tenth of the mean std.
        self.std.copy_(std.clamp_min(max(1e-6, 0.1 * float(std.mean()))))

    def forward(self, x):
        return (x - self.mean) / self.std


@dataclass
class RegionClassifierConfig:
    """Per-region classifier that sees one token at a time.

    in_dim       feature width of the tokens (backbone dim)
    num_classes  number of outputs
    hidden       hidden width of the MLP; 0 = a linear probe
    dropout      dropout before the last layer (training only)
    tokens       what it was trained on: "regions" or "patches"
    """

    in_dim: int
    num_classes: int
    hidden: int = 1000
    dropout: float = 0.0
    tokens: str = "regions"


class RegionClassifier(nn.Module):
    per_token = True

    def __init__(self, cfg: RegionClassifierConfig):
        super().__init__()
        self.norm = Standardize(cfg.in_dim)
        if cfg.hidden > 0:
            self.net = nn.Sequential(
                nn.Linear(cfg.in_dim, cfg.hidden),
                nn.GELU(),
                nn.Dropout(cfg.dropout),
                nn.Linear(cfg.hidden, cfg.num_classes),
            )
        else:
            self.net = nn.Sequential(nn.Dropout(cfg.dropout), nn.Linear(cfg.in_dim, cfg.num_classes))

    def forward(self, batch: TokenBatch) -> torch.Tensor:
        return self.net(self.norm(batch.features))


@dataclass
class TokenTransformerConfig:
    """Transformer encoder over the tokens of one sample (an image, a scene, a clip).

    in_dim       feature width of the tokens
    num_classes  number of outputs
    dim          model width
    layers       encoder layers
    heads        attention heads
    mlp_ratio    feed-forward width / dim
    dropout      dropout inside the encoder (training only; off by default: on a CPU, dropout on
                 the attention weights takes PyTorch off its fused attention path, ~3× slower)
    pos2d        add the 2D box embedding
    pos3d        add the 3D centroid embedding (tokens without depth get the `missing` flag)
    time         add the frame-number embedding
    cls_token    one prediction per sample from a class token (activity); else per token
    max_tokens   tokens per sample: activity pads to this (400 in the paper); scenes sample
                 this many at most (0 = no limit)
    tokens       what it reads: "regions" or "patches"
    window       frames per clip (activity): the clip length of the cache it was trained on,
                 what serving feeds it; heads saved before it was recorded read as 8
    """

    in_dim: int
    num_classes: int
    dim: int = 256
    layers: int = 3
    heads: int = 8
    mlp_ratio: float = 4.0
    dropout: float = 0.0
    pos2d: bool = True
    pos3d: bool = False
    time: bool = False
    cls_token: bool = False
    max_tokens: int = 0
    tokens: str = "regions"
    window: int = CLIP_FRAMES


class TokenTransformer(nn.Module):
    def __init__(self, cfg: TokenTransformerConfig):
        super().__init__()
        if cfg.dim % cfg.heads:
            raise ValueError(f"dim {cfg.dim} is not divisible by heads {cfg.heads}")
        self.cfg = cfg
        self.per_token = not cfg.cls_token
        self.norm = Standardize(cfg.in_dim)
        self.proj = nn.Linear(cfg.in_dim, cfg.dim)
        self.pos2d = nn.Linear(POS2D_DIM, cfg.dim) if cfg.pos2d else None
        self.pos3d = nn.Linear(POS3D_DIM, cfg.dim) if cfg.pos3d else None
        self.time = nn.Linear(TIME_DIM, cfg.dim) if cfg.time else None
        self.cls = nn.Parameter(torch.zeros(1, 1, cfg.dim)) if cfg.cls_token else None
        layer = nn.TransformerEncoderLayer(
            cfg.dim,
            cfg.heads,
            int(cfg.dim * cfg.mlp_ratio),
            cfg.dropout,
            activation="gelu",
            batch_first=True,
            norm_first=True,
        )
        self.encoder = nn.TransformerEncoder(layer, cfg.layers, enable_nested_tensor=False)
        self.out_norm = nn.LayerNorm(cfg.dim)
        self.out = nn.Linear(cfg.dim, cfg.num_classes)
        if self.cls is not None:
            nn.init.normal_(self.cls, std=0.02)

    def forward(self, batch: TokenBatch) -> torch.Tensor:
        x = self.proj(self.norm(batch.features))
        for emb, value in ((self.pos2d, batch.pos2d), (self.pos3d, batch.pos3d), (self.time, batch.time)):
            if emb is not None:
                x = x + emb(value)
        pad = batch.pad
        if self.cls is not None:
            x = torch.cat([self.cls.expand(x.shape[0], -1, -1), x], dim=1)
            pad = torch.cat([torch.zeros_like(pad[:, :1]), pad], dim=1)
        x = self.out_norm(self._encode(x, pad))
        return self.out(x[:, 0] if self.cls is not None else x)

    def _encode(self, x: torch.Tensor, pad: torch.Tensor) -> torch.Tensor:
        """The encoder layers. Training runs torch's module (dropout, autograd); inference the
        same pre-norm layers with fused scaled-dot-product attention, which never builds the
        attention matrix: a 1,950-token scene chunk took 112 instead of 395 ms on one CPU thread
        (and 1,034 ms with an all-False padding mask), with the same outputs to ~1e-6."""
        if self.training:
            return self.encoder(x, src_key_padding_mask=pad)
        keep = None if not pad.any() else ~pad[:, None, None, :]  # no mask at all: the fastest kernel
        for layer in self.encoder.layers:
            attn = layer.self_attn
            h = layer.norm1(x)
            b, t, d = h.shape
            qkv = F.linear(h, attn.in_proj_weight, attn.in_proj_bias).view(b, t, 3, attn.num_heads, d // attn.num_heads)
            q, k, v = qkv.permute(2, 0, 3, 1, 4)
            o = F.scaled_dot_product_attention(q, k, v, attn_mask=keep).transpose(1, 2).reshape(b, t, d)
            x = x + attn.out_proj(o)
            x = x + layer.linear2(layer.activation(layer.linear1(layer.norm2(x))))
        return x if self.encoder.norm is None else self.encoder.norm(x)


register_head("region-linear", RegionClassifierConfig, RegionClassifier, hidden=0, doc="linear probe per region")
register_head(
    "region-mlp", RegionClassifierConfig, RegionClassifier, hidden=1000, doc="MLP per region, one hidden layer"
)
register_head(
    "region-block",
    TokenTransformerConfig,
    TokenTransformer,
    layers=1,
    pos2d=True,
    doc="one transformer block over an image's regions",
)
register_head(
    "scene-transformer",
    TokenTransformerConfig,
    TokenTransformer,
    layers=3,
    heads=8,
    pos2d=True,
    pos3d=True,
    max_tokens=2048,
    doc="3 layers, 8 heads over the regions of a scene's frames, 2D + 3D embeddings",
)
register_head(
    "activity-transformer",
    TokenTransformerConfig,
    TokenTransformer,
    layers=3,
    heads=8,
    pos2d=True,
    time=True,
    cls_token=True,
    max_tokens=400,
    doc="3 layers over 8 frames' regions padded to 400, time embedding, class token",
)
register_head(
    "patch-linear",
    RegionClassifierConfig,
    RegionClassifier,
    hidden=0,
    tokens="patches",
    doc="linear classifier per patch token (baseline for images)",
)
