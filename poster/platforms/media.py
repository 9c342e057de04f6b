"""Lossless metadata stripping and a last-resort re-encode, for adapters that must not trust
the render step blindly (Bluesky's PDS keeps EXIF, GPS included).

Stripping is done on the container (JPEG segments, PNG chunks) so the pixels — and the
hidden ID in them — are untouched.
"""

from __future__ import annotations

import io
import logging
import struct

from poster.i18n import _

log = logging.getLogger("poster.platforms.media")

# JPEG APPn segments kept: APP0 (JFIF) and APP2 (ICC profile); APP14 (Adobe) matters for
# colour transforms. Everything else (APP1 Exif/XMP, APP13 IPTC/Photoshop, COM) goes.
_JPEG_KEEP_APP = {0xE0, 0xE2, 0xEE}
_PNG_DROP = {b"eXIf", b"tEXt", b"iTXt", b"zTXt", b"tIME"}


def strip_metadata(data: bytes) -> bytes:
    """Remove EXIF/XMP/IPTC/text metadata from JPEG or PNG bytes without re-encoding.
    Unknown formats are returned unchanged."""
    if data[:2] == b"\xff\xd8":
        return _strip_jpeg(data)
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return _strip_png(data)
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return _strip_webp(data)
    return data


def _strip_jpeg(data: bytes) -> bytes:
    out = bytearray(b"\xff\xd8")
    i = 2
    n = len(data)
    while i < n:
        if data[i] != 0xFF:
            return data  # not a structure we understand: leave it alone
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker == 0xDA or marker == 0xD9:  # start of scan: the rest is image data
            out += data[i:]
            return bytes(out)
        if 0xD0 <= marker <= 0xD7 or marker == 0x01:
            out += data[i : i + 2]
            i += 2
            continue
        if i + 4 > n:
            return data
        length = struct.unpack(">H", data[i + 2 : i + 4])[0]
        segment = data[i : i + 2 + length]
        is_app = 0xE0 <= marker <= 0xEF
        if (is_app and marker not in _JPEG_KEEP_APP) or marker == 0xFE:
            pass  # dropped
        else:
            out += segment
        i += 2 + length
    return bytes(out)


def _strip_png(data: bytes) -> bytes:
    out = bytearray(data[:8])
    i = 8
    n = len(data)
    while i + 8 <= n:
        length = struct.unpack(">I", data[i : i + 4])[0]
        ctype = data[i + 4 : i + 8]
        end = i + 12 + length
        if end > n:
            return data
        if ctype not in _PNG_DROP:
            out += data[i:end]
        i = end
        if ctype == b"IEND":
            break
    return bytes(out)


def _strip_webp(data: bytes) -> bytes:
    chunks = bytearray()
    i = 12
    n = len(data)
    while i + 8 <= n:
        ctype = data[i : i + 4]
        size = struct.unpack("<I", data[i + 4 : i + 8])[0]
        end = i + 8 + size + (size & 1)
        if ctype not in (b"EXIF", b"XMP "):
            chunks += data[i:end]
        i = end
    if chunks and chunks[:4] == b"VP8X":  # clear the EXIF/XMP flags
        flags = chunks[8] & ~0x0C
        chunks[8] = flags
    return b"RIFF" + struct.pack("<I", len(chunks) + 4) + b"WEBP" + bytes(chunks)


def has_metadata(data: bytes) -> bool:
    return strip_metadata(data) != data


def shrink_to(data: bytes, max_bytes: int) -> tuple[bytes, str]:
    """Re-encode as JPEG at falling quality (then smaller) until it fits `max_bytes`.
    A last resort: the core fits images to capabilities; this only runs if it did not."""
    from PIL import Image

    with Image.open(io.BytesIO(data)) as im:
        im.load()
        image = im.convert("RGB")
    for scale in (1.0, 0.85, 0.7, 0.5, 0.35, 0.25):
        if scale < 1.0:
            size = (max(1, int(image.width * scale)), max(1, int(image.height * scale)))
            candidate = image.resize(size, Image.Resampling.LANCZOS)
        else:
            candidate = image
        for quality in (92, 85, 78, 70, 60):
            buf = io.BytesIO()
            candidate.save(buf, "JPEG", quality=quality, optimize=True)
            if buf.tell() <= max_bytes:
                log.warning(
                    "%s",
                    _(
                        "image was {size} bytes, over the {limit}-byte limit: re-encoded to {new_size} "
                        "bytes (JPEG q{quality}, scale {scale:.2f})"
                    ).format(
                        size=len(data), limit=max_bytes, new_size=buf.tell(), quality=quality, scale=scale
                    ),
                )
                return buf.getvalue(), "image/jpeg"
    raise ValueError(_("cannot fit the image into {bytes} bytes").format(bytes=max_bytes))
