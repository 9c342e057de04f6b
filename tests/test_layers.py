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


def _discs(size: tuple[int, int] = (640, 480)) -> Image.Image:
    """Hard-edged dark discs and a horizon on smooth gradients: most of the picture is calm,
    its edges are steep."""
    w, h = size
    y = np.linspace(0, 1, h)[:, None]
    x = np.linspace(0, 1, w)[None, :]
    sky = np.stack([40 + 30 * x + 0 * y, 50 + 40 * y + 0 * x, 120 + 60 * y + 0 * x], -1)
    im = Image.fromarray(np.clip(sky, 0, 255).astype(np.uint8))
    d = ImageDraw.Draw(im)
    d.rectangle((0, int(h * 0.55), w, h), fill=(30, 40, 70))
    for cx, cy, r in ((150, 120, 60), (420, 200, 75), (300, 380, 50)):
        d.ellipse((cx - r, cy - r, cx + r, cy + r), fill=(5, 5, 10))
    return im


def _edge_noise(im: Image.Image, seed: int) -> Image.Image:
    """A light post's difference from the original: faint noise of its own, strongest on the
    edges (the light policy's noise step), no visible layer elsewhere."""
    g = np.asarray(im.convert("L"), np.float32)
    gy, gx = np.gradient(g)
    edge = np.clip(np.hypot(gx, gy) / 20, 0, 1)[..., None]
    small = np.random.default_rng(seed).normal(0, 14, (g.shape[0] // 6, g.shape[1] // 6)).astype(np.float32)
    field = Image.fromarray(small, "F").resize((g.shape[1], g.shape[0]), Image.Resampling.BICUBIC)
    noise = np.asarray(field)[..., None]  # blotches about 6 px across, as the noise step's texture
    return Image.fromarray(np.clip(np.asarray(im, np.float32) + edge * noise, 0, 255).astype(np.uint8))


def test_layers_on_edges_alone_name_no_post() -> None:
    """Two light posts that differ from the original only by noise on the edges. A post is
    named only from calm pixels (EDGE_LEVEL): at edges a registration a fraction of a pixel off
    leaves a residual far above the copy's noise elsewhere, and such layers named the pixiv
    post of an unposted crop (benchmarks/TRACE_RESULTS.md, section 12). So a copy of the pixiv
    post is not named by them; an unposted copy, which shows none of them even counting the
    edges (a residual can hide layers, not fake their absence), is still from no post."""
    original = _discs()
    variants: dict[str, Image.Image | None] = {
        "pixiv": _edge_noise(original, 1),
        "xfolio": _edge_noise(original, 2),
    }
    pixiv = variants["pixiv"]
    assert pixiv is not None
    for dx in (0.0, 0.3, -0.45):
        off = np.array([[1.0, 0.0, dx], [0.0, 1.0, dx / 2], [0.0, 0.0, 1.0]])
        unposted = layers.compare(jpeg(original, 85), original, variants, off)
        assert unposted is not None and unposted["verdict"] == "not from any post", unposted
        posted = layers.compare(jpeg(pixiv, 85), original, variants, off)
        assert posted is not None and posted["verdict"] == "artwork only", posted
        for got in (unposted, posted):
            assert not any(p["measured"] for p in got["posts"].values())  # no calm pixels
            assert all(p["with_edges"]["measured"] for p in got["posts"].values())
        assert posted["posts"]["pixiv"]["with_edges"]["shown"] > layers.PRESENT  # shown, on edges only
