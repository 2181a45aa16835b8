"""From RegionSets to the tensors the heads read.

A TokenSet is the tokens of one training/inference sample (one image, a whole scene, or an
8-frame clip) as numpy arrays; `collate` pads several into a TokenBatch with a padding mask.
Region tokens and patch tokens (see patches.py) go through the same code, so every head can be
fed either and the comparison between them is like for like.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch

from regiond.core.regionset import RegionSet
from regiond.geometry.embeddings import embed_2d, embed_3d, embed_time, scene_origin

# Fourier bands of the positional embeddings (regiond.geometry.embeddings); the widths below
# are what the heads' input layers expect.
BANDS_2D, BANDS_3D, BANDS_TIME = 8, 8, 4
POS2D_DIM = 4 * 2 * BANDS_2D  # box centre and size
POS3D_DIM = 3 * 2 * BANDS_3D + 1  # centroid relative to the scene origin, + missing flag
TIME_DIM = 2 * BANDS_TIME  # frame number within the sample


@dataclass
class TokenSet:
    """T tokens of one sample.

    features  T×D float32 pooled features
    pos2d     T×POS2D_DIM 2D embedding of the token's box (embed_2d)
    pos3d     T×POS3D_DIM 3D embedding of its centroid relative to the scene origin (embed_3d)
    time      T×TIME_DIM embedding of its frame's number within the sample (embed_time)
    frame     T int64 index of the token's frame within the sample
    region    T int64 index of the token within its frame's RegionSet
    labels    T int64 per-token class index (-1 = ignore), or None
    weights   T float32 loss weight per token (region area / image area), or None
    target    clip class index (activity), or None
    xyz       T×3 centroid relative to the scene origin, metres (NaN = unknown), kept so that
              training can rotate a scene and re-embed it (rotate_scene)
    boxes     T×4 box [x0, y0, x1, y1] as fractions of the image, kept so that training can
              mirror a clip and re-embed it (mirror_clip)
    """

    features: np.ndarray
    pos2d: np.ndarray
    pos3d: np.ndarray
    time: np.ndarray
    frame: np.ndarray
    region: np.ndarray
    labels: np.ndarray | None = None
    weights: np.ndarray | None = None
    target: int | None = None
    xyz: np.ndarray | None = None
    boxes: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.features.shape[0])

    def take(self, idx) -> TokenSet:
        idx = np.asarray(idx, dtype=np.int64)
        pick = lambda a: None if a is None else a[idx]  # noqa: E731
        return TokenSet(
            self.features[idx],
            self.pos2d[idx],
            self.pos3d[idx],
            self.time[idx],
            self.frame[idx],
            self.region[idx],
            pick(self.labels),
            pick(self.weights),
            self.target,
            pick(self.xyz),
            pick(self.boxes),
        )


def frames_origin(frames: list[RegionSet]) -> np.ndarray:
    """The scene origin (embeddings.scene_origin) of all known centroids of `frames`."""
    cs = [r.centroids for r in frames if r.centroids is not None and len(r)]
    return scene_origin(np.concatenate(cs) if cs else np.zeros((0, 3)))


def tokens_from_regions(
    frames: list[RegionSet],
    class_index: dict[int, int] | None = None,
    origin: np.ndarray | None = None,
    target: int | None = None,
) -> TokenSet:
    """Concatenate the regions of `frames` (in order) into one TokenSet.

    class_index maps the RegionSets' per-region labels (e.g. NYU40 ids) to output indices;
    labels not in it become -1 (ignored). origin: the scene origin for the 3D embedding
    (default: frames_origin(frames)). Times are the frames' positions 0, 1, 2, ... in `frames`.
    """
    if origin is None:
        origin = frames_origin(frames)
    parts = []
    for fi, r in enumerate(frames):
        n = len(r)
        if r.features is None:
            raise ValueError("RegionSet has no features; extract with features=True")
        cent = r.centroids if r.centroids is not None else np.full((n, 3), np.nan, np.float32)
        labels = None
        if class_index is not None:
            raw = r.labels if r.labels is not None else np.full(n, -1)
            labels = np.array([class_index.get(int(v), -1) for v in raw], np.int64)
        weights = r.areas.astype(np.float32) / float(r.height * r.width)
        parts.append(
            (
                r.features.astype(np.float32),
                embed_2d(r.boxes, r.width, r.height, BANDS_2D),
                embed_3d(cent, origin, BANDS_3D),
                embed_time(np.full(n, fi), BANDS_TIME),
                np.full(n, fi, np.int64),
                np.arange(n, dtype=np.int64),
                labels,
                weights,
                (np.asarray(cent, np.float32) - origin).astype(np.float32),
                (r.boxes / np.array([r.width, r.height, r.width, r.height], np.float32)).astype(np.float32),
            )
        )
    dim = frames[0].features.shape[1] if frames and frames[0].features is not None else 0
    cat = lambda i, empty: np.concatenate([p[i] for p in parts]) if parts else empty  # noqa: E731
    return TokenSet(
        features=cat(0, np.zeros((0, dim), np.float32)),
        pos2d=cat(1, np.zeros((0, POS2D_DIM), np.float32)),
        pos3d=cat(2, np.zeros((0, POS3D_DIM), np.float32)),
        time=cat(3, np.zeros((0, TIME_DIM), np.float32)),
        frame=cat(4, np.zeros(0, np.int64)),
        region=cat(5, np.zeros(0, np.int64)),
        labels=cat(6, np.zeros(0, np.int64)) if class_index is not None else None,
        weights=cat(7, np.zeros(0, np.float32)),
        target=target,
        xyz=cat(8, np.zeros((0, 3), np.float32)),
        boxes=cat(9, np.zeros((0, 4), np.float32)),
    )


def join_frames(parts: list[TokenSet]) -> TokenSet:
    """Concatenate single-frame TokenSets; `frame` becomes the position in `parts`."""
    cat = lambda a: np.concatenate([getattr(p, a) for p in parts])  # noqa: E731
    frame = np.concatenate([np.full(len(p), i, np.int64) for i, p in enumerate(parts)])
    labels = cat("labels") if all(p.labels is not None for p in parts) else None
    weights = cat("weights") if all(p.weights is not None for p in parts) else None
    xyz = cat("xyz") if all(p.xyz is not None for p in parts) else None
    boxes = cat("boxes") if all(p.boxes is not None for p in parts) else None
    return TokenSet(
        cat("features"),
        cat("pos2d"),
        cat("pos3d"),
        cat("time"),
        frame,
        cat("region"),
        labels,
        weights,
        None,
        xyz,
        boxes,
    )


def mirror_clip(
    ts: TokenSet, frames: int, horizontal: bool = False, vertical: bool = False, reverse: bool = False
) -> TokenSet:
    """The clip mirrored left-right and/or top-bottom and/or played backwards, with its 2D
    and time embeddings recomputed (features are kept: they describe appearance, which a
    mirror barely changes). `frames` is the clip's length. Training uses it with the matching class swaps
    (left ↔ right ...)."""
    if ts.boxes is None:
        raise ValueError("TokenSet has no boxes to mirror")
    b = ts.boxes.copy()
    if horizontal:
        b[:, [0, 2]] = 1.0 - ts.boxes[:, [2, 0]]
    if vertical:
        b[:, [1, 3]] = 1.0 - ts.boxes[:, [3, 1]]
    frame = (frames - 1 - ts.frame) if reverse else ts.frame
    return replace(ts, boxes=b, pos2d=embed_2d(b, 1, 1, BANDS_2D), frame=frame, time=embed_time(frame, BANDS_TIME))


def rotate_scene(ts: TokenSet, angle: float, shift=(0.0, 0.0, 0.0)) -> TokenSet:
    """The sample turned by `angle` radians about the vertical (z) axis and shifted (metres),
    with its 3D embedding recomputed: scenes have no preferred heading, so training on turned
    copies teaches the scene head to use heights and relative positions, not room axes."""
    if ts.xyz is None:
        return ts
    c, s_ = np.cos(angle), np.sin(angle)
    rot = np.array([[c, -s_, 0], [s_, c, 0], [0, 0, 1]], np.float32)
    xyz = ts.xyz @ rot.T + np.asarray(shift, np.float32)
    return replace(ts, xyz=xyz, pos3d=embed_3d(xyz, None, BANDS_3D))


def limit_tokens(ts: TokenSet, max_tokens: int, rng: np.random.Generator | None = None) -> TokenSet:
    """At most max_tokens tokens: a random sample when rng is given (training), else the
    largest regions (inference), kept in their original order."""
    if max_tokens <= 0 or len(ts) <= max_tokens:
        return ts
    if rng is not None:
        idx = rng.choice(len(ts), size=max_tokens, replace=False)
    else:
        w = ts.weights if ts.weights is not None else np.ones(len(ts))
        idx = np.argsort(-w, kind="stable")[:max_tokens]
    return ts.take(np.sort(idx))


@dataclass
class TokenBatch:
    """B padded samples of up to T tokens; `pad` is True at padding positions."""

    features: torch.Tensor  # B×T×D
    pos2d: torch.Tensor  # B×T×POS2D_DIM
    pos3d: torch.Tensor  # B×T×POS3D_DIM
    time: torch.Tensor  # B×T×TIME_DIM
    pad: torch.Tensor  # B×T bool
    labels: torch.Tensor | None = None  # B×T int64, -1 ignored (and at padding)
    weights: torch.Tensor | None = None  # B×T float, 0 at padding
    targets: torch.Tensor | None = None  # B int64 clip classes

    def to(self, device) -> TokenBatch:
        mv = lambda t: None if t is None else t.to(device)  # noqa: E731
        return TokenBatch(*(mv(getattr(self, f)) for f in self.__dataclass_fields__))


def collate(samples: list[TokenSet], pad_to: int | None = None) -> TokenBatch:
    """Pad samples to the longest one (or to `pad_to`, e.g. the activity head's 400)."""
    b = len(samples)
    t = max([len(s) for s in samples] + [1])
    if pad_to is not None:
        if t > pad_to:
            raise ValueError(f"a sample has {t} tokens, more than pad_to={pad_to}; limit_tokens first")
        t = pad_to
    d = samples[0].features.shape[1]
    feats = np.zeros((b, t, d), np.float32)
    pos2d = np.zeros((b, t, POS2D_DIM), np.float32)
    pos3d = np.zeros((b, t, POS3D_DIM), np.float32)
    pos3d[:, :, -1] = 1.0  # padding has no position either
    time = np.zeros((b, t, TIME_DIM), np.float32)
    pad = np.ones((b, t), bool)
    labels = np.full((b, t), -1, np.int64)
    weights = np.zeros((b, t), np.float32)
    has_labels = all(s.labels is not None for s in samples)
    for i, s in enumerate(samples):
        n = len(s)
        feats[i, :n], pos2d[i, :n], pos3d[i, :n], time[i, :n] = s.features, s.pos2d, s.pos3d, s.time
        pad[i, :n] = False
        if has_labels:
            labels[i, :n] = s.labels
        if s.weights is not None:
            weights[i, :n] = s.weights
    targets = None
    if all(s.target is not None for s in samples):
        targets = torch.tensor([s.target for s in samples], dtype=torch.int64)
    return TokenBatch(
        torch.from_numpy(feats),
        torch.from_numpy(pos2d),
        torch.from_numpy(pos3d),
        torch.from_numpy(time),
        torch.from_numpy(pad),
        torch.from_numpy(labels) if has_labels else None,
        torch.from_numpy(weights),
        targets,
    )
