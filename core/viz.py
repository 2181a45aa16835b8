"""Pictures of frames and regions from plain arrays (or COCO RLE), for the daemon's CLI and
the clients alike: nothing here imports the daemon.

Region overlays: every region gets its own colour. SAM masks are filled translucently with a
solid outline; SLIC pieces are hatched (diagonal stripes) with a dashed outline, so the two
sources can be told apart at a glance.
"""

from __future__ import annotations

import colorsys
import functools
import struct
import zlib
from pathlib import Path

import numpy as np

from regiond.core.label_spaces import NYU40_NAMES, SCANNET_COLOURS, label_name
from regiond.core.legend import indexed_legend_strip, with_legend
from regiond.core.rle import MaskPixels

SOURCE_SAM = 0  # the API's / RegionSet's source codes
SOURCE_SLIC = 1


def palette(n: int, seed: int = 0) -> np.ndarray:
    """n distinct, saturated colours (n×3 uint8): golden-ratio steps around the hue circle."""
    hues = (seed * 0.137 + np.arange(n) * 0.618033988749895) % 1.0
    sats = 0.65 + 0.35 * (np.arange(n) % 2)
    vals = 1.0 - 0.2 * ((np.arange(n) // 2) % 2)
    rgb = [colorsys.hsv_to_rgb(h, s, v) for h, s, v in zip(hues, sats, vals)]
    return (np.array(rgb, dtype=np.float64).reshape(n, 3) * 255 + 0.5).astype(np.uint8)


def outline(mask: np.ndarray, width: int = 1) -> np.ndarray:
    """Pixels of the mask with a 4-neighbour outside it (or on the image border), `width` deep."""
    inner = np.asarray(mask, dtype=bool)
    for _ in range(width):
        p = np.pad(inner, 1, constant_values=False)
        inner = inner & p[:-2, 1:-1] & p[2:, 1:-1] & p[1:-1, :-2] & p[1:-1, 2:]
    return np.asarray(mask, dtype=bool) & ~inner


def overlay_regions(
    rgb: np.ndarray, masks, source=None, alpha: float = 0.45, colors: np.ndarray | None = None
) -> np.ndarray:
    """The image with each region drawn in its own colour (H×W×3 uint8).

    rgb     H×W×3 uint8 image
    masks   N×H×W bool, or the same masks as rle.MaskPixels (straight from RLE)
    source  N codes, SOURCE_SAM (filled, solid outline) or SOURCE_SLIC (hatched, dashed
            outline); None = all SAM
    alpha   opacity of SAM fills (SLIC hatching uses the same value on its stripes)
    Larger regions are drawn first so small ones stay visible on top.

    Drawn a layer at a time, not a mask at a time: each layer is a label image of masks
    that share no pixel, so one pass of array operations draws all of them; masks that
    overlap go to later layers in drawing order. Regions that tile the image (SLIC, the lite
    profile) make one layer; overlapping SAM masks a few. The result is the same, pixel for
    pixel, as drawing the masks one by one.
    """
    rgb = np.asarray(rgb)
    mp = masks if isinstance(masks, MaskPixels) else MaskPixels.from_masks(masks)
    n, h, w = mp.count, mp.height, mp.width
    if rgb.shape[:2] != (h, w):
        raise ValueError(f"masks are {h}×{w}, image is {rgb.shape[0]}×{rgb.shape[1]}")
    source = np.zeros(n, np.uint8) if source is None else np.asarray(source)
    colors = palette(n) if colors is None else np.asarray(colors, dtype=np.uint8)
    # per region: its colour, and alpha × its colour as the per-mask drawing computed it
    # (float32); one extra row for "no region" (label -1)
    solid = np.vstack([colors[:n].astype(np.float32), np.zeros((1, 3), np.float32)])
    tint = alpha * solid
    is_sam = np.append(source[:n] != SOURCE_SLIC, False)
    stripes, dashes = _hatching(h, w)
    line = max(1, round(min(h, w) / 400))
    out = rgb.astype(np.float32)
    out *= 0.8  # dim the photo slightly so colours read
    pixels = out.reshape(-1, 3)
    for labels in _layers(mp):
        covered = labels >= 0
        sam = _sam_pixels(is_sam, labels)
        flat = labels.ravel()
        # np.take and in-place arithmetic: the same float32 operations as
        # `(1 - alpha) * pixels[fill] + tint[flat[fill]]`, at about half the cost
        fill = np.flatnonzero(covered & (sam | stripes))
        blend = np.take(pixels, fill, axis=0)
        blend *= 1 - alpha
        blend += np.take(tint, np.take(flat, fill), axis=0)
        pixels[fill] = blend
        edge = np.flatnonzero(covered & ~_interior(labels, line) & (sam | dashes))
        pixels[edge] = np.take(solid, np.take(flat, edge), axis=0)
    out += 0.5  # values stay within [0, 255.5]: truncating rounds them
    return out.astype(np.uint8)


def _sam_pixels(is_sam: np.ndarray, labels: np.ndarray):
    """Where a layer's regions are SAM's (H×W bool), or one bool when all or none are (SLIC's
    alone, the lite profile: no image-sized gather)."""
    regions = is_sam[:-1]  # the last entry: no region
    if regions.all() or not regions.any():
        return bool(regions.any())
    return is_sam[labels]


UNKNOWN_CLASS_COLOUR = (128, 128, 128)  # regions without a class in labelled overlays


def labelled_overlay(rgb: np.ndarray, masks, source, labels, names: dict[int, str]) -> np.ndarray:
    """overlay_regions with every region in its class's label colour (label -1: grey, "no
    class") and a legend under the picture naming the classes drawn."""
    labels = np.asarray(labels, np.int64)
    known = labels[labels >= 0]
    lut = label_colours(int(known.max()) + 1 if known.size else 1)
    colors = np.array([lut[k] if k >= 0 else UNKNOWN_CLASS_COLOUR for k in labels.tolist()], np.uint8).reshape(-1, 3)
    entries = [(tuple(lut[k]), names.get(k) or label_name(k)) for k in np.unique(known).tolist()]
    if (labels < 0).any():
        entries.append((UNKNOWN_CLASS_COLOUR, "no class"))
    return with_legend(overlay_regions(rgb, masks, source, colors=colors), entries)


@functools.lru_cache(maxsize=4)
def _hatching(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """SLIC's diagonal stripes and dashes (H×W bool each), the same for every frame of a size."""
    diag = np.add.outer(np.arange(h, dtype=np.int32), np.arange(w, dtype=np.int32))  # x + y
    return (diag // 3) % 3 == 0, (diag // 4) % 2 == 0


def _layers(mp: MaskPixels) -> list[np.ndarray]:
    """H×W int32 label images (-1: no region), to be drawn in order: each holds masks that share
    no pixel, and where masks overlap, the one drawn first (larger; ties by index) lies in an
    earlier layer."""
    n, h, w = mp.count, mp.height, mp.width
    flat = np.full(w * h, -1, np.int32)  # column-major, as RLE
    flat[mp.pixel] = mp.mask
    if np.count_nonzero(flat >= 0) == mp.pixel.size:  # no pixel covered twice: one layer
        return [np.ascontiguousarray(flat.reshape(w, h).T)]
    order = np.argsort(-mp.areas(), kind="stable")
    rank = np.empty(n, np.int64)
    rank[order] = np.arange(n)
    # at each pixel covered more than once, the masks in drawing order must lie in strictly
    # increasing layers: constraints between neighbours in that order are enough
    depth = np.bincount(mp.pixel, minlength=h * w)
    shared = depth[mp.pixel] > 1
    key = np.sort(mp.pixel[shared].astype(np.int64) * n + rank[mp.mask[shared]])
    same = key[1:] // n == key[:-1] // n
    below, above = np.unique(np.stack([key[:-1][same] % n, key[1:][same] % n]), axis=1)
    level = np.zeros(n, np.int64)  # layer per rank
    while True:  # longest path: at most max depth rounds
        nxt = level.copy()
        np.maximum.at(nxt, above, level[below] + 1)
        if np.array_equal(nxt, level):
            break
        level = nxt
    mask_level = level[rank]
    layers = []
    for k in range(int(mask_level.max()) + 1):
        flat = np.full(w * h, -1, np.int32)
        sel = mask_level[mp.mask] == k
        flat[mp.pixel[sel]] = mp.mask[sel]
        layers.append(np.ascontiguousarray(flat.reshape(w, h).T))
    return layers


def _interior(labels: np.ndarray, width: int) -> np.ndarray:
    """Pixels whose 4-neighbours `width` steps deep carry their own label (never on the border):
    on a layer of disjoint masks, each mask's outline is its pixels outside this."""
    c = labels[1:-1, 1:-1]
    inner = np.zeros(labels.shape, bool)
    inner[1:-1, 1:-1] = (
        (c == labels[:-2, 1:-1]) & (c == labels[2:, 1:-1]) & (c == labels[1:-1, :-2]) & (c == labels[1:-1, 2:])
    )
    for _ in range(width - 1):
        i = inner[1:-1, 1:-1] & inner[:-2, 1:-1] & inner[2:, 1:-1] & inner[1:-1, :-2] & inner[1:-1, 2:]
        inner = np.zeros(labels.shape, bool)
        inner[1:-1, 1:-1] = i
    return inner


def label_colours(n: int = 256) -> np.ndarray:
    """Colours of label ids 0..n-1 (n×3 uint8, the caller's own copy): ScanNet's own for the
    NYU40 ids 0..40 (0, unlabelled, black), distinct saturated ones above."""
    return _label_lut(max(n, 256))[:n].copy()


@functools.lru_cache(maxsize=2)
def _label_lut(n: int) -> np.ndarray:
    """label_colours' table, made once (palette() is a Python loop per colour)."""
    lut = palette(max(n, len(SCANNET_COLOURS)))
    lut[: len(SCANNET_COLOURS)] = SCANNET_COLOURS
    lut.flags.writeable = False
    return lut


def colorize_labels(labels: np.ndarray, ignore: int | None = 0) -> np.ndarray:
    """An H×W integer label map (NYU40 ids) as a colour picture in label_colours(); `ignore`
    pixels are black."""
    labels = np.asarray(labels)
    top = int(labels.max()) + 1 if labels.size else 1
    lut = label_colours(max(top, 1))
    out = lut[np.clip(labels, 0, top - 1)]
    if ignore is not None:
        out[labels == ignore] = 0
    return out


def label_legend(labels: np.ndarray, names=NYU40_NAMES, ignore: int | None = 0) -> list[tuple]:
    """Legend entries (colour, name) of the ids a label map uses, in id order; `ignore`
    (black) is named "unlabelled"."""
    ids = np.unique(np.asarray(labels))
    lut = label_colours(int(ids.max()) + 1 if ids.size else 1)
    return [
        ((0, 0, 0) if i == ignore else tuple(lut[i]), "unlabelled" if i == ignore else label_name(int(i), names))
        for i in ids.tolist()
    ]


def encode_png(image: np.ndarray, level: int = 6, runs: bool = False) -> bytes:
    """An H×W×3 (or H×W) uint8 array as PNG bytes at zlib `level` (0-9). At level ≤ 1 the rows
    go unfiltered: on photos with regions drawn over them the PNG filters took longer than
    they saved (measured: level 1 unfiltered is the fastest and the smallest of cv2's
    level-1 choices). `runs`: an H×W map of long runs of one value (a label map), packed with
    zlib's run-length strategy: 40 % smaller and faster than its default there (on pictures,
    whose channels interleave, far larger)."""
    import cv2  # heavy: only when pictures are written

    a = np.ascontiguousarray(image, dtype=np.uint8)
    if a.ndim == 3:
        a = a[:, :, ::-1]  # cv2 writes BGR
    params = [cv2.IMWRITE_PNG_COMPRESSION, int(level)]
    if level <= 1:
        params += [cv2.IMWRITE_PNG_FILTER, cv2.IMWRITE_PNG_FILTER_NONE]
    if runs:
        params += [cv2.IMWRITE_PNG_STRATEGY, cv2.IMWRITE_PNG_STRATEGY_RLE]
    ok, buf = cv2.imencode(".png", a, params)
    if not ok:
        raise ValueError(f"could not encode a {a.shape} image as PNG")
    return buf.tobytes()


def encode_jpeg(image: np.ndarray, quality: int = 95) -> bytes:
    """An H×W×3 uint8 RGB array as JPEG bytes at `quality`, colour at full resolution (4:4:4:
    the default 4:2:0 halves it and smears one-pixel coloured lines)."""
    import cv2  # heavy: only when pictures are written

    a = np.ascontiguousarray(np.asarray(image, dtype=np.uint8)[:, :, ::-1])  # cv2 writes BGR
    params = [
        cv2.IMWRITE_JPEG_QUALITY,
        int(quality),
        cv2.IMWRITE_JPEG_SAMPLING_FACTOR,
        cv2.IMWRITE_JPEG_SAMPLING_FACTOR_444,
    ]
    ok, buf = cv2.imencode(".jpg", a, params)
    if not ok:
        raise ValueError(f"could not encode a {a.shape} image as JPEG")
    return buf.tobytes()


def save_png(path, image: np.ndarray, level: int = 6) -> Path:
    """Write an H×W×3 (or H×W) uint8 array as PNG, creating the parent directory."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(encode_png(image, level))
    return path


_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def decode_label_png(png: bytes) -> np.ndarray:
    """A label PNG (one id per pixel, 8 or 16 bits) → H×W ids; ValueError when it is not one."""
    import cv2  # heavy: only when pictures are read

    labels = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_UNCHANGED)
    if labels is None or labels.ndim != 2:
        raise ValueError("not a label PNG (one id per pixel)")
    return labels


def colour_label_png(labels: bytes | np.ndarray, ignore: int | None = 0, names=NYU40_NAMES) -> bytes:
    """A label map (a label PNG, one id per pixel, as the daemon sends: NYU40 ids; or its
    decode_label_png array) as a picture in colorize_labels' colours (`ignore` black) with a
    legend naming the classes it shows under it, as PNG bytes.

    8-bit maps become an indexed PNG: the ids themselves under label_colours as the palette,
    the legend drawn in palette indices below them (white: an index the map does not use),
    no colour conversion (about 30× faster than colouring and encoding RGB). Others (16-bit
    ids) are coloured and encoded."""
    if isinstance(labels, (bytes, bytearray, memoryview)):
        labels = decode_label_png(labels)
    if labels.dtype == np.uint8:
        counts = np.bincount(labels.ravel(), minlength=256)
        free = np.flatnonzero(counts[1:] == 0) + 1  # 0 stays black: the text
        if free.size:
            return _indexed_label_png(labels, np.flatnonzero(counts), int(free[-1]), ignore, names)
    picture = with_legend(colorize_labels(labels, ignore=ignore), label_legend(labels, names, ignore))
    return encode_png(picture, level=1)


def _indexed_label_png(labels: np.ndarray, used: np.ndarray, white: int, ignore: int | None, names) -> bytes:
    lut = label_colours(256)
    if ignore is not None and 0 <= ignore < 256:
        lut[ignore] = 0
    lut[white] = 255
    entries = tuple((i, "unlabelled" if i == ignore else label_name(i, names)) for i in used.tolist())
    rows = np.vstack([labels, indexed_legend_strip(entries, labels.shape[1], white, 0)])
    raw = np.zeros((rows.shape[0], rows.shape[1] + 1), np.uint8)  # each row: filter type 0, then its indices
    raw[:, 1:] = rows
    h, w = rows.shape
    chunks = [
        (b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 3, 0, 0, 0)),
        (b"PLTE", lut.tobytes()),
        (b"IDAT", zlib.compress(raw.tobytes(), 1)),
        (b"IEND", b""),
    ]
    return _PNG_SIGNATURE + b"".join(
        struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d)) for t, d in chunks
    )
