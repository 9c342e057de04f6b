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
        # Candidates inside the art's bounding box (10-90 % of each axis, so a margin of plain
        # background or transparency never counts), biased to the lower part where signatures
        # usually sit; pick the one covering the most art so a crop must cut into it.
        bx0, by0, bx1, by1 = content_box(image)
        bw, bh = bx1 - bx0, by1 - by0
        best, best_score = None, -1.0
        for _ in range(32):
            x = int(rng.uniform(bx0 + 0.10 * bw, max(bx0 + 0.10 * bw + 1, bx0 + 0.90 * bw - stamp.width)))
            y = int(rng.uniform(by0 + 0.45 * bh, max(by0 + 0.45 * bh + 1, by0 + 0.90 * bh - stamp.height)))
            x, y = max(0, min(x, w - stamp.width)), max(0, min(y, h - stamp.height))
            score = _content_score(image, (x, y, x + stamp.width, y + stamp.height))
            if score > best_score:
                best, best_score = (x, y), score
        assert best is not None
        alpha = stamp.getchannel("A").point(lambda v: int(v * self.params.opacity))
        stamp.putalpha(alpha)
        # Composite only the stamp's box: a full-size RGBA copy of an 8000² image is 256 MB.
        box = (best[0], best[1], best[0] + stamp.width, best[1] + stamp.height)
        region = image.crop(box).convert("RGBA")
        region.alpha_composite(stamp)
        out = image.copy()
        out.paste(region if image.mode == "RGBA" else region.convert(image.mode), box[:2])
        return out
