"""The ground-truth masker: the true instance masks of synthetic data standing in for SAM's.

FOR EVALUATION ONLY. It reads the instance map that comes with a synthetic frame
(`frame.meta["instances"]`: synthetic rooms' `instance-filt/`, synthetic clips' instance maps),
so it measures what carrying masks across frames keeps of a perfect mask generator's output
without SAM weights (bench/reuse.py). It cannot run on real images and says so.
"""

from __future__ import annotations

import numpy as np

from regiond.core.errors import InputError
from regiond.core.frames import Frame
from regiond.masks.generator import SOURCE_SAM, MaskProposals


class GroundTruthMasker:
    """One mask per instance id > 0 of the frame's instance map (at least `min_area` pixels),
    in id order, source SAM (it stands in for SAM), score 1."""

    name = "ground-truth (evaluation only)"

    def __init__(self, min_area: int = 1):
        self.min_area = int(min_area)

    def from_frame(self, frame: Frame) -> MaskProposals:
        inst = frame.meta.get("instances")
        if inst is None:
            raise InputError(
                "frame",
                "the ground-truth masker (evaluation only) needs a synthetic frame "
                "with an instance map (meta['instances'])",
            )
        inst = np.asarray(inst)
        ids, counts = np.unique(inst[inst > 0], return_counts=True)
        ids = ids[counts >= self.min_area]
        masks = inst[None, :, :] == ids[:, None, None]
        return MaskProposals(masks, np.full(len(ids), SOURCE_SAM, np.uint8), np.ones(len(ids), np.float32))

    def __call__(self, rgb: np.ndarray) -> MaskProposals:
        raise InputError(
            "masker",
            "the ground-truth masker is for evaluation on synthetic frames only: "
            "it needs the frame's instance map, not just its pixels",
        )
