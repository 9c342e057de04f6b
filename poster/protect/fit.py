"""Resolution cap and platform fit: the cheapest real protection, and what keeps an upload
from ever being rejected for its pixel size."""

from __future__ import annotations

import math

from PIL import Image
from pydantic import Field

from poster.platforms.base import Capabilities
from poster.protect import Step, StepContext, StepParams


def target_size(width: int, height: int, caps: Capabilities, max_edge: int | None = None) -> tuple[int, int]:
    """The largest size within the policy cap and the platform's edge and pixel limits."""
    scale = 1.0
    for edge in (max_edge, caps.max_edge):
        if edge:
            scale = min(scale, edge / max(width, height))
    if caps.max_pixels:
        scale = min(scale, math.sqrt(caps.max_pixels / (width * height)))
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
        return resize(image, target_size(*image.size, ctx.capabilities, self.params.max_edge))
