"""SLIC on every input kind, every bad input, and the paper's SAM+SLIC cover rule."""

from __future__ import annotations

import numpy as np
import pytest
from skimage import data

from regiond.core.errors import InputError
from regiond.masks import MIN_PIECE_PIXELS, MaskerSpec, build_masker
from regiond.masks.cover import SamSlicCover, cover
from regiond.masks.generator import SOURCE_SAM, SOURCE_SLIC, MaskProposals
from regiond.masks.slic import SlicConfig, SlicMasker


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    """A real photo (scikit-image's coffee), 200×300."""
    return np.ascontiguousarray(data.coffee()[::2, ::2])


@pytest.fixture(scope="module")
def slic() -> SlicMasker:
    return SlicMasker()


def test_slic_paper_parameters_and_partition(slic, photo):
    assert slic.config == SlicConfig(num_components=50, compactness=8.0)
    labels = slic.labels(photo)
    assert labels.shape == photo.shape[:2] and labels.dtype == np.int32
    k = labels.max() + 1
    assert np.array_equal(np.unique(labels), np.arange(k))
    assert 25 <= k <= 60  # about 50 superpixels
    props = slic(photo)
    assert len(props) == k
    assert (props.source == SOURCE_SLIC).all() and np.isnan(props.scores).all()
    assert (props.masks.sum(0) == 1).all()  # a partition: every pixel in exactly one


def test_slic_uses_avx2_when_the_cpu_has_it(slic):
    import fast_slic

    expected = "x64/avx2" if "x64/avx2" in fast_slic.supported_archs else "standard"
    assert slic.arch == expected


def _input_kinds(rgb: np.ndarray) -> dict:
    """The same picture in every accepted form, each with the uint8 RGB it should become."""
    gray = rgb[:, :, 1].copy()
    alpha = np.full(rgb.shape[:2] + (1,), 7, np.uint8)
    return {
        "rgb": (rgb, rgb),
        "rgba": (np.concatenate([rgb, alpha], axis=2), rgb),
        "gray": (gray, np.stack([gray] * 3, -1)),
        "gray_hw1": (gray[:, :, None], np.stack([gray] * 3, -1)),
        "gray_alpha": (np.concatenate([gray[:, :, None], alpha], axis=2), np.stack([gray] * 3, -1)),
        "uint16": (rgb.astype(np.uint16) * 257, rgb),
        "float32": (rgb.astype(np.float32) / 255, rgb),
        "float64": (rgb.astype(np.float64) / 255, rgb),
        "non_contiguous": (np.ascontiguousarray(rgb[:, ::-1])[:, ::-1], rgb),
        "fortran": (np.asfortranarray(rgb), rgb),
        "bgr_view": (np.ascontiguousarray(rgb[:, :, ::-1])[:, :, ::-1], rgb),
        "bool": (rgb > 127, (rgb > 127).astype(np.uint8) * 255),
        "big_endian_uint16": ((rgb.astype(np.uint16) * 257).astype(">u2"), rgb),
    }


@pytest.mark.parametrize("kind", list(_input_kinds(np.zeros((2, 2, 3), np.uint8))))
def test_slic_on_every_input_kind(slic, photo, kind):
    image, expected_rgb = _input_kinds(photo)[kind]
    assert np.array_equal(slic.labels(image), slic.labels(expected_rgb))


def test_slic_on_a_16_bit_photo_with_full_range(slic, photo):
    deep = (photo.astype(np.uint16) << 8) | 0x80  # not a multiple of 257: real 16-bit content
    labels = slic.labels(deep)
    assert labels.shape == photo.shape[:2] and labels.max() >= 20


BAD_INPUTS = {
    "empty_rows": np.zeros((0, 10, 3), np.uint8),
    "empty_cols": np.zeros((10, 0, 3), np.uint8),
    "no_channels": np.zeros((10, 10, 0), np.uint8),
    "five_channels": np.zeros((10, 10, 5), np.uint8),
    "one_dim": np.zeros(30, np.uint8),
    "four_dim": np.zeros((2, 10, 10, 3), np.uint8),
    "float_above_one": np.full((10, 10, 3), 1.5, np.float32),
    "float_negative": np.full((10, 10, 3), -0.1, np.float32),
    "nan": np.full((10, 10, 3), np.nan, np.float32),
    "negative_int": np.full((10, 10, 3), -3, np.int16),
    "complex": np.zeros((10, 10, 3), np.complex64),
    "strings": np.full((10, 10), "x"),
}


@pytest.mark.parametrize("name", list(BAD_INPUTS))
def test_bad_inputs_name_the_image_field(slic, name):
    with pytest.raises(InputError) as e:
        slic(BAD_INPUTS[name])
    assert e.value.field == "image"


def test_over_the_pixel_limit(photo):
    masker = SlicMasker(max_pixels=photo.shape[0] * photo.shape[1] - 1)
    with pytest.raises(InputError, match="exceeds the limit"):
        masker(photo)
    SlicMasker(max_pixels=photo.shape[0] * photo.shape[1])(photo)  # exactly at the limit is fine


# --- the cover rule ----------------------------------------------------------------------


def _sam_like(h: int, w: int) -> MaskProposals:
    """Three overlapping SAM-style masks: an ellipse, a rectangle, a thin band."""
    yy, xx = np.mgrid[0:h, 0:w]
    ell = ((yy - h * 0.45) / (h * 0.3)) ** 2 + ((xx - w * 0.4) / (w * 0.25)) ** 2 <= 1
    rect = np.zeros((h, w), bool)
    rect[h // 2 :, w // 2 : w - 10] = True
    band = np.zeros((h, w), bool)
    band[5:12, :] = True
    masks = np.stack([ell, rect, band])
    return MaskProposals(masks, np.full(3, SOURCE_SAM, np.uint8), np.array([0.9, 0.95, 0.91], np.float32))


def _reference_cover(sam: MaskProposals, labels: np.ndarray, min_piece: int):
    """The rule written out superpixel by superpixel (the slow obvious way)."""
    uncovered = ~sam.masks.any(0)
    pieces = []
    for k in range(labels.max() + 1):
        piece = (labels == k) & uncovered
        if piece.sum() >= min_piece:
            pieces.append(piece)
    return pieces


def test_cover_rule_on_a_real_photo(slic, photo):
    h, w = photo.shape[:2]
    sam = _sam_like(h, w)
    labels = slic.labels(photo)
    out = cover(sam, labels, MIN_PIECE_PIXELS)
    # SAM masks first, unchanged and in order, then the pieces.
    assert np.array_equal(out.masks[:3], sam.masks)
    assert np.array_equal(out.scores[:3], sam.scores)
    assert (out.source[:3] == SOURCE_SAM).all() and (out.source[3:] == SOURCE_SLIC).all()
    assert np.isnan(out.scores[3:]).all()
    pieces = out.masks[3:]
    ref = _reference_cover(sam, labels, MIN_PIECE_PIXELS)
    assert len(pieces) == len(ref) > 0
    for got, want in zip(pieces, ref):
        assert np.array_equal(got, want)
    sam_union = sam.masks.any(0)
    assert not (pieces & sam_union).any()  # pieces only on uncovered pixels
    assert (pieces.sum((1, 2)) >= MIN_PIECE_PIXELS).all()
    assert (pieces.sum(0) <= 1).all()  # pieces never overlap each other
    # Every pixel is covered except those in leftover pieces under 300 pixels.
    uncovered_after = ~out.masks.any(0)
    sizes = np.bincount(labels[~sam_union], minlength=labels.max() + 1)
    small_leftover = ~sam_union & (sizes[labels] < MIN_PIECE_PIXELS)
    assert np.array_equal(uncovered_after, small_leftover)
    assert small_leftover.any()  # the photo and masks were chosen so the rule actually drops some


def test_cover_threshold_is_inclusive_at_300():
    labels = np.zeros((40, 40), np.int32)
    labels[:, 20:] = 1
    sam_mask = np.ones((40, 40), bool)
    sam_mask.flat[np.flatnonzero(labels.ravel() == 0)[:300]] = False  # 300 px of label 0 uncovered
    sam_mask.flat[np.flatnonzero(labels.ravel() == 1)[:299]] = False  # 299 px of label 1 uncovered
    sam = MaskProposals(sam_mask[None], np.zeros(1, np.uint8), np.ones(1, np.float32))
    out = cover(sam, labels, 300)
    assert len(out) == 2
    assert out.masks[1].sum() == 300 and (labels[out.masks[1]] == 0).all()


def test_zero_sam_masks_gives_whole_superpixels(slic, photo):
    small = photo[:60, :80]  # superpixels here are far below 300 px: all kept whole anyway
    labels = slic.labels(small)
    out = cover(MaskProposals.empty(*small.shape[:2]), labels, MIN_PIECE_PIXELS)
    assert len(out) == labels.max() + 1
    assert (out.masks.sum((1, 2)) < MIN_PIECE_PIXELS).any()
    assert (out.masks.sum(0) == 1).all()
    assert (out.source == SOURCE_SLIC).all()


class _FixedMasks:
    """A mask generator with fixed output (stands in for SAM in cover-only tests)."""

    name = "fixed"

    def __init__(self, props):
        self.props = props

    def __call__(self, rgb):
        assert rgb.dtype == np.uint8 and rgb.flags.c_contiguous and rgb.shape[2] == 3
        return self.props


def test_cover_generator_converts_input_once_for_both(slic, photo):
    sam = _sam_like(*photo.shape[:2])
    gen = SamSlicCover(_FixedMasks(sam), slic)
    out = gen(photo.astype(np.float32) / 255)  # float input reaches SAM and SLIC as uint8
    assert len(out) > 3 and np.array_equal(out.masks[:3], sam.masks)


def test_build_masker_registry():
    assert build_masker("slic").name == "slic"
    assert isinstance(build_masker(MaskerSpec("slic", slic=SlicConfig(num_components=20))), SlicMasker)
    with pytest.raises(ValueError, match="unknown masker kind"):
        build_masker("watershed")
