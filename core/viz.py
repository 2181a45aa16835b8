"""Pictures of frames and regions from plain arrays (or COCO RLE), for the daemon's CLI and
the clients alike: nothing here imports the daemon.

Region overlays: every region gets its own colour. SAM masks are filled translucently with a
solid outline; SLIC pieces are hatched (diagonal stripes) with a dashed outline, so the two
sources can be told apart at a glance.
"""
from __future__ import annotations

import colorsys
from pathlib import Path

import numpy as np
from PIL import Image

SOURCE_SAM = 0   # the API's / RegionSet's source codes
SOURCE_SLIC = 1


def palette(n: int, seed: int = 0) -> np.ndarray:
    """n distinct, saturated colours (n×3 uint8): golden-ratio steps around the hue circle."""
    hues = (seed * 0.137 + np.arange(n) * 0.618033988749895) % 1.0
    sats = 0.65 + 0.35 * (np.arange(n) % 2)
    vals = 1.0 - 0.2 * ((np.arange(n) // 2) % 2)
    rgb = [colorsys.hsv_to_rgb(h, s, v) for h, s, v in zip(hues, sats, vals)]
    return (np.array(rgb, dtype=np.float64).reshape(n, 3) * 255 + 0.5).astype(np.uint8)


def masks_from_rle(counts_list, height: int, width: int) -> np.ndarray:
    """N×H×W bool from uncompressed COCO RLE counts (column-major), via pycocotools."""
    from pycocotools import mask as mask_utils  # heavy: only when masks are decoded

    if not len(counts_list):
        return np.zeros((0, height, width), bool)
    objs = [{"size": [int(height), int(width)], "counts": [int(c) for c in counts]} for counts in counts_list]
    rles = mask_utils.frPyObjects(objs, int(height), int(width))
    return np.moveaxis(mask_utils.decode(rles), -1, 0).astype(bool)


def outline(mask: np.ndarray, width: int = 1) -> np.ndarray:
    """Pixels of the mask with a 4-neighbour outside it (or on the image border), `width` deep."""
    inner = np.asarray(mask, dtype=bool)
    for _ in range(width):
        p = np.pad(inner, 1, constant_values=False)
        inner = inner & p[:-2, 1:-1] & p[2:, 1:-1] & p[1:-1, :-2] & p[1:-1, 2:]
    return np.asarray(mask, dtype=bool) & ~inner


def overlay_regions(rgb: np.ndarray, masks: np.ndarray, source=None, alpha: float = 0.45,
                    colors: np.ndarray | None = None) -> np.ndarray:
    """The image with each region drawn in its own colour (H×W×3 uint8).

    rgb     H×W×3 uint8 image
    masks   N×H×W bool
    source  N codes, SOURCE_SAM (filled, solid outline) or SOURCE_SLIC (hatched, dashed
            outline); None = all SAM
    alpha   opacity of SAM fills (SLIC hatching uses the same value on its stripes)
    Larger regions are drawn first so small ones stay visible on top.
    """
    rgb = np.asarray(rgb)
    masks = np.asarray(masks, dtype=bool)
    n, h, w = masks.shape
    if rgb.shape[:2] != (h, w):
        raise ValueError(f"masks are {h}×{w}, image is {rgb.shape[0]}×{rgb.shape[1]}")
    source = np.zeros(n, np.uint8) if source is None else np.asarray(source)
    colors = palette(n) if colors is None else np.asarray(colors, dtype=np.uint8)
    out = rgb.astype(np.float32).copy()
    out *= 0.8  # dim the photo slightly so colours read
    diag = np.add.outer(np.arange(h, dtype=np.int32), np.arange(w, dtype=np.int32))  # x + y
    stripes = (diag // 3) % 3 == 0
    dashes = (diag // 4) % 2 == 0
    line = max(1, round(min(h, w) / 400))
    order = np.argsort(-masks.reshape(n, -1).sum(1), kind="stable")
    for i in order:
        m, c = masks[i], colors[i].astype(np.float32)
        if source[i] == SOURCE_SLIC:
            fill, edge = m & stripes, outline(m, line) & dashes
        else:
            fill, edge = m, outline(m, line)
        out[fill] = (1 - alpha) * out[fill] + alpha * c
        out[edge] = c
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def colorize_labels(labels: np.ndarray, ignore: int | None = 0, seed: int = 0) -> np.ndarray:
    """An H×W integer label map as a colour picture; `ignore` pixels are black."""
    labels = np.asarray(labels)
    top = int(labels.max()) + 1 if labels.size else 1
    lut = palette(max(top, 1), seed)
    out = lut[np.clip(labels, 0, top - 1)]
    if ignore is not None:
        out[labels == ignore] = 0
    return out


def save_png(path, image: np.ndarray) -> Path:
    """Write an H×W×3 (or H×W) uint8 array as PNG, creating the parent directory."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.ascontiguousarray(image)).save(path)
    return path
