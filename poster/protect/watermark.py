"""Random visible watermark: text or the artist's logo repeated across the picture on a
lattice whose angle, spacing and phase are drawn per post, each mark nudged a little, then a
smooth random geometric warp of the whole overlay.

Why random and warped: a watermark repeated identically across a collection can be estimated
from many copies and removed (Dekel et al., CVPR 2017); one whose layout and shape differ in
every post cannot be averaged out. The layout comes only from the step seed (recorded in the
ledger), so it can be rebuilt exactly, and the layout itself identifies the post.

Why a lattice: marks of one size, angle and strength in an even pattern read as a
deliberate mark; the same number of marks scattered at random sizes, angles and opacities
reads as damage. The randomness that matters against removal (where every mark is, the
angle, the warp) stays.

Looks (`look`): presets for `density` (share of the picture covered by marks), `size` (mark
height, fraction of the short edge) and `opacity`; a value set in the step wins over the look.
Each mark is drawn light on dark areas and dark on light ones, with a thin contrasting edge.

Pixel art (`ctx.pixel_grid`): the overlay is drawn at the art's own resolution with hard
edges and enlarged by whole pixels, so every art pixel stays one uniform block; the warp
moves whole art pixels (nearest neighbour) instead of blending them.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Literal

import numpy as np
from PIL import Image, ImageDraw
from pydantic import Field, model_validator

from poster import fonts
from poster.errors import RenderError
from poster.i18n import _
from poster.protect import Step, StepContext, StepParams

REF_HEIGHT = 96  # stamps are drawn once at this text height, then scaled per placement

Look = Literal["subtle", "standard", "strong"]
# density, size range, opacity range. Measured costs (PSNR/SSIM): benchmarks/render.py.
LOOKS: dict[str, dict[str, Any]] = {
    "subtle": {"density": 0.06, "size": (0.030, 0.034), "opacity": (0.13, 0.16)},
    "standard": {"density": 0.12, "size": (0.040, 0.045), "opacity": (0.20, 0.24)},
    "strong": {"density": 0.22, "size": (0.055, 0.062), "opacity": (0.30, 0.36)},
}


class WatermarkParams(StepParams):
    look: Look = "standard"
    text: str | None = None  # default: "© <artist>"
    font: str | None = None  # TTF/OTF/TTC path (`#N`: a face of a collection); default: found
    image: str | None = None  # a logo (PNG with alpha) instead of text
    density: float | None = Field(None, ge=0.0, le=1.0)  # share of the image area covered by marks
    size: tuple[float, float] | None = None  # mark height range, fraction of the short edge
    opacity: tuple[float, float] | None = None
    rotation: float = Field(40.0, ge=0.0, le=180.0)  # max |angle| of the lattice, degrees
    jitter: float = Field(0.25, ge=0.0, le=1.0)  # how far marks stray from the lattice (1: anywhere)
    warp: float = Field(0.02, ge=0.0, le=0.1)  # displacement RMS, fraction of the short edge

    @model_validator(mode="after")
    def _ranges(self) -> WatermarkParams:
        for name in ("size", "opacity"):
            value = getattr(self, name)
            if value is None:
                continue
            lo, hi = value
            if not 0.0 < lo <= hi <= 1.0:
                raise ValueError(
                    _("{name}: need 0 < min <= max <= 1, got [{lo}, {hi}]").format(name=name, lo=lo, hi=hi)
                )
        return self

    def resolved(self) -> dict[str, Any]:
        """density, size and opacity: the step's own, else its look's."""
        preset = LOOKS[self.look]
        return {
            "density": self.density if self.density is not None else preset["density"],
            "size": tuple(self.size) if self.size is not None else preset["size"],
            "opacity": tuple(self.opacity) if self.opacity is not None else preset["opacity"],
        }


def _text_stamp(text: str, font: fonts.FontFile | None, light: bool, crisp: bool) -> Image.Image:
    font_obj = fonts.load(font, REF_HEIGHT)
    stroke = max(2, REF_HEIGHT // 24)
    bright, dark = (255, 255, 255, 255), (0, 0, 0, 255)
    fill, edge = (bright, dark) if light else (dark, bright)
    left, top, right, bottom = font_obj.getbbox(text, stroke_width=stroke)
    stamp = Image.new("RGBA", (right - left + 4, bottom - top + 4), (0, 0, 0, 0))
    draw = ImageDraw.Draw(stamp)
    if crisp:
        draw.fontmode = "1"
    draw.text((-left + 2, -top + 2), text, font=font_obj, fill=fill, stroke_width=stroke, stroke_fill=edge)
    # the edge at half strength: it separates the letters from busy art without a heavy outline
    arr = np.asarray(stamp).copy()
    is_edge = np.all(arr[..., :3] == edge[:3], axis=-1) if not crisp else np.zeros(arr.shape[:2], bool)
    arr[..., 3] = np.where(is_edge, arr[..., 3] // 2, arr[..., 3])
    return Image.fromarray(arr, "RGBA")


def _logo(path: str) -> Image.Image:
    try:
        with Image.open(Path(path).expanduser()) as im:
            logo = im.convert("RGBA")
    except OSError:
        raise RenderError(_("watermark image {path}: cannot be read").format(path=path)) from None
    box = logo.getchannel("A").getbbox()  # transparent margins would shrink the visible mark
    return logo.crop(box) if box else logo


def _paste_clipped(layer: Image.Image, stamp: Image.Image, x: int, y: int) -> None:
    """alpha_composite with a destination that may lie partly outside the layer."""
    x0, y0 = max(0, x), max(0, y)
    x1, y1 = min(layer.width, x + stamp.width), min(layer.height, y + stamp.height)
    if x1 <= x0 or y1 <= y0:
        return
    layer.alpha_composite(stamp.crop((x0 - x, y0 - y, x1 - x, y1 - y)), (x0, y0))


def warp(
    layer: Image.Image,
    rng: np.random.Generator,
    amount: float,
    resample: Image.Resampling = Image.Resampling.BILINEAR,
) -> Image.Image:
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
    return layer.transform(layer.size, Image.Transform.MESH, mesh, resample)


class Watermark(Step):
    name = "watermark"
    Params = WatermarkParams
    params: WatermarkParams

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), **self.params.resolved()}

    def _motif(self, ctx: StepContext, crisp: bool) -> tuple[Image.Image, Image.Image] | None:
        """(light, dark) stamps: text, or the logo twice (a logo keeps its own colours)."""
        p = self.params
        if p.image:
            ctx.record["motif"] = "logo"
            logo = _logo(p.image)
            return logo, logo
        default = f"© {ctx.artist}" if ctx.artist else "© all rights reserved"
        text = (p.text if p.text is not None else default).strip()
        if not text:
            return None
        font = fonts.choose(text, p.font)
        ctx.record["motif"] = "text"
        ctx.record["font"] = str(font) if font else "built-in"
        return _text_stamp(text, font, True, crisp), _text_stamp(text, font, False, crisp)

    def layout(self, size: tuple[int, int], ctx: StepContext, aspect: float) -> list[dict[str, float]]:
        """Placements (centre, height, angle, opacity) from the seed alone: a lattice with a
        random angle, spacing and phase, one mark per lattice point, each nudged by `jitter`."""
        p = self.params
        look = p.resolved()
        w, h = size
        short = min(w, h)
        rng = ctx.rng()
        lo, hi = look["size"]
        mean_h = short * (lo + hi) / 2.0
        if look["density"] <= 0:
            return []
        # a lattice cell holds one mark: cell area = mark area / density
        cell_area = mean_h * mean_h * aspect / look["density"]
        spacing_x = max(mean_h * aspect * 1.15, math.sqrt(cell_area * aspect / 1.5))
        spacing_y = cell_area / spacing_x
        angle = float(rng.uniform(0.35, 1.0) * p.rotation * rng.choice([-1.0, 1.0]))
        phase = rng.uniform(0.0, 1.0, 2)
        a = math.radians(angle)
        ca, sa = math.cos(a), math.sin(a)
        # lattice points in rotated coordinates covering the whole picture (half a cell beyond)
        reach = math.hypot(w, h) / 2 + max(spacing_x, spacing_y)
        rows = range(-math.ceil(reach / spacing_y), math.ceil(reach / spacing_y) + 1)
        cols = range(-math.ceil(reach / spacing_x), math.ceil(reach / spacing_x) + 1)
        out = []
        for r in rows:
            shift = 0.5 * (r % 2)  # brick pattern: alternate rows half a cell over
            for c in cols:
                u = (c + phase[0] + shift + p.jitter * rng.uniform(-0.5, 0.5)) * spacing_x
                v = (r + phase[1] + p.jitter * rng.uniform(-0.5, 0.5)) * spacing_y
                cx, cy = w / 2 + u * ca - v * sa, h / 2 + u * sa + v * ca
                if not (-spacing_x / 2 < cx < w + spacing_x / 2 and -spacing_y / 2 < cy < h + spacing_y / 2):
                    continue
                out.append(
                    {
                        "x": float(cx),
                        "y": float(cy),
                        "height": float(short * rng.uniform(lo, hi)),
                        "angle": float(angle + p.jitter * rng.uniform(-8.0, 8.0)),
                        "opacity": float(rng.uniform(*look["opacity"])),
                    }
                )
        return out[:2000]

    def apply(self, image: Image.Image, ctx: StepContext) -> Image.Image:
        grid = ctx.pixel_grid or 1
        motif = self._motif(ctx, crisp=grid > 1)
        if motif is None or self.params.resolved()["density"] == 0:
            return image
        # pixel art: the overlay is made at the art's own resolution, then enlarged by whole pixels
        small = (max(1, image.width // grid), max(1, image.height // grid))
        work = image if grid == 1 else image.resize(small, Image.Resampling.NEAREST)
        base = motif[0]
        places = self.layout(work.size, ctx, base.width / base.height)
        luma = np.asarray(work.convert("L").reduce(4) if min(work.size) >= 64 else work.convert("L"))
        fy, fx = luma.shape[0] / work.height, luma.shape[1] / work.width
        layer = Image.new("RGBA", work.size, (0, 0, 0, 0))
        resample = Image.Resampling.NEAREST if grid > 1 else Image.Resampling.BICUBIC
        for pl in places:
            sy = min(luma.shape[0] - 1, max(0, int(pl["y"] * fy)))
            sx = min(luma.shape[1] - 1, max(0, int(pl["x"] * fx)))
            stamp = motif[0] if luma[sy, sx] < 150 else motif[1]  # light marks on dark art
            sh = max(4, round(pl["height"]))
            sw = max(4, round(stamp.width * sh / stamp.height))
            s = stamp.resize((sw, sh), Image.Resampling.NEAREST if grid > 1 else Image.Resampling.LANCZOS)
            s = s.rotate(pl["angle"], resample, expand=True)
            s.putalpha(s.getchannel("A").point(lambda v, o=pl["opacity"]: round(v * o)))
            _paste_clipped(layer, s, round(pl["x"] - s.width / 2), round(pl["y"] - s.height / 2))
        ctx.record["marks"] = len(places)
        # A second generator for the warp: the layout stays the same if warp is changed.
        layer = warp(layer, np.random.default_rng([ctx.seed, 1]), self.params.warp, resample)
        if grid > 1:  # a partial art pixel at the right/bottom edge stays unmarked
            big = layer.resize((work.width * grid, work.height * grid), Image.Resampling.NEAREST)
            layer = Image.new("RGBA", image.size, (0, 0, 0, 0))
            layer.paste(big, (0, 0))
        if image.mode == "RGBA":  # marks only over the art, never filling transparent areas
            alpha = image.getchannel("A")
            out = image.copy()
            out.alpha_composite(layer)
            out.putalpha(alpha)
            return out
        out = image.convert("RGBA")
        out.alpha_composite(layer)
        return out.convert(image.mode)
