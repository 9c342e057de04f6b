"""Composition at thumbnail scale: find reworks of an artwork ("AI tracing", img2img).

A rework keeps the composition and the layout of light and dark and regenerates every
detail: lines are re-drawn, areas smoothed or posterised, hues shifted. At thumbnail size it
looks the same. The descriptor is therefore the lowest spatial frequencies of the picture's
lightness: the luma (transparency over white) box-averaged to 64 x 64, its 2-D DCT, the
coefficients (u, v) with u, v < K except the mean, each multiplied by its frequency
sqrt(u^2 + v^2) (natural images fall off as 1/f; this evens out the weight of coarse and
fine layout, so the similarity of two unrelated images is a sum of many independent terms
instead of a contest of their brightest-at-the-top gradients), then scaled to unit length.

The similarity of two images is the inner product of their descriptors (1: same layout). A
left-right mirror multiplies column u by (-1)^u, so a mirrored rework costs nothing extra.
The reporting threshold (REWORK_SIMILARITY) is calibrated in benchmarks/trace_calibration.py
on more than 10,000 images unrelated to the indexed art (procedural art, photos and
illustrations that packages ship, and augmented copies of them) and on the pairs of those
images from different sources: at the threshold, none of them matched.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

GRID = 64
K = 10  # frequencies per axis kept
DIMS = K * K - 1
# Calibrated in benchmarks/trace_calibration.py (benchmarks/TRACE_RESULTS.md, 2026-12-02).
# At the old 0.80, unrelated images were called reworks: openclipart's card back back03.png
# 0.806 as is and 0.84 posterised (to revoy_forest_painting; tests/test_composition.py). Of
# 10,294 unrelated queries (package images and procedural art, with augmentations) against
# 320 indexed artworks the highest was 0.844; but compared with each other — 18,528,245
# pairs of 6,938 of them from different sources, the stand-in for a larger archive — they reached
# 0.935 (a Tux Paint apricot vs an Endless Sky menu picture), with 90 pairs >= 0.88 and none
# >= 0.94. 0.95 keeps a margin over that, at the cost of recall: 74 of the 120 reworks of
# the rework set are named (62 %; 99 at 0.88, 109 at 0.80). No wrong answer beats recall.
REWORK_SIMILARITY = 0.95
MIN_ENERGY = 2.0  # below this (near-flat thumbnails) no composition match is reported


def score_of(similarity: float) -> float:
    """0.5 at REWORK_SIMILARITY, 1 at identical composition."""
    s = (similarity - REWORK_SIMILARITY) / (1.0 - REWORK_SIMILARITY)
    return float(min(1.0, max(0.0, 0.5 + 0.5 * s)))


def _dct(n: int, k: int) -> np.ndarray:
    u = np.arange(k)[:, None]
    j = np.arange(n)[None, :]
    m = np.sqrt(2.0 / n) * np.cos(np.pi / (2 * n) * u * (2 * j + 1))
    m[0] /= np.sqrt(2.0)
    return m


_D = _dct(GRID, K)
_U, _V = np.meshgrid(np.arange(K), np.arange(K))  # _U: horizontal frequency (columns)
_W = np.sqrt(_U**2 + _V**2)
_KEEP = (_U + _V) > 0
_FLIP = np.where(_U % 2 == 1, -1.0, 1.0)[_KEEP]


def luma_grid(image: Image.Image, background: tuple[int, int, int] = (255, 255, 255)) -> np.ndarray:
    im = image
    if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
        rgba = im.convert("RGBA")
        base = Image.new("RGBA", rgba.size, (*background, 255))
        im = Image.alpha_composite(base, rgba)
    im = im.convert("RGB")
    if max(im.size) > 4 * GRID:
        factor = max(1, min(im.size) // (2 * GRID))
        if factor >= 2:
            im = im.reduce(factor)
    rgb = np.asarray(im.resize((GRID, GRID), Image.Resampling.BOX), dtype=np.float64)
    return rgb[..., 0] * 0.299 + rgb[..., 1] * 0.587 + rgb[..., 2] * 0.114


def describe(image: Image.Image, background: tuple[int, int, int] = (255, 255, 255)) -> np.ndarray:
    """The unit-length descriptor (DIMS,) float32; zeros for a flat image."""
    return from_grid(luma_grid(image, background))


def from_grid(grid: np.ndarray) -> np.ndarray:
    coeffs = _D @ grid @ _D.T  # (v, u): rows are vertical frequencies
    v = (coeffs * _W)[_KEEP]
    n = float(np.linalg.norm(v))
    if n < 1e-6:
        return np.zeros(DIMS, np.float32)
    return (v / n).astype(np.float32)


def mirror(vector: np.ndarray) -> np.ndarray:
    """The descriptor of the left-right mirror image."""
    return (vector * _FLIP).astype(np.float32)


def energy(image_or_grid: Image.Image | np.ndarray) -> float:
    """How much layout there is to compare (RMS of the kept, weighted coefficients, grey
    levels): near-flat images have too little for a composition match to mean anything."""
    grid = image_or_grid if isinstance(image_or_grid, np.ndarray) else luma_grid(image_or_grid)
    coeffs = _D @ grid @ _D.T
    return float(np.sqrt(np.mean((coeffs * _W)[_KEEP] ** 2)))
