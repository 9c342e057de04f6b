"""Reading images safely and writing them clean.

`probe` looks at the header only (format, declared size, frames), so a decompression bomb
or a stray document is refused before any pixel is allocated. `load` applies the EXIF
orientation, converts colour to sRGB and normalises every mode to 8-bit RGB or RGBA.
`encode` writes pixels only: no EXIF, GPS, XMP, ICC or text chunks from the original survive;
the only metadata written is the XMP packet the caller passes (copyright, AI-training flag).
"""

from __future__ import annotations

import io
import logging
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageCms, ImageOps, PngImagePlugin, UnidentifiedImageError

from poster.errors import InputError
from poster.i18n import _

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".webp", ".gif", ".tif", ".tiff", ".bmp"})
ACCEPTED_FORMATS = frozenset({"PNG", "JPEG", "MPO", "WEBP", "GIF", "TIFF", "BMP"})
MIME = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp", "GIF": "image/gif"}
EXTENSION = {"JPEG": ".jpg", "PNG": ".png", "WEBP": ".webp", "GIF": ".gif"}
MIN_EDGE = 256  # the hidden-ID codec needs this much on the short side


@dataclass(frozen=True)
class Probe:
    format: str
    width: int
    height: int
    mode: str


def read_file(path: Path) -> bytes:
    """A file the user named on the command line, with one-line errors naming it."""
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise InputError(_("{path}: no such file").format(path=path)) from None
    except IsADirectoryError:
        raise InputError(_("{path}: is a folder, not an image").format(path=path)) from None
    except OSError as exc:
        raise InputError(_("{path}: cannot read: {reason}").format(path=path, reason=exc.strerror)) from None


def open_image(data: bytes, name: str) -> Image.Image:
    if not data:
        raise InputError(_("{name}: empty file (0 bytes)").format(name=name))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # bombs are checked by size below; the rest is noise
            return Image.open(io.BytesIO(data))
    except Image.DecompressionBombError:
        raise InputError(
            _("{name}: declared image size is too large (decompression bomb?)").format(name=name)
        ) from None
    except UnidentifiedImageError:
        raise InputError(
            _("{name}: not an image Pillow can read (wrong extension or damaged file)").format(name=name)
        ) from None
    except Exception as exc:  # Pillow's parsers raise many types on hostile bytes
        raise InputError(
            _("{name}: unreadable image header ({kind}: {error})").format(
                name=name, kind=type(exc).__name__, error=exc
            )
        ) from None


def probe(data: bytes, name: str, *, max_pixels: int) -> Probe:
    with open_image(data, name) as im:
        return _probe(im, name, max_pixels=max_pixels)


# Formats whose frame count is read from the header, without seeking through the frames: an
# image of theirs that was probed is decoded as it is, not opened a second time.
_COUNTED_IN_HEADER = frozenset({"PNG", "JPEG"})


def _probe(im: Image.Image, name: str, *, max_pixels: int) -> Probe:
    """`probe` of an opened image."""
    fmt = im.format or "?"
    if fmt not in ACCEPTED_FORMATS:
        raise InputError(
            _("{name}: {fmt} images are not posted (use PNG, JPEG, WebP, GIF, TIFF)").format(
                name=name, fmt=fmt
            )
        )
    w, h = im.size
    if w * h > max_pixels:
        raise InputError(
            _(
                "{name}: {w}x{h} is {megapixels:.0f} megapixels, over the limit of {limit:.0f} "
                "(intake.max_image_pixels)"
            ).format(name=name, w=w, h=h, megapixels=w * h / 1e6, limit=max_pixels / 1e6)
        )
    if min(w, h) < MIN_EDGE:
        raise InputError(
            _("{name}: {w}x{h} is too small (the short side must be ≥ {min_edge} px)").format(
                name=name, w=w, h=h, min_edge=MIN_EDGE
            )
        )
    try:
        frames = getattr(im, "n_frames", 1)
    except Exception as exc:  # counting frames parses the whole file
        raise InputError(
            _("{name}: damaged image ({kind}: {error})").format(name=name, kind=type(exc).__name__, error=exc)
        ) from None
    if frames > 1 and fmt != "MPO":
        raise InputError(
            _(
                "{name}: animated image ({frames} frames); poster posts still images only "
                "(export one frame as PNG)"
            ).format(name=name, frames=frames)
        )
    return Probe(fmt, w, h, im.mode)


def _to_srgb(im: Image.Image) -> Image.Image:
    icc = im.info.get("icc_profile")
    if not icc:
        return im
    try:
        src = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        if "srgb" in ImageCms.getProfileDescription(src).lower() and im.mode in ("RGB", "RGBA"):
            return im
        out_mode = "RGBA" if im.mode in ("RGBA", "LA", "PA") else "RGB"
        if im.mode not in ("RGB", "RGBA", "CMYK", "L"):
            im = im.convert(out_mode)
        if im.mode == "L":
            out_mode = "L"
        return ImageCms.profileToProfile(
            im,
            src,
            ImageCms.createProfile("sRGB"),
            renderingIntent=ImageCms.Intent.PERCEPTUAL,
            outputMode=out_mode,
        )
    except (ImageCms.PyCMSError, OSError, ValueError):
        return im  # a broken profile: keep the pixels as they are rather than fail the post


def _to_8bit(im: Image.Image) -> Image.Image:
    if im.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
        arr = np.asarray(im, dtype=np.float32)
        peak = 65535.0 if arr.max(initial=0) > 255 else 255.0
        return Image.fromarray(np.clip(arr * (255.0 / peak) + 0.5, 0, 255).astype(np.uint8), "L")
    return im


def load(data: bytes, name: str, *, max_pixels: int) -> Image.Image:
    """Decode to 8-bit sRGB RGB or RGBA, upright. Raises InputError with the file's name."""
    im = open_image(data, name)
    try:
        found = _probe(im, name, max_pixels=max_pixels)
    except BaseException:
        im.close()
        raise
    if found.format not in _COUNTED_IN_HEADER:  # counting frames moved it: start afresh
        im.close()
        im = open_image(data, name)
    try:
        with warnings.catch_warnings(record=True) as caught:
            # Pillow warns (on stderr) about damaged EXIF and the like: keep it in the log
            warnings.simplefilter("always")
            im.load()
            ImageOps.exif_transpose(im, in_place=True)  # a copy of the pixels fewer (convert copies)
        for w in caught:
            log.debug("%s: %s", name, w.message)
        im = _to_srgb(_to_8bit(im))
        if (im.mode == "P" and "transparency" in im.info) or im.mode in ("LA", "PA", "La", "RGBa"):
            im = im.convert("RGBA")
        elif im.mode == "RGB":
            # the decoded pixels as a plain Image, not a copy: convert("RGB") of an RGB image
            # copies them (~50 ms at 4096², a third of the decode), and the decoder's object
            # is dropped here, so nothing else holds these pixels
            im = im._new(im.im)
        elif im.mode != "RGBA":
            im = im.convert("RGB")
    except Exception as exc:  # Pillow's decoders raise many types on hostile bytes
        raise InputError(
            _("{name}: damaged or truncated image ({error})").format(name=name, error=exc)
        ) from None
    if im.mode == "RGBA" and im.getchannel("A").getextrema() == (255, 255):
        im = im.convert("RGB")
    im.info = {}
    return im


def flatten(image: Image.Image, background: str) -> Image.Image:
    """Composite alpha on the background colour (for formats and platforms without alpha)."""
    if image.mode == "RGB":
        return image  # images are never modified in place, so sharing is safe (and saves a copy)
    if image.mode != "RGBA":
        return image.convert("RGB")
    base = Image.new("RGBA", image.size, background)
    base.alpha_composite(image)
    return base.convert("RGB")


def clear_transparent(image: Image.Image, background: str) -> Image.Image:
    """Set the colour of fully transparent pixels to the background colour.

    Their colour is invisible to a viewer but not to software: tools that drop alpha (and
    `poster trace`, which reads RGB) would see whatever the painting program left there,
    sometimes hidden layers of the artwork. After this, dropping alpha shows the same picture
    as compositing on the background, so the hidden ID reads the same both ways."""
    if image.mode != "RGBA":
        return image
    alpha = image.getchannel("A")
    if alpha.getextrema()[0] > 0:
        return image
    out = image.copy()
    hole = alpha.point(lambda v: 255 if v == 0 else 0)  # 8-bit mask, cheap even at 64 MP
    out.paste(Image.new("RGBA", image.size, background), (0, 0), hole)
    out.putalpha(alpha)
    return out


ALPHA_FORMATS = frozenset({"PNG", "WEBP"})


def encode(
    image: Image.Image,
    fmt: str,
    *,
    quality: int = 92,
    xmp: bytes | None = None,
    background: str = "#ffffff",
) -> bytes:
    """Pixels only: the copy is built without info, so no EXIF/ICC/text from the original is
    written. `xmp` (a complete XMP packet) is the one piece of metadata added on purpose."""
    clean = image
    if image.info:  # PNG would fall back to info's ICC profile; normalised images have none
        clean = image.copy()
        clean.info = {}
    if clean.mode == "RGBA" and fmt not in ALPHA_FORMATS:
        clean = flatten(clean, background)  # dropping alpha would show the hidden colours
    buf = io.BytesIO()
    extra: dict[str, object] = {}
    if fmt == "JPEG":
        if xmp:
            extra["xmp"] = xmp
        # 4:4:4 above q90 keeps line art and red/blue edges crisp; 4:2:0 below saves bytes
        (clean if clean.mode == "RGB" else clean.convert("RGB")).save(
            buf, "JPEG", quality=quality, optimize=True, subsampling=0 if quality >= 90 else 2, **extra
        )
    elif fmt == "PNG":
        if xmp:
            info = PngImagePlugin.PngInfo()
            info.add_itxt("XML:com.adobe.xmp", xmp.decode("utf-8"), zip=False)
            extra["pnginfo"] = info
        clean.save(buf, "PNG", optimize=False, compress_level=6, **extra)
    elif fmt == "WEBP":
        if xmp:
            extra["xmp"] = xmp
        clean.save(buf, "WEBP", quality=quality, method=4, **extra)
    else:
        raise ValueError(f"cannot encode {fmt}")
    return buf.getvalue()


def decode(data: bytes) -> Image.Image:
    """Decode bytes we produced ourselves (no limits, no normalisation beyond RGB/RGBA)."""
    im = Image.open(io.BytesIO(data))
    im.load()
    return im if im.mode in ("RGB", "RGBA") else im.convert("RGB")
