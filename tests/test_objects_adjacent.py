"""The SegmentAnything3D baseline (regiond.objects.adjacent) against SAM3D's own loops."""

import numpy as np
from support_objects import regions_of, room_frames

from regiond.objects.adjacent import AdjacentMerge, _cal_group, _drop_small, _natural
from regiond.objects.instance_truth import TruthFusion


def sam3d_cal_group(group_0, group_1, match_inds, ratio=0.5):
    """SegmentAnything3D's cal_group (util.py / sam3d.py), loop for loop."""
    group_1 = group_1.copy()
    group_1[group_1 != -1] += group_0.max() + 1
    unique_groups, group_0_counts = np.unique(group_0, return_counts=True)
    group_0_counts = dict(zip(unique_groups, group_0_counts))
    unique_groups, group_1_counts = np.unique(group_1, return_counts=True)
    group_1_counts = dict(zip(unique_groups, group_1_counts))
    group_overlap = {}
    for i, j in match_inds:
        group_i = group_1[i]
        group_j = group_0[j]
        if group_i == -1:
            group_1[i] = group_0[j]
            continue
        if group_j == -1:
            continue
        group_overlap.setdefault(group_i, {}).setdefault(group_j, 0)
        group_overlap[group_i][group_j] += 1
    for group_i, overlap_count in group_overlap.items():
        max_index = np.argmax(np.array(list(overlap_count.values())))
        group_j = list(overlap_count.keys())[max_index]
        count = list(overlap_count.values())[max_index]
        total_count = min(group_0_counts[group_j], group_1_counts[group_i]).astype(np.float32)
        if count / total_count >= ratio:
            group_1[group_1 == group_i] = group_j
    return group_1


def test_cal_group_is_sam3ds():
    rng = np.random.default_rng(3)
    for _ in range(50):
        n0, n1 = rng.integers(5, 80, 2)
        g0 = rng.integers(-1, rng.integers(1, 6), n0)
        g1 = rng.integers(-1, rng.integers(1, 6), n1)
        i1 = np.sort(rng.choice(n1, rng.integers(0, n1), replace=False))  # points of cloud 1 with a match
        j0 = rng.integers(0, n0, len(i1))
        want = sam3d_cal_group(g0, g1, list(zip(i1, j0)))
        assert _cal_group(g0, g1, i1, j0).tolist() == want.tolist()


def test_small_groups_and_renumbering_are_sam3ds():
    g = np.array([5, 5, 9, -1, 9, 9, 2])
    assert _drop_small(g, 2).tolist() == [5, 5, 9, -1, 9, 9, -1]
    assert _natural(np.array([7, -1, 3, 7])).tolist() == [1, -1, 0, 1]


def test_true_masks_merge_into_one_group_per_object():
    frames = room_frames()[:16]
    regions = regions_of(frames, "truth")
    merge, truth = AdjacentMerge(), TruthFusion(0.05)
    for f, r in zip(frames, regions):
        merge.add(f, r)
        truth.add(f)
    groups = merge.groups()
    gt = truth.on_points(groups["coord"])
    whole, classes = [], truth.classes()
    for g in np.unique(gt[gt > 0]):
        mine = groups["group"][gt == g]
        if len(mine) >= 100 and classes[g] not in (1, 2, 22):  # an object: nearly all its points in one group?
            whole.append(np.bincount(mine + 1).max() >= 0.9 * len(mine))
    assert len(whole) >= 5 and np.mean(whole) >= 0.7, whole  # the baseline splits some objects
