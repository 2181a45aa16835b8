"""Synthetic activity clips with ground truth: a textured background, one or two actors
whose motion is the class, and distractors that stay put or drift slowly.

Classes (index: name): see ACTIVITY_CLASSES. Every class is defined by how the actors'
boxes move, so it is visible in region positions over 8 evenly spaced frames: the actor
travels 35-60 % of the frame (or grows/shrinks ×2-3, or turns 180-300°) over the clip, while
no distractor moves more than about 8 % of the frame.
"""

from __future__ import annotations

import colorsys
import csv
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from regiond.core.errors import InputError
from regiond.scenes.source import SourceError

ACTIVITY_CLASSES = (
    "moving_left",
    "moving_right",
    "rising",
    "falling",
    "approaching",
    "receding",
    "rotating",
    "meeting",
    "parting",
)
SHAPES = ("circle", "square", "triangle", "diamond")
VIDEO_FORMATS = {"mp4": ("mp4v", ".mp4"), "avi": ("MJPG", ".avi")}
CLIPS_META = "regiond-clips.json"  # beside labels.csv in a folder write_clips wrote
CLIPS_FORMAT = "regiond.synthetic-clips/1"


@dataclass
class Clip:
    """frames T×H×W×3 uint8 RGB; boxes T×A×4 [x0, y0, x1, y1] of the A actors per frame;
    instances T×H×W uint8: which shape each pixel shows (distractors 1..D, then the actors;
    0 = background), the ground truth of mask carrying (regiond.masks.truth)."""

    label: int
    seed: int
    frames: np.ndarray
    boxes: np.ndarray
    instances: np.ndarray | None = None

    @property
    def name(self) -> str:
        return ACTIVITY_CLASSES[self.label]


def _background(rng, h, w) -> np.ndarray:
    """A static background: gradient, stripes, checker or blobs, in muted colours."""

    def muted():
        return np.array(colorsys.hsv_to_rgb(rng.random(), rng.uniform(0.05, 0.35), rng.uniform(0.35, 0.85)))

    a, b = muted(), muted()
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    kind = rng.integers(4)
    if kind == 0:
        ang = rng.uniform(0, np.pi)
        t = (np.cos(ang) * xx / w + np.sin(ang) * yy / h + 1) / 2.5
    elif kind == 1:
        period = rng.uniform(8, 24) * w / 160
        ang = rng.uniform(0, np.pi)
        t = (np.sin(2 * np.pi * (np.cos(ang) * xx + np.sin(ang) * yy) / period) > 0).astype(np.float32)
    elif kind == 2:
        cell = rng.uniform(10, 30) * w / 160
        t = ((np.floor(xx / cell) + np.floor(yy / cell)) % 2).astype(np.float32)
    else:
        t = np.zeros((h, w), np.float32)
        for _ in range(6):
            cx, cy, r = rng.uniform(0, w), rng.uniform(0, h), rng.uniform(0.1, 0.4) * w
            t += np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * r * r))
        t = np.clip(t / t.max(), 0, 1)
    img = a[None, None] * (1 - t[..., None]) + b[None, None] * t[..., None]
    img += rng.normal(0, 0.015, img.shape)
    return np.clip(img * 255, 0, 255).astype(np.uint8)


def _vivid(rng) -> tuple[int, int, int]:
    r, g, b = colorsys.hsv_to_rgb(rng.random(), rng.uniform(0.7, 1.0), rng.uniform(0.75, 1.0))
    return int(r * 255), int(g * 255), int(b * 255)


def _polygon(shape: str, cx, cy, size, angle, aspect=1.0) -> np.ndarray:
    """Vertices of a shape of half-size `size` (elongated by `aspect` along its x axis)."""
    if shape == "circle":
        t = np.linspace(0, 2 * np.pi, 32, endpoint=False)
    elif shape == "square":
        t = np.array([0.25, 0.75, 1.25, 1.75]) * np.pi
    elif shape == "triangle":
        t = np.array([-0.5, 1 / 6, 5 / 6]) * np.pi
    else:  # diamond
        t = np.array([0, 0.5, 1, 1.5]) * np.pi
    x, y = np.cos(t) * size * aspect, np.sin(t) * size
    c, s = np.cos(angle), np.sin(angle)
    return np.stack([cx + c * x - s * y, cy + s * x + c * y], axis=1)


def _draw(img, shape, color, cx, cy, size, angle=0.0, aspect=1.0, stripe=None, inst=None, inst_id=0):
    """Draw a filled shape (optionally with a contrasting stripe across it), and its id into the
    instance map `inst` when given; returns its box."""
    import cv2  # heavy: only when a clip is rendered

    pts = _polygon(shape, cx, cy, size, angle, aspect)
    fixed = np.rint(pts * 16).astype(np.int32)
    targets = [(img, color, stripe, cv2.LINE_AA)] + ([(inst, inst_id, inst_id, cv2.LINE_8)] if inst is not None else [])
    for canvas, fill, line, kind in targets:
        cv2.fillPoly(canvas, [fixed], fill, lineType=kind, shift=4)
        if stripe is not None:
            c, s = np.cos(angle), np.sin(angle)
            half = size * aspect * 0.9
            p0 = np.rint(np.array((cx - c * half, cy - s * half)) * 16).astype(int)
            p1 = np.rint(np.array((cx + c * half, cy + s * half)) * 16).astype(int)
            cv2.line(canvas, tuple(p0), tuple(p1), line, max(1, int(size * 0.35)), lineType=kind, shift=4)
    return [pts[:, 0].min(), pts[:, 1].min(), pts[:, 0].max(), pts[:, 1].max()]


def render_clip(label: int, seed: int, frames: int = 32, width: int = 160, height: int = 120) -> Clip:
    """Clip of class `label` (index into ACTIVITY_CLASSES); deterministic in (label, seed, size)."""
    if not (isinstance(label, (int, np.integer)) and 0 <= label < len(ACTIVITY_CLASSES)):
        raise InputError("label", f"must be 0..{len(ACTIVITY_CLASSES) - 1}, got {label!r}")
    if frames < 2 or width < 32 or height < 32:
        raise InputError("frames", f"need at least 2 frames of at least 32×32, got {frames} × {width}×{height}")
    rng = np.random.default_rng([int(seed), int(label), 0xC11])
    w, h = width, height
    bg = _background(rng, h, w)
    name = ACTIVITY_CLASSES[label]
    t = np.linspace(0, 1, frames)
    m = min(w, h)

    # Distractors: static or slowly drifting (≤ 8 % of the frame over the clip).
    distractors = []
    for _ in range(int(rng.integers(1, 4))):
        start = np.array([rng.uniform(0.1, 0.9) * w, rng.uniform(0.1, 0.9) * h])
        drift = rng.normal(0, 1, 2)
        drift = drift / np.linalg.norm(drift) * rng.uniform(0, 0.08) * m
        distractors.append(
            (
                SHAPES[rng.integers(len(SHAPES))],
                _vivid(rng),
                start,
                drift,
                rng.uniform(0.05, 0.10) * m,
                rng.uniform(0, np.pi),
            )
        )

    # Actors: (shape, colour, stripe colour, centre(t) T×2, size(t) T, angle(t) T, aspect)
    def actor(size=None, aspect=1.0, shape=None):
        return {
            "shape": shape or SHAPES[rng.integers(len(SHAPES))],
            "color": _vivid(rng),
            "stripe": _vivid(rng),
            "size": size if size is not None else rng.uniform(0.10, 0.15) * m,
            "aspect": aspect,
        }

    actors = []
    travel = rng.uniform(0.35, 0.6)
    c0 = np.array([rng.uniform(0.4, 0.6) * w, rng.uniform(0.4, 0.6) * h])
    if name in ("moving_left", "moving_right", "rising", "falling"):
        a = actor()
        axis = 0 if name in ("moving_left", "moving_right") else 1
        sign = -1 if name in ("moving_left", "rising") else 1  # image y grows downwards
        span = travel * (w if axis == 0 else h)
        path = np.repeat(c0[None], frames, 0)
        path[:, axis] = c0[axis] + sign * span * (t - 0.5)
        path[:, 1 - axis] += rng.normal(0, 0.01 * m, frames).cumsum() * 0.3
        a.update(path=path, sizes=np.full(frames, a["size"]), angles=np.full(frames, rng.uniform(0, np.pi)))
        actors.append(a)
    elif name in ("approaching", "receding"):
        a = actor(size=rng.uniform(0.07, 0.09) * m)
        grow = rng.uniform(2.2, 3.0)
        s = a["size"] * grow ** (t if name == "approaching" else 1 - t)
        a.update(path=np.repeat(c0[None], frames, 0), sizes=s, angles=np.full(frames, rng.uniform(0, np.pi)))
        actors.append(a)
    elif name == "rotating":
        a = actor(aspect=rng.uniform(2.5, 3.5), shape="square")
        turn = rng.uniform(np.pi, 5 * np.pi / 3) * rng.choice([-1, 1])
        a0 = rng.uniform(0, np.pi)
        a.update(path=np.repeat(c0[None], frames, 0), sizes=np.full(frames, a["size"] * 0.6), angles=a0 + turn * t)
        actors.append(a)
    else:  # meeting / parting: two actors along a line through the middle
        ang = rng.uniform(-0.3, 0.3)
        d = np.array([np.cos(ang), np.sin(ang)])
        far = rng.uniform(0.30, 0.40) * w
        near = 0.0
        for side in (-1, 1):
            a = actor()
            near = a["size"] * 1.1
            sep = far + (near - far) * t if name == "meeting" else near + (far - near) * t
            a.update(
                path=c0[None] + side * sep[:, None] * d[None],
                sizes=np.full(frames, a["size"]),
                angles=np.full(frames, rng.uniform(0, np.pi)),
            )
            actors.append(a)

    out = np.empty((frames, h, w, 3), np.uint8)
    inst = np.zeros((frames, h, w), np.uint8)
    boxes = np.zeros((frames, len(actors), 4), np.float32)
    for k in range(frames):
        img = bg.copy()
        for i, (shape, color, start, drift, size, angle) in enumerate(distractors):
            p = start + drift * t[k]
            _draw(img, shape, color, p[0], p[1], size, angle, inst=inst[k], inst_id=i + 1)
        for j, a in enumerate(actors):
            boxes[k, j] = _draw(
                img,
                a["shape"],
                a["color"],
                a["path"][k, 0],
                a["path"][k, 1],
                a["sizes"][k],
                a["angles"][k],
                a["aspect"],
                stripe=a["stripe"],
                inst=inst[k],
                inst_id=len(distractors) + j + 1,
            )
        out[k] = img
    np.clip(boxes[..., 0::2], 0, w, out=boxes[..., 0::2])
    np.clip(boxes[..., 1::2], 0, h, out=boxes[..., 1::2])
    return Clip(int(label), int(seed), out, boxes, inst)


def write_video(path, frames: np.ndarray, fps: float = 15.0, fourcc: str = "mp4v") -> Path:
    """Write T×H×W×3 RGB frames with cv2.VideoWriter."""
    import cv2  # heavy: only when a video is written

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    h, w = frames.shape[1:3]
    vw = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), float(fps), (w, h))
    if not vw.isOpened():
        raise OSError(f"OpenCV cannot write {fourcc} video to {path}")
    try:
        for f in frames:
            vw.write(np.ascontiguousarray(f[:, :, ::-1]))
    finally:
        vw.release()
    return path


def write_clips(
    out,
    per_class: int,
    seed: int = 0,
    frames: int = 32,
    width: int = 160,
    height: int = 120,
    fps: float = 15.0,
    video_format: str = "mp4",
    classes=None,
    progress=None,
) -> Path:
    """Write `per_class` clips of every class as videos plus labels.csv; returns the CSV path.

    labels.csv columns: file (relative to out), class (name), label (index), seed, frames, fps,
    width, height. Clip seeds are seed·1000 + k, so sets with different seeds do not overlap.
    """
    if video_format not in VIDEO_FORMATS:
        raise InputError("format", f"must be one of {sorted(VIDEO_FORMATS)}, got {video_format!r}")
    if per_class < 1:
        raise InputError("per_class", f"must be at least 1, got {per_class}")
    fourcc, ext = VIDEO_FORMATS[video_format]
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    labels = list(range(len(ACTIVITY_CLASSES))) if classes is None else list(classes)
    rows = []
    for label in labels:
        for k in range(per_class):
            clip_seed = seed * 1000 + k
            clip = render_clip(label, clip_seed, frames, width, height)
            rel = f"{clip.name}/{clip.name}_{clip_seed:06d}{ext}"
            write_video(out / rel, clip.frames, fps, fourcc)
            rows.append(
                {
                    "file": rel,
                    "class": clip.name,
                    "label": label,
                    "seed": clip_seed,
                    "frames": frames,
                    "fps": fps,
                    "width": width,
                    "height": height,
                }
            )
            if progress is not None:
                progress.update(1)
    csv_path = out / "labels.csv"
    with open(csv_path, "w", newline="") as fh:
        wr = csv.DictWriter(fh, fieldnames=list(rows[0]))
        wr.writeheader()
        wr.writerows(rows)
    # says the clips are generated (scenes.registry.is_generated), as regiond-scene.json does for rooms
    (out / CLIPS_META).write_text(json.dumps({"format": CLIPS_FORMAT, "seed": seed, "per_class": per_class}))
    return csv_path


def read_labels_csv(path) -> list[dict]:
    """Rows of a labels.csv written by write_clips (label, seed, frames ... as ints)."""
    path = Path(path)
    if not path.is_file():
        raise SourceError(f"{path}: no labels.csv")
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    for r in rows:
        for k in ("label", "seed", "frames", "width", "height"):
            r[k] = int(r[k])
        r["fps"] = float(r["fps"])
        r["path"] = str(path.parent / r["file"])
    return rows
