"""Train and evaluate heads on token caches: what `regiond train` / `regiond eval` and the
experiment scripts call.

    result = train_on_cache("scene", "cache/train", "heads/scene", val_cache="cache/val")
    report = evaluate_on_cache("scene", "heads/scene", "cache/test")
    print(report.text)
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from regiond.core.confusion import Confusion, EvalProtocol
from regiond.core.errors import InputError
from regiond.core.label_spaces import NYU40_NAMES, read_label_png
from regiond.core.viz import label_colours
from regiond.extraction.cache import TokenCache, check_compatible
from regiond.heads.config import TrainConfig
from regiond.heads.label_maps import pixel_labels
from regiond.heads.predict import clip_scores, frame_probs
from regiond.heads.registry import LoadedHead, create_head, load_head, save_head
from regiond.heads.scores import topk_accuracy
from regiond.heads.trained_on import training_record
from regiond.heads.training import ActivityTask, SceneTask, SegmentTask, TrainResult, clip_length, fit
from regiond.scenes import open_source

TASKS = {"segment": SegmentTask, "scene": SceneTask, "activity": ActivityTask}
DEFAULT_HEAD = {"segment": "region-mlp", "scene": "scene-transformer", "activity": "activity-transformer"}
#: Which cache items each task reads.
TASK_KINDS = {"segment": ("scene", "images"), "scene": ("scene",), "activity": ("clip",)}


def nyu40_names() -> dict[int, str]:
    return dict(enumerate(NYU40_NAMES))


def task_items(task: str, cache: TokenCache) -> list:
    items = [i for i in cache.items if i.kind in TASK_KINDS[task]]
    if not items:
        raise InputError("cache", f"{cache.root} has no {' or '.join(TASK_KINDS[task])} items for task {task!r}")
    return items


def split_items(items: list, val_fraction: float, seed: int) -> tuple[list, list]:
    """Hold out a seeded fraction of items (at least one, when there are two or more)."""
    if len(items) < 2 or val_fraction <= 0:
        raise InputError("val_fraction", f"need a --val-cache or at least 2 items to hold some out (have {len(items)})")
    order = np.random.default_rng(seed).permutation(len(items))
    n_val = min(len(items) - 1, max(1, int(round(val_fraction * len(items)))))
    val = set(order[:n_val].tolist())
    return [it for k, it in enumerate(items) if k not in val], [it for k, it in enumerate(items) if k in val]


def class_list(task: str, cache: TokenCache, items: list) -> list[dict]:
    """Output classes of a head: the clip labels, or the region label ids present in `items`."""
    if task == "activity":
        names = sorted({it.label for it in items})
        return [{"id": k, "name": n} for k, n in enumerate(names)]
    ids: set[int] = set()
    for it in items:
        for r in cache.frames(it):
            if r.labels is not None:
                ids.update(int(v) for v in np.unique(r.labels) if v >= 0)
    if not ids:
        raise InputError("cache", f"{cache.root}: no labelled regions (sources without ground truth?)")
    names = nyu40_names()
    return [{"id": i, "name": names.get(i, str(i))} for i in sorted(ids)]


def make_task(task: str, cache: TokenCache, items: list, classes: list[dict], patches: bool, **kw):
    index = (
        {c["name"]: k for k, c in enumerate(classes)}
        if task == "activity"
        else {c["id"]: k for k, c in enumerate(classes)}
    )
    return TASKS[task](cache, items, index, patches=patches, **kw)


@dataclass
class TrainJob:
    """What train_on_cache did: where the head is, how training went."""

    head_dir: Path
    head: str
    classes: list
    result: TrainResult
    train_items: int
    val_items: int
    trained_on: dict = field(default_factory=dict)  # the head's meta.trained_on record


def train_on_cache(
    task: str,
    cache_dir,
    out_dir,
    head: str | None = None,
    val_cache=None,
    val_fraction: float = 0.2,
    tokens: str = "regions",
    cfg: TrainConfig | None = None,
    head_overrides: dict | None = None,
    task_overrides: dict | None = None,
    progress: bool = True,
    dataset: str | None = None,
) -> TrainJob:
    """Train a head for `task` on a cache and save it to out_dir (safetensors + JSON).

    head            registry name (default DEFAULT_HEAD[task])
    val_cache       validation cache (else val_fraction of the items, by seed)
    tokens          "regions" or "patches" (the baseline; needs a cache extracted with --patches)
    head_overrides  config fields of the head (dim, layers, pos3d, ...)
    task_overrides  task fields (max_tokens, frames_per_view, views)
    dataset         the training data in words, for the head's trained_on record (default: the
                    cache and its sources)
    """
    if task not in TASKS:
        raise InputError("task", f"unknown task {task!r}; one of {', '.join(TASKS)}")
    if tokens not in ("regions", "patches"):
        raise InputError("tokens", f"must be regions or patches, got {tokens!r}")
    cfg = cfg or TrainConfig()
    cache = TokenCache.open(cache_dir)
    items = task_items(task, cache)
    if val_cache is not None:
        vcache = TokenCache.open(val_cache)
        check_compatible(cache.versions, vcache.versions, str(val_cache))
        train_items, val_items = items, task_items(task, vcache)
    else:
        vcache = cache
        train_items, val_items = split_items(items, val_fraction, cfg.seed)
    # clip classes are names: take them from both splits so a class held out by chance is known
    classes = class_list(task, cache, train_items + (val_items if task == "activity" else []))
    name = head or DEFAULT_HEAD[task]
    if task == "activity":  # the head records the clip length it reads (serving feeds it that)
        head_overrides = {"window": clip_length(train_items + val_items), **(head_overrides or {})}
    torch.manual_seed(cfg.seed)
    model = create_head(
        name,
        in_dim=int(cache.versions["dim"]),
        num_classes=len(classes),
        **{"tokens": tokens, **(head_overrides or {})},
    )
    tkw = dict(task_overrides or {})
    if task != "segment" and getattr(model.config, "max_tokens", 0) and "max_tokens" not in tkw:
        tkw["max_tokens"] = model.config.max_tokens
    patches = tokens == "patches"
    known = set(TASKS[task].__dataclass_fields__)
    tkw = {k: v for k, v in tkw.items() if k in known}
    t_train = make_task(task, cache, train_items, classes, patches, **tkw)
    t_val = make_task(task, vcache, val_items, classes, patches, **{k: v for k, v in tkw.items() if k == "max_tokens"})
    result = fit(model, t_train, t_val, cfg, progress=progress)
    meta = {
        "task": task,
        "tokens": tokens,
        "versions": cache.versions,
        "train_cache": str(cache_dir),
        "val_cache": str(val_cache) if val_cache else None,
        "train_items": len(train_items),
        "val_items": len(val_items),
        "train": {**cfg.__dict__},
        "best_epoch": result.best_epoch,
        "best_val_loss": result.best_val_loss,
        "val_metric": result.val_metric,
        "train_seconds": result.seconds,
        "trained_on": training_record(task, cache, train_items, val_items, result.val_metric),
    }
    if dataset:
        meta["trained_on"]["dataset"] = dataset
    out = save_head(model, out_dir, classes, meta)
    return TrainJob(out, name, classes, result, len(train_items), len(val_items), meta["trained_on"])


# --- evaluation ------------------------------------------------------------------------------


@dataclass
class EvalReport:
    """Scores of a head on a cache; `text` is what `regiond eval` prints."""

    task: str
    metrics: dict = field(default_factory=dict)
    text: str = ""
    confusion: Confusion | None = None
    seconds: float = 0.0  # head inference time only (not loading, not metrics)
    tokens: float = 0.0  # mean tokens per sample fed to the head


def protocol_for(name: str, head: LoadedHead) -> EvalProtocol:
    """ "scannet20": the ScanNet benchmark protocol; "head": the head's own classes, native size."""
    if name == "scannet20":
        return EvalProtocol.scannet20()
    if name == "head":
        return EvalProtocol(tuple(head.class_ids), None, tuple(head.class_names))
    raise InputError("protocol", f"unknown protocol {name!r}; one of scannet20, head")


def evaluate_on_cache(
    task: str, head_dir, cache_dir, protocol: str = "scannet20", confusion_png: str | Path | None = None
) -> EvalReport:
    """Score a saved head on a cache: per-class IoU and mIoU for segment/scene (per-pixel
    labels by the averaging rule), top-1/top-5 for activity; optionally a confusion PNG."""
    head = load_head(head_dir)
    cache = TokenCache.open(cache_dir)
    trained = head.meta.get("versions")
    if trained:
        check_compatible(trained, cache.versions, str(cache_dir))
    patches = head.meta.get("tokens", getattr(head.model.config, "tokens", "regions")) == "patches"
    items = task_items(task, cache)
    rep = EvalReport(task)
    n_tokens = []
    if task == "activity":
        index = {n: k for k, n in enumerate(head.class_names)}
        scores, targets = [], []
        for it in items:
            if it.label not in index:
                raise InputError(
                    "cache",
                    f"clip {it.name} has class {it.label!r}, unknown to the head ({', '.join(head.class_names)})",
                )
            frames = cache.frames(it, patches)
            n_tokens.append(min(sum(len(f) for f in frames), head.model.config.max_tokens or 10**9))
            t0 = time.perf_counter()
            scores.append(clip_scores(head.model, frames))
            rep.seconds += time.perf_counter() - t0
            targets.append(index[it.label])
        scores, targets = np.stack(scores), np.asarray(targets)
        conf = Confusion(tuple(range(len(head.classes))), tuple(head.class_names))
        conf.add_ids(targets, scores.argmax(1))
        rep.metrics = {
            "top1": topk_accuracy(scores, targets, 1),
            "top5": topk_accuracy(scores, targets, 5),
            "clips": len(targets),
        }
        rep.text = (
            f"activity: {len(targets)} clips, top-1 {100 * rep.metrics['top1']:.1f}%, "
            f"top-5 {100 * rep.metrics['top5']:.1f}%"
        )
    else:
        proto = protocol_for(protocol, head)
        conf = proto.confusion()
        joint = task == "scene"
        n_frames = 0
        for it in items:
            frames = cache.frames(it, patches)
            n_tokens.append(sum(len(f) for f in frames) / max(1, len(frames)))
            t0 = time.perf_counter()
            probs = frame_probs(head.model, frames, joint=joint)
            rep.seconds += time.perf_counter() - t0
            for i, (r, p) in enumerate(zip(frames, probs)):
                gt = cache.label_map(it, i)
                if gt is None:
                    continue
                proto.add(conf, gt, pixel_labels(r, p, head.class_ids))
                n_frames += 1
        if not n_frames:
            raise InputError("cache", f"{cache_dir}: no frames with ground-truth label maps")
        rep.metrics = {
            "miou": conf.miou(),
            "pixel_acc": conf.accuracy(),
            "frames": n_frames,
            "iou": {n: (None if np.isnan(v) else float(v)) for n, v in zip(conf.names, conf.iou())},
        }
        rep.text = (
            f"{task} ({protocol}, {n_frames} frames)\n"
            + conf.table()
            + f"\npixel accuracy {100 * conf.accuracy():.2f}%"
        )
    rep.confusion = conf
    rep.tokens = float(np.mean(n_tokens)) if n_tokens else 0.0
    if confusion_png:
        colours = None if task == "activity" else label_colours()[list(conf.class_ids)]  # NYU40 ids
        conf.save_png(confusion_png, title=f"{task}: {Path(head_dir).name} on {Path(cache_dir).name}", colours=colours)
        rep.text += f"\nconfusion matrix: {confusion_png}"
    return rep


def evaluate_label_folder(
    pred_dir,
    scene,
    protocol: str = "scannet20",
    labels_tsv=None,
    confusion_png: str | Path | None = None,
    **source_opts,
) -> EvalReport:
    """Score label PNGs written in ScanNet's benchmark layout (`<scene>_<frame:06d>.png`, e.g.
    by clients/scan_scene.py) against a scene's ground truth (scenes.open_source(scene)).
    Frames of the scene without a prediction file are skipped and counted."""
    preds = {}
    for p in Path(pred_dir).glob("*.png"):
        stem = p.stem.rsplit("_", 1)[-1]
        if stem.isdigit():
            preds[int(stem)] = p
    if not preds:
        raise InputError("pred", f"{pred_dir} has no <scene>_<frame>.png label maps")
    if protocol != "scannet20":
        raise InputError("protocol", "label folders are evaluated with the scannet20 protocol")
    proto = EvalProtocol.scannet20()
    conf = proto.confusion()
    opts = dict(source_opts, **({"labels_tsv": str(labels_tsv)} if labels_tsv else {}))
    used = missing = 0
    for frame in open_source(str(scene), **opts):
        if frame.labels is None:
            continue
        p = preds.get(int(frame.index))
        if p is None:
            missing += 1
            continue
        proto.add(conf, frame.labels, read_label_png(p))
        used += 1
    if not used:
        raise InputError("scene", f"{scene}: no frame with ground truth matches a prediction in {pred_dir}")
    rep = EvalReport(
        "labels",
        {"miou": conf.miou(), "pixel_acc": conf.accuracy(), "frames": used, "frames_without_prediction": missing},
        confusion=conf,
    )
    rep.text = (
        f"labels ({protocol}, {used} frames, {missing} ground-truth frames without a prediction)\n"
        + conf.table()
        + f"\npixel accuracy {100 * conf.accuracy():.2f}%"
    )
    if confusion_png:
        conf.save_png(
            confusion_png,
            title=f"labels in {Path(pred_dir).name} vs {scene}",
            colours=label_colours()[list(conf.class_ids)],
        )
        rep.text += f"\nconfusion matrix: {confusion_png}"
    return rep
