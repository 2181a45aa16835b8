"""The fast SAM mask generator against segment-anything's SamAutomaticMaskGenerator, in one run.

Speed (default): random weights of the named model's size (the cost does not depend on the
weight values; ViT-B is ~90 M parameters) on a real 640×480 7-Scenes frame, the paper's preset,
reference then ours, `--repeats` times (the fastest run of each counts), per stage:

  embedding   the image encoder (the same code in both)
  decoder     reference: SAM's mask decoder (transformer, upscaling) on every prompt;
              ours: sam_decoder.PromptDecoder, upscaling only masks that pass predicted IoU
  upsampling  reference: Sam.postprocess_masks on every mask (256 → 1024 → image);
              ours: one exact step, only masks that pass predicted IoU
  rest        filters, boxes, RLE (reference: mask_to_rle_pytorch, MaskData.cat copies), NMS,
              records

and prints `speedup after embedding X.Xx, end to end Y.Yx`, then whether the masks match.

The workload: random weights give noise masks that are never stable, so the decoder is
adjusted as in tests (regiond.masks.sam.spread_random_decoder: transposed-convolution kernels
shared by their sub-pixel positions, mask logits ×`--logit-scale`). Such masks all span the
frame, so NMS is off (box_nms_thresh and crop_nms_thresh 1.0: no NMS within or across crops,
nor after the small-region clean-up) and the thresholds alone decide what survives. Before
timing, one decoder pass over the whole prompt grid calibrates the decoder to the preset
(`calibrate`): its predicted IoU is shifted so that `--iou-pass` of the masks (at least twice
`--survivors`) pass the preset's threshold (a trained ViT-H passes about a third), and its
mask logits are scaled so that exactly `--survivors` (75) of those pass the stability
threshold too, as many as trained weights leave after NMS (50–100). Scaling logits about the
mask threshold 0 changes no mask, only its stability, and each mask's stability grows with
the scale, so every mask has a critical scale and the scale is set between the 75th and the
76th. Both generators then run with the same weights and thresholds; the output line gives
the survivors of each and how they match.

Check (`--check`): both generators with the tiny random SAM and the tests' lowered thresholds
on any image; prints `masks matched N/N, min IoU Z` and exits 1 on a mismatch.

Run: .venv/bin/python bench/amg.py --model vit_b --preset scene [--size 640x480] [--repeats 1] [--device cuda]
     .venv/bin/python bench/amg.py --model tiny --check --image PATH [--preset scene]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np

import regiond  # noqa: F401  (first: sets the OpenMP wait policy before torch loads)

STAGES = ("embedding", "decoder", "upsampling", "rest")
DEFAULT_IMAGE = "rgbd/7scenes-150-169/frame-000150.color.png"


def load_image(path: str | None, size: str | None) -> np.ndarray:
    import cv2
    from PIL import Image

    if path is None:
        shared = Path(os.environ.get("REGIOND_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
        path = shared / DEFAULT_IMAGE
    rgb = np.asarray(Image.open(path).convert("RGB"))
    if size:
        w, h = (int(v) for v in size.lower().split("x"))
        rgb = cv2.resize(rgb, (w, h), interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(rgb)


class ReferenceTimer:
    """Stage times of a SamAutomaticMaskGenerator: its own functions wrapped in place."""

    def __init__(self, generator):
        self.seconds: dict[str, float] = {}
        pred = generator.predictor
        sam = pred.model
        self._wrap(pred, "set_image", "embedding")
        self._wrap(sam.mask_decoder, "forward", "decoder")
        self._wrap(sam, "postprocess_masks", "upsampling")

    def _wrap(self, obj, name: str, stage: str):
        fn = getattr(obj, name)

        def timed(*a, **kw):
            t = time.perf_counter()
            try:
                return fn(*a, **kw)
            finally:
                self.seconds[stage] = self.seconds.get(stage, 0.0) + time.perf_counter() - t

        setattr(obj, name, timed)

    def reset(self):
        self.seconds = {}


def fastest(runs: list[dict]) -> dict:
    return min(runs, key=lambda r: r["total"])


def staged(seconds: dict, total: float) -> dict:
    out = {s: seconds.get(s, 0.0) for s in STAGES[:3]}
    out["rest"] = total - sum(out.values())
    out["total"] = total
    return out


def speed(args) -> int:
    import torch
    from segment_anything import SamAutomaticMaskGenerator

    from regiond.masks.compare import mask_iou, match_masks
    from regiond.masks.sam import build_sam_model, generator_config, spread_random_decoder
    from regiond.masks.sam_fast import FastMaskGenerator, FastOptions

    rgb = load_image(args.image, args.size)
    torch.set_num_threads(args.threads)
    print(
        f"{args.model} random weights, preset {args.preset}, {rgb.shape[1]}×{rgb.shape[0]}, "
        f"{args.threads} threads (ours after the embedding: {args.decoder_threads or args.threads}); "
        f"load average {os.getloadavg()[0]:.2f}",
        flush=True,
    )
    sam = spread_random_decoder(
        build_sam_model(args.model, checkpoint=None, seed=0, device=args.device)
        if args.model == "tiny"
        else _random_sam(args.model, args.device),
        logit_scale=args.logit_scale,
    )
    # no NMS at all: box NMS, and the NMS after the small-region clean-up (activity), which
    # uses max(box_nms_thresh, crop_nms_thresh)
    config = generator_config(args.preset, box_nms_thresh=1.0, crop_nms_thresh=1.0)
    options = FastOptions(
        batch=args.batch, threads=args.decoder_threads, stability=args.stability, encoder=args.encoder
    )
    fast = FastMaskGenerator(sam, config, options)
    shift, scale, margin = calibrate(sam, fast, rgb, config, args.iou_pass, args.survivors)
    reference = SamAutomaticMaskGenerator(sam, **asdict(config))
    timer = ReferenceTimer(reference)
    runs = {"reference": [], "ours": []}
    for _ in range(args.repeats):
        timer.reset()
        t = time.perf_counter()
        ref_out = reference.generate(rgb)
        runs["reference"].append(staged(timer.seconds, time.perf_counter() - t))
        t = time.perf_counter()
        out = fast.generate_masks(rgb)
        runs["ours"].append(staged(fast.times.seconds, time.perf_counter() - t))
        print(
            f"  run: reference {runs['reference'][-1]['total']:.1f} s, ours {runs['ours'][-1]['total']:.1f} s",
            flush=True,
        )
    ref, ours = fastest(runs["reference"]), fastest(runs["ours"])
    print(f"{'stage':<12}{'reference s':>12}{'ours s':>10}{'ratio':>8}")
    for s in (*STAGES, "total"):
        ratio = ref[s] / ours[s] if ours[s] > 0 else float("inf")
        print(f"{s:<12}{ref[s]:>12.2f}{ours[s]:>10.2f}{ratio:>7.1f}x")
    after = (ref["total"] - ref["embedding"]) / (ours["total"] - ours["embedding"])
    print(f"speedup after embedding {after:.1f}x, end to end {ref['total'] / ours['total']:.1f}x")
    a = np.stack([r["segmentation"] for r in ref_out]) if ref_out else np.zeros((0, *rgb.shape[:2]), bool)
    m = match_masks(a, out.masks)
    print(
        f"surviving masks: reference {len(ref_out)}, ours {len(out.masks)}; {m.line()}; "
        f"IoU shift {shift:+.3f}, logit scale {args.logit_scale * scale:.1f} (calibrated for {args.survivors}, "
        f"margin {margin:.1e}); load average {os.getloadavg()[0]:.2f}"
    )
    if len(out.masks) > 1:  # how alike the survivors are (NMS off keeps near-duplicates)
        pair = mask_iou(out.masks, out.masks)[np.triu_indices(len(out.masks), 1)]
        print(
            f"survivors' pairwise IoU: median {np.median(pair):.2f}, max {pair.max():.2f}; "
            f"area {np.median(out.masks.mean((1, 2))):.0%} of the frame (median)"
        )
    return 0


def calibrate(sam, fast, rgb, config, iou_pass: float, survivors: int) -> tuple[float, float, float]:
    """Adjust the random decoder (in place) so that `survivors` masks survive the preset's
    thresholds (box NMS off), from one decoder pass over the whole prompt grid before timing.

    Predicted IoU: shifted so that the best max(`iou_pass`, 2 × survivors / masks) of the
    masks pass (the threshold halfway between two neighbouring scores). Stability: with the
    mask threshold at 0, scaling the logits by s leaves every mask as it is and only moves
    its stability, #(logit > offset/s) / #(logit > -offset/s), which grows with s. So each
    passing mask has a critical scale s_i (bisection on its sorted full-resolution logits,
    upsampled as both generators do) above which it is stable enough, and the scale is set
    halfway (geometrically) between the `survivors`-th and the next critical scale. Returns
    the IoU shift, the extra logit scale and the relative gap around it (the margin that
    float rounding between the two generators must not cross)."""
    import torch

    from regiond.masks import sam_steps as steps
    from regiond.masks.sam_decoder import PromptDecoder

    if sam.mask_threshold != 0.0:
        raise ValueError("calibration scales logits about the mask threshold 0")
    dev = sam.device
    with torch.inference_mode():
        x = torch.as_tensor(fast.transform.apply_image(rgb), device=dev).permute(2, 0, 1).contiguous()[None]
        input_size, size = tuple(x.shape[-2:]), rgb.shape[:2]
        dec = PromptDecoder(sam, sam.image_encoder(sam.preprocess(x)))
        points = fast.point_grids[0] * np.array(size)[None, ::-1]
        coords = torch.as_tensor(fast.transform.apply_coords(points, size), device=dev)
        sparse, _ = sam.prompt_encoder(
            points=(coords[:, None], torch.ones(len(points), 1, dtype=torch.int, device=dev)), boxes=None, masks=None
        )
        rows, cols = steps.cells_needed(input_size[0]), steps.cells_needed(input_size[1])
        ious, lows = [], []  # per batch of 8 prompts: B×3 predicted IoU, B×3×rows×cols logits
        for b in range(0, len(points), 8):
            hs, keys = dec.transformer(sparse[b : b + 8])
            ious.append(dec.iou(hs))
            lows.append(dec.masks(hs, keys, rows, cols))
        top = torch.cat(ious).flatten().sort(descending=True).values
        n_pass = min(len(top) - 1, max(round(iou_pass * len(top)), 2 * survivors))
        shift = config.pred_iou_thresh - float(top[n_pass - 1] + top[n_pass]) / 2
        critical = [
            critical_scales(
                steps.upsample(low.flatten(0, 1)[(iou + shift > config.pred_iou_thresh).flatten()], input_size, size),
                config.stability_score_offset,
                config.stability_score_thresh,
            )
            for iou, low in zip(ious, lows)
        ]
        critical = torch.cat(critical).sort().values
        if len(critical) <= survivors or not torch.isfinite(critical[survivors]):
            raise ValueError(f"fewer than {survivors + 1} masks can pass both thresholds; ask for fewer survivors")
        lo, hi = float(critical[survivors - 1]), float(critical[survivors])
        scale = (lo * hi) ** 0.5
        head = sam.mask_decoder
        head.iou_prediction_head.layers[-1].bias.add_(shift)
        for mlp in head.output_hypernetworks_mlps:
            mlp.layers[-1].weight.mul_(scale)
            mlp.layers[-1].bias.mul_(scale)
    return shift, scale, hi / lo - 1


def critical_scales(logits, offset: float, thresh: float):
    """Per mask (M×H×W logits, mask threshold 0): the smallest factor s for which
    segment-anything's stability score of s × logits reaches `thresh` (inf: never)."""
    import torch

    flat = logits.flatten(1).sort(dim=1).values
    n = flat.shape[1]

    def above(u):  # per mask: how many logits exceed u (a column)
        return n - torch.searchsorted(flat, u.to(flat.dtype)[:, None].contiguous(), right=True)[:, 0]

    def stable(u):  # the reference's score (nan, so not stable, when no logit exceeds -u)
        union = above(-u)
        return (union > 0) & (above(u) >= thresh * union)

    # stability at cutoff u = offset/s is #(l > u) / #(l > -u), falling with u: bisect log u
    lo = torch.full((len(flat),), -30.0, dtype=torch.float64, device=flat.device)
    hi = torch.full((len(flat),), 10.0, dtype=torch.float64, device=flat.device)
    for _ in range(50):
        mid = (lo + hi) / 2
        ok = stable(mid.exp())
        lo, hi = torch.where(ok, mid, lo), torch.where(ok, hi, mid)
    s = offset / lo.exp()
    return torch.where(stable(lo.exp()), s, torch.full_like(s, float("inf")))


def _random_sam(model: str, device: str = "cpu"):
    """segment-anything's own _build_sam with the model's sizes, randomly initialised (seeded)
    on `device` (ViT-H's 600 M parameters initialise in seconds on a GPU)."""
    import torch
    from segment_anything.build_sam import _build_sam

    from regiond.masks.sam import SAM_ARCHS

    arch = SAM_ARCHS[model]
    with torch.random.fork_rng(devices=[]), torch.device(device):
        torch.manual_seed(0)
        sam = _build_sam(
            encoder_embed_dim=arch.encoder_embed_dim,
            encoder_depth=arch.encoder_depth,
            encoder_num_heads=arch.encoder_num_heads,
            encoder_global_attn_indexes=list(arch.encoder_global_attn_indexes),
            checkpoint=None,
        )
    return sam.eval()


def check(args) -> int:
    """Both generators, tiny random SAM, the tests' lowered thresholds, any image."""
    from segment_anything import SamAutomaticMaskGenerator

    from regiond.masks.compare import match_masks
    from regiond.masks.sam import build_sam_model, generator_config, lowered_thresholds, spread_random_decoder
    from regiond.masks.sam_fast import FastMaskGenerator, FastOptions

    if args.model != "tiny":
        print("--check runs the tiny random SAM (--model tiny)", file=sys.stderr)
        return 2
    rgb = load_image(args.image, args.size)
    sam = spread_random_decoder(build_sam_model("tiny", seed=0))
    config = generator_config(args.preset, **lowered_thresholds(args.crops))
    ref = SamAutomaticMaskGenerator(sam, **asdict(config)).generate(rgb)
    options = FastOptions(stability=args.stability, encoder=args.encoder)
    out = FastMaskGenerator(sam, replace(config), options).generate(rgb)
    a = np.stack([r["segmentation"] for r in ref]) if ref else np.zeros((0, *rgb.shape[:2]), bool)
    b = np.stack([r["segmentation"] for r in out]) if out else np.zeros((0, *rgb.shape[:2]), bool)
    m = match_masks(a, b)
    print(m.line())
    if m.ok(0.99):
        worst = max(
            (max(abs(ref[i][k] - out[j][k]) for k in ("predicted_iou", "stability_score")) for i, j in m.pairs),
            default=0.0,
        )
        print(f"largest predicted IoU / stability difference {worst:.2e}")
        return 0 if worst <= 1e-3 else 1
    print(f"mismatch: reference {len(ref)} masks, ours {len(out)}", file=sys.stderr)
    return 1


def main(argv=None) -> int:
    from regiond.masks.sam_fast import FastOptions

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--model",
        default="vit_b",
        choices=["vit_h", "vit_l", "vit_b", "tiny"],
        help="SAM size (random weights; tiny is the tests' model)",
    )
    ap.add_argument(
        "--preset",
        default="scene",
        choices=["image", "scene", "activity"],
        help="the paper's generator preset (image 32×32 points, scene 16×16, activity 8×8)",
    )
    ap.add_argument(
        "--image", default=None, help=f"image file (default: $REGIOND_SHARED_DATA/{DEFAULT_IMAGE}, a 7-Scenes frame)"
    )
    ap.add_argument("--size", default=None, metavar="WxH", help="resize the image first (default: as is, 640x480)")
    ap.add_argument("--repeats", type=int, default=1, help="runs of each generator; the fastest counts")
    ap.add_argument("--device", default="cpu", help="torch device of the model (cpu, cuda)")
    ap.add_argument("--threads", type=int, default=torch_threads_default(), help="torch threads")
    ap.add_argument("--batch", type=int, default=FastOptions.batch, help="prompts per decoder pass (ours)")
    ap.add_argument(
        "--decoder-threads",
        type=int,
        default=FastOptions.threads,
        help="ours: torch threads after the embedding (0: as --threads)",
    )
    ap.add_argument(
        "--stability",
        default="full",
        choices=["full", "lowres"],
        help="ours: full (exact, default) or lowres (stability/NMS on 256×256 logits)",
    )
    ap.add_argument(
        "--encoder",
        default="fp32",
        choices=["fp32", "int8", "bf16", "fp16"],
        help="ours: image-encoder precision (fp32 exact)",
    )
    ap.add_argument(
        "--iou-pass",
        type=float,
        default=0.35,
        help="fraction of masks whose predicted IoU passes the preset's threshold",
    )
    ap.add_argument(
        "--logit-scale", type=float, default=30.0, help="mask logit scale of the random decoder before calibration"
    )
    ap.add_argument(
        "--survivors",
        type=int,
        default=75,
        help="masks that should survive the preset's thresholds (the logit scale is calibrated for it)",
    )
    ap.add_argument("--check", action="store_true", help="equivalence check with the tiny SAM instead of speed")
    ap.add_argument("--crops", action="store_true", help="--check: one crop layer too")
    args = ap.parse_args(argv)
    return check(args) if args.check else speed(args)


def torch_threads_default() -> int:
    return os.cpu_count() or 1


if __name__ == "__main__":
    sys.exit(main())
