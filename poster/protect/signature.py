"""Visible signature: the artist's name drawn inside the art, where cropping it away means
cutting into the picture (never in an empty margin)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont
from pydantic import Field

from poster.errors import RenderError
from poster.protect import Step, StepContext, StepParams

Font = ImageFont.FreeTypeFont | ImageFont.ImageFont


class SignatureParams(StepParams):
    text: str | None = None  # default: the config's `artist`
    font: str | None = None  # a TTF/OTF/TTC path; needed for CJK names
    size: float = Field(0.035, gt=0.005, le=0.2)  # text height as a fraction of the short edge
    opacity: float = Field(0.7, gt=0.0, le=1.0)
    image: str | None = None  # a signature image (PNG with alpha) instead of text


@lru_cache(maxsize=16)
def load_font(path: str | None, size: int) -> Font:
    if path is None:
        return ImageFont.load_default(size=size)
    try:
        return ImageFont.truetype(path, size=size)
    except OSError:
        raise RenderError(f"font {path}: cannot be opened as a TrueType/OpenType font") from None


def _missing_glyphs(font: Font, text: str) -> list[str]:
    """Characters the font would draw as its 'missing glyph' box (tofu)."""
    if not isinstance(font, ImageFont.FreeTypeFont):
        return [c for c in text if ord(c) > 126]
    notdef = bytes(font.getmask("\U000f0000"))  # a private-use code point no font maps
    missing = []
    for ch in dict.fromkeys(text):
        if ch.isspace():
            continue
        if bytes(font.getmask(ch)) == notdef:
            missing.append(ch)
    return missing


def check_glyphs(font: Font, text: str, path: str | None, step: str) -> None:
    """A clear error instead of a row of empty boxes in the posted image."""
    missing = _missing_glyphs(font, text)
    if missing:
        which = path or "the built-in font"
        raise RenderError(
            f"{step}: {which} cannot draw {''.join(missing)!r}; "
            f"set the {step} step's `font` to a font with those characters (e.g. Noto Sans CJK)"
        )


def _content_score(image: Image.Image, box: tuple[int, int, int, int]) -> float:
    """How much of the box is art (opaque and not flat background)."""
    region = image.crop(box)
    arr = np.asarray(region.convert("RGBA"), dtype=np.float32)
    alpha = arr[..., 3] / 255.0
    detail = arr[..., :3].std(axis=(0, 1)).mean() / 64.0
    return float(alpha.mean()) * (0.5 + min(detail, 1.0))


class Signature(Step):
    name = "signature"
    Params = SignatureParams
    params: SignatureParams

    def _stamp(self, ctx: StepContext, height: int) -> Image.Image | None:
        p = self.params
        if p.image:
            try:
                with Image.open(Path(p.image).expanduser()) as im:
                    stamp = im.convert("RGBA")
            except OSError:
                raise RenderError(f"signature image {p.image}: cannot be read") from None
            scale = height * 1.6 / stamp.height
            return stamp.resize((max(1, int(stamp.width * scale)), max(1, int(height * 1.6))))
        text = (p.text if p.text is not None else ctx.artist).strip()
        if not text:
            return None
        font = load_font(p.font, height)
        check_glyphs(font, text, p.font, "signature")
        stroke = max(1, height // 12)
        left, top, right, bottom = font.getbbox(text, stroke_width=stroke)
        stamp = Image.new("RGBA", (right - left + 2, bottom - top + 2), (0, 0, 0, 0))
        ImageDraw.Draw(stamp).text(
            (-left + 1, -top + 1),
            text,
            font=font,
            fill=(255, 255, 255, 255),
            stroke_width=stroke,
            stroke_fill=(0, 0, 0, 255),
        )
        return stamp

    def apply(self, image: Image.Image, ctx: StepContext) -> Image.Image:
        height = max(8, int(min(image.size) * self.params.size))
        stamp = self._stamp(ctx, height)
        if stamp is None:
            return image
        w, h = image.size
        if stamp.width > w * 0.8:  # long names on narrow images: shrink to fit inside
            r = w * 0.8 / stamp.width
            stamp = stamp.resize((max(1, int(stamp.width * r)), max(1, int(stamp.height * r))))
        rng = ctx.rng()
        # Candidates inside the picture (10-90 % of each axis), biased to the lower part where
        # signatures usually sit; pick the one covering the most art so a crop must cut into it.
        best, best_score = None, -1.0
        for _ in range(24):
            x = int(rng.uniform(0.10 * w, max(0.10 * w + 1, 0.90 * w - stamp.width)))
            y = int(rng.uniform(0.45 * h, max(0.45 * h + 1, 0.90 * h - stamp.height)))
            score = _content_score(image, (x, y, x + stamp.width, y + stamp.height))
            if score > best_score:
                best, best_score = (x, y), score
        assert best is not None
        alpha = stamp.getchannel("A").point(lambda v: int(v * self.params.opacity))
        stamp.putalpha(alpha)
        out = image.convert("RGBA") if image.mode != "RGBA" else image.copy()
        out.alpha_composite(stamp, best)
        return out if image.mode == "RGBA" else out.convert(image.mode)
