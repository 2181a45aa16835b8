"""The fast generator's per-mask steps on tensors: upsampling, stability, boxes, packing, the
small-region clean-up. Each says where it matches segment_anything.utils.amg exactly."""

from __future__ import annotations

import functools

import numpy as np
import torch
import torch.nn.functional as F

#: Low-resolution logits are 1/4 of the encoder's input side (256 for 1024).
LOWRES_SCALE = 4


def cells_needed(n: int, scale: int = LOWRES_SCALE) -> int:
    """Low-resolution rows (or columns) that bilinear upsampling by `scale`
    (align_corners=False) reads for its first n outputs."""
    last = int(np.floor((n - 0.5) / scale - 0.5))
    return max(last, 0) + 2


@functools.lru_cache(maxsize=64)
def _axis_map(cells: int, resized: int, out: int) -> torch.Tensor:
    """out×cells matrix of Sam.postprocess_masks along one axis: linear interpolation ×4
    (align_corners=False), cut to the resized image, linear interpolation to the output.
    Built by running those interpolations on the identity."""
    x = torch.eye(cells)[None]  # 1×cells×cells
    x = F.interpolate(x, cells * LOWRES_SCALE, mode="linear", align_corners=False)[..., :resized]
    return F.interpolate(x, out, mode="linear", align_corners=False)[0].T.contiguous()


def upsample(low: torch.Tensor, input_size: tuple[int, int], size: tuple[int, int]) -> torch.Tensor:
    """M×R×C low-resolution logits (the first R×C cells of the grid) → M×H×W logits at the
    crop size: Sam.postprocess_masks (×4 to the padded input, cut to the resized image, resize
    to the crop) in one step. Bilinear interpolation is separable and linear, so both steps
    compose into one matrix per axis; the outputs kept read only cells inside R×C. Equal to
    the reference's values to float rounding, without its 1024-pixel intermediate."""
    r, c = low.shape[-2:]
    ay = _axis_map(r, input_size[0], size[0]).to(low.device)
    ax = _axis_map(c, input_size[1], size[1]).to(low.device)
    x = (low.reshape(-1, c) @ ax.T).view(low.shape[0], r, size[1])
    return torch.matmul(ay, x)


def stability(logits: torch.Tensor, threshold: float, offset: float) -> torch.Tensor:
    """segment_anything's calculate_stability_score (same counts, same division)."""
    from segment_anything.utils.amg import calculate_stability_score  # heavy: with the model

    return calculate_stability_score(logits, threshold, offset)


def mask_boxes(masks: torch.Tensor) -> torch.Tensor:
    """M×H×W bool → M×4 int64 XYXY with inclusive max, [0, 0, 0, 0] when empty: the values of
    segment_anything's batched_mask_to_box from two `any` reductions."""
    if masks.numel() == 0:
        return torch.zeros((masks.shape[0], 4), dtype=torch.int64)
    rows, cols = masks.any(-1), masks.any(-2)

    def first_last(a: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        n = a.shape[-1]
        idx = torch.arange(n)
        first = torch.where(a, idx, n).amin(-1)
        last = torch.where(a, idx, -1).amax(-1)
        return first, last

    y0, y1 = first_last(rows)
    x0, x1 = first_last(cols)
    boxes = torch.stack([x0, y0, x1, y1], dim=-1)
    return boxes * rows.any(-1, keepdim=True)


def lowres_boxes(
    low: torch.Tensor, threshold: float, input_size: tuple[int, int], size: tuple[int, int]
) -> torch.Tensor:
    """Boxes (crop pixels, XYXY inclusive) of the low-resolution masks (cells over the resized
    image), each cell mapped to the crop pixels it covers: an approximation for `lowres`."""
    cells = mask_boxes(low > threshold).double()
    sy, sx = size[0] / input_size[0] * LOWRES_SCALE, size[1] / input_size[1] * LOWRES_SCALE
    x0, y0 = (cells[:, 0] * sx).floor(), (cells[:, 1] * sy).floor()
    x1 = ((cells[:, 2] + 1) * sx).ceil().clamp(max=size[1]) - 1
    y1 = ((cells[:, 3] + 1) * sy).ceil().clamp(max=size[0]) - 1
    return torch.stack([x0, y0, x1, y1], dim=-1).clamp(min=0).to(torch.int64)


def pack(masks: torch.Tensor) -> list[np.ndarray]:
    """M×H×W bool → one np.packbits row per mask (1 bit per pixel while NMS decides)."""
    flat = masks.flatten(1).numpy()
    return list(np.packbits(flat, axis=1))


def unpack(row: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    return np.unpackbits(row, count=size[0] * size[1]).reshape(size).astype(bool)


def small_regions(masks: np.ndarray, min_area: int) -> tuple[np.ndarray, np.ndarray]:
    """segment-anything's postprocess_small_regions clean-up of each mask (its own
    remove_small_regions: holes, then islands, OpenCV) → (masks, unchanged flags)."""
    from segment_anything.utils.amg import remove_small_regions  # heavy: with the model

    out, unchanged = np.empty_like(masks), np.zeros(len(masks), bool)
    for i, m in enumerate(masks):
        m, changed_holes = remove_small_regions(m, min_area, mode="holes")
        m, changed_islands = remove_small_regions(m, min_area, mode="islands")
        out[i], unchanged[i] = m, not (changed_holes or changed_islands)
    return out, unchanged
