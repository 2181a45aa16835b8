"""Annotated image collections for retrieval: a COCO-format reader and a synthetic generator.

COCO format: a folder of images plus an annotations JSON with `images` (id, file_name,
width, height), `categories` (id, name) and `annotations` (image_id, category_id,
segmentation as polygons, uncompressed RLE {"size", "counts": [...]} or compressed RLE).

The synthetic collection pastes objects of a few classes onto varied backgrounds. A class
is a shape with its own colours and texture; instances vary in size, position, rotation,
brightness and hue. Several objects share an image, and backgrounds (smooth noise, stripes,
gradients, clutter of random shapes) change from image to image, so a whole-image feature
mixes the object with much else while a region feature can isolate it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image
from pycocotools import mask as cmask

from regiond.core import rle
from regiond.core.frames import as_rgb8

COCO_FILE = "annotations.json"


@dataclass
class Instance:
    category: int
    mask: np.ndarray  # H×W bool


@dataclass
class CollectionImage:
    image_id: str  # the file name (unique within a collection)
    path: Path
    width: int
    height: int
    instances: list[Instance]

    def load(self) -> np.ndarray:
        """The image as H×W×3 uint8 RGB."""
        with Image.open(self.path) as im:
            return as_rgb8(np.asarray(im.convert("RGB")), field=str(self.path))


@dataclass
class Collection:
    root: Path
    images: list[CollectionImage]
    categories: dict[int, str]


def load_coco(images_dir, annotations=None) -> Collection:
    """Read a COCO-format collection. `annotations` defaults to images_dir/annotations.json."""
    root = Path(images_dir)
    ann_path = Path(annotations) if annotations else root / COCO_FILE
    if not ann_path.is_file():
        raise FileNotFoundError(f"no COCO annotations at {ann_path}")
    try:
        data = json.loads(ann_path.read_text())
        cats = {int(c["id"]): str(c["name"]) for c in data["categories"]}
        by_image = {int(im["id"]): im for im in data["images"]}
    except (ValueError, KeyError, TypeError) as e:
        raise ValueError(f"{ann_path}: not a COCO annotations file ({e})") from None
    inst: dict[int, list[Instance]] = {k: [] for k in by_image}
    for a in data.get("annotations", []):
        im = by_image.get(int(a["image_id"]))
        if im is None or int(a["category_id"]) not in cats:
            continue
        h, w = int(im["height"]), int(im["width"])
        seg = a["segmentation"]
        if isinstance(seg, list):  # polygons
            m = cmask.decode(cmask.merge(cmask.frPyObjects(seg, h, w))) if seg else np.zeros((h, w), np.uint8)
        elif isinstance(seg.get("counts"), list):  # uncompressed RLE (column-major)
            m = rle.decode(seg["counts"], h, w)
        else:
            m = cmask.decode(seg)
        m = np.asarray(m, bool)
        if m.any():
            inst[int(im["id"])].append(Instance(int(a["category_id"]), m))
    images = [
        CollectionImage(im["file_name"], root / im["file_name"], int(im["width"]), int(im["height"]), inst[k])
        for k, im in sorted(by_image.items())
    ]
    for ci in images:
        if not ci.path.is_file():
            raise FileNotFoundError(f"{ann_path} lists {ci.image_id} but {ci.path} does not exist")
    return Collection(root, images, cats)


# --- synthetic collection ------------------------------------------------------------------

#: class name -> (shape, two RGB colours, texture). Colours and textures overlap between some
#: classes so that shape matters too.
SYNTH_CLASSES = {
    "red_disc": ("disc", (220, 40, 40), (250, 200, 60), "stripes"),
    "blue_square": ("square", (40, 70, 210), (230, 230, 240), "checker"),
    "green_triangle": ("triangle", (40, 170, 60), (20, 60, 20), "dots"),
    "purple_ring": ("ring", (140, 50, 170), (240, 150, 230), "plain"),
    "orange_cross": ("cross", (240, 140, 20), (90, 40, 10), "stripes"),
    "cyan_diamond": ("diamond", (30, 200, 210), (10, 70, 90), "checker"),
}


def _shape_mask(shape: str, size: int, angle: float) -> np.ndarray:
    """size×size bool mask of the shape, rotated by `angle` radians."""
    c = (size - 1) / 2
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    x, y = (xx - c) / (size / 2), (yy - c) / (size / 2)
    ca, sa = np.cos(angle), np.sin(angle)
    u, v = ca * x + sa * y, -sa * x + ca * y
    r = np.hypot(u, v)
    if shape == "disc":
        return r <= 0.95
    if shape == "ring":
        return (r <= 0.95) & (r >= 0.55)
    if shape == "square":
        return (np.abs(u) <= 0.7) & (np.abs(v) <= 0.7)
    if shape == "diamond":
        return np.abs(u) + np.abs(v) <= 0.95
    if shape == "cross":
        return ((np.abs(u) <= 0.3) & (np.abs(v) <= 0.95)) | ((np.abs(v) <= 0.3) & (np.abs(u) <= 0.95))
    if shape == "triangle":
        return (v <= 0.6) & (np.abs(u) <= (v + 0.9) * (0.85 / 1.5))
    raise ValueError(f"unknown shape {shape!r}")


def _texture(kind: str, size: int, c1, c2, rng) -> np.ndarray:
    yy, xx = np.mgrid[0:size, 0:size]
    period = max(3, size // int(rng.integers(4, 7)))
    if kind == "stripes":
        t = ((xx + yy) // max(2, period // 2)) % 2
    elif kind == "checker":
        t = ((xx // period) + (yy // period)) % 2
    elif kind == "dots":
        t = (((xx % period) - period / 2) ** 2 + ((yy % period) - period / 2) ** 2) < (period / 3) ** 2
    else:
        t = np.zeros((size, size), bool)
    t = t.astype(np.float64)[..., None]
    return np.asarray(c1, np.float64) * (1 - t) + np.asarray(c2, np.float64) * t


def _background(h: int, w: int, rng) -> np.ndarray:
    kind = rng.integers(4)
    base = rng.uniform(0, 255, 3)
    if kind == 0:  # smooth noise
        small = rng.uniform(0, 255, (4, 4, 3))
        img = cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)
    elif kind == 1:  # gradient
        t = np.linspace(0, 1, w)[None, :, None]
        img = base * (1 - t) + rng.uniform(0, 255, 3) * t + np.zeros((h, 1, 1))
    elif kind == 2:  # stripes of two random colours
        yy = np.arange(h)[:, None, None]
        img = np.where((yy // int(rng.integers(6, 20))) % 2 == 0, base, rng.uniform(0, 255, 3)) + np.zeros((1, w, 1))
    else:  # clutter of random rectangles
        img = np.zeros((h, w, 3)) + base
        for _ in range(int(rng.integers(5, 15))):
            y0, x0 = rng.integers(0, h), rng.integers(0, w)
            img[y0 : y0 + rng.integers(5, h // 2), x0 : x0 + rng.integers(5, w // 2)] = rng.uniform(0, 255, 3)
    return img + rng.normal(0, 6, (h, w, 3))


def render_image(rng, classes: list[int], size: tuple[int, int] = (160, 160)):
    """One synthetic image holding objects of `classes`: (H×W×3 uint8, [Instance])."""
    h, w = size
    names = list(SYNTH_CLASSES)
    img = _background(h, w, rng)
    instances = []
    occupied = np.zeros((h, w), bool)
    for c in classes:
        shape, c1, c2, tex = SYNTH_CLASSES[names[c]]
        s = int(rng.integers(int(0.28 * min(h, w)), int(0.45 * min(h, w))))
        m = _shape_mask(shape, s, float(rng.uniform(0, np.pi)))
        for _ in range(20):  # find a place overlapping the others little
            y0, x0 = int(rng.integers(0, h - s)), int(rng.integers(0, w - s))
            if (occupied[y0 : y0 + s, x0 : x0 + s] & m).mean() < 0.05:
                break
        jitter = rng.uniform(0.8, 1.15)
        patch = np.clip(_texture(tex, s, c1, c2, rng) * jitter + rng.uniform(-15, 15, 3), 0, 255)
        full = np.zeros((h, w), bool)
        full[y0 : y0 + s, x0 : x0 + s] = m
        img[y0 : y0 + s, x0 : x0 + s][m] = patch[m]
        for prev in instances:  # later objects occlude earlier ones
            prev.mask &= ~full
        occupied |= full
        instances.append(Instance(c + 1, full))
    rgb = np.clip(img, 0, 255).astype(np.uint8)
    return rgb, [i for i in instances if i.mask.sum() >= 50]


def synthetic_images(
    n_images: int, seed: int = 0, size: tuple[int, int] = (160, 160), max_objects: int = 3
) -> Iterator[tuple[np.ndarray, list[Instance]]]:
    """The synthetic collection's images, in order: (H×W×3 uint8, [Instance]) each."""
    rng = np.random.default_rng(seed)
    for _ in range(n_images):
        k = int(rng.integers(1, max_objects + 1))
        classes = [int(c) for c in rng.choice(len(SYNTH_CLASSES), size=k, replace=False)]
        yield render_image(rng, classes, size)


def make_synthetic_collection(
    out_dir, n_images: int = 60, seed: int = 0, size: tuple[int, int] = (160, 160), max_objects: int = 3
) -> Path:
    """Write a COCO-format synthetic collection (PNG images + annotations.json) to out_dir."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    images, anns = [], []
    for i, (rgb, inst) in enumerate(synthetic_images(n_images, seed, size, max_objects)):
        name = f"synth_{i:05d}.png"
        cv2.imwrite(str(out / name), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
        images.append({"id": i + 1, "file_name": name, "height": size[0], "width": size[1]})
        for ins in inst:
            counts = rle.encode(ins.mask)
            box = rle.bbox(counts, *size)
            anns.append(
                {
                    "id": len(anns) + 1,
                    "image_id": i + 1,
                    "category_id": ins.category,
                    "iscrowd": 0,
                    "area": int(ins.mask.sum()),
                    "bbox": [float(box[0]), float(box[1]), float(box[2] - box[0]), float(box[3] - box[1])],
                    "segmentation": {"size": list(size), "counts": [int(c) for c in counts]},
                }
            )
    cats = [{"id": j + 1, "name": n} for j, n in enumerate(SYNTH_CLASSES)]
    (out / COCO_FILE).write_text(json.dumps({"images": images, "annotations": anns, "categories": cats}))
    return out
