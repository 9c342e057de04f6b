"""Properties of the hidden-ID codec ``poster.mark`` on small images (fast)."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image, ImageOps

from poster.mark import PAYLOAD_BITS, MarkError, embed, extract, extract_detail
from tests.conftest import data_path

from .images import photo_like, with_alpha

KEY = b"test-key-1"
PAYLOAD = 0xA5C3_1234_9F0E


def jpeg(im: Image.Image, q: int) -> Image.Image:
    buf = io.BytesIO()
    im.convert("RGB").save(buf, "JPEG", quality=q)
    return Image.open(io.BytesIO(buf.getvalue()))


def psnr(a: Image.Image, b: Image.Image) -> float:
    x = np.asarray(a.convert("RGB"), np.float64)
    y = np.asarray(b.convert("RGB"), np.float64)
    return float(10 * np.log10(255.0**2 / np.mean((x - y) ** 2)))


@pytest.fixture(scope="module")
def photo() -> Image.Image:
    return photo_like(480, 400, seed=1)


@pytest.fixture(scope="module")
def marked(photo) -> Image.Image:
    return embed(photo, PAYLOAD, key=KEY)


def test_clean_round_trip_rgb(photo, marked):
    assert marked.size == photo.size and marked.mode == "RGB"
    assert extract(marked, key=KEY) == PAYLOAD
    assert psnr(photo, marked) > 38


def test_rgba_round_trip_keeps_alpha():
    im = with_alpha(photo_like(640, 640, seed=2))  # only the opaque ~55 % carries the mark
    m = embed(im, PAYLOAD, key=KEY)
    assert m.mode == "RGBA" and m.size == im.size
    assert np.array_equal(np.asarray(m.getchannel("A")), np.asarray(im.getchannel("A")))
    # fully transparent pixels are not touched at all
    a = np.asarray(im.getchannel("A")) == 0
    assert np.array_equal(np.asarray(m)[a], np.asarray(im)[a])
    assert extract(m, key=KEY) == PAYLOAD


def test_l_round_trip():
    im = photo_like(400, 360, seed=3).convert("L")
    m = embed(im, PAYLOAD, key=KEY)
    assert m.mode == "L" and m.size == im.size
    assert extract(m, key=KEY) == PAYLOAD


def test_palette_input_comes_back_rgb():
    im = photo_like(400, 360, seed=4).quantize(256)
    m = embed(im, PAYLOAD, key=KEY)
    assert m.mode == "RGB" and m.size == im.size
    assert extract(m, key=KEY) == PAYLOAD


def test_jpeg70(marked):
    assert extract(jpeg(marked, 70), key=KEY) == PAYLOAD


def test_half_size_resize():
    m = embed(photo_like(640, 512, seed=5), PAYLOAD, key=KEY)
    small = m.resize((320, 256), Image.BICUBIC)
    assert extract(small, key=KEY) == PAYLOAD


def test_crop_80_percent_odd_offset():
    m = embed(photo_like(512, 448, seed=6), PAYLOAD, key=KEY)
    w, h = m.size
    cw, ch = round(w * 0.894), round(h * 0.894)
    assert extract(m.crop((37, 23, 37 + cw, 23 + ch)), key=KEY) == PAYLOAD


def test_mirror_is_detected(marked):
    d = extract_detail(ImageOps.mirror(marked), key=KEY)
    assert d is not None and d.payload == PAYLOAD and d.mirrored


def test_detail_reports_geometry(photo, marked):
    d = extract_detail(marked, key=KEY)
    assert d is not None and d.payload == PAYLOAD and not d.mirrored
    assert d.confidence > 5
    assert abs(d.rotation_deg) < 0.5


def test_unmarked_images_and_crops_give_none():
    rng = np.random.default_rng(0)
    for i in range(12):
        im = photo_like(int(rng.integers(300, 520)), int(rng.integers(300, 520)), seed=100 + i)
        if i % 3 == 1:
            im = jpeg(im, 75)
        if i % 3 == 2:
            im = im.crop((11, 7, im.width - 20, im.height - 13))
        assert extract(im, key=KEY) is None
    flat = Image.new("RGB", (400, 300), (250, 250, 250))
    assert extract(flat, key=KEY) is None


def _counting(monkeypatch, name: str) -> list[int]:
    """Count the calls of ``poster.mark.codec.<name>`` (the real function still runs)."""
    from poster.mark import codec

    calls: list[int] = []
    real = getattr(codec, name)

    def counted(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(codec, name, counted)
    return calls


def test_unmarked_image_is_rejected_with_few_folds(monkeypatch):
    """The blind read of an image without a mark (the usual case in `poster trace`) folds
    only lattices that stand out of the image's own period scan (SCAN_Z_MIN; lattices with
    many periods in view, the costly folds): it used to fold and decode every comb maximum
    above COMB_MIN, ~30 per image, most of its time."""
    folds = _counting(monkeypatch, "_fold")
    residuals = _counting(monkeypatch, "_residual")
    for i in range(2):
        im = jpeg(photo_like(1400, 1000, seed=200 + i), 85)
        assert extract(im, key=KEY) is None
    assert len(folds) <= 14  # measured 7 (was 60)
    # two views x two residual kinds; the wide pass reuses the first pass's residual (was 6)
    assert len(residuals) == 2 * 4


def test_the_fold_gate_keeps_marked_copies_with_margin(monkeypatch):
    """The lattice of every copy read stands far above the gate, so the gate costs no read."""
    from poster.mark import codec, sync

    seen: list[float] = []
    real = sync.Comb.scan_z

    def recorded(self, score, pmin, pmax):
        z = real(self, score, pmin, pmax)
        seen.append(z)
        return z

    monkeypatch.setattr(sync.Comb, "scan_z", recorded)
    # 1400 x 1000 px: 7-px chips, ~28 periods in the 1024 px view, so the gate applies
    m = embed(photo_like(1400, 1000, seed=12), PAYLOAD, key=KEY)
    copies = [
        jpeg(m, 70),
        jpeg(m.crop((31, 17, 1380, 990)), 80),
        ImageOps.mirror(m),
        jpeg(m.resize((1700, 1214), Image.BICUBIC), 85),
    ]
    for copy in copies:
        seen.clear()
        assert extract(copy, key=KEY) == PAYLOAD
        assert seen, "the gate was not consulted"
        assert seen[-1] >= codec.SCAN_Z_MIN + 2  # the lattice that was read


def test_wrong_key_gives_none(marked):
    for k in (b"test-key-2", b"", b"TEST-KEY-1", KEY + b"\0"):
        assert extract(marked, key=k) is None
        assert extract(jpeg(marked, 85), key=k) is None


def test_payload_bounds(photo):
    for bad in (-1, 1 << PAYLOAD_BITS):
        with pytest.raises(ValueError):
            embed(photo, bad, key=KEY)
    with pytest.raises(MarkError):
        embed(photo, 1.5, key=KEY)  # type: ignore[arg-type]
    top = (1 << PAYLOAD_BITS) - 1
    assert extract(embed(photo, top, key=KEY), key=KEY) == top
    assert extract(embed(photo, 0, key=KEY), key=KEY) == 0


def test_too_small_raises():
    with pytest.raises(MarkError):
        embed(photo_like(300, 255), 1, key=KEY)
    assert extract(photo_like(120, 90), key=KEY) is None


def test_strength_scales_the_mark(photo, marked):
    strong = embed(photo, PAYLOAD, key=KEY, strength=2.0)
    assert psnr(photo, strong) < psnr(photo, marked) - 4
    with pytest.raises(ValueError):
        embed(photo, PAYLOAD, key=KEY, strength=0)


def test_corpus_photo_jpeg80():
    im = Image.open(data_path("kodim23.png"))
    m = embed(im, PAYLOAD, key=KEY)
    assert extract(jpeg(m, 80), key=KEY) == PAYLOAD


def test_corpus_transparent_art_flattened_jpeg():
    im = Image.open(data_path("sachi_standing_alpha.webp"))  # full size: transparent art is sparse
    m = embed(im, PAYLOAD, key=KEY)
    assert m.mode == "RGBA"
    flat = Image.new("RGB", m.size, (255, 255, 255))
    flat.paste(m, mask=m.getchannel("A"))
    assert extract(jpeg(flat, 85), key=KEY) == PAYLOAD


def test_numpy_integer_payload(photo):
    m = embed(photo, np.uint64(12345), key=KEY)
    assert extract(m, key=KEY) == 12345


@pytest.mark.slow  # four large images, each searched over rotations and aspects
def test_stretch_rotation_and_aspect_often_recovered():
    """Stretch goals: supported, but not reliably on small images (>= half of 4 here)."""
    rot = asp = 0
    for seed in (7, 8, 9, 10):
        m = embed(photo_like(800, 640, seed=seed), PAYLOAD, key=KEY)
        d = extract_detail(m.rotate(-3, Image.BICUBIC), key=KEY)
        if d is not None:
            assert d.payload == PAYLOAD and abs(d.rotation_deg - 3) < 0.3
            rot += 1
        got = extract(m.resize((880, 640), Image.BICUBIC), key=KEY)
        assert got in (None, PAYLOAD)
        asp += got == PAYLOAD
    assert rot >= 2 and asp >= 2


UPSCALES = [((37, 23), (600, 531)), ((120, 90), (330, 257)), ((64, 40), (64, 700)), ((50, 40), (50, 40))]


@pytest.mark.parametrize(("small", "size"), UPSCALES)
def test_banded_amplitude_upscale_is_bit_identical(small, size):
    """embed upscales the amplitude map band by band; it must equal one full-size resize."""
    from poster.mark import codec

    rng = np.random.default_rng(5)
    a = rng.random((small[1], small[0]), dtype=np.float32) * 12
    full = np.asarray(Image.fromarray(a, "F").resize(size, Image.BILINEAR))
    rows = codec._AmpRows(a, *size)
    got = np.vstack([rows.rows(r0, r1) for r0, r1 in codec._bands(size[1])])
    assert got.shape == full.shape
    assert np.array_equal(got, full)


@pytest.mark.parametrize("mode", ["L", "LA", "RGB", "RGBA"])
def test_banded_luma_downscale_matches_full_size(mode):
    from poster.mark import codec

    rng = np.random.default_rng(6)
    shape = (700, 333) if len(mode) == 1 else (700, 333, len(mode))
    im = Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode)
    size = (131, 275)
    y, a = codec._luma_small(im, size)
    ref = np.asarray((im.convert("L") if mode != "L" else im).convert("F").resize(size, Image.BILINEAR))
    # equal up to float32 rounding: Pillow may run its two passes in the other order
    np.testing.assert_allclose(y, ref, rtol=0, atol=1e-3)
    if "A" in mode:
        ref_a = np.asarray(im.getchannel("A").convert("F").resize(size, Image.BILINEAR)) / 255.0
        np.testing.assert_allclose(a, ref_a, rtol=0, atol=1e-5)
    else:
        assert a is None
