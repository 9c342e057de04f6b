"""Protection steps as pure units: real images, fixed seeds, measured effects."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from poster.errors import ConfigError, RenderError
from poster.protect import StepContext, build_step, quality
from poster.protect.metadata import DATA_MINING
from poster.protect.watermark import Watermark
from tests.conftest import artwork, data_path


def ctx(seed: int = 1, artist: str = "Taro Yamada") -> StepContext:
    return StepContext(seed=seed, artist=artist)


def painting(side: int = 512) -> Image.Image:
    with Image.open(data_path("kodim23.png")) as im:
        return im.convert("RGB").resize((side, side))


# -- noise -----------------------------------------------------------------------------------
@pytest.mark.parametrize("target", [36.0, 46.0])
@pytest.mark.parametrize("share", [0.0, 0.6, 1.0])
def test_noise_hits_the_target_psnr(target: float, share: float) -> None:
    im = painting()
    out = build_step("noise", {"psnr": target, "texture_share": share}, "t").apply(im, ctx())
    assert out.size == im.size and out.mode == "RGB"
    # clipping at 0/255 and rounding only ever move the result slightly above the target
    assert target - 0.5 <= quality.psnr(im, out) <= target + 1.5


def test_noise_is_reproducible_from_its_seed() -> None:
    im = painting(300)
    step = build_step("noise", {"psnr": 40}, "t")
    a, b, c = step.apply(im, ctx(5)), step.apply(im, ctx(5)), step.apply(im, ctx(6))
    assert a.tobytes() == b.tobytes()
    assert a.tobytes() != c.tobytes()


def _residual(im: Image.Image, out: Image.Image) -> np.ndarray:
    return np.asarray(out, np.float32)[..., 0] - np.asarray(im, np.float32)[..., 0]


def test_texture_is_mid_frequency_and_gaussian_is_not() -> None:
    im = Image.new("RGB", (400, 400), (128, 128, 128))  # no clipping, residual = noise

    def smoothness(share: float) -> float:
        r = _residual(im, build_step("noise", {"psnr": 34, "texture_share": share}, "t").apply(im, ctx()))
        # neighbour correlation: ~0 for white noise, high for a band-passed texture
        return float(np.corrcoef(r[:, :-1].ravel(), r[:, 1:].ravel())[0, 1])

    assert smoothness(0.0) < 0.1
    assert smoothness(1.0) > 0.5


def test_texture_bands_join_without_seams() -> None:
    # taller than one band (512 rows): the texture must be continuous across band edges
    im = Image.new("RGB", (64, 1100), (128, 128, 128))
    r = _residual(im, build_step("noise", {"psnr": 30, "texture_share": 1.0}, "t").apply(im, ctx()))
    steps = np.abs(np.diff(r, axis=0)).mean(axis=1)
    assert steps[511] < 3 * np.median(steps)
    assert steps[1023] < 3 * np.median(steps)


# -- watermark -------------------------------------------------------------------------------
def test_watermark_layout_is_reproducible_and_differs_per_seed() -> None:
    im = painting()
    step = build_step("watermark", {"density": 0.25}, "t")
    a, b, c = step.apply(im, ctx(11)), step.apply(im, ctx(11)), step.apply(im, ctx(12))
    assert a.tobytes() == b.tobytes()
    assert isinstance(step, Watermark)
    la, lc = step.layout(im.size, ctx(11), 5.0), step.layout(im.size, ctx(12), 5.0)
    assert len(la) >= 3
    assert [(p["x"], p["y"]) for p in la] != [(p["x"], p["y"]) for p in lc]
    # the marked pixels of two posts overlap little: nothing to average out
    ma = np.any(np.asarray(a) != np.asarray(im), axis=-1)
    mc = np.any(np.asarray(c) != np.asarray(im), axis=-1)
    assert (ma & mc).sum() < 0.6 * min(ma.sum(), mc.sum())


def test_watermark_covers_the_whole_picture() -> None:
    im = painting()
    out = build_step("watermark", {"density": 0.3}, "t").apply(im, ctx(3))
    changed = np.any(np.asarray(out) != np.asarray(im), axis=-1)
    h, w = changed.shape
    quads = [changed[: h // 2, : w // 2], changed[: h // 2, w // 2 :], changed[h // 2 :, : w // 2]]
    quads.append(changed[h // 2 :, w // 2 :])
    assert all(q.mean() > 0.01 for q in quads)
    assert 25 < quality.psnr(im, out) < 45  # visible, not destructive


def test_watermark_warp_bends_the_marks() -> None:
    im = Image.new("RGB", (512, 512), (128, 128, 128))
    flat = build_step("watermark", {"warp": 0.0}, "t").apply(im, ctx(4))
    bent = build_step("watermark", {"warp": 0.03}, "t").apply(im, ctx(4))
    assert flat.tobytes() != bent.tobytes()  # same layout, different geometry


def test_warp_field_is_the_mesh_pillow_warps_with() -> None:
    """The marks are drawn through `_Field` (cv2.remap); `warp` (Pillow's MESH transform) is
    the reference: the same seed must bend the picture the same way."""
    import cv2

    from poster.protect.watermark import _Field, warp

    im = painting(600).crop((0, 0, 600, 420))  # not square: x and y must not be swapped
    ref = warp(im, np.random.default_rng(5), 0.03, Image.Resampling.BICUBIC)
    qx, qy = _Field(im.size, np.random.default_rng(5), 0.03).at(np.arange(600), np.arange(420))
    got = Image.fromarray(cv2.remap(np.asarray(im), qx - 0.5, qy - 0.5, cv2.INTER_CUBIC), "RGB")
    inner = (8, 8, 592, 412)  # the edges differ: Pillow leaves outside samples black
    assert quality.psnr(ref.crop(inner), got.crop(inner)) > 40  # cubic kernels differ a little
    # half a pixel off, or the mesh of another seed, is far from it
    off = Image.fromarray(cv2.remap(np.asarray(im), qx, qy, cv2.INTER_CUBIC), "RGB")
    assert quality.psnr(ref.crop(inner), off.crop(inner)) < 36


def test_watermark_marks_sit_where_rotating_then_warping_put_them() -> None:
    """Each mark drawn rotated, placed and warped in one resampling looks like the mark
    rotated, pasted onto a layer and the whole layer warped (the old way, 0.9 s at 2048²)."""
    from poster.protect.watermark import _paste_clipped, warp

    im = painting(768)
    step = build_step("watermark", {"look": "strong"}, "t")
    c = ctx(9)
    out = step.apply(im, c)
    # the reference, from the same layout and stamps
    light, dark = step._motif(ctx(9), crisp=False)  # type: ignore[attr-defined,misc]
    luma = np.asarray(im.convert("L").reduce(4))
    layer = Image.new("RGBA", im.size, (0, 0, 0, 0))
    for pl in step.layout(im.size, ctx(9), light.width / light.height):  # type: ignore[attr-defined]
        y, x = (min(191, max(0, int(pl[k] / 4))) for k in ("y", "x"))
        stamp = light if luma[y, x] < 150 else dark
        sh = max(4, round(pl["height"]))
        s = stamp.resize((max(4, round(stamp.width * sh / stamp.height)), sh), Image.Resampling.LANCZOS)
        s = s.rotate(pl["angle"], Image.Resampling.BICUBIC, expand=True)
        s.putalpha(s.getchannel("A").point(lambda v, o=pl["opacity"]: round(v * o)))
        _paste_clipped(layer, s, round(pl["x"] - s.width / 2), round(pl["y"] - s.height / 2))
    layer = warp(layer, np.random.default_rng([c.seed, 1]), 0.02, Image.Resampling.BICUBIC)
    ref = im.convert("RGBA")
    ref.alpha_composite(layer)
    assert c.record["marks"] > 5
    assert quality.psnr(ref.convert("RGB"), out) > 45  # only the resampling differs
    assert quality.psnr(im, out) < 35  # and the marks are there


def logo_file(tmp_path: Path) -> Path:
    """A small logo: a coloured ring on transparency, with transparent margins."""
    logo = Image.new("RGBA", (200, 120), (0, 0, 0, 0))
    from PIL import ImageDraw

    ImageDraw.Draw(logo).ellipse((40, 20, 160, 100), outline=(230, 80, 40, 255), width=14)
    path = tmp_path / "logo.png"
    logo.save(path)
    return path


def test_watermark_off_and_logo_and_alpha(tmp_path: Path) -> None:
    im = painting(300)
    assert build_step("watermark", {"density": 0}, "t").apply(im, ctx()).tobytes() == im.tobytes()
    c = ctx()
    out = build_step("watermark", {"image": str(logo_file(tmp_path)), "density": 0.3}, "t").apply(im, c)
    assert out.tobytes() != im.tobytes() and c.record["motif"] == "logo"
    # the logo's own colour shows where it is drawn: orange appears where there was none
    diff = np.asarray(out, np.int16) - np.asarray(im, np.int16)
    assert ((diff[..., 0] > 8) & (diff[..., 2] < 0)).mean() > 0.005
    rgba = artwork((300, 300), mode="RGBA", seed=2)
    out = build_step("watermark", {}, "t").apply(rgba, ctx())
    assert out.mode == "RGBA" and out.getchannel("A").tobytes() == rgba.getchannel("A").tobytes()


def test_watermark_bad_ranges_fail_at_build_time() -> None:
    with pytest.raises(ConfigError, match="opacity"):
        build_step("watermark", {"opacity": [0.5, 0.2]}, "policies.heavy.steps[2]")


# -- signature -------------------------------------------------------------------------------
def test_signature_draws_cjk_with_a_cjk_font(tmp_path: Path) -> None:
    from tests.protect.cjk_font import build

    font = str(build(tmp_path / "cjk.ttf"))
    im = painting(400)
    out = build_step("signature", {"font": font}, "t").apply(im, ctx(artist="山田 太郎"))
    assert out.tobytes() != im.tobytes()
    # the configured font draws the name; a name it lacks is still refused by name
    with pytest.raises(RenderError, match="cannot draw '漢'"):
        build_step("signature", {"font": font}, "t").apply(im, ctx(artist="山田 漢"))


def test_signature_sits_inside_the_art_not_in_the_margin() -> None:
    # art in the middle, wide white margins: the signature must land on the art
    canvas = Image.new("RGB", (800, 800), (255, 255, 255))
    canvas.paste(painting(400), (200, 200))
    out = build_step("signature", {"size": 0.03}, "t").apply(canvas, ctx(9))
    diff = np.any(np.asarray(out) != np.asarray(canvas), axis=-1)
    ys, xs = np.nonzero(diff)
    assert ys.size > 0
    inside = (xs >= 200) & (xs < 600) & (ys >= 200) & (ys < 600)
    assert inside.mean() > 0.9


def test_signature_size_is_relative_to_the_image() -> None:
    heights = []
    for side in (400, 1200):
        im = Image.new("RGB", (side, side), (120, 90, 60))
        out = build_step("signature", {}, "t").apply(im, ctx())
        ys = np.nonzero(np.any(np.asarray(out) != np.asarray(im), axis=-1))[0]
        heights.append(ys.max() - ys.min())
    assert 2.4 < heights[1] / heights[0] < 3.6


# -- metadata and the cloak slot ---------------------------------------------------------------
def test_metadata_xmp_is_valid_and_says_no_ai_training() -> None:
    step = build_step("metadata", {}, "t")
    assert step.apply(painting(64), ctx()).tobytes() == painting(64).tobytes()  # no pixel change
    packet = step.xmp("Taro & <Yamada>")  # type: ignore[attr-defined]
    root = ET.fromstring(packet.decode("utf-8").split("?>", 1)[1].rsplit("<?xpacket", 1)[0])
    ns = {
        "plus": "http://ns.useplus.org/ldf/xmp/1.0/",
        "dc": "http://purl.org/dc/elements/1.1/",
        "rdf": "http://www.w3.org/1999/02/22-rdf-syntax-ns#",
    }
    assert root.find(".//plus:DataMining", ns).text == DATA_MINING["prohibited-ai"]  # type: ignore[union-attr]
    assert DATA_MINING["prohibited-ai"].endswith("DMI-PROHIBITED-AIMLTRAINING")
    rights = root.find(".//dc:rights/rdf:Alt/rdf:li", ns)
    assert rights is not None and rights.text == "© Taro & <Yamada>. All rights reserved."


def test_cloak_without_a_provider_fails_when_the_policy_is_built() -> None:
    with pytest.raises(ConfigError, match="cloak provider 'glaze' is not installed"):
        build_step("cloak", {"provider": "glaze"}, "policies.heavy.steps[1]")


# -- watermark looks ---------------------------------------------------------------------------
def test_watermark_looks_go_from_subtle_to_strong() -> None:
    im = painting()
    cost = {}
    for look in ("subtle", "standard", "strong"):
        out = build_step("watermark", {"look": look}, "t").apply(im, ctx(5))
        cost[look] = quality.psnr(im, out)
    assert cost["subtle"] > cost["standard"] > cost["strong"] > 20


def test_a_value_set_in_the_step_wins_over_its_look() -> None:
    step = build_step("watermark", {"look": "subtle", "opacity": [0.5, 0.6]}, "t")
    d = step.describe()
    assert (d["look"] == "subtle" and d["opacity"] == [0.5, 0.6]) or d["opacity"] == (0.5, 0.6)
    assert d["density"] == 0.06  # the rest still from the look


def test_marks_of_one_post_share_one_angle_and_size() -> None:
    """A deliberate pattern: marks in a lattice, one angle (± a few degrees) and one size
    (± the look's narrow range) per post; the angle and phase change from post to post."""
    step = build_step("watermark", {}, "t")
    assert isinstance(step, Watermark)
    a, b = step.layout((1200, 900), ctx(1), 5.0), step.layout((1200, 900), ctx(2), 5.0)
    for marks in (a, b):
        angles = np.array([m["angle"] for m in marks])
        heights = np.array([m["height"] for m in marks])
        assert np.ptp(angles) <= 4.0 and heights.max() / heights.min() < 1.2
        assert len(marks) >= 8
    assert abs(a[0]["angle"] - b[0]["angle"]) > 1.0 or (a[0]["x"], a[0]["y"]) != (b[0]["x"], b[0]["y"])


def test_watermark_on_pixel_art_keeps_whole_art_pixels() -> None:
    rng = np.random.default_rng(4)
    palette = np.array([[20, 20, 30], [200, 60, 40], [60, 160, 80], [230, 220, 200]], dtype=np.uint8)
    im = Image.fromarray(palette[rng.integers(0, 4, (90, 120))], "RGB")
    im = im.resize((120 * 6, 90 * 6), Image.Resampling.NEAREST)
    out = build_step("watermark", {"look": "strong"}, "t").apply(
        im, StepContext(seed=3, artist="Taro", pixel_grid=6)
    )
    a = np.asarray(out, dtype=np.int16).reshape(90, 6, 120, 6, 3)
    assert (a == a[:, :1, :, :1]).all()
    assert out.tobytes() != im.tobytes()
