"""What a head was trained on: the `trained_on` record in its config.json's meta.

    "trained_on": {
      "dataset": "6 synthetic rooms (regiond synth scene, seeds 10-15, 40 frames each, 320x240)",
      "origin": "generated",            # generated | own | mixed | unknown
      "items": 6, "frames": 240,        # activity heads: "clips"
      "profile": "lite",
      "held_out": {"metric": "ScanNet-20 mIoU", "score": 0.5778, "on": "3 other synthetic rooms ..."}
    }

`regiond train` writes it (its held-out score is the validation items', which chose the epoch);
`regiond eval --record` replaces that with a score on a test cache. The daemon logs summary()
at start and GetInfo carries the record (HeadInfo.trained_on). A head trained on generated
data only says so: its labels demonstrate the pipeline, they are not a model of real rooms.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from regiond.core.errors import InputError
from regiond.scenes import is_generated

log = logging.getLogger(__name__)

ORIGINS = ("unknown", "generated", "own", "mixed")  # the order of the API's DataOrigin enum
#: What the daemon and `regiond regions` say about heads trained on generated data only.
DEMO_NOTE = (
    "trained on generated data only: their labels demonstrate the pipeline, they are not a model of "
    "real rooms (on real frames expect little better than labelling everything 'wall'); train heads "
    "on your own labelled scans, with DINOv2 weights (docs/own-labels.md)"
)
#: What `regiond train` reports as the validation score, per task.
VAL_METRIC = {"segment": "region accuracy", "scene": "region accuracy", "activity": "top-1"}
ITEM_WORDS = {"scene": "scene", "images": "image folder", "clip": "clip"}  # token-cache item kinds


def origin_of(flags) -> str:
    """One origin for a head's sources (is_generated per source: True, False or None)."""
    flags = list(flags)
    if not flags or any(f is None for f in flags):
        return "unknown"
    if all(flags):
        return "generated"
    return "own" if not any(flags) else "mixed"


def training_record(task: str, cache, train_items: list, val_items: list, val_metric: float) -> dict:
    """The record `regiond train` writes for a head trained on `train_items` of `cache`."""
    sources = sorted({it.source for it in train_items})
    frames = sum(len(it.frames) for it in train_items)
    kinds = sorted({it.kind for it in train_items})
    shown = ", ".join(sources[:4]) + (f" and {len(sources) - 4} more" if len(sources) > 4 else "")
    rec = {
        "dataset": f"{_count(len(train_items), '/'.join(ITEM_WORDS[k] for k in kinds))} of token cache "
        f"{cache.root} ({shown})",
        "origin": origin_of(is_generated(s) for s in sources),
        "items": len(train_items),
        "profile": str(cache.versions.get("profile", "")),
        "held_out": {
            "metric": VAL_METRIC[task],
            "score": float(val_metric),
            "on": f"{_count(len(val_items), 'validation item')} (early stopping's; no test score recorded)",
        },
    }
    rec["clips" if task == "activity" else "frames"] = len(train_items) if task == "activity" else frames
    return rec


def _count(n: int, what: str) -> str:
    return f"{n} {what}{'' if n == 1 else 's'}"


def summary(rec: dict | None) -> str:
    """The record in one line (what the daemon logs, HeadInfo.trained_on's summary)."""
    if not rec:
        return "what it was trained on is not recorded"
    n = f"{rec['clips']} clips" if rec.get("clips") else f"{rec.get('frames', 0)} frames"
    line = (
        f"trained on {rec.get('dataset', '?')}: {rec.get('origin', 'unknown')} data, {n}, {rec.get('profile')} profile"
    )
    held = rec.get("held_out") or {}
    if held.get("score") is not None:
        line += f"; held out: {held.get('metric')} {100 * float(held['score']):.1f} % on {held.get('on')}"
    return line


def is_demonstration(records) -> bool:
    """Whether every recorded head among `records` learnt from generated data only."""
    recs = [r for r in records if r]
    return bool(recs) and all(r.get("origin") == "generated" for r in recs)


def record_held_out(head_dir, metric: str, score: float, on: str) -> dict:
    """Put a held-out score (e.g. `regiond eval`'s on a test cache) into the head's record;
    returns the record. The rest of config.json is kept as it was."""
    cfg = Path(head_dir) / "config.json"
    try:
        doc = json.loads(cfg.read_text())
    except (OSError, ValueError) as e:
        raise InputError("head", f"{cfg}: cannot read ({e})") from None
    meta = doc.setdefault("meta", {})
    rec = meta.setdefault("trained_on", {})
    rec["held_out"] = {"metric": metric, "score": float(score), "on": on}
    tmp = cfg.with_name(cfg.name + ".tmp")
    tmp.write_text(json.dumps(doc, indent=2))
    tmp.replace(cfg)
    return rec
