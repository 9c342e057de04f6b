"""Tiny numpy image filters (no scipy)."""

from __future__ import annotations

import numpy as np


def box(a: np.ndarray, r: int) -> np.ndarray:
    """Mean over a (2r+1) x (2r+1) window, edges replicated."""
    if r <= 0:
        return a
    n = 2 * r + 1
    p = np.pad(a, r, mode="edge")
    c = np.cumsum(p, axis=0, dtype=np.float64)
    c = np.vstack([np.zeros((1, c.shape[1])), c])
    v = (c[n:] - c[:-n]) / n
    c = np.cumsum(v, axis=1)
    c = np.hstack([np.zeros((c.shape[0], 1)), c])
    return ((c[:, n:] - c[:, :-n]) / n).astype(a.dtype, copy=False)


def min3(a: np.ndarray) -> np.ndarray:
    """3 x 3 minimum filter (edges replicated)."""
    p = np.pad(a, 1, mode="edge")
    h, w = a.shape
    out = p[1:-1, 1:-1].copy()
    for dy in (0, 1, 2):
        for dx in (0, 1, 2):
            np.minimum(out, p[dy : dy + h, dx : dx + w], out=out)
    return out
