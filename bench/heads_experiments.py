"""The heads' experiments on generated data with held-out seeds; prints the tables of docs/benchmarks.md.

Scenes: per-region linear probe vs the scene transformer without / with 3D embeddings, on
synthetic rooms (some classes alike: a white floor and a white ceiling, a picture and a
window), trained on some room seeds, early-stopped on others, tested on others again.
Activity: the activity transformer on region tokens vs the same transformer on patch tokens
(the baseline), on synthetic clips of 9 motion classes, with token counts and training and
inference times.

Prepare the token caches once (`--prepare` runs exactly these), then run the experiments:

    regiond synth scene --seed S --frames 40 --width 320 --height 240 --out EXP/rooms/trainS   (S = 10..15)
        ... val (S = 20, 21), test (S = 30, 31, 32)
    regiond extract EXP/rooms/train* --out EXP/cache_rooms_train --profile lite      (val, test alike)
    regiond synth clips --per-class 12 --seed 1 --frames 16 --out EXP/clips_train
    regiond synth clips --per-class 28 --seed 4 --frames 16 --out EXP/clips_train2
    regiond synth clips --per-class 40 --seed 5 --frames 16 --out EXP/clips_train3
        ... val: --per-class 4 --seed 3; test: --per-class 10 --seed 2
    regiond extract EXP/clips_train --out EXP/cache_clips_train --profile lite --patches   (then clips_train2
        and clips_train3 into the same cache; val, test alike)

    .venv/bin/python bench/heads_experiments.py --exp EXP [--prepare] [--only scenes|activity]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import regiond  # noqa: F401  (first: sets the OpenMP wait policy before torch loads)

ROOM_SEEDS = {"train": range(10, 16), "val": (20, 21), "test": (30, 31, 32)}
#: clip sets: split -> [(clips per class, seed)]; train is three sets in one cache (80 per class)
CLIP_SETS = {"train": [(12, 1), (28, 4), (40, 5)], "val": [(4, 3)], "test": [(10, 2)]}


def prepare(exp: Path, regiond_cli: str) -> None:
    def run(*args):
        print("$", " ".join(args), flush=True)
        subprocess.run(args, check=True)

    for split, seeds in ROOM_SEEDS.items():
        dirs = []
        for s in seeds:
            d = exp / "rooms" / f"{split}{s}"
            if not d.exists():
                run(
                    regiond_cli,
                    "synth",
                    "scene",
                    "--seed",
                    str(s),
                    "--frames",
                    "40",
                    "--width",
                    "320",
                    "--height",
                    "240",
                    "--out",
                    str(d),
                )
            dirs.append(str(d))
        if not (exp / f"cache_rooms_{split}" / "manifest.json").exists():
            run(regiond_cli, "extract", *dirs, "--out", str(exp / f"cache_rooms_{split}"), "--profile", "lite")
    for split, sets in CLIP_SETS.items():
        if (exp / f"cache_clips_{split}" / "manifest.json").exists():
            continue
        for k, (per_class, seed) in enumerate(sets):
            d = exp / (f"clips_{split}" + (str(k + 1) if k else ""))
            if not (d / "labels.csv").exists():
                run(
                    regiond_cli,
                    "synth",
                    "clips",
                    "--per-class",
                    str(per_class),
                    "--seed",
                    str(seed),
                    "--frames",
                    "16",
                    "--out",
                    str(d),
                )
            run(
                regiond_cli,
                "extract",
                str(d),
                "--out",
                str(exp / f"cache_clips_{split}"),
                "--profile",
                "lite",
                "--patches",
            )


def scenes(exp: Path, out: Path, seed: int, dim: int) -> list[dict]:
    from regiond.heads.cache_jobs import evaluate_on_cache, train_on_cache
    from regiond.heads.config import TrainConfig

    views = {"frames_per_view": 4, "views": 6}  # training views: 4 random frames of a room
    runs = [
        ("linear probe (per region)", "segment", "region-linear", {}, {}),
        ("scene transformer, 2D only", "scene", "scene-transformer", {"pos3d": False, "dim": dim}, views),
        ("scene transformer, 2D + 3D", "scene", "scene-transformer", {"pos3d": True, "dim": dim}, views),
    ]
    rows = []
    for label, task, head, over, tover in runs:
        # the probe is cheap: give it a higher rate and more patience so it is not under-trained
        cfg = (
            TrainConfig(epochs=40, lr=1e-3, warmup=20, batch_size=8, patience=8, seed=seed)
            if task == "scene"
            else TrainConfig(epochs=100, lr=1e-2, warmup=20, batch_size=8, patience=15, seed=seed)
        )
        d = out / f"scene_{head}_{'3d' if over.get('pos3d') else 'no3d'}"
        job = train_on_cache(
            task,
            exp / "cache_rooms_train",
            d,
            head=head,
            val_cache=exp / "cache_rooms_val",
            cfg=cfg,
            head_overrides=over,
            task_overrides=tover,
            progress=True,
        )
        rep20 = evaluate_on_cache(
            task if task == "segment" else "scene",
            d,
            exp / "cache_rooms_test",
            protocol="scannet20",
            confusion_png=out / f"{d.name}_scannet20.png",
        )
        # the same task (per-frame for the probe, all frames for the transformer)
        rep_all = evaluate_on_cache(
            task, d, exp / "cache_rooms_test", protocol="head", confusion_png=out / f"{d.name}_all.png"
        )
        rows.append(
            {
                "model": label,
                "miou20": rep20.metrics["miou"],
                "miou_all": rep_all.metrics["miou"],
                "acc_all": rep_all.metrics["pixel_acc"],
                "iou_all": rep_all.metrics["iou"],
                "epochs": job.result.epochs_run,
                "train_s": job.result.seconds,
                "infer_s": rep20.seconds,
                "classes": len(job.classes),
            }
        )
        print(json.dumps(rows[-1]), flush=True)
    return rows


def activity(
    exp: Path,
    out: Path,
    seed: int,
    dim: int,
    heads: int = 4,
    budget: float = 0.0,
    epochs: int = 80,
    which: tuple = ("regions", "patches"),
) -> list[dict]:
    from regiond.extraction.cache import TokenCache
    from regiond.heads.cache_jobs import evaluate_on_cache, train_on_cache
    from regiond.heads.config import TrainConfig
    from regiond.heads.demo_heads import SYNTHETIC_CLIP_SYMMETRIES

    cache = TokenCache.open(exp / "cache_clips_train")
    first = cache.of_kind("clip")[0]
    patches_per_clip = sum(len(r) for r in cache.frames(first, patches=True))
    rows = []
    runs = (("region tokens", "regions", 400), ("patch tokens (baseline)", "patches", patches_per_clip))
    for label, tokens, max_tokens in (r for r in runs if r[1] in which):
        cfg = TrainConfig(epochs=epochs, lr=1e-3, warmup=30, batch_size=8, patience=12, seed=seed, max_seconds=budget)
        d = out / f"activity_{tokens}"
        job = train_on_cache(
            "activity",
            exp / "cache_clips_train",
            d,
            val_cache=exp / "cache_clips_val",
            tokens=tokens,
            cfg=cfg,
            task_overrides={"symmetries": SYNTHETIC_CLIP_SYMMETRIES},
            head_overrides={"dim": dim, "heads": heads, "max_tokens": max_tokens},
            progress=True,
        )
        rep = evaluate_on_cache("activity", d, exp / "cache_clips_test", confusion_png=out / f"{d.name}.png")
        rows.append(
            {
                "model": label,
                "top1": rep.metrics["top1"],
                "top5": rep.metrics["top5"],
                "tokens_per_clip": rep.tokens,
                "padded_to": max_tokens,
                "epochs": job.result.epochs_run,
                "train_s": job.result.seconds,
                "budget_hit": bool(budget and job.result.seconds > budget),
                "infer_ms_per_clip": 1000 * rep.seconds / rep.metrics["clips"],
                "clips": rep.metrics["clips"],
            }
        )
        print(json.dumps(rows[-1]), flush=True)
    return rows


def tables(scene_rows, act_rows) -> str:
    out = []
    if scene_rows:
        out += [
            "| scenes (synthetic rooms, held-out seeds) | mIoU ScanNet-20 | mIoU all classes | pixel acc. | "
            "floor / ceiling IoU | epochs | train s |",
            "|---|---|---|---|---|---|---|",
        ]
        for r in scene_rows:
            fc = f"{100 * (r['iou_all'].get('floor') or 0):.1f} / {100 * (r['iou_all'].get('ceiling') or 0):.1f}"
            out.append(
                f"| {r['model']} | {100 * r['miou20']:.1f} | {100 * r['miou_all']:.1f} | "
                f"{100 * r['acc_all']:.1f} | {fc} | {r['epochs']} | {r['train_s']:.0f} |"
            )
    if act_rows:
        out += [
            "",
            "| activity (synthetic clips, 9 classes, held-out seeds) | top-1 | top-5 | tokens/clip | "
            "padded to | epochs | train s | inference ms/clip |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for r in act_rows:
            out.append(
                f"| {r['model']} | {100 * r['top1']:.1f} | {100 * r['top5']:.1f} | {r['tokens_per_clip']:.0f} | "
                f"{r['padded_to']} | {r['epochs']}{' (time budget)' if r.get('budget_hit') else ''} | "
                f"{r['train_s']:.0f} | {r['infer_ms_per_clip']:.1f} |"
            )
    return "\n".join(out)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--exp", required=True, type=Path, help="experiment folder (caches, outputs)")
    ap.add_argument("--prepare", action="store_true", help="generate the data and extract the caches first")
    ap.add_argument("--only", choices=["scenes", "activity"], default=None, help="run one experiment only")
    ap.add_argument("--seed", type=int, default=0, help="training seed (default 0)")
    ap.add_argument("--activity-dim", type=int, default=64, help="activity transformer width (default 64)")
    ap.add_argument("--activity-heads", type=int, default=4, help="activity transformer attention heads (default 4)")
    ap.add_argument(
        "--budget",
        type=float,
        default=0.0,
        help="activity: stop each model's training after the epoch that passes this many seconds (0 = none)",
    )
    ap.add_argument("--activity-epochs", type=int, default=80, help="activity: maximum epochs (default 80)")
    ap.add_argument(
        "--tokens",
        nargs="+",
        default=["regions", "patches"],
        choices=["regions", "patches"],
        help="activity: which models to train (default both)",
    )
    ap.add_argument("--scene-dim", type=int, default=64, help="scene transformer width (default 64)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    args = ap.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    if args.prepare:
        prepare(args.exp, str(Path(sys.executable).with_name("regiond")))
    out = args.exp / "results"
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    s_rows = scenes(args.exp, out, args.seed, args.scene_dim) if args.only in (None, "scenes") else []
    a_rows = (
        activity(
            args.exp,
            out,
            args.seed,
            args.activity_dim,
            args.activity_heads,
            args.budget,
            args.activity_epochs,
            tuple(args.tokens),
        )
        if args.only in (None, "activity")
        else []
    )
    text = tables(s_rows, a_rows)
    (out / f"tables_{args.only or 'all'}{'' if len(args.tokens) == 2 else '_' + args.tokens[0]}.md").write_text(
        text + "\n"
    )
    (out / f"results_{args.only or 'all'}{'' if len(args.tokens) == 2 else '_' + args.tokens[0]}.json").write_text(
        json.dumps({"scenes": s_rows, "activity": a_rows}, indent=1)
    )
    print(text)
    print(f"({time.perf_counter() - t0:.0f} s; pictures and heads in {out})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
