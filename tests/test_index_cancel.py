"""IndexImages ends with its call: a client that cancels, or whose deadline passes, while its
image waits for the model (queued behind a busy worker, or for room in a full queue) frees
the handler at once; the images indexed before stay, the waiting one is never extracted (its
queued job is dropped) nor added. A real daemon (lite, one worker, room for one job); the
worker is held by a job of the daemon's own queue, as a stream's frame would hold it."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field, fields

import grpc
import numpy as np
import pytest
from support_service import image_pb, lite_extractor, running_server, sample_image, stub_for, wait_until

from regiond.api.v1 import regions_pb2 as pb
from regiond.extraction.extractor import Extractor

HELD = 120.0  # seconds the worker stays held: what waiting for the queued work would take
PROMPT = 10.0  # the handler must be gone well within that
DEADLINE = 6.0  # the deadline case's call deadline: time for the first image, then it passes


@dataclass
class RecordingExtractor(Extractor):
    """The lite extractor, recording the size of every image it extracts."""

    seen: list = field(default_factory=list)

    def extract(self, frame, *args, **kwargs):
        self.seen.append(frame.shape[:2] if isinstance(frame, np.ndarray) else (frame.height, frame.width))
        return super().extract(frame, *args, **kwargs)


def recording_extractor() -> RecordingExtractor:
    ex = lite_extractor()
    return RecordingExtractor(**{f.name: getattr(ex, f.name) for f in fields(Extractor) if f.init})


def paced(first: pb.IndexRequest, second: pb.IndexRequest, go: threading.Event, end: threading.Event):
    """`first`, then `second` once `go` is set, then an open stream until `end`."""
    yield first
    go.wait(HELD)
    yield second
    end.wait(HELD)


@pytest.mark.parametrize("waits", ["queued", "for room"])
@pytest.mark.parametrize("ending", ["cancel", "deadline"])
def test_index_images_stops_waiting_when_its_call_ends(tmp_path, ending, waits):
    ex = recording_extractor()
    a, b, c = (
        pb.IndexRequest(image_id=i, image=image_pb(sample_image(w, h, seed=s)))
        for i, w, h, s in (("a", 48, 36, 0), ("b", 64, 40, 1), ("c", 48, 36, 2))
    )
    go, end, gate = threading.Event(), threading.Event(), threading.Event()
    with running_server(ex, tmp_path, index=True, queue=1, workers=1) as srv:
        ch, stub = stub_for(srv)
        handlers = srv._handlers  # grpc's handler threads, counting handlers that have not returned
        try:
            call = stub.IndexImages.future(paced(a, b, go, end), timeout=DEADLINE if ending == "deadline" else HELD)
            assert wait_until(lambda: "a" in srv.search.index, DEADLINE - 1), "the first image was not indexed"
            srv.scheduler.submit_call(lambda: gate.wait(HELD), lambda: True)  # holds the one worker
            assert wait_until(lambda: srv.scheduler.busy == 1 and srv.scheduler.depth == 0)
            if waits == "for room":
                srv.scheduler.submit_call(lambda: None, lambda: True)  # and fills the queue
            go.set()
            if waits == "queued":
                assert wait_until(lambda: srv.scheduler.depth == 1), "b's job never reached the queue"
            else:
                time.sleep(1.0)  # b reaches the full queue
            assert handlers.busy == 1 and not call.done()
            if ending == "cancel":
                call.cancel()
                assert call.code() == grpc.StatusCode.CANCELLED
            else:
                assert call.exception(timeout=DEADLINE + 30) is not None
                assert call.code() == grpc.StatusCode.DEADLINE_EXCEEDED
            assert wait_until(lambda: handlers.busy == 0, PROMPT), "the handler still waits for the model"
            assert not gate.is_set() and srv.scheduler.busy >= 1  # the worker is still held
            assert stub.GetInfo(pb.InfoRequest(), timeout=30).index_images == 1  # a stays, b is not half-added
            gate.set()
            assert wait_until(lambda: srv.scheduler.busy == 0, 30)
            assert (40, 64) not in ex.seen  # b was never extracted: its queued job was dropped
            assert "a" in srv.search.index and "b" not in srv.search.index
            summary = stub.IndexImages(iter([c]), timeout=60)  # the daemon goes on serving
            assert summary.indexed == 1 and summary.total_images == 2
        finally:
            for e in (go, end, gate):
                e.set()
            ch.close()
