"""bench/amg.py's workload: the calibration leaves exactly the asked number of surviving masks
(small grid, tiny random SAM; no timing asserted), and its critical scales are where
segment-anything's own stability score crosses the threshold."""

from __future__ import annotations

import importlib.util
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from segment_anything import SamAutomaticMaskGenerator
from segment_anything.utils.amg import calculate_stability_score

from regiond.masks.compare import match_masks
from regiond.masks.sam import build_sam_model, generator_config, spread_random_decoder
from regiond.masks.sam_fast import FastMaskGenerator

BENCH = Path(__file__).resolve().parents[1] / "bench" / "amg.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_amg", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_critical_scales_are_where_stability_crosses(bench):
    torch.manual_seed(0)
    logits = torch.randn(6, 40, 50) * torch.linspace(0.1, 3, 6)[:, None, None] + 0.3
    logits[5] = -1.0  # empty mask: never stable
    s = bench.critical_scales(logits, offset=1.0, thresh=0.9)
    assert torch.isinf(s[5]) and torch.isfinite(s[:5]).all()
    above = calculate_stability_score(logits[:5] * (s[:5, None, None] * 1.001).float(), 0.0, 1.0)
    below = calculate_stability_score(logits[:5] * (s[:5, None, None] * 0.999).float(), 0.0, 1.0)
    assert (above >= 0.9).all() and (below < 0.9).all()


def test_calibration_leaves_the_asked_survivors(bench, sevenscenes_dir):
    rgb = np.ascontiguousarray(
        np.asarray(Image.open(sevenscenes_dir / "frame-000150.color.png").convert("RGB"))[::4, ::4]
    )
    sam = spread_random_decoder(build_sam_model("tiny", seed=0))
    config = generator_config("scene", points_per_side=4, box_nms_thresh=1.0, crop_nms_thresh=1.0)
    fast = FastMaskGenerator(sam, config)
    shift, scale, margin = bench.calibrate(sam, fast, rgb, config, iou_pass=0.35, survivors=12)
    assert margin > 0
    ours = fast.generate_masks(rgb)
    reference = SamAutomaticMaskGenerator(sam, **asdict(config)).generate(rgb)
    assert len(ours.masks) == len(reference) == 12
    assert match_masks(np.stack([r["segmentation"] for r in reference]), ours.masks).ok(0.99)
    with pytest.raises(ValueError, match="fewer survivors"):
        bench.calibrate(sam, fast, rgb, config, iou_pass=0.35, survivors=48)
