"""A tiny real TrueType font that maps a few CJK characters, built with fontTools, so the
"artist name in Japanese" path is tested without a 20 MB system font. Each glyph is a
distinct box pattern (enough for FreeType to render real, non-tofu outlines)."""

from __future__ import annotations

from pathlib import Path

from fontTools.fontBuilder import FontBuilder
from fontTools.pens.ttGlyphPen import TTGlyphPen

CHARS = "山田太郎ウサギ"


def _glyph(variant: int) -> object:
    pen = TTGlyphPen(None)
    # an outer frame plus `variant`-dependent bars: every character looks different
    for x0, y0, x1, y1 in [(50, 0, 950, 80), (50, 0, 130, 800), (870, 0, 950, 800), (50, 720, 950, 800)]:
        pen.moveTo((x0, y0))
        pen.lineTo((x0, y1))
        pen.lineTo((x1, y1))
        pen.lineTo((x1, y0))
        pen.closePath()
    for i in range(variant + 1):  # .notdef (variant -1) is the bare frame
        y = 160 + i * 75
        pen.moveTo((200, y))
        pen.lineTo((200, y + 60))
        pen.lineTo((800, y + 60))
        pen.lineTo((800, y))
        pen.closePath()
    return pen.glyph()


def build(path: Path) -> Path:
    names = [".notdef", *[f"uni{ord(c):04X}" for c in CHARS], "space"]
    fb = FontBuilder(1000, isTTF=True)
    fb.setupGlyphOrder(names)
    fb.setupCharacterMap({**{ord(c): f"uni{ord(c):04X}" for c in CHARS}, 0x20: "space"})
    empty = TTGlyphPen(None).glyph()
    glyphs = {".notdef": _glyph(-1), "space": empty}
    glyphs.update({f"uni{ord(c):04X}": _glyph(i) for i, c in enumerate(CHARS)})
    fb.setupGlyf(glyphs)
    fb.setupHorizontalMetrics({n: (1000, 0) for n in names})
    fb.setupHorizontalHeader(ascent=880, descent=-120)
    fb.setupNameTable({"familyName": "PosterTestCJK", "styleName": "Regular"})
    fb.setupOS2(sTypoAscender=880, sTypoDescender=-120, usWinAscent=880, usWinDescent=120)
    fb.setupPost()
    fb.save(str(path))
    return path
