"""One-shot retrieval evaluation, the paper's protocol.

Every annotated instance with at least one other image of its class is a query; its feature
is the instance's ground-truth mask pooled with the extractor (as a Search mask query does).
Every other database image is scored, and the images that contain the class are relevant.

  regions      an image's score is its best region's cosine similarity (the region index),
               the query expanded as the daemon's Search expands it by default (αQE over the
               best regions of the top SERVED_EXPANSION other images; searching.py)
  regions-noexp  the same without query expansion: the exact nearest regions
  whole-image  baseline: the image's mean-pooled feature grid (the same backbone), cosine,
               after the same feature normaliser as the index's (a fair comparison)

AP is computed per query, averaged per class, then over classes (mAP); precision@50 the same
way (the top 50 of the ranking, or the whole database when it is smaller).
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from regiond.index.config import IndexConfig
from regiond.index.embedded.region_index import RegionIndex
from regiond.index.normalising.corpus import normaliser_for
from regiond.index.normalising.normaliser import Normaliser
from regiond.index.region_extractor import RegionExtractor
from regiond.index.searching import SERVED_EXPANSION
from regiond.scenes.annotated_images import Collection


def average_precision(scores: np.ndarray, relevant: np.ndarray) -> float:
    """AP of ranking by descending score (ties in database order) against a boolean relevance."""
    order = np.argsort(-scores, kind="stable")
    rel = relevant[order]
    if not rel.any():
        return float("nan")
    hits = np.cumsum(rel)
    return float((hits[rel] / (np.flatnonzero(rel) + 1)).mean())


def precision_at(scores: np.ndarray, relevant: np.ndarray, k: int) -> float:
    k = min(k, len(scores))
    order = np.argsort(-scores, kind="stable")[:k]
    return float(relevant[order].mean())


@dataclass
class MethodResult:
    mean_ap: float
    mean_precision: float
    per_class: dict = field(default_factory=dict)  # class name -> {"AP", "P", "queries"}


@dataclass
class RetrievalReport:
    images: int
    regions: int
    queries: int
    precision_k: int
    methods: dict  # name -> MethodResult
    normaliser: str = ""  # the index's (RegionIndex.normaliser_note)
    expansion: int = 0  # images the "regions" queries were expanded with

    def text(self) -> str:
        names = list(self.methods)
        classes = list(next(iter(self.methods.values())).per_class)
        head = f"{'class':<20}{'queries':>8}" + "".join(
            f"{n + ' AP':>18}{n + f' P@{self.precision_k}':>20}" for n in names
        )
        lines = [
            f"{self.images} images, {self.regions} regions, {self.queries} queries",
            f"feature normaliser: {self.normaliser}",
            f"query expansion: {self.expansion} images (regions; regions-noexp: none)"
            if self.expansion
            else "query expansion: none",
            head,
        ]
        for c in classes:
            q = self.methods[names[0]].per_class[c]["queries"]
            lines.append(
                f"{c:<20}{q:>8}"
                + "".join(
                    f"{self.methods[n].per_class[c]['AP']:>18.3f}{self.methods[n].per_class[c]['P']:>20.3f}"
                    for n in names
                )
            )
        lines.append(
            f"{'mean over classes':<28}"
            + "".join(f"{self.methods[n].mean_ap:>18.3f}{self.methods[n].mean_precision:>20.3f}" for n in names)
        )
        return "\n".join(lines)

    def as_dict(self) -> dict:
        return {
            "images": self.images,
            "regions": self.regions,
            "queries": self.queries,
            "precision_k": self.precision_k,
            "normaliser": self.normaliser,
            "expansion": self.expansion,
            "methods": {
                n: {"mAP": m.mean_ap, f"P@{self.precision_k}": m.mean_precision, "per_class": m.per_class}
                for n, m in self.methods.items()
            },
        }


def evaluate_retrieval(
    collection: Collection,
    extractor: RegionExtractor,
    index_dir=None,
    queries_per_class: int | None = None,
    precision_k: int = 50,
    seed: int = 0,
    progress: bool = False,
    normaliser: Normaliser | None = None,
    expand: int = SERVED_EXPANSION,
) -> RetrievalReport:
    """Index the collection's images with `extractor` (into index_dir, or a temporary one;
    images already there are reused) and evaluate region and whole-image retrieval.
    normaliser: a new index's (default: the extractor's, corpus.normaliser_for)
    expand: query expansion of the region queries (0: none; default the daemon's)."""
    tmp = None
    if index_dir is None:
        tmp = tempfile.TemporaryDirectory(prefix="regiond-eval-")
        index_dir = tmp.name
    try:
        with RegionIndex(
            Path(index_dir),
            dim=extractor.dim,
            config=IndexConfig(checkpoint_every=10**9),
            features=extractor.features_name,
            normaliser=normaliser or (lambda: normaliser_for(extractor)),
        ) as index:
            whole = np.zeros((len(collection.images), extractor.dim), np.float32)
            queries = []  # (image position, category, feature)
            for pos, ci in enumerate(tqdm(collection.images, desc="indexing", unit="image", disable=not progress)):
                rgb = ci.load()
                if ci.image_id not in index:
                    index.add(ci.image_id, extractor.extract(rgb))
                masks = np.stack([np.ones(rgb.shape[:2], bool)] + [i.mask for i in ci.instances])
                feats = extractor.pool(rgb, masks)
                whole[pos] = feats[0]
                queries += [(pos, inst.category, feats[j + 1]) for j, inst in enumerate(ci.instances)]
            return _score(collection, index, whole, queries, queries_per_class, precision_k, seed, progress, expand)
    finally:
        if tmp is not None:
            tmp.cleanup()


def _score(
    collection, index, whole, queries, queries_per_class, precision_k, seed, progress, expand
) -> RetrievalReport:
    ids = [ci.image_id for ci in collection.images]
    has = np.zeros((len(ids), max(collection.categories) + 1), bool)
    for pos, ci in enumerate(collection.images):
        for inst in ci.instances:
            has[pos, inst.category] = True
    rng = np.random.default_rng(seed)
    by_class: dict[int, list] = {}
    for q in queries:
        by_class.setdefault(q[1], []).append(q)
    chosen = []
    for c, qs in sorted(by_class.items()):
        qs = [q for q in qs if has[:, c].sum() > 1]  # needs a relevant image besides its own
        if queries_per_class and len(qs) > queries_per_class:
            qs = [qs[i] for i in sorted(rng.choice(len(qs), queries_per_class, replace=False))]
        chosen += qs
    whole_n = index.prepare(whole)
    results = {"regions": {}, "regions-noexp": {}, "whole-image": {}} if expand else {"regions": {}, "whole-image": {}}
    for pos, c, f in tqdm(chosen, desc="querying", unit="query", disable=not progress):
        keep = np.arange(len(ids)) != pos
        rel = has[keep, c]
        scores = {"whole-image": whole_n[keep] @ index.prepare(f[None])[0]}
        for name, n in (("regions", expand), ("regions-noexp", 0)):
            if name in results:  # the expansion draws on the other images, as the ranking does
                best = index.score_images(f, expand=n, exclude_image_ids=[ids[pos]])
                scores[name] = np.array([best.get(ids[j], -np.inf) for j in np.flatnonzero(keep)], np.float32)
        for name, s in scores.items():
            results[name].setdefault(c, []).append((average_precision(s, rel), precision_at(s, rel, precision_k)))
    methods = {}
    for name, per in results.items():
        per_class = {
            collection.categories[c]: {
                "AP": float(np.mean([a for a, _ in v])),
                "P": float(np.mean([p for _, p in v])),
                "queries": len(v),
            }
            for c, v in sorted(per.items())
        }
        methods[name] = MethodResult(
            float(np.mean([v["AP"] for v in per_class.values()])) if per_class else float("nan"),
            float(np.mean([v["P"] for v in per_class.values()])) if per_class else float("nan"),
            per_class,
        )
    return RetrievalReport(
        len(ids), index.num_regions, len(chosen), precision_k, methods, index.normaliser_note(), expand
    )
