"""The codec's small filters (``poster.mark._filters``) against their definitions."""

from __future__ import annotations

import numpy as np
import pytest

from poster.mark._filters import box, min3, power


def _box_by_definition(a: np.ndarray, r: int) -> np.ndarray:
    """The mean of every (2r+1)^2 window of the edge-replicated array, summed directly."""
    p = np.pad(a.astype(np.float64), r, mode="edge")
    h, w = a.shape
    out = np.zeros((h, w))
    for dy in range(2 * r + 1):
        for dx in range(2 * r + 1):
            out += p[dy : dy + h, dx : dx + w]
    return out / (2 * r + 1) ** 2


@pytest.mark.parametrize("r", [1, 2, 4, 9])
@pytest.mark.parametrize("shape", [(37, 53), (5, 3), (1, 1), (13, 1)])  # windows wider than the image
def test_box_is_the_window_mean_with_edges_replicated(r: int, shape: tuple[int, int]) -> None:
    a = np.random.default_rng(r).normal(size=shape) * 40 + 100
    got = box(a, r)
    assert got.dtype == np.float64 and got.shape == shape
    np.testing.assert_allclose(got, _box_by_definition(a, r), rtol=0, atol=1e-9)


def test_box_keeps_the_dtype_and_accepts_views() -> None:
    a = np.random.default_rng(1).normal(size=(40, 60)).astype(np.float32)
    got = box(a[:, ::2], 2)  # a strided view, not contiguous
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, _box_by_definition(a[:, ::2], 2), atol=1e-5)
    mask = box(np.eye(9, dtype=bool).astype(np.float64), 1)
    assert mask[4, 4] == pytest.approx(3 / 9) and mask[0, 8] == 0
    assert box(a, 0) is a


def test_power_is_never_negative_next_to_large_values() -> None:
    # a flat zero area right after huge values: a running sum can leave -1e-17 there, and
    # the codec takes the square root of the local power
    a = np.zeros((64, 64))
    a[:, :8] = 1e6
    got = power(a, 3)
    assert (got >= 0).all()
    assert np.isfinite(np.sqrt(got)).all()
    np.testing.assert_allclose(got, _box_by_definition(a * a, 3), rtol=1e-12, atol=1e-3)


def test_min3() -> None:
    a = np.arange(20.0).reshape(4, 5)
    got = min3(a)
    assert got[0, 0] == 0 and got[3, 4] == a[2, 3] and got[2, 2] == a[1, 1]
