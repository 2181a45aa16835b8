"""Retrieval on real footage without annotations: nearby frames show the same things.

Every `every`-th frame of a video (or a folder of frames) is indexed; a central box of every
`query_every`-th frame is the query, and the top-k other frames count as correct when they
lie within ±window frames of it (frames that close show the same objects). Both ways of
matching a box are scored on one index, each query searched as the daemon's Search runs it
(queries.Query.search), query expansion included:

  regions  the query frame's regions inside the box, each matched on its own; a frame scores
           the weighted mean of their best matches (QUERY_MATCH_REGIONS). Not expanded (a set),
           unless the box holds a single region
  pooled   one feature pooled over the box; a frame scores its best region (QUERY_MATCH_POOLED),
           the feature expanded with the best regions of its top `expand` frames (αQE)

temporal P@k is the mean over queries of the correct share of the top k. The ceiling is
what a perfect ranking would get (fewer than k indexed frames within the window when
`every` is large).
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from regiond.core.frames import Frame
from regiond.index.config import IndexConfig
from regiond.index.embedded.region_index import RegionIndex
from regiond.index.normalising.corpus import normaliser_for
from regiond.index.normalising.normaliser import Normaliser
from regiond.index.query.queries import MATCHES, box_mask, masked_query
from regiond.index.region_extractor import RegionExtractor
from regiond.index.searching import SERVED_EXPANSION, check_expansion


@dataclass
class TemporalReport:
    source: str
    frames: int
    indexed: int
    every: int
    regions: int
    query_every: int
    window: int
    k: int
    box: float
    ceiling: float
    normaliser: str
    precision: dict = field(default_factory=dict)  # match -> temporal P@k
    expansion: int = 0  # the images a single-feature query is expanded with (Query.search)
    rankings: dict = field(default_factory=dict, repr=False)  # match -> {query frame: [(image id, score)] top k}

    def text(self, headline: str = "regions") -> str:
        lines = [
            f"{self.source or 'frames'}: {self.frames} frames, {self.indexed} indexed (every {self.every}), "
            f"{self.regions} regions; {self.queries} queries: a central box ({self.box:g} of each side) of "
            f"every {self.query_every}th frame; correct: within ±{self.window} frames",
            f"feature normaliser: {self.normaliser}",
            f"query expansion: {self.expansion} images (as the daemon's Search: a single feature, "
            f"so pooled boxes and boxes holding one region)"
            if self.expansion
            else "query expansion: none",
            f"{'box matched by':<16}temporal P@{self.k}",
        ]
        lines += [f"{m:<16}{p:.3f}" for m, p in self.precision.items()]
        lines.append(
            f"temporal P@{self.k} = {self.precision[headline]:.3f}   (--match {headline}; ceiling {self.ceiling:.3f})"
        )
        return "\n".join(lines)

    @property
    def queries(self) -> int:
        return len(range(0, self.frames, self.query_every))

    def as_dict(self) -> dict:
        return {
            k: getattr(self, k)
            for k in (
                "source",
                "frames",
                "indexed",
                "every",
                "regions",
                "queries",
                "query_every",
                "window",
                "k",
                "box",
                "ceiling",
                "normaliser",
                "precision",
                "expansion",
            )
        }


def central_box(h: int, w: int, fraction: float) -> list[float]:
    """[x0, y0, x1, y1] of the centred box covering `fraction` of each side."""
    m = (1 - fraction) / 2
    return [m * w, m * h, (1 - m) * w, (1 - m) * h]


def evaluate_temporal(
    frames: Iterable[Frame | np.ndarray],
    extractor: RegionExtractor,
    source: str = "",
    every: int = 1,
    query_every: int = 10,
    window: int = 10,
    k: int = 5,
    box: float = 0.5,
    normaliser: Normaliser | None = None,
    progress: bool = False,
    expand: int = SERVED_EXPANSION,
) -> TemporalReport:
    """Index the frames (in a temporary index with `normaliser`, default the extractor's) and
    score box queries by how many of their top k hits are nearby frames. expand: the query
    expansion of the daemon's Search (default: what it does with a request that leaves it unset)."""
    if every < 1 or query_every < 1 or k < 1 or window < 0 or not 0 < box <= 1:
        raise ValueError("every, query_every and k must be ≥ 1, window ≥ 0, box in (0, 1]")
    check_expansion(expand)  # before the frames are indexed
    with (
        tempfile.TemporaryDirectory(prefix="regiond-temporal-") as tmp,
        RegionIndex(
            Path(tmp),
            dim=extractor.dim,
            config=IndexConfig(checkpoint_every=10**9),
            features=extractor.features_name,
            normaliser=normaliser or (lambda: normaliser_for(extractor)),
        ) as index,
    ):
        queries, indexed, n = [], [], 0
        for i, frame in enumerate(tqdm(frames, desc="indexing", unit="frame", disable=not progress)):
            n = i + 1
            if i % every and i % query_every:
                continue
            regions = extractor.extract(frame)
            if i % every == 0:
                index.add(frame_id(i), regions, {"frame": str(i)})
                indexed.append(i)
            if i % query_every == 0:
                mask = box_mask(central_box(regions.height, regions.width, box), (regions.height, regions.width))
                queries.append((i, {m: masked_query(extractor, frame, mask, m, regions) for m in MATCHES}))
        near = np.asarray(indexed)
        precision, rankings = {}, {}
        for match in MATCHES:
            shares, rankings[match] = [], {}
            for i, q in queries:
                hits = q[match].search(index, expand, k=k, regions_per_image=1, exclude_image_ids=[frame_id(i)])
                rankings[match][i] = [(h.image_id, h.score) for h in hits]
                shares.append(sum(abs(int(h.metadata["frame"]) - i) <= window for h in hits) / k)
            precision[match] = float(np.mean(shares)) if shares else float("nan")
        ceiling = (
            float(np.mean([min(k, int(np.sum((np.abs(near - i) <= window) & (near != i)))) / k for i, _ in queries]))
            if queries
            else float("nan")
        )
        return TemporalReport(
            source,
            n,
            len(indexed),
            every,
            index.num_regions,
            query_every,
            window,
            k,
            box,
            ceiling,
            index.normaliser_note(),
            precision,
            expand,
            rankings,
        )


def frame_id(i: int) -> str:
    return f"frame{i:06d}"
