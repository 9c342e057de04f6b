"""Random visible watermark: text or a logo at random positions, rotations, scales and
opacities, then a smooth random geometric warp of the whole overlay.

Why random and warped: a watermark repeated identically across a collection can be estimated
from many copies and removed (Dekel et al., CVPR 2017); one whose layout and shape differ in
every post cannot be averaged out. The layout comes only from the step seed (recorded in the
ledger), so it can be rebuilt exactly, and the layout itself identifies the post.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw
from pydantic import Field, model_validator

from poster.errors import RenderError
from poster.protect import Step, StepContext, StepParams
from poster.protect.signature import check_glyphs, load_font

REF_HEIGHT = 96  # stamps are drawn once at this text height, then scaled per placement


class WatermarkParams(StepParams):
    text: str | None = None  # default: "© <artist>"
    font: str | None = None  # TTF/OTF/TTC path; needed for CJK text
    image: str | None = None  # a logo (PNG with alpha) instead of text
    density: float = Field(0.2, ge=0.0, le=1.0)  # share of the image area covered by marks
    size: tuple[float, float] = (0.04, 0.09)  # mark height range, fraction of the short edge
    opacity: tuple[float, float] = (0.10, 0.28)
    rotation: float = Field(40.0, ge=0.0, le=180.0)  # max |angle|, degrees
    warp: float = Field(0.02, ge=0.0, le=0.1)  # displacement RMS, fraction of the short edge

    @model_validator(mode="after")
    def _ranges(self) -> WatermarkParams:
        for name in ("size", "opacity"):
            lo, hi = getattr(self, name)
            if not 0.0 < lo <= hi <= 1.0:
                raise ValueError(f"{name}: need 0 < min <= max <= 1, got [{lo}, {hi}]")
        return self


def _text_stamp(text: str, font_path: str | None, light: bool) -> Image.Image:
    font = load_font(font_path, REF_HEIGHT)
    check_glyphs(font, text, font_path, "watermark")
    stroke = REF_HEIGHT // 14
    fill, edge = ((255, 255, 255, 255), (0, 0, 0, 255)) if light else ((0, 0, 0, 255), (255, 255, 255, 255))
    left, top, right, bottom = font.getbbox(text, stroke_width=stroke)
    stamp = Image.new("RGBA", (right - left + 4, bottom - top + 4), (0, 0, 0, 0))
    ImageDraw.Draw(stamp).text(
        (-left + 2, -top + 2), text, font=font, fill=fill, stroke_width=stroke, stroke_fill=edge
    )
    return stamp


def _logo(path: str) -> Image.Image:
    try:
        with Image.open(Path(path).expanduser()) as im:
            return im.convert("RGBA")
    except OSError:
        raise RenderError(f"watermark image {path}: cannot be read") from None


def _paste_clipped(layer: Image.Image, stamp: Image.Image, x: int, y: int) -> None:
    """alpha_composite with a destination that may lie partly outside the layer."""
    x0, y0 = max(0, x), max(0, y)
    x1, y1 = min(layer.width, x + stamp.width), min(layer.height, y + stamp.height)
    if x1 <= x0 or y1 <= y0:
        return
    layer.alpha_composite(stamp.crop((x0 - x, y0 - y, x1 - x, y1 - y)), (x0, y0))


def warp(layer: Image.Image, rng: np.random.Generator, amount: float) -> Image.Image:
    """Smooth random warp: a mesh of quads whose corners are displaced at random.

    Node displacements are bounded to a third of a cell so quads never fold over."""
    w, h = layer.size
    short = min(w, h)
    if amount <= 0:
        return layer
    cell = max(16, short // 6)
    nx, ny = math.ceil(w / cell), math.ceil(h / cell)
    xs = np.linspace(0, w, nx + 1)
    ys = np.linspace(0, h, ny + 1)
    limit = cell / 3.0
    d = np.clip(rng.normal(0.0, amount * short, (ny + 1, nx + 1, 2)), -limit, limit)
    sx = xs[None, :] + d[..., 0]
    sy = ys[:, None] + d[..., 1]
    mesh = []
    for j in range(ny):
        for i in range(nx):
            box = (round(xs[i]), round(ys[j]), round(xs[i + 1]), round(ys[j + 1]))
            quad = (
                sx[j, i], sy[j, i],  # upper left
                sx[j + 1, i], sy[j + 1, i],  # lower left
                sx[j + 1, i + 1], sy[j + 1, i + 1],  # lower right
                sx[j, i + 1], sy[j, i + 1],  # upper right
            )  # fmt: skip
            mesh.append((box, tuple(float(v) for v in quad)))
    return layer.transform(layer.size, Image.Transform.MESH, mesh, Image.Resampling.BILINEAR)


class Watermark(Step):
    name = "watermark"
    Params = WatermarkParams
    params: WatermarkParams

    def _stamps(self, ctx: StepContext) -> list[Image.Image]:
        p = self.params
        if p.image:
            return [_logo(p.image)]
        default = f"© {ctx.artist}" if ctx.artist else "© all rights reserved"
        text = (p.text if p.text is not None else default).strip()
        if not text:
            return []
        return [_text_stamp(text, p.font, light=True), _text_stamp(text, p.font, light=False)]

    def layout(self, size: tuple[int, int], ctx: StepContext, aspect: float) -> list[dict[str, float]]:
        """Placements (centre, height, angle, opacity, variant) from the seed alone."""
        p = self.params
        w, h = size
        short = min(w, h)
        rng = ctx.rng()
        mean_h = short * (p.size[0] + p.size[1]) / 2.0
        n = min(400, math.ceil(p.density * w * h / (mean_h * mean_h * aspect)))
        if n <= 0:
            return []
        # Stratified: one mark per cell of a jittered grid, so marks cover the whole picture
        # (a crop cannot avoid them) while every position is still random.
        gx = max(1, round(math.sqrt(n * w / h)))
        gy = max(1, math.ceil(n / gx))
        cells = rng.permutation(gx * gy)[:n]
        out = []
        for c in cells:
            cx, cy = (c % gx + rng.uniform()) * w / gx, (c // gx + rng.uniform()) * h / gy
            out.append(
                {
                    "x": float(cx),
                    "y": float(cy),
                    "height": float(short * rng.uniform(*p.size)),
                    "angle": float(rng.uniform(-p.rotation, p.rotation)),
                    "opacity": float(rng.uniform(*p.opacity)),
                    "variant": float(rng.integers(0, 2)),
                }
            )
        return out

    def apply(self, image: Image.Image, ctx: StepContext) -> Image.Image:
        stamps = self._stamps(ctx)
        if not stamps or self.params.density == 0:
            return image
        base = stamps[0]
        places = self.layout(image.size, ctx, base.width / base.height)
        layer = Image.new("RGBA", image.size, (0, 0, 0, 0))
        for pl in places:
            stamp = stamps[int(pl["variant"]) % len(stamps)]
            sh = max(4, round(pl["height"]))
            sw = max(4, round(stamp.width * sh / stamp.height))
            s = stamp.resize((sw, sh), Image.Resampling.BICUBIC, reducing_gap=2.0)
            s = s.rotate(pl["angle"], Image.Resampling.BICUBIC, expand=True)
            s.putalpha(s.getchannel("A").point(lambda v, o=pl["opacity"]: round(v * o)))
            _paste_clipped(layer, s, round(pl["x"] - s.width / 2), round(pl["y"] - s.height / 2))
        # A second generator for the warp: the layout stays the same if warp is changed.
        layer = warp(layer, np.random.default_rng([ctx.seed, 1]), self.params.warp)
        if image.mode == "RGBA":  # marks only over the art, never filling transparent areas
            alpha = image.getchannel("A")
            out = image.copy()
            out.alpha_composite(layer)
            out.putalpha(alpha)
            return out
        out = image.convert("RGBA")
        out.alpha_composite(layer)
        return out.convert(image.mode)
