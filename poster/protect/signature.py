"""Visible signature: the artist's name drawn inside the art, where cropping it away means
cutting into the picture (never in an empty margin), and where the art is quiet — off faces
and the subject (`poster.protect.subject`) — unless the artist pins it to a corner.

The spot depends on the image alone, so a preview shows exactly where the post will have it.
The name is drawn in an installed font that has every character (`poster.fonts`), dark on
light art and light on dark art, with a thin contrasting edge.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np
from PIL import Image, ImageDraw
from pydantic import Field

from poster import fonts
from poster.errors import RenderError
from poster.i18n import _
from poster.protect import Step, StepContext, StepParams, subject

Position = Literal["auto", "bottom-right", "bottom-left", "top-right", "top-left"]
MIN_ART_HEIGHT = 9  # art pixels: the smallest legible signature drawn on a pixel-art grid


class SignatureParams(StepParams):
    text: str | None = None  # default: the config's `artist`
    font: str | None = None  # a TTF/OTF/TTC path (`#N`: a face of a collection); default: found
    size: float = Field(0.035, gt=0.005, le=0.2)  # text height as a fraction of the short edge
    opacity: float = Field(0.7, gt=0.0, le=1.0)
    image: str | None = None  # a signature image (PNG with alpha) instead of text
    position: Position = "auto"  # auto: the quietest spot of the art, away from faces
    margin: float = Field(0.03, ge=0.0, le=0.25)  # from the art's edges, fraction of the short edge


def content_box(image: Image.Image) -> tuple[int, int, int, int]:
    """Bounding box of the art: pixels that are opaque and differ from the border colour
    (measured on a small copy, so it costs nothing on big images). Whole image if unsure."""
    w, h = image.size
    f = max(1, max(w, h) // 512)
    small = image.reduce(f) if f > 1 else image
    arr = np.asarray(small.convert("RGBA"), dtype=np.int16)
    border = np.concatenate([arr[0], arr[-1], arr[:, 0], arr[:, -1]])
    bg = np.median(border[:, :3], axis=0)
    art = (np.abs(arr[..., :3] - bg).max(axis=-1) > 24) & (arr[..., 3] > 128)
    ys, xs = np.nonzero(art)
    if ys.size < 0.02 * art.size:
        return 0, 0, w, h
    x0, x1 = np.percentile(xs, [1, 99])
    y0, y1 = np.percentile(ys, [1, 99])
    return int(x0 * f), int(y0 * f), min(w, int((x1 + 1) * f)), min(h, int((y1 + 1) * f))


def _pinned(
    position: str, stamp: tuple[int, int], content: tuple[int, int, int, int], margin: int
) -> tuple[int, int]:
    x0, y0, x1, y1 = content
    sw, sh = stamp
    x = x1 - margin - sw if position.endswith("right") else x0 + margin
    y = y1 - margin - sh if position.startswith("bottom") else y0 + margin
    return x, y


def _light_on_dark(image: Image.Image, box: tuple[int, int, int, int]) -> bool:
    luma = np.asarray(image.crop(box).convert("L"), dtype=np.float32)
    return float(luma.mean()) < 140.0


class Signature(Step):
    name = "signature"
    Params = SignatureParams
    params: SignatureParams

    def _text(self, ctx: StepContext) -> str:
        p = self.params
        return (p.text if p.text is not None else ctx.artist).strip()

    def _stamp(
        self, ctx: StepContext, height: int, light: bool, grid: int = 1, short: int = 0
    ) -> Image.Image | None:
        """The signature at `height` px. On pixel art (`grid` > 1) it is drawn without
        anti-aliasing on the art's own grid, at least `MIN_ART_HEIGHT` art pixels tall so the
        letters stay legible (on a tiny sprite, where that would cover too much, at full
        resolution instead)."""
        p = self.params
        crisp = grid > 1
        up = 1
        if crisp:
            art_height = max(height // grid, MIN_ART_HEIGHT)
            if art_height * grid <= short // 4:
                up, height = grid, art_height
        if p.image:
            try:
                with Image.open(Path(p.image).expanduser()) as im:
                    stamp = im.convert("RGBA")
            except OSError:
                raise RenderError(_("signature image {path}: cannot be read").format(path=p.image)) from None
            scale = height * 1.6 / stamp.height
            size = (max(1, int(stamp.width * scale)), max(1, int(height * 1.6)))
            stamp = stamp.resize(size, Image.Resampling.NEAREST if crisp else Image.Resampling.LANCZOS)
            return stamp.resize((stamp.width * up, stamp.height * up), Image.Resampling.NEAREST)
        text = self._text(ctx)
        if not text:
            return None
        choice = fonts.choose(text, p.font)
        ctx.record["font"] = str(choice) if choice else "built-in"
        font = fonts.load(choice, height)
        stroke = max(1, height // 12)
        fill, edge = (
            ((250, 250, 250, 255), (20, 20, 20, 255)) if light else ((24, 24, 24, 255), (245, 245, 245, 255))
        )
        left, top, right, bottom = font.getbbox(text, stroke_width=stroke)
        stamp = Image.new("RGBA", (right - left + 2, bottom - top + 2), (0, 0, 0, 0))
        draw = ImageDraw.Draw(stamp)
        if crisp:
            draw.fontmode = "1"  # pixel art: no anti-aliased edge pixels between the art's pixels
        draw.text((-left + 1, -top + 1), text, font=font, fill=fill, stroke_width=stroke, stroke_fill=edge)
        return stamp.resize((stamp.width * up, stamp.height * up), Image.Resampling.NEAREST)

    def searches_faces(self, artist: str) -> bool:
        """Whether `apply` will look for faces (in the art as fitted, `ctx.art`): render
        starts that search early (`subject.prefetch_faces`)."""
        p = self.params
        return p.position == "auto" and bool(p.image or (p.text if p.text is not None else artist).strip())

    def apply(self, image: Image.Image, ctx: StepContext) -> Image.Image:
        p = self.params
        if not p.image and not self._text(ctx):
            return image
        w, h = image.size
        height = max(8, int(min(w, h) * p.size))
        grid = ctx.pixel_grid or 1
        content = content_box(image)
        margin = int(min(w, h) * p.margin)
        cost = None
        # Measure once with a light stamp to know the footprint; the colour comes after the spot.
        probe = self._stamp(ctx, height, True, grid, min(w, h))
        assert probe is not None
        if probe.width > w * 0.8:  # long names on narrow images: shrink to fit inside
            height = max(8, int(height * w * 0.8 / probe.width))
            probe = self._stamp(ctx, height, True, grid, min(w, h))
            assert probe is not None
        if p.position == "auto":
            # judged on the art itself: marks drawn by earlier steps are not "busy art"
            seen = ctx.art if ctx.art is not None and ctx.art.size == image.size else image
            cost = subject.cost_map(seen)
            x, y = subject.place(seen, probe.size, content=content, margin=margin, cost=cost)
        else:
            x, y = _pinned(p.position, probe.size, content, margin)
        if grid > 1:  # on pixel art, sit on the art's own grid
            x, y = x - x % grid, y - y % grid
        x, y = max(0, min(x, w - probe.width)), max(0, min(y, h - probe.height))
        box = (x, y, x + probe.width, y + probe.height)
        light = _light_on_dark(image, box)
        stamp = probe if light else self._stamp(ctx, height, False, grid, min(w, h))
        assert stamp is not None
        alpha = stamp.getchannel("A").point(lambda v: round(v * p.opacity))
        if grid > 1:  # whole art pixels only: one opacity per pixel, no soft edge
            alpha = alpha.point(lambda v: round(p.opacity * 255) if v >= 128 else 0)
        stamp.putalpha(alpha)
        ctx.record["box"] = list(box)
        ctx.record["placed"] = p.position
        if cost is not None:
            ctx.record["faces"] = len(cost[2])
        # Composite only the stamp's box: a full-size RGBA copy of an 8000² image is 256 MB.
        region = image.crop(box).convert("RGBA")
        region.alpha_composite(stamp)
        out = image.copy()
        out.paste(region if image.mode == "RGBA" else region.convert(image.mode), box[:2])
        return out
