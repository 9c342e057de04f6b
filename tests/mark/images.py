"""Synthetic, photo-like test images (deterministic)."""

from __future__ import annotations

import numpy as np
from PIL import Image

from tests.synthetic import photo_like

__all__ = ["photo_like", "with_alpha"]


def with_alpha(im: Image.Image, seed: int = 0) -> Image.Image:
    """RGBA version: an opaque blob on a transparent background (garbage RGB underneath)."""
    w, h = im.size
    yy, xx = np.mgrid[0:h, 0:w]
    d = np.hypot((xx - w / 2) / (0.42 * w), (yy - h / 2) / (0.42 * h))
    a = np.clip((1.0 - d) * 40, 0, 1) * 255
    rgba = np.dstack([np.asarray(im), a.astype(np.uint8)])
    return Image.fromarray(rgba, "RGBA")
