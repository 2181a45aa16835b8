"""The fast SAM mask generator against segment-anything's own SamAutomaticMaskGenerator: the
same masks (count, one-to-one IoU ≥ 0.99, predicted IoU and stability within 1e-3) on a real
photo and a synthetic frame, every preset, with and without crops; its parts against the
reference's (decoder, upsampling, boxes); the switch between them."""

from __future__ import annotations

from dataclasses import asdict

import numpy as np
import pytest
import torch
from PIL import Image
from segment_anything import SamAutomaticMaskGenerator
from segment_anything.utils.amg import batched_mask_to_box

from regiond.masks import MaskerSpec, build_masker
from regiond.masks.compare import match_masks
from regiond.masks.sam import (
    SamMasker,
    build_sam_model,
    generator_config,
    lowered_thresholds,
    spread_random_decoder,
)
from regiond.masks.sam_decoder import PromptDecoder
from regiond.masks.sam_fast import FastMaskGenerator, FastOptions
from regiond.masks.sam_steps import cells_needed, mask_boxes, upsample
from regiond.scenes.synthetic import render_clip


def lowered(preset: str, crops: bool) -> dict:
    """The preset with thresholds lowered for a random model: at least 30 masks survive."""
    return lowered_thresholds(crops)


@pytest.fixture(scope="module")
def sam():
    return spread_random_decoder(build_sam_model("tiny", seed=0))


@pytest.fixture(scope="module")
def photo(sevenscenes_dir) -> np.ndarray:
    """A real Kinect frame of 7-Scenes, 160×120."""
    rgb = np.asarray(Image.open(sevenscenes_dir / "frame-000150.color.png").convert("RGB"))
    return np.ascontiguousarray(rgb[::4, ::4])


@pytest.fixture(scope="module")
def synthetic() -> np.ndarray:
    """A synthetic activity-clip frame, 160×120."""
    return render_clip(3, seed=0, frames=2).frames[0]


def assert_same_masks(reference: list[dict], fast: list[dict], at_least: int = 30):
    assert len(reference) >= at_least, f"only {len(reference)} reference masks: the check would be weak"
    a = np.stack([r["segmentation"] for r in reference])
    b = np.stack([r["segmentation"] for r in fast]) if fast else np.zeros((0, *a.shape[1:]), bool)
    m = match_masks(a, b)
    assert m.ok(0.99), m.line()
    for i, j in m.pairs:
        for key in ("predicted_iou", "stability_score"):
            assert abs(reference[i][key] - fast[j][key]) <= 1e-3, (key, reference[i][key], fast[j][key])
        assert reference[i]["crop_box"] == fast[j]["crop_box"]
        assert reference[i]["point_coords"] == fast[j]["point_coords"]


CASES = [
    ("photo", "image", False),
    ("photo", "scene", False),
    ("photo", "activity", False),
    ("synthetic", "image", False),
    ("synthetic", "scene", False),
    ("synthetic", "activity", False),
    ("photo", "image", True),
    ("synthetic", "scene", True),
    ("photo", "activity", True),
]


@pytest.mark.parametrize("image,preset,crops", CASES)
def test_same_masks_as_segment_anything(sam, image, preset, crops, request):
    rgb = request.getfixturevalue(image)
    config = generator_config(preset, **lowered(preset, crops))
    reference = SamAutomaticMaskGenerator(sam, **asdict(config)).generate(rgb)
    fast = FastMaskGenerator(sam, config).generate(rgb)
    assert_same_masks(reference, fast)
    # the records carry what the reference's carry
    assert set(fast[0]) == set(reference[0])
    assert all(r["area"] == int(r["segmentation"].sum()) for r in fast)


def test_same_single_mask_with_box_nms_on(sam, photo):
    """With the paper's NMS the random model's whole-frame masks collapse to one: the same one."""
    config = generator_config("scene", points_per_side=4, pred_iou_thresh=0.02, stability_score_thresh=0.15)
    reference = SamAutomaticMaskGenerator(sam, **asdict(config)).generate(photo)
    fast = FastMaskGenerator(sam, config).generate(photo)
    assert len(reference) == len(fast) >= 1
    assert_same_masks(reference, fast, at_least=1)
    assert reference[0]["bbox"] == fast[0]["bbox"]


def test_decoder_matches_the_stock_decoder(sam):
    torch.manual_seed(0)
    embedding = torch.randn(1, 256, 64, 64)
    points = torch.rand(6, 1, 2, dtype=torch.float64) * 1024
    labels = torch.ones(6, 1, dtype=torch.int)
    with torch.inference_mode():
        sparse, dense = sam.prompt_encoder(points=(points, labels), boxes=None, masks=None)
        masks, iou = sam.mask_decoder(embedding, sam.prompt_encoder.get_dense_pe(), sparse, dense, True)
        dec = PromptDecoder(sam, embedding)
        hs, keys = dec.transformer(sparse)
        ours = dec.masks(hs, keys, 256, 256)
        cut = dec.masks(hs, keys, 100, 37)  # only the cells asked for (whole 4×4 blocks)
        ours_iou = dec.iou(hs)
    assert torch.allclose(ours_iou, iou, atol=1e-5)
    scale = masks.abs().max()
    assert (ours - masks).abs().max() <= 1e-5 * scale
    assert cut.shape[-2:] == (100, 40) and torch.equal(cut, ours[..., :100, :40])


@pytest.mark.parametrize(
    "input_size,size",
    [((768, 1024), (480, 640)), ((1024, 683), (1500, 1000)), ((1024, 1024), (64, 64)), ((576, 1024), (135, 240))],
)
def test_upsampling_is_sams_postprocessing(sam, input_size, size):
    torch.manual_seed(1)
    low = torch.randn(3, 256, 256)
    reference = sam.postprocess_masks(low[None], input_size, size)[0]
    rows, cols = cells_needed(input_size[0]), cells_needed(input_size[1])
    ours = upsample(low[:, :rows, :cols], input_size, size)
    assert ours.shape == reference.shape
    assert (ours - reference).abs().max() < 1e-5
    # the cells beyond rows/cols do not matter
    assert torch.allclose(upsample(low[:, : rows + 7, : cols + 5], input_size, size), ours, atol=1e-5)


def test_boxes_are_segment_anythings():
    rng = np.random.default_rng(0)
    masks = torch.from_numpy(rng.random((20, 30, 40)) > 0.995)
    masks[3] = False
    masks[4, 5:9, 7] = True
    assert torch.equal(mask_boxes(masks), batched_mask_to_box(masks))


def test_output_modes_match(sam, photo):
    config = generator_config("scene", **lowered("scene", False))
    fast = FastMaskGenerator(sam, config)
    binary = fast.generate(photo)
    fast.output_mode = "uncompressed_rle"
    rles = fast.generate(photo)
    from segment_anything.utils.amg import rle_to_mask

    assert len(rles) == len(binary)
    for r, b in zip(rles, binary):
        assert np.array_equal(rle_to_mask(r["segmentation"]), b["segmentation"])


def test_lowres_option_is_close_and_marked_as_a_deviation(sam, photo):
    """Stability and NMS on the 256×256 logits: most masks are the reference's, and what it
    returns is always a full-resolution upsampled mask of a candidate."""
    config = generator_config("scene", **lowered("scene", False))
    reference = SamAutomaticMaskGenerator(sam, **asdict(config)).generate(photo)
    approx = FastMaskGenerator(sam, config, FastOptions(stability="lowres")).generate(photo)
    a = np.stack([r["segmentation"] for r in reference])
    b = np.stack([r["segmentation"] for r in approx])
    m = match_masks(a, b)
    assert abs(len(approx) - len(reference)) <= 0.5 * len(reference)
    assert (m.iou >= 0.99).mean() >= 0.5


def test_options_are_checked():
    with pytest.raises(ValueError, match="stability"):
        FastOptions(stability="half")
    with pytest.raises(ValueError, match="encoder"):
        FastOptions(encoder="int4")
    with pytest.raises(ValueError, match="threads"):
        FastOptions(threads=-1)
    with pytest.raises(ValueError, match="unknown SAM generator"):
        MaskerSpec("sam", "tiny", sam_generator="fastest")


def test_threads_and_batch_do_not_change_masks(sam, photo):
    """One thread after the embedding restores torch's thread count and gives the masks and
    scores of the default (torch's own threads, batches of 8). Other thread counts and batch
    sizes add in another order, so a logit at the threshold may round the other way: the same
    masks one to one, up to such pixels, not bit for bit."""
    import torch

    config = generator_config("scene", **lowered("scene", False))
    before = torch.get_num_threads()
    default = FastMaskGenerator(sam, config).generate_masks(photo)
    other = FastMaskGenerator(sam, config, FastOptions(threads=1, batch=64)).generate_masks(photo)
    assert torch.get_num_threads() == before
    assert len(default.masks) >= 30 and len(other.masks) == len(default.masks)
    m = match_masks(default.masks, other.masks)
    assert m.ok(0.999)
    assert sum((default.masks[i] != other.masks[j]).sum() for i, j in m.pairs) <= 10 * len(m.pairs)
    assert np.allclose(default.iou, other.iou, atol=1e-5) and np.allclose(default.stability, other.stability, atol=1e-3)


def test_the_switch(sam, photo):
    """Fast by default; the reference one switch away; both give the same proposals."""
    overrides = lowered("scene", False)
    fast = build_masker(MaskerSpec("sam", "tiny", preset="scene", sam_overrides=overrides))
    ref = build_masker(MaskerSpec("sam", "tiny", preset="scene", sam_overrides=overrides, sam_generator="reference"))
    assert isinstance(fast.generator, FastMaskGenerator)
    assert isinstance(ref.generator, SamAutomaticMaskGenerator)
    spread_random_decoder(fast.model)
    spread_random_decoder(ref.model)
    a, b = ref(photo), fast(photo)
    m = match_masks(a.masks, b.masks)
    assert m.ok(0.99) and np.allclose(a.scores[m.pairs[:, 0]], b.scores[m.pairs[:, 1]], atol=1e-3)
    assert isinstance(SamMasker(sam, generator="reference").generator, SamAutomaticMaskGenerator)
