"""Pixel art: recognised so that it is scaled only by whole numbers, with nearest neighbour.

Two signs, measured on full-resolution windows of the image (a downscaled copy would blur
exactly what is looked for):
- **blocks**: the image is an enlargement of smaller art by a whole number k (2..32): colour
  changes between neighbouring columns and rows happen only every k pixels. Then the art's
  own pixels are k×k blocks.
- **hard edges, few colours** (art drawn at 1:1): where the colour changes, no pixel lies
  between its neighbours' colours (no anti-aliasing, no gradients), and the opaque part uses
  at most `MAX_COLOURS` colours.

On the project's test corpus (`benchmarks/placement.py` prints it): the 1:1 one-bit tileset
has 0.2 % in-between pixels where colours change, flat vector art 27–40 %, paintings and
photos 50–84 %; so the threshold 6 % separates them with room to spare. A painted tile atlas
(DCSS: 18 %, about 32 000 colours) is not taken for pixel art: it is scaled smoothly like a
painting.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

MAX_COLOURS = 4096
MAX_BETWEEN = 0.06  # share of in-between pixels at colour changes, art drawn at 1:1
MAX_BETWEEN_BLOCKS = 0.15  # the same for the art inside k×k blocks (k >= 2)
MAX_SCALE = 32
WINDOW = 512  # side of each analysis window (full resolution)


@dataclass(frozen=True)
class PixelArt:
    scale: int  # image pixels per art pixel along each axis (1: drawn at 1:1)
    colours: int  # distinct opaque colours (counted in the analysis windows)
    between: float  # share of in-between pixels at colour changes (anti-aliasing)


def _windows(image: Image.Image) -> list[tuple[np.ndarray, tuple[int, int]]]:
    """Up to four full-resolution RGBA windows with their top-left corners (the whole image
    when it is small)."""
    w, h = image.size
    if w * h <= 4 * WINDOW * WINDOW:
        return [(np.asarray(image.convert("RGBA")), (0, 0))]
    out = []
    for fx, fy in ((0.25, 0.25), (0.75, 0.25), (0.25, 0.75), (0.75, 0.75)):
        x0 = int(max(0, min(w - WINDOW, fx * w - WINDOW / 2)))
        y0 = int(max(0, min(h - WINDOW, fy * h - WINDOW / 2)))
        out.append((np.asarray(image.crop((x0, y0, x0 + WINDOW, y0 + WINDOW)).convert("RGBA")), (x0, y0)))
    return out


def _clean(a: np.ndarray) -> np.ndarray:
    a = a.copy()
    a[a[..., 3] == 0] = 0  # colours under fully transparent pixels do not count
    return a


def _between_share(a: np.ndarray) -> tuple[int, int]:
    """(in-between pixels, colour changes) along rows and columns of an RGBA array."""
    v = a[..., :3].astype(np.int16)
    between = changes = 0
    for arr in (v, v.transpose(1, 0, 2)):
        left, mid, right = arr[:, :-2], arr[:, 1:-1], arr[:, 2:]
        change = np.abs(left - right).sum(-1) > 30
        inside = ((mid > np.minimum(left, right)) & (mid < np.maximum(left, right))) | (left == right)
        strict = np.all(inside, axis=-1) & np.any(mid != left, -1) & np.any(mid != right, -1)
        between += int((strict & change).sum())
        changes += int(change.sum())
    return between, changes


def _block_scale(windows: list[np.ndarray], origins: list[tuple[int, int]]) -> int:
    """The largest k for which colour changes fall only on multiples of k (grid at 0, 0)."""
    col_hits: dict[int, int] = {}
    row_hits: dict[int, int] = {}
    for a, (x0, y0) in zip(windows, origins, strict=True):
        v = a.astype(np.int16)
        cols = np.nonzero(np.any(np.abs(np.diff(v, axis=1)).sum(-1) > 0, axis=0))[0] + 1 + x0
        rows = np.nonzero(np.any(np.abs(np.diff(v, axis=0)).sum(-1) > 0, axis=1))[0] + 1 + y0
        for c in cols:
            col_hits[int(c)] = 1
        for r in rows:
            row_hits[int(r)] = 1
    if len(col_hits) < 8 or len(row_hits) < 8:  # too little structure to tell a grid
        return 1
    cols, rows = np.array(sorted(col_hits)), np.array(sorted(row_hits))
    for k in range(MAX_SCALE, 1, -1):
        if np.all(cols % k == 0) and np.all(rows % k == 0):
            return k
    return 1


def detect(image: Image.Image) -> PixelArt | None:
    """PixelArt when the image is pixel art (at 1:1 or enlarged by a whole number), else None."""
    if min(image.size) < 8:
        return None
    found = _windows(image)
    windows = [_clean(a) for a, _origin in found]
    origins = [origin for _a, origin in found]
    # Colours window by window: a painting has more than 65536 in its first window already,
    # and then the other three need not be counted (the union has at least as many).
    seen = np.empty(0, np.uint32)
    for a in windows:
        opaque = np.ascontiguousarray(a[a[..., 3] == 255].reshape(-1, 4)).view(np.uint32).ravel()
        seen = np.unique(np.concatenate([seen, opaque]))
        if len(seen) > 65536:  # photos and paintings: no need to look further
            return None
    colours = len(seen)
    scale = _block_scale(windows, origins)
    if scale > 1:
        # the art inside the blocks: one pixel per block
        art = [
            a[(-y0) % scale :: scale, (-x0) % scale :: scale]
            for a, (x0, y0) in zip(windows, origins, strict=True)
        ]
        between, changes = map(sum, zip(*(_between_share(a) for a in art), strict=True))
        share = between / max(1, changes)
        return PixelArt(scale, colours, share) if share <= MAX_BETWEEN_BLOCKS else None
    between, changes = map(sum, zip(*(_between_share(a) for a in windows), strict=True))
    share = between / max(1, changes)
    if changes == 0 or colours > MAX_COLOURS or share > MAX_BETWEEN:
        return None
    return PixelArt(1, colours, share)


def whole_scale(art_scale: int, size: tuple[int, int], limit: float) -> int:
    """The largest whole number of image pixels per art pixel (at most the current
    `art_scale`) that keeps the image within `limit` (a factor on its current size);
    0 when even 1:1 is too large."""
    if limit >= 1.0:
        return art_scale
    return int(np.floor(art_scale * limit + 1e-9))


def enlarge(image: Image.Image, art_scale: int, new_scale: int) -> Image.Image:
    """The image with each art pixel as new_scale × new_scale pixels (nearest neighbour:
    exact for a grid starting at 0, 0)."""
    if new_scale == art_scale:
        return image
    w, h = image.size
    size = (max(1, w * new_scale // art_scale), max(1, h * new_scale // art_scale))
    return image.resize(size, Image.Resampling.NEAREST)
