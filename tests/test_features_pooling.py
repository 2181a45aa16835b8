"""Exact mask pooling against the materialised reference (F.interpolate, crop, mean/max)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from regiond.core.errors import InputError
from regiond.core.partition import Partition
from regiond.features.backbone import FeatureGrid, padding
from regiond.features.pooling import mask_weights, naive_pool, pool_masks, upsample_grid
from regiond.features.upsampling import bilinear_taps, interpolation_matrix


def make_grid(h: int, w: int, dim: int = 6, stride: int = 14, seed: int = 0) -> FeatureGrid:
    pad = padding(h, w, stride)
    gh, gw = (h + pad[0] + pad[1]) // stride, (w + pad[2] + pad[3]) // stride
    feats = torch.randn(dim, gh, gw, generator=torch.Generator().manual_seed(seed))
    return FeatureGrid(feats, stride, pad, (h, w))


def blob_masks(h: int, w: int, n: int, seed: int = 0) -> np.ndarray:
    """Random ellipses, plus an empty mask, single pixels in two corners and a full mask."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    out = [
        ((yy - rng.uniform(0, h)) / rng.uniform(1, h + 2)) ** 2
        + ((xx - rng.uniform(0, w)) / rng.uniform(1, w + 2)) ** 2
        <= 1
        for _ in range(n)
    ]
    empty = np.zeros((h, w), bool)
    tl, br = empty.copy(), empty.copy()
    tl[0, 0] = True
    br[h - 1, w - 1] = True
    return np.stack(out + [empty, tl, br, np.ones((h, w), bool)])


# Image sizes whose padding to 14 is 0, 1 (odd: the extra row at the bottom), 12, 13, and
# general odd sizes; width and height differ so rows and columns cannot be mixed up.
SIZES = [(28, 42), (27, 43), (16, 30), (15, 29), (37, 51), (14, 13), (1, 1), (3, 60)]


@pytest.mark.parametrize("h,w", SIZES)
@pytest.mark.parametrize("strategy", ["boxes", "dense"])
def test_mean_equals_naive(h, w, strategy):
    grid = make_grid(h, w)
    masks = blob_masks(h, w, 5, seed=h * w)
    exact = pool_masks(grid, masks, "mean", strategy=strategy)
    ref = naive_pool(grid, masks, "mean")
    assert exact.dtype == torch.float32 and exact.shape == (len(masks), grid.dim)
    # float32 sums in another order: a few ulps of the value (a wrong weight is off by ~1e-1)
    torch.testing.assert_close(exact, ref, rtol=4e-6, atol=2e-6)
    assert torch.all(exact[-4] == 0), "empty masks pool to zeros"


@pytest.mark.parametrize("h,w", SIZES)
def test_max_equals_naive(h, w):
    grid = make_grid(h, w)
    masks = blob_masks(h, w, 4, seed=h + w)
    torch.testing.assert_close(pool_masks(grid, masks, "max"), naive_pool(grid, masks, "max"), rtol=0, atol=2e-6)


def test_one_pixel_masks_are_exact_upsampled_values():
    grid = make_grid(23, 31, dim=4)
    full = F.interpolate(grid.features[None], size=(28, 42), mode="bilinear", align_corners=False)[0]
    top, left = grid.pad[0], grid.pad[2]
    for y, x in [(0, 0), (22, 30), (5, 17), (11, 0), (0, 29)]:
        m = np.zeros((1, 23, 31), bool)
        m[0, y, x] = True
        want = full[:, top + y, left + x]
        for mode in ("mean", "max"):
            torch.testing.assert_close(pool_masks(grid, m, mode)[0], want, rtol=0, atol=1e-6)


def test_other_strides_and_mask_types():
    grid = FeatureGrid(torch.randn(3, 4, 5), 7, (1, 2, 3, 2), (25, 30))
    masks = blob_masks(25, 30, 3)
    ref = naive_pool(grid, masks)
    for m in (masks, torch.from_numpy(masks), masks.astype(np.uint8), np.asfortranarray(masks)):
        torch.testing.assert_close(pool_masks(grid, m), ref, rtol=0, atol=2e-6)


def test_weights_sum_to_area_and_are_nonnegative():
    grid = make_grid(33, 47)
    masks = blob_masks(33, 47, 6)
    w, area = mask_weights(grid, masks)
    assert (w >= 0).all()
    torch.testing.assert_close(area, torch.from_numpy(masks.sum((1, 2))).float(), rtol=0, atol=0)
    torch.testing.assert_close(w.sum((1, 2)), area, rtol=1e-6, atol=1e-4)


def test_capped_grid_pools_original_size_masks():
    """A backbone that capped the image: masks at the original size see the upsampled,
    cropped grid bilinearly resized to that size."""
    grid = FeatureGrid(torch.randn(5, 3, 4), 14, (1, 0, 3, 2), (41, 51), scale=0.5, original_size=(82, 102))
    masks = blob_masks(82, 102, 4)
    for mode in ("mean", "max"):
        torch.testing.assert_close(pool_masks(grid, masks, mode), naive_pool(grid, masks, mode), rtol=0, atol=2e-6)
    torch.testing.assert_close(pool_masks(grid, masks, strategy="dense"), naive_pool(grid, masks), rtol=0, atol=2e-6)
    up = upsample_grid(grid, (82, 102))
    assert up.shape == (5, 82, 102)


@pytest.mark.parametrize("n_in,n_out", [(37, 518), (5, 70), (3, 3), (1, 14), (7, 4), (10, 23)])
def test_interpolation_matrix_matches_f_interpolate(n_in, n_out):
    x = torch.randn(2, 3, n_in, 1, dtype=torch.float64)
    want = F.interpolate(x, size=(n_out, 1), mode="bilinear", align_corners=False)[..., 0]
    a = torch.from_numpy(interpolation_matrix(n_in, n_out))
    torch.testing.assert_close(torch.einsum("oi,bci->bco", a, x[..., 0]), want, rtol=0, atol=1e-12)
    i0, i1, w0, w1 = bilinear_taps(n_in, n_out)
    assert (i0 >= 0).all() and (i1 < n_in).all() and np.allclose(w0 + w1, 1)


def test_no_masks():
    grid = make_grid(20, 20)
    out = pool_masks(grid, np.zeros((0, 20, 20), bool))
    assert out.shape == (0, grid.dim) and out.dtype == torch.float32


@pytest.mark.parametrize(
    "masks,field",
    [
        (np.zeros((2, 19, 20), bool), "masks"),  # wrong size
        (np.zeros((20, 20), bool), "masks"),  # not N×H×W
        ([[[True]]], "masks"),  # not an array
    ],
)
def test_bad_masks(masks, field):
    with pytest.raises(InputError) as e:
        pool_masks(make_grid(20, 20), masks)
    assert e.value.field == field


def test_bad_mode_strategy_and_grid():
    grid = make_grid(20, 20)
    masks = np.ones((1, 20, 20), bool)
    with pytest.raises(InputError, match="mode"):
        pool_masks(grid, masks, "median")
    with pytest.raises(InputError, match="strategy"):
        pool_masks(grid, masks, strategy="magic")
    bad = FeatureGrid(torch.zeros(3, 2, 2), 14, (0, 0, 0, 0), (20, 20))  # 2×14 ≠ 20
    with pytest.raises(InputError, match="grid"):
        pool_masks(bad, masks)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_gpu_matches_cpu():
    grid = make_grid(61, 77, dim=16)
    masks = blob_masks(61, 77, 10)
    cpu = pool_masks(grid, masks)
    g = FeatureGrid(grid.features.cuda(), grid.stride, grid.pad, grid.image_size)
    for strategy in ("dense", "boxes"):
        out = pool_masks(g, torch.from_numpy(masks).cuda(), strategy=strategy)
        assert out.device.type == "cuda"
        torch.testing.assert_close(out.cpu(), cpu, rtol=0, atol=1e-5)
    torch.testing.assert_close(pool_masks(g, masks, "max").cpu(), pool_masks(grid, masks, "max"), rtol=0, atol=1e-5)
    # A partition (first mask wins; pixels in none are -1) pools on the GPU too.
    labels = np.argmax(np.concatenate([np.zeros((1, 61, 77)), masks[:6]]), axis=0).astype(np.int32) - 1
    part = Partition(labels, 6)
    out = pool_masks(g, part)
    assert out.device.type == "cuda"
    torch.testing.assert_close(out.cpu(), pool_masks(grid, part.masks()), rtol=0, atol=1e-5)
