"""Image sources for the trace benchmarks and the codebook training (no pytest needed).

Unrelated images come from Debian packages and Python packages that ship pictures, plus
procedural art; none of them is in ../shared/corpus (the art the benchmarks post):

    apt-get install openclipart-png wesnoth-1.16-data gnome-backgrounds mate-backgrounds \
        plasma-workspace-wallpapers tuxpaint-stamps-default
    pip install scikit-image matplotlib

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


def procedural(n: int, seed: int) -> Iterator[tuple[str, Image.Image]]:
    """Varied procedural art: paintings and photo-like scenes of random sizes."""
    rng = np.random.default_rng(seed)
    for i in range(n):
        w, h = int(rng.integers(320, 1100)), int(rng.integers(320, 1100))
        s = int(rng.integers(0, 2**31))
        yield (f"procedural-{seed}-{i}", painting((w, h), s) if i % 2 == 0 else photo_like(w, h, s))
