"""Image sources for the trace benchmarks and the codebook training (no pytest needed).

Unrelated images come from Debian packages and Python packages that ship pictures, plus
procedural art; none of them is in ../shared/corpus (the art the benchmarks post):

    apt-get install openclipart-png wesnoth-1.16-data gnome-backgrounds mate-backgrounds \
        plasma-workspace-wallpapers tuxpaint-stamps-default ukui-wallpapers endless-sky-data \
        hedgewars-data freedroidrpg-data lomiri-wallpapers-16.04 lomiri-wallpapers-20.04 desktop-base
    pip install scikit-image matplotlib   # their sample photos

Sources that are not installed are skipped (the benchmark prints what it found).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from tests.synthetic import painting, photo_like  # noqa: E402

EXTS = (".png", ".jpg", ".jpeg", ".webp")


def _files(root: Path, min_bytes: int, pattern: str = "*") -> list[Path]:
    if not root.is_dir():
        return []
    return sorted(
        p for p in root.rglob(pattern) if p.suffix.lower() in EXTS and p.stat().st_size >= min_bytes
    )


def sources() -> dict[str, list[Path]]:
    """Named groups of image files found on this machine."""
    out: dict[str, list[Path]] = {}
    out["wesnoth portraits"] = _files(
        Path("/usr/share/games/wesnoth/1.16/data/core/images/portraits"), 20_000
    )
    out["wesnoth art"] = [
        p for p in _files(Path("/usr/share/games/wesnoth/1.16/data"), 60_000) if "/portraits/" not in str(p)
    ]
    out["openclipart"] = _files(Path("/usr/share/openclipart/png"), 30_000)
    out["tuxpaint stamps"] = _files(Path("/usr/share/tuxpaint/stamps"), 30_000)
    out["wallpapers"] = _files(Path("/usr/share/backgrounds"), 50_000) + _files(
        Path("/usr/share/wallpapers"), 50_000
    )
    out["endless sky (renders, landscapes)"] = _files(Path("/usr/share/games/endless-sky/images"), 30_000)
    out["hedgewars"] = _files(Path("/usr/share/games/hedgewars/Data"), 30_000)
    out["freedroidrpg"] = _files(Path("/usr/share/freedroidrpg"), 30_000)
    out["desktop-base"] = _files(Path("/usr/share/desktop-base"), 30_000) + _files(
        Path("/usr/share/plymouth/themes"), 30_000
    )
    try:
        import skimage

        out["scikit-image data"] = _files(Path(os.path.dirname(skimage.__file__)) / "data", 10_000)
    except ImportError:
        out["scikit-image data"] = []
    try:
        import matplotlib

        out["matplotlib sample data"] = _files(
            Path(os.path.dirname(matplotlib.__file__)) / "mpl-data" / "sample_data", 10_000
        )
    except ImportError:
        out["matplotlib sample data"] = []
    return out


def load(path: Path, max_long: int = 2048) -> Image.Image | None:
    """RGB (transparency over white), at most `max_long` px; None if unreadable or tiny."""
    try:
        with Image.open(path) as im:
            im.draft("RGB", (max_long, max_long))
            im.load()
            if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
                rgba = im.convert("RGBA")
                base = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
                im = Image.alpha_composite(base, rgba)
            im = im.convert("RGB")
    except (OSError, ValueError, Image.DecompressionBombError):
        return None
    if min(im.size) < 96:
        return None
    scale = min(1.0, max_long / max(im.size))
    if scale < 1:
        im = im.resize((round(im.width * scale), round(im.height * scale)), Image.Resampling.LANCZOS)
    return im


def flat_vector(w: int, h: int, seed: int) -> Image.Image:
    """Flat-colour shapes with outlines, like vector game art or flat illustration."""
    from PIL import ImageDraw

    rng = np.random.default_rng(seed)
    pal = rng.integers(0, 256, (6, 3))
    im = Image.new("RGB", (w, h), tuple(int(v) for v in pal[0]))
    d = ImageDraw.Draw(im)
    for _ in range(int(rng.integers(8, 40))):
        x, y = int(rng.integers(-w // 4, w)), int(rng.integers(-h // 4, h))
        s = int(rng.integers(min(w, h) // 12, min(w, h) // 2))
        fill = tuple(int(v) for v in pal[int(rng.integers(1, 6))])
        kind = int(rng.integers(0, 3))
        box = (x, y, x + s, y + int(s * rng.uniform(0.5, 1.5)))
        if kind == 0:
            d.ellipse(box, fill=fill, outline=(20, 20, 20), width=3)
        elif kind == 1:
            d.rectangle(box, fill=fill, outline=(20, 20, 20), width=3)
        else:
            pts = [(x + int(rng.integers(0, s)), y + int(rng.integers(0, s))) for _ in range(3)]
            d.polygon(pts, fill=fill, outline=(20, 20, 20))
    return im


def line_art(w: int, h: int, seed: int) -> Image.Image:
    """Ink strokes (random smooth curves) on paper, like a pencil or ink sketch."""
    from PIL import ImageDraw, ImageFilter

    rng = np.random.default_rng(seed)
    im = Image.new("RGB", (w, h), (245, 242, 235))
    d = ImageDraw.Draw(im)
    for _ in range(int(rng.integers(20, 90))):
        p = np.array([rng.uniform(0, w), rng.uniform(0, h)])
        v = rng.normal(0, 1, 2)
        pts = []
        for _k in range(int(rng.integers(5, 40))):
            v = 0.8 * v + rng.normal(0, 1, 2)
            p = p + v * rng.uniform(3, 12)
            pts.append((float(p[0]), float(p[1])))
        grey = int(rng.integers(10, 120))
        d.line(pts, fill=(grey, grey, grey), width=int(rng.integers(1, 4)))
    return im.filter(ImageFilter.GaussianBlur(0.6))


def pixel_art(w: int, h: int, seed: int) -> Image.Image:
    """A small palette image of blocky shapes, scaled up with nearest neighbour."""
    rng = np.random.default_rng(seed)
    cell = int(rng.integers(4, 12))
    gw, gh = max(8, w // cell), max(8, h // cell)
    pal = rng.integers(0, 256, (int(rng.integers(4, 12)), 3), dtype=np.uint8)
    noise = rng.random((gh // 4 + 1, gw // 4 + 1))
    idx = (np.kron(noise, np.ones((4, 4)))[:gh, :gw] * (len(pal) - 1)).round().astype(int)
    idx = (idx + (rng.random((gh, gw)) < 0.15) * rng.integers(0, len(pal), (gh, gw))) % len(pal)
    return Image.fromarray(pal[idx]).resize((gw * cell, gh * cell), Image.Resampling.NEAREST)


def fractal_landscape(w: int, h: int, seed: int) -> Image.Image:
    """Sky gradient over fractal (1/f noise) hills: a generated landscape."""
    rng = np.random.default_rng(seed)
    f = np.fft.fftfreq(w)[None, :] ** 2 + np.fft.fftfreq(h)[:, None] ** 2
    spec = (rng.normal(size=(h, w)) + 1j * rng.normal(size=(h, w))) / np.maximum(f, 1e-6) ** 0.9
    field = np.real(np.fft.ifft2(spec))
    field = (field - field.min()) / (np.ptp(field) + 1e-9)
    yy = np.linspace(0, 1, h)[:, None]
    ground = field > (1.2 - yy - 0.3 * field[:1, :])
    sky = np.array(rng.integers(80, 256, 3)) * (1 - 0.5 * yy[..., None])
    land = np.array(rng.integers(20, 200, 3)) * (0.5 + field[..., None])
    img = np.where(ground[..., None], land, sky)
    return Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))


GENERATORS = (
    lambda w, h, s: painting((w, h), s),
    photo_like,
    flat_vector,
    line_art,
    pixel_art,
    fractal_landscape,
)


def procedural(n: int, seed: int) -> Iterator[tuple[str, Image.Image]]:
    """Varied procedural art of random sizes: paintings, photo-like scenes, flat vector
    shapes, line art, pixel art and fractal landscapes, in turn."""
    rng = np.random.default_rng(seed)
    for i in range(n):
        w, h = int(rng.integers(320, 1100)), int(rng.integers(320, 1100))
        s = int(rng.integers(0, 2**31))
        yield (f"procedural-{seed}-{i}", GENERATORS[i % len(GENERATORS)](w, h, s))
