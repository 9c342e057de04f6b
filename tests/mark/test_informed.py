"""Informed extraction (``poster.mark.informed``): reading the ID with the original at hand."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageOps

from poster.mark import embed, extract, informed
from poster.mark.codec import tile_period
from poster.mark.informed import extract_informed
from tests.conftest import data_path

from .images import photo_like, with_alpha

KEY = b"test-key-informed"
PAYLOAD = 0x1F2E_3D4C_5B6A
WEAK = 0.3  # strength at which the blind read of these small images fails


def jpeg(im: Image.Image, q: int) -> Image.Image:
    buf = io.BytesIO()
    im.convert("RGB").save(buf, "JPEG", quality=q)
    return Image.open(io.BytesIO(buf.getvalue()))


def scaled(im: Image.Image, f: float) -> Image.Image:
    return im.resize((round(im.width * f), round(im.height * f)), Image.BICUBIC)


@pytest.fixture(scope="module")
def original() -> Image.Image:
    return photo_like(640, 480, seed=21)


@pytest.fixture(scope="module")
def weak(original) -> Image.Image:
    return embed(original, PAYLOAD, key=KEY, strength=WEAK)


def test_reads_a_weak_mark_the_blind_reader_misses(original, weak):
    copy = jpeg(scaled(weak, 0.6), 75)
    assert extract(copy, key=KEY) is None  # the image's own texture drowns this mark
    d = extract_informed(copy, original, key=KEY)
    assert d is not None and d.payload == PAYLOAD
    assert not d.mirrored
    assert d.period[0] == pytest.approx(0.6 * tile_period(640, 480), rel=0.02)


def test_crop_inside_a_screenshot_border_mirrored(original, weak):
    part = weak.crop((50, 30, 610, 440))
    canvas = Image.new("RGB", (part.width + 40, part.height + 90), (30, 30, 34))
    canvas.paste(part, (20, 60))
    ImageDraw.Draw(canvas).rectangle((10, 10, 200, 40), fill=(200, 200, 200))
    d = extract_informed(jpeg(ImageOps.mirror(canvas), 85), original, key=KEY)
    assert d is not None and d.payload == PAYLOAD and d.mirrored


def test_turned_copy(original, weak):
    copy = weak.rotate(-2.5, Image.BICUBIC, fillcolor=(255, 255, 255))
    d = extract_informed(jpeg(copy, 85), original, key=KEY)
    assert d is not None and d.payload == PAYLOAD
    assert d.rotation_deg == pytest.approx(2.5, abs=0.3)


def test_photometric_changes(original, weak):
    copy = weak.point([round(255 * (i / 255) ** 1.15) for i in range(256)] * 3)
    copy = Image.eval(copy, lambda v: min(255, int(v * 1.1)))
    d = extract_informed(jpeg(copy, 80), original, key=KEY)
    assert d is not None and d.payload == PAYLOAD


def test_nothing_read_without_a_mark_or_with_the_wrong_key_or_image(original, weak):
    assert extract_informed(jpeg(original, 90), original, key=KEY) is None  # never marked
    assert extract_informed(weak, original, key=b"another key") is None
    other = photo_like(640, 480, seed=22)
    assert extract_informed(weak, other, key=KEY) is None  # not a copy of that image
    noise = Image.fromarray(np.random.default_rng(3).integers(0, 256, (300, 300, 3), dtype=np.uint8))
    assert extract_informed(noise, original, key=KEY) is None


@pytest.mark.parametrize("background", [(255, 255, 255), (0, 0, 0)])
def test_transparent_art_flattened_on_white_or_black(background):
    art = with_alpha(photo_like(600, 600, seed=23))
    m = embed(art, PAYLOAD, key=KEY, strength=WEAK)
    flat = Image.new("RGB", m.size, background)
    flat.paste(m, mask=m.getchannel("A"))
    d = extract_informed(jpeg(flat, 85), art, key=KEY)
    assert d is not None and d.payload == PAYLOAD


def pixel_sheet(w: int = 1024, h: int = 384, seed: int = 0) -> Image.Image:
    """Sprites of 2 px pixels from a small palette, scattered on black: the DCSS-atlas kind."""
    rng = np.random.default_rng(seed)
    palette = rng.integers(0, 256, (12, 3))
    pixels = palette[rng.integers(0, 12, (h // 2, w // 2))]
    sprites = np.kron(rng.random((h // 32, w // 32)) < 0.6, np.ones((16, 16)))[: h // 2, : w // 2, None]
    return Image.fromarray((pixels * sprites).astype(np.uint8), "RGB").resize((w, h), Image.NEAREST)


@pytest.mark.parametrize(("factor", "resample"), [(0.75, Image.BILINEAR), (0.6, Image.LANCZOS)])
def test_downscaled_pixel_art_is_predicted_through_the_same_filter(monkeypatch, factor, resample):
    art = pixel_sheet()
    m = embed(art, PAYLOAD, key=KEY, strength=WEAK)
    copy = m.resize((round(m.width * factor), round(m.height * factor)), resample)
    d = extract_informed(copy, art, key=KEY)
    assert d is not None and d.payload == PAYLOAD
    # on the working grid alone (a second resampling), the sprites' edges drown this mark
    monkeypatch.setattr(informed, "CHAIN_MAX_PX", 0)
    assert extract_informed(copy, art, key=KEY) is None


def test_exact_chain_fit_finds_the_subpixel_offset():
    art = pixel_sheet(seed=1).convert("F")
    seen = np.asarray(art.resize((768, 288), Image.BILINEAR), np.float64)
    chain = informed._Chain(art, seen, (0.75, 0.3, 0.75, -0.25))  # a registration 1/3 px off
    assert chain.fit() == Image.BILINEAR
    sx, tx, sy, ty = chain.th
    assert (sx, sy) == (pytest.approx(0.75, abs=1e-4), pytest.approx(0.75, abs=1e-4))
    assert abs(tx) < 0.02 and abs(ty) < 0.02


def test_lossy_flat_art_is_reread_where_the_mark_survived():
    # WebP wipes the weak mark out of flat colour and keeps it near edges; the first read
    # fails its CRC, the re-weighted one (by the tentative answer's local match) reads it
    art = Image.open(data_path("kenney_flat_castles_bg.png"))
    payload = 0x53B4_7482_B834
    m = embed(art, payload, key=b"benchmark-key")
    buf = io.BytesIO()
    m.convert("RGB").save(buf, "WEBP", quality=80)
    d = extract_informed(Image.open(io.BytesIO(buf.getvalue())), art, key=b"benchmark-key")
    assert d is not None and d.payload == payload


def test_tiny_inputs_give_none(original):
    assert extract_informed(original.resize((20, 20)), original, key=KEY) is None
    assert extract_informed(original, original.resize((40, 30)), key=KEY) is None
