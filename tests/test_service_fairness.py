"""Many streams on one daemon: the work queue serves them in turn, --max-streams refuses one
more with RESOURCE_EXHAUSTED and retry-after-ms (cheaply, however often a client ignores
it), and the clients wait and retry."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import pytest
from support_service import (
    image_pb,
    lite_extractor,
    running_server,
    sample_image,
    stub_for,
    wait_until,
    write_video,
)

from regiond.api.v1 import regions_pb2 as pb
from regiond.extraction.extractor import Extractor

REPO = Path(__file__).resolve().parents[1]


@dataclass
class RecordingExtractor(Extractor):
    """The lite extractor, recording the frame indices in the order it extracts them."""

    order: list = field(default_factory=list)

    def extract(self, frame, features=True, carry=None):
        self.order.append(getattr(frame, "index", None))
        return super().extract(frame, features, carry)


def _recording():
    ex = lite_extractor()
    return RecordingExtractor(masker=ex.masker, backbone=ex.backbone, profile=ex.profile)


def _frame(i: int) -> pb.VideoFrame:
    return pb.VideoFrame(image=image_pb(sample_image(48, 36, seed=i % 3)), index=i)


def _held_open(stub, first: pb.VideoFrame):
    """A stream that sends one frame and stays open until the returned event is set."""
    done = threading.Event()

    def requests():
        yield first
        done.wait(60)

    call = stub.StreamVideo(requests())
    return call, done


def test_streams_are_served_in_turn(tmp_path):
    ex = _recording()
    with running_server(ex, tmp_path, warmup=False) as srv:
        ch, stub = stub_for(srv)
        gate = threading.Event()
        srv.scheduler.submit_call(lambda: gate.wait(60), lambda: True)
        try:
            eager = stub.StreamVideo(iter([_frame(i) for i in range(12)]))
            # its frames queue until its reader waits for replies: one awaited by the responder,
            # `inflight` in the pipe, one more submitted
            eager_queued = srv.config.inflight + 2
            assert wait_until(lambda: srv.scheduler.depth == eager_queued, 30)
            polite = stub.StreamVideo(iter([_frame(100)]))
            assert wait_until(lambda: srv.scheduler.depth == eager_queued + 1, 30)
        finally:
            gate.set()
        assert [u.frame_index for u in polite] == [100]
        assert [u.frame_index for u in eager] == list(range(12))
        ch.close()
    # first come first served would run the eager stream's queued frames first
    assert ex.order[:3] == [0, 100, 1], ex.order


def test_max_streams_refuses_one_more_cheaply_with_retry_after(tmp_path):
    with running_server(lite_extractor(), tmp_path, max_streams=1) as srv:
        ch, stub = stub_for(srv)
        assert stub.GetInfo(pb.InfoRequest()).max_streams == 1
        held, done = _held_open(stub, _frame(0))
        updates = iter(held)
        assert next(updates).frame_index == 0
        refused = srv.metrics.streams_refused.labels("StreamVideo")
        frames = srv.metrics.frames.labels("StreamVideo")
        answered = frames._value.get()
        for k in range(30):  # a client that ignores retry-after-ms: refused every time
            bad = pb.VideoFrame(image=pb.Image(data=b"not an image"), index=k)
            with pytest.raises(grpc.RpcError) as e:
                list(stub.StreamVideo(iter([bad])))
            assert e.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert "--max-streams" in e.value.details()
            after = dict(e.value.trailing_metadata())
            assert 750 <= int(after["retry-after-ms"]) <= 1250
        scene = pb.SceneFrame(color=image_pb(sample_image(48, 36)))
        with pytest.raises(grpc.RpcError) as e:
            list(stub.StreamScene(iter([scene])))
        assert e.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        # nothing of the refused calls was read: no frame answered (not even the bad ones' errors)
        assert refused._value.get() == 30 and frames._value.get() == answered
        assert srv.servicer.sessions.count() == 1
        done.set()
        assert list(updates) == []
        assert wait_until(lambda: srv.servicer.sessions.count() == 0, 10)
        assert [u.frame_index for u in stub.StreamVideo(iter([_frame(7)]))] == [7]  # room again
        ch.close()


def _stream_video(address: str, video: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, str(REPO / "clients" / "stream_video.py"), str(video), "--server", address, "--fast", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_client_waits_for_a_busy_daemon_and_retries(tmp_path):
    video = write_video(tmp_path / "clip.avi", frames=6)
    with running_server(lite_extractor(), tmp_path, max_streams=1) as srv:
        ch, stub = stub_for(srv)
        held, done = _held_open(stub, _frame(0))
        next(iter(held))
        proc = _stream_video(srv.address, video)
        refused = srv.metrics.streams_refused.labels("StreamVideo")
        assert wait_until(lambda: refused._value.get() >= 2, 60), "the client did not retry"
        done.set()  # the other stream ends: the client gets in
        out, err = proc.communicate(timeout=120)
        ch.close()
    assert proc.returncode == 0, err
    assert "the daemon is busy" in err and "retrying in" in err and "6 frames (0 rejected)" in out


def test_client_gives_up_after_retry_for(tmp_path):
    video = write_video(tmp_path / "clip.avi", frames=3)
    with running_server(lite_extractor(), tmp_path, max_streams=1) as srv:
        ch, stub = stub_for(srv)
        held, done = _held_open(stub, _frame(0))
        next(iter(held))
        t0 = time.monotonic()
        proc = _stream_video(srv.address, video, "--retry-for", "2")
        out, err = proc.communicate(timeout=120)
        done.set()
        ch.close()
    assert proc.returncode == 2 and "RESOURCE_EXHAUSTED" in err and "--max-streams" in err, err
    assert time.monotonic() - t0 < 60
