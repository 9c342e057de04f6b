"""Trace benchmark.

    .venv/bin/python benchmarks/trace.py [--only attacks|calibration|rework|scale|pdq ...]

attacks      corpus art posted through `poster run --once --now` (local adapter: x heavy,
             pixiv and xfolio light), the X copy attacked as a leaker would; per attack:
             exact post / artwork only / nothing / wrong and time, beside the perceptual
             stage alone and the blind read; plus the unposted original (benchmarks/
             trace_round2.py)
calibration  the rework threshold and the features' MIN_INLIERS against >= 10,000 unrelated
             images (procedural art, package image sets, augmentations)
rework       the rework verdict alone (composition and detail from 64 x 64 thumbnails, no SIFT):
             the rework set's recall and >= 10,000 unrelated queries and their pairs, one process
scale        search time and memory of the feature index at 10^3 ... 10^6 generated entries
pdq          the perceptual stage's own calibration and speed (below, as measured before)

Part 1 — calibration (real code path: ledger rows in SQLite, `Tracer.perceptual`):
  * "posted" images: the 16 corpus images, each as a simulated posted variant (long edge ≤ 2048,
    JPEG q90), plus synthetic painting-like distractors, all fingerprinted into one ledger;
  * reworks: each posted variant attacked (img2img-like strong blur / noise / colour shift /
    downscale / recompression and combinations, crops, mirroring) → rank-1 rate;
  * unrelated art: leave-one-out — each corpus image (plain and attacked) traced against a
    ledger that does not contain it, plus fresh synthetic images → false-match rate, and the
    smallest distance between unrelated images (UNRELATED_DISTANCE in poster/trace.py).
Part 2 — speed: a synthetic ledger of N rows (real hash chain, random prints) in a temp
SQLite file; times the index load, the stage-one search, the crop search and a whole
perceptual trace, excluding image decoding, and the hidden-ID row lookup.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image, ImageEnhance, ImageFilter, ImageOps

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # the shared synthetic images live in tests/
    sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from poster import fingerprint, ledger, store  # noqa: E402
from poster.trace import MATCH_SCORE, Tracer  # noqa: E402
from tests.synthetic import painting  # noqa: E402

CORPUS = REPO.parent / "shared" / "corpus"


def jpeg(im: Image.Image, q: int) -> Image.Image:
    buf = io.BytesIO()
    im.convert("RGB").save(buf, "JPEG", quality=q)
    return Image.open(io.BytesIO(buf.getvalue())).convert("RGB")


def noise(im: Image.Image, sigma: float, seed: int = 0) -> Image.Image:
    a = np.asarray(im, dtype=np.float32)
    a = a + np.random.default_rng(seed).normal(0, sigma, a.shape)
    return Image.fromarray(np.clip(a, 0, 255).astype(np.uint8))


def hue_shift(im: Image.Image, degrees: float) -> Image.Image:
    hsv = np.asarray(im.convert("HSV")).copy()
    hsv[..., 0] = (hsv[..., 0].astype(int) + int(degrees / 360 * 255)) % 256
    return Image.fromarray(hsv, "HSV").convert("RGB")


def crop(im: Image.Image, left: float, top: float, right: float, bottom: float) -> Image.Image:
    w, h = im.size
    return im.crop((int(left * w), int(top * h), int(w - right * w), int(h - bottom * h)))


def rework(im: Image.Image, seed: int = 0) -> Image.Image:
    """img2img-like: composition and colours kept, all detail regenerated."""
    w, h = im.size
    small = im.resize((max(8, w // 8), max(8, h // 8)), Image.Resampling.BILINEAR).filter(
        ImageFilter.GaussianBlur(1.2)
    )
    small = ImageEnhance.Color(hue_shift(small, 12)).enhance(1.4)
    out = ImageEnhance.Contrast(small.resize((w // 2, h // 2), Image.Resampling.BICUBIC)).enhance(1.15)
    return jpeg(noise(out, 14, seed), 50)


ATTACKS: dict[str, Callable[[Image.Image, np.random.Generator], Image.Image]] = {
    "jpeg q30": lambda im, r: jpeg(im, 30),
    "downscale 1/4": lambda im, r: im.resize((max(8, im.width // 4), max(8, im.height // 4))),
    "blur r=1% of width": lambda im, r: im.filter(ImageFilter.GaussianBlur(im.width / 100)),
    "noise σ25": lambda im, r: noise(im, 25),
    "colour: hue 25°, sat ×1.6": lambda im, r: ImageEnhance.Color(hue_shift(im, 25)).enhance(1.6),
    "brightness ×1.25, contrast ×0.8": lambda im, r: ImageEnhance.Contrast(
        ImageEnhance.Brightness(im).enhance(1.25)
    ).enhance(0.8),
    "mirror": lambda im, r: ImageOps.mirror(im),
    "img2img-like rework": lambda im, r: rework(im),
    "rework + mirror": lambda im, r: ImageOps.mirror(rework(im, 1)),
    "crop ≤10%/side": lambda im, r: crop(im, *r.uniform(0.0, 0.1, 4)),
    "crop ≤20%/side": lambda im, r: crop(im, *r.uniform(0.05, 0.2, 4)),
    "crop 25% one side": lambda im, r: crop(im, 0.25, 0, 0, 0),
    "mirror + crop + blur + jpeg": lambda im, r: jpeg(
        ImageOps.mirror(crop(im, *r.uniform(0.02, 0.15, 4))).filter(ImageFilter.GaussianBlur(2)), 60
    ),
}


def load_corpus() -> dict[str, Image.Image]:
    out = {}
    for p in sorted(CORPUS.iterdir()):
        if p.suffix.lower() not in (".png", ".jpg", ".jpeg"):
            continue
        with Image.open(p) as im:
            im.load()
            out[p.name] = fingerprint_input(im)
    return out


def fingerprint_input(im: Image.Image) -> Image.Image:
    """Flatten like render does (alpha over white), as a posted variant would be."""
    if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
        rgba = im.convert("RGBA")
        bg = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(bg, rgba).convert("RGB")
    return im.convert("RGB")


def posted_variant(im: Image.Image) -> Image.Image:
    scale = min(1.0, 2048 / max(im.size))
    if scale < 1:
        im = im.resize((round(im.width * scale), round(im.height * scale)), Image.Resampling.LANCZOS)
    return jpeg(im, 90)


def entry(n: int, prints: dict[str, bytes], name: str) -> ledger.Entry:
    return ledger.Entry(
        mark_id=n,
        job_id=n,
        idx=0,
        target=name,
        adapter="local",
        url=f"https://example.org/{n}",
        media_url=None,
        remote_id=str(n),
        posted_at="2026-11-22T00:00:00+00:00",
        original_sha256=hashlib.sha256(name.encode()).hexdigest(),
        variant_sha256=hashlib.sha256(f"v{n}".encode()).hexdigest(),
        render="{}",
        **prints,  # type: ignore[arg-type]
    )


def build_ledger(items: list[tuple[str, dict[str, bytes]]]) -> sqlite3.Connection:
    conn = sqlite3.connect(":memory:", isolation_level=None)
    conn.row_factory = sqlite3.Row
    conn.executescript(store.SCHEMA)
    conn.execute("BEGIN")
    for n, (name, prints) in enumerate(items, 1):
        ledger.append(conn, entry(n, prints, name))
    conn.execute("COMMIT")
    return conn


def prints_of(variant: Image.Image, original: Image.Image) -> dict[str, bytes]:
    return {
        "variant_fp": fingerprint.of_image(variant),
        "original_fp": fingerprint.of_image(original),
        "variant_thumb": fingerprint.thumbnail(variant),
    }


def calibrate(distractors: int) -> None:
    print("== calibration: corpus + synthetic attacks ==")
    corpus = load_corpus()
    names = list(corpus)
    variants = {n: posted_variant(im) for n, im in corpus.items()}
    prints = {n: prints_of(variants[n], corpus[n]) for n in names}
    fillers = []
    for s in range(distractors):
        rng = np.random.default_rng(1000 + s)
        im = painting((int(rng.integers(400, 900)), int(rng.integers(400, 900))), 1000 + s)
        fillers.append((f"synthetic-{s}", prints_of(im, im)))
    print(f"ledger: {len(names)} corpus images + {distractors} synthetic distractors")

    conn = build_ledger([(n, prints[n]) for n in names] + fillers)
    tracer = Tracer(conn, b"", None)
    rng = np.random.default_rng(7)
    related: list[int] = []
    print(f"\n{'attack':34} {'rank-1':>7} {'found':>6} {'max dist':>9} {'mean score':>11}")
    total_ok = total = 0
    misses: list[str] = []
    for attack, fn in ATTACKS.items():
        ok = found = 0
        dists, scores = [], []
        for k, n in enumerate(names):
            res = tracer.perceptual(fn(variants[n], rng))
            top = res.matches[0] if res.matches else None
            total += 1
            if top is not None:
                found += 1
                scores.append(top.score)
            if top is not None and top.row["seq"] == k + 1:
                ok += 1
                dists.append(top.distance or 0)
            else:
                misses.append(f"{attack}: {n} → {top.target if top else 'no match'}")
        total_ok += ok
        related += dists
        print(
            f"{attack:34} {ok:>3}/{len(names):<3} {found:>6} {max(dists) if dists else '-':>9} "
            f"{statistics.mean(scores) if scores else 0:>11.3f}"
        )
    print(f"rank-1 overall: {total_ok}/{total} = {total_ok / total:.1%}")
    for miss in misses:
        print(f"  missed: {miss}")

    # unrelated: leave-one-out
    false = queries = 0
    nearest: list[int] = []
    t_unrelated = time.perf_counter()
    for n in names:
        others = [(m, prints[m]) for m in names if m != n] + fillers
        loo = Tracer(build_ledger(others), b"", None)
        suspects = [variants[n]] + [fn(variants[n], rng) for fn in ATTACKS.values()]
        for s in suspects:
            queries += 1
            q = fingerprint.query(s)
            d, _, _ = loo.index.distances(q)
            res = loo.perceptual(s)
            if res.matches:
                false += 1
                print(f"  FALSE MATCH: {n} → {res.matches[0].target} (distance {res.matches[0].distance})")
            nearest.append(int(d.min()))
    for s in range(50):
        queries += 1
        im = painting((640, 480), 50_000 + s)
        res = tracer.perceptual(im)
        d, _, _ = tracer.index.distances(fingerprint.query(im))
        nearest.append(int(d.min()))
        if res.matches:
            false += 1
            print(f"  FALSE MATCH: synthetic {s} → {res.matches[0].target}")
    print(
        f"\nunrelated queries: {queries} (leave-one-out corpus, plain and attacked, + 50 fresh synthetic); "
        f"false matches: {false} ({false / queries:.2%}); {time.perf_counter() - t_unrelated:.1f}s"
    )
    print(
        f"closest unrelated stage-one distance: {min(nearest)} bits; "
        f"5th percentile {np.percentile(nearest, 5):.0f}; match threshold score {MATCH_SCORE}"
    )
    if related:
        print(f"related (rank-1) distances: median {statistics.median(related)}, max {max(related)}")


def speed(rows: int) -> None:
    print(f"\n== speed: {rows:,} ledger rows ==")
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "poster.db"
        conn = store.connect(db)
        t0 = time.perf_counter()
        prev = ledger.GENESIS
        conn.execute("BEGIN")
        batch = []
        cols = ledger.HASHED_FIELDS
        real = prints_of(painting((640, 480), 1), painting((640, 480), 1))
        # thumbnails of other (synthetic) art, so the crop search has real work to do
        pool = [fingerprint.thumbnail(painting((640, 480), 2000 + i)) for i in range(32)]
        for seq in range(1, rows + 1):
            hashes = rng.integers(
                0, 256, fingerprint.REGIONS * fingerprint.HASH_BYTES, dtype=np.uint8
            ).tobytes()
            hist = np.sort(rng.integers(0, 256, (2, fingerprint.HIST_BINS), dtype=np.uint8), axis=1).tobytes()
            fields = {
                "seq": seq,
                "mark_id": seq,
                "job_id": seq,
                "idx": 0,
                "target": "x",
                "adapter": "local",
                "url": f"https://example.org/{seq}",
                "media_url": None,
                "remote_id": str(seq),
                "posted_at": "2026-11-22T00:00:00+00:00",
                "original_sha256": "0" * 64,
                "variant_sha256": "1" * 64,
                "render": "{}",
                "variant_fp": hashes + hist,
                "original_fp": hashes + hist,
                "variant_thumb": pool[seq % len(pool)],
            }
            if seq == rows // 2:  # one real artwork somewhere in the middle
                fields.update(real)
            row_hash = ledger._row_hash(prev, fields)
            batch.append([fields[c] for c in cols] + [prev, row_hash])
            prev = row_hash
            if len(batch) == 5000:
                conn.executemany(
                    f"INSERT INTO ledger ({', '.join(cols)}, prev_hash, row_hash) "
                    f"VALUES ({', '.join('?' * (len(cols) + 2))})",
                    batch,
                )
                batch = []
        if batch:
            conn.executemany(
                f"INSERT INTO ledger ({', '.join(cols)}, prev_hash, row_hash) "
                f"VALUES ({', '.join('?' * (len(cols) + 2))})",
                batch,
            )
        conn.execute("COMMIT")
        conn.close()
        print(f"built in {time.perf_counter() - t0:.1f}s, {db.stat().st_size / 1e6:.0f} MB")

        suspect = rework(painting((640, 480), 1))
        crop_suspect = crop(painting((640, 480), 1), 0.07, 0.12, 0.05, 0.1)
        unrelated = painting((640, 480), 999)
        cache = Path(tmp) / "trace-index.npz"
        print(f"{'suspect':24} {'index':>6} {'load':>7} {'stage one':>10} {'trace*':>8} {'total':>8}  result")
        for label, im in (
            ("rework (stage one hit)", suspect),
            ("crop", crop_suspect),
            ("no match", unrelated),
        ):
            for mode in ("cold", "cached"):
                runs = []
                for _ in range(3):
                    if mode == "cold":
                        cache.unlink(missing_ok=True)
                    conn = store.connect(db)  # a fresh CLI run: nothing in memory
                    t = time.perf_counter()
                    tracer = Tracer(conn, b"", None, cache=cache if mode == "cached" else None)
                    idx = tracer.index
                    t_load = time.perf_counter() - t
                    t = time.perf_counter()
                    idx.distances(fingerprint.query(im))
                    t_stage1 = time.perf_counter() - t
                    t = time.perf_counter()
                    res = tracer.perceptual(im)
                    t_trace = time.perf_counter() - t
                    conn.close()
                    runs.append((t_load + t_trace, t_load, t_stage1, t_trace, res))
                _, load, s1, tr, res = min(runs, key=lambda r: r[0])
                hit = f"seq {res.matches[0].row['seq']} ({res.matches[0].via})" if res.matches else "none"
                print(f"{label:24} {mode:>6} {load:>6.3f}s {s1:>9.3f}s {tr:>7.3f}s {load + tr:>7.3f}s  {hit}")
        print("* trace = Tracer.perceptual on the decoded image: hashing, stage one, crop search, rows")
        print(
            f"  (the real artwork is seq {rows // 2}; "
            "cached = trace-index.npz already written by a previous trace)"
        )
        conn = store.connect(db)
        t = time.perf_counter()
        for mid in rng.integers(1, rows, 100):
            ledger.find(conn, int(mid))
        print(f"hidden-ID row lookup (indexed mark_id): {(time.perf_counter() - t) / 100 * 1000:.2f} ms")
        conn.close()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--distractors", type=int, default=150)
    ap.add_argument("--only", choices=("attacks", "scale", "calibration", "rework", "pdq"), action="append")
    ap.add_argument("--images", type=int, default=16, help="corpus artworks posted for the attack table")
    ap.add_argument("--synthetic", type=int, default=4, help="synthetic artworks posted beside them")
    ap.add_argument("--targets", default="x,pixiv", help="whose posted copies are attacked")
    ap.add_argument("--before", type=Path, help="a checkout of main: its engine traces the same copies")
    ap.add_argument("--after", type=Path, help="the checkout whose engine is measured (default: this one)")
    ap.add_argument("--resume", action="store_true", help="keep the answers of an interrupted run")
    ap.add_argument(
        "--no-extras", action="store_true", help="attack table without the perceptual and blind-read columns"
    )
    ap.add_argument("--scale", type=int, nargs="*", default=[1_000, 10_000, 100_000, 1_000_000])
    ap.add_argument("--per-image", action="store_true", help="scale: each traced image's time and verdict")
    ap.add_argument("--unrelated", type=int, default=12_000)
    ap.add_argument("--sift", type=int, help="unrelated queries through the SIFT pass (default: all)")
    ap.add_argument("--workers", type=int, default=2, help="worker processes (calibration, attack table)")
    args = ap.parse_args()
    only = set(args.only or ("attacks", "scale", "calibration"))
    if not CORPUS.is_dir():  # every table posts or indexes the corpus's art
        ap.error(f"{CORPUS}: the test-art corpus is not beside this repository")
    import trace_round2 as r2

    if "attacks" in only:
        r2.attack_table(
            args.images, targets=tuple(args.targets.split(",")), before=args.before, after=args.after,
            fresh=not args.resume, n_synthetic=args.synthetic, workers=args.workers,
            extras=not args.no_extras,
        )  # fmt: skip
    if "calibration" in only:
        import trace_calibration

        trace_calibration.calibration(args.unrelated, args.workers, args.sift)
    if "rework" in only:  # not in the default set: "calibration" computes far more
        import trace_calibration

        trace_calibration.rework_pass(args.unrelated)
    if "scale" in only:
        import trace_scale

        trace_scale.scale_table(args.scale, per_image=args.per_image)
    if "pdq" in only:  # the perceptual stage's own calibration and speed (PDQ, as before)
        if not CORPUS.is_dir():
            ap.error(f"{CORPUS}: the test-art corpus is not beside this repository")
        calibrate(args.distractors)
        speed(args.rows)
    sys.stdout.flush()


if __name__ == "__main__":
    main()
