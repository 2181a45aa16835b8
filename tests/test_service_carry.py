"""Masks carried across frames through a real daemon and both clients: keyframes every K,
frames without depth or pose falling back to keyframes, a failing mask generator ending only
its frame (INTERNAL), bad options, older clients unaffected, and `regiond extract`."""

from __future__ import annotations

import dataclasses
import json

import grpc
import numpy as np
import pytest
from support_masks import OUTCOMES, outcome_masker
from support_service import lite_extractor, run_client, running_server, stub_for, write_video

from regiond.api.v1 import regions_pb2 as pb
from regiond.client.messages import scene_frame_pb, video_frame_pb
from regiond.extraction.extractor import Extractor
from regiond.masks.slic import SlicMasker
from regiond.scenes.synthetic.rgbd import SyntheticScene

W, H = 160, 120


@pytest.fixture(scope="module")
def frames():
    s = SyntheticScene(4, frames=300, width=W, height=H)  # ~2° a frame
    return [s.frame(k) for k in range(7)]


@pytest.fixture(scope="module")
def daemon(tmp_path_factory):
    with running_server(lite_extractor(), tmp_path_factory.mktemp("carry")) as srv:
        ch, stub = stub_for(srv)
        yield srv, stub
        ch.close()


def _scene(frames, carry=None, **options):
    msgs = [scene_frame_pb(f, "png") for f in frames]
    msgs[0].options.CopyFrom(pb.SceneOptions(scene_id="t", carry=carry, **options))
    return msgs


def _updates(stub, msgs):
    return [u for u in stub.StreamScene(iter(msgs), timeout=120) if not u.HasField("summary")]


def test_scene_stream_carries_between_keyframes(daemon, frames):
    _, stub = daemon
    ups = _updates(stub, _scene(frames, pb.CarryOptions(keyframe_every=3, min_coverage=0.2)))
    states = [u.regions.carry for u in ups]
    assert [s.keyframe for s in states] == [True, False, False, True, False, False, True]
    assert states[0].reason == "first frame" and states[3].reason == "every 3 frames"
    assert [s.keyframe_index for s in states] == [0, 0, 0, 3, 3, 3, 6]
    assert all(0.2 <= s.coverage <= 1 for s in states)
    assert all(len(u.regions.regions) > 0 and u.regions.regions[0].HasField("geometry") for u in ups)
    assert all(r.area > 0 for u in ups for r in u.regions.regions)  # no empty SLIC piece (lite fills with 0+ px)


def test_older_clients_get_no_carry(daemon, frames):
    _, stub = daemon
    ups = _updates(stub, _scene(frames[:2]))
    assert not any(u.regions.HasField("carry") for u in ups)


def test_frame_without_depth_or_pose_falls_back_to_keyframe(daemon, frames):
    _, stub = daemon
    fs = list(frames[:5])
    fs[2] = dataclasses.replace(fs[2], depth=None)
    fs[4] = dataclasses.replace(fs[4], pose=None)
    ups = _updates(stub, _scene(fs, pb.CarryOptions(keyframe_every=10, min_coverage=0.1)))
    assert not any(u.HasField("error") for u in ups)
    got = [(u.regions.carry.keyframe, u.regions.carry.reason) for u in ups]
    assert got[2] == (True, "no depth") and got[4] == (True, "no pose")
    assert got[1][0] is False and got[3] == (True, "keyframe had no depth or pose")


def test_bad_carry_options_are_named(daemon, frames):
    _, stub = daemon
    ups = _updates(stub, _scene(frames[:2], pb.CarryOptions(keyframe_every=3, min_coverage=1.5)))
    assert ups[0].error.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    assert ups[0].error.field == "options.carry.min_coverage"


class FlakySlic(SlicMasker):
    """SLIC that fails on one image (a fault of the generator, not of the input)."""

    def __init__(self, bad: np.ndarray):
        super().__init__()
        self.bad = bad

    def __call__(self, rgb):
        if np.array_equal(rgb, self.bad):
            raise RuntimeError("generator fault")
        return super().__call__(rgb)


@pytest.mark.parametrize("carry", [None, pb.CarryOptions(keyframe_every=2, min_coverage=0.01)])
def test_mask_generator_error_ends_the_frame_not_the_stream(tmp_path, frames, carry):
    lite = lite_extractor()
    ex = Extractor(masker=FlakySlic(frames[2].rgb), backbone=lite.backbone, profile="lite")
    with running_server(ex, tmp_path) as srv:
        ch, stub = stub_for(srv)
        ups = _updates(stub, _scene(frames[:5], carry))
        ch.close()
    bad = [u for u in ups if u.HasField("error")]
    assert len(ups) == 5 and len(bad) == 1
    assert (
        bad[0].frame_index == 2
        and bad[0].error.code == grpc.StatusCode.INTERNAL.value[0]
        and bad[0].error.field == "masks"
    )
    assert "generator fault" in bad[0].error.message
    later = [u for u in ups if u.frame_index > bad[0].frame_index]
    assert later and len(later[0].regions.regions) > 0
    if carry is not None:  # the frame after the failure is generated afresh
        assert (later[0].regions.carry.keyframe, later[0].regions.carry.reason) == (
            True,
            "after a failed mask generation",
        )


def test_video_stream_carries_by_flow(daemon, tmp_path):
    from regiond.scenes.synthetic.clips import render_clip

    _, stub = daemon
    clip = render_clip(1, 0, frames=8, width=W, height=H)
    msgs = [video_frame_pb(dataclasses.replace(_frame(clip.frames[k]), index=k), "png") for k in range(8)]
    msgs[0].options.CopyFrom(pb.VideoOptions(carry=pb.CarryOptions(keyframe_every=4, min_coverage=0.01)))
    ups = list(stub.StreamVideo(iter(msgs), timeout=120))
    assert [u.regions.carry.keyframe for u in ups] == [True, False, False, False, True, False, False, False]


def _frame(rgb):
    from regiond.core.frames import Frame

    return Frame(rgb=rgb)


def test_clients_keyframe_every(daemon, tmp_path):
    srv, _ = daemon
    out = tmp_path / "scan"
    p = run_client(
        "scan_scene",
        "synthetic:2",
        "--server",
        srv.address,
        "--out",
        out,
        "--max-frames",
        "6",
        "--size",
        f"{W}x{H}",
        "--keyframe-every",
        "3",
        "--min-coverage",
        "0.01",
        "--overlays",
        "none",
    )
    assert p.returncode == 0, p.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["keyframes"] == {"generated": 2, "carried": 4}
    assert "masks generated on 2 of 6 frames, carried to 4" in p.stdout
    video = write_video(tmp_path / "clip.avi", frames=12)
    p = run_client(
        "stream_video",
        video,
        "--server",
        srv.address,
        "--fast",
        "--keyframe-every",
        "4",
        "--min-coverage",
        "0.01",
        "--jsonl",
        tmp_path / "v.jsonl",
    )
    assert p.returncode == 0, p.stderr
    assert "masks generated on 3 of 12 frames, carried to 9" in p.stdout
    recs = [json.loads(line) for line in (tmp_path / "v.jsonl").read_text().splitlines() if '"frame"' in line]
    assert [r["keyframe"] for r in recs][:5] == [True, False, False, False, True]


def test_regiond_extract_keyframe_every(tmp_path):
    from regiond.cli import main
    from regiond.extraction.cache import TokenCache

    rc = main(
        [
            "extract",
            "synthetic:5",
            "--out",
            str(tmp_path / "c"),
            "--profile",
            "lite",
            "--max-frames",
            "6",
            "--size",
            str(W),
            str(H),
            "--keyframe-every",
            "3",
            "--min-coverage",
            "0.01",
        ]
    )
    assert rc == 0
    cache = TokenCache.open(tmp_path / "c")
    item = cache.items[0]
    assert item.meta["sampling"]["keyframe_every"] == 3 and item.meta["keyframes"] == 2
    carried = [cache.regions(item, i).meta["carry"] for i in range(len(item.frames))]
    assert carried[0]["keyframe"] and not carried[1]["keyframe"] and carried[1]["keyframe_index"] == 0
    assert sum(c["keyframe"] for c in carried) == item.meta["keyframes"]


def test_cancelled_carry_stream_frees_its_tracker(daemon, frames):
    """A client cancelling mid-stream: the session and its carried masks go, no worker stays
    waiting for a frame's turn."""
    import threading

    from support_service import wait_until

    srv, stub = daemon
    stop = threading.Event()
    msgs = _scene(frames, pb.CarryOptions(keyframe_every=4, min_coverage=0.01))

    def feed():
        for k in range(200):
            if stop.is_set():
                return
            m = msgs[k % len(msgs)]
            yield m

    call = stub.StreamScene(feed())
    first = next(call)
    assert first.regions.carry.keyframe
    session = srv.servicer.sessions.all()[0]
    tracker = session.tracker
    call.cancel()
    stop.set()
    assert wait_until(lambda: srv.servicer.sessions.count() == 0, 10)
    assert wait_until(lambda: srv.scheduler.busy == 0, 10)
    assert tracker._key is None and session.tracker is tracker


@pytest.mark.parametrize("outcome", OUTCOMES)
def test_every_generator_outcome_through_the_daemon(tmp_path, frames, outcome):
    """A daemon whose masker's keyframe generator has each outcome (support_masks.OUTCOMES,
    SLIC filling the gaps) answers every frame of a carried scene (depth) and a carried video
    (flow) with regions; frames without SAM masks get whole superpixels."""
    from regiond.core.rle import decode_many
    from regiond.masks.cover import SamSlicCover
    from regiond.scenes.synthetic.clips import render_clip

    lite = lite_extractor()
    ex = Extractor(masker=SamSlicCover(outcome_masker(outcome), SlicMasker()), backbone=lite.backbone, profile="lite")
    clip = render_clip(0, 5, frames=32, width=W, height=H)
    video = [video_frame_pb(dataclasses.replace(_frame(clip.frames[k]), index=k), "png") for k in range(5)]
    video[0].options.CopyFrom(pb.VideoOptions(carry=pb.CarryOptions(keyframe_every=3)))
    with running_server(ex, tmp_path) as srv:
        ch, stub = stub_for(srv)
        scene = _updates(stub, _scene(frames[:5], pb.CarryOptions(keyframe_every=3)))
        clip_ups = list(stub.StreamVideo(iter(video), timeout=120))
        ch.close()
    for ups in (scene, clip_ups):
        assert [u.frame_index for u in ups] == [0, 1, 2, 3, 4]
        assert not [u.error.message for u in ups if u.HasField("error")]
        for u in ups:
            rs, state = u.regions, u.regions.carry
            assert len(rs.regions) > 0 and not state.reason.startswith("carrying failed"), state.reason
            assert all(r.area > 0 for r in rs.regions)
            sam = sum(r.source == pb.SOURCE_SAM for r in rs.regions)
            if sam == 0:  # whole superpixels: every pixel in exactly one region
                masks = decode_many([r.mask.counts for r in rs.regions], rs.height, rs.width)
                assert (masks.sum(axis=0) == 1).all()
        if outcome in ("none", "sam-filtered"):
            assert [u.regions.carry.keyframe for u in ups] == [True, False, False, True, False]
            assert all(r.source == pb.SOURCE_SLIC for u in ups for r in u.regions.regions)
