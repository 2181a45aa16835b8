"""Generated region tokens with known answers, for tests and quick checks of the heads.

Not a substitute for extracted tokens (regiond.scenes.synthetic renders real rooms for that): these
are RegionSets built directly, so a head's training can be checked in a second.

- toy_frame: a grid of rectangular regions, each of one class; the features are a class
  prototype plus noise, except that classes in `alike` share a prototype and differ only in
  their 3D height (like a white floor and a white ceiling). One cell can be left uncovered.
- toy_clip: 8 frames of distractor regions plus one object whose box moves in one of four
  directions (the clip's class), with the same appearance in every class.
- write_toy_cache: a token cache of such scenes and clips, in the cache's real format.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from regiond.core.regionset import RegionSet

TOY_CLASSES = (1, 2, 5, 7, 22)  # wall, floor, chair, table, ceiling (NYU40 ids)
TOY_ALIKE = ((2, 22),)  # floor and ceiling look the same
TOY_MOTIONS = ("left", "right", "up", "down")
TOY_DIM = 16


def _prototypes(dim: int, seed: int = 1234) -> dict[int, np.ndarray]:
    rng = np.random.default_rng(seed)
    protos = {c: rng.normal(size=dim).astype(np.float32) for c in TOY_CLASSES}
    for group in TOY_ALIKE:
        for c in group[1:]:
            protos[c] = protos[group[0]]
    return protos


def toy_frame(
    rng: np.random.Generator,
    height: int = 48,
    width: int = 64,
    rows: int = 3,
    cols: int = 4,
    dim: int = TOY_DIM,
    noise: float = 0.6,
    uncovered: bool = False,
) -> tuple[RegionSet, np.ndarray]:
    """(RegionSet with labels and centroids, H×W label map). Class heights: ceiling at 2.5 m,
    floor at 0 m, others between."""
    protos = _prototypes(dim)
    height_of = {1: 1.2, 2: 0.0, 5: 0.5, 7: 0.8, 22: 2.5}
    ys = np.linspace(0, height, rows + 1).astype(int)
    xs = np.linspace(0, width, cols + 1).astype(int)
    label_map = np.zeros((height, width), np.int32)
    masks, labels, feats, cents = [], [], [], []
    skip = (rows * cols - 1) if uncovered else -1
    for i in range(rows):
        for j in range(cols):
            c = int(rng.choice(TOY_CLASSES))
            label_map[ys[i] : ys[i + 1], xs[j] : xs[j + 1]] = c
            if i * cols + j == skip:
                continue
            m = np.zeros((height, width), bool)
            m[ys[i] : ys[i + 1], xs[j] : xs[j + 1]] = True
            masks.append(m)
            labels.append(c)
            feats.append(protos[c] + noise * rng.normal(size=dim).astype(np.float32))
            cents.append([rng.uniform(-2, 2), rng.uniform(-2, 2), height_of[c] + 0.1 * rng.normal()])
    regions = RegionSet.from_masks(
        np.stack(masks),
        features=np.stack(feats).astype(np.float32),
        centroids=np.asarray(cents, np.float32),
        labels=np.asarray(labels, np.int64),
    )
    return regions, label_map


def toy_clip(
    rng: np.random.Generator,
    motion: str,
    height: int = 48,
    width: int = 64,
    distractors: int = 6,
    dim: int = TOY_DIM,
    frames: int = 8,
) -> list[RegionSet]:
    """8 RegionSets: `distractors` still random boxes and one moving 10×10 object."""
    dx, dy = {"left": (-1, 0), "right": (1, 0), "up": (0, -1), "down": (0, 1)}[motion]
    obj = np.ones(dim, np.float32)
    still = [
        (rng.integers(0, width - 12), rng.integers(0, height - 12), rng.normal(size=dim)) for _ in range(distractors)
    ]
    x0, y0 = width / 2 - 5 - dx * 16, height / 2 - 5 - dy * 12
    out = []
    for f in range(frames):
        masks, feats = [], []
        for sx, sy, v in still:
            m = np.zeros((height, width), bool)
            m[sy : sy + 12, sx : sx + 12] = True
            masks.append(m)
            feats.append(v + 0.3 * rng.normal(size=dim))
        x, y = int(round(x0 + dx * 4 * f)), int(round(y0 + dy * 3 * f))
        m = np.zeros((height, width), bool)
        m[max(0, y) : y + 10, max(0, x) : x + 10] = True
        masks.append(m)
        feats.append(obj + 0.3 * rng.normal(size=dim))
        order = rng.permutation(len(masks))  # the object is not always the last token
        out.append(
            RegionSet.from_masks(
                np.stack(masks)[order], features=np.stack(feats)[order].astype(np.float32), meta={"frame_index": f}
            )
        )
    return out


TOY_VERSIONS = {
    "profile": "toy",
    "masker": "toy-grid",
    "backbone": "toy-prototypes",
    "dim": TOY_DIM,
    "pooling": "mean",
    "regiond": "toy",
}


def write_toy_cache(
    root, scenes: int = 3, frames: int = 6, clips_per_class: int = 4, seed: int = 0, uncovered: bool = False
):
    """A token cache of toy scenes (with label maps) and toy clips (with classes)."""
    from regiond.core.label_spaces import write_label_png
    from regiond.extraction.cache import CacheItem, TokenCache

    rng = np.random.default_rng(seed)
    cache = TokenCache.create(root, TOY_VERSIONS)
    for s in range(scenes):
        name = f"scene{s:02d}"
        d = Path(root) / name
        d.mkdir(parents=True, exist_ok=True)
        stems = []
        for f in range(frames):
            r, lab = toy_frame(rng, uncovered=uncovered)
            stem = f"{f:06d}"
            r.save(d / f"{stem}.npz")
            write_label_png(d / f"{stem}.labels.png", lab)
            stems.append(stem)
        cache.add(CacheItem(name, "scene", stems, source=f"toy:{seed}"))
    for motion in TOY_MOTIONS if clips_per_class else ():
        for k in range(clips_per_class):
            name = f"clips/{motion}{k:02d}"
            d = Path(root) / name
            d.mkdir(parents=True, exist_ok=True)
            stems = []
            for f, r in enumerate(toy_clip(rng, motion)):
                r.save(d / f"{f:06d}.npz")
                stems.append(f"{f:06d}")
            cache.add(CacheItem(name, "clip", stems, label=motion, source=f"toy:{seed}"))
    return cache
