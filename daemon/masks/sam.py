"""SAM automatic masks: the fast generator (sam_fast.py, the default) or segment-anything's own
`SamAutomaticMaskGenerator` (the reference), one switch apart (`generator=`), with the same
presets and parameters.

Models are built by segment_anything's `_build_sam` (the function behind its
`sam_model_registry`) with the encoder sizes of SAM_ARCHS, then loaded from the official
checkpoint (a plain state dict) with `torch.load(weights_only=True)`. The `tiny` architecture
goes through exactly the same code with a small random encoder, for tests.
"""

from __future__ import annotations

import threading
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

import numpy as np

from regiond.core.frames import DEFAULT_MAX_PIXELS, as_rgb8
from regiond.masks.generator import SOURCE_SAM, MaskProposals
from regiond.masks.sam_fast import FastOptions

#: SamMasker generators: "fast" (sam_fast.FastMaskGenerator, the same masks several times
#: faster) and "reference" (segment_anything's SamAutomaticMaskGenerator).
SAM_GENERATORS = ("fast", "reference")


@dataclass(frozen=True)
class SamArch:
    """Image-encoder sizes (the arguments of segment_anything.build_sam._build_sam)."""

    encoder_embed_dim: int
    encoder_depth: int
    encoder_num_heads: int
    encoder_global_attn_indexes: tuple[int, ...]


#: Same numbers as segment_anything.build_sam's build_sam_vit_{h,l,b}; `tiny` is for tests.
SAM_ARCHS: dict[str, SamArch] = {
    "vit_h": SamArch(1280, 32, 16, (7, 15, 23, 31)),
    "vit_l": SamArch(1024, 24, 16, (5, 11, 17, 23)),
    "vit_b": SamArch(768, 12, 12, (2, 5, 8, 11)),
    "tiny": SamArch(32, 2, 2, (1,)),
}


@dataclass(frozen=True)
class SamGeneratorConfig:
    """SamAutomaticMaskGenerator's parameters (its own names and defaults).

    points_per_side            prompt grid is points_per_side² points over the image
    points_per_batch           prompts run through the decoder at once (memory vs. speed)
    pred_iou_thresh            drop masks whose predicted IoU is below this
    stability_score_thresh     drop masks less stable than this under a shifted cutoff
    stability_score_offset     how far the cutoff is shifted for the stability score
    box_nms_thresh             box IoU above which duplicate masks are suppressed
    crop_n_layers              >0 also runs on 2^i crops per layer i
    crop_nms_thresh            box NMS between crops
    crop_overlap_ratio         overlap of the first crop layer, as a fraction of the side
    crop_n_points_downscale_factor  points per side shrink by this per crop layer
    min_mask_region_area       >0 removes holes and islands smaller than this (OpenCV)
    """

    points_per_side: int = 32
    points_per_batch: int = 64
    pred_iou_thresh: float = 0.88
    stability_score_thresh: float = 0.95
    stability_score_offset: float = 1.0
    box_nms_thresh: float = 0.7
    crop_n_layers: int = 0
    crop_nms_thresh: float = 0.7
    crop_overlap_ratio: float = 512 / 1500
    crop_n_points_downscale_factor: int = 1
    min_mask_region_area: int = 0

    def with_overrides(self, **overrides) -> SamGeneratorConfig:
        known = {f.name for f in fields(self)}
        unknown = set(overrides) - known
        if unknown:
            raise ValueError(f"unknown SAM generator parameters {sorted(unknown)}; known: {sorted(known)}")
        return replace(self, **overrides)


#: The paper's presets: still images, RGB-D scene frames, activity clips.
PRESETS: dict[str, SamGeneratorConfig] = {
    "image": SamGeneratorConfig(
        points_per_side=32,
        pred_iou_thresh=0.88,
        stability_score_thresh=0.95,
        stability_score_offset=1.0,
        box_nms_thresh=0.7,
    ),
    "scene": SamGeneratorConfig(points_per_side=16, stability_score_thresh=0.85),
    "activity": SamGeneratorConfig(points_per_side=8, stability_score_thresh=0.85, min_mask_region_area=500),
}


def generator_config(preset: str = "image", **overrides) -> SamGeneratorConfig:
    try:
        base = PRESETS[preset]
    except KeyError:
        raise ValueError(f"unknown SAM preset {preset!r}; known: {sorted(PRESETS)}") from None
    return base.with_overrides(**overrides)


def build_sam_model(model: str, checkpoint: str | Path | None = None, device: str = "cpu", seed: int = 0):
    """A segment_anything `Sam` in eval mode.

    model       a SAM_ARCHS name ("vit_h", "vit_l", "vit_b", "tiny")
    checkpoint  official checkpoint file (a state dict); None = random initialisation
                (seeded), allowed only for "tiny"
    """
    import torch  # heavy: only when a SAM model is built
    from segment_anything.build_sam import _build_sam  # heavy: only when a SAM model is built

    try:
        arch = SAM_ARCHS[model]
    except KeyError:
        raise ValueError(f"unknown SAM model {model!r}; known: {sorted(SAM_ARCHS)}") from None
    if checkpoint is None and model != "tiny":
        raise ValueError(f"SAM {model} needs its official checkpoint file")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        sam = _build_sam(
            encoder_embed_dim=arch.encoder_embed_dim,
            encoder_depth=arch.encoder_depth,
            encoder_num_heads=arch.encoder_num_heads,
            encoder_global_attn_indexes=list(arch.encoder_global_attn_indexes),
            checkpoint=None,
        )
    if checkpoint is not None:
        path = Path(checkpoint)
        state = torch.load(path, map_location="cpu", weights_only=True)
        try:
            sam.load_state_dict(state, strict=True)
        except RuntimeError as e:
            raise ValueError(f"{path} is not a SAM {model} checkpoint: {str(e).splitlines()[0]}") from None
    return sam.to(device).eval()


def spread_random_decoder(sam, logit_scale: float = 30.0, iou_shift: float = 0.0):
    """Make a randomly initialised SAM's masks look like a workload (tests and benchmarks only;
    never on trained weights). A random decoder's logits are ~0.1 with a 4×4 sub-pixel
    checkerboard from its transposed convolutions, so every mask is noise and none is stable.
    Here the transposed-convolution kernels are shared by their four sub-pixel positions
    (masks follow the image's content at the embedding's resolution), the hypernetwork
    outputs are scaled by `logit_scale` (logits of a trained model's size, stability spread
    over 0..1) and `iou_shift` is added to the predicted IoU. Masks still cover the whole
    frame loosely, so box NMS keeps one of them: run with NMS off (box_nms_thresh=1.0).
    Changes `sam` in place and returns it."""
    import torch  # heavy: only with a SAM model

    dec = sam.mask_decoder
    with torch.no_grad():
        for conv in (dec.output_upscaling[0], dec.output_upscaling[3]):
            conv.weight.copy_(conv.weight[:, :, :1, :1].expand_as(conv.weight))
        for mlp in dec.output_hypernetworks_mlps:
            mlp.layers[-1].weight.mul_(logit_scale)
            mlp.layers[-1].bias.mul_(logit_scale)
        dec.iou_prediction_head.layers[-1].bias.add_(iou_shift)
    return sam


def lowered_thresholds(crops: bool = False) -> dict:
    """Generator parameters for a random model (with spread_random_decoder) under which at
    least 30 masks survive on a real photo: thresholds lowered, box NMS within and across
    crops off (a random decoder's masks all span the frame), 6×6 prompts; with `crops`, one
    crop layer with half the prompts per side (tests and bench/amg.py --check)."""
    few = dict(
        points_per_side=6, pred_iou_thresh=0.02, stability_score_thresh=0.15, box_nms_thresh=1.0, crop_nms_thresh=1.0
    )
    if crops:
        few.update(crop_n_layers=1, crop_n_points_downscale_factor=2)
    return few


def save_sam_checkpoint(sam, path: str | Path) -> Path:
    """Save in the official layout: the bare state dict, as segment-anything's releases are."""
    import torch  # heavy: only when a SAM checkpoint is written

    path = Path(path)
    torch.save(sam.state_dict(), path)
    return path


class SamMasker:
    """SAM automatic masks of one image, in the generator's order, scored by predicted IoU.

    generator  "fast" (default) or "reference" (segment_anything's SamAutomaticMaskGenerator)
    fast       FastOptions of the fast generator (batching; deviating options are off by default)
    """

    name = "sam"

    def __init__(
        self,
        sam,
        config: SamGeneratorConfig | None = None,
        model_name: str = "",
        max_pixels: int = DEFAULT_MAX_PIXELS,
        generator: str = "fast",
        fast: FastOptions | None = None,
    ):
        self.config = config or PRESETS["image"]
        self.model = sam
        self.model_name = model_name
        self.max_pixels = max_pixels
        self.kind = generator
        if generator == "fast":
            from regiond.masks.sam_fast import FastMaskGenerator

            self.generator = FastMaskGenerator(sam, self.config, fast)
        elif generator == "reference":
            from segment_anything import SamAutomaticMaskGenerator  # heavy: only when a SAM masker is built

            self.generator = SamAutomaticMaskGenerator(sam, output_mode="binary_mask", **asdict(self.config))
        else:
            raise ValueError(f"unknown SAM generator {generator!r}; known: {', '.join(SAM_GENERATORS)}")
        # Both generators keep per-image state between their steps (the reference's
        # SamPredictor holds the embedding, the fast one its stage times), so one image at a
        # time per masker (the service shares an Extractor across streams).
        self._lock = threading.Lock()

    def __call__(self, rgb) -> MaskProposals:
        rgb = as_rgb8(rgb, max_pixels=self.max_pixels)
        h, w = rgb.shape[:2]
        with self._lock:
            if self.kind == "fast":
                out = self.generator.generate_masks(rgb)
                masks, scores = out.masks, out.iou
            else:
                records = self.generator.generate(rgb)
                masks = np.stack([np.asarray(r["segmentation"], dtype=bool) for r in records]) if records else None
                scores = np.array([r["predicted_iou"] for r in records], dtype=np.float32)
        if masks is None or not len(masks):
            return MaskProposals.empty(h, w)
        return MaskProposals(masks, np.full(len(masks), SOURCE_SAM, np.uint8), scores.astype(np.float32))


def build_sam_masker(
    model: str,
    checkpoint: str | Path | None = None,
    preset: str = "image",
    overrides: dict | None = None,
    device: str = "cpu",
    seed: int = 0,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    generator: str = "fast",
    fast: FastOptions | None = None,
) -> SamMasker:
    config = generator_config(preset, **(overrides or {}))
    return SamMasker(
        build_sam_model(model, checkpoint, device=device, seed=seed),
        config,
        model_name=model,
        max_pixels=max_pixels,
        generator=generator,
        fast=fast,
    )
