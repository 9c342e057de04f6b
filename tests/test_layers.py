"""poster.layers: which post's visible layers a copy shows — one post, none (the source file),
or nothing to say (a rework, which lacks the layers too but is no copy of the file)."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFilter, ImageOps

from poster import layers
from tests.synthetic import photo_like

IDENTITY = np.eye(3)


def jpeg(im: Image.Image, q: int) -> Image.Image:
    buf = io.BytesIO()
    im.convert("RGB").save(buf, "JPEG", quality=q)
    return Image.open(io.BytesIO(buf.getvalue())).convert("RGB")


def with_marks(im: Image.Image, seed: int) -> Image.Image:
    """A post's visible layers: semi-transparent marks at random places (a stand-in for the
    watermark step: the layer module only sees pixels that differ from the original)."""
    rng = np.random.default_rng(seed)
    over = Image.new("RGBA", im.size, (0, 0, 0, 0))
    d = ImageDraw.Draw(over)
    for _ in range(14):
        x, y = int(rng.integers(0, im.width - 90)), int(rng.integers(0, im.height - 30))
        d.rectangle((x, y, x + 90, y + 14), fill=(255, 255, 255, 110))
        d.ellipse((x, y + 16, x + 24, y + 40), outline=(20, 20, 20, 140), width=3)
    return Image.alpha_composite(im.convert("RGBA"), over).convert("RGB")


def rework(im: Image.Image) -> Image.Image:
    """img2img-like: smoothed, posterised, hue-shifted, re-drawn edges."""
    a = np.asarray(im.filter(ImageFilter.MedianFilter(5)), dtype=np.float32)
    a = np.round(a / 255 * 4) / 4 * 255
    out = Image.fromarray(a.astype(np.uint8)).convert("HSV")
    hsv = np.asarray(out).copy()
    hsv[..., 0] = (hsv[..., 0].astype(int) + 20) % 256
    out = Image.fromarray(hsv, "HSV").convert("RGB")
    edges = ImageOps.invert(
        out.convert("L").filter(ImageFilter.FIND_EDGES).point(lambda v: 255 if v > 40 else 0)
    )
    return jpeg(Image.composite(out, Image.new("RGB", out.size), edges), 80)


@pytest.fixture(scope="module")
def art() -> tuple[Image.Image, dict[str, Image.Image | None]]:
    original = photo_like(640, 480, 21)
    return original, {"post-a": with_marks(original, 1), "post-b": with_marks(original, 2)}


def test_copy_of_the_original_is_from_no_post(art: tuple[Image.Image, dict[str, Image.Image | None]]) -> None:
    original, variants = art
    got = layers.compare(jpeg(original, 60), original, variants, IDENTITY)
    assert got is not None and got["verdict"] == "not from any post", got
    assert got["noise"] <= layers.COPY_NOISE


def test_copy_of_one_post_names_it(art: tuple[Image.Image, dict[str, Image.Image | None]]) -> None:
    original, variants = art
    post_b = variants["post-b"]
    assert post_b is not None
    got = layers.compare(jpeg(post_b, 70), original, variants, IDENTITY)
    assert got is not None and (got["verdict"], got["post"]) == ("exact post", "post-b"), got


def test_a_rework_is_not_called_a_leak_of_the_source_file(
    art: tuple[Image.Image, dict[str, Image.Image | None]],
) -> None:
    """A rework lacks every post's layers too; it used to be reported as "not from any post"
    (a leak of the source file). Its residual from the original says it is no copy."""
    original, variants = art
    got = layers.compare(rework(original), original, variants, IDENTITY)
    assert got is not None and got["verdict"] == "artwork only", got
    assert got["noise"] > layers.COPY_NOISE


def test_a_rework_of_a_post_that_keeps_its_layers_is_not_that_post(
    art: tuple[Image.Image, dict[str, Image.Image | None]],
) -> None:
    """An img2img rework made from the X post can keep the post's watermark (the attack
    table's Pepper&Carrot page, 2026-12-03): it is no copy of that post's file, so the layers
    name no post; trace reports the artwork (or a likely rework), never an exact post."""
    original, variants = art
    post_a = variants["post-a"]
    assert post_a is not None
    strong = Image.fromarray(  # the rework, with post-a's marks kept at full strength
        np.where(
            np.abs(np.asarray(post_a, np.int16) - np.asarray(original, np.int16)) > 12,
            np.asarray(post_a),
            np.asarray(rework(original)),
        ).astype(np.uint8)
    )
    got = layers.compare(strong, original, variants, IDENTITY)
    assert got is not None and got["noise"] > layers.COPY_NOISE, got
    assert got["posts"]["post-a"]["shown"] > layers.PRESENT, got  # the layers are there
    assert got["verdict"] == "artwork only", got


def test_a_missing_variant_file_never_gives_from_no_post(
    art: tuple[Image.Image, dict[str, Image.Image | None]],
) -> None:
    original, variants = art
    got = layers.compare(jpeg(original, 60), original, {**variants, "post-c": None}, IDENTITY)
    assert got is not None and got["verdict"] == "artwork only"
    assert got["posts"]["post-c"]["measured"] is False
