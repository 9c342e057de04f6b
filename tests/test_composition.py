"""poster.composition: reworks keep their composition as a whole and part by part, unrelated
pictures do not pass both checks, and trace says "no match" for the unrelated card back that
a composition threshold alone called a rework."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFilter, ImageOps

from poster import cli, composition, config, features, markkey, outbox, store, trace
from tests.conftest import data_path
from tests.synthetic import painting, photo_like

OPAQUE = (  # tests/data images without transparency (a rework below is made of the pixels)
    "kenney_flat_castles_bg.png",
    "kodim04.jpg",
    "kodim05.jpg",
    "kodim23.png",
    "revoy_chaosah_family.jpg",
    "revoy_forest_painting.jpg",
    "revoy_pencil_sketch.jpeg",
)
ALL = (
    *OPAQUE,
    "dcss_pixel_atlas_alpha_top.png",
    "peppercarrot_logo_alpha.png",
    "sachi_standing_alpha.webp",
    "openclipart_cardback_back03.png",
)
# The closest unrelated pair among tests/data and 200 seeds of each tests/synthetic generator
# (measured: 0.653; every other pair lower): two different synthetic "photos".
CLOSEST_UNRELATED = (28, 79)
CARD_BACK = "openclipart_cardback_back03.png"


def _load(name: str) -> Image.Image:
    with Image.open(data_path(name)) as im:
        im.load()
        return im.copy()


def _both(a: Image.Image, b: Image.Image) -> tuple[float, float]:
    """(composition, regions) similarity, both in the orientation the composition prefers
    (as trace compares them)."""
    ta, tb = composition.thumbnail(a), composition.thumbnail(b)
    va, vb = (composition.from_grid(composition.luma_of(t)) for t in (ta, tb))
    ra, rb = composition.regions(ta), composition.regions(tb)
    if float(va @ vb) >= float(composition.mirror(va) @ vb):
        return float(va @ vb), composition.region_similarity(ra, rb)
    return float(composition.mirror(va) @ vb), composition.region_similarity(
        composition.mirror_regions(ra), rb
    )


def _passes(a: Image.Image, b: Image.Image) -> bool:
    sim, parts = _both(a, b)
    return sim >= composition.REWORK_SIMILARITY and parts >= composition.REGION_SIMILARITY


def _rework(im: Image.Image) -> Image.Image:
    """img2img-like: the layout at 1/8 scale, smoothed, posterised. (A hue turn changes the
    lightness the descriptor compares: kodim04's skin turned green falls to 0.64.)"""
    w, h = im.size
    small = im.convert("RGB").resize((max(8, w // 8), max(8, h // 8)), Image.Resampling.BOX)
    out = small.resize((w, h), Image.Resampling.BICUBIC).filter(ImageFilter.GaussianBlur(2))
    return ImageOps.posterize(out, 3)


# (kenney_flat_castles_bg 0.949 and revoy_pencil_sketch 0.940 fall just short of 0.95 under
# this rework: the calibrated threshold names only close reworks)
@pytest.mark.parametrize("name", [n for n in OPAQUE if not n.startswith(("kenney", "revoy_pencil"))])
def test_reworks_pass_both_checks(name: str) -> None:
    im = _load(name)
    assert _passes(im, _rework(im)), _both(im, _rework(im))
    assert _passes(im, ImageOps.mirror(im.convert("RGB").filter(ImageFilter.GaussianBlur(4))))


def test_regions_mirror_is_the_mirrored_windows_with_odd_columns_negated() -> None:
    thumb = composition.thumbnail(painting((320, 240), 3))
    assert np.allclose(
        composition.regions(thumb[:, ::-1]), composition.mirror_regions(composition.regions(thumb)), atol=1e-5
    )
    # and a mirrored rework passes the check as trace makes it (in the composition's orientation)
    im = painting((320, 240), 3)
    assert _passes(im, ImageOps.mirror(_rework(im)))


def test_a_layout_alike_as_a_whole_but_not_in_its_lower_part_is_no_rework() -> None:
    """The unrelated pair the rework pass found over 0.95 (TRACE_RESULTS.md section 6): a pier
    photo and a sea under a sky, 0.954 as a whole — the same light sky over a dark lower part
    — but 0.163 part by part (planks against a gradient). Drawn here: a horizon with faint
    bands below it, and the same horizon with a gradient below (measured 0.998 and 0.458);
    the first's own rework passes both checks."""
    yy = np.mgrid[0:480, 0:640][0]
    horizon = 480 * 0.42
    bands = np.where(yy < horizon, 250, 60 + 10 * np.sin(2 * np.pi * yy / 48))
    gradient = np.where(yy < horizon, 250, 75 - 30 * (yy - horizon) / (480 - horizon))
    a, b = (Image.fromarray(np.clip(x, 0, 255).astype(np.uint8)).convert("RGB") for x in (bands, gradient))
    sim, parts = _both(a, b)
    assert sim >= composition.REWORK_SIMILARITY  # the composition alone would call it a rework
    assert parts < composition.REGION_SIMILARITY
    assert _passes(a, _rework(a))


def test_mirror_is_the_descriptor_with_odd_columns_negated() -> None:
    im = painting((320, 240), 3)
    assert np.allclose(
        composition.describe(ImageOps.mirror(im)), composition.mirror(composition.describe(im)), atol=1e-4
    )


def test_unrelated_test_images_do_not_pass_both_checks() -> None:
    ims = [_load(n) for n in ALL] + [photo_like(640, 480, s) for s in CLOSEST_UNRELATED]
    for i, a in enumerate(ims):
        for b in ims[i + 1 :]:
            assert not _passes(a, b)
    # the closest pairs, as measured: the two synthetic "photos" and the card back below
    assert _both(ims[-2], ims[-1])[0] == pytest.approx(0.653, abs=0.01)
    assert _both(_load("revoy_forest_painting.jpg"), _load(CARD_BACK))[0] == pytest.approx(0.806, abs=0.01)


def test_an_unrelated_card_back_is_no_rework_of_the_forest_painting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The false "likely rework" the calibration found: openclipart's card back (tests/data,
    public domain) against revoy_forest_painting as the archived artwork — composition 0.806
    as is, 0.847 posterised, over the old threshold of 0.80 (both are a framed rectangle);
    part by part they differ (regions 0.085 and 0.003). Trace says "no match" for both, and
    still names a rework of the painting — only when the regions and the colour checks pass
    too, and with an index segment written before those checks (computed from the archived
    original); a hue-turned rework of a second artwork, under the composition threshold the
    first two checks needed alone, is named by the colour check."""
    home = config.load(cli.init_home(tmp_path / "home"))
    art = home.outbox / "forest.jpg"
    art.write_bytes(data_path("revoy_forest_painting.jpg").read_bytes())
    portrait = home.outbox / "portrait.jpg"
    portrait.write_bytes(data_path("kodim04.jpg").read_bytes())
    for p in (art, portrait):
        os.utime(p, (time.time() - 3600,) * 2)
    back = Image.alpha_composite(Image.new("RGBA", (140, 190), "white"), _load(CARD_BACK).convert("RGBA"))
    conn = store.connect(home.db_path)
    try:
        assert [r.outcome for r in outbox.scan(conn, home, wait=True)] == ["queued"] * 2  # archived
        assert len(features.update(conn, home.data_dir)) == 2
        tracer = trace.Tracer(conn, markkey.load(home.data_dir), home.data_dir)
        for suspect in (back.convert("RGB"), ImageOps.posterize(back.convert("RGB"), 2)):
            sim, parts = _both(_load("revoy_forest_painting.jpg"), suspect)
            assert 0.8 < sim < composition.REWORK_SIMILARITY and parts < composition.REGION_SIMILARITY - 0.3
            got = tracer.trace_image(suspect)
            assert got.verdict == trace.NOTHING and got.artwork is None, got.summary()
        # the rework stage itself (the local features may find this rework first)
        suspect = _rework(_load("revoy_forest_painting.jpg"))
        rework = tracer._rework(suspect, trace.Result([]))
        assert rework.verdict == trace.REWORK and rework.artwork is not None, rework.summary()
        assert rework.artwork.regions is not None and rework.artwork.regions >= composition.REGION_SIMILARITY
        assert rework.artwork.to_json()["regions"] == round(rework.artwork.regions, 4)
        assert rework.artwork.colour is not None and rework.artwork.colour >= composition.COLOUR_SIMILARITY
        assert rework.artwork.to_json()["colour"] == round(rework.artwork.colour, 4)
        # the verdict needs the second and the third check: past either threshold, the same
        # rework is not named
        for name in ("REGION_SIMILARITY", "COLOUR_SIMILARITY"):
            monkeypatch.setattr(composition, name, 1.01)
            assert tracer._rework(suspect, trace.Result([])).verdict == trace.NOTHING
            monkeypatch.undo()
        # a hue-turned rework of the portrait (composition 0.91, under the 0.95 the first two
        # checks alone needed): named by its colour layout, as the portrait
        turned = _hue(_load("kodim04.jpg"), 150).filter(ImageFilter.GaussianBlur(3))
        got = tracer._rework(turned, trace.Result([]))
        assert got.verdict == trace.REWORK and got.artwork is not None, got.summary()
        assert got.artwork.name == "portrait.jpg" and got.artwork.similarity is not None
        assert got.artwork.similarity < composition.REWORK_SIMILARITY
        # a segment that lost a descriptor file (damage: every segment of this FORMAT has
        # them) is rebuilt from the archive whole, and the same rework is named again
        for lost in ("colour.npy", "regions.npy"):
            (segment,) = [p for p in (home.data_dir / "features").iterdir() if (p / lost).is_file()]
            (segment / lost).unlink()
            again = trace.Tracer(conn, markkey.load(home.data_dir), home.data_dir)
            assert again.findex is not None and len(again.findex) == 2
            assert all(
                (home.data_dir / "features" / n / lost).is_file() for n in again.findex.manifest["segments"]
            )
            found = again._rework(suspect, trace.Result([]))
            assert found.verdict == trace.REWORK and found.artwork is not None
            assert found.artwork.colour == pytest.approx(rework.artwork.colour, abs=0.01)
            assert found.artwork.regions == pytest.approx(rework.artwork.regions, abs=0.01)
    finally:
        conn.close()


# -- the colour check ---------------------------------------------------------------------------
def _hue(im: Image.Image, degrees: int) -> Image.Image:
    """Every hue turned by `degrees` (HSV), as the rework set's hue shift does."""
    hsv = np.asarray(im.convert("RGB").convert("HSV")).copy()
    hsv[..., 0] = (hsv[..., 0].astype(int) + int(degrees / 360 * 255)) % 256
    return Image.fromarray(hsv, "HSV").convert("RGB")


def _three(a: Image.Image, b: Image.Image) -> tuple[float, float, float, bool]:
    """(composition, regions, colour, both grey) in the composition's orientation, as trace."""
    ta, tb = composition.thumbnail(a), composition.thumbnail(b)
    va, vb = (composition.from_grid(composition.luma_of(t)) for t in (ta, tb))
    ra, ca = composition.regions(ta), composition.colour(ta)
    if float(composition.mirror(va) @ vb) > float(va @ vb):
        va, ra, ca = composition.mirror(va), composition.mirror_regions(ra), composition.mirror_colour(ca)
    cb = composition.colour(tb)
    return (
        float(va @ vb),
        composition.region_similarity(ra, composition.regions(tb)),
        composition.colour_similarity(ca, cb),
        composition.both_grey(ca, cb),
    )


def _named(a: Image.Image, b: Image.Image) -> bool:
    return composition.is_rework(*_three(a, b))


@pytest.mark.parametrize(("name", "degrees"), [("kodim04.jpg", 150), ("kodim05.jpg", 210)])
def test_a_hue_turned_rework_is_named_by_its_colour_layout(name: str, degrees: int) -> None:
    """A hue turn changes the lightness (kodim04's skin turned blue: composition 0.913, under
    the 0.95 that the composition and regions alone need); the colour layout stays (0.99)."""
    im = _load(name)
    sim, parts, colours, grey = _three(im, _hue(im, degrees))
    assert parts >= composition.REGION_SIMILARITY
    assert 0.85 <= sim < composition.REWORK_SIMILARITY and not grey
    assert colours > 0.98
    assert _named(im, _hue(im, degrees))
    assert _named(im, ImageOps.mirror(_hue(im, degrees)))


def test_colour_similarity_ignores_a_turn_of_every_hue() -> None:
    """A turn of the chroma plane by any angle (here exactly, in the opponent colours) leaves
    the similarity at 1; the colourfulness is kept."""
    thumb = composition.thumbnail(painting((320, 240), 5)).astype(np.float64)
    grey = thumb.mean(-1, keepdims=True)
    c = thumb - grey  # the chroma, in the plane orthogonal to grey
    e1 = np.array([1.0, -0.5, -0.5]) / np.sqrt(1.5)
    e2 = np.array([0.0, 1.0, -1.0]) / np.sqrt(2.0)
    x, y = c @ e1, c @ e2
    for angle in (0.7, 2.0, 3.5):
        xr, yr = x * np.cos(angle) - y * np.sin(angle), x * np.sin(angle) + y * np.cos(angle)
        turned = grey + xr[..., None] * e1 + yr[..., None] * e2
        a, b = composition.colour(thumb), composition.colour(turned)
        assert composition.colour_similarity(a, b) == pytest.approx(1.0, abs=1e-6)
        assert composition.colourfulness(b) == pytest.approx(composition.colourfulness(a), rel=1e-6)


def test_colour_mirror_is_the_descriptor_with_odd_columns_negated() -> None:
    thumb = composition.thumbnail(painting((320, 240), 3))
    assert np.allclose(
        composition.colour(thumb[:, ::-1]), composition.mirror_colour(composition.colour(thumb)), atol=1e-4
    )


def _disc(chroma: str) -> Image.Image:
    """A lit disc on black, its colours running left to right or top to bottom (the chroma
    moves almost no lightness: the same disc for the first two checks)."""
    yy, xx = np.mgrid[0:400, 0:400] / 400.0
    inside = (xx - 0.5) ** 2 + (yy - 0.5) ** 2 < 0.16
    light = np.where(inside, 150 - 60 * np.hypot(xx - 0.4, yy - 0.4), 10)
    t = xx if chroma == "across" else yy
    a = np.where(inside, 70 * (2 * t - 1), 0)
    b = np.where(inside, 15.0, 0)
    rgb = np.stack(
        [light + a * 2 / 3, light - a / 3 + b / np.sqrt(3), light - a / 3 - b / np.sqrt(3)], axis=-1
    )
    return Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8))


def test_two_discs_alike_in_light_but_not_in_colour_are_no_rework() -> None:
    """What passed the first two checks between unrelated pictures: discs (a globe and a gas
    giant). Alike in composition and in every part, told apart by where their colours are."""
    a, b = _disc("across"), _disc("down")
    sim, parts, colours, grey = _three(a, b)
    assert sim >= composition.REWORK_SIMILARITY and parts >= composition.REGION_SIMILARITY  # before: a rework
    assert colours < composition.COLOUR_SIMILARITY - 0.2 and not grey
    assert not _named(a, b)
    assert _named(a, ImageOps.mirror(a.filter(ImageFilter.GaussianBlur(4))))  # its own smoothed copy is


def test_grey_pictures_keep_the_stricter_composition_threshold() -> None:
    """Without colour there is nothing for the third check: two grey pictures need the
    composition of REWORK_SIMILARITY (the gradient wallpapers of TRACE_RESULTS.md section 6
    reached 0.944 with regions 0.910)."""
    im = _load("revoy_pencil_sketch.jpeg").convert("L").convert("RGB")
    c = composition.colour(composition.thumbnail(im))
    assert composition.colourfulness(c) < composition.GREY and composition.both_grey(c, c)
    assert not composition.is_rework(0.944, 0.910, 0.0, True)
    assert composition.is_rework(0.96, 0.910, 0.0, True)
    assert not composition.is_rework(0.944, 0.910, 0.0, False)  # colour must then agree
    assert composition.is_rework(0.9, 0.6, 0.85, False)
    assert _named(im, im.filter(ImageFilter.GaussianBlur(2)))
