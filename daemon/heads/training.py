"""Training: one loop for every head, and a task per problem (segment, scene, activity).

A task turns cache items into TokenSets (fresh random views each epoch for training, fixed
ones for validation), and says how to score logits. The loop is AdamW with linear warm-up
then cosine decay, early stopping on validation loss (the best weights are kept), seeded so
that the same data and seed give the same head.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field, replace

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from regiond.core.errors import InputError
from regiond.extraction.cache import CacheItem, TokenCache
from regiond.heads.batch import (
    TokenSet,
    collate,
    frames_origin,
    join_frames,
    limit_tokens,
    mirror_clip,
    rotate_scene,
    tokens_from_regions,
)
from regiond.heads.config import TrainConfig


def area_weighted_ce(logits: torch.Tensor, labels: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Per-token cross-entropy weighted by region area; tokens labelled -1 are ignored."""
    keep = labels >= 0
    if not keep.any():
        return logits.sum() * 0.0
    ce = F.cross_entropy(logits[keep], labels[keep], reduction="none")
    w = weights[keep]
    return (ce * w).sum() / w.sum().clamp_min(1e-12)


def weighted_token_accuracy(logits, labels, weights) -> float:
    keep = labels >= 0
    if not keep.any():
        return float("nan")
    w = weights[keep]
    hit = (logits[keep].argmax(-1) == labels[keep]).float()
    return float((hit * w).sum() / w.sum())


# --- tasks ---------------------------------------------------------------------------------


class RegionLabelTask:
    """A task whose targets are region labels: area-weighted cross-entropy, and the
    area-weighted share of correctly labelled regions as its metric."""

    metric_name = "acc"
    pad_to = None

    def loss(self, logits, batch):
        return area_weighted_ce(logits, batch.labels, batch.weights)

    def metric(self, logits, batch):
        return weighted_token_accuracy(logits, batch.labels, batch.weights)


@dataclass
class SegmentTask(RegionLabelTask):
    """Per-image region labels: one sample per frame (all scene and image items)."""

    cache: TokenCache
    items: list[CacheItem]
    class_index: dict
    patches: bool = False
    name: str = "segment"

    def __post_init__(self):
        self._samples = [
            tokens_from_regions([r], self.class_index) for it in self.items for r in self.cache.frames(it, self.patches)
        ]

    def train_samples(self, rng) -> list[TokenSet]:
        return self._samples

    def val_samples(self) -> list[TokenSet]:
        return self._samples


@dataclass
class SceneTask(RegionLabelTask):
    """Scene-level region labels: training samples are random subsets of a scene's frames
    (`frames_per_view` frames, `views` per scene per epoch), each turned by a random angle about
    the vertical axis when `rotate` (batch.rotate_scene); validation sees every frame, up to
    max_tokens (the largest regions)."""

    cache: TokenCache
    items: list[CacheItem]
    class_index: dict
    max_tokens: int = 2048
    frames_per_view: int = 8
    views: int = 8
    rotate: bool = True
    patches: bool = False
    name: str = "scene"

    def __post_init__(self):
        self._scenes = []
        for it in self.items:
            frames = self.cache.frames(it, self.patches)
            origin = frames_origin(self.cache.frames(it)) if self.patches else frames_origin(frames)
            self._scenes.append([tokens_from_regions([r], self.class_index, origin) for r in frames])

    def _join(self, per_frame: list[TokenSet], picks) -> TokenSet:
        return join_frames([per_frame[i] for i in picks])

    def train_samples(self, rng) -> list[TokenSet]:
        out = []
        for per_frame in self._scenes:
            k = min(self.frames_per_view, len(per_frame))
            for _ in range(self.views):
                picks = np.sort(rng.choice(len(per_frame), size=k, replace=False))
                view = limit_tokens(self._join(per_frame, picks), self.max_tokens, rng)
                if self.rotate:
                    view = rotate_scene(view, rng.uniform(0, 2 * np.pi), (*rng.normal(0, 0.3, 2), 0.0))
                out.append(view)
        return out

    def val_samples(self) -> list[TokenSet]:
        return [limit_tokens(self._join(s, range(len(s))), self.max_tokens) for s in self._scenes]


@dataclass
class ActivityTask:
    """Clip classes: each clip's frames (all clips one length), at most max_tokens tokens (random when training, the
    largest
    regions otherwise), padded to max_tokens with a padding mask. Training drops a random
    share (up to token_dropout) of each clip's tokens and, given `symmetries` ({"hflip" |
    "vflip" | "reverse": {class: class it becomes}}, unlisted classes unchanged), mirrors and
    reverses clips with the matching class swaps, so that a few clips go further."""

    cache: TokenCache
    items: list[CacheItem]
    class_index: dict
    max_tokens: int = 400
    token_dropout: float = 0.25
    symmetries: dict | None = None
    patches: bool = False
    name: str = "activity"
    metric_name: str = "top1"

    def __post_init__(self):
        self.pad_to = self.max_tokens
        self._clips = [
            tokens_from_regions(self.cache.frames(it, self.patches), target=self.class_index[it.label])
            for it in self.items
        ]
        self.window = clip_length(self.items)
        self._names = {k: n for n, k in self.class_index.items()}

    def _mirrored(self, c: TokenSet, rng) -> TokenSet:
        """Each symmetry (hflip, vflip, reverse) with probability 1/2, when every class it
        maps to is one of the head's classes."""
        name = self._names[c.target]
        kw = {}
        for key, arg in (("hflip", "horizontal"), ("vflip", "vertical"), ("reverse", "reverse")):
            swap = (self.symmetries or {}).get(key)
            if swap is None or rng.random() < 0.5:
                continue
            new = swap.get(name, name)
            if new not in self.class_index:
                continue
            kw[arg], name = True, new
        if not kw:
            return c
        return replace(mirror_clip(c, frames=self.window, **kw), target=self.class_index[name])

    def train_samples(self, rng) -> list[TokenSet]:
        out = []
        for c in self._clips:
            if self.symmetries:
                c = self._mirrored(c, rng)
            keep = int(round(len(c) * (1 - rng.uniform(0, self.token_dropout))))
            out.append(limit_tokens(c, max(1, min(keep, self.max_tokens)), rng))
        return out

    def val_samples(self) -> list[TokenSet]:
        return [limit_tokens(c, self.max_tokens) for c in self._clips]

    def loss(self, logits, batch):
        return F.cross_entropy(logits, batch.targets)

    def metric(self, logits, batch):
        return float((logits.argmax(-1) == batch.targets).float().mean())


def clip_length(items: list[CacheItem]) -> int:
    """The frames per clip of clip items (an activity head reads clips of one length)."""
    lengths = sorted({len(it.frames) for it in items})
    if len(lengths) != 1:
        raise InputError(
            "cache",
            f"clips of different lengths {lengths}: an activity head reads clips of one "
            f"length; extract them with the same --clip-frames",
        )
    return lengths[0]


# --- the loop --------------------------------------------------------------------------------


@dataclass
class TrainResult:
    best_epoch: int
    best_val_loss: float
    val_metric: float
    epochs_run: int
    seconds: float
    history: list = field(default_factory=list)  # per epoch: train_loss, val_loss, val_metric


def set_seed(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)


def standardize_from(model, samples: list[TokenSet]) -> None:
    """Set the head's input standardisation from the training tokens."""
    feats = torch.from_numpy(np.concatenate([s.features for s in samples]))
    model.norm.set_stats(feats)


@torch.no_grad()
def evaluate_task(model, task, samples: list[TokenSet], batch_size: int) -> tuple[float, float]:
    """(mean loss, mean metric) over samples, batch by batch, in eval mode."""
    model.eval()
    losses, metrics, sizes = [], [], []
    for i in range(0, len(samples), batch_size):
        chunk = samples[i : i + batch_size]
        batch = collate(chunk, task.pad_to)
        logits = model(batch)
        losses.append(float(task.loss(logits, batch)))
        metrics.append(task.metric(logits, batch))
        sizes.append(len(chunk))
    w = np.asarray(sizes, np.float64)
    m = np.asarray(metrics, np.float64)
    ok = np.isfinite(m)
    return float(np.average(losses, weights=w)), float(np.average(m[ok], weights=w[ok])) if ok.any() else float("nan")


def fit(model, task_train, task_val, cfg: TrainConfig, progress: bool = True, log=None) -> TrainResult:
    """Train `model` on task_train, early-stopping on task_val's loss; the model ends with
    the weights of its best validation epoch."""
    set_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    first = task_train.train_samples(rng)
    if not first:
        raise ValueError(f"no training samples for {task_train.name}")
    standardize_from(model, first)
    val = task_val.val_samples()
    steps_per_epoch = max(1, math.ceil(len(first) / cfg.batch_size))
    total = steps_per_epoch * cfg.epochs
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)

    def lr_at(step: int) -> float:
        if step < cfg.warmup:
            return (step + 1) / cfg.warmup
        return 0.5 * (1 + math.cos(math.pi * min(1.0, (step - cfg.warmup) / max(1, total - cfg.warmup))))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_at)
    best = (float("inf"), -1, float("nan"))
    best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    history, t0, stale, step = [], time.perf_counter(), 0, 0
    bar = tqdm(range(cfg.epochs), desc=f"train {task_train.name}", unit="epoch", disable=not progress)
    samples = first
    for epoch in bar:
        if epoch:
            samples = task_train.train_samples(rng)
        model.train()
        order = rng.permutation(len(samples))
        run = []
        for i in range(0, len(order), cfg.batch_size):
            batch = collate([samples[j] for j in order[i : i + cfg.batch_size]], task_train.pad_to)
            loss = task_train.loss(model(batch), batch)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            step += 1
            run.append(float(loss.detach()))
        vloss, vmetric = evaluate_task(model, task_val, val, cfg.batch_size)
        history.append(
            {
                "epoch": epoch,
                "train_loss": float(np.mean(run)),
                "val_loss": vloss,
                "val_" + task_val.metric_name: vmetric,
            }
        )
        bar.set_postfix(loss=f"{np.mean(run):.3f}", val_loss=f"{vloss:.3f}", **{task_val.metric_name: f"{vmetric:.3f}"})
        if log:
            log(history[-1])
        if vloss < best[0] - 1e-6:
            best, stale = (vloss, epoch, vmetric), 0
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        else:
            stale += 1
            if stale >= cfg.patience:
                break
        if cfg.max_seconds and time.perf_counter() - t0 > cfg.max_seconds:
            break
    bar.close()
    model.load_state_dict(best_state)
    model.eval()
    return TrainResult(best[1], best[0], best[2], len(history), time.perf_counter() - t0, history)
