"""Legends that name the colours of a picture: a strip of swatches and class names under a
label picture, and confusion matrices with their classes' colours and a shade scale.

Text is drawn with Pillow's bundled font (no system fonts needed).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

Entry = tuple[Sequence[int], str]  # (r, g, b), name


@functools.lru_cache(maxsize=8)
def _font(size: int) -> ImageFont.ImageFont:
    return ImageFont.load_default(size)


def _text_width(font, text: str) -> int:
    return int(np.ceil(font.getlength(text)))


def legend_strip(entries: Sequence[Entry], width: int) -> np.ndarray:
    """A white H×width×3 uint8 strip naming each colour: a swatch and its name per entry, in
    columns of equal width, as many rows as needed (the text scales with the width)."""
    rgb = tuple((tuple(int(c) for c in colour), name) for colour, name in entries)
    return _strip("RGB", rgb, width, (255, 255, 255), (0, 0, 0), (90, 90, 90))


def indexed_legend_strip(entries: tuple[tuple[int, str], ...], width: int, background: int, text: int) -> np.ndarray:
    """legend_strip as H×width palette indices (uint8) for an indexed picture: each entry's
    swatch in its own index, names and outlines in `text`, on `background`; text without
    anti-aliasing (a palette has no greys to spare)."""
    return _strip("L", entries, width, background, text, text)


@functools.lru_cache(maxsize=64)  # a scan's pictures share a few legends: drawn once each (read-only)
def _strip(mode: str, entries, width: int, background, text, outline) -> np.ndarray:
    size = int(np.clip(width // 45, 10, 16))
    font = _font(size)
    pad, swatch = max(2, size // 3), size
    row_h = size + 2 * pad
    cell = max((_text_width(font, name) for _, name in entries), default=0) + swatch + 3 * pad
    per_row = max(1, (width - pad) // max(cell, 1))
    rows = -(-len(entries) // per_row) if entries else 0
    img = Image.new(mode, (width, rows * row_h + (pad if rows else 0)), background)
    d = ImageDraw.Draw(img)
    if mode == "L":
        d.fontmode = "1"
    for k, (fill, name) in enumerate(entries):
        x, y = pad + (k % per_row) * cell, pad + (k // per_row) * row_h
        d.rectangle([x, y + pad, x + swatch - 1, y + pad + swatch - 1], fill=fill, outline=outline)
        d.text((x + swatch + pad, y + pad), name, fill=text, font=font)
    strip = np.array(img)
    strip.flags.writeable = False
    return strip


def with_legend(picture: np.ndarray, entries: Sequence[Entry]) -> np.ndarray:
    """The picture (H×W×3 uint8) with a legend_strip of the entries under it."""
    picture = np.asarray(picture, np.uint8)
    if not len(entries):
        return picture
    return np.vstack([picture, legend_strip(entries, picture.shape[1])])


def confusion_png(
    counts: np.ndarray,
    col_names: list,
    path,
    title: str = "",
    rows: list | None = None,
    colours: np.ndarray | None = None,
) -> Path:
    """A row-normalised confusion matrix picture (rows: truth, columns: prediction), with a
    shade scale saying what a cell's blue means; `colours` (one per row class) put each class's
    label colour beside its name."""
    counts = np.asarray(counts, np.float64)
    rows = rows or col_names
    r, c = counts.shape
    norm = counts / np.maximum(counts.sum(1, keepdims=True), 1)
    font = _font(11)
    cell, sw = 22, 10 if colours is not None else 0
    left = 8 + sw + max((_text_width(font, str(n)[:20]) for n in rows), default=0) + 8
    label_h = max((_text_width(font, str(n)[:20]) for n in col_names), default=0) + 8
    top = 6 + (18 if title else 0) + sw + label_h
    scale_h = 40
    scale_w = 8 + _SCALE_W + 8 + _text_width(font, _SCALE_TEXT) + 8
    img = Image.new("RGB", (max(left + c * cell + 10, scale_w), top + r * cell + 10 + scale_h), "white")
    d = ImageDraw.Draw(img)
    if title:
        d.text((4, 4), title, fill="black", font=font)
    for j, name in enumerate(col_names):  # column labels, written vertically
        lab = Image.new("RGB", (label_h, 14), "white")
        ImageDraw.Draw(lab).text((0, 0), str(name)[:20], fill="black", font=font)
        x = left + j * cell + 4
        img.paste(lab.rotate(90, expand=True), (x, top - sw - label_h - 2))
        if colours is not None and j < len(colours):
            d.rectangle(
                [x + 2, top - sw - 2, x + 2 + sw - 2, top - 4],
                fill=tuple(int(v) for v in colours[j]),
                outline=(90, 90, 90),
            )
    for i, name in enumerate(rows):
        y0 = top + i * cell
        if colours is not None and i < len(colours):
            d.rectangle(
                [4, y0 + 6, 4 + sw - 1, y0 + 6 + sw - 1], fill=tuple(int(v) for v in colours[i]), outline=(90, 90, 90)
            )
        d.text((8 + sw, y0 + 5), str(name)[:20], fill="black", font=font)
        for j in range(c):
            v = norm[i, j]
            shade = int(255 * (1 - v))
            x0 = left + j * cell
            d.rectangle([x0, y0, x0 + cell - 1, y0 + cell - 1], fill=(shade, shade, 255), outline=(200, 200, 200))
            if counts[i, j]:
                d.text((x0 + 2, y0 + 5), f"{int(round(100 * v))}", fill="white" if v > 0.5 else "black", font=font)
    _shade_scale(d, font, 8, top + r * cell + 12)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path)
    return path


_SCALE_W = 160
_SCALE_TEXT = "of the row's (true class's) pixels"


def _shade_scale(d: ImageDraw.ImageDraw, font, x: int, y: int, width: int = _SCALE_W) -> None:
    """The legend of the cells' blue: 0 % to 100 % of the true class's pixels."""
    for k in range(width):
        shade = int(255 * (1 - k / (width - 1)))
        d.line([x + k, y, x + k, y + 10], fill=(shade, shade, 255))
    d.rectangle([x, y, x + width - 1, y + 10], outline=(120, 120, 120))
    d.text((x, y + 13), "0%", fill="black", font=font)
    d.text((x + width - 30, y + 13), "100%", fill="black", font=font)
    d.text((x + width + 8, y), _SCALE_TEXT, fill="black", font=font)
