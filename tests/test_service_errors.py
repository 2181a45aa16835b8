"""Bad input, cancellation, deadlines and a full queue against a real lite daemon."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import grpc
import numpy as np
import pytest
from support_service import image_pb, lite_extractor, png_bytes, running_server, sample_image, stub_for, wait_until

from regiond.api.v1 import regions_pb2 as pb

W, H = 64, 48
MAX_PIXELS = 200 * 150


@pytest.fixture(scope="module")
def daemon(tmp_path_factory):
    with running_server(lite_extractor(), tmp_path_factory.mktemp("err"), max_pixels=MAX_PIXELS) as srv:
        ch, stub = stub_for(srv)
        yield srv, stub
        ch.close()


def _depth(w=W, h=H, value=1500):
    return pb.Depth(data=np.full((h, w), value, "<u2").tobytes(), dtype=pb.Depth.UINT16, width=w, height=h)


def _good_scene(i):
    return pb.SceneFrame(
        color=image_pb(sample_image(W, H)),
        index=i,
        depth=_depth(),
        intrinsics=pb.Intrinsics(fx=60, fy=60, cx=31.5, cy=23.5),
        pose=pb.Pose(matrix=np.eye(4).ravel().tolist()),
    )


def _bad_scene_frames():
    """(field, frame) for every kind of bad input a scene frame can carry."""
    undecodable = _good_scene(1)
    undecodable.color.CopyFrom(pb.Image(data=b"\x89PNG\r\n\x1a\n truncated"))
    depth_size = _good_scene(1)
    depth_size.depth.CopyFrom(_depth(W // 2, H // 2))
    depth_bytes = _good_scene(1)
    depth_bytes.depth.data = depth_bytes.depth.data[:-2]
    intr = _good_scene(1)
    intr.intrinsics.fx = float("nan")
    pose15 = _good_scene(1)
    del pose15.pose.matrix[-1]
    pose_nan = _good_scene(1)
    pose_nan.pose.matrix[3] = float("nan")
    big = _good_scene(1)
    big.color.CopyFrom(image_pb(np.zeros((151, 200, 3), np.uint8)))  # one row over max_pixels
    big.ClearField("depth")
    big.ClearField("intrinsics")
    return [
        ("color", undecodable),
        ("depth", depth_size),
        ("depth", depth_bytes),
        ("intrinsics", intr),
        ("pose", pose15),
        ("pose", pose_nan),
        ("color", big),
    ]


@pytest.mark.parametrize("field,bad", _bad_scene_frames(), ids=lambda v: v if isinstance(v, str) else "")
def test_bad_scene_frame_named_and_stream_goes_on(daemon, field, bad):
    srv, stub = daemon
    first = _good_scene(0)
    first.options.scene_id = "errors"
    ups = list(stub.StreamScene(iter([first, bad, _good_scene(2)])))
    frames, summary = ups[:3], ups[3].summary
    assert not frames[0].HasField("error") and frames[0].regions.regions
    err = frames[1].error
    assert err.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    assert err.field == field and err.message.startswith(f"{field}:")
    assert not frames[2].HasField("error") and frames[2].regions.regions  # the next frame still works
    assert (summary.frames, summary.frames_failed) == (3, 1)


def test_bad_video_frames(daemon):
    _, stub = daemon
    good = pb.VideoFrame(image=image_pb(sample_image(W, H)))
    raw_short = pb.VideoFrame(image=pb.Image(data=b"\0" * 10, encoding=pb.Image.RGB8, width=W, height=H))
    empty = pb.VideoFrame(image=pb.Image())
    gif = pb.VideoFrame(image=pb.Image(data=b"GIF89a\x01\x00\x01\x00\x00\x00\x00;"))
    ups = list(stub.StreamVideo(iter([good, raw_short, empty, gif, good])))
    assert [u.HasField("error") for u in ups] == [False, True, True, True, False]
    assert all(u.error.field == "image" for u in ups[1:4])
    assert ups[4].regions.regions


def test_extract_bad_input_is_invalid_argument(daemon):
    _, stub = daemon
    cases = {
        "image": pb.ExtractRequest(image=pb.Image(data=b"garbage")),
        "depth": pb.ExtractRequest(
            image=image_pb(sample_image(W, H)), depth=_depth(W + 1, H), intrinsics=pb.Intrinsics(fx=1, fy=1)
        ),
        "intrinsics": pb.ExtractRequest(
            image=image_pb(sample_image(W, H)), depth=_depth(), intrinsics=pb.Intrinsics(fx=float("inf"), fy=1)
        ),
        "pose": pb.ExtractRequest(image=image_pb(sample_image(W, H)), pose=pb.Pose(matrix=[1.0] * 12)),
    }
    for field, req in cases.items():
        with pytest.raises(grpc.RpcError) as e:
            stub.ExtractRegions(req)
        assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert e.value.details().startswith(f"{field}:"), e.value.details()
    assert stub.ExtractRegions(pb.ExtractRequest(image=image_pb(sample_image(W, H)))).regions  # still serving


def test_decompression_bomb_rejected_from_header(daemon):
    _, stub = daemon
    bomb = png_bytes(np.zeros((4000, 4000), np.uint8))  # tiny PNG, 16 Mpx once decoded
    assert len(bomb) < 100_000
    with pytest.raises(grpc.RpcError) as e:
        stub.ExtractRegions(pb.ExtractRequest(image=pb.Image(data=bomb)))
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "exceeds the limit" in e.value.details()


def test_cancel_mid_stream_frees_session(daemon):
    srv, stub = daemon
    stop = threading.Event()

    def frames():
        i = 0
        while not stop.is_set():
            yield pb.VideoFrame(image=image_pb(sample_image(W, H, seed=i)), index=i)
            i += 1
            time.sleep(0.02)

    call = stub.StreamVideo(frames())
    first = next(call)
    assert first.regions.regions
    assert srv.servicer.sessions.count("video") == 1
    call.cancel()
    stop.set()
    assert wait_until(lambda: srv.servicer.sessions.count() == 0, 10), "session not freed after cancel"
    assert wait_until(lambda: srv.scheduler.busy == 0, 10)


def test_deadline_frees_session(daemon):
    srv, stub = daemon

    def slow_frames():
        for i in range(1000):
            yield pb.VideoFrame(image=image_pb(sample_image(W, H)), index=i)
            time.sleep(0.05)

    got = []
    with pytest.raises(grpc.RpcError) as e:
        for u in stub.StreamVideo(slow_frames(), timeout=3.0):
            got.append(u)
    assert e.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert got  # it was working until the deadline
    assert wait_until(lambda: srv.servicer.sessions.count() == 0, 10), "session not freed after deadline"


def test_full_queue_gives_resource_exhausted(tmp_path):
    # One worker, room for one job, 20 ms of patience: 12 simultaneous calls on frames that
    # take far longer than that cannot all get in.
    with running_server(lite_extractor(), tmp_path, queue=1, workers=1, unary_wait=0.02) as srv:
        ch, stub = stub_for(srv)
        req = pb.ExtractRequest(image=image_pb(sample_image(640, 480)))

        def call(_):
            try:
                stub.ExtractRegions(req, timeout=120)
                return grpc.StatusCode.OK
            except grpc.RpcError as e:
                return e.code(), e.details()

        with ThreadPoolExecutor(12) as pool:
            results = list(pool.map(call, range(12)))
        ch.close()
    codes = [r if isinstance(r, grpc.StatusCode) else r[0] for r in results]
    assert grpc.StatusCode.OK in codes
    assert grpc.StatusCode.RESOURCE_EXHAUSTED in codes
    assert set(codes) <= {grpc.StatusCode.OK, grpc.StatusCode.RESOURCE_EXHAUSTED}
    assert any("queue full" in r[1] for r in results if not isinstance(r, grpc.StatusCode))


def test_stream_gets_backpressure_not_errors(tmp_path):
    # The same tiny queue: two streams wait for room instead of failing.
    with running_server(lite_extractor(), tmp_path, queue=1, workers=1, unary_wait=0.02) as srv:
        ch, stub = stub_for(srv)

        def stream(seed):
            frames = [pb.VideoFrame(image=image_pb(sample_image(W, H, seed=seed + i))) for i in range(6)]
            return [u.HasField("error") for u in stub.StreamVideo(iter(frames), timeout=120)]

        with ThreadPoolExecutor(2) as pool:
            results = list(pool.map(stream, (0, 100)))
        ch.close()
    assert results == [[False] * 6, [False] * 6]
