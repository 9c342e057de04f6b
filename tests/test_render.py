"""render(): real corpus art, the real codec and real JPEG/PNG re-encodings.

The hidden-ID codec is under development; these tests use art it marks reliably today
(a detailed painting) and check render's own promises: order, read-back checks, alpha,
metadata, reproducibility, loud failure, and the preview command.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from poster import config, imaging, mark, policies, trace
from poster.errors import RenderError
from poster.platforms.local import LocalAdapter
from poster.platforms.x import XAdapter
from poster.render import render, simulate
from tests.conftest import data_path, run_cli

KEY = bytes(range(32))
MARK_ID = 0x5F3A_1234_ABCD


def painting(size: tuple[int, int] = (900, 1200), mode: str = "RGB") -> Image.Image:
    with Image.open(data_path("revoy_forest_painting.jpg")) as im:
        out = im.convert("RGB").resize(size, Image.Resampling.LANCZOS)
    if mode == "RGBA":  # an oval cut-out: transparent corners
        w, h = size
        y, x = np.mgrid[0:h, 0:w]
        inside = (x - w / 2) ** 2 / (w / 2.05) ** 2 + (y - h / 2) ** 2 / (h / 2.05) ** 2 < 1
        out = out.convert("RGBA")
        out.putalpha(Image.fromarray((inside * 255).astype(np.uint8), "L"))
    return out


def policy(home: config.Config, name: str) -> policies.Policy:
    return policies.build(home, name)


def test_heavy_caps_size_marks_last_and_survives_x_like_reencoding(home: config.Config) -> None:
    src = painting((1800, 2400))
    r = render(
        src, source_format="JPEG", policy=policy(home, "heavy"), caps=XAdapter.capabilities,
        key=KEY, mark_id=MARK_ID, artist="Taro Yamada", seed=42,
    )  # fmt: skip
    assert r.format == "JPEG" and max(r.width, r.height) == 2048
    assert [s["use"] for s in r.info["steps"]] == ["fit", "noise", "watermark", "signature", "metadata"]
    assert "2048/85" in r.info["mark"]["checked"] and "1200/85" in r.info["mark"]["checked"]
    for edge, q in ((2048, 85), (1200, 85)):
        assert mark.extract(simulate(r.data, edge, q), key=KEY) == MARK_ID
    out = Image.open(io.BytesIO(r.data))
    assert not out.getexif()  # nothing of the original's EXIF
    assert b"DMI-PROHIBITED-AIMLTRAINING" in r.data and "© Taro Yamada" in out.info["xmp"].decode()
    # the seed in the ledger rebuilds the same variant
    again = render(
        src, source_format="JPEG", policy=policy(home, "heavy"), caps=XAdapter.capabilities,
        key=KEY, mark_id=MARK_ID, artist="Taro Yamada", seed=42,
    )  # fmt: skip
    assert again.data == r.data


def test_light_keeps_full_size_and_costs_little(home: config.Config) -> None:
    src = painting((900, 1200))
    r = render(
        src, source_format="PNG", policy=policy(home, "light"), caps=LocalAdapter.capabilities,
        key=KEY, mark_id=MARK_ID, artist="Taro", seed=1,
    )  # fmt: skip
    assert (r.width, r.height) == src.size and r.format == "PNG"
    out = imaging.decode(r.data)
    assert mark.extract(out, key=KEY) == MARK_ID
    assert "DMI-PROHIBITED-AIMLTRAINING" in out.info["XML:com.adobe.xmp"]


def test_transparent_png_keeps_alpha_and_still_traces(home: config.Config, tmp_path: Path) -> None:
    src = painting((900, 1200), mode="RGBA")
    r = render(
        src, source_format="PNG", policy=policy(home, "light"), caps=LocalAdapter.capabilities,
        key=KEY, mark_id=MARK_ID, artist="Taro", background="#ffffff", seed=3,
    )  # fmt: skip
    out = imaging.decode(r.data)
    assert r.format == "PNG" and r.info["alpha"] and out.mode == "RGBA"
    assert out.getchannel("A").tobytes() == src.getchannel("A").tobytes()  # the outline is the artist's
    # hidden colours under transparent pixels are replaced by the background colour
    arr = np.asarray(out)
    assert (arr[arr[..., 3] == 0][:, :3] == 255).all()
    # `poster trace` reads RGB (alpha dropped), and platforms flatten to JPEG: both read the ID
    path = tmp_path / "posted.png"
    path.write_bytes(r.data)
    assert mark.extract(trace.load_suspect(path), key=KEY) == MARK_ID
    assert mark.extract(simulate(r.data, 1200, 85), key=KEY) == MARK_ID


def test_transparent_art_to_a_jpeg_platform_is_composited_on_the_background(home: config.Config) -> None:
    src = painting((900, 1200), mode="RGBA")
    r = render(
        src, source_format="PNG", policy=policy(home, "heavy"), caps=XAdapter.capabilities,
        key=KEY, mark_id=MARK_ID, background="#336699", seed=4,
    )  # fmt: skip
    out = imaging.decode(r.data)
    assert r.format == "JPEG" and out.mode == "RGB"
    corner = np.asarray(out)[:8, :8].reshape(-1, 3).mean(axis=0)
    assert np.allclose(corner, (0x33, 0x66, 0x99), atol=12)


def test_an_unmarkable_image_fails_loudly_instead_of_posting(home: config.Config) -> None:
    flat = Image.new("RGB", (600, 600), (255, 255, 255))  # nothing for the ID to hide in
    with pytest.raises(RenderError, match=r"did not survive.*not posting an untraceable copy"):
        render(
            flat, source_format="PNG", policy=policy(home, "light"), caps=LocalAdapter.capabilities,
            key=KEY, mark_id=MARK_ID, seed=5,
        )  # fmt: skip


@pytest.mark.slow  # one of the longest scenarios (10-25 s): CI=true and --slow run it
def test_art_the_blind_read_cannot_carry_is_posted_traceable_with_its_original(home: config.Config) -> None:
    """A pixel-art sheet on transparency: no strength up to 2.5 gives a blind read after X's
    pipelines (it used to be refused as untraceable); with the original at hand the ID reads
    at the invisible strength, so that is what gets posted."""
    from poster.mark import informed

    with Image.open(data_path("dcss_pixel_atlas_alpha_top.png")) as im:
        src = im.convert("RGBA")
    r = render(
        src, source_format="PNG", policy=policy(home, "heavy"), caps=XAdapter.capabilities,
        key=KEY, mark_id=MARK_ID, seed=7,
    )  # fmt: skip
    assert r.info["mark"]["strength"] == 1.0 and r.info["mark"]["read"] == "with the original"
    posted = simulate(r.data, 1200, 85)
    assert mark.extract(posted, key=KEY) is None  # what the blind read cannot do
    found = informed.extract_informed(posted, src, key=KEY, marked_size=(r.width, r.height))
    assert found is not None and found.payload == MARK_ID


def test_preview_renders_without_posting_and_reports_its_cost(home: config.Config, tmp_path: Path) -> None:
    src = tmp_path / "forest.jpg"
    painting((1000, 1400)).save(src, "JPEG", quality=95)
    out, cmp = tmp_path / "x.jpg", tmp_path / "compare.png"
    code, stdout, stderr = run_cli(
        "preview", str(src), "--target", "x", "--out", str(out), "--compare", str(cmp), "--json", cfg=home
    )
    assert code == 0, stderr
    report = json.loads(stdout)
    assert report["format"] == "JPEG" and report["policy"] == "heavy" and report["mark_id"] == 0
    assert report["bytes"] == out.stat().st_size
    assert (report["width"], report["height"]) == Image.open(out).size
    assert 20 < report["psnr"] < 50 and 0.5 < report["ssim"] < 1.0
    assert mark.extract(Image.open(out), key=(home.data_dir / "mark.key").read_bytes()) == 0
    with Image.open(cmp) as im:
        assert im.width > 2 * report["width"] * min(1.0, 900 / max(report["width"], report["height"]))
    # light costs less than heavy
    code, stdout, _ = run_cli(
        "preview", str(src), "--target", "pixiv", "--out", str(tmp_path / "p"), "--json", cfg=home
    )
    assert code == 0 and json.loads(stdout)["psnr"] > report["psnr"]
    assert not (home.data_dir / "posted" / "x").exists() or not any(
        (home.data_dir / "posted" / "x").iterdir()
    )


def test_preview_unknown_target_is_a_one_line_error(home: config.Config, tmp_path: Path) -> None:
    src = tmp_path / "a.png"
    painting((400, 400)).save(src)
    code, _, stderr = run_cli("preview", str(src), "--target", "nope", "--out", str(tmp_path / "o"), cfg=home)
    assert code != 0 and "no target named 'nope'" in stderr and len(stderr.strip().splitlines()) == 1


def _edge_blur(image: Image.Image, art: Image.Image, k: int) -> float:
    """How far pixels at the edges between strongly different art pixels stray from their own
    block's colour (mean, levels): small for a sharp grid, large where edges are smeared."""
    h, w = art.height, art.width
    a = np.asarray(image.convert("RGB"), dtype=np.int16).reshape(h, k, w, k, 3)
    res = np.abs(a - np.median(a, axis=(1, 3))[:, None, :, None]).max(-1)
    edges = np.abs(np.diff(np.asarray(art, dtype=np.int16), axis=1)).max(-1) > 60
    left = res[:, :, :-1, k - 1].transpose(0, 2, 1)[edges]
    right = res[:, :, 1:, 0].transpose(0, 2, 1)[edges]
    return float(np.concatenate([left, right]).mean())


def test_pixel_art_to_x_scales_by_a_whole_number_and_keeps_its_grid(home: config.Config) -> None:
    """300×200 art enlarged 10× (3000×2000) for X's 2048 cap: posted at 6× (1800×1200) as PNG,
    every art pixel a 6×6 block of its own colour: only the hidden ID's faint pattern on top.
    Side by side: a smooth resize to the same size, with the same hidden ID, smears the edges."""
    from tests.protect.test_pixelart import sprite_sheet

    art = sprite_sheet(300, 200, seed=2)
    src = art.resize((3000, 2000), Image.Resampling.NEAREST)
    stages: list[str] = []
    r = render(
        src, source_format="PNG", policy=policy(home, "heavy"), caps=XAdapter.capabilities,
        key=KEY, mark_id=MARK_ID, artist="Taro", seed=8, progress=stages.append,
    )  # fmt: skip
    assert stages[:5] == ["fit", "noise", "watermark", "signature", "metadata"]  # what a terminal shows
    assert stages[5].startswith("hidden ID at strength 1.0")
    assert r.format == "PNG" and (r.width, r.height) == (1800, 1200)
    assert r.info["pixel_art"]["art_pixel"] == 10
    steps = {s["use"]: s for s in r.info["steps"]}
    assert steps["fit"]["chosen"]["pixel_art"]["art_pixel"] == [10, 6]
    assert steps["noise"]["chosen"]["skipped"] == "pixel art"
    posted = imaging.decode(r.data)
    smooth = mark.embed(
        src.resize((1800, 1200), Image.Resampling.LANCZOS),
        MARK_ID,
        key=KEY,
        strength=r.info["mark"]["strength"],
    )
    assert _edge_blur(posted, art, 6) < 0.6 * _edge_blur(smooth, art, 6)
    # the art's colours are still there, block for block, wherever no mark is drawn over them
    a = np.asarray(posted.convert("RGB"), dtype=np.int16).reshape(200, 6, 300, 6, 3)
    same = np.abs(np.median(a, axis=(1, 3)) - np.asarray(art, np.int16)).max(axis=-1) <= 12
    assert same.mean() > 0.6


def test_preview_shows_the_effective_policy(home: config.Config, tmp_path: Path) -> None:
    src = tmp_path / "forest.png"
    painting((600, 800)).save(src)
    home.path.write_text(
        home.path.read_text(encoding="utf-8") + "\n[policies.heavy]\njpeg_quality = 88\n", encoding="utf-8"
    )
    code, stdout, stderr = run_cli(
        "preview", str(src), "--target", "x", "--out", str(tmp_path / "x.jpg"), "--json", cfg=home
    )
    assert code == 0, stderr
    report = json.loads(stdout)
    eff = report["effective_policy"]
    assert eff["jpeg_quality"] == 88 and eff["verify"] == [[2048, 85], [1200, 85]]
    wm = next(s for s in eff["steps"] if s["use"] == "watermark")
    assert wm["look"] == "standard" and wm["density"] == 0.12  # the look's values, named
    assert report["layout_seed"] == "derived from the image"


def _spy(monkeypatch: pytest.MonkeyPatch) -> tuple[list[bytes], list[bytes]]:
    """Every byte string render decodes, and every one it encodes."""
    decoded: list[bytes] = []
    encoded: list[bytes] = []
    real_decode, real_encode = imaging.decode, imaging.encode

    def decode(data: bytes) -> Image.Image:
        decoded.append(data)
        return real_decode(data)

    def encode(*args: object, **kwargs: object) -> bytes:
        out = real_encode(*args, **kwargs)  # type: ignore[arg-type]
        encoded.append(out)
        return out

    monkeypatch.setattr(imaging, "decode", decode)
    monkeypatch.setattr(imaging, "encode", encode)
    return decoded, encoded


def test_each_copy_is_decoded_once_and_the_ladder_never_encodes_the_same_copy_twice(
    home: config.Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The pixel-art sheet climbs the ladder (1.0 blind, 1.6 blind, 1.0 with the original):
    the 1.0 copy is made once and serves both reads; every encoded copy is decoded once."""
    with Image.open(data_path("dcss_pixel_atlas_alpha_top.png")) as im:
        src = im.convert("RGBA")
    decoded, encoded = _spy(monkeypatch)
    r = render(
        src, source_format="PNG", policy=policy(home, "heavy"), caps=XAdapter.capabilities,
        key=KEY, mark_id=MARK_ID, seed=7,
    )  # fmt: skip
    assert r.info["mark"]["strength"] == 1.0 and r.info["mark"]["read"] == "with the original"
    assert len(encoded) == len(set(encoded)) == 2  # 1.0 and 1.6, each once
    assert len(decoded) == len(set(decoded)) and set(decoded) == set(encoded)


def test_a_png_is_encoded_once_and_the_file_is_what_was_checked(
    home: config.Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = painting((900, 1200))
    decoded, encoded = _spy(monkeypatch)
    r = render(
        src, source_format="PNG", policy=policy(home, "light"), caps=LocalAdapter.capabilities,
        key=KEY, mark_id=MARK_ID, seed=1,
    )  # fmt: skip
    assert r.format == "PNG" and encoded == [r.data] and decoded == [r.data]
    assert mark.extract(imaging.decode(r.data), key=KEY) == MARK_ID


def test_a_png_over_the_byte_limit_is_checked_as_the_jpeg_that_is_posted(home: config.Config) -> None:
    import dataclasses

    src = painting((900, 1200))
    caps = dataclasses.replace(LocalAdapter.capabilities, max_bytes=700_000)  # PNG ~2 MB, JPEG fits
    r = render(
        src, source_format="PNG", policy=policy(home, "light"), caps=caps,
        key=KEY, mark_id=MARK_ID, seed=1,
    )  # fmt: skip
    assert r.format == "JPEG" and len(r.data) <= 700_000
    assert mark.extract(imaging.decode(r.data), key=KEY) == MARK_ID
