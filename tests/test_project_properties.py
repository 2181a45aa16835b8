"""Laws that hold for any input, checked with hypothesis: RLE round trip, back-projection then
projection, pooling over a partition, and the .sens writer/reader round trip."""

from __future__ import annotations

import numpy as np
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from regiond.core import rle
from regiond.core.frames import Camera, Frame
from regiond.core.partition import Partition
from regiond.features.backbone import FeatureGrid, padding
from regiond.features.pooling import pool_masks, upsample_grid
from regiond.geometry.backproject import backproject, project

FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
sizes = st.tuples(st.integers(1, 40), st.integers(1, 40))


@FAST
@given(sizes.flatmap(lambda s: arrays(bool, s)))
def test_rle_round_trip(mask):
    counts = rle.encode(mask)
    assert counts.sum() == mask.size
    assert np.array_equal(rle.decode(counts, *mask.shape), mask)
    batch, boxes, areas = rle.encode_batch(mask[None])
    assert np.array_equal(rle.decode(batch[0], *mask.shape), mask) and areas[0] == mask.sum()


def rotation(q: np.ndarray) -> np.ndarray:
    w, x, y, z = q / np.linalg.norm(q)
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ]
    )


@FAST
@given(
    w=st.integers(2, 24),
    h=st.integers(2, 24),
    f=st.floats(10, 800),
    c=st.tuples(st.floats(-5, 30), st.floats(-5, 30)),
    q=arrays(np.float64, 4, elements=st.floats(0.1, 1)),
    t=arrays(np.float64, 3, elements=st.floats(-5, 5)),
    seed=st.integers(0, 2**16),
)
def test_backprojection_then_projection_returns_the_pixel(w, h, f, c, q, t, seed):
    cam = Camera(f, f * 1.1, c[0], c[1], w, h)
    depth = np.random.default_rng(seed).uniform(0.2, 9.0, (h, w)).astype(np.float32)
    pose = np.eye(4)
    pose[:3, :3], pose[:3, 3] = rotation(q), t
    pts, valid = backproject(depth, cam, pose)
    uv, z = project(pts, cam, pose)
    assert valid.all()
    ys, xs = np.mgrid[0:h, 0:w]
    np.testing.assert_allclose(uv[..., 0], xs, atol=2e-2)
    np.testing.assert_allclose(uv[..., 1], ys, atol=2e-2)
    np.testing.assert_allclose(z, depth, rtol=1e-4)


@FAST
@given(
    h=st.integers(1, 50),
    w=st.integers(1, 50),
    stride=st.sampled_from([4, 14]),
    n=st.integers(1, 6),
    seed=st.integers(0, 2**16),
)
def test_pooling_a_partition_averages_to_the_grid_mean(h, w, stride, n, seed):
    rng = np.random.default_rng(seed)
    pad = padding(h, w, stride)
    gh, gw = (h + pad[0] + pad[1]) // stride, (w + pad[2] + pad[3]) // stride
    grid = FeatureGrid(torch.from_numpy(rng.standard_normal((5, gh, gw)).astype(np.float32)), stride, pad, (h, w))
    labels = rng.integers(0, n, (h, w))
    part = Partition(labels, n)
    pooled = pool_masks(grid, part).double().numpy()
    areas = np.bincount(labels.ravel(), minlength=n)
    mean = (pooled * areas[:, None]).sum(0) / (h * w)
    np.testing.assert_allclose(mean, upsample_grid(grid).double().mean(dim=(1, 2)).numpy(), atol=1e-4)


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture]
)
@given(w=st.integers(4, 20), h=st.integers(4, 20), n=st.integers(1, 3), seed=st.integers(0, 2**16))
def test_sens_write_read_round_trip(tmp_path_factory, w, h, n, seed):
    from regiond.scenes.sens import SensSource
    from regiond.scenes.sens_writer import write_sens

    rng = np.random.default_rng(seed)
    cam = Camera(float(rng.uniform(5, 50)), float(rng.uniform(5, 50)), w / 2 - 0.5, h / 2 - 0.5, w, h)
    frames = []
    for i in range(n):
        pose = np.eye(4)
        pose[:3, :3], pose[:3, 3] = rotation(rng.uniform(0.1, 1, 4)), rng.uniform(-3, 3, 3)
        depth = rng.integers(1, 8000, (h, w)).astype(np.float32) / 1000  # whole millimetres: exact
        frames.append(
            Frame(rgb=rng.integers(0, 256, (h, w, 3), dtype=np.uint8), depth=depth, camera=cam, pose=pose, index=i)
        )
    path = write_sens(tmp_path_factory.mktemp("sens") / "x.sens", frames, color_format="png")
    back = list(SensSource(path))
    assert len(back) == n
    for a, b in zip(frames, back):
        assert np.array_equal(a.rgb, b.rgb)
        np.testing.assert_allclose(b.depth, a.depth, atol=1e-6)
        np.testing.assert_allclose(b.pose, a.pose, atol=1e-5)
        assert (b.camera.fx, b.camera.fy, b.camera.width, b.camera.height) == (
            np.float32(cam.fx),
            np.float32(cam.fy),
            w,
            h,
        )
