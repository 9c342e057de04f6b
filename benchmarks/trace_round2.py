# ruff: noqa: E501, B007
"""Round-2 trace benchmarks (issue 17), run through benchmarks/trace.py."""

from __future__ import annotations

import io
import json
import os
import resource
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance, ImageFilter, ImageOps

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

import images  # noqa: E402

from poster import cli, composition, config, features, fingerprint, ledger, markkey, store  # noqa: E402
from poster import trace as trace_mod  # noqa: E402
from tests.synthetic import painting  # noqa: E402

CORPUS = REPO.parent / "shared" / "corpus"
if not CORPUS.is_dir():
    CORPUS = Path("/work/shared/corpus")
ORDER = (  # varied art first: painting, photo, sketch, alpha character, comic page, flat sheet, ...
    "revoy_forest_painting.jpg",
    "kodim23.png",
    "revoy_pencil_sketch.jpeg",
    "sachi_standing_alpha.png",
    "peppercarrot_comic_page_es_E01P01.jpg",
    "kenney_flat_elements_sheet.png",
    "revoy_chaosah_family.jpg",
    "kodim04.png",
    "sachi_human_fox_alpha.png",
    "revoy_flying_city_landscape.jpg",
    "revoy_shichimi_concept.jpg",
    "kodim05.png",
)


# -- codecs and edits -------------------------------------------------------------------------
def encode(im: Image.Image, fmt: str, q: int) -> Image.Image:
    buf = io.BytesIO()
    im.convert("RGB").save(buf, fmt, quality=q)
    return Image.open(io.BytesIO(buf.getvalue())).convert("RGB")


def fit(im: Image.Image, long: int) -> Image.Image:
    s = long / max(im.size)
    return im.resize((max(1, round(im.width * s)), max(1, round(im.height * s))), Image.Resampling.LANCZOS)


def x_twice(im: Image.Image, r: np.random.Generator) -> Image.Image:
    a = encode(fit(im, min(4096, max(im.size))), "JPEG", 85)
    return encode(fit(a, 680), "JPEG", 75)


def crop_area(im: Image.Image, area: float, r: np.random.Generator) -> Image.Image:
    w, h = im.size
    aspect = r.uniform(0.7, 1.4)
    cw = min(w, round(np.sqrt(area * w * h * aspect)))
    ch = min(h, round(area * w * h / cw))
    x0, y0 = int(r.integers(0, w - cw + 1)), int(r.integers(0, h - ch + 1))
    return im.crop((x0, y0, x0 + cw, y0 + ch))


def lossy(im: Image.Image, r: np.random.Generator) -> Image.Image:
    """Rescale 0.5-1.0 then JPEG 70-85 or WebP 75-85 (the issue's 'combined with')."""
    im = im.resize(
        (max(32, round(im.width * r.uniform(0.5, 1.0))), max(32, round(im.height * r.uniform(0.5, 1.0))))
    )
    return (
        encode(im, "WEBP", int(r.integers(75, 86)))
        if r.random() < 0.5
        else encode(im, "JPEG", int(r.integers(70, 86)))
    )


def phone_screenshot(im: Image.Image, r: np.random.Generator) -> Image.Image:
    art = fit(im, 1080) if im.width >= im.height else im.resize((1080, round(1080 * im.height / im.width)))
    bar, nav = 96, 140
    canvas = Image.new("RGB", (1080, art.height + bar + nav + 200), (18, 18, 18))
    canvas.paste(art, (0, bar + 100))
    d = ImageDraw.Draw(canvas)
    d.text((40, 30), "12:34", fill=(240, 240, 240))
    for i in range(4):
        d.rectangle((860 + 45 * i, 34, 890 + 45 * i, 62), fill=(230, 230, 230))
    d.text((40, bar + 30), "@someone · 3h", fill=(200, 200, 200))
    for i in range(3):
        d.ellipse(
            (200 + 300 * i, canvas.height - 100, 260 + 300 * i, canvas.height - 40), outline=(220, 220, 220)
        )
    return encode(canvas, "JPEG", 70)


def rotate_crop(im: Image.Image, r: np.random.Generator) -> Image.Image:
    deg = float(r.uniform(5, 10)) * (1 if r.random() < 0.5 else -1)
    t = im.rotate(deg, resample=Image.Resampling.BICUBIC)
    w, h = t.size
    return lossy(t.crop((int(w * 0.15), int(h * 0.15), int(w * 0.85), int(h * 0.85))), r)


def caption(im: Image.Image, r: np.random.Generator) -> Image.Image:
    w, h = im.size
    band = max(40, h // 6)
    canvas = Image.new("RGB", (w, h + 2 * band), (255, 255, 255))
    canvas.paste(im.convert("RGB"), (0, band))
    d = ImageDraw.Draw(canvas)
    for i, text in enumerate(("WHEN THE ART IS FREE", "AND NOBODY CREDITS IT")):
        y = 8 if i == 0 else h + band + 8
        for k in range(8):  # a crude big caption: the default font, repeated and bolded
            d.text((20 + k * w // 9, y + (k % 2) * 4), text[k * 3 : k * 3 + 6], fill=(0, 0, 0))
        d.rectangle((10, y + band // 2, w - 10, y + band // 2 + 6), fill=(0, 0, 0))
    return lossy(canvas, r)


def collage(im: Image.Image, r: np.random.Generator) -> Image.Image:
    cell = 600
    canvas = Image.new("RGB", (2 * cell + 30, 2 * cell + 30), (250, 250, 250))
    slot = int(r.integers(0, 4))
    for i in range(4):
        x, y = 10 + (i % 2) * (cell + 10), 10 + (i // 2) * (cell + 10)
        panel = im if i == slot else painting((cell, cell), int(r.integers(0, 10**6)))
        p = ImageOps.contain(panel.convert("RGB"), (cell, cell))
        canvas.paste(p, (x + (cell - p.width) // 2, y + (cell - p.height) // 2))
    return encode(canvas, "JPEG", 85)


def screen_photo(im: Image.Image, r: np.random.Generator) -> Image.Image:
    import cv2

    a = np.asarray(fit(im, 900).convert("RGB"), np.float32)
    h, w = a.shape[:2]
    j = lambda s: float(r.uniform(-s, s))  # noqa: E731
    src = np.float32([[0, 0], [w, 0], [w, h], [0, h]])
    dst = np.float32(
        [
            [80 + j(40), 60 + j(30)],
            [w + 60 + j(40), 30 + j(30)],
            [w + 100 + j(40), h + 90 + j(30)],
            [40 + j(40), h + 60 + j(30)],
        ]
    )
    H = cv2.getPerspectiveTransform(src, dst)
    out = cv2.warpPerspective(a, H, (w + 200, h + 180), flags=cv2.INTER_LINEAR, borderValue=(25, 25, 28))
    out = cv2.GaussianBlur(out, (0, 0), 1.0)
    yy, xx = np.mgrid[0 : out.shape[0], 0 : out.shape[1]]
    out = out * 0.92 + 12 + 4 * np.sin(xx * 0.9 + yy * 0.3)[..., None]  # glare, moiré
    out = 255 * (np.clip(out, 0, 255) / 255) ** 1.1 + r.normal(0, 3, out.shape)
    return encode(Image.fromarray(np.clip(out, 0, 255).astype(np.uint8)), "JPEG", 80)


def rework(im: Image.Image, r: np.random.Generator) -> Image.Image:
    """img2img-like: smoothing, posterise, re-drawn lines, hue shift; then lossy."""
    import cv2

    base = fit(im.convert("RGB"), 768)
    a = cv2.bilateralFilter(np.asarray(base), 9, 60, 9)
    a = cv2.medianBlur(a, 5)
    levels = int(r.integers(4, 8))
    a = (np.round(a / 255 * (levels - 1)) / (levels - 1) * 255).astype(np.uint8)
    edges = cv2.Canny(cv2.cvtColor(a, cv2.COLOR_RGB2GRAY), 60, 140)
    edges = cv2.dilate(edges, np.ones((2, 2), np.uint8))
    a = a.copy()
    a[edges > 0] = (a[edges > 0] * 0.25).astype(np.uint8)
    hsv = np.asarray(Image.fromarray(a).convert("HSV")).copy()
    hsv[..., 0] = (hsv[..., 0].astype(int) + int(r.uniform(15, 40) / 360 * 255)) % 256
    out = Image.fromarray(hsv, "HSV").convert("RGB")
    out = ImageEnhance.Color(out).enhance(float(r.uniform(0.9, 1.3))).filter(ImageFilter.GaussianBlur(0.7))
    if r.random() < 0.3:
        out = ImageOps.mirror(out)
    return lossy(out, r)


ATTACKS: dict[str, Callable[[Image.Image, np.random.Generator], Image.Image]] = {
    "X twice (4096 q85 → 680 → q75)": x_twice,
    "phone screenshot + bars + JPEG 70": phone_screenshot,
    "crop 30 % (any position) + rescale + JPEG/WebP": lambda im, r: lossy(crop_area(im, 0.30, r), r),
    "crop 20–25 % (any position) + rescale + JPEG/WebP": lambda im, r: lossy(
        crop_area(im, r.uniform(0.2, 0.25), r), r
    ),
    "X twice, then crop 30 %": lambda im, r: encode(crop_area(x_twice(im, r), 0.3, r), "JPEG", 85),
    "rotate 5–10° + crop + rescale + JPEG/WebP": rotate_crop,
    "mirror + rescale + JPEG/WebP": lambda im, r: lossy(ImageOps.mirror(im), r),
    "meme caption band + rescale + JPEG/WebP": caption,
    "collage panel + JPEG 85": collage,
    "photo of a screen (perspective, blur, moiré, noise, JPEG 80)": screen_photo,
    "img2img-like rework (smooth, posterise, lines, hue) + lossy": rework,
}


# -- the attack table ---------------------------------------------------------------------------
def _post(names: list[str], root: Path) -> tuple[config.Config, list[dict[str, Any]]]:
    from tests.conftest import run_cli

    home = config.load(cli.init_home(root / "home"))
    for name in names:
        dest = home.outbox / name
        dest.write_bytes((CORPUS / name).read_bytes())
        os.utime(dest, (time.time() - 3600,) * 2)
    code, out, err = run_cli("run", "--once", "--now", cfg=home)
    if code != 0:
        raise SystemExit(out + err)
    return home, json.loads(run_cli("ledger", "export", cfg=home)[1])


def attack_table(n_images: int, seed: int = 17) -> None:
    names = list(ORDER[:n_images])
    print(
        f"== attacks: {len(names)} corpus artworks posted to x (heavy), pixiv, xfolio (light); the X copy attacked =="
    )
    t0 = time.perf_counter()
    tmp = Path(tempfile.mkdtemp(prefix="trace-bench-"))
    try:
        home, rows = _post(names, tmp)
        print(f"posted {len(rows)} rows in {time.perf_counter() - t0:.0f}s")
        conn = store.connect(home.db_path)
        key = markkey.load(home.data_dir)
        tracer = trace_mod.Tracer(conn, key, home.data_dir)
        t = time.perf_counter()
        _ = tracer.findex  # the feature index (already built after posting; a no-op here)
        print(f"feature index ready in {time.perf_counter() - t:.2f}s ({len(tracer.findex)} originals)")
        x_rows = [r for r in rows if r["target"] == "x"]
        rng = np.random.default_rng(seed)
        header = f"{'attack':62} {'exact':>6} {'artwork':>8} {'nothing':>8} {'wrong':>6} {'median s':>9} | {'perceptual':>10} {'blind ID':>9}"
        print(header)
        all_rows = []
        cases = [*ATTACKS.items(), ("unposted original (JPEG 90, 1600 px)", None)]
        for attack, fn in cases:
            counts = {"exact": 0, "artwork": 0, "nothing": 0, "wrong": 0}
            perc = blind = 0
            times = []
            details = []
            for row in x_rows:
                original = Path(home.data_dir / _archive_path(conn, row))
                with Image.open(original) as o:
                    o.load()
                    orig = images.load(original, 8192) or o.convert("RGB")
                if fn is None:
                    suspect = encode(fit(orig, 1600), "JPEG", 90)
                else:
                    with Image.open(Path(row["url"].removeprefix("file://"))) as v:
                        suspect = fn(v.convert("RGB"), rng)
                t = time.perf_counter()
                res = tracer.trace_image(suspect)
                times.append(time.perf_counter() - t)
                outcome = classify(res, row, unposted=fn is None, rework=fn is rework)
                counts[outcome] += 1
                if outcome != "exact":
                    details.append(f"{Path(row['url']).name}: {res.verdict}")
                p = tracer.perceptual(suspect)
                if p.matches and p.matches[0].row["original_sha256"] == row["original_sha256"]:
                    perc += 1
                found, _m = trace_mod.read_hidden_id(suspect, key)
                blind += found == ledger.parse_id(row["id"])
            n = len(x_rows)
            line = (
                f"{attack:62} {counts['exact']:>3}/{n:<2} {counts['artwork']:>8} {counts['nothing']:>8} "
                f"{counts['wrong']:>6} {statistics.median(times):>9.2f} | {perc:>6}/{n:<3} {blind:>5}/{n:<3}"
            )
            print(line, flush=True)
            all_rows.append((attack, counts, details))
        print(
            "(exact: the post named is the source; artwork: the right artwork, no post named — for the "
            "rework row the artwork named as a likely rework; for the unposted original 'artwork' is "
            "'not from any post' or 'artwork only'; wrong: any other post or artwork named, or any post "
            "named for the unposted original. perceptual: the perceptual stage alone ranks the right "
            "artwork first; blind ID: the blind read alone gives the post's ID.)"
        )
        for attack, counts, details in all_rows:
            if details:
                print(f"  {attack}: " + "; ".join(details))
        conn.close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"attack table: {time.perf_counter() - t0:.0f}s")


def _archive_path(conn: Any, row: dict[str, Any]) -> str:
    return conn.execute(
        "SELECT archive_path FROM originals WHERE sha256 = ?", (row["original_sha256"],)
    ).fetchone()[0]


def classify(res: trace_mod.Result, row: dict[str, Any], *, unposted: bool, rework: bool) -> str:
    if res.verdict == trace_mod.EXACT:
        if unposted:
            return "wrong"
        return (
            "exact"
            if res.matches[0].id == row["id"] and not rework
            else (
                "artwork"
                if rework and res.matches[0].row["original_sha256"] == row["original_sha256"]
                else "wrong"
            )
        )
    if res.artwork is not None:
        return "artwork" if res.artwork.key == row["original_sha256"] else "wrong"
    if res.matches:
        return "artwork" if res.matches[0].row["original_sha256"] == row["original_sha256"] else "wrong"
    return "nothing"


# -- calibration -------------------------------------------------------------------------------
AUGMENT: dict[str, Callable[[Image.Image, np.random.Generator], Image.Image]] = {
    "as is": lambda im, r: im,
    "crop 80 %": lambda im, r: crop_area(im, 0.8, r),
    "mirror + JPEG 70": lambda im, r: encode(ImageOps.mirror(im), "JPEG", 70),
    "hue 30° + blur": lambda im, r: ImageEnhance.Color(im).enhance(1.3).filter(ImageFilter.GaussianBlur(1.5)),
    "rework-like": lambda im, r: rework(im, r),
}


def _indexed(
    root: Path, n_procedural: int
) -> tuple[features.FeatureIndex, dict[str, str], fingerprint.Index]:
    """A feature index of the 16 corpus originals plus procedural art (real features)."""
    entries, names, prints = [], {}, []
    book = features.codebook()
    for i, p in enumerate(sorted(CORPUS.glob("*.*"))):
        im = images.load(p, 4096)
        if im is None:
            continue
        k = f"{i:064x}"
        names[k] = p.name
        entries.append(features.entry_of(k, im, book))
        prints.append(fingerprint.of_image(im))
    for j, (name, im) in enumerate(images.procedural(n_procedural, seed=4242)):
        k = f"{1000 + j:064x}"
        names[k] = name
        entries.append(features.entry_of(k, im, book))
        prints.append(fingerprint.of_image(im))
    features.Segment.write(root / "seg-000001", entries, composition.DIMS)
    features._write_manifest(root, {"codebook": book.version, "segments": ["seg-000001"], "covered": 0})
    n = len(prints)
    pdq = fingerprint.Index.from_rows(list(range(1, n + 1)), prints, prints)
    return features.FeatureIndex(root), names, pdq


def calibration(n_unrelated: int, n_feature: int, seed: int = 5) -> None:
    print(f"\n== calibration: >= {n_unrelated:,} unrelated images against the corpus + procedural art ==")
    t0 = time.perf_counter()
    tmp = Path(tempfile.mkdtemp(prefix="trace-cal-"))
    try:
        index, names, pdq = _indexed(tmp, 150)
        comp = index.composition_matrix().astype(np.float32)
        print(f"indexed {len(index)} artworks in {time.perf_counter() - t0:.0f}s")
        srcs = images.sources()
        files = [(g, p) for g, ps in srcs.items() for p in ps]
        print("sources: " + ", ".join(f"{g} {len(ps)}" for g, ps in srcs.items()) + ", procedural")
        rng = np.random.default_rng(seed)
        sims, pdq_d, groups = [], [], {}
        feat_hits, feat_n, _feat_max = 0, 0, 0
        done = 0
        base_iter = iter(files)
        proc_iter = images.procedural(10**6, seed=99)
        feature_every = max(1, n_unrelated // max(1, n_feature))
        while done < n_unrelated:
            try:
                group, path = next(base_iter)
                im = images.load(path, 1024)
            except StopIteration:
                group, (_, im) = "procedural", next(proc_iter)
            if im is None:
                continue
            for aug, fn in AUGMENT.items():
                if done >= n_unrelated:
                    break
                x = fn(im, rng)
                v = composition.describe(x)
                e = composition.energy(x)
                s = (
                    float(max((comp @ v).max(), (comp @ composition.mirror(v)).max()))
                    if e >= composition.MIN_ENERGY
                    else -1.0
                )
                sims.append(s)
                q = fingerprint.query(x)
                pdq_d.append(int(pdq.distances(q)[0].min()) if q.quality >= fingerprint.MIN_QUALITY else 256)
                groups[group] = groups.get(group, 0) + 1
                if done % feature_every == 0:
                    f = features.extract(x, keep=features.QUERY_KEEP)
                    hits = index.search(f)
                    feat_n += 1
                    if hits:
                        feat_hits += 1
                        print(
                            f"  FEATURE FALSE MATCH: {group} {aug} -> {names.get(hits[0].key)} ({hits[0].inliers} inliers)"
                        )
                done += 1
            if done % 1000 < len(AUGMENT):
                print(f"  … {done:,} images, {time.perf_counter() - t0:.0f}s", flush=True)
        sims_a = np.array(sims)
        print(
            f"unrelated images: {done:,} ({', '.join(f'{g} {n}' for g, n in groups.items())}; "
            f"each source image as is and {len(AUGMENT) - 1} augmentations)"
        )
        top = np.sort(sims_a)[::-1]
        print(
            f"composition similarity to the nearest indexed artwork: max {top[0]:.3f}, 2nd {top[1]:.3f}, "
            f"99.9th pct {np.percentile(sims_a, 99.9):.3f}, 99th {np.percentile(sims_a, 99):.3f}; "
            f"reporting threshold {composition.REWORK_SIMILARITY}: {int((sims_a >= composition.REWORK_SIMILARITY).sum())} false matches"
        )
        d = np.array(pdq_d)
        print(
            f"PDQ distance to the nearest indexed artwork: min {d.min()} bits, 0.1th pct {np.percentile(d, 0.1):.0f}; "
            f"match threshold {trace_mod.MATCH_DISTANCE}: {int((d <= trace_mod.MATCH_DISTANCE).sum())} within it"
        )
        print(
            f"local features: {feat_hits} false artwork matches in {feat_n:,} unrelated images (MIN_INLIERS {features.MIN_INLIERS})"
        )
        # recall on the rework set
        r2 = np.random.default_rng(11)
        ok = tot = 0
        rs = []
        keys = list(names)
        for i, p in enumerate(sorted(CORPUS.glob("*.*"))):
            im = images.load(p, 4096)
            if im is None:
                continue
            for _k in range(4):
                x = rework(im, r2)
                v = composition.describe(x)
                s_all = np.maximum(comp @ v, comp @ composition.mirror(v))
                best = int(np.argmax(s_all))
                tot += 1
                rs.append(float(s_all[best]))
                ok += keys[best] == f"{i:064x}" and s_all[best] >= composition.REWORK_SIMILARITY
        print(
            f"rework recall (composition stage alone, 16 corpus images x 4 reworks): {ok}/{tot} = {ok / tot:.0%}; "
            f"similarity median {statistics.median(rs):.3f}, min {min(rs):.3f}"
        )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"calibration: {time.perf_counter() - t0:.0f}s")


# -- scale ---------------------------------------------------------------------------------------
def _synthetic_segment(path: Path, n: int, word_p: np.ndarray, rng: np.random.Generator) -> None:
    """A segment of n generated entries with KEEP postings each: words drawn from the real
    word frequencies (so list lengths are as real), random images, places and bits. Written
    straight into the on-disk arrays (no per-image extraction: 10^6 SIFT runs would take days)."""
    tmp = path.with_name(path.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    total = n * features.KEEP
    counts = rng.multinomial(total, word_p)
    offsets = np.zeros(features.WORDS + 1, np.int64)
    offsets[1:] = np.cumsum(counts)
    post = np.lib.format.open_memmap(tmp / "postings.npy", mode="w+", dtype=features.POSTING, shape=(total,))
    step = 20_000_000
    for a in range(0, total, step):
        b = min(total, a + step)
        chunk = np.empty(b - a, features.POSTING)
        chunk["img"] = rng.integers(0, n, b - a, dtype=np.uint32)
        chunk["x"] = rng.integers(0, 1024 * 32, b - a, dtype=np.uint16)
        chunk["y"] = rng.integers(0, 1024 * 32, b - a, dtype=np.uint16)
        chunk["sig"] = rng.integers(0, 2**32, b - a, dtype=np.uint32)
        post[a:b] = chunk
    post.flush()
    del post
    np.save(tmp / "offsets.npy", offsets)
    np.save(tmp / "keys.npy", rng.integers(0, 256, (n, 32), dtype=np.uint8))
    np.save(tmp / "frames.npy", np.tile(np.array([[1024.0, 768.0, 0.5]]), (n, 1)))
    v = rng.normal(size=(n, composition.DIMS)).astype(np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    np.save(tmp / "composition.npy", v.astype(np.float16))
    os.replace(tmp, path)


def scale_table(sizes: list[int]) -> None:
    print("\n== scale: feature index of N generated entries + 2 real artworks ==")
    book = features.codebook()
    reals = {}
    for name in ("revoy_forest_painting.jpg", "kodim23.png"):
        im = images.load(CORPUS / name, 4096)
        reals[name] = (im, features.entry_of(f"{len(reals) + 1:064x}", im, book))
    # word frequencies of a collection: measured on unrelated package images and procedural
    # art (not the two query artworks), smoothed so every word has some postings
    sample = [im for _, im in images.procedural(10, seed=31)]
    for _group, files in images.sources().items():
        sample += [
            x
            for x in (images.load(p, 1024) for p in files[1 :: max(1, len(files) // 6)][:6])
            if x is not None
        ]
    words = np.concatenate([features.entry_of("0" * 64, im, book).words for im in sample]).astype(np.int64)
    freq = np.bincount(words, minlength=features.WORDS).astype(np.float64)
    word_p = (freq + 0.5) / (freq + 0.5).sum()
    print(f"word frequencies from {len(sample)} unrelated images ({len(words):,} keypoints)")
    rng = np.random.default_rng(3)
    suspects = {
        "X twice, crop 20 %": lambda im: encode(crop_area(x_twice(im, rng), 0.2, rng), "JPEG", 85),
        "rotate 8° + crop": lambda im: rotate_crop(im, rng),
        "unrelated": lambda im: encode(painting((800, 600), 77), "JPEG", 85),
    }
    print(
        f"{'entries':>10} {'on disk':>9} {'build':>7} {'open':>6} {'extract':>8} {'search':>7} {'rework':>7} {'total':>7} {'RSS':>8}  found"
    )
    for n in sizes:
        tmp = Path(tempfile.mkdtemp(prefix="trace-scale-"))
        try:
            t = time.perf_counter()
            _synthetic_segment(tmp / "seg-000001", n, word_p, rng)
            features.Segment.write(tmp / "seg-000002", [e for _, e in reals.values()], composition.DIMS)
            features._write_manifest(
                tmp, {"codebook": book.version, "segments": ["seg-000001", "seg-000002"], "covered": 0}
            )
            build = time.perf_counter() - t
            disk = sum(f.stat().st_size for f in tmp.rglob("*.npy"))
            t = time.perf_counter()
            index = features.FeatureIndex(tmp)
            _ = index.idf
            opened = time.perf_counter() - t
            results = []
            for label, make in suspects.items():
                for name, (im, e) in reals.items():
                    s = make(im)
                    t = time.perf_counter()
                    f = features.extract(s, keep=features.QUERY_KEEP)
                    te = time.perf_counter() - t
                    t = time.perf_counter()
                    hits = index.search(f)
                    ts = time.perf_counter() - t
                    t = time.perf_counter()
                    v = composition.describe(s)
                    index.composition_search(np.stack([v, composition.mirror(v)]), k=1)
                    tr = time.perf_counter() - t
                    ok = (hits[0].key == e.key) if hits else (label == "unrelated")
                    results.append((te, ts, tr, ok, label))
                    if label == "unrelated":
                        break
            te = statistics.median(r[0] for r in results)
            ts = statistics.median(r[1] for r in results)
            tr = statistics.median(r[2] for r in results)
            rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            found = sum(r[3] for r in results)
            print(
                f"{n:>10,} {disk / 1e9:>7.2f}GB {build:>6.0f}s {opened:>5.2f}s {te:>7.2f}s {ts:>6.2f}s {tr:>6.2f}s "
                f"{te + ts + tr:>6.2f}s {rss:>6.0f}MB  {found}/{len(results)}",
                flush=True,
            )
            del index
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    print(
        "(median over the suspects; total = feature extraction + inverted-file search and RANSAC + the "
        "rework search, the stages whose cost grows with the index; RSS = peak resident memory of this "
        "process so far (mmap pages included); generated entries: 600 postings each with the real "
        "words' frequencies, random places and bits; the rework vectors are random unit vectors)"
    )
