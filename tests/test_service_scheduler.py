"""The work queue: batching of queued frames, dropping work of ended calls, bounded waits."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import numpy as np
import pytest
from support_service import lite_extractor, sample_image, wait_until

from regiond.core.errors import InputError
from regiond.extraction.extractor import Extractor
from regiond.service.scheduler import Cancelled, QueueFull, Scheduler, ShuttingDown


@dataclass
class BatchingExtractor(Extractor):
    """The lite extractor with a batch entry point, recording the batch sizes it was given."""

    batches: list = field(default_factory=list)

    @property
    def can_batch(self) -> bool:  # lite's backbone has no batch pass; claim one to test the queue
        return True

    def extract_batch(self, frames):
        self.batches.append(len(frames))
        return [self.extract(f) for f in frames]


def _batching():
    ex = lite_extractor()
    return BatchingExtractor(masker=ex.masker, backbone=ex.backbone, profile=ex.profile)


def test_queued_frames_are_batched():
    ex = _batching()
    sched = Scheduler(ex, capacity=16, workers=1, max_batch=4)
    gate = threading.Event()
    try:
        sched.submit_call(lambda: gate.wait(30), lambda: True)  # keeps the worker busy
        futs = [sched.submit_extract(sample_image(32, 24, seed=i), lambda: True) for i in range(6)]
        gate.set()
        results = [f.result(60).value for f in futs]
    finally:
        sched.close(10)
    assert all(len(r) > 0 for r in results)
    assert ex.batches == [4, 2]  # the queued frames went through together, max_batch at a time


def test_bad_frame_in_a_batch_fails_alone():
    ex = _batching()
    sched = Scheduler(ex, capacity=16, workers=1, max_batch=8)
    try:
        block = sched.submit_call(lambda: time.sleep(0.5), lambda: True)
        good = sched.submit_extract(sample_image(32, 24), lambda: True)
        bad = sched.submit_extract(np.zeros((24, 32, 5), np.uint8), lambda: True)  # five channels
        good2 = sched.submit_extract(sample_image(32, 24, seed=3), lambda: True)
        block.result(30)
        assert len(good.result(30).value) > 0 and len(good2.result(30).value) > 0
        with pytest.raises(InputError) as e:
            bad.result(30)
        assert e.value.field == "image"
    finally:
        sched.close(10)


def test_jobs_of_ended_calls_are_dropped():
    ran = []
    sched = Scheduler(lite_extractor(), capacity=8, workers=1)
    try:
        block = sched.submit_call(lambda: time.sleep(0.3), lambda: True)
        alive = threading.Event()
        alive.set()
        dead = sched.submit_call(lambda: ran.append("dead"), alive.is_set)
        live = sched.submit_call(lambda: ran.append("live"), lambda: True)
        alive.clear()  # the call ends while its job waits in the queue
        block.result(10)
        assert live.result(10).value is None
        with pytest.raises(Cancelled):
            dead.result(10)
        assert ran == ["live"]
    finally:
        sched.close(10)


def test_full_queue_waits_then_gives_up_and_closed_queue_refuses():
    sched = Scheduler(lite_extractor(), capacity=1, workers=1)
    release = threading.Event()
    try:
        sched.submit_call(lambda: release.wait(10), lambda: True)  # running
        assert wait_until(lambda: sched.busy == 1 and sched.depth == 0)
        sched.submit_call(lambda: None, lambda: True)  # queued: now full
        t0 = time.monotonic()
        with pytest.raises(QueueFull):
            sched.submit_call(lambda: None, lambda: True, wait=0.2)
        assert 0.15 <= time.monotonic() - t0 < 5
        # a blocking submit gives up as soon as its call ends
        alive = threading.Event()
        alive.set()
        threading.Timer(0.2, alive.clear).start()
        with pytest.raises(Cancelled):
            sched.submit_call(lambda: None, alive.is_set)
    finally:
        release.set()
        sched.close(10)
    with pytest.raises(ShuttingDown):
        sched.submit_call(lambda: None, lambda: True)


def test_lanes_are_served_in_turn_not_first_come_first_served():
    sched = Scheduler(lite_extractor(), capacity=16, workers=1)
    release = threading.Event()
    ran = []
    try:
        sched.submit_call(lambda: release.wait(10), lambda: True)
        assert wait_until(lambda: sched.busy == 1 and sched.depth == 0)
        futs = [sched.submit_call(lambda k=k: ran.append(f"a{k}"), lambda: True, lane="a") for k in range(5)]
        futs += [sched.submit_call(lambda k=k: ran.append(f"b{k}"), lambda: True, lane="b") for k in range(2)]
        futs.append(sched.submit_call(lambda: ran.append("unary"), lambda: True))  # a lane of its own
        release.set()
        for f in futs:
            f.result(10)
    finally:
        release.set()
        sched.close(10)
    assert ran == ["a0", "b0", "unary", "a1", "b1", "a2", "a3", "a4"]


def test_a_newest_frame_drops_its_lanes_queued_frames_only():
    from regiond.service.scheduler import Overtaken

    sched = Scheduler(lite_extractor(), capacity=16, workers=1)
    release = threading.Event()
    try:
        sched.submit_call(lambda: release.wait(10), lambda: True)
        assert wait_until(lambda: sched.busy == 1 and sched.depth == 0)
        img = sample_image(32, 24)
        old = [sched.submit_extract(img, lambda: True, lane="live", newest=True) for _ in range(3)]
        call = sched.submit_call(lambda: "head", lambda: True, lane="live")  # a head call stays
        other = sched.submit_extract(img, lambda: True, lane="other", newest=True)
        new = sched.submit_extract(img, lambda: True, lane="live", newest=True)
        assert all(isinstance(f.exception(0), Overtaken) for f in old)  # each overtaken by the next
        assert sched.depth == 3  # the call, other and new wait
        release.set()
        assert call.result(30).value == "head" and len(other.result(30).value) and len(new.result(30).value)
    finally:
        release.set()
        sched.close(10)


def test_a_lane_back_after_its_turn_goes_next_and_overtaken_frames_keep_theirs():
    sched = Scheduler(lite_extractor(), capacity=16, workers=1)
    release = threading.Event()
    done = []
    try:
        sched.submit_call(lambda: release.wait(10), lambda: True)
        assert wait_until(lambda: sched.busy == 1 and sched.depth == 0)
        futs = {f"x{k}": sched.submit_call(lambda: None, lambda: True, lane="x") for k in range(3)}
        img = sample_image(32, 24)
        sched.submit_extract(img, lambda: True, lane="live", newest=True)
        futs["live"] = sched.submit_extract(img, lambda: True, lane="live", newest=True)  # takes the first's turn
        for name, f in futs.items():
            f.add_done_callback(lambda _, n=name: done.append(n))
        release.set()
        for f in futs.values():
            f.result(30)
        assert done == ["x0", "live", "x1", "x2"]
        # a lane that had nothing queued when its turn came is served next, not after a round
        gate = threading.Event()
        sched.submit_call(lambda: gate.wait(10), lambda: True, lane="x")
        assert wait_until(lambda: sched.depth == 0)
        later = [sched.submit_call(lambda k=k: done.append(f"x{k}"), lambda: True, lane="x") for k in (3, 4)]
        back = sched.submit_call(lambda: done.append("back"), lambda: True, lane="live")
        gate.set()
        for f in [*later, back]:
            f.result(30)
        assert done[-3:] == ["back", "x3", "x4"]
    finally:
        release.set()
        sched.close(10)
