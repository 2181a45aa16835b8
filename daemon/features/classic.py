"""The `classic` backbone: colour and gradient descriptors per 14-pixel cell, no weights.

Same grid convention as DINOv2 (zero padding to a multiple of 14, floor of the padding on
top/left), so masks, pooling and the patch-token baseline treat both backbones alike.
Per cell, over the cell's image pixels only (padding never counts):

  3  CIELAB mean (L/100, a/128, b/128)
  3  CIELAB standard deviation (same scaling)
  9  gradient-orientation histogram: unsigned orientation, 9 bins of 20°, each pixel's
     gradient magnitude split linearly between its two nearest bins, L2-normalised with a
     floor so flat cells stay near zero instead of amplifying noise
  1  gradient energy: log(1 + mean magnitude), the texture strength the histogram lost
  16 colour histogram: fraction of the cell's pixels in each cell of a 4×4 grid over (a, b)

Cell sums are cv2 area resizes of the zero-padded image, histograms np.bincounts over per-pixel
(cell, bin) keys: vectorised numpy/cv2, no loops over cells. tests/test_core_partition.py holds the
features of fixed photos that the bundled heads were trained on.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np
import torch

from regiond.core.frames import as_rgb8
from regiond.features.backbone import FeatureGrid, cap_long_side, grid_layout, padding

ORIENTATION_BINS = 9
AB_BINS = 4  # per axis of the (a, b) colour histogram
AB_RANGE = 80.0  # |a|, |b| beyond this land in the outer histogram bins
HOG_FLOOR = 1.0  # L2 floor for the orientation histogram (sum of Sobel magnitudes)

CLASSIC_DIM = 3 + 3 + ORIENTATION_BINS + 1 + AB_BINS * AB_BINS


_LAB_SCALE = np.array([1 / 255, 1 / 128, 1 / 128], np.float32)  # 8-bit Lab → L/100, a/128, b/128
_LAB_SHIFT = np.array([0, 1, 1], np.float32)
# Raw orientation bins ⌊t⌋ for t = angle/20° + 1/2 in [0.5, 18.5]: 0..18, and 19 for the
# upper neighbour of 18.
_RAW_BINS = 2 * ORIENTATION_BINS + 2
_AB_BIN = np.clip(((np.arange(256) - 128 + AB_RANGE) * (AB_BINS / (2 * AB_RANGE))).astype(np.int64), 0, AB_BINS - 1)
# cv2.LUT tables, one per channel (a one-channel LUT is several times faster than a
# three-channel one): a → its bin · AB_BINS, b → its bin, so their sum is the 2D bin.
_A_LUT, _B_LUT = (_AB_BIN * AB_BINS).astype(np.uint8), _AB_BIN.astype(np.uint8)


def cell_sums(padded: np.ndarray, stride: int) -> np.ndarray:
    """Per-cell sums of a zero-padded H×W(×C) float32 image (sides multiples of stride): gh×gw(×C).

    cv2's area resize by an integer factor is the exact block mean, and fast."""
    size = (padded.shape[1] // stride, padded.shape[0] // stride)
    return cv2.resize(padded, size, interpolation=cv2.INTER_AREA) * float(stride * stride)


def _padded(image: np.ndarray, pad: tuple[int, int, int, int]) -> np.ndarray:
    top, bottom, left, right = pad
    return cv2.copyMakeBorder(image, top, bottom, left, right, cv2.BORDER_CONSTANT, value=0)


@lru_cache(maxsize=8)
def _cell_counts(h: int, w: int, pad: tuple[int, int, int, int], stride: int) -> np.ndarray:
    """gh×gw×1 number of image (non-padding) pixels per cell; cached, read-only."""
    top, bottom, left, right = pad

    def per_axis(n, before, after):
        inside = np.ones(n + before + after, np.float32)
        inside[:before], inside[before + n :] = 0, 0
        return inside.reshape(-1, stride).sum(1)

    n = np.outer(per_axis(h, top, bottom), per_axis(w, left, right))[:, :, None]
    n.flags.writeable = False
    return n


@lru_cache(maxsize=8)
def _cell_keys(h: int, w: int, pad: tuple[int, int, int, int], stride: int, bins: int) -> np.ndarray:
    """Per image pixel (flattened): its grid cell's index (row-major) times `bins`, the base
    of its (cell, bin) histogram key. Cached per image geometry (video frames share it)."""
    top, _, left, right = pad
    gw = (w + left + right) // stride
    rows = (np.arange(h, dtype=np.int64) + top) // stride
    cols = (np.arange(w, dtype=np.int64) + left) // stride
    keys = ((rows[:, None] * gw + cols[None, :]) * bins).ravel()
    keys.flags.writeable = False
    return keys


def _orientation_histogram(ang: np.ndarray, mag: np.ndarray, cell_keys: np.ndarray, cells: int) -> np.ndarray:
    """cells×9 magnitude-weighted orientation histograms, each pixel's magnitude split
    linearly between the two bins nearest its angle (degrees in [0, 360), unsigned).

    With t = angle/20° + 1/2, a pixel puts mag·(1 − frac t) in raw bin ⌊t⌋ and mag·frac t
    in the next. Per (cell, ⌊t⌋) key, Σ mag·frac t = Σ mag·t − ⌊t⌋·Σ mag (⌊t⌋ is the key's),
    so two bincounts over one key (of mag and of mag·t, exact in float64) give both halves;
    raw bins then fold onto the 9."""
    t = ang * np.float32(ORIENTATION_BINS / 180.0)
    t += np.float32(0.5)  # bin centres at 10°, 30°, ...
    keys = t.astype(np.int64)  # ⌊t⌋ (t > 0) ...
    keys += cell_keys  # ... as a (cell, raw bin) key
    weight = mag.astype(np.float64)  # what bincount would convert mag to, made once
    total = np.bincount(keys, weight, cells * _RAW_BINS).reshape(cells, _RAW_BINS)
    weight *= t  # mag·t, exact in float64
    moment = np.bincount(keys, weight, cells * _RAW_BINS).reshape(cells, _RAW_BINS)
    upper = moment - np.arange(_RAW_BINS) * total  # Σ mag·frac t, into the next raw bin
    raw = total - upper
    raw[:, 1:] += upper[:, :-1]
    # Raw bin r is orientation bin (r − 1) mod 9: r = 1..9 and 10..18 are bins 0..8, r = 0 is
    # bin 8 and r = 19 bin 0.
    hist = raw[:, 1:10] + raw[:, 10:19]
    hist[:, -1] += raw[:, 0]
    hist[:, 0] += raw[:, 19]
    return hist


@dataclass
class ClassicBackbone:
    """Colour + gradient descriptors on the 14-pixel grid (see the module docstring).

    max_side: cap on the image's long side (area resize first); None keeps native size.
    device:   where the returned feature tensor lives (computation is numpy on the CPU).
    """

    max_side: int | None = None
    device: str = "cpu"
    name: str = "classic"
    dim: int = CLASSIC_DIM
    stride: int = 14

    def layout(self, height: int, width: int) -> FeatureGrid:
        """The grid's geometry for a height×width image, without computing it (see base.grid_layout)."""
        return grid_layout(height, width, self.stride, self.max_side, self.device)

    def __call__(self, rgb: np.ndarray) -> FeatureGrid:
        rgb = as_rgb8(rgb)
        original = rgb.shape[:2]
        rgb, scale = cap_long_side(rgb, self.max_side)
        h, w = rgb.shape[:2]
        pad = top, bottom, left, right = padding(h, w, self.stride)
        gh, gw = (h + top + bottom) // self.stride, (w + left + right) // self.stride
        # 8-bit CIELAB (L·255/100, a+128, b+128): a third of the float conversion's cost, and
        # its quantisation is far below what the descriptor resolves.
        lab8 = cv2.cvtColor(rgb, cv2.COLOR_RGB2Lab)
        gray = np.multiply(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY), np.float32(1 / 255), dtype=np.float32)
        gx = cv2.Sobel(gray, cv2.CV_32F, 1, 0, ksize=3)  # reflected border: no fake edges at the image edge
        gy = cv2.Sobel(gray, cv2.CV_32F, 0, 1, ksize=3)
        mag, ang = cv2.cartToPolar(gx, gy, angleInDegrees=True)  # ang in [0, 360)

        # Cell sums over image pixels only (padding is zero and not counted). Lab is padded
        # as bytes, then made float once: Lab² of the padded image is padded already.
        n = _cell_counts(h, w, pad, self.stride)  # ≥ 1: padding < one cell per side
        lab = _padded(lab8, pad).astype(np.float32)
        mean8 = cell_sums(lab, self.stride) / n
        var8 = np.maximum(cell_sums(cv2.multiply(lab, lab), self.stride) / n - mean8 * mean8, 0.0)
        mean = mean8 * _LAB_SCALE - _LAB_SHIFT
        std = np.sqrt(var8) * _LAB_SCALE
        energy = np.log1p(cell_sums(_padded(mag, pad), self.stride)[:, :, None] / n)

        # Histograms: bincounts over (cell, bin) keys.
        hist_o = _orientation_histogram(
            ang.ravel(), mag.ravel(), _cell_keys(h, w, pad, self.stride, _RAW_BINS), gh * gw
        )
        hist_o = hist_o.reshape(gh, gw, ORIENTATION_BINS)
        hist_o /= np.sqrt((hist_o * hist_o).sum(-1, keepdims=True) + HOG_FLOOR**2)

        _, a8, b8 = cv2.split(lab8)
        ab_bin = cv2.add(cv2.LUT(a8, _A_LUT), cv2.LUT(b8, _B_LUT)).ravel()
        keys = _cell_keys(h, w, pad, self.stride, AB_BINS**2) + ab_bin
        ab_frac = np.bincount(keys, minlength=gh * gw * AB_BINS**2).reshape(gh, gw, -1) / n
        feats = np.concatenate([mean, std, hist_o, energy, ab_frac], axis=-1).astype(np.float32)  # gh×gw×D
        tensor = torch.from_numpy(np.ascontiguousarray(feats.transpose(2, 0, 1))).to(self.device)
        return FeatureGrid(
            tensor, self.stride, pad, (h, w), scale, original_size=tuple(original) if scale != 1.0 else None
        )
