"""Resolution cap and platform fit: the cheapest real protection, and what keeps an upload
from ever being rejected for its pixel size.

Pixel art (`ctx.pixel_grid`) is scaled only by whole numbers of image pixels per art pixel,
with nearest neighbour, so its grid stays exact: the largest whole scale within the limits,
or, when even 1:1 is above the policy's cap, not at all (a fractional downscale would smear
it; the platform's own limits still apply, and only above those is it scaled smoothly).
"""

from __future__ import annotations

import math

from PIL import Image
from pydantic import Field

from poster.protect import Limits, Step, StepContext, StepParams, pixelart


def scale_limit(width: int, height: int, limits: Limits, max_edge: int | None = None) -> float:
    """The largest factor on the size that keeps within the policy cap and the limits."""
    scale = math.inf
    for edge in (max_edge, limits.max_edge):
        if edge:
            scale = min(scale, edge / max(width, height))
    if limits.max_pixels:
        scale = min(scale, math.sqrt(limits.max_pixels / (width * height)))
    return scale


def target_size(width: int, height: int, limits: Limits, max_edge: int | None = None) -> tuple[int, int]:
    """The largest size within the policy cap and the destination's edge and pixel limits."""
    scale = scale_limit(width, height, limits, max_edge)
    if scale >= 1.0:
        return width, height
    return max(1, int(width * scale)), max(1, int(height * scale))


def resize(image: Image.Image, size: tuple[int, int]) -> Image.Image:
    if image.size == size:
        return image
    # reducing_gap keeps big downscales fast without visible quality loss
    return image.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)


class FitParams(StepParams):
    max_edge: int | None = Field(None, ge=256, le=65535)


class Fit(Step):
    name = "fit"
    Params = FitParams
    params: FitParams

    def apply(self, image: Image.Image, ctx: StepContext) -> Image.Image:
        if ctx.pixel_grid:
            return self._pixel_art(image, ctx, ctx.pixel_grid)
        return resize(image, target_size(*image.size, ctx.limits, self.params.max_edge))

    def _pixel_art(self, image: Image.Image, ctx: StepContext, grid: int) -> Image.Image:
        w, h = image.size
        capped = scale_limit(w, h, ctx.limits, self.params.max_edge)
        scale = pixelart.whole_scale(grid, image.size, capped)
        if scale >= 1:
            ctx.record["pixel_art"] = {"art_pixel": [grid, scale]}  # image px per art px: before, after
            return pixelart.enlarge(image, grid, scale)
        platform = scale_limit(w, h, ctx.limits)
        if platform >= 1.0:
            note = "not applied: it would smear the pixels"
            ctx.record["pixel_art"] = {"art_pixel": [grid, grid], "cap": note}
            return image
        note = "smoothed: over the platform's limit at 1:1"
        ctx.record["pixel_art"] = {"art_pixel": [grid, None], "cap": note}
        return resize(image, target_size(w, h, ctx.limits))
