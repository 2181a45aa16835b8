"""Patch tokens as regions: the baseline the region approach is compared with.

Each backbone grid cell becomes a rectangular "region" carrying the cell's own feature, so
patch tokens flow through the same code as region tokens (labels by the >50% rule, 2D
embeddings from boxes, per-pixel labels by the averaging rule, which for disjoint cells is
the cell's own prediction). A per-patch linear classifier is then `patch-linear`, and the
patch-token transformers are the region ones fed these tokens.
"""

from __future__ import annotations

import numpy as np

from regiond.core.regionset import SOURCE_PATCH, RegionSet
from regiond.features.backbone import FeatureGrid


def cell_edges(n_cells: int, stride: int, pad_before: int, scale: float, size: int) -> np.ndarray:
    """Pixel edges (n_cells + 1) of grid cells in the original image, clipped to [0, size]."""
    edges = (np.arange(n_cells + 1) * stride - pad_before) / scale
    return np.clip(np.round(edges), 0, size).astype(np.int64)


def patch_regions(grid: FeatureGrid, height: int, width: int, meta: dict | None = None) -> RegionSet:
    """The grid cells of `grid` that overlap the height×width image, as a RegionSet."""
    d, gh, gw = grid.features.shape
    top, _, left, _ = grid.pad
    ys = cell_edges(gh, grid.stride, top, grid.scale, height)
    xs = cell_edges(gw, grid.stride, left, grid.scale, width)
    feats = grid.features.detach().float().cpu().numpy()
    masks, boxes, vecs = [], [], []
    for i in range(gh):
        for j in range(gw):
            y0, y1, x0, x1 = ys[i], ys[i + 1], xs[j], xs[j + 1]
            if y1 <= y0 or x1 <= x0:
                continue  # a cell of padding only
            m = np.zeros((height, width), bool)
            m[y0:y1, x0:x1] = True
            masks.append(m)
            boxes.append((x0, y0, x1, y1))
            vecs.append(feats[:, i, j])
    n = len(masks)
    return RegionSet.from_masks(
        np.stack(masks) if n else np.zeros((0, height, width), bool),
        boxes=np.asarray(boxes, np.float32).reshape(n, 4),
        source=np.full(n, SOURCE_PATCH, np.uint8),
        features=np.stack(vecs).astype(np.float32) if n else np.zeros((0, d), np.float32),
        meta=dict(meta or {}, tokens="patches", grid=[int(gh), int(gw)], stride=int(grid.stride)),
    )
