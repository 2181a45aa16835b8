"""Label spaces and label maps: NYU40 ids, the 20 ScanNet benchmark classes, label PNGs.

Label maps are H×W integer arrays of NYU40 ids (0 = unlabelled). ScanNet's benchmark keeps
20 of the 40 classes; every other id is ignored (IGNORE) when scoring.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
from PIL import Image

from regiond.core.errors import InputError

NYU40_NAMES = (
    "unlabelled",
    "wall",
    "floor",
    "cabinet",
    "bed",
    "chair",
    "sofa",
    "table",
    "door",
    "window",
    "bookshelf",
    "picture",
    "counter",
    "blinds",
    "desk",
    "shelves",
    "curtain",
    "dresser",
    "pillow",
    "mirror",
    "floor mat",
    "clothes",
    "ceiling",
    "books",
    "refrigerator",
    "television",
    "paper",
    "towel",
    "shower curtain",
    "box",
    "whiteboard",
    "person",
    "night stand",
    "toilet",
    "sink",
    "lamp",
    "bathtub",
    "bag",
    "otherstructure",
    "otherfurniture",
    "otherprop",
)
NUM_NYU40 = 40  # ids 1..40; 0 = unlabelled
UNLABELLED = 0  # NYU40 id 0: no class

# ScanNet's 20-class benchmark, as NYU40 ids, in benchmark order.
BENCHMARK_NYU40 = (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 14, 16, 24, 28, 33, 34, 36, 39)
BENCHMARK_NAMES = tuple(NYU40_NAMES[i] for i in BENCHMARK_NYU40)
IGNORE = 255  # benchmark label of pixels outside the 20 classes

# ScanNet's colour for each NYU40 id 0..40 (create_color_palette in ScanNet's
# BenchmarkScripts/util.py), so label pictures match the ones ScanNet's own tools draw.
SCANNET_COLOURS = np.array(
    [
        (0, 0, 0),
        (174, 199, 232),
        (152, 223, 138),
        (31, 119, 180),
        (255, 187, 120),
        (188, 189, 34),
        (140, 86, 75),
        (255, 152, 150),
        (214, 39, 40),
        (197, 176, 213),
        (148, 103, 189),
        (196, 156, 148),
        (23, 190, 207),
        (178, 76, 76),
        (247, 182, 210),
        (66, 188, 102),
        (219, 219, 141),
        (140, 57, 197),
        (202, 185, 52),
        (51, 176, 203),
        (200, 54, 131),
        (92, 193, 61),
        (78, 71, 183),
        (172, 114, 82),
        (255, 127, 14),
        (91, 163, 138),
        (153, 98, 156),
        (140, 153, 101),
        (158, 218, 229),
        (100, 125, 154),
        (178, 127, 135),
        (120, 185, 128),
        (146, 111, 194),
        (44, 160, 44),
        (112, 128, 144),
        (96, 207, 209),
        (227, 119, 194),
        (213, 92, 176),
        (94, 106, 211),
        (82, 84, 163),
        (100, 85, 144),
    ],
    np.uint8,
)


def nyu40_to_benchmark(nyu40, ignore: int = IGNORE) -> np.ndarray:
    """NYU40 id image → benchmark class index 0..19 (uint8); every other id → `ignore`."""
    lut = np.full(256, ignore, np.uint8)
    for k, nyu in enumerate(BENCHMARK_NYU40):
        lut[nyu] = k
    a = np.asarray(nyu40)
    if not np.issubdtype(a.dtype, np.integer):
        raise InputError("labels", f"expected an integer label image, got {a.dtype}")
    if a.dtype in (np.uint8, np.uint16):  # label PNGs: one table lookup
        table = np.full(1 << (8 * a.itemsize), ignore, np.uint8)
        table[:256] = lut
        return table[a]
    a = a.astype(np.int64)
    out = np.full(a.shape, ignore, np.uint8)
    ok = (a >= 0) & (a < 256)
    out[ok] = lut[a[ok]]
    return out


def resize_nearest(label_map: np.ndarray, width: int, height: int) -> np.ndarray:
    """Nearest-neighbour resampling of a label map (H×W, or H×W×C; any dtype, where cv2 lacks
    int64) at pixel centres: output column x takes input column floor((x + 0.5) · w / width), as
    PIL's NEAREST does (OpenCV's INTER_NEAREST takes floor(x · w / width): other pixels at
    non-integer scales)."""
    label_map = np.asarray(label_map)
    h, w = label_map.shape[:2]
    if (w, h) == (width, height):
        return label_map
    rows = np.minimum(((np.arange(height) + 0.5) * h / height).astype(np.int64), h - 1)
    cols = np.minimum(((np.arange(width) + 0.5) * w / width).astype(np.int64), w - 1)
    return label_map[rows[:, None], cols[None, :]]


def label_name(label: int, names=NYU40_NAMES) -> str:
    """The name of a label id (NYU40 by default), "id N" for ids without one."""
    return names[label] if 0 <= label < len(names) and names[label] else f"id {label}"


def names_by_id(class_ids, class_names) -> list[str]:
    """Names indexed by class id (ids are small, e.g. NYU40), "" where an id is unused."""
    names = [""] * (max(class_ids, default=-1) + 1)
    for i, n in zip(class_ids, class_names):
        if i >= 0:
            names[i] = n
    return names


# --- label maps as PNG --------------------------------------------------------------------


def benchmark_scene_id(spec: str) -> str:
    """The scene name label PNGs of ScanNet's benchmark layout (`<scene>_<frame:06d>.png`) carry
    for a scene source: a file's or folder's stem, synthetic:SEED → synthetic-SEED."""
    name = spec.replace("synthetic:", "synthetic-") if spec.startswith("synthetic:") else Path(spec.rstrip("/")).stem
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name) or "scene"


def write_label_png(path, labels: np.ndarray) -> Path:
    """Integer label map → PNG: 8-bit when every id fits (ScanNet's benchmark form), else 16-bit."""
    a = np.asarray(labels)
    if a.min(initial=0) < 0 or a.max(initial=0) > 65535:
        raise ValueError(f"label ids must lie in 0..65535, got [{a.min()}, {a.max()}]")
    img = Image.fromarray(a.astype(np.uint8)) if a.max(initial=0) < 256 else Image.fromarray(a.astype(np.uint16))
    path = Path(path)
    img.save(path)
    return path


def read_label_png(path) -> np.ndarray:
    with Image.open(path) as img:
        return np.asarray(img).astype(np.int32)


def check_nyu40(labels: np.ndarray, path) -> np.ndarray:
    """A training or ground-truth label map as NYU40 ids (uint8), or InputError("labels", ...)
    naming the file: a map of several channels (a colour picture of labels), or ids outside
    0..40. Such ids are refused, not counted as unlabelled: a map in another label space
    (raw ScanNet ids, ADE20K, 255 for "void") would otherwise train on what it does not mean."""
    a = np.asarray(labels)
    if a.ndim != 2:
        raise InputError(
            "labels", f"{path}: a label map has one id per pixel, this one is {a.shape} (a colour picture?)"
        )
    bad = (a < 0) | (a > NUM_NYU40)
    if bad.any():
        ids = np.unique(a[bad])
        shown = ", ".join(str(int(i)) for i in ids[:6]) + (", ..." if len(ids) > 6 else "")
        raise InputError(
            "labels",
            f"{path}: ids {shown} ({int(bad.sum())} pixels) are not NYU40 ids (0 = unlabelled, 1..40); "
            f"map them to 0 or to NYU40 ids first (raw ScanNet ids: a ScanNet export, with its label table)",
        )
    return a.astype(np.uint8)


def read_nyu40_png(path) -> np.ndarray:
    """A label PNG of NYU40 ids (check_nyu40), as uint8."""
    return check_nyu40(read_label_png(path), path)
