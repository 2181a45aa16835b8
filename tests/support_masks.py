"""Mask generators with every outcome a keyframe can have, for the carrying tests
(test_masks_carry.py, test_service_carry.py).

OUTCOMES names what the keyframe's generator returns:
  none          no masks (SAM on a blank wall, a dark frame, a covered lens)
  one           one mask
  border        masks only along the image border (they leave the view as the camera turns)
  small         only masks smaller than carrying keeps (every carried mask is filtered)
  sam-filtered  segment-anything's real generator (tiny random SAM) whose thresholds drop
                every mask: no mask survives
  sam-spread    the same with a spread random decoder: several masks survive
"""

from __future__ import annotations

import numpy as np

from regiond.masks.carry import MIN_CARRIED_AREA
from regiond.masks.generator import SOURCE_SAM, MaskProposals

OUTCOMES = ("none", "one", "border", "small", "sam-filtered", "sam-spread")
#: Few prompts (2×2) keep SAM quick; NMS off so the spread decoder's masks are not merged into one.
SAM_QUICK = dict(points_per_side=2, box_nms_thresh=1.0)


class Shapes:
    """A mask generator whose masks are boxes at fixed places of the image (fractions of
    its height and width): y0, y1, x0, x1, or pixels when given as ints."""

    def __init__(self, name: str, boxes: list[tuple]):
        self.name = name
        self.boxes = boxes

    def __call__(self, rgb) -> MaskProposals:
        h, w = rgb.shape[:2]
        if not self.boxes:
            return MaskProposals.empty(h, w)
        masks = np.zeros((len(self.boxes), h, w), bool)
        for m, (y0, y1, x0, x1) in zip(masks, self.boxes):
            m[_px(y0, h) : _px(y1, h), _px(x0, w) : _px(x1, w)] = True
        n = len(masks)
        return MaskProposals(masks, np.full(n, SOURCE_SAM, np.uint8), np.full(n, 0.9, np.float32))


def _px(v, size: int) -> int:
    return v if isinstance(v, int) else round(v * size)


def outcome_masker(outcome: str):
    """The keyframe generator of an outcome (a SamMasker for the sam-* ones)."""
    if outcome == "none":
        return Shapes(outcome, [])
    if outcome == "one":
        return Shapes(outcome, [(0.25, 0.75, 0.3, 0.7)])
    if outcome == "border":  # 4-pixel strips along the left and top edges
        return Shapes(outcome, [(0, 1.0, 0, 4), (0, 4, 4, 1.0)])
    if outcome == "small":  # 5×5 squares: below MIN_CARRIED_AREA once carried
        assert 25 < MIN_CARRIED_AREA
        return Shapes(outcome, [(40, 45, 60, 65), (10, 15, 10, 15)])
    from regiond.masks.sam import SamMasker, build_sam_model, generator_config, spread_random_decoder

    if outcome == "sam-filtered":  # a predicted IoU above 1: segment-anything drops every mask
        return SamMasker(build_sam_model("tiny"), generator_config("image", **SAM_QUICK, pred_iou_thresh=1.01))
    if outcome == "sam-spread":
        sam = spread_random_decoder(build_sam_model("tiny"), logit_scale=1000.0, iou_shift=1.0)
        return SamMasker(sam, generator_config("image", **SAM_QUICK))
    raise ValueError(f"unknown outcome {outcome!r}")
