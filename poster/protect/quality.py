"""Visual cost of a variant against its original: PSNR, SSIM and a side-by-side comparison.

numpy only (no scipy/scikit-image in the default install). Everything is computed in bands of
rows in float32, so measuring an 8000² variant does not need gigabytes of float copies.
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image, ImageDraw

BAND_ROWS = 512
WIN = 7  # SSIM window (uniform 7×7, as scikit-image's default)
C1 = (0.01 * 255) ** 2
C2 = (0.03 * 255) ** 2


def psnr(a: Image.Image, b: Image.Image) -> float:
    """PSNR in dB over the RGB channels (inf for identical images)."""
    _same_size(a, b)
    x, y = np.asarray(a.convert("RGB")), np.asarray(b.convert("RGB"))
    total = 0.0
    for top in range(0, x.shape[0], BAND_ROWS):
        d = x[top : top + BAND_ROWS].astype(np.float32) - y[top : top + BAND_ROWS].astype(np.float32)
        total += float(np.square(d, dtype=np.float32).sum(dtype=np.float64))
    mse = total / x.size
    return math.inf if mse == 0 else 10.0 * math.log10(255.0**2 / mse)


def _box_valid(a: np.ndarray) -> np.ndarray:
    """Mean over every full WIN×WIN window (output shrinks by WIN-1 in each axis)."""
    c = np.cumsum(a, axis=0, dtype=np.float64)
    c = np.concatenate([c[WIN - 1 : WIN], c[WIN:] - c[:-WIN]], axis=0)
    c = np.cumsum(c, axis=1)
    c = np.concatenate([c[:, WIN - 1 : WIN], c[:, WIN:] - c[:, :-WIN]], axis=1)
    return (c / (WIN * WIN)).astype(np.float32)


def ssim(a: Image.Image, b: Image.Image) -> float:
    """Mean SSIM of the luma (Wang et al. 2004, uniform 7×7 window, K1=0.01, K2=0.03)."""
    _same_size(a, b)
    x = np.asarray(a.convert("L"))
    y = np.asarray(b.convert("L"))
    h = x.shape[0]
    if min(x.shape) < WIN:
        return 1.0 if np.array_equal(x, y) else 0.0
    total, count = 0.0, 0
    step = BAND_ROWS
    for top in range(0, h - WIN + 1, step):
        bottom = min(h, top + step + WIN - 1)  # overlap so every window is counted once
        xs = x[top:bottom].astype(np.float32)
        ys = y[top:bottom].astype(np.float32)
        mx, my = _box_valid(xs), _box_valid(ys)
        sxx = _box_valid(xs * xs) - mx * mx
        syy = _box_valid(ys * ys) - my * my
        sxy = _box_valid(xs * ys) - mx * my
        s = ((2 * mx * my + C1) * (2 * sxy + C2)) / ((mx * mx + my * my + C1) * (sxx + syy + C2))
        total += float(s.sum(dtype=np.float64))
        count += s.size
    return total / count


def _same_size(a: Image.Image, b: Image.Image) -> None:
    if a.size != b.size:
        raise ValueError(f"images differ in size: {a.size} vs {b.size}")


def _detail_crop(image: Image.Image, side: int) -> tuple[int, int, int, int]:
    """The square of `side` px with the most detail (where protection costs show first)."""
    small = image.convert("L").resize((max(1, image.width // 8), max(1, image.height // 8)))
    arr = np.asarray(small, dtype=np.float32)
    gy, gx = np.gradient(arr) if min(arr.shape) > 1 else (np.zeros_like(arr), np.zeros_like(arr))
    energy = np.abs(gx) + np.abs(gy)
    k = max(1, side // 8)
    best, where = -1.0, (0, 0)
    for j in range(0, max(1, arr.shape[0] - k + 1), max(1, k // 2)):
        for i in range(0, max(1, arr.shape[1] - k + 1), max(1, k // 2)):
            e = float(energy[j : j + k, i : i + k].sum())
            if e > best:
                best, where = e, (i * 8, j * 8)
    x, y = min(where[0], max(0, image.width - side)), min(where[1], max(0, image.height - side))
    return x, y, x + side, y + side


def compare(original: Image.Image, variant: Image.Image, *, panel: int = 900, zoom: int = 4) -> Image.Image:
    """Original and variant side by side, and below them the same detailed crop of both
    enlarged `zoom` times (nearest neighbour, so the noise and the mark's texture are visible)."""
    _same_size(original, variant)
    o, v = original.convert("RGB"), variant.convert("RGB")
    r = min(1.0, panel / max(o.size))
    pw, ph = max(1, round(o.width * r)), max(1, round(o.height * r))
    side = max(16, min(o.width, o.height, panel // zoom))
    box = _detail_crop(o, side)
    z = side * zoom
    gap, label = 12, 22
    w = 2 * max(pw, z) + 3 * gap
    h = label + ph + gap + z + 2 * gap
    out = Image.new("RGB", (w, h), (40, 40, 40))
    draw = ImageDraw.Draw(out)
    for col, (name, im) in enumerate((("original", o), ("variant (as posted)", v))):
        x = gap + col * (max(pw, z) + gap)
        draw.text((x, 4), name, fill=(230, 230, 230))
        out.paste(im.resize((pw, ph), Image.Resampling.LANCZOS), (x, label))
        out.paste(im.crop(box).resize((z, z), Image.Resampling.NEAREST), (x, label + ph + gap))
        # where the crop comes from, on the small view
        draw.rectangle(
            [x + box[0] * r, label + box[1] * r, x + box[2] * r, label + box[3] * r], outline=(255, 64, 64)
        )
    return out
