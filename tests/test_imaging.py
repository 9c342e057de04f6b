"""imaging: every input mode normalised to 8-bit sRGB, and clean output with chosen metadata."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image, ImageCms

from poster import imaging
from poster.errors import InputError
from poster.protect.metadata import xmp_packet
from tests.conftest import artwork

MAX = 100_000_000


def save(im: Image.Image, fmt: str, **kw: object) -> bytes:
    buf = io.BytesIO()
    im.save(buf, fmt, **kw)
    return buf.getvalue()


def test_exif_orientation_is_applied_and_exif_gps_never_leaves() -> None:
    im = artwork((400, 300))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise on display
    exif[0x8825] = {2: (35.0, 41.0, 0.0)}  # GPS latitude
    data = save(im, "JPEG", exif=exif.tobytes(), quality=95)
    loaded = imaging.load(data, "a.jpg", max_pixels=MAX)
    assert loaded.size == (300, 400) and loaded.mode == "RGB"
    out = imaging.encode(loaded, "JPEG", quality=90)
    again = Image.open(io.BytesIO(out))
    assert not again.getexif() and "exif" not in again.info and b"GPS" not in out


def test_sixteen_bit_grey_is_scaled_not_clipped() -> None:
    ramp = (np.linspace(0, 65535, 300 * 300).reshape(300, 300)).astype(np.uint16)
    data = save(Image.fromarray(ramp), "PNG")  # uint16 -> mode I;16
    loaded = imaging.load(data, "g16.png", max_pixels=MAX)
    arr = np.asarray(loaded)
    assert loaded.mode == "RGB" and arr.min() <= 1 and arr.max() >= 254


def test_cmyk_becomes_rgb_with_the_right_colour() -> None:
    cmyk = Image.new("CMYK", (300, 300), (0, 255, 255, 0))  # pure red in CMYK
    loaded = imaging.load(save(cmyk, "JPEG", quality=95), "c.jpg", max_pixels=MAX)
    r, g, b = np.asarray(loaded).reshape(-1, 3).mean(axis=0)
    assert loaded.mode == "RGB" and r > 200 and g < 60 and b < 60


def test_icc_profile_is_converted_to_srgb_and_not_written() -> None:
    lab = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))
    data = save(artwork((300, 300)), "PNG", icc_profile=lab.tobytes())
    loaded = imaging.load(data, "p.png", max_pixels=MAX)
    out = imaging.encode(loaded, "PNG")
    assert "icc_profile" not in Image.open(io.BytesIO(out)).info


def test_palette_with_transparency_keeps_alpha() -> None:
    rgba = artwork((300, 300), mode="RGBA")
    pal = rgba.convert("P", palette=Image.Palette.ADAPTIVE)
    pal.info["transparency"] = 0
    loaded = imaging.load(save(pal, "PNG", transparency=0), "p.png", max_pixels=MAX)
    assert loaded.mode == "RGBA"


def test_animated_images_are_refused_with_the_reason() -> None:
    frames = [artwork((300, 300), seed=i).convert("P") for i in range(3)]
    buf = io.BytesIO()
    frames[0].save(buf, "GIF", save_all=True, append_images=frames[1:])
    with pytest.raises(InputError, match="animated image \\(3 frames\\)"):
        imaging.load(buf.getvalue(), "anim.gif", max_pixels=MAX)


def test_rgba_to_jpeg_is_composited_not_stripped() -> None:
    rgba = Image.new("RGBA", (300, 300), (0, 0, 0, 0))  # transparent black
    out = Image.open(io.BytesIO(imaging.encode(rgba, "JPEG", background="#ffffff")))
    assert np.asarray(out).min() > 240  # white, not the hidden black


def test_clear_transparent_sets_hidden_colours_to_the_background() -> None:
    arr = np.zeros((300, 300, 4), np.uint8)
    arr[..., 0] = 200  # hidden red under full transparency
    arr[100:200, 100:200] = (10, 20, 30, 255)
    out = np.asarray(imaging.clear_transparent(Image.fromarray(arr, "RGBA"), "#102030"))
    assert (out[0, 0] == (0x10, 0x20, 0x30, 0)).all()
    assert (out[150, 150] == (10, 20, 30, 255)).all()


@pytest.mark.parametrize(("fmt", "where"), [("JPEG", "xmp"), ("PNG", "XML:com.adobe.xmp"), ("WEBP", "xmp")])
def test_xmp_with_copyright_and_ai_flag_is_written_where_the_format_keeps_it(fmt: str, where: str) -> None:
    packet = xmp_packet(rights="© Taro. All rights reserved.", data_mining="prohibited-ai", creator="Taro")
    data = imaging.encode(artwork((300, 300)), fmt, xmp=packet)
    with Image.open(io.BytesIO(data)) as im:
        value = im.info[where]
    text = value.decode() if isinstance(value, bytes) else value
    assert "DMI-PROHIBITED-AIMLTRAINING" in text and "© Taro. All rights reserved." in text
    # and nothing when not asked
    assert b"PROHIBITED" not in imaging.encode(artwork((300, 300)), fmt)
