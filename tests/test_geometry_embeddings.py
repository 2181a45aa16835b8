"""Positional embeddings: Fourier features, 2D boxes, 3D positions, time."""

from __future__ import annotations

import numpy as np
import pytest

from regiond.core.errors import InputError
from regiond.geometry import (
    box_positions,
    embed_2d,
    embed_3d,
    embed_time,
    fourier_features,
    fourier_periods,
    scene_origin,
)


def test_fourier_values_and_layout():
    x = np.array([[0.25, 1.0]])
    f = fourier_features(x, num_bands=2, min_period=0.5, max_period=1.0)
    assert f.shape == (1, 8) and f.dtype == np.float32
    # dim 0 (x=0.25): sin(2π·0.25/1), sin(2π·0.25/0.5), cos(...), cos(...)
    np.testing.assert_allclose(f[0, :4], [1, 0, 0, -1], atol=1e-6)
    # dim 1 (x=1.0): whole periods → sin 0, cos 1
    np.testing.assert_allclose(f[0, 4:], [0, 0, 1, 1], atol=1e-6)


def test_fourier_periods_geometric_and_include_input():
    p = fourier_periods(4, 0.125, 1.0)
    np.testing.assert_allclose(p, [1, 0.5, 0.25, 0.125])
    f = fourier_features(np.array([0.3, 0.7]), num_bands=3, include_input=True)
    assert f.shape == (2, 7)
    np.testing.assert_allclose(f[:, -1], [0.3, 0.7], atol=1e-7)


def test_fourier_distinguishes_positions_and_is_smooth():
    xs = np.linspace(0, 1, 101)[:, None]
    f = fourier_features(xs, num_bands=6, min_period=1 / 16, max_period=2.0)
    d = np.linalg.norm(f[:, None] - f[None], axis=-1)
    assert (d + np.eye(101) * 10).min() > 0.05  # all distinct
    assert np.linalg.norm(f[1] - f[0]) < np.linalg.norm(f[50] - f[0])  # nearby → similar


def test_fourier_nan_gives_zeros():
    f = fourier_features(np.array([[np.nan, 0.5]]), num_bands=2)
    assert (f[0, :4] == 0).all() and np.abs(f[0, 4:]).sum() > 0


def test_box_positions_and_embed_2d():
    pos = box_positions([[0, 0, 64, 48], [32, 24, 64, 48]], 64, 48)
    np.testing.assert_allclose(pos, [[0.5, 0.5, 1, 1], [0.75, 0.75, 0.5, 0.5]])
    e = embed_2d([[0, 0, 64, 48]], 64, 48, num_bands=4)
    assert e.shape == (1, 4 * 2 * 4)
    # two bands: periods 2 and 1; per value x: sin(πx), sin(2πx), cos(πx), cos(2πx)
    e = embed_2d([[0, 0, 64, 48], [32, 24, 64, 48]], 64, 48, num_bands=2)
    r = np.sqrt(0.5)
    half = [1, 0, 0, -1]  # x = 0.5
    whole = [0, 0, -1, 1]  # x = 1
    three_q = [r, -1, -r, 0]  # x = 0.75
    np.testing.assert_allclose(e, [half + half + whole + whole, three_q + three_q + half + half], atol=1e-6)


def test_embed_3d_relative_to_origin_with_missing_column():
    c = np.array([[1.0, 2.0, 3.0], [np.nan, np.nan, np.nan], [2.0, 2.0, 3.0]], np.float32)
    origin = scene_origin(c)
    np.testing.assert_allclose(origin, [1.5, 2.0, 3.0])
    e = embed_3d(c, origin, num_bands=3)
    assert e.shape == (3, 3 * 2 * 3 + 1)
    np.testing.assert_array_equal(e[:, -1], [0, 1, 0])
    assert (e[1, :-1] == 0).all()
    # shifting the scene and its origin together changes nothing
    e2 = embed_3d(c + 5, scene_origin(c + 5), num_bands=3)
    np.testing.assert_allclose(e, e2, atol=1e-5)
    assert (scene_origin(np.full((2, 3), np.nan)) == 0).all()


def test_embed_time():
    e = embed_time([0, 1, 2, 3], num_bands=3)
    assert e.shape == (4, 6)
    assert not np.allclose(e[0], e[1])
    # eight bands over the default periods 64 … 0.5 halve each time: 64, 32, 16, 8, 4, 2, 1, 0.5
    e = embed_time([0, 2, 16], num_bands=8)
    c16, c8 = np.cos(np.pi / 16), np.cos(np.pi / 8)
    s16, s8, r = np.sin(np.pi / 16), np.sin(np.pi / 8), np.sqrt(0.5)
    np.testing.assert_allclose(
        e,
        [
            [0] * 8 + [1] * 8,  # t = 0
            [s16, s8, r, 1, 0, 0, 0, 0] + [c16, c8, r, 0, -1, 1, 1, 1],  # t = 2: angles π/16 … 8π
            [1, 0, 0, 0, 0, 0, 0, 0] + [0, -1, 1, 1, 1, 1, 1, 1],  # t = 16: π/2, π, 2π, …
        ],
        atol=1e-6,
    )


@pytest.mark.parametrize(
    "kw", [dict(num_bands=0), dict(min_period=0.0), dict(min_period=2.0, max_period=1.0), dict(max_period=np.inf)]
)
def test_bad_parameters(kw):
    with pytest.raises(InputError):
        fourier_features(np.zeros((1, 2)), **kw)


def test_bad_image_size():
    with pytest.raises(InputError):
        box_positions([[0, 0, 1, 1]], 0, 10)
