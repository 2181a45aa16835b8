"""The rooms' clutter option: small things present in the instance maps and the depth, each an
instance of its own; off by default, where the rooms stay as they were."""

from __future__ import annotations

import numpy as np

from regiond.scenes.synthetic import SyntheticScene
from regiond.scenes.synthetic.clutter import CLUTTER_CLASSES

SIZE = (160, 120)


def test_default_rooms_have_no_clutter():
    plain, off = SyntheticScene(11, 20, *SIZE), SyntheticScene(11, 20, *SIZE, clutter=False)
    assert [o.name for o in plain.room.objects] == [o.name for o in off.room.objects]
    assert not any(o.nyu40 in CLUTTER_CLASSES for o in plain.room.objects)
    assert "clutter" not in plain.meta()
    a, b = plain.frame(5), off.frame(5)
    np.testing.assert_array_equal(a.rgb, b.rgb)
    np.testing.assert_array_equal(a.meta["instances"], b.meta["instances"])


def test_clutter_is_small_seeded_and_seen():
    plain = SyntheticScene(11, 20, *SIZE)
    scene = SyntheticScene(11, 20, *SIZE, clutter=True)
    n = len(plain.room.objects)
    # the room's own objects keep their instance ids; the clutter comes after them
    assert [o.name for o in scene.room.objects[:n]] == [o.name for o in plain.room.objects]
    clutter = scene.room.objects[n:]
    assert 10 <= len(clutter) <= 25 and {o.nyu40 for o in clutter} <= set(CLUTTER_CLASSES)
    for o in clutter:
        assert len(o.boxes) == 1 and 0.05 <= min(o.boxes[0].size) and max(o.boxes[0].size) <= 0.3
    again = SyntheticScene(11, 20, *SIZE, clutter=True)
    assert [o.world_bounds()[0].tolist() for o in again.room.objects] == [
        o.world_bounds()[0].tolist() for o in scene.room.objects
    ]
    assert scene.meta()["clutter"] is True and len(scene.meta()["objects"]) == n + len(clutter)
    seen = set()
    for k in range(0, 20, 2):
        f, g = scene.frame(k), plain.frame(k)
        ids = f.meta["instances"].astype(int)
        mine = ids > n
        seen |= set(np.unique(ids[mine]).tolist())
        # the clutter is in the depth too: nearer than the plain room behind it
        if mine.any():
            assert (f.depth[mine] < g.depth[mine] - 0.005).mean() > 0.9
    assert len(seen) >= len(clutter) // 2


def test_things_touch_and_do_not_overlap():
    scene = SyntheticScene(12, 2, *SIZE, clutter=True)
    n = len(SyntheticScene(12, 2, *SIZE).room.objects)
    boxes = [o.world_bounds() for o in scene.room.objects[n:]]
    touching = 0
    for i, (a0, a1) in enumerate(boxes):
        assert (a0 >= -1e-3).all() and a1[0] <= scene.room.width + 1e-3 and a1[1] <= scene.room.depth + 1e-3
        for b0, b1 in boxes[i + 1 :]:
            gap = np.maximum(a0 - b1, b0 - a1)  # per axis: > 0 apart, < 0 overlapping
            assert gap.max() > -1e-3, "two things overlap"
            touching += abs(gap.max()) < 1e-3
    assert touching >= 1
