"""Masks carried across frames (regiond.masks.carry): reprojection with a z-buffer test, optical
flow, keyframe decisions, stream order across threads, and the evaluation-only ground truth."""

from __future__ import annotations

import dataclasses
import threading

import numpy as np
import pytest
from support_masks import OUTCOMES, Shapes, outcome_masker

from regiond.core.errors import InputError
from regiond.core.frames import Camera, Frame
from regiond.geometry.reproject import carry_masks, correspondences
from regiond.masks.carry import (
    CARRY_METHODS,
    DEFAULT_MIN_COVERAGE,
    CarryClosed,
    CarryConfig,
    MaskTracker,
    split_masker,
)
from regiond.masks.cover import SamSlicCover
from regiond.masks.generator import SOURCE_SAM
from regiond.masks.slic import SlicMasker
from regiond.masks.truth import GroundTruthMasker
from regiond.scenes.synthetic.clips import render_clip
from regiond.scenes.synthetic.rgbd import SyntheticScene

W, H = 160, 120


@pytest.fixture(scope="module")
def room():
    # a slow loop (300 frames): about 2° of camera turn a frame, as a hand-held scan
    s = SyntheticScene(3, frames=300, width=W, height=H)
    return [s.frame(k) for k in range(8)]


def test_reprojection_matches_true_instances(room):
    f0, f3 = room[0], room[3]
    index = correspondences(f0.depth, f0.camera, f0.pose, f3.depth, f3.camera, f3.pose)
    hit = index >= 0
    assert 0.6 < hit.mean() < 1.0  # most pixels seen by both, some newly seen
    src = f0.meta["instances"].reshape(-1)[index[hit]]
    assert (src == f3.meta["instances"][hit]).mean() > 0.99


def test_z_buffer_rejects_occluded_points():
    """A near wall in the source hides the far wall the destination sees: nothing is carried
    there, while with the wall's depth test off the far wall would take the near wall's masks."""
    cam = Camera(50, 50, 31.5, 23.5, 64, 48)
    pose = np.eye(4)
    src = np.full((48, 64), 4.0, np.float32)
    src[:, :32] = 1.0  # a near surface covers the left half of the source
    dst = np.full((48, 64), 4.0, np.float32)  # the destination sees only the far wall
    index = correspondences(src, cam, pose, dst, cam, pose)
    assert (index[:, :32] == -1).all() and (index[:, 40:] >= 0).all()
    masks = np.zeros((1, 48, 64), bool)
    masks[0, :, :32] = True  # a mask of the near surface
    assert not carry_masks(masks, index).any()


def test_tracker_carries_between_keyframes(room):
    truth = GroundTruthMasker()
    masker = SamSlicCover(truth, SlicMasker())
    tracker = MaskTracker(CarryConfig(every=4, min_coverage=0.5))
    infos = []
    for f in room:
        props, info = tracker.propose(f, masker)
        infos.append(info)
        sam = props.masks[props.source == 0]
        if not info.keyframe:  # carried masks overlap the true ones almost exactly
            t = truth.from_frame(f).masks
            inter = (t[:, None] & sam[None]).sum((2, 3))
            union = (t[:, None] | sam[None]).sum((2, 3))
            big = t.sum((1, 2)) >= 300
            assert np.mean((inter / np.maximum(union, 1)).max(1)[big]) > 0.75  # newly seen parts lower it
        assert props.masks.any(axis=0).mean() > 0.8  # SLIC fills the gaps (pieces of 300+ pixels)
    assert [i.keyframe for i in infos] == [True, False, False, False, True, False, False, False]
    assert infos[0].reason == "first frame" and infos[4].reason == "every 4 frames"
    assert infos[2].keyframe_index == 0 and 0.5 < infos[2].coverage <= 1.0
    assert tracker.keyframes == 2 and tracker.frames == 8


def test_low_coverage_and_missing_geometry_make_keyframes(room):
    tracker = MaskTracker(CarryConfig(every=10, min_coverage=0.999))
    masker = SamSlicCover(GroundTruthMasker(), SlicMasker())
    _, first = tracker.propose(room[0], masker)
    _, low = tracker.propose(room[3], masker)  # 3 frames on: less than 99.9 % still covered
    assert low.keyframe and low.reason.startswith("coverage ")
    tracker = MaskTracker(CarryConfig(every=10, min_coverage=0.1))
    tracker.propose(room[0], masker)
    _, nodepth = tracker.propose(dataclasses.replace(room[1], depth=None), masker)
    _, after = tracker.propose(room[2], masker)
    _, nopose = tracker.propose(dataclasses.replace(room[3], pose=None), masker)
    _, carried = tracker.propose(room[4], masker)
    _, carried2 = tracker.propose(room[5], masker)
    assert (nodepth.keyframe, nodepth.reason) == (True, "no depth")
    assert after.keyframe and (nopose.keyframe, nopose.reason) == (True, "no pose")
    assert carried.keyframe and not carried2.keyframe and carried2.keyframe_index == 4


def test_generator_error_makes_the_next_frame_a_keyframe(room):
    class Flaky(SlicMasker):
        calls = 0

        def __call__(self, rgb):
            Flaky.calls += 1
            if Flaky.calls == 2:
                raise RuntimeError("boom")
            return super().__call__(rgb)

    tracker = MaskTracker(CarryConfig(every=2, min_coverage=0.0))
    m = Flaky()
    assert tracker.propose(room[0], m)[1].keyframe
    assert not tracker.propose(room[1], m)[1].keyframe
    with pytest.raises(RuntimeError, match="boom"):
        tracker.propose(room[2], m)
    props, info = tracker.propose(room[3], m)
    assert info.keyframe and info.reason == "after a failed mask generation" and len(props) > 0


def test_flow_carries_clip_masks():
    clip = render_clip(0, 5, frames=32, width=320, height=240)  # moving left; its first 6 frames
    frames = [Frame(rgb=clip.frames[k], index=k, meta={"instances": clip.instances[k]}) for k in range(6)]
    truth = GroundTruthMasker()
    tracker = MaskTracker(CarryConfig(every=6, min_coverage=0.0, method="flow"))
    ious = []
    for f in frames:
        props, info = tracker.propose(f, truth)  # no filler: the carried masks alone
        if not info.keyframe:
            t, c = truth.from_frame(f).masks, props.masks
            inter = (t[:, None] & c[None]).sum((2, 3))
            ious.extend((inter / (t[:, None] | c[None]).sum((2, 3))).max(1))
    assert np.mean(ious) > 0.8


def test_tickets_keep_stream_order_across_threads(room):
    """Frames handed to threads out of order still run in stream order; a released ticket
    (a dropped job) does not hold the rest up; close() wakes waiters."""
    tracker = MaskTracker(CarryConfig(every=3, min_coverage=0.0))
    masker = SlicMasker()
    tickets = [tracker.ticket() for _ in range(5)]
    done, lock = [], threading.Lock()

    def run(k):
        info = tickets[k](room[k], masker)[1]
        with lock:
            done.append((k, info.keyframe))

    threads = [threading.Thread(target=run, args=(k,)) for k in (4, 2, 0)]
    for t in threads:
        t.start()
    tickets[1].release()
    tickets[3].release()
    tickets[3].release()  # twice is harmless
    for t in threads:
        t.join(10)
    assert [k for k, _ in done] == [0, 2, 4]
    assert done == [(0, True), (2, False), (4, False)]  # released turns are no frames
    waiting = tracker.ticket()
    tracker.ticket()
    late = tracker.ticket()
    waiting.release()
    errors = []
    t = threading.Thread(target=lambda: errors.append(pytest.raises(CarryClosed, late, room[0], masker)))
    t.start()
    tracker.close()
    t.join(5)
    assert not t.is_alive() and errors


def test_ground_truth_masker_is_for_evaluation_only(room):
    m = GroundTruthMasker()
    assert "evaluation only" in m.name
    props = m.from_frame(room[0])
    assert len(props) == len(np.unique(room[0].meta["instances"][room[0].meta["instances"] > 0]))
    with pytest.raises(InputError, match="evaluation"):
        m(room[0].rgb)
    with pytest.raises(InputError, match="instance map"):
        m.from_frame(Frame(rgb=room[0].rgb))


def test_clip_instances_match_the_drawn_shapes():
    clip = render_clip(7, 2, frames=4, width=160, height=120)  # meeting: two actors
    assert clip.instances.shape == clip.frames.shape[:3] and clip.instances.max() >= 3
    for k in range(4):
        first_actor = int(clip.instances[k].max()) - len(clip.boxes[k]) + 1
        for j, (x0, y0, x1, y1) in enumerate(clip.boxes[k]):
            ys, xs = np.nonzero(clip.instances[k] == first_actor + j)
            inside = (xs >= x0 - 1) & (xs <= x1 + 1) & (ys >= y0 - 1) & (ys <= y1 + 1)
            assert len(xs) > 100 and inside.mean() > 0.9  # the stripe may stick out a little


def test_bad_config_names_the_field():
    with pytest.raises(InputError, match="carry.keyframe_every"):
        CarryConfig(every=0)
    with pytest.raises(InputError, match="carry.min_coverage"):
        CarryConfig(min_coverage=1.5)
    with pytest.raises(InputError, match="carry.method"):
        CarryConfig(method="magic")
    assert split_masker(SlicMasker())[1] is not None


def test_grow_extends_masks_over_unseen_parts_of_their_superpixels():
    from regiond.masks.carry import grow

    labels = np.zeros((4, 8), np.int32)
    labels[:, 4:] = 1  # two superpixels: left and right halves
    unseen = np.zeros((4, 8), bool)
    unseen[:, 2:4] = True  # half of the left one was not seen by the keyframe
    unseen[:, 7] = True  # and a quarter of the right one
    masks = np.zeros((2, 4, 8), bool)
    masks[0, :, :2] = True  # mask 0 holds all the seen left part
    masks[1, :2, 4:7] = True  # mask 1 holds half of the seen right part
    out = grow(masks, unseen, labels)
    assert out[0, :, :4].all() and not out[0, :, 4:].any()
    assert out[1, :, 7].all() and out[1].sum() == masks[1].sum() + 4
    assert not (out & ~masks)[:, ~unseen].any()  # seen pixels never change
    assert grow(masks, np.zeros_like(unseen), labels) is masks


def test_generator_runs_on_keyframes_only_and_memory_is_one_interval(room):
    """Frames between keyframes never call the generator; a keyframe's masks are freed when
    the next keyframe replaces them, and close() frees the last ones."""
    import gc
    import weakref

    class Counting(GroundTruthMasker):
        calls = 0

        def from_frame(self, frame):
            Counting.calls += 1
            return super().from_frame(frame)

    tracker = MaskTracker(CarryConfig(every=3, min_coverage=0.0))
    masker = SamSlicCover(Counting(), SlicMasker())
    tracker.propose(room[0], masker)
    first = weakref.ref(tracker._key.masks)
    for f in room[1:3]:
        tracker.propose(f, masker)
    assert Counting.calls == 1 and first() is not None
    tracker.propose(room[3], masker)  # the next keyframe
    gc.collect()
    assert Counting.calls == 2 and first() is None
    last = weakref.ref(tracker._key.masks)
    tracker.close()
    gc.collect()
    assert last() is None


def test_instance_maps_come_with_exported_and_resampled_frames(tmp_path):
    """instance-filt/ of an exported room reaches frame.meta["instances"] (aligned with the
    depth, resampled nearest with --size), so the ground-truth masker works on folders too."""
    from regiond.scenes import open_source
    from regiond.scenes.synthetic.rgbd import write_scene_folder

    scene = SyntheticScene(1, frames=3, width=W, height=H)
    write_scene_folder(scene, tmp_path / "room")
    frames = list(open_source(str(tmp_path / "room"), size=(80, 60)))
    assert len(frames) == 3
    inst = frames[1].meta["instances"]
    assert inst.shape == (60, 80)
    assert set(np.unique(inst)) <= set(np.unique(scene.frame(1).meta["instances"]))
    props = GroundTruthMasker().from_frame(frames[1])
    assert len(props) >= 2 and props.masks.shape[1:] == (60, 80)


# --- every outcome of the keyframe's generator, carried by depth and by flow ------------------

_OUTCOME_MASKERS: dict = {}


def _outcome(outcome: str):
    """The outcome's generator, built once per module (the SAM ones load a model)."""
    if outcome not in _OUTCOME_MASKERS:
        _OUTCOME_MASKERS[outcome] = outcome_masker(outcome)
    return _OUTCOME_MASKERS[outcome]


@pytest.fixture(scope="module")
def clip_frames():
    clip = render_clip(0, 5, frames=32, width=W, height=H)
    return [Frame(rgb=clip.frames[k], index=k) for k in range(5)]


@pytest.mark.parametrize("method", CARRY_METHODS)
@pytest.mark.parametrize("outcome", OUTCOMES)
def test_every_generator_outcome_is_carried(room, clip_frames, outcome, method):
    """Whatever the keyframe's generator returns (nothing, one mask, masks at the border only,
    masks too small to carry, SAM with no surviving mask, SAM with several), every frame gets
    masks of its own size and none empty; a frame without generated or carried masks is
    covered by SLIC exactly as a keyframe without masks is; nothing falls back to a fault."""
    frames = room[:5] if method == "depth" else clip_frames
    gen, slic = _outcome(outcome), SlicMasker()
    slic_only = SamSlicCover(Shapes("none", []), slic)
    for filled, min_coverage in ((True, 0.0), (False, 0.0), (True, DEFAULT_MIN_COVERAGE)):
        tracker = MaskTracker(CarryConfig(every=3, min_coverage=min_coverage, method=method))
        masker = SamSlicCover(gen, slic) if filled else gen
        infos, sam_counts, key_sam = [], [], 0
        for f in frames:
            props, info = tracker.propose(f, masker)
            infos.append(info)
            n = len(props)
            assert props.masks.shape == (n, H, W) and props.source.shape == props.scores.shape == (n,)
            assert np.count_nonzero(props.masks, axis=(1, 2)).all(), "an empty mask"
            assert not info.reason.startswith("carrying failed"), info.reason
            sam = int((props.source == SOURCE_SAM).sum())
            sam_counts.append(sam)
            if filled and sam == 0:  # SLIC-covered like any frame without SAM masks
                assert np.array_equal(props.masks, slic_only(f.rgb).masks)
            if info.keyframe:
                key_sam = sam
            else:  # carried: some of the keyframe's masks
                assert sam <= key_sam
        keyframes = [i.keyframe for i in infos]
        if min_coverage == 0.0:
            assert keyframes == [True, False, False, True, False]
        if outcome in ("none", "sam-filtered"):  # nothing to carry, nothing lost: carried on
            assert keyframes == [True, False, False, True, False] and sam_counts == [0] * 5
            assert all(i.coverage == 1.0 for i in infos)
        if outcome == "small" and min_coverage > 0:  # every carried mask filtered: coverage 0
            assert all(keyframes) and infos[1].reason.startswith("coverage 0.00 <")
        if outcome in ("one", "sam-spread"):
            assert sam_counts[0] >= 1 and sam_counts[1] >= 1  # carried on to the next frame
        if outcome == "sam-spread":
            assert sam_counts[0] >= 3


def test_a_fault_in_carrying_generates_the_frame_instead(room):
    """A generator whose masks do not fit its image (a fault of the generator) passes the
    keyframe, and carrying them fails: the frame's masks are generated afresh and its
    CarryInfo says why, instead of the frame (and the stream's frames after it) failing."""

    class HalfSize(Shapes):
        def __call__(self, rgb):
            return super().__call__(rgb[::2, ::2])

    tracker = MaskTracker(CarryConfig(every=5, min_coverage=0.0))
    masker = HalfSize("half", [(0.2, 0.8, 0.2, 0.8)])
    assert tracker.propose(room[0], masker)[1].keyframe
    props, info = tracker.propose(room[1], masker)
    assert info.keyframe and info.reason.startswith("carrying failed: ") and len(props) == 1
    _, again = tracker.propose(room[2], masker)  # and so on: every frame still gets its masks
    assert again.keyframe and again.keyframe_index == 2 and again.reason.startswith("carrying failed: ")


def test_a_stream_ending_during_a_frame_keeps_nothing(room):
    """close() while a keyframe's masks are being generated (the client cancelled): the frame
    still gets its masks, the tracker keeps none of them, and later frames raise CarryClosed."""
    tracker = MaskTracker(CarryConfig(every=3, min_coverage=0.0))

    class ClosingMidway(Shapes):
        def __call__(self, rgb):
            tracker.close()
            return super().__call__(rgb)

    props, info = tracker.propose(room[0], ClosingMidway("closing", [(0.2, 0.8, 0.2, 0.8)]))
    assert info.keyframe and len(props) == 1 and tracker._key is None
    with pytest.raises(CarryClosed):
        tracker.propose(room[1], SlicMasker())
