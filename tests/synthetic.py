"""Synthetic test images used by both the tests and the benchmarks (numpy + Pillow only, so a
benchmark environment without pytest can import it)."""

from __future__ import annotations

import numpy as np
from PIL import Image


def painting(size: tuple[int, int] = (640, 480), seed: int = 0) -> Image.Image:
    """A painting-like image: smooth gradients, flat shapes and a little grain."""
    rng = np.random.default_rng(seed)
    w, h = size
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    base = np.stack(
        [
            128 + 90 * np.sin(x / (w / 3.1) + rng.uniform(0, 6)),
            128 + 90 * np.cos(y / (h / 2.3) + rng.uniform(0, 6)),
            128 + 60 * np.sin((x + y) / (w / 4.7)),
        ],
        axis=-1,
    )
    for _ in range(12):
        cx, cy, r = rng.uniform(0, w), rng.uniform(0, h), rng.uniform(20, min(w, h) / 3)
        inside = (x - cx) ** 2 + (y - cy) ** 2 < r * r
        base[inside] = base[inside] * 0.4 + rng.uniform(0, 255, 3) * 0.6
    base += rng.normal(0, 6, base.shape)
    return Image.fromarray(np.clip(base, 0, 255).astype(np.uint8), "RGB")


def photo_like(w: int, h: int, seed: int = 0) -> Image.Image:
    """Sky gradient over a 1/f-textured ground with a few soft-edged objects."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    fy = np.fft.fftfreq(h)[:, None]
    fx = np.fft.rfftfreq(w)[None, :]
    f = np.sqrt(fx**2 + fy**2)
    f[0, 0] = 1.0
    horizon = h * rng.uniform(0.35, 0.6)
    sky = np.array([rng.uniform(90, 160), rng.uniform(140, 200), rng.uniform(200, 250)])
    ground = np.array([rng.uniform(60, 140), rng.uniform(70, 150), rng.uniform(30, 90)])
    tex_spec = (rng.normal(size=f.shape) + 1j * rng.normal(size=f.shape)) / f**1.7
    tex = np.fft.irfft2(tex_spec, s=(h, w)).astype(np.float32)
    tex = (tex - tex.mean()) / tex.std()
    fine = rng.normal(0, 1, (h, w)).astype(np.float32)
    chans = []
    for c in range(3):
        top = sky[c] * (0.75 + 0.25 * yy / horizon)
        bot = ground[c] + 35 * tex + 6 * fine
        chans.append(np.where(yy < horizon, top + 2 * fine, bot))
    img = np.stack(chans, -1)
    for _ in range(6):
        cx, cy = rng.uniform(0, w), rng.uniform(0, h)
        r = rng.uniform(0.04, 0.15) * min(w, h)
        col = rng.uniform(20, 235, 3)
        d = np.sqrt((xx - cx) ** 2 + (yy - cy) ** 2)
        a = np.clip((r - d) / 3.0, 0, 1)[..., None]
        shade = (1 - 0.4 * np.clip(d / r, 0, 1))[..., None]
        img = img * (1 - a) + col * shade * a
    return Image.fromarray(np.clip(img, 0, 255).astype(np.uint8), "RGB")
