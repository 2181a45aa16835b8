"""Small heads for the synthetic classes, trained in a minute or two for `make demo`.

    heads_dir = demo_heads("out/demo/heads", extractor)     # then: regiond serve --heads heads_dir

For the lite profile the package ships heads trained by bench/heads_experiments.py
(daemon/heads/pretrained/classic-32). For any other extractor it renders a few synthetic rooms
and activity clips in memory (regiond.scenes.synthetic), extracts them with the daemon's own
extractor into a token cache, and trains `segment/`, `scene/` and `activity/` heads there. A second call finds them
(same extractor, same settings) and
returns at once. The rooms and clips use seeds the demo's own scan does not.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from regiond.core.frames import Frame, evenly_spaced
from regiond.extraction import Extractor
from regiond.extraction.cache import CLIP_FRAMES, TokenCache, extractor_versions
from regiond.extraction.extract_job import extract_item
from regiond.heads.cache_jobs import train_on_cache
from regiond.heads.config import TrainConfig
from regiond.heads.serving import bundled_heads
from regiond.scenes import open_source
from regiond.scenes.synthetic.clips import ACTIVITY_CLASSES, render_clip


@dataclass(frozen=True)
class DemoHeadsConfig:
    """Sizes of the demo's training data and heads (small: it must take a minute or two).

    rooms          synthetic room seeds (frames each, at width×height)
    clips_per_class  synthetic clips per activity class (8 frames each)
    epochs         training epochs per head (early stopping on the held-out room/clips)
    dim            transformer width
    """

    rooms: tuple = (900, 901, 902)
    room_frames: int = 10
    width: int = 160
    height: int = 120
    clips_per_class: int = 4
    epochs: int = 20
    dim: int = 64
    seed: int = 0


STAMP = "demo-heads.json"

#: How the synthetic activity classes (regiond.scenes.synthetic.clips) map under a left-right mirror, a
#: top-bottom mirror and time reversal; classes not listed stay what they are.
SYNTHETIC_CLIP_SYMMETRIES = {
    "hflip": {"moving_left": "moving_right", "moving_right": "moving_left"},
    "vflip": {"rising": "falling", "falling": "rising"},
    "reverse": {
        "moving_left": "moving_right",
        "moving_right": "moving_left",
        "rising": "falling",
        "falling": "rising",
        "approaching": "receding",
        "receding": "approaching",
        "meeting": "parting",
        "parting": "meeting",
    },
}


def _room_frames(seed: int, cfg: DemoHeadsConfig) -> Iterable[Frame]:
    return open_source(f"synthetic:{seed}", frames=cfg.room_frames, width=cfg.width, height=cfg.height)


def _clip_frames(label: int, seed: int, cfg: DemoHeadsConfig) -> list[Frame]:
    clip = render_clip(label, seed, frames=16, width=cfg.width, height=cfg.height)
    picks = evenly_spaced(len(clip.frames), CLIP_FRAMES)
    return [Frame(rgb=np.ascontiguousarray(clip.frames[i]), index=int(i)) for i in picks]


def demo_heads(
    out_dir: str | Path,
    extractor: Extractor,
    cfg: DemoHeadsConfig = DemoHeadsConfig(),
    progress: bool = True,
    log: Callable[[str], None] = print,
    use_bundled: bool = True,
) -> Path:
    """Heads for the demo: the bundled ones for this extractor when there are (use_bundled),
    else trained (or found already trained) in out_dir. Returns the directory for `--heads`."""
    if use_bundled and (found := bundled_heads(extractor)) is not None:
        log(f"demo heads: using the bundled heads in {found}")
        return found
    out = Path(out_dir)
    want = {"versions": extractor_versions(extractor), "config": asdict(cfg)}
    stamp = out / STAMP
    if stamp.is_file() and json.loads(stamp.read_text()) == json.loads(json.dumps(want)):
        log(f"demo heads: using {out}")
        return out
    t0 = time.perf_counter()
    cache_dir = out / "cache"
    if cache_dir.exists():
        shutil.rmtree(cache_dir)
    cache = TokenCache.create(cache_dir, extractor_versions(extractor))
    n_frames = len(cfg.rooms) * cfg.room_frames + len(ACTIVITY_CLASSES) * cfg.clips_per_class * CLIP_FRAMES
    with tqdm(total=n_frames, desc="demo heads: extracting", unit="frame", disable=not progress) as bar:
        for seed in cfg.rooms:
            extract_item(
                cache,
                extractor,
                f"room{seed}",
                "scene",
                _room_frames(seed, cfg),
                source=f"synthetic:{seed}",
                progress=bar,
            )
        for label, cls in enumerate(ACTIVITY_CLASSES):
            for k in range(cfg.clips_per_class):
                extract_item(
                    cache,
                    extractor,
                    f"clips/{cls}_{k}",
                    "clip",
                    _clip_frames(label, 700 + k, cfg),
                    label=cls,
                    source="regiond.scenes.synthetic.clips",
                    progress=bar,
                )
    tcfg = TrainConfig(epochs=cfg.epochs, warmup=10, patience=8, seed=cfg.seed, lr=2e-3)
    small = {"dim": cfg.dim, "heads": 8}
    jobs = [
        ("segment", "region-mlp", {"hidden": 256}, {}),
        ("scene", "scene-transformer", small, {"frames_per_view": 4, "views": 4}),
        ("activity", "activity-transformer", small, {"symmetries": SYNTHETIC_CLIP_SYMMETRIES}),
    ]
    for task, head, over, task_over in jobs:
        job = train_on_cache(
            task,
            cache_dir,
            out / task,
            head=head,
            val_fraction=0.25,
            cfg=tcfg,
            head_overrides=over,
            task_overrides=task_over,
            progress=progress,
        )
        log(
            f"demo heads: {task} ({head}) trained in {job.result.seconds:.0f} s, "
            f"validation {'top-1' if task == 'activity' else 'region accuracy'} {100 * job.result.val_metric:.0f}%"
        )
    stamp.write_text(json.dumps(want))
    log(f"demo heads: ready in {out} ({time.perf_counter() - t0:.0f} s)")
    return out
