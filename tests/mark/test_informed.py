"""Informed extraction (``poster.mark.informed``): reading the ID with the original at hand."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageOps

from poster.mark import embed, extract
from poster.mark.codec import tile_period
from poster.mark.informed import extract_informed

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


def test_tiny_inputs_give_none(original):
    assert extract_informed(original.resize((20, 20)), original, key=KEY) is None
    assert extract_informed(original, original.resize((40, 30)), key=KEY) is None
