"""IndexImages and Search: the region-search RPCs, called by the RegionService servicer.

    search = SearchRPC(extractor, location)          # a directory, milvus://..., milvus-lite:PATH
    summary = search.index_images(request_iterator, context)
    response = search.search(request, context)       # raises InputError -> INVALID_ARGUMENT
    search.close()                                   # checkpoint on shutdown

Only this module speaks protobuf; regiond.index knows nothing of the API.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Protocol, runtime_checkable

import grpc
import numpy as np

from regiond.api.v1 import regions_pb2 as pb
from regiond.core.errors import InputError
from regiond.core.frames import Frame
from regiond.core.rle import decode as rle_decode
from regiond.index import IndexConfig, RegionExtractor, SearchFilter, Searching, open_index
from regiond.index.normalising.corpus import OnImage, normaliser_for
from regiond.index.query.queries import (
    Query,
    box_mask,
    check_mask,
    decode_mask_png,
    linear_query,
    masked_query,
    probe_from_examples,
)
from regiond.index.searching import SERVED_EXPANSION, check_expansion
from regiond.service.convert import Limits, image_frame
from regiond.service.scheduler import Cancelled
from regiond.service.wire import Unparsable, check_parsed

log = logging.getLogger(__name__)

DEFAULT_TOP_K = 10
MAX_TOP_K = 1000
MAX_REGIONS_PER_IMAGE = 100
DEFAULT_NEGATIVES = 512
MAX_NEGATIVES = 20_000
INVALID_ARGUMENT = grpc.StatusCode.INVALID_ARGUMENT.value[0]
INTERNAL = grpc.StatusCode.INTERNAL.value[0]
MATCH_NAMES = {pb.QUERY_MATCH_POOLED: "pooled", pb.QUERY_MATCH_REGIONS: "regions"}
# How a query is matched when the request leaves `match` unset. A mask: pooled, the paper's
# one-shot object retrieval. A box: its regions, which on the shared real footage finds the
# frames showing what the box shows at temporal P@5 0.85-0.89 where a pooled box gets 0.21-0.31
# (`regiond eval retrieval --video`, docs/search.md).
DEFAULT_MATCH = {"mask": pb.QUERY_MATCH_POOLED, "box": pb.QUERY_MATCH_REGIONS}


@runtime_checkable
class PerCall(Protocol):
    """An extractor that can follow one call (the daemon's servicer.QueuedExtractor)."""

    def for_call(self, alive: Callable[[], bool]) -> RegionExtractor:
        """The extractor for a call that is over once `alive()` is false: its waits stop then
        (Cancelled) and its queued work is dropped."""


def mask_to_proto(counts: np.ndarray, height: int, width: int) -> pb.Mask:
    return pb.Mask(height=height, width=width, counts=[int(c) for c in counts])


class SearchRPC:
    """The region index of one daemon, and the two RPCs over it.

    extractor  the daemon's extractor (its profile's masker, backbone and pooling index the
               images and pool query masks, so queries and index agree)
    location   where the index is (index.open_index): a directory (FAISS over SQLite), or
               milvus://HOST:PORT[/COLLECTION][?...] / milvus-lite:PATH (Milvus)
    config     index settings (None: what the index recorded, else its defaults)

    A new index gets the extractor's feature normaliser (the shipped statistics, or a fit on
    the generated corpus); an existing one keeps what it recorded. Given a call's context, an
    extractor that can follow calls (PerCall: the daemon's work queue) stops waiting when the
    call is cancelled or passes its deadline; without one, work runs to the end.
    on_fit_image follows a normaliser fit (corpus.OnImage: what it raises ends the fit).
    """

    def __init__(
        self,
        extractor: RegionExtractor,
        location: str | Path,
        config: IndexConfig | None = None,
        on_fit_image: OnImage | None = None,
    ):
        self.extractor = extractor
        self.limits = Limits(max_pixels=extractor.max_pixels)
        self.index: Searching = open_index(
            location,
            dim=extractor.dim,
            config=config,
            features=extractor.features_name,
            normaliser=lambda: normaliser_for(extractor, on_image=on_fit_image),
        )

    def close(self) -> None:
        self.index.close()

    def _image(self, msg: pb.Image, field: str) -> Frame:
        return image_frame(msg, field, self.limits)

    def _extractor(self, context: grpc.ServicerContext | None) -> RegionExtractor:
        """The extractor for this call: one that stops waiting when the call ends, where the
        extractor can follow a call (the daemon's work queue)."""
        if context is not None and isinstance(self.extractor, PerCall):
            return self.extractor.for_call(context.is_active)
        return self.extractor

    # --- IndexImages ---------------------------------------------------------------------

    def index_images(
        self, requests: Iterator[pb.IndexRequest], context: grpc.ServicerContext | None = None
    ) -> pb.IndexSummary:
        summary = pb.IndexSummary()
        extractor = self._extractor(context)
        for req in requests:
            if context is not None and not context.is_active():
                break  # cancelled: what was acknowledged so far stays
            summary.received += 1
            image_id = "" if isinstance(req, Unparsable) else req.image_id
            try:
                self._index_one(check_parsed(req), summary, extractor)
            except Cancelled:
                break  # the call ended while its image waited for the model: that image is not added
            except InputError as e:
                summary.errors.add(image_id=image_id, code=INVALID_ARGUMENT, field=e.field, message=str(e))
            except Exception as e:  # one bad image must not abort the others
                log.exception("indexing %r failed", image_id)
                summary.errors.add(image_id=image_id, code=INTERNAL, field="", message=f"{type(e).__name__}: {e}")
        summary.total_images = len(self.index)
        summary.total_regions = self.index.num_regions
        return summary

    def _index_one(self, req: pb.IndexRequest, summary: pb.IndexSummary, extractor: RegionExtractor) -> None:
        if req.remove:
            if not req.image_id:
                raise InputError("image_id", "must be a non-empty string")
            summary.removed += int(self.index.remove(req.image_id))
            return
        if not req.image_id:
            raise InputError("image_id", "must be a non-empty string")
        if not req.replace and req.image_id in self.index:
            summary.skipped += 1  # checked before extraction: re-sending a folder is cheap
            return
        regions = extractor.extract(self._image(req.image, "image"))
        res = self.index.add(req.image_id, regions, dict(req.metadata), on_exists="replace" if req.replace else "skip")
        if res.added:
            summary.indexed += 1
            summary.regions += res.regions
        else:
            summary.skipped += 1

    # --- Search ----------------------------------------------------------------------------

    def search(self, request: pb.SearchRequest, context: grpc.ServicerContext | None = None) -> pb.SearchResponse:
        t0 = time.perf_counter()
        k = request.top_k or DEFAULT_TOP_K
        if k > MAX_TOP_K:
            raise InputError("top_k", f"at most {MAX_TOP_K}, got {k}")
        if request.regions_per_image > MAX_REGIONS_PER_IMAGE:
            raise InputError("regions_per_image", f"at most {MAX_REGIONS_PER_IMAGE}, got {request.regions_per_image}")
        expand = check_expansion(request.query_expansion if request.HasField("query_expansion") else SERVED_EXPANSION)
        q = self._query(request, self._extractor(context))  # after the cheap checks: may run the backbone
        flt = request.filter
        hits = q.search(
            self.index,
            expand,
            k=k,
            regions_per_image=request.regions_per_image or 1,
            filter=SearchFilter(flt.image_id_prefix, dict(flt.metadata)),
            exclude_image_ids=list(flt.exclude_image_ids),
        )
        resp = pb.SearchResponse(searched_images=len(self.index), searched_regions=self.index.num_regions)
        for h in hits:
            hit = resp.hits.add(image_id=h.image_id, score=h.score, width=h.width, height=h.height)
            hit.metadata.update(h.metadata)
            for r in h.regions:
                rh = hit.regions.add(
                    region_id=r.region_id, score=r.score, box=pb.Box(x0=r.box[0], y0=r.box[1], x1=r.box[2], y1=r.box[3])
                )
                if request.include_masks:
                    rh.mask.CopyFrom(mask_to_proto(r.counts, h.height, h.width))
        resp.seconds = time.perf_counter() - t0
        return resp

    def _query(self, request: pb.SearchRequest, extractor: RegionExtractor) -> Query:
        """The request's query as region features (or a probe's weights)."""
        which = request.WhichOneof("query")
        if which is None:
            raise InputError("query", "one of mask, box, region, vector, linear, examples is required")
        if which == "mask":
            q = request.mask
            frame = self._image(q.image, "mask.image")
            mask = query_mask(q, (frame.height, frame.width))
            return self._masked(extractor, frame, mask, match_of(q, "mask"), "mask.match")
        if which == "box":
            frame = self._image(request.box.image, "box.image")
            b = request.box.box
            mask = box_mask([b.x0, b.y0, b.x1, b.y1], (frame.height, frame.width), "box.box")
            return self._masked(extractor, frame, mask, match_of(request.box, "box"), "box.match")
        if which == "region":
            r = request.region
            return Query(self.index.region_vector(r.image_id, r.region_id))
        if which == "vector":
            return Query(np.asarray(request.vector.values, np.float32))
        if which == "linear":
            p = linear_query(request.linear.weights, request.linear.bias, self.index.dim)
            return Query(p.weights, bias=p.bias, is_feature=False)
        if which == "examples":
            e = request.examples
            if e.negatives > MAX_NEGATIVES:
                raise InputError("examples.negatives", f"at most {MAX_NEGATIVES}, got {e.negatives}")
            probe = probe_from_examples(
                self.index, [(r.image_id, r.region_id) for r in e.positives], negatives=e.negatives or DEFAULT_NEGATIVES
            )
            return Query(probe.weights, bias=probe.bias, is_feature=False)
        raise InputError("query", f"unsupported query {which!r}")  # pragma: no cover

    @staticmethod
    def _masked(extractor: RegionExtractor, frame: Frame, mask: np.ndarray, match: int, field: str) -> Query:
        if match not in MATCH_NAMES:
            raise InputError(field, f"unknown QueryMatch {match}")
        return masked_query(extractor, frame, mask, MATCH_NAMES[match])


def match_of(q: pb.MaskQuery | pb.BoxQuery, kind: str) -> int:
    """The query's QueryMatch: as set, else the daemon's default for its kind."""
    return q.match if q.HasField("match") else DEFAULT_MATCH[kind]


def query_mask(q: pb.MaskQuery, shape: tuple[int, int]) -> np.ndarray:
    """A mask query's H×W mask (COCO RLE or PNG) for an image of `shape`; InputError("mask...")."""
    if q.HasField("mask") and q.HasField("mask_image"):
        raise InputError("mask", "give mask or mask_image, not both")
    if q.HasField("mask"):
        m = q.mask
        if (m.height, m.width) != shape:
            raise InputError("mask.mask", f"mask is {m.width}×{m.height} but the image is {shape[1]}×{shape[0]}")
        try:
            dense = rle_decode(list(m.counts), m.height, m.width)
        except ValueError as e:
            raise InputError("mask.mask", str(e)) from None
        return check_mask(dense, shape, "mask.mask")
    if q.HasField("mask_image"):
        return decode_mask_png(q.mask_image.data, shape, "mask.mask_image")
    raise InputError("mask", "needs mask (RLE) or mask_image (PNG)")
