"""Backbones (an RGB image → a FeatureGrid) and mask pooling.

`build_backbone(name, checkpoint=None, device="cpu", max_side=None)` is the one way to make
a backbone; `BACKBONES` says what each name is, its feature dimension and stride, and the
official checkpoint file it needs (`CHECKPOINT_FILES`, the table weight discovery uses).
torch/timm model code is imported only when a DINOv2 backbone is built.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from regiond.core.errors import InputError
from regiond.features.backbone import Backbone, FeatureGrid  # noqa: F401
from regiond.features.classic import CLASSIC_DIM, ClassicBackbone
from regiond.features.dinov2 import ARCHS, PATCH, build_dinov2


@dataclass(frozen=True)
class BackboneSpec:
    """A backbone name.

    dim         feature dimension D of its grid
    stride      pixels per grid cell (14 for all: the DINOv2 grid)
    checkpoint  official release file name of its weights; None when it needs none
    timm_name   timm's model function for DINOv2 models (built with pretrained=False)
    """

    name: str
    dim: int
    stride: int
    checkpoint: str | None = None
    timm_name: str | None = None
    description: str = ""

    @property
    def needs_weights(self) -> bool:
        return self.checkpoint is not None


def _registry() -> dict[str, BackboneSpec]:
    specs = [
        BackboneSpec(
            "classic",
            CLASSIC_DIM,
            14,
            description="CIELAB statistics, orientation and colour histograms per 14-px cell; no weights",
        )
    ]
    specs += [BackboneSpec(a.name, a.dim, PATCH, a.checkpoint, a.timm_name, a.description) for a in ARCHS.values()]
    return {s.name: s for s in specs}


#: backbone name → spec
BACKBONES: dict[str, BackboneSpec] = _registry()
#: backbone name → official checkpoint file name, for the models that need weights
CHECKPOINT_FILES: dict[str, str] = {n: s.checkpoint for n, s in BACKBONES.items() if s.checkpoint}


def build_backbone(
    name: str, checkpoint: str | Path | None = None, device: str = "cpu", max_side: int | None = None, seed: int = 0
) -> Backbone:
    """The backbone `name` (see BACKBONES) on `device`.

    checkpoint  weights file (official facebookresearch or timm layout) for DINOv2 models;
                required for the released ones, optional for tiny test variants
    max_side    cap on the image's long side in pixels (None: native resolution)
    seed        initialisation seed of tiny random variants
    """
    if name not in BACKBONES:
        raise InputError("backbone", f"unknown backbone {name!r}; known: {', '.join(BACKBONES)}")
    if max_side is not None and max_side < BACKBONES[name].stride:
        raise InputError("max_side", f"must be at least {BACKBONES[name].stride} pixels, got {max_side}")
    if name == "classic":
        if checkpoint is not None:
            raise InputError("checkpoint", "the classic backbone has no weights")
        return ClassicBackbone(max_side=max_side, device=device)
    return build_dinov2(name, checkpoint=checkpoint, device=device, max_side=max_side, seed=seed)
