"""Policy → steps → encoded bytes for one platform, with the hidden ID checked before posting.

The hidden ID goes on last among pixel steps. The encoded bytes are then decoded again, also
after simulating what the platform does to uploads (its declared `reencodes`, plus the
policy's own `verify` list), and the ID must read back every time; if it does not, the mark
strength is raised and the image marked again, and after a few tries the render fails
loudly rather than post a copy that cannot be traced.
"""

from __future__ import annotations

import hashlib
import io
import secrets
from dataclasses import dataclass
from typing import Any

from PIL import Image

from poster import imaging, mark
from poster.errors import RenderError
from poster.platforms.base import Capabilities
from poster.policies import Policy
from poster.protect import StepContext
from poster.protect.fit import resize

LOSSLESS_SOURCES = frozenset({"PNG", "TIFF", "BMP", "GIF"})
STRENGTHS = (1.0, 1.6, 2.5)


@dataclass(frozen=True)
class Rendered:
    data: bytes
    format: str
    width: int
    height: int
    mark_id: int
    info: dict[str, Any]  # recorded in the ledger: policy, seeds, strength, checks

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()

    @property
    def mime(self) -> str:
        return imaging.MIME[self.format]


def _step_seed(seed: int, index: int, name: str) -> int:
    return int.from_bytes(hashlib.sha256(f"{seed}:{index}:{name}".encode()).digest()[:8], "big")


def choose_format(policy: Policy, caps: Capabilities, source_format: str) -> str:
    wanted = {"jpeg": "JPEG", "png": "PNG", "webp": "WEBP"}.get(policy.format)
    if wanted is None:  # auto: lossless art stays lossless where the platform keeps PNG
        wanted = "PNG" if source_format in LOSSLESS_SOURCES and caps.keeps_png else "JPEG"
    if wanted not in caps.formats:
        wanted = "JPEG" if "JPEG" in caps.formats else caps.formats[0]
    return wanted


def simulate(data: bytes, long_edge: int, quality: int) -> Image.Image:
    """What a platform does to an upload: fit the long edge, re-encode as JPEG 4:2:0."""
    im = imaging.decode(data).convert("RGB")
    if max(im.size) > long_edge:
        r = long_edge / max(im.size)
        im = im.resize((max(1, round(im.width * r)), max(1, round(im.height * r))), Image.Resampling.BICUBIC)
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=quality, subsampling=2)
    return Image.open(io.BytesIO(buf.getvalue()))


def _unreadable_after(
    data: bytes, checks: tuple[tuple[int, int], ...], key: bytes, mark_id: int
) -> list[str]:
    """The simulated platform pipelines after which the hidden ID no longer reads back."""
    failed = []
    if mark.extract(imaging.decode(data), key=key) != mark_id:
        failed.append("as encoded")
    for edge, quality in checks:
        if mark.extract(simulate(data, edge, quality), key=key) != mark_id:
            failed.append(f"long edge {edge} + JPEG {quality}")
    return failed


def _encode_to_fit(
    image: Image.Image, fmt: str, quality: int, caps: Capabilities
) -> tuple[bytes, str, int] | None:
    """Encode within the byte limit: PNG falls back to JPEG, JPEG lowers quality to 75.
    None when even that is too big (the caller then downscales before marking)."""
    while True:
        data = imaging.encode(image, fmt, quality=quality)
        if len(data) <= caps.max_bytes:
            return data, fmt, quality
        if fmt != "JPEG" and "JPEG" in caps.formats:
            fmt = "JPEG"
        elif fmt in ("JPEG", "WEBP") and quality > 75:
            quality -= 5
        else:
            return None


def render(
    source: Image.Image,
    *,
    source_format: str,
    policy: Policy,
    caps: Capabilities,
    key: bytes,
    mark_id: int,
    artist: str = "",
    background: str = "#ffffff",
    extra_checks: tuple[tuple[int, int], ...] = (),
    seed: int | None = None,
) -> Rendered:
    seed = secrets.randbits(63) if seed is None else seed
    fmt = choose_format(policy, caps, source_format)
    # Alpha is composited first so that the signature and the hidden ID sit in the pixels a
    # viewer actually sees (a mark under transparent pixels would vanish on any background).
    image = imaging.flatten(source, background)
    steps_info = []
    for i, step in enumerate(policy.steps):
        step_seed = _step_seed(seed, i, step.name)
        image = step.apply(image, StepContext(seed=step_seed, capabilities=caps, artist=artist))
        steps_info.append({**step.describe(), "seed": step_seed})
    image = image.convert("RGB")

    checks = (*caps.reencodes, *extra_checks)
    failures: list[str] = []
    for strength in STRENGTHS:
        while True:
            marked = mark.embed(image, mark_id, key=key, strength=strength)
            fitted = _encode_to_fit(marked, fmt, policy.jpeg_quality, caps)
            if fitted is not None:
                break
            if min(image.size) <= imaging.MIN_EDGE:
                raise RenderError(f"cannot fit the image into {caps.max_bytes} bytes")
            image = resize(image, (int(image.width * 0.85), int(image.height * 0.85)))
        data, out_fmt, quality = fitted
        failed = _unreadable_after(data, checks, key, mark_id)
        if not failed:
            return Rendered(
                data=data,
                format=out_fmt,
                width=marked.width,
                height=marked.height,
                mark_id=mark_id,
                info={
                    "policy": policy.describe(),
                    "seed": seed,
                    "steps": steps_info,
                    "mark": {
                        "strength": strength,
                        "checked": ["as encoded", *[f"{e}/{q}" for e, q in checks]],
                    },
                    "format": out_fmt,
                    "quality": quality if out_fmt != "PNG" else None,
                },
            )
        failures = failed
    raise RenderError(
        f"the hidden ID did not survive ({', '.join(failures)}) even at strength {STRENGTHS[-1]}; "
        "not posting an untraceable copy"
    )
