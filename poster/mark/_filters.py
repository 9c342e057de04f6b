"""Small image filters (no scipy)."""

from __future__ import annotations

import cv2
import numpy as np


def box(a: np.ndarray, r: int) -> np.ndarray:
    """Mean over a (2r+1) x (2r+1) window, edges replicated."""
    if r <= 0:
        return a
    # OpenCV's running-sum blur: ten times numpy's two cumsum passes (whose temporaries made
    # this a fifth of a trace's time), the same means to ~1e-13
    n = 2 * r + 1
    work = a if a.dtype in (np.float32, np.float64) else a.astype(np.float64)
    out = cv2.blur(np.ascontiguousarray(work), (n, n), borderType=cv2.BORDER_REPLICATE)
    return out.astype(a.dtype, copy=False)


def power(a: np.ndarray, r: int) -> np.ndarray:
    """Mean of ``a`` squared over a (2r+1) x (2r+1) window: a running sum can leave -1e-17
    where the true mean is 0, and the square root of that is NaN."""
    return np.maximum(box(a * a, r), 0.0)


def min3(a: np.ndarray) -> np.ndarray:
    """3 x 3 minimum filter (edges replicated)."""
    p = np.pad(a, 1, mode="edge")
    h, w = a.shape
    out = p[1:-1, 1:-1].copy()
    for dy in (0, 1, 2):
        for dx in (0, 1, 2):
            np.minimum(out, p[dy : dy + h, dx : dx + w], out=out)
    return out
