"""Pictures drawn in one pass: region overlays against the per-mask drawing they replaced
(pixel for pixel), many-mask RLE decoding against pycocotools, and coloured label PNGs."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as mask_utils

from regiond.core import rle
from regiond.core.label_spaces import NYU40_NAMES, SCANNET_COLOURS
from regiond.core.viz import (
    SOURCE_SAM,
    SOURCE_SLIC,
    UNKNOWN_CLASS_COLOUR,
    colorize_labels,
    colour_label_png,
    decode_label_png,
    encode_png,
    label_colours,
    label_legend,
    labelled_overlay,
    outline,
    overlay_regions,
    palette,
)


def reference_overlay(rgb, masks, source=None, alpha=0.45, colors=None):
    """The per-mask drawing overlay_regions did before it drew layers (kept verbatim as the
    reference: one pass over the image per mask, larger masks first)."""
    rgb = np.asarray(rgb)
    masks = np.asarray(masks, dtype=bool)
    n, h, w = masks.shape
    source = np.zeros(n, np.uint8) if source is None else np.asarray(source)
    colors = palette(n) if colors is None else np.asarray(colors, dtype=np.uint8)
    out = rgb.astype(np.float32).copy()
    out *= 0.8
    diag = np.add.outer(np.arange(h, dtype=np.int32), np.arange(w, dtype=np.int32))
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


def _tiling(rng, h, w, n):
    """n pieces tiling the image (as SLIC's do): nearest of n random seeds."""
    seeds = rng.random((n, 2)) * (h, w)
    yy, xx = np.mgrid[:h, :w]
    owner = np.argmin((yy[None] - seeds[:, :1, None]) ** 2 + (xx[None] - seeds[:, 1:, None]) ** 2, axis=0)
    return owner[None] == np.arange(n)[:, None, None]


def _blobs(rng, h, w, n):
    """n overlapping ellipses and boxes (as SAM's masks may be), some nested, one touching the border."""
    yy, xx = np.mgrid[:h, :w]
    out = []
    for k in range(n):
        cy, cx = rng.random(2) * (h, w)
        ry, rx = (0.05 + 0.4 * rng.random(2)) * (h, w)
        m = (
            ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1
            if k % 2
            else (abs(yy - cy) <= ry / 2) & (abs(xx - cx) <= rx / 2)
        )
        out.append(m)
    out.append(np.zeros((h, w), bool))  # an empty mask
    border = np.zeros((h, w), bool)
    border[: h // 3, : w // 4] = True  # touches two borders
    out.append(border)
    out.append(out[1].copy())  # a duplicate: same area, ties by index
    return np.stack(out)


@pytest.mark.parametrize("h,w", [(48, 64), (37, 23), (600, 800)])  # 600: outlines 2 pixels deep
def test_overlay_equals_per_mask_drawing(h, w):
    rng = np.random.default_rng(h)
    rgb = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    slic = _tiling(rng, h, w, 7)
    sam = _blobs(rng, h, w, 6)
    masks = np.concatenate([sam, slic])
    source = np.array([SOURCE_SAM] * len(sam) + [SOURCE_SLIC] * len(slic), np.uint8)
    want = reference_overlay(rgb, masks, source)
    assert np.array_equal(overlay_regions(rgb, masks, source), want)
    counts = [rle.encode(m) for m in masks]
    from_rle = rle.MaskPixels.from_counts(counts, h, w)
    assert np.array_equal(overlay_regions(rgb, from_rle, source), want)
    # SLIC alone tiles the image: one layer; SAM alone, all filled; custom colours and alpha
    assert np.array_equal(
        overlay_regions(rgb, slic, np.ones(len(slic))), reference_overlay(rgb, slic, np.ones(len(slic)))
    )
    colors = rng.integers(0, 256, (len(sam), 3), dtype=np.uint8)
    assert np.array_equal(
        overlay_regions(rgb, sam, colors=colors, alpha=0.7), reference_overlay(rgb, sam, colors=colors, alpha=0.7)
    )


def test_overlay_of_deeply_nested_masks():
    """Ten nested squares and a mask crossing them all: many layers, still pixel-exact."""
    rng = np.random.default_rng(5)
    h, w = 60, 60
    masks = np.zeros((11, h, w), bool)
    for k in range(10):
        masks[k, k * 3 : h - k * 3, k * 3 : w - k * 3] = True
    masks[10, 28:32, :] = True
    rgb = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    source = rng.integers(0, 2, 11).astype(np.uint8)
    assert np.array_equal(overlay_regions(rgb, masks, source), reference_overlay(rgb, masks, source))


def test_overlay_without_regions_dims_the_photo():
    rgb = np.full((8, 9, 3), 200, np.uint8)
    assert (overlay_regions(rgb, np.zeros((0, 8, 9), bool)) == 160).all()  # the reference failed on no regions
    with pytest.raises(ValueError, match="image is"):
        overlay_regions(rgb, np.zeros((1, 9, 8), bool))


def test_decode_many_matches_pycocotools():
    rng = np.random.default_rng(3)
    h, w = 37, 23  # odd, non-square: row/column-major mix-ups show
    masks = np.concatenate(
        [_blobs(rng, h, w, 5), _tiling(rng, h, w, 4), [np.ones((h, w), bool)], [rng.random((h, w)) < 0.5]]
    )
    masks[-2, 0, 0] = True  # foreground at index 0: counts start with an empty background run
    counts = [rle.encode(m) for m in masks]
    objs = mask_utils.frPyObjects([{"size": [h, w], "counts": c.tolist()} for c in counts], h, w)
    ref = np.moveaxis(mask_utils.decode(objs), -1, 0).astype(bool)
    assert np.array_equal(ref, masks)
    got = rle.decode_many(counts, h, w)
    assert got.dtype == bool and np.array_equal(got, ref)
    mp = rle.MaskPixels.from_counts(counts, h, w)
    assert np.array_equal(mp.areas(), ref.reshape(len(ref), -1).sum(1))
    assert np.array_equal(rle.MaskPixels.from_masks(ref).pixel, mp.pixel)
    assert rle.decode_many([], h, w).shape == (0, h, w)


def test_decode_many_names_the_bad_mask():
    good = rle.encode(np.ones((3, 3), bool))
    with pytest.raises(ValueError, match="mask 1 sum to 7"):
        rle.decode_many([good, np.array([3, 4])], 3, 3)
    with pytest.raises(ValueError, match="mask 0 .*negative"):
        rle.decode_many([np.array([10, -1])], 3, 3)


def test_colour_label_png_shows_colorize_labels_colours_and_a_legend():
    rng = np.random.default_rng(4)
    labels = rng.integers(0, 41, (60, 200)).astype(np.uint8)
    labels[:5] = 0
    buf = io.BytesIO()
    Image.fromarray(labels, mode="L").save(buf, format="PNG")  # as the daemon writes label maps
    with Image.open(io.BytesIO(colour_label_png(buf.getvalue()))) as im:
        assert im.mode == "P"  # the ids themselves under a palette, not re-coloured
        rgb = np.asarray(im.convert("RGB"))
    assert np.array_equal(rgb[:60], colorize_labels(labels))
    legend = rgb[60:]
    assert legend.shape[0] > 10 and legend.shape[1] == 200
    for cid in np.unique(labels)[1:]:  # every class shown has its swatch in the legend
        assert (legend == label_colours()[cid]).all(-1).any(), cid
    assert label_legend(labels)[0] == ((0, 0, 0), "unlabelled")
    decoded = decode_label_png(buf.getvalue())  # the map decoded once (scan_scene also scores it): the same picture
    assert decoded.dtype == np.uint8 and np.array_equal(decoded, labels)
    assert colour_label_png(decoded) == colour_label_png(buf.getvalue())
    assert label_colours()[1].tolist() != [0, 0, 0]  # each caller gets its own copy of the table
    label_colours()[1] = 0
    assert label_colours()[1].tolist() != [0, 0, 0]
    with pytest.raises(ValueError, match="label PNG"):
        decode_label_png(b"not a png")
    # any other PNG (here 16-bit ids) is decoded, coloured and given the same legend
    wide = labels.astype(np.uint16) * 300
    buf = io.BytesIO()
    Image.fromarray(wide).save(buf, format="PNG")
    with Image.open(io.BytesIO(colour_label_png(buf.getvalue()))) as im:
        rgb16 = np.asarray(im.convert("RGB"))
    assert np.array_equal(rgb16[:60], colorize_labels(wide)) and rgb16.shape[0] > 70
    assert [n for _, n in label_legend(labels)][1:] == [NYU40_NAMES[i] for i in np.unique(labels)[1:]]


def test_label_colours_are_scannets_palette():
    lut = label_colours()
    assert lut.shape == (256, 3) and np.array_equal(lut[:41], SCANNET_COLOURS)
    assert tuple(lut[1]) == (174, 199, 232) and tuple(lut[5]) == (188, 189, 34)  # wall, chair (ScanNet util.py)
    assert tuple(lut[39]) == (82, 84, 163) and len({tuple(c) for c in lut[:41]}) == 41
    assert len({tuple(c) for c in lut[41:]}) > 150  # ids above NYU40 still get distinct colours


def test_labelled_overlay_colours_regions_by_class_with_a_legend():
    rgb = np.full((40, 120, 3), 200, np.uint8)
    masks = np.zeros((3, 40, 120), bool)
    masks[0, :, :40], masks[1, :, 40:80], masks[2, :, 80:] = True, True, True
    pic = labelled_overlay(rgb, masks, [SOURCE_SAM] * 3, [1, 5, -1], {1: "wall", 5: "chair"})
    assert pic.shape[0] > 40 and pic.shape[1] == 120
    body, legend = pic[:40], pic[40:]
    assert np.array_equal(body[0, 0], label_colours()[1]) and np.array_equal(body[0, 40], label_colours()[5])
    assert np.array_equal(body[0, 80], UNKNOWN_CLASS_COLOUR)  # outlines take the class colour
    for colour in (label_colours()[1], label_colours()[5], UNKNOWN_CLASS_COLOUR):
        assert (legend == colour).all(-1).any()


def test_encode_png_round_trips():
    rng = np.random.default_rng(6)
    img = rng.integers(0, 256, (21, 34, 3), dtype=np.uint8)
    for level in (1, 6):
        with Image.open(io.BytesIO(encode_png(img, level))) as im:
            assert np.array_equal(np.asarray(im), img)
    grey = img[:, :, 0]
    with Image.open(io.BytesIO(encode_png(grey, 1))) as im:
        assert np.array_equal(np.asarray(im), grey)
    # a label map (runs of one id, a few noisy ids) packed as runs: the same ids, fewer bytes
    labels = np.repeat(rng.integers(0, 41, (48, 9), dtype=np.uint8), 71, axis=1)
    labels[rng.random(labels.shape) < 0.01] = 7
    packed = encode_png(labels, 1, runs=True)
    with Image.open(io.BytesIO(packed)) as im:
        assert im.mode == "L" and np.array_equal(np.asarray(im), labels)
    assert len(packed) < len(encode_png(labels, 1))


def test_jpeg_pictures_keep_one_pixel_colour_lines():
    import cv2

    from regiond.core.viz import encode_jpeg

    picture = np.full((64, 64, 3), 128, np.uint8)
    picture[:, 31] = (255, 0, 0)  # a one-pixel red outline, as overlays draw them
    back = cv2.cvtColor(
        cv2.imdecode(np.frombuffer(encode_jpeg(picture), np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB
    )
    assert np.abs(back.astype(int) - picture).max() < 40  # 4:2:0 would halve the red into its neighbours
    assert back[:, 31, 0].min() > 215 and back[:, 31, 1].max() < 40
