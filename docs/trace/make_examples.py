"""Make the example evidence reports of docs/trace/ again (and their screenshots).

    .venv/bin/python docs/trace/make_examples.py [OUT]

A fresh poster home in OUT (default: a temporary folder) posts the test painting
(tests/data/revoy_forest_painting.jpg: Pepper&Carrot by David Revoy, CC BY 4.0) to the
default targets through the local adapter; then three copies are traced with `--report`:

* exact-post: the X post turned 6°, cropped to about 30 % of its area, halved, JPEG 55 — named
  by its hidden ID, read with the archived original through the geometry the local features
  found;
* not-from-any-post: the archived original itself at half size (the source file leaked);
* likely-rework: an img2img-like rework of the original (smoothed, posterised, re-drawn lines,
  hue shift).

With Chromium at /usr/bin/chromium, each page is also screenshotted (1280 × 2000) into this
folder. The verdict of each copy is printed; the rework's depends on the random watermark
layouts of the posts only through the perceptual stage, and is checked here.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageEnhance, ImageFilter

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
PAINTING = REPO / "tests" / "data" / "revoy_forest_painting.jpg"
CHROMIUM = Path("/usr/bin/chromium")
SIZE = ("--window-size=1280,2000",)


def poster(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "poster", "--config", str(config), *args],
        capture_output=True,
        text=True,
        check=False,
    )


def rework(im: Image.Image, seed: int = 1) -> Image.Image:
    import cv2

    rng = np.random.default_rng(seed)
    base = im.convert("RGB")
    base.thumbnail((768, 768))
    a = cv2.bilateralFilter(np.asarray(base), 9, 60, 9)
    a = cv2.medianBlur(a, 5)
    levels = int(rng.integers(4, 8))
    a = (np.round(a / 255 * (levels - 1)) / (levels - 1) * 255).astype(np.uint8)
    edges = cv2.dilate(cv2.Canny(cv2.cvtColor(a, cv2.COLOR_RGB2GRAY), 60, 140), np.ones((2, 2), np.uint8))
    a = a.copy()
    a[edges > 0] = (a[edges > 0] * 0.25).astype(np.uint8)
    hsv = np.asarray(Image.fromarray(a).convert("HSV")).copy()
    hsv[..., 0] = (hsv[..., 0].astype(int) + int(rng.uniform(15, 40) / 360 * 255)) % 256
    out = Image.fromarray(hsv, "HSV").convert("RGB")
    return ImageEnhance.Color(out).enhance(float(rng.uniform(0.9, 1.3))).filter(ImageFilter.GaussianBlur(0.7))


def main() -> None:
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp(prefix="poster-examples-"))
    home = out / "home"
    subprocess.run([sys.executable, "-m", "poster", "init", str(home)], check=True, capture_output=True)
    config = home / "config.toml"
    art = home / "queue" / "outbox" / PAINTING.name
    art.write_bytes(PAINTING.read_bytes())
    os.utime(art, (time.time() - 3600,) * 2)
    done = poster(config, "run", "--once", "--now")
    if done.returncode:
        sys.exit(done.stdout + done.stderr)
    rows = json.loads(poster(config, "ledger", "export").stdout)
    x_post = next(r for r in rows if r["target"] == "x")
    copies = out / "copies"
    copies.mkdir(exist_ok=True)
    with Image.open(x_post["url"].removeprefix("file://")) as im:
        w, h = im.size
        turned = im.convert("RGB").rotate(6, resample=Image.Resampling.BICUBIC)
        crop = turned.crop((int(w * 0.25), int(h * 0.2), int(w * 0.8), int(h * 0.75)))
        crop.resize((crop.width // 2, crop.height // 2), Image.Resampling.BILINEAR).save(
            copies / "exact-post.jpg", quality=55
        )
    archived = next((home / "queue" / "archive").rglob("*.jpg"))
    with Image.open(archived) as im:
        im.convert("RGB").resize((im.width // 2, im.height // 2)).save(
            copies / "not-from-any-post.jpg", quality=92
        )
        rework(im).save(copies / "likely-rework.jpg", quality=90)
    expected = {
        "exact-post": "exact post",
        "not-from-any-post": "not from any post",
        "likely-rework": "likely rework",
    }
    for name, verdict in expected.items():
        report = out / "reports" / name
        got = json.loads(
            poster(config, "trace", str(copies / f"{name}.jpg"), "--report", str(report), "--json").stdout
        )
        flag = "" if got["verdict"] == verdict else f"   (expected {verdict})"
        print(f"{name}: {got['verdict']}{flag}  {report / 'index.html'}")
        if CHROMIUM.is_file() and not flag:
            shot = HERE / f"{name}.png"
            page = (report / "index.html").as_uri()
            subprocess.run(
                [
                    str(CHROMIUM),
                    "--headless",
                    "--no-sandbox",
                    "--disable-gpu",
                    f"--screenshot={shot}",
                    *SIZE,
                    page,
                ],
                capture_output=True,
                check=False,
            )
            with Image.open(shot) as im:  # a palette keeps the repository small
                im.convert("RGB").quantize(256, Image.Quantize.MEDIANCUT).save(shot, optimize=True)


if __name__ == "__main__":
    main()
