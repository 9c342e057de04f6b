"""Robustness / quality / speed benchmark of the hidden-ID codec ``poster.mark``.

Prints markdown tables: exact payload recovery per attack for poster.mark side by side with
the open baselines (invisible-watermark dwtDct / dwtDctSvd, blind-watermark) when they are
importable, PSNR/SSIM, embed/extract timings and a false-ID count on unmarked images.

    python benchmarks/mark.py                 # full table (slow: baselines are slow)
    python benchmarks/mark.py --quick         # fewer attacks and images, poster.mark only
    python benchmarks/mark.py --false-ids 10000
    python benchmarks/mark.py --images DIR... --only mark

The baselines live in their own environment: ``bash benchmarks/mark_baselines/setup.sh``
then run this script with ``benchmarks/.venv-mark/bin/python``.
Baselines carry a 32-bit payload (what their block layouts fit comfortably), poster.mark 48 bits.
"""

from __future__ import annotations

import argparse
import io
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance, ImageFilter, ImageOps

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from poster.mark import embed, extract  # noqa: E402
from poster.mark.informed import extract_informed  # noqa: E402
from tests.synthetic import photo_like  # noqa: E402

CORPUS = ROOT.parent / "shared" / "corpus"
KEY = b"benchmark-key"
IMG_EXT = {".png", ".jpg", ".jpeg", ".webp"}


# ------------------------------------------------------------------------------ images
def load_images(dirs: list[Path], n_synth: int, max_side: int | None) -> list[tuple[str, Image.Image]]:
    out = []
    for d in dirs:
        for p in sorted(d.iterdir()):
            if p.suffix.lower() in IMG_EXT:
                im = Image.open(p)
                im.load()
                out.append((p.name, im))
    for i in range(n_synth):
        w, h = [(2048, 1536), (1600, 2000), (3000, 2000), (1280, 1280)][i % 4]
        out.append((f"synthetic_photo_{i}", photo_like(w, h, 100 + i)))
    if max_side:
        res = []
        for name, im in out:
            if max(im.size) > max_side:
                f = max_side / max(im.size)
                im = im.resize((round(im.width * f), round(im.height * f)), Image.LANCZOS)
            res.append((name, im))
        out = res
    return out


# ------------------------------------------------------------------------------ attacks
def flat(im: Image.Image, bg=(255, 255, 255)) -> Image.Image:
    """What a JPEG-only platform does to transparency: composite onto white."""
    if im.mode in ("RGBA", "LA") or (im.mode == "P" and "transparency" in im.info):
        im = im.convert("RGBA")
        base = Image.new("RGB", im.size, bg)
        base.paste(im, mask=im.getchannel("A"))
        return base
    return im.convert("RGB") if im.mode not in ("RGB", "L") else im


def jpeg(q: int, sub: int = 2) -> Callable:
    def f(im, rng):
        buf = io.BytesIO()
        flat(im).save(buf, "JPEG", quality=q, subsampling=sub)
        return Image.open(io.BytesIO(buf.getvalue()))

    return f


def webp(q: int) -> Callable:
    def f(im, rng):
        buf = io.BytesIO()
        im2 = im if im.mode in ("RGB", "RGBA") else im.convert("RGB")
        im2.save(buf, "WEBP", quality=q)
        return Image.open(io.BytesIO(buf.getvalue()))

    return f


def fit(long_edge: int) -> Callable:
    def f(im, rng):
        if max(im.size) <= long_edge:
            return im
        s = long_edge / max(im.size)
        return im.resize((round(im.width * s), round(im.height * s)), Image.LANCZOS)

    return f


def scale(s: float | None, resample=Image.BICUBIC) -> Callable:
    def f(im, rng):
        k = rng.uniform(0.35, 1.0) if s is None else s
        rs = [Image.BILINEAR, Image.BICUBIC, Image.LANCZOS][rng.integers(3)] if s is None else resample
        return im.resize((max(1, round(im.width * k)), max(1, round(im.height * k))), rs)

    return f


def crop(fw: float, fh: float, centre: bool = False) -> Callable:
    def f(im, rng):
        w, h = im.size
        cw, ch = round(w * fw), round(h * fh)
        if centre:
            x, y = (w - cw) // 2, (h - ch) // 2
        else:
            x, y = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
        return im.crop((x, y, x + cw, y + ch))

    return f


def png(im, rng):
    buf = io.BytesIO()
    im.save(buf, "PNG")
    return Image.open(io.BytesIO(buf.getvalue()))


def screenshot(border: bool) -> Callable:
    def f(im, rng):
        im = flat(im).convert("RGB")
        im = im.resize((round(im.width * 0.75), round(im.height * 0.75)), Image.BILINEAR)
        if border:
            top, side, bottom = 64, 16, 48
            canvas = Image.new("RGB", (im.width + 2 * side, im.height + top + bottom), (32, 33, 36))
            canvas.paste(im, (side, top))
            d = ImageDraw.Draw(canvas)
            for i in range(6):
                d.rectangle((10 + 90 * i, 18, 80 + 90 * i, 40), fill=(200, 200, 205))
            d.text((20, canvas.height - 36), "1,234 likes  Reply  Repost", fill=(230, 230, 230))
            im = canvas
        return png(im, rng)

    return f


def enhance(kind: str, factor: float) -> Callable:
    def f(im, rng):
        base = flat(im).convert("RGB") if im.mode != "L" else im
        e = {"b": ImageEnhance.Brightness, "c": ImageEnhance.Contrast, "s": ImageEnhance.Color}[kind]
        return e(base).enhance(factor)

    return f


def gamma(g: float) -> Callable:
    lut = [round(255 * (i / 255) ** g) for i in range(256)]

    def f(im, rng):
        base = flat(im).convert("RGB") if im.mode != "L" else im
        return base.point(lut * len(base.getbands()))

    return f


def noise(sigma: float) -> Callable:
    def f(im, rng):
        a = np.asarray(flat(im).convert("RGB"), np.float32)
        a = a + rng.normal(0, sigma, a.shape).astype(np.float32)
        return Image.fromarray(np.clip(np.rint(a), 0, 255).astype(np.uint8))

    return f


def blur(radius: float) -> Callable:
    return lambda im, rng: flat(im).convert("RGB").filter(ImageFilter.GaussianBlur(radius))


def mirror(im, rng):
    return ImageOps.mirror(im)


def rotate(deg: float) -> Callable:
    return lambda im, rng: flat(im).convert("RGB").rotate(deg, Image.BICUBIC, fillcolor=(255, 255, 255))


def aspect(fx: float) -> Callable:
    return lambda im, rng: im.resize((round(im.width * fx), im.height), Image.BICUBIC)


def chain(*fs: Callable) -> Callable:
    def f(im, rng):
        for g in fs:
            im = g(im, rng)
        return im

    return f


def x_pipe(n: int) -> Callable:
    return chain(fit(n), jpeg(85, 2))


ATTACKS: dict[str, Callable] = {
    "clean PNG": png,
    "JPEG 90": jpeg(90),
    "JPEG 80": jpeg(80),
    "JPEG 70": jpeg(70),
    "JPEG 50": jpeg(50),
    "X 4096 + JPEG 85": x_pipe(4096),
    "X 2048 + JPEG 85": x_pipe(2048),
    "X 1200 + JPEG 85": x_pipe(1200),
    "WebP 80": webp(80),
    "resize 0.35": scale(0.35),
    "resize 0.5": scale(0.5),
    "resize 0.71": scale(0.71),
    "resize random 0.35-1": scale(None),
    "crop 90% centre": crop(0.949, 0.949, True),
    "crop 70% (84x84%) random": crop(0.837, 0.837),
    "crop 70% (full w) random": crop(1.0, 0.7),
    "crop 70% (full h) random": crop(0.7, 1.0),
    "screenshot 0.75 + PNG": screenshot(False),
    "screenshot + UI border": screenshot(True),
    "brightness +15%": enhance("b", 1.15),
    "brightness -15%": enhance("b", 0.85),
    "contrast +15%": enhance("c", 1.15),
    "contrast -15%": enhance("c", 0.85),
    "gamma 0.85": gamma(0.85),
    "gamma 1.15": gamma(1.15),
    "saturation +25%": enhance("s", 1.25),
    "saturation -25%": enhance("s", 0.75),
    "noise sigma 4": noise(4),
    "blur radius 1": blur(1),
    "X 1200 + crop 80%": chain(x_pipe(1200), crop(0.894, 0.894)),
    "X 2048 + resize 0.5": chain(x_pipe(2048), scale(0.5)),
    "resize 0.5 + JPEG 70": chain(scale(0.5), jpeg(70)),
    "crop 70% + JPEG 80": chain(crop(0.837, 0.837), jpeg(80)),
    "screenshot border + JPEG 85": chain(screenshot(True), jpeg(85)),
    "gamma 1.15 + X 2048": chain(gamma(1.15), x_pipe(2048)),
    "noise 4 + JPEG 80": chain(noise(4), jpeg(80)),
    "blur 1 + resize 0.5": chain(blur(1), scale(0.5)),
    "saturation -25% + crop 80%": chain(enhance("s", 0.75), crop(0.894, 0.894)),
    "(stretch) mirror": mirror,
    "(stretch) mirror + JPEG 80": chain(mirror, jpeg(80)),
    "(stretch) rotate +1°": rotate(1),
    "(stretch) rotate -3°": rotate(-3),
    "(stretch) aspect x1.1": aspect(1.1),
}
QUICK = [
    "clean PNG",
    "JPEG 50",
    "X 1200 + JPEG 85",
    "resize 0.35",
    "resize random 0.35-1",
    "crop 70% (84x84%) random",
    "screenshot + UI border",
    "noise sigma 4",
    "X 1200 + crop 80%",
    "resize 0.5 + JPEG 70",
    "(stretch) mirror",
    "(stretch) rotate -3°",
]
BASELINE_ATTACKS = [
    "clean PNG",
    "JPEG 70",
    "JPEG 50",
    "X 1200 + JPEG 85",
    "resize 0.5",
    "crop 90% centre",
    "screenshot 0.75 + PNG",
]


# ------------------------------------------------------------------------------ codecs
class Codec:
    name = "?"
    bits = 48

    def embed(self, im: Image.Image, payload: int) -> Image.Image: ...

    def extract(self, im: Image.Image) -> int | None: ...


class PosterMark(Codec):
    name = "poster.mark"
    bits = 48

    strength = 1.0

    def embed(self, im, payload):
        return embed(im, payload, key=KEY, strength=self.strength)

    def extract(self, im):
        return extract(im, key=KEY)


class PosterMarkInformed(PosterMark):
    """The same marks, read with the unmarked original at hand (what ``poster trace`` has)."""

    name = "poster.mark with original"
    informed = True

    def extract(self, im, original=None):
        d = extract_informed(im, original, key=KEY)
        return None if d is None else d.payload


def _bgr(im: Image.Image) -> np.ndarray:
    return np.ascontiguousarray(np.asarray(flat(im).convert("RGB"))[..., ::-1])


def _from_bgr(a: np.ndarray) -> Image.Image:
    return Image.fromarray(np.clip(np.rint(a), 0, 255).astype(np.uint8)[..., ::-1].copy(), "RGB")


def _bits(payload: int, n: int) -> list[int]:
    return [(payload >> (n - 1 - i)) & 1 for i in range(n)]


def _int(bits) -> int:
    v = 0
    for b in bits:
        v = (v << 1) | int(bool(b))
    return v


class InvisibleWM(Codec):
    bits = 32

    def __init__(self, method: str):
        from imwatermark import WatermarkDecoder, WatermarkEncoder

        self.method, self.Enc, self.Dec = method, WatermarkEncoder, WatermarkDecoder
        self.name = f"invisible-watermark {method}"

    def embed(self, im, payload):
        enc = self.Enc()
        enc.set_watermark("bits", _bits(payload, 32))
        return _from_bgr(enc.encode(_bgr(im), self.method))

    def extract(self, im):
        try:
            bits = self.Dec("bits", 32).decode(_bgr(im), self.method)
        except Exception:
            return None
        return _int(bits)


class BlindWM(Codec):
    bits = 32
    name = "blind-watermark"

    def __init__(self):
        from blind_watermark import WaterMark, bw_notes

        bw_notes.close()
        self.WM = WaterMark

    def embed(self, im, payload):
        bwm = self.WM(password_img=1, password_wm=1)
        bwm.read_img(img=_bgr(im))
        bwm.read_wm(_bits(payload, 32), mode="bit")
        return _from_bgr(bwm.embed())

    def extract(self, im):
        try:
            bwm = self.WM(password_img=1, password_wm=1)
            wm = bwm.extract(embed_img=_bgr(im), wm_shape=32, mode="bit")
        except Exception:
            return None
        return _int(np.asarray(wm) > 0.5)


def baselines() -> list[Codec]:
    out: list[Codec] = []
    try:
        out += [InvisibleWM("dwtDct"), InvisibleWM("dwtDctSvd")]
    except Exception as e:  # pragma: no cover - depends on the environment
        print(f"(invisible-watermark not importable: {e!r})", file=sys.stderr)
    try:
        out.append(BlindWM())
    except Exception as e:  # pragma: no cover
        print(f"(blind-watermark not importable: {e!r})", file=sys.stderr)
    return out


# ------------------------------------------------------------------------------ metrics
def psnr(a: Image.Image, b: Image.Image) -> float:
    x = np.asarray(flat(a).convert("RGB"), np.float64)
    y = np.asarray(flat(b).convert("RGB"), np.float64)
    mse = float(np.mean((x - y) ** 2))
    return 99.0 if mse == 0 else 10 * np.log10(255.0**2 / mse)


def _gauss(a: np.ndarray, sigma: float = 1.5) -> np.ndarray:
    r = int(3 * sigma + 0.5)
    k = np.exp(-0.5 * (np.arange(-r, r + 1) / sigma) ** 2)
    k /= k.sum()
    p = np.pad(a, r, mode="reflect")
    t = sum(k[i] * p[i : i + a.shape[0], :] for i in range(2 * r + 1))
    return sum(k[i] * t[:, i : i + a.shape[1]] for i in range(2 * r + 1))


def ssim(a: Image.Image, b: Image.Image) -> float:
    """Standard SSIM (Wang et al. 2004, Gaussian window 1.5) on luma."""
    x = np.asarray(flat(a).convert("L"), np.float64)
    y = np.asarray(flat(b).convert("L"), np.float64)
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    mx, my = _gauss(x), _gauss(y)
    sxx = _gauss(x * x) - mx * mx
    syy = _gauss(y * y) - my * my
    sxy = _gauss(x * y) - mx * my
    m = ((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx * mx + my * my + c1) * (sxx + syy + c2))
    return float(m.mean())


# ------------------------------------------------------------------------------ runs
def robustness(codecs, images, attacks, seed=7):
    results = {c.name: {a: [0, 0] for a in attacks} for c in codecs}
    quality = {c.name: [] for c in codecs}
    failures = {c.name: [] for c in codecs}
    for c in codecs:
        for ii, (name, im) in enumerate(images):
            rng0 = np.random.default_rng(seed + ii)
            payload = int(rng0.integers(0, 1 << c.bits))
            try:
                m = c.embed(im, payload)
            except Exception as e:
                print(f"  {c.name}: embed failed on {name}: {e!r}", file=sys.stderr)
                for a in attacks:
                    results[c.name][a][1] += 1
                continue
            small = max(im.size) > 2400
            quality[c.name].append((name, psnr(im, m), ssim(im, m) if not small else ssim(*_shrink(im, m))))
            for ai, a in enumerate(attacks):
                rng = np.random.default_rng(1000 * ii + ai + seed)
                try:
                    attacked = ATTACKS[a](m, rng)
                    got = c.extract(attacked, im) if getattr(c, "informed", False) else c.extract(attacked)
                except Exception as e:  # an attack/extract crash counts as a miss
                    print(f"  {c.name} {a} {name}: {e!r}", file=sys.stderr)
                    got = None
                ok = got == payload
                results[c.name][a][0] += ok
                results[c.name][a][1] += 1
                if not ok:
                    failures[c.name].append((a, name, "wrong" if got is not None else "none"))
            print(f"  [{c.name}] {ii + 1}/{len(images)} {name}", file=sys.stderr, flush=True)
    return results, quality, failures


def _shrink(a, b):
    f = 2400 / max(a.size)
    size = (round(a.width * f), round(a.height * f))
    return a.convert("RGB").resize(size, Image.BOX), b.convert("RGB").resize(size, Image.BOX)


def timings(codecs, sizes=(2048, 4096), reps=2):
    rows = []
    for n in sizes:
        im = photo_like(n, n, 5)
        for c in codecs:
            reps_c = 1 if n > 2048 and c.name.startswith("blind") else reps
            payload = 12345
            te, tx = [], []
            for _ in range(reps_c):
                t = time.perf_counter()
                m = c.embed(im, payload)
                te.append(time.perf_counter() - t)
                t = time.perf_counter()
                c.extract(m, im) if getattr(c, "informed", False) else c.extract(m)
                tx.append(time.perf_counter() - t)
            rows.append((c.name, n, min(te), min(tx)))
    return rows


def false_ids(n: int, images, seed=11) -> tuple[int, int]:
    """Extract with the benchmark key from n unmarked (or other-key) images/crops/attacks."""
    rng = np.random.default_rng(seed)
    keys = list(ATTACKS)
    wrong = 0
    t0 = time.time()
    for i in range(n):
        kind = i % 4
        if kind == 3:
            im = photo_like(int(rng.integers(256, 700)), int(rng.integers(256, 700)), 10_000 + i)
        else:
            _, im = images[int(rng.integers(len(images)))]
            im = flat(im).convert("RGB")
            s = rng.uniform(0.12, 0.5)
            w, h = max(256, round(im.width * s)), max(256, round(im.height * s))
            im = fit(900)(im.resize((min(w, im.width), min(h, im.height)), Image.BILINEAR), rng)
            if kind == 1 and min(im.size) > 300:
                im = crop(rng.uniform(0.7, 1), rng.uniform(0.7, 1))(im, rng)
            if kind == 2:  # marked with a *different* key: must not read with ours
                im = embed(im, int(rng.integers(1 << 48)), key=b"someone-else")
        a = keys[int(rng.integers(len(keys)))]
        im = ATTACKS[a](im, rng)
        got = extract(im, key=KEY)
        if got is not None:
            wrong += 1
            print(f"  FALSE ID {got:#x} on sample {i} ({a})", file=sys.stderr)
        if (i + 1) % 500 == 0:
            print(f"  false-id run {i + 1}/{n}, {time.time() - t0:.0f}s", file=sys.stderr, flush=True)
    return wrong, n


def false_ids_informed(n: int, images, seed=13) -> tuple[int, int]:
    """Informed reads of unmarked copies (reference: the same image) and of copies marked with
    another key (reference: their original), each through a random attack of the table."""
    rng = np.random.default_rng(seed)
    keys = list(ATTACKS)
    wrong = 0
    t0 = time.time()
    for i in range(n):
        if i % 3 == 2:
            ref = photo_like(int(rng.integers(256, 900)), int(rng.integers(256, 900)), 20_000 + i)
        else:
            _, ref = images[int(rng.integers(len(images)))]
            s = rng.uniform(0.2, 0.6)
            ref = flat(ref).convert("RGB")
            size = (max(256, round(ref.width * s)), max(256, round(ref.height * s)))
            ref = ref.resize(size, Image.BILINEAR)
        im = ref if i % 3 != 1 else embed(ref, int(rng.integers(1 << 48)), key=b"someone-else")
        a = keys[int(rng.integers(len(keys)))]
        got = extract_informed(ATTACKS[a](im, rng), ref, key=KEY)
        if got is not None:
            wrong += 1
            print(f"  FALSE ID (informed) {got.payload:#x} on sample {i} ({a})", file=sys.stderr)
        if (i + 1) % 250 == 0:
            print(f"  informed false-id run {i + 1}/{n}, {time.time() - t0:.0f}s", file=sys.stderr)
    return wrong, n


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--images", nargs="*", type=Path)
    ap.add_argument("--synthetic", type=int, default=4, help="procedural photo-like images to add")
    ap.add_argument("--only", choices=["mark", "all"], default="all")
    ap.add_argument("--false-ids", type=int, default=0, metavar="N")
    ap.add_argument("--no-timing", action="store_true")
    ap.add_argument("--seed", type=int, default=11, help="seed of the --false-ids run")
    ap.add_argument("--max-side", type=int, default=None, help="downscale test images first")
    ap.add_argument("--baseline-max-side", type=int, default=2048)
    ap.add_argument("--attacks", nargs="*")
    ap.add_argument("--strength", type=float, default=1.0, help="poster.mark embedding strength")
    ap.add_argument("--no-informed", action="store_true", help="skip the reads with the original")
    ap.add_argument("--false-ids-informed", type=int, default=0, metavar="N")
    args = ap.parse_args(argv)
    if not args.images and not CORPUS.is_dir():
        ap.error(f"{CORPUS}: the test-art corpus is not beside this repository; pass --images DIR")

    dirs = args.images or [CORPUS]
    images = load_images(dirs, args.synthetic, args.max_side)
    attacks = args.attacks or (QUICK if args.quick else list(ATTACKS))
    if args.quick and not args.images:
        images = images[::2] if len(images) > 10 else images
    print(f"# poster.mark benchmark: {len(images)} images, {len(attacks)} attacks\n")
    print("Images: " + ", ".join(f"{n} {im.width}x{im.height} {im.mode}" for n, im in images) + "\n")

    mark = PosterMark()
    mark.strength = args.strength
    codecs: list[Codec] = [mark]
    if not args.no_informed:
        informed = PosterMarkInformed()
        informed.strength = args.strength
        codecs.append(informed)
    base = [] if (args.only == "mark" or args.quick) else baselines()

    false_id_runs = (
        (args.false_ids, false_ids, "False IDs", "unmarked, wrong-key, cropped or attacked samples"),
        (
            args.false_ids_informed,
            false_ids_informed,
            "False IDs (informed)",
            "unmarked or other-key copies read with their original",
        ),
    )
    for count, run, label, what in false_id_runs:
        if count:
            t = time.time()
            small = [(n, fit(1600)(flat(im).convert("RGB"), None)) for n, im in images]
            w, n = run(count, small, seed=args.seed)
            print(f"{label}: {w} / {n} {what} ({time.time() - t:.0f} s)\n")
    if (args.false_ids or args.false_ids_informed) and not args.attacks:
        return 0

    t0 = time.time()
    res, qual, fails = robustness(codecs, images, attacks)
    if base:
        bimgs = [(n, flat(fit(args.baseline_max_side)(im, None)).convert("RGB")) for n, im in images]
        battacks = [a for a in attacks if a in BASELINE_ATTACKS] or attacks[:3]
        bres, bqual, _ = robustness(base, bimgs, battacks)
        res.update(bres)
        qual.update(bqual)
    print(f"## Exact payload recovery (images decoded as received; {time.time() - t0:.0f} s)\n")
    names = [c.name for c in codecs + base]
    hdr = ["attack"] + [f"{n} ({c.bits} bit)" for n, c in zip(names, codecs + base, strict=True)]
    print("| " + " | ".join(hdr) + " |")
    print("|" + "---|" * len(hdr))
    for a in attacks:
        cells = []
        for n in names:
            ok, tot = res[n].get(a, (0, 0))
            cells.append(f"{ok}/{tot}" if tot else "–")
        print(f"| {a} | " + " | ".join(cells) + " |")
    if base:
        print(
            f"\nBaselines: images fitted to {args.baseline_max_side} px long edge and flattened "
            "to RGB (their libraries take 3-channel arrays); '–' = not run for that library."
        )

    print("\n## Quality (marked vs original)\n")
    print("| codec | PSNR mean | PSNR min | SSIM mean | SSIM min |")
    print("|---|---|---|---|---|")
    for n in names:
        q = qual[n] if n != "poster.mark with original" else []  # the same marks as poster.mark
        if q:
            p = [x[1] for x in q]
            s = [x[2] for x in q]
            print(f"| {n} | {np.mean(p):.2f} dB | {np.min(p):.2f} dB | {np.mean(s):.4f} | {np.min(s):.4f} |")
    per_image = ", ".join(f"{n} {p:.1f} dB / {s:.4f}" for n, p, s in qual[mark.name])
    print("\nPer image (poster.mark): " + per_image)

    for c in codecs:
        if not fails[c.name]:
            continue
        per: dict[str, list[str]] = {}
        for a, n, k in fails[c.name]:
            per.setdefault(n, []).append(a + (" (WRONG ID)" if k == "wrong" else ""))
        print(
            f"\n{c.name} misses per image (attack count): "
            + "; ".join(
                f"{n}: {len(v)}" + (f" ({', '.join(v)})" if len(v) <= 6 else "") for n, v in per.items()
            )
        )
        wrong = sum(k == "wrong" for _, _, k in fails[c.name])
        print(f"\nWrong IDs returned by {c.name} on marked images: {wrong}")

    if not args.no_timing:
        print("\n## Timing (seconds, best of 2; this 2-core machine, shared)\n")
        print("| codec | size | embed | extract |")
        print("|---|---|---|---|")
        sizes = (2048,) if args.quick else (2048, 4096)
        for n, size, te, tx in timings(codecs + base, sizes):
            print(f"| {n} | {size}² | {te:.2f} | {tx:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
