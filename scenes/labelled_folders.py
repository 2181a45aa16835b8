"""Labelled collections for training and evaluation: clip folders and image folders.

    clip folder    labels.csv (video file, class name) beside the videos
    image folder   images/*.png|jpg with optional labels/<same stem>.png label maps (NYU40 ids:
                   0 unlabelled, 1..40; any other id is an error naming the file)

A scene (anything `open_source` opens) is the third kind a token cache holds.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
from PIL import Image

from regiond.core.errors import InputError
from regiond.core.frames import Frame
from regiond.core.label_spaces import read_nyu40_png

IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".bmp")


def detect_kind(path: Path) -> str:
    """ "clip" (a folder with labels.csv), "images" (a folder with images/), else "scene"."""
    path = Path(path)
    if path.is_dir() and (path / "labels.csv").is_file():
        return "clip"
    if path.is_dir() and (path / "images").is_dir():
        return "images"
    return "scene"


def read_clip_labels(folder: Path) -> list[tuple[Path, str]]:
    """(video path, class name) rows of folder/labels.csv: a header naming a file column
    (file/path/video/clip) and a label column (label/class/activity), or two bare columns."""
    rows = list(csv.reader((folder / "labels.csv").read_text().splitlines()))
    rows = [r for r in rows if r and any(c.strip() for c in r)]
    if not rows:
        raise InputError("labels.csv", f"{folder / 'labels.csv'} is empty")
    head = [c.strip().lower() for c in rows[0]]
    fcol = next((i for i, c in enumerate(head) if c in ("file", "path", "video", "clip", "filename")), None)
    lcol = next((i for i, c in enumerate(head) if c in ("label", "class", "activity", "class_name")), None)
    if fcol is not None and lcol is not None:
        rows = rows[1:]
    else:
        fcol, lcol = 0, 1
    out = []
    for n, r in enumerate(rows, start=2 if fcol is not None else 1):
        if len(r) <= max(fcol, lcol):
            raise InputError("labels.csv", f"row {n} has {len(r)} columns: {r}")
        p = folder / r[fcol].strip()
        if not p.is_file():
            raise InputError("labels.csv", f"row {n}: video {p} not found")
        out.append((p, r[lcol].strip()))
    return out


def image_folder_frames(folder: Path) -> list[Frame]:
    """folder/images/*.{png,jpg} with folder/labels/<same stem>.png label maps (optional)."""
    files = sorted(p for p in (folder / "images").iterdir() if p.suffix.lower() in IMAGE_EXTS)
    if not files:
        raise InputError("source", f"{folder / 'images'} has no images")
    frames = []
    for k, p in enumerate(files):
        with Image.open(p) as img:
            rgb = np.asarray(img.convert("RGB"))
        lab_path = folder / "labels" / (p.stem + ".png")
        labels = read_nyu40_png(lab_path) if lab_path.is_file() else None
        if labels is not None and labels.shape != rgb.shape[:2]:
            raise InputError("labels", f"{lab_path} is {labels.shape[::-1]}, image {p.name} is {rgb.shape[1::-1]}")
        frames.append(Frame(rgb=rgb, labels=labels, index=k, meta={"file": p.name}))
    return frames
