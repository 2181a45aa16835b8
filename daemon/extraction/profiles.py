"""One typed configuration: profiles, weight discovery, and `build_extractor`.

A profile names a mask generator, a backbone and a cap on the image's long side. Weights are
local files (never downloaded) found in one directory: `--weights DIR`, else the environment
variable REGIOND_WEIGHTS, else default_weights_dir(). Files keep their official names.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, replace
from pathlib import Path

from regiond.core.errors import MissingWeightsError
from regiond.extraction.cache import versions
from regiond.extraction.extractor import Extractor
from regiond.extraction.fingerprint import user_cache_dir
from regiond.features import BACKBONES, build_backbone
from regiond.masks import MaskerSpec, build_masker

WEIGHTS_ENV = "REGIOND_WEIGHTS"


# --- checkpoints ------------------------------------------------------------------------


@dataclass(frozen=True)
class Checkpoint:
    """A model whose weights come from a local file.

    model      the name the builders take: SAM "vit_h"/"vit_l"/"vit_b", a backbone name
    kind       "sam" or "backbone"
    filenames  accepted file names, relative to the weights dir; the first is the official
               release name (what error messages ask for), the rest are timm's layouts
    """

    model: str
    kind: str
    filenames: tuple[str, ...]
    description: str = ""

    @property
    def official(self) -> str:
        return self.filenames[0]

    def find(self, weights_dir: Path) -> Path | None:
        for name in self.filenames:
            p = weights_dir / name
            if p.is_file():
                return p
        return None


def _backbone_checkpoints() -> list[Checkpoint]:
    """DINOv2 checkpoints from the features registry: the official release name first, then
    timm's layouts of the same weights (`<timm_name>.lvd142m`, timm's hub tag for DINOv2)."""
    out = []
    for b in BACKBONES.values():
        if not b.needs_weights:
            continue
        timm = f"{b.timm_name}.lvd142m"
        out.append(
            Checkpoint(
                b.name,
                "backbone",
                (
                    b.checkpoint,  # facebookresearch/dinov2 release
                    f"{timm}.safetensors",  # timm weights saved flat
                    f"{timm}/model.safetensors",  # a Hugging Face hub snapshot of timm's repo
                    f"{timm}.pth",
                ),
                b.description,
            )
        )
    return out


#: model name → checkpoint. SAM names follow segment_anything's sam_model_registry.
CHECKPOINTS: dict[str, Checkpoint] = {
    c.model: c
    for c in (
        Checkpoint("vit_h", "sam", ("sam_vit_h_4b8939.pth",), "SAM ViT-H (2.4 GB)"),
        Checkpoint("vit_l", "sam", ("sam_vit_l_0b3195.pth",), "SAM ViT-L (1.2 GB)"),
        Checkpoint("vit_b", "sam", ("sam_vit_b_01ec64.pth",), "SAM ViT-B (375 MB)"),
        *_backbone_checkpoints(),
    )
}


def default_weights_dir() -> Path:
    """weights/ in the user's cache: $XDG_CACHE_HOME/regiond/weights, else ~/.cache/regiond/weights."""
    return user_cache_dir() / "weights"


def resolve_weights_dir(path: str | Path | None = None) -> Path:
    """The weights directory: the argument, else $REGIOND_WEIGHTS, else default_weights_dir()."""
    if path is not None:
        return Path(path).expanduser()
    env = os.environ.get(WEIGHTS_ENV)
    return Path(env).expanduser() if env else default_weights_dir()


def find_weights(path: str | Path | None = None) -> dict[str, Path]:
    """model name → checkpoint file, for every known checkpoint present in the weights dir."""
    d = resolve_weights_dir(path)
    found = {}
    for name, ckpt in CHECKPOINTS.items():
        p = ckpt.find(d)
        if p is not None:
            found[name] = p
    return found


# --- profiles ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Profile:
    """What an Extractor is made of.

    masker    the mask generator (SAM checkpoint is filled in from the weights dir)
    backbone  a name regiond.features.build_backbone knows
    max_side  cap on the image's long side for the backbone (None = native resolution)
    work_side the working size: larger frames are processed with their long side at this size,
              masks returned at the frame's size (None = every frame at its own size); chosen
              from measurements (bench/working_size.py)
    pooling   "mean" (the paper) or "max"
    overlap   masks and features computed at the same time (see Extractor.overlap)
    listed    shown to users (False for test profiles)
    """

    name: str
    masker: MaskerSpec
    backbone: str
    max_side: int | None = None
    work_side: int | None = None
    pooling: str = "mean"
    overlap: bool = False
    description: str = ""
    listed: bool = True

    def required(self) -> list[Checkpoint]:
        """The checkpoints this profile needs (none for SLIC + classic, or tiny models)."""
        need = []
        if self.masker.uses_sam and self.masker.sam_model in CHECKPOINTS:
            need.append(CHECKPOINTS[self.masker.sam_model])
        if self.backbone in CHECKPOINTS:
            need.append(CHECKPOINTS[self.backbone])
        return need

    def missing(self, path: str | Path | None = None) -> list[Path]:
        """Where the absent checkpoints were looked for (official names)."""
        d = resolve_weights_dir(path)
        return [d / c.official for c in self.required() if c.find(d) is None]


#: Profiles, best first: "auto" takes the first listed one whose weights are all present.
PROFILES: dict[str, Profile] = {
    p.name: p
    for p in (
        Profile(
            "paper",
            MaskerSpec("sam+slic", "vit_h"),
            "dinov2_vitl14",
            description="the paper: SAM ViT-H + SLIC, DINOv2 ViT-L/14 at native resolution",
        ),
        Profile(
            "balanced",
            MaskerSpec("sam+slic", "vit_b"),
            "dinov2_vitb14",
            max_side=896,
            work_side=896,
            description="SAM ViT-B + SLIC, DINOv2 ViT-B/14, long side capped at 896",
        ),
        Profile(
            "lite",
            MaskerSpec("slic"),
            "classic",
            overlap=True,
            work_side=640,  # bench/working_size.py: 1080p costs 8x more, labels and P@5 no better
            description="SLIC + classic colour/gradient features: no weights, real time on a CPU",
        ),
        # Tests: the balanced code path (SAM+SLIC cover, DINOv2) with tiny random models.
        Profile(
            "tiny",
            MaskerSpec("sam+slic", "tiny"),
            "dinov2_tiny",
            description="tiny random SAM + tiny random DINOv2 (tests, benchmarks)",
            listed=False,
        ),
    )
}

FALLBACK_PROFILE = "lite"


def resolve_profile(name: str = "auto", path: str | Path | None = None, announce=None) -> Profile:
    """The named profile, checked for its weights; "auto" = best profile with all weights.

    Raises MissingWeightsError (naming the files looked for) for an explicit profile whose
    weights are absent; "auto" falls back to `lite` and says so, once, through `announce`
    (default: a line on stderr).
    """
    if name == "auto":
        for p in PROFILES.values():
            if p.listed and not p.missing(path):
                if p.name == FALLBACK_PROFILE:
                    best = next(iter(PROFILES.values()))
                    msg = (
                        f"regiond: no weights for a SAM/DINOv2 profile in {resolve_weights_dir(path)} "
                        f"(e.g. {', '.join(str(m.name) for m in best.missing(path))}); "
                        f"using the '{FALLBACK_PROFILE}' profile (SLIC + classic features). "
                        f"See `regiond models`."
                    )
                    (announce or (lambda m: print(m, file=sys.stderr)))(msg)
                return p
        raise AssertionError("the fallback profile needs no weights")  # pragma: no cover
    try:
        p = PROFILES[name]
    except KeyError:
        raise ValueError(f"unknown profile {name!r}; known: auto, {', '.join(PROFILES)}") from None
    missing = p.missing(path)
    if missing:
        raise MissingWeightsError(
            f"profile '{p.name}' needs weights that are not there: "
            + ", ".join(str(m) for m in missing)
            + f" (weights dir from --weights, ${WEIGHTS_ENV}, or {default_weights_dir()}; "
            f"see `regiond models`)"
        )
    return p


def build_extractor(
    profile: str | Profile = "auto",
    weights_dir: str | Path | None = None,
    device: str = "cpu",
    announce=None,
    **overrides,
):
    """An Extractor for a profile, with its weights from the weights dir.

    overrides replace Profile fields (masker, backbone, max_side, work_side, pooling, overlap) or, for the
    masker, MaskerSpec fields: preset="scene", sam_overrides={...}, slic=SlicConfig(...),
    min_piece=..., seed=...; max_pixels (the largest image accepted) goes to the Extractor
    and its masker, max_depth to the Extractor.
    """
    wd = weights_dir
    p = profile if isinstance(profile, Profile) else resolve_profile(profile, wd, announce)
    extractor_kw = {k: overrides.pop(k) for k in ("max_pixels", "max_depth") if k in overrides}
    if "max_pixels" in extractor_kw:  # the maskers check the same limit
        overrides["max_pixels"] = extractor_kw["max_pixels"]
    masker_fields = set(MaskerSpec.__dataclass_fields__) - {"device"}
    masker_kw = {k: overrides.pop(k) for k in list(overrides) if k in masker_fields}
    unknown = set(overrides) - set(Profile.__dataclass_fields__)
    if unknown:
        raise ValueError(f"unknown build_extractor overrides: {sorted(unknown)}")
    p = replace(p, **overrides)
    found = find_weights(wd)
    spec = replace(p.masker, device=device, **masker_kw)
    if spec.uses_sam and spec.sam_checkpoint is None and spec.sam_model in CHECKPOINTS:
        if spec.sam_model not in found:
            raise MissingWeightsError(
                f"SAM {spec.sam_model} checkpoint not found: "
                f"{resolve_weights_dir(wd) / CHECKPOINTS[spec.sam_model].official}"
            )
        spec = replace(spec, sam_checkpoint=found[spec.sam_model])
    ckpt = None
    if p.backbone in CHECKPOINTS:
        if p.backbone not in found:
            raise MissingWeightsError(
                f"backbone {p.backbone} checkpoint not found: "
                f"{resolve_weights_dir(wd) / CHECKPOINTS[p.backbone].official}"
            )
        ckpt = found[p.backbone]
    masker = build_masker(spec)
    backbone = build_backbone(p.backbone, checkpoint=ckpt, device=device, max_side=p.max_side)
    weights = {role: str(path) for role, path in (("masker", spec.sam_checkpoint), ("backbone", ckpt)) if path}
    return Extractor(
        masker=masker,
        backbone=backbone,
        pooling=p.pooling,
        profile=p.name,
        weights=weights,
        overlap=p.overlap,
        work_side=p.work_side,
        **extractor_kw,
    )


def profile_versions(
    profile: str | Profile = "auto", weights_dir: str | Path | None = None, announce=None, pooling: str | None = None
) -> dict:
    """The token-cache versions (cache.extractor_versions) of what build_extractor(profile,
    weights_dir, pooling=...) builds, known without loading a model: a Ray job's driver
    checks its cache with them while the actors load the models."""
    p = profile if isinstance(profile, Profile) else resolve_profile(profile, weights_dir, announce)
    return versions(p.name, p.masker.kind, p.backbone, BACKBONES[p.backbone].dim, pooling or p.pooling)
