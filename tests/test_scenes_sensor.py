"""The Kinect sensor model of the generated rooms: depth noise growing with z², holes and flying
pixels at depth edges, depth registered off the colour, smooth pose drift; colour and its maps
untouched; deterministic."""

from __future__ import annotations

import numpy as np
import pytest

from regiond.core.errors import InputError
from regiond.scenes.synthetic import SyntheticScene
from regiond.scenes.synthetic.sensor import SENSORS


@pytest.fixture(scope="module")
def pair():
    clean = SyntheticScene(seed=4, frames=40, width=320, height=240)
    kinect = SyntheticScene(seed=4, frames=40, width=320, height=240, sensor="kinect")
    return clean, kinect, [(clean.frame(k), kinect.frame(k)) for k in (0, 13, 27)]


def test_colour_and_its_maps_stay_as_rendered(pair):
    _, _, frames = pair
    for c, k in frames:
        np.testing.assert_array_equal(c.rgb, k.rgb)
        np.testing.assert_array_equal(c.labels, k.labels)
        np.testing.assert_array_equal(c.meta["instances"], k.meta["instances"])
        assert "depth_instances" not in c.meta and not np.array_equal(c.depth, k.depth)


def test_deterministic():
    a = SyntheticScene(seed=4, frames=40, width=320, height=240, sensor="kinect").frame(13)
    b = SyntheticScene(seed=4, frames=40, width=320, height=240, sensor="kinect").frame(13)
    np.testing.assert_array_equal(a.depth, b.depth)
    np.testing.assert_array_equal(a.pose, b.pose)
    np.testing.assert_array_equal(a.meta["depth_instances"], b.meta["depth_instances"])


def test_depth_is_registered_two_pixels_right_one_down(pair):
    _, _, frames = pair
    c, k = frames[1]
    errors = {}
    for dx in range(-3, 4):
        for dy in range(-3, 4):
            a = k.depth[3:-3, 3:-3]
            b = c.depth[3 - dy : c.depth.shape[0] - 3 - dy, 3 - dx : c.depth.shape[1] - 3 - dx]
            m = a > 0
            errors[dx, dy] = float(np.median(np.abs(a[m] - b[m])))
    assert min(errors, key=errors.get) == (2, 1)
    shifted = np.zeros_like(c.meta["instances"])
    shifted[1:, 2:] = c.meta["instances"][:-1, :-2]
    kept = k.meta["depth_instances"] > 0
    np.testing.assert_array_equal(k.meta["depth_instances"][kept], shifted[kept])
    assert (k.depth[~kept] == 0).mean() > 0.5  # what lost its instance: holes, and flying pixels


def test_noise_grows_with_depth_squared(pair):
    _, kinect, frames = pair
    model = kinect.sensor_model
    near, far = [], []
    for c, k in frames:
        truth = np.zeros_like(c.depth)
        truth[1:, 2:] = c.depth[:-1, :-2]
        ok = (k.depth > 0) & (k.meta["depth_instances"] > 0) & (truth > 0)
        r = (k.depth - truth)[ok] / model.sigma(truth[ok])  # in units of the model's sigma
        z = truth[ok]
        near.append(np.abs(k.depth - truth)[ok][z < 1.6])
        far.append(np.abs(k.depth - truth)[ok][z > 3.0])
        inliers = r[np.abs(r) < 6]  # edges' misregistered pixels aside
        assert 0.85 < inliers.std() < 1.2
    near, far = np.concatenate(near), np.concatenate(far)
    assert len(near) > 1000 and len(far) > 1000
    assert np.median(far) > 3 * np.median(near)


def test_holes_and_flying_pixels_sit_at_depth_edges(pair):
    _, _, frames = pair
    for c, k in frames:
        d = c.depth
        jump = np.zeros(d.shape, bool)
        for axis in (0, 1):
            step = np.abs(np.diff(d, axis=axis))
            lo, hi = [slice(None)] * 2, [slice(None)] * 2
            lo[axis], hi[axis] = slice(None, -1), slice(1, None)
            jump[tuple(hi)] |= step > 0.05 * d[tuple(hi)]
            jump[tuple(lo)] |= step > 0.05 * d[tuple(lo)]
        edge = np.zeros_like(jump)
        edge[1:, 2:] = jump[:-1, :-2]  # where the edges landed in the shifted depth
        lost = k.depth == 0
        assert lost[edge].mean() > 0.3 and lost[~edge].mean() < 0.03
        flying = (k.depth > 0) & (k.meta["depth_instances"] == 0)
        assert flying.any() and flying[edge].sum() > 0.9 * flying.sum() - 0.01 * flying.size


def test_pose_drift_is_a_few_centimetres_and_under_a_degree(pair):
    clean, kinect, _ = pair
    off = np.linalg.norm(kinect.tracked[:, :3, 3] - clean.poses[:, :3, 3], axis=1)
    rel = np.einsum("nij,nkj->nik", kinect.tracked[:, :3, :3], clean.poses[:, :3, :3])
    angle = np.degrees(np.arccos(np.clip((np.trace(rel, axis1=1, axis2=2) - 1) / 2, -1, 1)))
    assert off[0] == 0 and angle[0] < 1e-6  # the first frame defines the world
    assert 0.02 < off.max() <= 0.03 + 1e-9 and 0.5 < angle.max() <= 1.0 + 1e-6
    assert np.abs(np.diff(off)).max() < 0.01  # smooth: a drift, not jitter
    assert off[-1] > 0.002  # not back to zero at the end of the loop


def test_unknown_sensor_is_an_error():
    assert set(SENSORS) == {"clean", "kinect"}
    with pytest.raises(InputError, match="sensor"):
        SyntheticScene(seed=1, frames=5, width=32, height=24, sensor="lidar")
