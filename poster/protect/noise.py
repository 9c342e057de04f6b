"""Noise: model-free perturbation with its visual cost set directly as a target PSNR.

Honestly: the evidence that model-free noise stops training is thin (fine patterns at 20 %
opacity vanished during LoRA training in the seed study). It is offered as a tunable step
whose cost is measured and shown (`poster preview --json`), not as a promise. A model-based
cloak has its own slot (`poster.protect.cloak`).

Two kinds, mixed by `texture_share` of the noise power:
- gaussian: independent per pixel and channel (high frequency; JPEG removes much of it);
- texture: a band-passed random field in luma with wavelengths around `texture_period` px
  (mid frequency, survives JPEG and downscaling better). It is never periodic, so it cannot
  be mistaken for the hidden ID's tile by the codec's synchronisation.

Everything is float32 and processed in bands of rows, so an 8000² image never needs a
full-size float copy.

Pixel art is left without noise: noise would turn each flat art pixel into a speckled block
(and its palette into thousands of colours); that is noted in the render info.
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image
from pydantic import Field

from poster.protect import Step, StepContext, StepParams

BAND_ROWS = 512


class NoiseParams(StepParams):
    psnr: float = Field(40.0, ge=20.0, le=70.0)  # target PSNR of noise alone, dB (lower: stronger)
    texture_share: float = Field(0.6, ge=0.0, le=1.0)  # share of noise power in the mid-frequency texture
    texture_period: float = Field(8.0, ge=3.0, le=64.0)  # typical wavelength of the texture, px


def _texture_field(size: tuple[int, int], period: float, rng: np.random.Generator) -> Image.Image:
    """A band-passed random field at low resolution (mode F), unit variance after upsampling.

    White noise at 1/(period/4) of the size, difference of two box blurs (a band-pass around
    the target wavelength), then bicubic upsampling (done by the caller band by band)."""
    w, h = size
    f = max(1.0, period / 4.0)
    lw, lh = max(8, math.ceil(w / f)), max(8, math.ceil(h / f))
    white = rng.standard_normal((lh, lw), dtype=np.float32)
    fine = _box(white, 1)
    coarse = _box(_box(white, 2), 2)
    band = fine - coarse
    band /= max(float(band.std()), 1e-6)
    return Image.fromarray(band, "F")


def _box(a: np.ndarray, r: int) -> np.ndarray:
    """Box blur of radius r with edge padding (float32).

    OpenCV's box filter: the padded cumulative sums it replaced cost ~0.1 CPU-s on a 2048²
    post (the sums along rows run element by element); same mean, float32 rounding aside."""
    import cv2  # a dependency (the face search, the watermark); imported here for start-up

    k = 2 * r + 1
    return cv2.blur(a.astype(np.float32, copy=False), (k, k), borderType=cv2.BORDER_REPLICATE)


def _upsampled_band(field: Image.Image, size: tuple[int, int], top: int, bottom: int) -> np.ndarray:
    """Rows top..bottom of the field upsampled to `size`, exactly as one big resize would give
    (the `box` argument maps the band to its source region, so bands join without seams)."""
    w, h = size
    sy = field.height / h
    src = (0.0, top * sy, float(field.width), bottom * sy)
    band = field.resize((w, bottom - top), Image.Resampling.BICUBIC, box=src)
    return np.asarray(band, dtype=np.float32)


class Noise(Step):
    name = "noise"
    Params = NoiseParams
    params: NoiseParams

    def apply(self, image: Image.Image, ctx: StepContext) -> Image.Image:
        p = self.params
        if ctx.pixel_grid:
            ctx.record["skipped"] = "pixel art"
            return image
        rng = ctx.rng()
        w, h = image.size
        sigma = 255.0 / (10.0 ** (p.psnr / 20.0))  # RMS error for the target PSNR
        s_tex = sigma * math.sqrt(p.texture_share)
        s_gau = sigma * math.sqrt(1.0 - p.texture_share)
        field = _texture_field((w, h), p.texture_period, rng) if s_tex > 0 else None
        if field is not None:  # bicubic upsampling loses some variance: measure it once
            probe = _upsampled_band(field, (w, h), h // 2 - min(h, 256) // 2, h // 2 + min(h, 256) // 2)
            s_tex /= max(float(probe.std()), 1e-3)
        arr = np.array(image)  # one uint8 copy; edited in place band by band
        nc = 3
        for top in range(0, h, BAND_ROWS):
            bottom = min(h, top + BAND_ROWS)
            band = arr[top:bottom, :, :nc].astype(np.float32)
            if s_gau > 0:
                band += rng.standard_normal(band.shape, dtype=np.float32) * np.float32(s_gau)
            if field is not None:
                band += (_upsampled_band(field, (w, h), top, bottom) * np.float32(s_tex))[..., None]
            np.rint(band, out=band)
            np.clip(band, 0, 255, out=band)
            arr[top:bottom, :, :nc] = band.astype(np.uint8)
        return Image.fromarray(arr, image.mode)
