"""Pixel art: detected, scaled by whole numbers only, its grid kept through the steps."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageDraw

from poster.protect import Limits, StepContext, build_step, pixelart
from tests.synthetic import painting, photo_like

PALETTE = np.array(
    [[16, 16, 28], [236, 220, 190], [200, 60, 40], [60, 160, 80], [50, 90, 200], [250, 200, 60]],
    dtype=np.uint8,
)


def sprite_sheet(w: int, h: int, seed: int = 0) -> Image.Image:
    """Pixel art drawn at 1:1: blocky shapes and single-pixel details from a small palette."""
    rng = np.random.default_rng(seed)
    art = np.zeros((h, w), dtype=np.int64)
    for _ in range(w * h // 60):
        x, y = rng.integers(0, w), rng.integers(0, h)
        art[y : y + rng.integers(1, 6), x : x + rng.integers(1, 6)] = rng.integers(0, len(PALETTE))
    return Image.fromarray(PALETTE[art], "RGB")


def flat_vector_art(w: int, h: int) -> Image.Image:
    """Flat colours with anti-aliased edges (like vector illustrations): not pixel art."""
    big = Image.new("RGB", (w * 4, h * 4), (240, 240, 230))
    d = ImageDraw.Draw(big)
    rng = np.random.default_rng(1)
    for _ in range(20):
        x, y, r = rng.integers(0, w * 4), rng.integers(0, h * 4), rng.integers(20, 200)
        d.ellipse((x - r, y - r, x + r, y + r), fill=tuple(int(v) for v in PALETTE[rng.integers(0, 6)]))
    return big.resize((w, h), Image.Resampling.LANCZOS)


def test_pixel_art_is_detected_at_1_to_1_and_enlarged() -> None:
    one = sprite_sheet(300, 200)
    found = pixelart.detect(one)
    assert found is not None and found.scale == 1 and found.colours <= len(PALETTE)
    big = one.resize((300 * 5, 200 * 5), Image.Resampling.NEAREST)
    assert pixelart.detect(big).scale == 5  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "image",
    [
        painting((800, 600)),
        photo_like(800, 600),
        flat_vector_art(600, 500),
        Image.new("RGB", (300, 300), (9, 9, 9)),
    ],
    ids=["painting", "photo", "flat vector art", "one colour"],
)
def test_other_art_is_not_pixel_art(image: Image.Image) -> None:
    assert pixelart.detect(image) is None


def test_smoothly_downscaled_pixel_art_is_no_longer_pixel_art() -> None:
    soft = sprite_sheet(300, 200).resize((200, 133), Image.Resampling.LANCZOS)
    assert pixelart.detect(soft) is None


def test_fit_scales_pixel_art_by_whole_numbers_only() -> None:
    art = sprite_sheet(300, 200)
    big = art.resize((3000, 2000), Image.Resampling.NEAREST)  # 10 image px per art px
    ctx = StepContext(seed=1, limits=Limits(max_edge=4096), pixel_grid=10)
    out = build_step("fit", {"max_edge": 2048}, "t").apply(big, ctx)
    assert out.size == (300 * 6, 200 * 6)  # 6 px per art pixel: the largest within 2048
    assert out.tobytes() == art.resize(out.size, Image.Resampling.NEAREST).tobytes()
    assert ctx.record["pixel_art"]["art_pixel"] == [10, 6]


def test_pixel_art_over_the_cap_at_1_to_1_is_not_scaled() -> None:
    tileset = sprite_sheet(2679, 651)  # the shape of a real 1:1 tileset
    ctx = StepContext(seed=1, limits=Limits(max_edge=4096), pixel_grid=1)
    out = build_step("fit", {"max_edge": 2048}, "t").apply(tileset, ctx)
    assert out.size == tileset.size and "not applied" in ctx.record["pixel_art"]["cap"]
    # ... unless the platform itself cannot take it: then smoothly, and said so
    ctx = StepContext(seed=1, limits=Limits(max_edge=2000), pixel_grid=1)
    out = build_step("fit", {}, "t").apply(tileset, ctx)
    assert max(out.size) == 2000 and "smoothed" in ctx.record["pixel_art"]["cap"]


def test_noise_leaves_pixel_art_alone() -> None:
    art = sprite_sheet(200, 150).resize((800, 600), Image.Resampling.NEAREST)
    ctx = StepContext(seed=1, pixel_grid=4)
    assert build_step("noise", {"psnr": 30}, "t").apply(art, ctx).tobytes() == art.tobytes()
    assert ctx.record["skipped"] == "pixel art"
