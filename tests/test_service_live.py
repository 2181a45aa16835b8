"""Live video streams through a real daemon: the newest frame wins, skipped frames are
reported, windows are defined in time; streams without live mode still get every frame."""

from __future__ import annotations

import queue
import threading

import grpc
import pytest
from support_service import image_pb, lite_extractor, running_server, sample_image, stub_for, tiny_heads, wait_until

from regiond.api.v1 import regions_pb2 as pb

HELD = 60.0


@pytest.fixture(scope="module")
def daemon(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("live")
    ex = lite_extractor()
    tiny_heads(tmp / "heads", ex)
    with running_server(ex, tmp, heads=tmp / "heads") as srv:
        ch, stub = stub_for(srv)
        yield srv, stub
        ch.close()


def _frames(n: int, options: pb.VideoOptions | None = None, fps: float = 0.0) -> list[pb.VideoFrame]:
    frames = [
        pb.VideoFrame(image=image_pb(sample_image(48, 36, seed=i % 3)), index=i, time=i / fps if fps else 0.0)
        for i in range(n)
    ]
    if options is not None:
        frames[0].options.CopyFrom(options)
    return frames


def _held(srv):
    """Holds the daemon's one worker until the returned event is set."""
    gate = threading.Event()
    srv.scheduler.submit_call(lambda: gate.wait(HELD), lambda: True)
    assert wait_until(lambda: srv.scheduler.busy == 1 and srv.scheduler.depth == 0)
    return gate


def _skipped_total(srv) -> float:
    return srv.metrics.frames_skipped.labels("StreamVideo")._value.get()


def test_live_frames_overtaken_in_the_queue_are_skipped_and_reported(daemon):
    srv, stub = daemon
    gate = _held(srv)
    before = _skipped_total(srv)
    try:
        call = stub.StreamVideo(iter(_frames(10, pb.VideoOptions(live=True))))
        # all ten arrive while the worker is held: each overtakes the one queued before it
        assert wait_until(lambda: _skipped_total(srv) - before == 9, 30), "the queued frames were not overtaken"
    finally:
        gate.set()
    ups = list(call)
    assert [u.frame_index for u in ups] == [9]
    assert list(ups[0].skipped) == list(range(9)) and len(ups[0].regions.regions) > 0


def test_without_live_every_frame_is_answered_in_order(daemon):
    srv, stub = daemon
    gate = _held(srv)
    try:
        call = stub.StreamVideo(iter(_frames(10)))
        assert wait_until(lambda: srv.scheduler.depth >= 4, 30)  # frames wait their turn, none dropped
    finally:
        gate.set()
    ups = list(call)
    assert [u.frame_index for u in ups] == list(range(10))
    assert all(not u.skipped and len(u.regions.regions) > 0 for u in ups)


def _lockstep(stub, frames: list[pb.VideoFrame], burst: int = 0, after_burst=lambda: None) -> list[pb.VideoUpdate]:
    """Sends the first `burst` frames at once, calls `after_burst`, then each frame once the
    previous one is answered (no frame is overtaken)."""
    answered: queue.Queue = queue.Queue()

    def requests():
        yield from frames[:burst]
        after_burst()
        for f in frames[burst:]:
            if burst or f is not frames[0]:
                answered.get(timeout=60)
            yield f

    ups = []
    for u in stub.StreamVideo(requests()):
        ups.append(u)
        answered.put(u.frame_index)
    return ups


def test_live_windows_span_time_and_sample_it_evenly(daemon):
    _, stub = daemon
    # 10 frames/s on the source's clock, windows of 1 s, one every 4 processed frames
    ups = _lockstep(stub, _frames(20, pb.VideoOptions(live=True, window_seconds=1.0, window_step=4), fps=10.0))
    assert [u.frame_index for u in ups] == list(range(20)) and not any(u.skipped for u in ups)
    windows = [(u.frame_index, w) for u in ups for w in u.windows]
    assert [i for i, _ in windows] == [10, 14, 18]  # the first once 1 s has passed, then every 4 frames
    # 8 instants evenly spaced over [t - 1 s, t], each the nearest processed frame
    assert list(windows[0][1].frame_indices) == [0, 1, 3, 4, 6, 7, 9, 10]
    assert list(windows[1][1].frame_indices) == [4, 5, 7, 8, 10, 11, 13, 14]
    for end, w in windows:
        assert (w.start_frame, w.end_frame) == (end - 10, end)
        assert (w.start_time, w.end_time) == pytest.approx(((end - 10) / 10, end / 10))
        assert sum(s.score for s in w.scores) == pytest.approx(1.0, abs=1e-4)


def test_live_windows_take_only_processed_frames(daemon):
    srv, stub = daemon
    gate = _held(srv)
    frames = _frames(30, pb.VideoOptions(live=True, window_seconds=1.0, window_step=1), fps=10.0)
    before = _skipped_total(srv)

    def release():
        assert wait_until(lambda: _skipped_total(srv) - before == 5, 30)
        gate.set()

    try:  # frames 0-4 overtaken in the queue, then the rest in lockstep at 10 frames/s
        ups = _lockstep(stub, frames, burst=6, after_burst=release)
    finally:
        gate.set()
    assert list(ups[0].skipped) == [0, 1, 2, 3, 4] and ups[0].frame_index == 5
    processed = {u.frame_index for u in ups}
    windows = [w for u in ups for w in u.windows]
    assert windows and all(set(w.frame_indices) <= processed for w in windows)
    assert all(w.end_time - w.start_time <= 1.0 + 1e-9 for w in windows)


@pytest.mark.parametrize(
    "options, field",
    [
        (pb.VideoOptions(live=True, window_seconds=-1), "options.window_seconds"),
        (pb.VideoOptions(live=True, window_seconds=1e9), "options.window_seconds"),
        (pb.VideoOptions(live=True, window_seconds=float("nan")), "options.window_seconds"),
        (pb.VideoOptions(window_seconds=2.0), "options.window_seconds"),
        (pb.VideoOptions(live=True, window_span=16), "options.window_span"),
    ],
)
def test_bad_live_options_are_invalid_argument(daemon, options, field):
    _, stub = daemon
    with pytest.raises(grpc.RpcError) as e:
        list(stub.StreamVideo(iter(_frames(2, options))))
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert e.value.details().startswith(f"{field}: ")


def test_live_scene_stream_is_invalid_argument(daemon):
    _, stub = daemon
    frame = pb.SceneFrame(color=image_pb(sample_image(48, 36)), options=pb.SceneOptions(live=True))
    with pytest.raises(grpc.RpcError) as e:
        list(stub.StreamScene(iter([frame])))
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert e.value.details().startswith("options.live: ") and "every frame" in e.value.details()


def test_info_says_how_many_workers(daemon):
    srv, stub = daemon
    assert stub.GetInfo(pb.InfoRequest()).workers == srv.config.workers == 1


def test_live_stream_of_an_idle_daemon_loses_nothing(tmp_path):
    with running_server(lite_extractor(), tmp_path) as srv:
        ch, stub = stub_for(srv)
        ups = _lockstep(stub, _frames(6, pb.VideoOptions(live=True)))
        ch.close()
    assert [u.frame_index for u in ups] == list(range(6)) and not any(u.skipped for u in ups)
