"""`regiond train segment|scene|activity --cache DIR --out HEAD`: train a head on a token cache.

segment   per-image region labels (default head region-mlp; also region-linear, region-block,
          patch-linear with --tokens patches)
scene     region labels with the scene transformer over all frames of a scene (2D + 3D
          embeddings; --no-3d / --no-2d for ablations)
activity  clip classes with the activity transformer (8 frames, 400 tokens, class token)

AdamW with linear warm-up and cosine decay, area-weighted cross-entropy for regions, early
stopping on validation loss (the best epoch is kept), deterministic for a given --seed. The
head is written as OUT/config.json + OUT/model.safetensors.
"""

from __future__ import annotations

import argparse
import json

from regiond.core.flags import add_flags, flag_values
from regiond.heads.config import TrainConfig


def register(sub) -> None:
    p = sub.add_parser(
        "train",
        help="train a segmentation, scene or activity head on a token cache",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("task", choices=["segment", "scene", "activity"], help="what to train")
    p.add_argument("--cache", required=True, metavar="DIR", help="training token cache (`regiond extract`)")
    p.add_argument("--out", required=True, metavar="HEAD", help="output head directory (created)")
    p.add_argument(
        "--val-cache",
        metavar="DIR",
        default=None,
        help="validation cache (default: hold out --val-fraction of the training items)",
    )
    p.add_argument(
        "--val-fraction", type=float, default=0.2, help="held-out fraction without --val-cache (default 0.2)"
    )
    p.add_argument(
        "--head",
        default=None,
        help="registered head name (default: region-mlp, scene-transformer, activity-transformer); "
        "see regiond.heads.list_heads()",
    )
    p.add_argument(
        "--tokens",
        default="regions",
        choices=["regions", "patches"],
        help="region tokens, or patch tokens for the baseline (cache extracted with --patches)",
    )
    add_flags(p.add_argument_group("optimisation"), TrainConfig)
    p.add_argument("--dim", type=int, default=None, help="transformer width (default 256)")
    p.add_argument("--layers", type=int, default=None, help="transformer layers (default: the head's)")
    p.add_argument(
        "--attention-heads",
        type=int,
        default=None,
        metavar="N",
        help="attention heads of a transformer head (default 8)",
    )
    p.add_argument("--hidden", type=int, default=None, help="MLP hidden width (region-mlp, default 1000)")
    p.add_argument(
        "--max-tokens",
        type=int,
        default=None,
        help="tokens per sample (scene: sample at most this many, default 2048; activity: pad to, default 400)",
    )
    p.add_argument("--no-2d", action="store_true", help="transformers: drop the 2D box embedding")
    p.add_argument("--no-3d", action="store_true", help="scene transformer: drop the 3D position embedding")
    p.add_argument(
        "--frames-per-view",
        type=int,
        default=None,
        help="scene: frames per training view (default 8; inference sees all frames)",
    )
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    p.add_argument(
        "--dataset",
        default=None,
        metavar="TEXT",
        help="what the training data is, in words, for the head's config.json (meta.trained_on; "
        "default: the cache and its sources); `regiond serve` logs it and GetInfo reports it",
    )
    p.set_defaults(func=run)


def run(args) -> int:
    import torch  # heavy: only when the command runs (--help stays light)

    from regiond.heads.cache_jobs import train_on_cache  # torch: only when the command runs (--help stays light)
    from regiond.heads.trained_on import summary

    torch.set_num_threads(args.threads)
    over = {
        k: v
        for k, v in (
            ("dim", args.dim),
            ("layers", args.layers),
            ("heads", args.attention_heads),
            ("hidden", args.hidden),
            ("max_tokens", args.max_tokens),
        )
        if v is not None
    }
    if args.no_2d:
        over["pos2d"] = False
    if args.no_3d:
        over["pos3d"] = False
    task_over = {"frames_per_view": args.frames_per_view} if args.frames_per_view else {}
    cfg = TrainConfig(**flag_values(args, TrainConfig))
    job = train_on_cache(
        args.task,
        args.cache,
        args.out,
        head=args.head,
        val_cache=args.val_cache,
        val_fraction=args.val_fraction,
        tokens=args.tokens,
        cfg=cfg,
        head_overrides=over,
        task_overrides=task_over,
        dataset=args.dataset,
    )
    r = job.result
    print(f"{job.head_dir}: {summary(job.trained_on)}")
    print(  # the last line: JSON for scripts
        json.dumps(
            {
                "head": job.head,
                "out": str(job.head_dir),
                "classes": len(job.classes),
                "train_items": job.train_items,
                "val_items": job.val_items,
                "best_epoch": r.best_epoch,
                "epochs_run": r.epochs_run,
                "best_val_loss": round(r.best_val_loss, 4),
                "val_metric": round(r.val_metric, 4),
                "seconds": round(r.seconds, 1),
            }
        )
    )
    return 0
