"""Compactness: region tokens vs patch tokens, and what it does to the transformers' speed.

For synthetic activity clips rendered at each size, extracts 8 evenly spaced frames with the
lite profile (SLIC + classic features, the embedded default) and counts region tokens per
frame and per clip; patch tokens are the backbone's 14-pixel grid cells at the same
resolution. Then it times the activity transformer (the paper's: 3 layers, 8 heads, width
256) on a clip of region tokens (padded to 400) against the same transformer on the clip's
patch tokens, in the same process, and prints the ratio.

    .venv/bin/python bench/tokens.py [--sizes 160x120 320x240 640x480] [--clips 3] [--repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import numpy as np  # noqa: E402
import torch  # noqa: E402

import regiond  # noqa: F401  (first: sets the OpenMP wait policy before torch loads)


def _time(fn, repeats: int) -> float:
    fn()  # warm-up
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--sizes",
        nargs="+",
        default=["160x120", "320x240", "640x480"],
        help="frame sizes WxH (default 160x120 320x240 640x480)",
    )
    ap.add_argument("--clips", type=int, default=3, help="clips per size (default 3)")
    ap.add_argument("--repeats", type=int, default=5, help="timed runs per transformer (median; default 5)")
    ap.add_argument(
        "--max-timed-tokens",
        type=int,
        default=4000,
        help="skip timing the patch transformer above this many tokens (attention memory grows "
        "with the square; 640x480 clips have ~13k patch tokens); default 4000",
    )
    args = ap.parse_args(argv)
    torch.set_num_threads(1)

    from regiond.core.frames import evenly_spaced
    from regiond.extraction import build_extractor
    from regiond.extraction.cache import CLIP_FRAMES
    from regiond.features.patches import patch_regions
    from regiond.heads import create_head
    from regiond.heads.batch import collate, limit_tokens, tokens_from_regions
    from regiond.scenes.synthetic.clips import ACTIVITY_CLASSES, render_clip

    extractor = build_extractor("lite", preset="activity")
    dim = extractor.dim
    print(
        f"profile lite ({extractor.masker.name} + {extractor.backbone.name}, dim {dim}); "
        f"activity transformer: 3 layers, 8 heads, width 256; torch threads 1"
    )
    print(
        f"{'size':>9} {'regions/frame':>14} {'patches/frame':>14} {'regions/clip':>13} {'patches/clip':>13} "
        f"{'ratio':>6} {'t_regions ms':>13} {'t_patches ms':>13} {'speed-up':>9}"
    )
    torch.manual_seed(0)
    for size in args.sizes:
        w, h = (int(v) for v in size.lower().split("x"))
        region_counts, patch_counts, clips_r, clips_p = [], [], [], []
        for k in range(args.clips):
            clip = render_clip(k % len(ACTIVITY_CLASSES), 900 + k, frames=16, width=w, height=h)
            picks = evenly_spaced(len(clip.frames), CLIP_FRAMES)
            regs, pats = [], []
            for i in picks:
                rgb = np.ascontiguousarray(clip.frames[i])
                regs.append(extractor.extract(rgb))
                pats.append(patch_regions(extractor.backbone(rgb), h, w))
            region_counts += [len(r) for r in regs]
            patch_counts += [len(p) for p in pats]
            clips_r.append(limit_tokens(tokens_from_regions(regs), 400))
            clips_p.append(tokens_from_regions(pats))
        n_patch = max(len(c) for c in clips_p)
        reg_model = create_head("activity-transformer", in_dim=dim, num_classes=len(ACTIVITY_CLASSES)).eval()
        pat_model = create_head(
            "activity-transformer", in_dim=dim, num_classes=len(ACTIVITY_CLASSES), max_tokens=n_patch, tokens="patches"
        ).eval()
        pat_model.load_state_dict(reg_model.state_dict())  # the same transformer, other tokens
        rb, pb = collate(clips_r[:1], 400), collate(clips_p[:1], n_patch)
        with torch.no_grad():
            t_r = _time(lambda: reg_model(rb), args.repeats)
            t_p = _time(lambda: pat_model(pb), args.repeats) if n_patch <= args.max_timed_tokens else float("nan")
        rpf, ppf = float(np.mean(region_counts)), float(np.mean(patch_counts))
        rpc = float(np.mean([len(c) for c in clips_r]))
        ppc = float(np.mean([len(c) for c in clips_p]))
        print(
            f"{size:>9} {rpf:14.1f} {ppf:14.1f} {rpc:13.1f} {ppc:13.1f} {ppc / rpc:6.1f} "
            f"{1000 * t_r:13.2f} {1000 * t_p:13.2f} {t_p / t_r:8.1f}x"
        )
    print(
        "regions/clip: tokens the activity head sees (8 frames, at most 400); patches/clip: 8 × grid cells; "
        "ratio = patch tokens / region tokens; speed-up = patch-token time / region-token time"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
