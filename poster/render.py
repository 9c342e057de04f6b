"""Policy → steps → encoded bytes for one platform, with the hidden ID checked before posting.

The hidden ID goes on last among pixel steps. The encoded bytes are then decoded again, also
after simulating what the platform does to uploads (its declared `reencodes`, plus the
policy's own `verify` list), and the ID must read back every time. If the blind read fails,
the strength is raised once (1.6); then the invisible strength is accepted if the ID reads
back with the original at hand (the way `poster trace` reads it, with the archived original);
only then is a blind read tried at 2.5, and failing that the render fails loudly rather than
post a copy that cannot be traced. The ledger's render info says which (`mark.read`).

Each encoded copy is decoded once and each simulated platform pipeline run once on it; the
1.0 copy serves both its blind read and the read with the original. A PNG is not encoded
at every step: its file holds exactly the marked pixels, so the checks read those, the file
is written once at the strength that passed, and it is decoded and compared pixel for pixel
with what was checked (over the byte limit, the ladder runs again the encode-each-step way).

Pixel art (`protect.pixelart.detect`) is followed through the steps as a grid of whole image
pixels per art pixel: fit scales it by whole numbers, noise skips it, the watermark and the
signature draw on its grid, and it is kept as PNG where the platform takes PNG.

The `seed` fixes every visible random choice; dispatch and `preview` both derive it from the
original's layout seed (recorded at intake) and the target, so a preview shows the layout
that will be posted, and only the hidden ID differs.
"""

from __future__ import annotations

import hashlib
import io
import secrets
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from poster import imaging, mark
from poster.config import Config
from poster.errors import RenderError, UserError
from poster.i18n import _
from poster.mark import informed
from poster.platforms.base import Capabilities
from poster.policies import Policy
from poster.protect import Limits, StepContext, layout_seed, pixelart, post_seed, subject
from poster.protect.fit import resize
from poster.protect.metadata import Metadata

Progress = Callable[[str], None]  # told what render is doing now (a terminal shows it)

LOSSLESS_SOURCES = frozenset({"PNG", "TIFF", "BMP", "GIF"})
# Hidden-ID strengths tried in turn, and how the ID must read back after the simulated platform:
# "blind" (from the copy alone) or "with the original" (poster trace's fourth stage, with the
# original from the archive). A visible-quality cost is paid only where the blind read needs it
# (1.6: ~4 dB PSNR); art that would need more is posted at the invisible strength if the ID reads
# with the original, and only failing that marked at 2.5 (~8 dB) for a blind read.
LADDER = ((1.0, "blind"), (1.6, "blind"), (1.0, "with the original"), (2.5, "blind"))
STRENGTHS = tuple(dict.fromkeys(s for s, _ in LADDER))


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


def choose_format(policy: Policy, caps: Capabilities, source_format: str, pixel_art: bool = False) -> str:
    if pixel_art and "PNG" in caps.formats:  # JPEG would blur every hard pixel edge
        return "PNG"
    wanted = {"jpeg": "JPEG", "png": "PNG", "webp": "WEBP"}.get(policy.format)
    if wanted is None:  # auto: lossless art stays lossless where the platform keeps PNG
        wanted = "PNG" if source_format in LOSSLESS_SOURCES and caps.keeps_png else "JPEG"
    if wanted not in caps.formats:
        wanted = "JPEG" if "JPEG" in caps.formats else caps.formats[0]
    return wanted


def simulate(data: bytes, long_edge: int, quality: int, background: str = "#ffffff") -> Image.Image:
    """What a platform does to an upload: fit the long edge, composite any transparency on the
    background (as platforms do when they make a JPEG), re-encode as JPEG 4:2:0."""
    return simulate_image(imaging.decode(data), long_edge, quality, background)


def simulate_image(
    decoded: Image.Image, long_edge: int, quality: int, background: str = "#ffffff"
) -> Image.Image:
    """`simulate` from the already decoded upload (images are never changed in place)."""
    im = imaging.flatten(decoded, background)
    if max(im.size) > long_edge:
        r = long_edge / max(im.size)
        im = im.resize((max(1, round(im.width * r)), max(1, round(im.height * r))), Image.Resampling.BICUBIC)
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=quality, subsampling=2)
    return Image.open(io.BytesIO(buf.getvalue()))


def _as_traced(image: Image.Image) -> Image.Image:
    return image if image.mode == "RGB" else image.convert("RGB")


Check = tuple[int, int] | None  # a simulated platform pipeline (long edge, JPEG quality); None: as encoded


def _copies(
    decoded: Image.Image, checks: tuple[tuple[int, int], ...], background: str
) -> dict[Check, Image.Image]:
    """The images the read-back checks read, each made once from one decode of the encoded
    bytes: the copy as `poster trace` reads the file (alpha dropped, RGB kept) and the copy
    after each distinct simulated platform pipeline."""
    long_edge = max(decoded.size)
    # X's 4096 and 2048 pipelines are the same JPEG 85 for a 2048 px image: simulate once
    distinct = list(dict.fromkeys((min(edge, long_edge), quality) for edge, quality in checks))

    def make(check: Check) -> Image.Image:
        image = _as_traced(decoded) if check is None else simulate_image(decoded, *check, background)
        image.load()
        return image

    # Pillow's codecs and resampling release the GIL: two threads halve the wait on 2 cores
    with ThreadPoolExecutor(max_workers=2) as pool:
        return dict(zip([None, *distinct], pool.map(make, [None, *distinct]), strict=True))


def _unreadable_after(
    copies: dict[Check, Image.Image],
    checks: tuple[tuple[int, int], ...],
    key: bytes,
    mark_id: int,
    background: str,
    reference: tuple[Image.Image, tuple[int, int]] | None = None,
) -> list[str]:
    """The simulated platform pipelines after which the hidden ID no longer reads back.

    "as encoded" reads the file the way `poster trace` does (alpha dropped, RGB kept): that
    is why transparent pixels are given the background colour before marking. With a
    ``reference`` (the original and the size the mark was embedded at), the ID is read the
    way trace reads it with the original at hand."""
    long_edge = max(copies[None].size)

    def reads_back(check: Check) -> bool:
        image = copies[check]
        if reference is None:
            return mark.extract(image, key=key) == mark_id
        original, size = reference
        found = informed.extract_informed(
            image, original, key=key, marked_size=size, backgrounds=informed.backgrounds_for(background)
        )
        return found is not None and found.payload == mark_id

    # The checks are independent and spend their time in numpy and Pillow, which release
    # the GIL: two threads make the pre-post check about twice as fast on 2 cores.
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = dict(zip(list(copies), pool.map(reads_back, list(copies)), strict=True))
    if not results[None]:
        return ["as encoded"]  # every simulated pipeline starts from these bytes
    return [
        f"long edge {edge} + JPEG {quality}"
        for edge, quality in checks
        if not results[(min(edge, long_edge), quality)]
    ]


def _encode_to_fit(
    image: Image.Image, fmt: str, quality: int, caps: Capabilities, xmp: bytes | None, background: str
) -> tuple[bytes, str, int] | None:
    """Encode within the byte limit: PNG falls back to JPEG, JPEG lowers quality to 75.
    None when even that is too big (the caller then downscales before marking)."""
    while True:
        data = imaging.encode(image, fmt, quality=quality, xmp=xmp, background=background)
        if len(data) <= caps.max_bytes:
            return data, fmt, quality
        if fmt != "JPEG" and "JPEG" in caps.formats:
            fmt = "JPEG"
        elif fmt in ("JPEG", "WEBP") and quality > 75:
            quality -= 5
        else:
            return None


class _Untraceable(RenderError):
    def __init__(self, failures: list[str]) -> None:
        super().__init__(
            _(
                "the hidden ID did not survive ({failures}) even at strength {strength}; "
                "not posting an untraceable copy"
            ).format(failures=", ".join(failures), strength=STRENGTHS[-1])
        )


def _xmp(policy: Policy, artist: str) -> bytes | None:
    for step in policy.steps:
        if isinstance(step, Metadata):
            return step.xmp(artist)
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
    progress: Progress | None = None,
) -> Rendered:
    """The protected, encoded variant of `source` for one platform, its hidden ID checked.

    `seed` fixes the visible layout (noise, watermark, signature spot; None: a random one —
    pass `protect.post_seed(...)` for what an artwork's post gets). `progress`, if given, is
    told each stage as it starts ("watermark", "hidden ID, strength 1.6", …)."""
    seed = secrets.randbits(63) if seed is None else seed
    pixel = pixelart.detect(source)
    fmt = choose_format(policy, caps, source_format, pixel_art=pixel is not None)
    # Transparency is kept only where the output format and the platform keep it (PNG/WebP);
    # if the ID cannot be made to survive in the opaque parts alone, fall back to a flattened
    # copy, where the mark can use every pixel.
    keep_alpha = source.mode == "RGBA" and fmt in imaging.ALPHA_FORMATS
    job = _Job(
        source, fmt, policy, caps, key, mark_id, artist, background, extra_checks, seed, pixel, progress
    )
    if keep_alpha:
        try:
            return _render(job, keep_alpha=True)
        except _Untraceable:
            pass
    return _render(job, keep_alpha=False)


@dataclass(frozen=True)
class _Job:
    """One render's inputs, as `render` received them (plus what it worked out)."""

    source: Image.Image
    fmt: str
    policy: Policy
    caps: Capabilities
    key: bytes
    mark_id: int
    artist: str
    background: str
    extra_checks: tuple[tuple[int, int], ...]
    seed: int
    pixel: pixelart.PixelArt | None
    progress: Progress | None


def _grid_now(pixel: pixelart.PixelArt | None, source: Image.Image, image: Image.Image) -> int | None:
    """Image pixels per art pixel after the steps so far (None: not pixel art, or no longer
    on a whole grid)."""
    if pixel is None:
        return None
    num = pixel.scale * image.width
    if num % source.width or pixel.scale * image.height != source.height * (num // source.width):
        return None
    return num // source.width or None


def _render(job: _Job, *, keep_alpha: bool) -> Rendered:
    source, policy, caps, key, mark_id = job.source, job.policy, job.caps, job.key, job.mark_id
    fmt, artist, background, seed = job.fmt, job.artist, job.background, job.seed
    say = job.progress or (lambda _stage: None)
    # Without alpha, compositing comes first so that the watermark, signature and hidden ID
    # sit in the pixels a viewer actually sees (a mark under transparent pixels would vanish
    # on any background).
    image = source if keep_alpha else imaging.flatten(source, background)
    limits = Limits(max_edge=caps.max_edge, max_pixels=caps.max_pixels)
    steps_info = []
    art: Image.Image | None = None  # the picture after fit, before pixel changes
    for i, step in enumerate(policy.steps):
        say(step.name)
        step_seed = _step_seed(seed, i, step.name)
        ctx = StepContext(
            seed=step_seed,
            limits=limits,
            artist=artist,
            background=background,
            pixel_grid=_grid_now(job.pixel, source, image),
            art=art if art is not None and art.size == image.size else None,
        )
        image = step.apply(image, ctx)
        if step.name == "fit":
            art = image
            from poster.protect.signature import Signature  # the step registry is lazy

            if any(isinstance(s, Signature) and s.searches_faces(artist) for s in policy.steps[i + 1 :]):
                # the signature looks for faces in this very image: its ~0.5 s of cascades
                # run in the background while the noise and the watermark are drawn
                subject.prefetch_faces(art)
        steps_info.append(
            {**step.describe(), "seed": step_seed, **({"chosen": ctx.record} if ctx.record else {})}
        )
    # The hidden ID goes last among pixel steps: nothing may change the pixels after it.
    image = (
        imaging.clear_transparent(image, background)
        if image.mode == "RGBA"
        else imaging.flatten(image, background)
    )
    xmp = _xmp(policy, artist)

    checks = tuple(dict.fromkeys((*caps.reencodes, *policy.verify, *job.extra_checks)))

    def marked_at(strength: float, encode_png: bool = True) -> tuple[bytes | None, str, int, Image.Image]:
        """The image marked at `strength`, encoded within the byte limit. With `encode_png`
        false a PNG is not encoded yet (bytes None): its pixels are the marked pixels, so the
        checks can read them and the file is written once, at the strength that passed."""
        nonlocal image
        while True:
            marked = mark.embed(image, mark_id, key=key, strength=strength)
            # The codec's mask is smooth, so it touches a few fully transparent pixels at the
            # outline; keep them exactly the background colour (what a viewer cannot see).
            marked = imaging.clear_transparent(marked, background)
            if fmt == "PNG" and not encode_png:
                return None, fmt, policy.jpeg_quality, marked
            fitted = _encode_to_fit(marked, fmt, policy.jpeg_quality, caps, xmp, background)
            if fitted is not None:
                return (*fitted, marked)
            if min(image.size) <= imaging.MIN_EDGE:
                raise RenderError(_("cannot fit the image into {bytes} bytes").format(bytes=caps.max_bytes))
            image = resize(image, (int(image.width * 0.85), int(image.height * 0.85)))

    # A strength that comes again further down the ladder (1.0, read blind, then with the
    # original) is embedded, encoded, decoded and simulated once; only the reading differs.
    again = {s for s in STRENGTHS if sum(1 for t, _r in LADDER if t == s) > 1}
    made: dict[float, tuple[bytes | None, str, int, Image.Image, dict[Check, Image.Image]]] = {}
    failures: list[str] = []
    deferred = fmt == "PNG"  # a PNG is encoded once its strength is settled
    ladder = list(LADDER)
    while ladder:
        strength, read = ladder.pop(0)
        say(_("hidden ID at strength {strength}, read {how}").format(strength=strength, how=read))
        if strength in made:
            data, out_fmt, quality, marked, copies = made[strength]
        else:
            data, out_fmt, quality, marked = marked_at(strength, encode_png=not deferred)
            copies = _copies(marked if data is None else imaging.decode(data), checks, background)
            if strength in again:
                made[strength] = (data, out_fmt, quality, marked, copies)
        reference = None if read == "blind" else (source, marked.size)
        failed = _unreadable_after(copies, checks, key, mark_id, background, reference)
        if not failed and data is None:
            fitted = _encode_to_fit(marked, fmt, policy.jpeg_quality, caps, xmp, background)
            if fitted is not None and fitted[1] == "PNG" and _same_pixels(imaging.decode(fitted[0]), marked):
                data, out_fmt, quality = fitted  # read back: the file holds the pixels checked
            else:  # over the byte limit as PNG (or not lossless after all): the checked way
                deferred, made, ladder, failures = False, {}, list(LADDER), []
                continue
        if not failed:
            assert data is not None
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
                        "read": read,
                        "checked": ["as encoded", *[f"{e}/{q}" for e, q in checks]],
                    },
                    "format": out_fmt,
                    "quality": quality if out_fmt != "PNG" else None,
                    "alpha": marked.mode == "RGBA" and out_fmt in imaging.ALPHA_FORMATS,
                    "background": background,
                    "metadata": "xmp" if xmp else None,
                    "pixel_art": (
                        {"art_pixel": job.pixel.scale, "colours": job.pixel.colours} if job.pixel else None
                    ),
                },
            )
        failures = failed
    raise _Untraceable(failures)


def _same_pixels(decoded: Image.Image, marked: Image.Image) -> bool:
    """Whether a decoded PNG holds exactly the marked pixels (as `poster trace` reads them and
    with alpha, which the simulated platforms composite)."""
    return decoded.mode == marked.mode and np.array_equal(np.asarray(decoded), np.asarray(marked))


# -- preview -------------------------------------------------------------------------------
PREVIEW_MARK_ID = 0  # never handed out to a real post (jobs.reserve_mark_id skips 0)


@dataclass(frozen=True)
class Preview:
    rendered: Rendered
    original: Image.Image  # the original at the variant's size, as a viewer would see it
    variant: Image.Image  # the decoded variant, as a viewer would see it
    layout: str = "derived from the image"

    def report(self) -> dict[str, Any]:
        from poster.protect import quality

        r = self.rendered
        return {
            "psnr": round(quality.psnr(self.original, self.variant), 2),
            "ssim": round(quality.ssim(self.original, self.variant), 4),
            "width": r.width,
            "height": r.height,
            "bytes": len(r.data),
            "format": r.format,
            "policy": r.info["policy"]["name"],
            "mark_strength": r.info["mark"]["strength"],
            "mark_read": r.info["mark"]["read"],  # blind | with the original
            "checked": r.info["mark"]["checked"],
            "alpha": r.info["alpha"],
            "mark_id": r.mark_id,
            "layout_seed": self.layout,  # "recorded at intake" | "derived from the image"
            "effective_policy": r.info["policy"],  # every parameter the steps ran with
            "steps": [
                {k: v for k, v in step.items() if k in ("use", "seed", "chosen")} for step in r.info["steps"]
            ],
            "pixel_art": r.info["pixel_art"],
        }


def recorded_layout_seed(db_path: Path, original_sha256: str) -> int | None:
    """The layout seed intake recorded for this original, if it was taken in (read-only:
    a preview never creates or changes the database)."""
    if not db_path.exists():
        return None
    try:
        conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=10)
    except sqlite3.Error:
        return None
    try:
        row = conn.execute(
            "SELECT layout_seed FROM originals WHERE sha256 = ? AND layout_seed IS NOT NULL"
            " ORDER BY artwork_id",
            (original_sha256,),
        ).fetchone()
    except sqlite3.Error:  # a data folder from before layout seeds were recorded
        return None
    finally:
        conn.close()
    return int(row[0]) if row else None


def preview(
    config: Config, target: str, path: Path, *, seed: int | None = None, progress: Progress | None = None
) -> Preview:
    """Render exactly what would be posted to `target` (same policy, capabilities, checks,
    and the same layout: the seed intake records for this image, or the one it would record),
    with the preview ID 0 so the file can never be mistaken for a real post."""
    from poster import markkey, policies
    from poster.platforms import adapter_class

    tc = config.targets.get(target)
    if tc is None:
        raise UserError(
            _("no target named {target!r} in {config} (known: {known})").format(
                target=target, config=config.path, known=", ".join(config.targets)
            )
        )
    data = imaging.read_file(path)
    key = markkey.load(config.data_dir)
    layout = "given"
    if seed is None:
        sha = hashlib.sha256(data).hexdigest()
        recorded = recorded_layout_seed(config.db_path, sha)
        layout = "recorded at intake" if recorded is not None else "derived from the image"
        seed = post_seed(recorded if recorded is not None else layout_seed(key, sha), target)
    max_pixels = config.intake.max_image_pixels
    src_fmt = imaging.probe(data, str(path), max_pixels=max_pixels).format
    source = imaging.load(data, str(path), max_pixels=max_pixels)
    r = render(
        source,
        source_format=src_fmt,
        policy=policies.build(config, tc.policy),
        caps=adapter_class(tc.adapter).capabilities,
        key=key,
        mark_id=PREVIEW_MARK_ID,
        artist=config.artist,
        background=config.render.background,
        seed=seed,
        progress=progress,
    )
    background = config.render.background
    variant = imaging.decode(r.data)
    original = resize(source, variant.size)
    if variant.mode == "RGBA":  # compare what a viewer sees: both on the background colour
        variant = imaging.flatten(variant, background)
    return Preview(r, imaging.flatten(original, background), variant.convert("RGB"), layout)
