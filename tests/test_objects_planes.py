"""The end of a scan: pieces of one wall merged (objects/planes.py), things on it kept apart."""

from dataclasses import replace

import numpy as np
from support_objects import regions_of, room_frames

from regiond.core.regionset import RegionSet
from regiond.objects import ObjectConfig, ObjectMap, summarise
from regiond.scenes.synthetic.room import PICTURE, WINDOW

WALL = 1


def _split_wall_view():
    """Frame 0 of the test room with its largest wall mask cut into a left and a right half
    (two objects that no region ever lies across), and what each of its regions is."""
    f = room_frames()[0]
    r = regions_of([f], "truth")[0]
    masks = r.masks()
    cls = np.array([np.bincount(f.labels[m]).argmax() for m in masks])
    wall = int(np.argmax(r.areas * (cls == WALL)))
    cols = np.flatnonzero(masks[wall].any(axis=0))
    left = masks[wall] & (np.arange(f.rgb.shape[1]) < np.median(cols))[None, :]
    halves = np.concatenate([np.delete(masks, wall, axis=0), left[None], (masks[wall] & ~left)[None]])
    return f, RegionSet.from_masks(halves), np.r_[np.delete(cls, wall), WALL, WALL]


def _final_ids(config):
    f, regions, cls = _split_wall_view()
    omap = ObjectMap(config)
    for k in range(2):  # twice: voxels one frame saw are not trusted
        omap.add(replace(f, index=k), regions)
    return summarise(omap).frame_ids[0], cls


def test_pieces_of_one_wall_merge_and_things_on_it_stay_apart():
    config = ObjectConfig(min_points=1, check_pose=False)
    ids, cls = _final_ids(config)
    assert ids[-2] == ids[-1] != 0  # the two halves of the wall: one object
    on_wall = np.isin(cls[:-2], [PICTURE, WINDOW])
    assert on_wall.any(), "the test view should show a picture or a window"
    assert (ids[:-2][on_wall] != ids[-1]).all()  # 4-6 cm off the wall: not part of it
    apart, _ = _final_ids(replace(config, plane_gap=0.0))  # the rule off: two pieces
    assert apart[-2] != apart[-1]
