"""The `classic` backbone: grid geometry, determinism, and what each descriptor responds to."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from regiond.core.errors import InputError
from regiond.features import BACKBONES, build_backbone
from regiond.features.classic import AB_BINS, CLASSIC_DIM, ORIENTATION_BINS
from regiond.features.pooling import pool_masks

LAB_MEAN, LAB_STD = slice(0, 3), slice(3, 6)
HOG = slice(6, 6 + ORIENTATION_BINS)
ENERGY = 6 + ORIENTATION_BINS
AB = slice(ENERGY + 1, ENERGY + 1 + AB_BINS**2)


@pytest.fixture(scope="module")
def classic():
    return build_backbone("classic")


def photo(h=61, w=83, seed=0) -> np.ndarray:
    """A smooth random colour field with edges (not white noise)."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (h // 8 + 2, w // 8 + 2, 3), dtype=np.uint8)
    return np.ascontiguousarray(cv2.resize(small, (w, h), interpolation=cv2.INTER_NEAREST))


@pytest.mark.parametrize(
    "h,w,pad", [(61, 83, (4, 5, 0, 1)), (28, 14, (0, 0, 0, 0)), (15, 27, (6, 7, 0, 1)), (1, 1, (6, 7, 6, 7))]
)
def test_grid_geometry(classic, h, w, pad):
    g = classic(photo(h, w) if min(h, w) > 8 else np.zeros((h, w, 3), np.uint8))
    gh, gw = -(-h // 14), -(-w // 14)
    assert g.features.shape == (CLASSIC_DIM, gh, gw) and g.features.dtype == torch.float32
    assert g.pad == pad and g.image_size == (h, w) and g.stride == 14 and g.scale == 1.0
    assert g.dim == BACKBONES["classic"].dim == classic.dim
    assert torch.isfinite(g.features).all()


@pytest.mark.parametrize("max_side", [None, 50, 200])
@pytest.mark.parametrize("h,w", [(61, 83), (28, 14), (1, 1), (97, 301), (480, 640)])
def test_layout_is_the_geometry_of_the_grid(h, w, max_side):
    """layout (what pooling prepares from before the features exist) tells the computed
    grid's size, padding, image size and scale without computing it."""
    backbone = build_backbone("classic", max_side=max_side)
    g, lay = backbone(np.zeros((h, w, 3), np.uint8)), backbone.layout(h, w)
    assert lay.features.shape == (0, *g.features.shape[1:])
    assert (lay.stride, lay.pad, lay.image_size, lay.scale, lay.source_size) == (
        g.stride,
        g.pad,
        g.image_size,
        g.scale,
        g.source_size,
    )


def test_deterministic_and_input_forms(classic):
    img = photo()
    a = classic(img).features
    assert torch.equal(a, classic(img.copy()).features)
    assert torch.equal(a, classic(img[:, ::-1][:, ::-1]).features)  # non-contiguous view
    rgba = np.dstack([img, np.full(img.shape[:2], 7, np.uint8)])
    assert torch.equal(a, classic(rgba).features)  # alpha dropped
    gray = classic(img[:, :, 0]).features  # grayscale accepted
    assert torch.equal(gray, classic(np.dstack([img[:, :, 0]] * 3)).features)  # ... as grey RGB
    # by hand: a grey image, black on the left cell column, white on the right; grey has
    # a = b = 0, so each cell's Lab mean is (L/100, 0, 0) and all its pixels fall in the
    # (a, b) histogram's bin (2, 2), number 2·4 + 2 = 10
    two = np.zeros((28, 28), np.uint8)
    two[:, 14:] = 255
    f = classic(two).features
    torch.testing.assert_close(
        f[LAB_MEAN], torch.tensor([[[0.0, 1.0]] * 2, [[0.0, 0.0]] * 2, [[0.0, 0.0]] * 2]), rtol=0, atol=1e-6
    )
    assert torch.all(f[AB][10] == 1) and torch.all(f[AB].sum(0) == 1)


def test_constant_colour(classic):
    """A flat colour: Lab mean = that colour in every cell (padding does not dilute it), no
    spread, no gradients, and one colour-histogram bin."""
    img = np.empty((40, 50, 3), np.uint8)
    img[:] = (200, 60, 30)
    f = classic(img).features
    lab = cv2.cvtColor(img[:1, :1], cv2.COLOR_RGB2Lab)[0, 0].astype(np.float32)
    want = torch.tensor([lab[0] / 255, lab[1] / 128 - 1, lab[2] / 128 - 1])
    torch.testing.assert_close(f[LAB_MEAN], want[:, None, None].expand(3, *f.shape[1:]), rtol=0, atol=1e-6)
    assert f[LAB_STD].abs().max() < 1e-3
    assert f[HOG].abs().max() == 0 and f[ENERGY].abs().max() == 0
    assert torch.all(f[AB].max(0).values == 1) and torch.all(f[AB].sum(0) == 1)


def test_orientation_bins_follow_edge_direction(classic):
    """Vertical stripes: horizontal gradients (0°/180°, bins 0 and 8); rotated 90°: 90° (bin 4)."""
    img = np.zeros((56, 56, 3), np.uint8)
    img[:, ::8] = 255
    img[:, 1::8] = 255
    v = classic(img).features[HOG].sum((1, 2))
    h = classic(np.ascontiguousarray(np.rot90(img))).features[HOG].sum((1, 2))
    assert set(torch.topk(v, 2).indices.tolist()) == {0, ORIENTATION_BINS - 1}
    assert int(h.argmax()) == ORIENTATION_BINS // 2
    assert v[ORIENTATION_BINS // 2] < 1e-3 * v.max()


def test_gradient_features_ignore_brightness_offset(classic):
    img = (photo().astype(np.int32) // 2 + 40).astype(np.uint8)
    a, b = classic(img).features, classic(img + 50).features
    torch.testing.assert_close(a[HOG], b[HOG], rtol=0, atol=1e-4)
    torch.testing.assert_close(a[ENERGY], b[ENERGY], rtol=0, atol=1e-4)
    assert (b[0] - a[0]).min() > 0.05  # lightness does change


def test_transpose_moves_colour_statistics_with_the_cells(classic):
    img = photo(56, 42)
    a = classic(img).features
    b = classic(np.ascontiguousarray(img.transpose(1, 0, 2))).features
    for part in (LAB_MEAN, LAB_STD, AB):
        torch.testing.assert_close(a[part], b[part].transpose(1, 2), rtol=0, atol=1e-5)


def test_cap_and_pooling_at_original_size():
    bb = build_backbone("classic", max_side=60)
    img = photo(120, 90)
    g = bb(img)
    assert g.image_size == (60, 45) and g.scale == 0.5 and g.source_size == (120, 90)
    assert g.features.shape[1:] == (5, 4)
    masks = np.zeros((2, 120, 90), bool)
    masks[0, :60], masks[1, 60:] = True, True
    pooled = pool_masks(g, masks)
    assert pooled.shape == (2, CLASSIC_DIM) and not torch.allclose(pooled[0], pooled[1])


@pytest.mark.parametrize(
    "image", [np.zeros((0, 10, 3), np.uint8), np.zeros((10, 10, 5), np.uint8), np.zeros((4, 4, 3), np.complex64)]
)
def test_bad_images(classic, image):
    with pytest.raises(InputError) as e:
        classic(image)
    assert e.value.field == "image"


def test_bad_arguments():
    with pytest.raises(InputError, match="max_side"):
        build_backbone("classic", max_side=5)
    with pytest.raises(InputError, match="checkpoint"):
        build_backbone("classic", checkpoint="x.pth")
