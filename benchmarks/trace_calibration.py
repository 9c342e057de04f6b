# ruff: noqa: E501
"""Calibration of the thresholds trace's verdicts depend on, on ≥ 10,000 unrelated images.

    .venv/bin/python benchmarks/trace.py --only calibration [--unrelated 10000] [--workers 2]

Indexed ("the artist's archive"): the 16 corpus originals, the 4 synthetic artworks of the
attack table and 300 procedural artworks (six generators: paintings, photo-like scenes, flat
vector shapes, line art, pixel art, fractal landscapes) — their local features, composition
descriptors and perceptual prints, exactly as poster stores them.

Unrelated queries: every image that the installed packages ship (benchmarks/images.py: game
art, clip art, wallpapers and photos, scikit-image and matplotlib samples), each as is and
with two augmentations drawn from AUGMENT (crops of 80 % and 30 %, turn + crop, mirror +
JPEG, hue/saturation + blur, posterise + lossy, an img2img-like rework), plus procedural art
from the same six generators with other seeds. For each query the three scores a false
answer would need are recorded: the local-feature inliers of the best geometrically
verified candidate (searched with MIN_INLIERS lowered to 6, so that near misses show), the
smallest perceptual (PDQ) distance to any indexed print, and the highest composition
similarity (with its mirror). Results are cached per query in
benchmarks/out/calibration/results.jsonl (results-fN.jsonl for features.FORMAT N > 1): a rerun
only computes what is missing.

The direct-match pass (`trace_calibration.py pair [N] [WORKERS]`, cached in
benchmarks/out/calibration/pair.jsonl, pair-fN.jsonl): N unrelated queries sampled evenly over every package
group plus 10 % procedural art; each query's short list (FeatureIndex.search) matched directly
against those originals (features.match_features, as Tracer._direct does, but over the whole
list of both orientations and with the floor lowered to FEATURE_FLOOR): the most inliers must
stay below MIN_INLIERS.

The panel pass (`trace_calibration.py panels [N] [WORKERS]`, cached in panel-fN.jsonl): the same
N queries; each one that splits along uniform gutters (features.panels: sprite sheets, icon
sets, comic-like pictures) is searched part by part as Tracer._by_panels does, every part's
index verification and short-list direct matches counted: they must stay below MIN_INLIERS.

The registration pass (`trace_calibration.py registration [N] [WORKERS]`, cached in
registration.jsonl): the same N queries and their parts, each registered densely
(poster.dense) against every posted original of the attack table's home that is weak in
keypoints (features.few_strong: trace registers only the short list's), and the hidden ID
read through every map that reaches dense.MIN_CORRELATION: no post may be named.

The rework pass (`trace_calibration.py rework [N]`, or `benchmarks/trace.py --only rework
--unrelated N`; cached in benchmarks/out/calibration/rework/): only what the rework verdict
needs, in one process — the 64 x 64 thumbnail (composition.thumbnail) of every indexed
artwork, of the rework set and of the first N unrelated queries (made exactly as above, no
SIFT, no PDQ), then the three rework checks (composition, regions, colour) from the
thumbnails: the rework set's recall over a grid of thresholds; every unrelated query (against
the indexed artworks) and every pair of unrelated queries from different sources that reaches
composition 0.7, with its regions and colour similarity; the margin (how far the closest
unrelated comparison is from the verdict: its largest shortfall over the checks); and a
held-out count (thresholds chosen on one half of the artworks and of the unrelated sources,
counted on the other half).

The rework set: each of the 20 indexed artworks (corpus + synthetic) through six rework
transforms built from the issue and seed 004 (smoothing, posterise, re-drawn lines over
flat colour, hue shift, img2img-like regeneration, all of them combined), traced against
the same index: named (the right artwork reaches the threshold and ranks first) / missed /
wrong.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import multiprocessing
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageEnhance, ImageFilter, ImageOps

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

import images  # noqa: E402
import trace_round2 as r2  # noqa: E402

from poster import composition, features, fingerprint  # noqa: E402
from poster import trace as trace_mod  # noqa: E402

OUT = REPO / "benchmarks" / "out" / "calibration"
N_PROCEDURAL_INDEXED = 300
FEATURE_FLOOR = 6  # MIN_INLIERS while calibrating: candidates this close are recorded
# what depends on the local features is cached per features.FORMAT: a change of extraction
# is calibrated afresh, not mixed with answers of the old one
INDEX_DIR = OUT / ("index" if features.FORMAT == 1 else f"index-f{features.FORMAT}")
LOCAL_FILE = OUT / ("results.jsonl" if features.FORMAT == 1 else f"results-f{features.FORMAT}.jsonl")


def posterise(im: Image.Image, r: np.random.Generator) -> Image.Image:
    return ImageOps.posterize(im.convert("RGB"), int(r.integers(2, 4)))


AUGMENT: dict[str, Callable[[Image.Image, np.random.Generator], Image.Image]] = {
    "crop 80 %": lambda im, r: r2.crop_area(im, 0.8, r),
    "crop 30 % + lossy": lambda im, r: r2.lossy(r2.crop_area(im, 0.3, r), r),
    "turn + crop + lossy": r2.rotate_crop,
    "mirror + JPEG 70": lambda im, r: r2.encode(ImageOps.mirror(im), "JPEG", 70),
    "hue/saturation + blur": lambda im, r: (
        ImageEnhance.Color(im).enhance(1.4).filter(ImageFilter.GaussianBlur(1.5))
    ),
    "posterise + lossy": lambda im, r: r2.lossy(posterise(im, r), r),
    "rework-like": r2.rework,
}


# -- reworks ------------------------------------------------------------------------------------
def _cv2() -> Any:
    import cv2

    return cv2


def smooth(im: Image.Image, r: np.random.Generator) -> Image.Image:
    cv2 = _cv2()
    a = np.asarray(r2.fit(im.convert("RGB"), 768))
    for _ in range(3):
        a = cv2.bilateralFilter(a, 9, 75, 9)
    return r2.lossy(Image.fromarray(a).filter(ImageFilter.GaussianBlur(1.2)), r)


def redrawn_lines(im: Image.Image, r: np.random.Generator) -> Image.Image:
    """Flat colour regions (mean shift) with new ink lines from their edges: a re-drawing."""
    cv2 = _cv2()
    a = np.asarray(r2.fit(im.convert("RGB"), 640))
    flat = cv2.pyrMeanShiftFiltering(a, 12, 30)
    edges = cv2.Canny(cv2.cvtColor(flat, cv2.COLOR_RGB2GRAY), 40, 110)
    edges = cv2.dilate(edges, np.ones((3, 3), np.uint8))
    out = flat.copy()
    out[edges > 0] = (25, 20, 20)
    return r2.lossy(Image.fromarray(out), r)


def hue_shift(im: Image.Image, r: np.random.Generator) -> Image.Image:
    hsv = np.asarray(r2.fit(im.convert("RGB"), 900).convert("HSV")).copy()
    hsv[..., 0] = (hsv[..., 0].astype(int) + int(r.uniform(40, 200) / 360 * 255)) % 256
    return r2.lossy(Image.fromarray(hsv, "HSV").convert("RGB"), r)


def img2img(im: Image.Image, r: np.random.Generator) -> Image.Image:
    """Detail regenerated: the layout at 1/8 scale, upscaled, new texture (noise through an
    unsharp mask), colours jittered, a slight warp of the whole picture."""
    cv2 = _cv2()
    base = r2.fit(im.convert("RGB"), 768)
    w, h = base.size
    small = base.resize((max(8, w // 8), max(8, h // 8)), Image.Resampling.BOX)
    a = np.asarray(small.resize((w, h), Image.Resampling.BICUBIC), np.float32)
    a += cv2.GaussianBlur(r.normal(0, 18, a.shape).astype(np.float32), (0, 0), 1.5)
    up = Image.fromarray(np.clip(a, 0, 255).astype(np.uint8)).filter(ImageFilter.UnsharpMask(3, 160, 2))
    up = ImageEnhance.Color(up).enhance(float(r.uniform(0.8, 1.4)))
    up = ImageEnhance.Contrast(up).enhance(float(r.uniform(0.85, 1.2)))
    src = np.float32([[0, 0], [w, 0], [0, h]])
    j = r.uniform(-0.02, 0.02, (3, 2)) * [w, h]
    m = cv2.getAffineTransform(src, (src + j).astype(np.float32))
    out = cv2.warpAffine(np.asarray(up), m, (w, h), borderMode=cv2.BORDER_REFLECT)
    return r2.lossy(Image.fromarray(out), r)


REWORKS: dict[str, Callable[[Image.Image, np.random.Generator], Image.Image]] = {
    "smoothing": smooth,
    "posterise": lambda im, r: r2.lossy(posterise(r2.fit(im, 900), r), r),
    "re-drawn lines": redrawn_lines,
    "hue shift": hue_shift,
    "img2img-like (detail regenerated)": img2img,
    "all combined (smooth, posterise, lines, hue)": r2.rework,
}


# -- the index ----------------------------------------------------------------------------------
def indexed() -> list[tuple[str, Image.Image]]:
    out = []
    for p in sorted(r2.CORPUS.iterdir()):
        if p.suffix.lower() in (".png", ".jpg", ".jpeg"):
            im = images.load(p, 4096)
            if im is not None:
                out.append((p.name, im))
    out += [(f"synthetic-{i}", r2._synthetic_art(i)) for i in range(r2.SYNTHETIC)]
    out += list(images.procedural(N_PROCEDURAL_INDEXED, seed=4242))
    return out


def build_index() -> tuple[features.FeatureIndex, list[str], np.ndarray, fingerprint.Index]:
    root = INDEX_DIR
    names_file = root / "names.json"
    if not names_file.is_file():
        t = time.perf_counter()
        book = features.codebook()
        entries, names, prints = [], [], []
        for i, (name, im) in enumerate(indexed()):
            entries.append(features.entry_of(f"{i:064x}", im, book))
            names.append(name)
            prints.append(fingerprint.of_image(im))
        (root / "features").mkdir(parents=True, exist_ok=True)
        features.Segment.write(root / "features" / "seg-000001", entries, composition.DIMS)
        features._write_manifest(
            root / "features", {"codebook": book.version, "segments": ["seg-000001"], "covered": 0}
        )
        np.save(root / "prints.npy", np.frombuffer(b"".join(prints), np.uint8).reshape(len(prints), -1))
        names_file.write_text(json.dumps(names))
        print(f"indexed {len(names)} artworks in {time.perf_counter() - t:.0f}s", flush=True)
    names = json.loads(names_file.read_text())
    index = features.FeatureIndex(root / "features")
    prints = np.load(root / "prints.npy")
    raw = [bytes(p) for p in prints]
    pdq = fingerprint.Index.from_rows(list(range(1, len(raw) + 1)), raw, raw)
    return index, names, index.composition_matrix().astype(np.float32), pdq


# -- the queries --------------------------------------------------------------------------------
def queries(target: int) -> list[tuple[str, str, str]]:
    """(id, source, augmentation): every package image as is and with two augmentations, then
    procedural art until `target` queries."""
    out = []
    rng = np.random.default_rng(5)
    augs = list(AUGMENT)
    for group, files in images.sources().items():
        for p in files:
            for aug in ["as is", *rng.choice(augs, 2, replace=False)]:
                out.append((f"{group}|{p}|{aug}", str(p), aug))
    i = 0
    while len(out) < target:
        for aug in ["as is", *rng.choice(augs, 2, replace=False)]:
            out.append((f"procedural|procedural-99-{i}|{aug}", f"procedural-99-{i}", aug))
        i += 1
    return out


_STATE: dict[str, Any] = {}


def _init() -> None:
    features.MIN_INLIERS = FEATURE_FLOOR  # the module constant the search reads: near misses show
    index, names, comp, pdq = build_index()
    _STATE.update(index=index, names=names, comp=comp, pdq=pdq)


def _procedural(name: str) -> Image.Image:
    i = int(name.rsplit("-", 1)[1])
    rng = np.random.default_rng([99, i])
    w, h = int(rng.integers(320, 1100)), int(rng.integers(320, 1100))
    return images.GENERATORS[i % len(images.GENERATORS)](w, h, int(rng.integers(0, 2**31)))


@functools.lru_cache(maxsize=4)
def _source(source: str) -> Image.Image | None:
    """A query's source image: decoded once for its three queries (they come in one chunk)."""
    return _procedural(source) if source.startswith("procedural-") else images.load(Path(source), 1024)


def scores(im: Image.Image, *, local: bool = True) -> dict[str, Any]:
    """The three scores a false answer would need, against the indexed artworks."""
    index, names, comp, pdq = _STATE["index"], _STATE["names"], _STATE["comp"], _STATE["pdq"]
    rec: dict[str, Any] = {}
    grid = composition.luma_grid(im)
    rec["energy"] = round(composition.energy(grid), 3)
    v = composition.from_grid(grid)
    sims = np.maximum(comp @ v, comp @ composition.mirror(v))
    k = int(np.argmax(sims))
    rec["comp"], rec["comp_to"] = round(float(sims[k]), 4), names[k]
    # the descriptor itself (float16, base64): unrelated images are also compared with each
    # other (pairs), the stand-in for an archive far larger than the indexed artworks
    rec["vec"] = base64.b64encode(v.astype(np.float16).tobytes()).decode()
    q = fingerprint.query(im)
    rec["quality"] = q.quality
    d = pdq.distances(q)[0]
    k = int(np.argmin(d))
    rec["pdq"], rec["pdq_to"] = int(d[k]), names[k]
    if not local:
        return rec
    hits = index.search(features.extract_query(im))
    rec["inliers"] = max((h.inliers for h in hits), default=0)
    rec["inliers_to"] = names[int(hits[0].key, 16)] if hits else None
    return rec


def _work_light(item: tuple[str, str, str]) -> dict[str, Any]:
    return _work(item, local=False)


def _query_image(source: str, qid: str, aug: str) -> Image.Image | None:
    """The query of a calibration item: the source image, augmented as the item says (seeded
    by its id, so a resumed run makes the same query); None if unreadable or tiny."""
    im = _source(source)
    if im is None:
        return None
    rng = np.random.default_rng(int(hashlib.sha256(qid.encode()).hexdigest()[:8], 16))
    return im if aug == "as is" else AUGMENT[aug](im, rng)


def _work(item: tuple[str, str, str], local: bool = True) -> dict[str, Any]:
    qid, source, aug = item
    t = time.process_time()
    x = _query_image(source, qid, aug)
    if x is None:
        return {"id": qid, "skip": "unreadable or tiny"}
    rec = {
        "id": qid,
        **scores(x, local=local),
        "size": list(x.size),
        "cpu": round(time.process_time() - t, 3),
    }
    rec["v"] = 2 if local else "global"
    return rec


def run(target: int, workers: int, local: bool = True) -> list[dict[str, Any]]:
    """Scores of `target` queries (cached). local=False: the global scores only (composition
    and perceptual prints, ~0.1 s a query), kept apart in results-global.jsonl, so that the
    ≥ 10,000 count is reached for them even when the SIFT pass (~0.3 s) is still going."""
    OUT.mkdir(parents=True, exist_ok=True)
    build_index()
    results_file = LOCAL_FILE if local else OUT / "results-global.jsonl"
    have: dict[str, dict[str, Any]] = {}
    if results_file.is_file():
        for line in results_file.read_text().splitlines():
            if line.strip():
                rec = json.loads(line)
                # before v2 small queries were not enlarged (features.extract_query): redo them
                if rec.get("v") in (2, "global") or "skip" in rec or max(rec["size"]) >= 640:
                    have[rec["id"]] = rec
    todo = [q for q in queries(target) if q[0] not in have]
    # procedural art first: a run cut short still has both kinds of unrelated image
    todo.sort(key=lambda q: not q[0].startswith("procedural|"))
    print(f"{len(have):,} queries cached, {len(todo):,} to compute with {workers} workers", flush=True)
    t0 = time.perf_counter()
    with results_file.open("a") as out, multiprocessing.get_context("fork").Pool(workers, _init) as pool:
        for n, rec in enumerate(pool.imap_unordered(_work if local else _work_light, todo, chunksize=6), 1):
            out.write(json.dumps(rec) + "\n")
            out.flush()
            have[rec["id"]] = rec
            if n % 250 == 0:
                rate = n / (time.perf_counter() - t0)
                print(f"  … {n:,}/{len(todo):,} ({rate:.1f}/s)", flush=True)
    wanted = {q[0] for q in queries(target)}
    return [r for k, r in have.items() if k in wanted and "skip" not in r]


def rework_set() -> list[dict[str, Any]]:
    cache = OUT / "reworks.jsonl"
    if cache.is_file():
        return [json.loads(line) for line in cache.read_text().splitlines() if line.strip()]
    _init()
    out = []
    arts = indexed()[: 16 + r2.SYNTHETIC]
    for name, im in arts:
        for kind, fn in REWORKS.items():
            rng = np.random.default_rng(int(hashlib.sha256(f"{name}{kind}".encode()).hexdigest()[:8], 16))
            x = fn(im, rng)
            names, comp = _STATE["names"], _STATE["comp"]
            v = composition.describe(x)
            sims = np.maximum(comp @ v, comp @ composition.mirror(v))
            order = np.argsort(-sims)
            own = names.index(name)
            rec = {
                "art": name,
                "kind": kind,
                "own": round(float(sims[own]), 4),
                "best": names[int(order[0])],
                "best_sim": round(float(sims[order[0]]), 4),
                "other_best": round(float(max(sims[i] for i in order[:2] if i != own)), 4),
                "energy": round(composition.energy(x), 3),
                **{f"s_{k}": v for k, v in scores(x).items()},
            }
            out.append(rec)
    cache.write_text("".join(json.dumps(r) + "\n" for r in out))
    return out


def calibration(target: int, workers: int = 2, sift: int | None = None) -> None:
    """The global scores (composition, PDQ) of `target` unrelated queries, the SIFT pass on
    the first `sift` of them (default: all; cached, so a bounded run can be resumed), then
    the tables."""
    t0 = time.perf_counter()
    print(
        f"\n== calibration: {target:,} unrelated images against the indexed artworks (load {os.getloadavg()[0]:.1f}) ==",
        flush=True,
    )
    glob = run(target, workers, local=False)
    local = run(target if sift is None else sift, workers) if sift != 0 else []
    report(glob, local, rework_set())
    print(f"calibration: {time.perf_counter() - t0:.0f}s")


def cached(local: bool) -> list[dict[str, Any]]:
    """Every query scored so far (no computing): for the tables of a bounded run."""
    f = LOCAL_FILE if local else OUT / "results-global.jsonl"
    have: dict[str, dict[str, Any]] = {}
    for line in f.read_text().splitlines() if f.is_file() else []:
        if line.strip():
            rec = json.loads(line)
            if "skip" not in rec and (rec.get("v") in (2, "global") or max(rec["size"]) >= 640):
                have[rec["id"]] = rec
    return list(have.values())


def _groups(recs: list[dict[str, Any]]) -> str:
    groups: dict[str, int] = {}
    for r in recs:
        g = r["id"].split("|")[0]
        groups[g] = groups.get(g, 0) + 1
    return ", ".join(f"{g} {c:,}" for g, c in groups.items())


def pairs(recs: list[dict[str, Any]], floor: float = 0.6) -> tuple[int, list[tuple[float, str, str]]]:
    """Unrelated images compared with each other: every pair from two different sources
    (packages, or procedural art vs a package) — a stand-in for an archive as large as the
    query set. Pairs within one package are left out: clip-art sets ship the same drawing in
    several colours, which is a rework by this descriptor's definition. Returns the number of
    pairs and those at `floor` or above, closest first."""
    rs = [r for r in recs if "vec" in r and r["energy"] >= composition.MIN_ENERGY]
    if not rs:
        return 0, []
    v = np.stack([np.frombuffer(base64.b64decode(r["vec"]), np.float16).astype(np.float32) for r in rs])
    m = v * composition.mirror(np.ones(composition.DIMS, np.float32))[None, :]
    grp = np.array([r["id"].split("|")[0] for r in rs])
    n_pairs, hits = 0, []
    for a in range(0, len(v), 1000):
        sims = np.maximum(v[a : a + 1000] @ v.T, v[a : a + 1000] @ m.T)
        ok = (grp[a : a + 1000, None] != grp[None, :]) & (
            np.arange(a, a + len(sims))[:, None] < np.arange(len(v))[None, :]
        )
        n_pairs += int(ok.sum())
        for i, j in zip(*np.nonzero(np.where(ok, sims, -1) >= floor), strict=True):
            hits.append((float(sims[i, j]), rs[a + i]["id"], rs[j]["id"]))
    return n_pairs, sorted(hits, reverse=True)


def report(glob: list[dict[str, Any]], local: list[dict[str, Any]], reworks: list[dict[str, Any]]) -> None:
    n_art = len(json.loads((INDEX_DIR / "names.json").read_text()))
    print(f"global pass (composition, PDQ): {len(glob):,} unrelated queries ({_groups(glob)})")
    print(f"SIFT pass (local features): {len(local):,} of them ({_groups(local)})")
    print(f"against {n_art} indexed artworks")
    pdq = np.array([r["pdq"] if r["quality"] >= fingerprint.MIN_QUALITY else 256 for r in glob])
    comp = np.array([r["comp"] if r["energy"] >= composition.MIN_ENERGY else -1 for r in glob])
    inl = np.array([r["inliers"] for r in local]) if local else np.zeros(1, int)
    print(
        "| score | queries | reporting threshold | closest unrelated | 2nd | 99.9th pct | false matches | margin |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    mi = features.MIN_INLIERS
    print(
        f"| local features: inliers on one geometry | {len(local):,} | ≥ {mi} | {inl.max()} | {np.sort(inl)[-2]} | {np.percentile(inl, 99.9):.0f} | {(inl >= mi).sum()} | {mi - inl.max()} inliers |"
    )
    md = trace_mod.MATCH_DISTANCE
    print(
        f"| perceptual: PDQ bits to the nearest print | {len(glob):,} | ≤ {md} | {pdq.min()} | {np.sort(pdq)[1]} | {np.percentile(pdq, 0.1):.0f} | {(pdq <= md).sum()} | {pdq.min() - md} bits |"
    )
    rs = composition.REWORK_SIMILARITY
    print(
        f"| composition similarity (reworks) | {len(glob):,} | ≥ {rs} | {comp.max():.3f} | {np.sort(comp)[-2]:.3f} | {np.percentile(comp, 99.9):.3f} | {(comp >= rs).sum()} | {rs - comp.max():.3f} |"
    )
    for label, recs, key, score, rev in (
        ("inliers", local, "inliers_to", "inliers", True),
        ("PDQ", glob, "pdq_to", "pdq", False),
        ("composition", glob, "comp_to", "comp", True),
    ):
        best = sorted(recs, key=lambda r: r[score], reverse=rev)[:3]
        print(
            f"  closest by {label}: "
            + "; ".join(f"{r['id'].split('|', 1)[1]} → {r[key]} ({r[score]})" for r in best)
        )
    n_pairs, close = pairs(glob)
    over = sum(h[0] >= rs for h in close)
    print(
        f"\nunrelated vs unrelated (composition, pairs from different sources): {n_pairs:,} pairs; "
        f"closest {close[0][0] if close else 0:.3f}; ≥ 0.7: {sum(h[0] >= 0.7 for h in close)}; ≥ {rs}: {over}"
    )
    for sim, a, b in close[:5]:
        print(f"  {sim:.3f} {a.split('|', 1)[1]} ↔ {b.split('|', 1)[1]}")
    cpu = [r["cpu"] for r in local if "cpu" in r]
    if cpu:
        print(
            f"  (SIFT pass, per query: median {statistics.median(cpu):.2f} s CPU for extraction and the three searches)"
        )
    # reworks
    named = [
        r
        for r in reworks
        if r["best"] == r["art"] and r["own"] >= rs and r["energy"] >= composition.MIN_ENERGY
    ]
    wrong = [r for r in reworks if r["best"] != r["art"] and r["best_sim"] >= rs]
    print(
        f"\nrework set: {len(reworks)} reworks of {len({r['art'] for r in reworks})} artworks; composition ≥ {rs} and ranked first: {len(named)} ({len(named) / max(1, len(reworks)):.0%}), wrong artwork: {len(wrong)}"
    )
    print("| rework | named | similarity to its artwork: median (min) | best other artwork (max) |")
    print("| --- | --- | --- | --- |")
    for kind in dict.fromkeys(r["kind"] for r in reworks):
        rk = [r for r in reworks if r["kind"] == kind]
        nk = sum(r in named for r in rk)
        print(
            f"| {kind} | {nk}/{len(rk)} | {statistics.median(r['own'] for r in rk):.3f} ({min(r['own'] for r in rk):.3f}) | {max(r['other_best'] for r in rk):.3f} |"
        )
    print(
        "| recall at other thresholds | "
        + " | ".join(
            f"{t}: {sum(r['best'] == r['art'] and r['own'] >= t for r in reworks)}/{len(reworks)}"
            for t in (0.6, 0.65, 0.7, 0.75, 0.8, 0.85)
        )
        + " |"
    )
    missed = [f"{r['art']} {r['kind']} ({r['own']:.3f})" for r in reworks if r not in named]
    print("  missed: " + "; ".join(missed))


# -- the rework pass: thumbnails only (no SIFT, no PDQ) ---------------------------------------
REWORK_DIR = OUT / "rework"
CHUNK = 300  # queries per cached file


def _thumbs_of(items: list[tuple[str, Image.Image]]) -> tuple[list[str], np.ndarray]:
    return [n for n, _ in items], np.stack([composition.thumbnail(im) for _, im in items])


def rework_thumbs() -> dict[str, Any]:
    """The GRID x GRID thumbnails both rework checks are computed from (composition.thumbnail),
    of the indexed artworks and of the rework set (cached in benchmarks/out/calibration/rework)."""
    REWORK_DIR.mkdir(parents=True, exist_ok=True)
    f = REWORK_DIR / "indexed.npz"
    if not f.is_file():
        t = time.perf_counter()
        arts = indexed()
        names, thumbs = _thumbs_of(arts)
        rnames, rkinds, rthumbs = [], [], []
        for name, im in arts[: 16 + r2.SYNTHETIC]:
            for kind, fn in REWORKS.items():
                # the same seeds as rework_set(): the same reworks
                rng = np.random.default_rng(int(hashlib.sha256(f"{name}{kind}".encode()).hexdigest()[:8], 16))
                rnames.append(name)
                rkinds.append(kind)
                rthumbs.append(composition.thumbnail(fn(im, rng)))
        np.savez(f, names=np.array(names), thumbs=thumbs, rnames=np.array(rnames), rkinds=np.array(rkinds),
                 rthumbs=np.stack(rthumbs))  # fmt: skip
        print(f"indexed + rework set thumbnails in {time.perf_counter() - t:.0f}s", flush=True)
    with np.load(f) as d:
        return {k: d[k] for k in d.files}


def rework_queries(target: int) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Thumbnails of the first `target` calibration queries (procedural art first, as `run`
    does), decoded and augmented exactly as the other passes make them; one process (the
    machine is shared), cached in chunks so that an interrupted run resumes. Returns ids,
    thumbnails and the CPU seconds each query took to decode, augment and reduce."""
    REWORK_DIR.mkdir(parents=True, exist_ok=True)
    todo = queries(target)
    todo.sort(key=lambda q: not q[0].startswith("procedural|"))
    ids: list[str] = []
    thumbs, cpus = [], []
    t0, done = time.perf_counter(), 0
    for c in range(0, len(todo), CHUNK):
        f = REWORK_DIR / f"q-{target}-{c // CHUNK:04d}.npz"
        if not f.is_file():
            cids, ct, cc = [], [], []
            for qid, source, aug in todo[c : c + CHUNK]:
                t = time.process_time()
                x = _query_image(source, qid, aug)
                if x is None:
                    continue
                cids.append(qid)
                ct.append(composition.thumbnail(x))
                cc.append(time.process_time() - t)
            np.savez(f, ids=np.array(cids), thumbs=np.stack(ct), cpu=np.array(cc))
            done += len(cids)
            print(
                f"  … {c + CHUNK:,}/{len(todo):,} ({done / (time.perf_counter() - t0):.1f}/s, load {os.getloadavg()[0]:.1f})",
                flush=True,
            )
        with np.load(f) as d:
            ids += [str(i) for i in d["ids"]]
            thumbs.append(d["thumbs"])
            cpus.append(d["cpu"])
    return ids, np.concatenate(thumbs), np.concatenate(cpus)


def rework_pass(target: int) -> None:
    t0 = time.perf_counter()
    print(f"\n== rework pass: {target:,} unrelated queries (load {os.getloadavg()[0]:.1f}) ==", flush=True)
    ref = rework_thumbs()
    ids, thumbs, cpu = rework_queries(target)
    print(f"rework pass: {time.perf_counter() - t0:.0f}s wall, load {os.getloadavg()[0]:.1f}", flush=True)
    rework_report(ref, ids, thumbs, cpu)


def _checks(thumbs: np.ndarray) -> dict[str, np.ndarray]:
    """The three rework descriptors of thumbnails (composition, regions, colour), with the
    composition's energy and the colourfulness."""
    comp = np.stack([composition.from_grid(composition.luma_of(t)) for t in thumbs])
    parts = np.stack([composition.regions(t) for t in thumbs])
    col = np.stack([composition.colour(t) for t in thumbs])
    energy = np.array([composition.energy(composition.luma_of(t)) for t in thumbs])
    return {
        "comp": comp,
        "parts": parts,
        "colour": col,
        "energy": energy,
        "cful": np.linalg.norm(col, axis=1),
    }


_FLIP_C = composition.mirror(np.ones(composition.DIMS, np.float32))


def _three(
    q: dict[str, np.ndarray], i: int, a: dict[str, np.ndarray], j: int, flip: bool
) -> tuple[float, float, bool]:
    """(regions, colour, both grey) of query i against image j in the given orientation."""
    qr, qc = q["parts"][i], q["colour"][i]
    if flip:
        qr, qc = composition.mirror_regions(qr), composition.mirror_colour(qc)
    grey = bool(q["cful"][i] < composition.GREY and a["cful"][j] < composition.GREY)
    return (
        composition.region_similarity(a["parts"][j], qr),
        composition.colour_similarity(a["colour"][j], qc),
        grey,
    )


def _gap(c: float, r: float, col: float, grey: bool, t: tuple[float, float, float]) -> float:
    """How far one comparison is from the verdict (<= 0: a rework) at thresholds t =
    (composition with colour, regions, colour); grey pairs: composition REWORK_SIMILARITY."""
    if grey:
        return max(composition.REWORK_SIMILARITY - c, t[1] - r)
    return max(t[0] - c, t[1] - r, t[2] - col)


def _verdict(
    q: dict[str, np.ndarray], a: dict[str, np.ndarray], t: tuple[float, float, float], k: int
) -> list[tuple[int, float] | None]:
    """Tracer._rework on descriptors: the k best composition matches of each orientation,
    closest first, the first that passes the three checks — (artwork, composition)."""
    out: list[tuple[int, float] | None] = []
    for i, v in enumerate(q["comp"]):
        sims = np.stack([a["comp"] @ v, a["comp"] @ (v * _FLIP_C)])
        top = np.argsort(-sims, axis=1)[:, :k]
        cands = sorted(((float(sims[f, j]), f, int(j)) for f in (0, 1) for j in top[f]), reverse=True)
        hit = None
        for c, f, j in cands:
            if c < min(t[0], composition.REWORK_SIMILARITY):
                break
            r, col, grey = _three(q, i, a, j, bool(f))
            if _gap(c, r, col, grey, t) <= 0:
                hit = (j, c)
                break
        out.append(hit)
    return out


def _close(
    a: dict[str, np.ndarray],
    ia: np.ndarray,
    b: dict[str, np.ndarray],
    ib: np.ndarray,
    floor: float,
    groups: np.ndarray | None = None,
) -> list[tuple[float, float, float, bool, int, int]]:
    """Every (a, b) whose composition reaches `floor` (either orientation) with its regions and
    colour similarity in the same orientation: (composition, regions, colour, both grey, i, j)
    with i, j positions in ia, ib. With `groups` (a and b the same images): each pair once,
    and only pairs from different sources."""
    out = []
    ac, bc = a["comp"][ia], b["comp"][ib]
    for s in range(0, len(ac), 1000):
        s0, s1 = ac[s : s + 1000] @ bc.T, (ac[s : s + 1000] * _FLIP_C) @ bc.T
        sm = np.maximum(s0, s1)
        mask = np.ones_like(sm, bool)
        if groups is not None:
            mask = (groups[s : s + 1000, None] != groups[None, :]) & (
                np.arange(s, s + len(sm))[:, None] < np.arange(len(bc))[None, :]
            )
        for i, j in zip(*np.nonzero(mask & (sm >= floor)), strict=True):
            r, col, grey = _three(a, int(ia[s + i]), b, int(ib[j]), bool(s1[i, j] > s0[i, j]))
            out.append((float(sm[i, j]), r, col, grey, s + int(i), int(j)))
    return out


SAME_SOURCE = {"tuxpaint stamps": "openclipart"}
# the grid the thresholds are chosen from (composition with colour, regions, colour)
GRID_T = [
    (c, r, col)
    for c in (0.75, 0.8, 0.85, 0.88, 0.9)
    for r in (0.2, 0.3, 0.4, 0.5, 0.6)
    for col in (0.7, 0.75, 0.8, 0.85, 0.9)
]
NEED_MARGIN = 0.03  # a setting is chosen only if every unrelated comparison misses it by more


def _half(key: str) -> int:
    return int(hashlib.sha256(key.encode()).hexdigest()[:8], 16) % 2


def rework_report(ref: dict[str, Any], ids: list[str], thumbs: np.ndarray, cpu: np.ndarray) -> None:
    from poster import trace as tr

    committed = (composition.COLOUR_COMPOSITION, composition.REGION_SIMILARITY, composition.COLOUR_SIMILARITY)
    k = tr.REWORK_CANDIDATES
    t = time.process_time()
    for x in thumbs[:2000]:
        composition.from_grid(composition.luma_of(x))
    t_comp = (time.process_time() - t) / min(2000, len(thumbs))
    t = time.process_time()
    for x in thumbs[:2000]:
        composition.regions(x)
    t_parts = (time.process_time() - t) / min(2000, len(thumbs))
    t = time.process_time()
    for x in thumbs[:2000]:
        composition.colour(x)
    t_col = (time.process_time() - t) / min(2000, len(thumbs))
    a, rw, q = _checks(ref["thumbs"]), _checks(ref["rthumbs"]), _checks(thumbs)
    t = time.process_time()
    v0, c0 = q["parts"][0], q["colour"][0]
    for j in range(len(a["comp"])):
        composition.region_similarity(a["parts"][j], v0)
        composition.colour_similarity(a["colour"][j], c0)
    t_cmp = (time.process_time() - t) / len(a["comp"])
    names = [str(n) for n in ref["names"]]
    own = np.array([names.index(str(n)) for n in ref["rnames"]])
    kinds = [str(x) for x in ref["rkinds"]]
    qk = np.nonzero(q["energy"] >= composition.MIN_ENERGY)[0]
    # Tux Paint's stamps include openclipart drawings (the same house in both packages,
    # 0.998 and 0.998): one source for the pairs, as the drawings within one package are
    grp = np.array([SAME_SOURCE.get(g, g) for g in (i.split("|")[0] for i in ids)])[qk]
    print(
        f"unrelated queries: {len(ids):,} ({_groups([{'id': i} for i in ids])}), {len(qk):,} with enough layout "
        f"(MIN_ENERGY); indexed artworks: {len(names)}"
    )
    print(
        f"per image, CPU: thumbnail (decode, augment, reduce to {composition.GRID}²) median {np.median(cpu) * 1000:.0f} ms; "
        f"descriptors: composition {t_comp * 1000:.2f} ms, regions {t_parts * 1000:.2f} ms, colour {t_col * 1000:.2f} ms; "
        f"per candidate compared (regions + colour) {t_cmp * 1e6:.0f} µs"
    )
    floor = 0.7
    uq = _close(q, qk, a, np.arange(len(names)), floor)
    up = _close(q, qk, q, qk, floor, grp)
    counts = np.unique(grp, return_counts=True)[1].astype(np.int64)
    n_p = int((counts.sum() ** 2 - (counts**2).sum()) // 2)  # pairs from different sources
    enough = rw["energy"] >= composition.MIN_ENERGY
    # halves: the rework set by artwork, the unrelated comparisons by the query's source file
    art_half = np.array([_half(names[o]) for o in own])
    src = [i.split("|")[1] for i in ids]
    uq_half = np.array([_half(src[qk[i]]) for *_, i, _j in uq])
    up_half = np.array([_half(src[qk[i]]) for *_, i, _j in up])
    verdicts: dict[tuple[float, float, float], np.ndarray] = {}

    def named(tt: tuple[float, float, float]) -> np.ndarray:
        if tt not in verdicts:
            got = _verdict(rw, a, tt, k)
            verdicts[tt] = np.array(
                [(g is not None and g[0] == o and bool(e)) * 1 - (g is not None and g[0] != o) * 1
                 for g, o, e in zip(got, own, enough, strict=True)]
            )  # fmt: skip
        return verdicts[tt]  # 1 named, 0 missed, -1 wrong artwork

    def unrelated_gaps(tt: tuple[float, float, float], half: int | None = None) -> np.ndarray:
        g = [
            _gap(c, r, col, grey, tt)
            for rows, hv in ((uq, uq_half), (up, up_half))
            for (c, r, col, grey, *_), h in zip(rows, hv, strict=True)
            if half is None or h == half
        ]
        return np.array(g or [np.inf])

    print(
        f"\nthresholds (regions ≥ {composition.REGION_SIMILARITY}): rework set named/wrong (of {len(own)}); unrelated queries + pairs passing"
    )
    cols = (0.7, 0.75, 0.8, 0.85, 0.9)
    print("| composition ≥ (with colour) | colour ≥ " + " | ".join(str(x) for x in cols) + " |")
    print("| --- | " + " | ".join("---" for _ in cols) + " |")
    for c in (0.75, 0.8, 0.85, 0.88, 0.9):
        cells = []
        for col in cols:
            tt = (c, composition.REGION_SIMILARITY, col)
            n = named(tt)
            fq = sum(_gap(*x[:4], tt) <= 0 for x in uq)
            fp = sum(_gap(*x[:4], tt) <= 0 for x in up)
            cells.append(f"{(n == 1).sum()}/{(n == -1).sum()}; {fq} + {fp}")
        print(f"| {c} | " + " | ".join(cells) + " |")

    # Held out: the thresholds chosen on one half (artworks, unrelated sources) from GRID_T —
    # most reworks named with every unrelated comparison of that half missing by > NEED_MARGIN
    # — then counted on the other half.
    print(
        f"\nheld out: thresholds chosen on one half of the artworks and of the unrelated sources (most named, margin > {NEED_MARGIN}), counted on the other half"
    )
    print(
        "| chosen on half | thresholds (composition, regions, colour) | named, chosen half | margin, chosen half | named, held-out half | unrelated passing, held-out half | margin, held-out half |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for h in (0, 1):
        best = None
        for tt in GRID_T:
            m = float(unrelated_gaps(tt, h).min())
            if m <= NEED_MARGIN:
                continue
            n = int(((named(tt) == 1) & (art_half == h)).sum())
            if best is None or (n, m) > best[:2]:
                best = (n, m, tt)
        if best is None:
            print(f"| {h} | none with margin > {NEED_MARGIN} | | | | | |")
            continue
        n, m, tt = best
        g = unrelated_gaps(tt, 1 - h)
        held = int(((named(tt) == 1) & (art_half != h)).sum())
        print(
            f"| {h} | {tt} | {n}/{(art_half == h).sum()} | {m:+.3f} | {held}/{(art_half != h).sum()} | {(g <= 0).sum()} | {g.min():+.3f} |"
        )
    n = named(committed)
    print(
        f"\ncommitted thresholds {committed} (grey pairs: composition ≥ {composition.REWORK_SIMILARITY}), by half:"
    )
    print("| half | reworks named | wrong | unrelated passing | margin |")
    print("| --- | --- | --- | --- | --- |")
    for h in (0, 1, None):
        m = art_half == h if h is not None else np.ones(len(own), bool)
        g = unrelated_gaps(committed, h)
        print(
            f"| {'all' if h is None else h} | {(n[m] == 1).sum()}/{m.sum()} ({(n[m] == 1).mean():.0%}) | {(n[m] == -1).sum()} | {(g <= 0).sum()} | {g.min():+.3f} |"
        )

    before = named((composition.REWORK_SIMILARITY, composition.REGION_SIMILARITY, -1.0))
    print(
        f"\nrework set: {len(own)} reworks of {len(set(names[o] for o in own))} artworks; named before "
        f"(composition ≥ {composition.REWORK_SIMILARITY}, regions ≥ {composition.REGION_SIMILARITY}): {(before == 1).sum()}; "
        f"now: {(n == 1).sum()} ({(n == 1).mean():.0%}), wrong artwork {(n == -1).sum()}"
    )
    own_f = [
        float(a["comp"][o] @ (v * _FLIP_C)) > float(a["comp"][o] @ v)
        for o, v in zip(own, rw["comp"], strict=True)
    ]
    own_c = np.array(
        [
            max(float(a["comp"][o] @ v), float(a["comp"][o] @ (v * _FLIP_C)))
            for o, v in zip(own, rw["comp"], strict=True)
        ]
    )
    own3 = [_three(rw, i, a, int(o), f) for i, (o, f) in enumerate(zip(own, own_f, strict=True))]
    print("| rework | named before | named now | colour to its artwork: median (min) |")
    print("| --- | --- | --- | --- |")
    for kind in dict.fromkeys(kinds):
        m = np.array([x == kind for x in kinds])
        cs = np.array([x[1] for x, y in zip(own3, m, strict=True) if y])
        print(
            f"| {kind} | {(before[m] == 1).sum()}/{m.sum()} | {(n[m] == 1).sum()}/{m.sum()} | {np.median(cs):.3f} ({cs.min():.3f}) |"
        )
    missed = [
        f"{nm} {kd} ({c:.3f}, {x[0]:.3f}, {x[1]:.3f}{', grey' if x[2] else ''})"
        for nm, kd, c, x, v in zip(ref["rnames"], kinds, own_c, own3, n, strict=True)
        if v != 1
    ]
    print("  missed (composition, regions, colour): " + "; ".join(missed))
    print(
        f"\nunrelated: {len(qk):,} queries x {len(names)} artworks; {n_p:,} pairs of queries from different sources"
    )
    print(
        "| comparisons | composition ≥ 0.7 | of them grey | passing the verdict | closest (composition, regions, colour) | margin |"
    )
    print("| --- | --- | --- | --- | --- | --- |")
    qid = [ids[i] for i in qk]
    for label, rows in (("queries", uq), ("pairs", up)):
        gaps = [_gap(*x[:4], committed) for x in rows]
        o = int(np.argmin(gaps)) if rows else -1
        c, r, col, grey, *_ = rows[o] if rows else (0, 0, 0, False)
        print(
            f"| {label} | {len(rows):,} | {sum(x[3] for x in rows):,} | {sum(g <= 0 for g in gaps)} | {c:.3f}, {r:.3f}, {col:.3f}{' (grey)' if grey else ''} | {min(gaps, default=1):+.3f} |"
        )
    for label, rows, other in (("queries", uq, names), ("pairs", up, qid)):
        print(f"  closest {label} to the verdict (gap; composition, regions, colour):")
        for x in sorted(rows, key=lambda x: _gap(*x[:4], committed))[:5]:
            c, r, col, grey, i, j = x
            print(
                f"    {_gap(c, r, col, grey, committed):+.3f}; {c:.3f}, {r:.3f}, {col:.3f}{' grey' if grey else ''}: {qid[i].split('|', 1)[1]} ↔ {other[j].split('|', 1)[-1]}"
            )


# -- the direct-match pass (trace's fallback for the index's short list) ----------------------
PAIR_FILE = OUT / ("pair.jsonl" if features.FORMAT == 1 else f"pair-f{features.FORMAT}.jsonl")


def pair_originals() -> dict[str, features.Features]:
    """`features.pair_features` of every indexed artwork, by index key (cached on disk: the
    300 procedural originals are generated once)."""
    cache = INDEX_DIR / "pair-features.npz"
    if not cache.is_file():
        t = time.perf_counter()
        arrays: dict[str, np.ndarray] = {}
        for i, (_name, im) in enumerate(indexed()):
            f = features.pair_features(im)
            arrays[f"xy{i}"] = f.xy
            arrays[f"desc{i}"] = f.desc.astype(np.float16)
            arrays[f"frame{i}"] = np.array([f.size[0], f.size[1], f.scale], np.float64)
        np.savez(cache, **arrays)
        print(f"pair features of the indexed artworks in {time.perf_counter() - t:.0f}s", flush=True)
    out = {}
    with np.load(cache) as data:
        n = sum(1 for k in data.files if k.startswith("xy"))
        for i in range(n):
            w, h, scale = data[f"frame{i}"]
            out[f"{i:064x}"] = features.Features(
                data[f"xy{i}"], data[f"desc{i}"].astype(np.float32), (int(w), int(h)), float(scale)
            )
    return out


def pair_queries(n: int) -> list[tuple[str, str, str]]:
    """`n` unrelated queries spread evenly over every package group's list (as is and
    augmented, as in `queries`), plus procedural art: a sample, not the first groups only."""
    every = [q for q in queries(0) if not q[0].startswith("procedural|")]
    step = max(1, len(every) // max(1, n - n // 10))
    sample = every[::step][: n - n // 10]
    return sample + queries(len(every) + n // 10)[len(every) :][: n // 10]


def _on_query(item: tuple[str, str, str], measure: Callable[[Image.Image], dict[str, Any]]) -> dict[str, Any]:
    """One query of a pass: its image made, `measure`d, with the CPU time it took."""
    qid, source, aug = item
    t = time.process_time()
    x = _query_image(source, qid, aug)
    if x is None:
        return {"id": qid, "skip": "unreadable or tiny"}
    return {"id": qid, **measure(x), "cpu": round(time.process_time() - t, 3)}


def _search_and_match(x: Image.Image) -> tuple[list[features.Hit], int, int, str | None]:
    """What trace's feature stage sees of `x`: the index's verified hits, then its short list's
    originals matched directly (Tracer._direct, floor FEATURE_FLOOR): (hits, short list size,
    the direct match's most inliers, that artwork's name)."""
    index, names = _STATE["index"], _STATE["names"]
    shortlist: dict[str, int] = {}
    hits = index.search(features.extract_query(x), shortlist=shortlist)
    best, best_to = 0, None
    if shortlist:
        fs = features.pair_features(x)
        for key in shortlist:
            hit = features.match_features(_STATE["pair"][key], fs, key=key, min_inliers=FEATURE_FLOOR)
            if hit is not None and hit.inliers > best:
                best, best_to = hit.inliers, names[int(key, 16)]
    return hits, len(shortlist), best, best_to


def _pair_measure(x: Image.Image) -> dict[str, Any]:
    hits, listed, best, best_to = _search_and_match(x)
    inliers = max((h.inliers for h in hits), default=0)
    return {"inliers": inliers, "shortlist": listed, "pair": best, "pair_to": best_to, "size": list(x.size)}


def _pair_work(item: tuple[str, str, str]) -> dict[str, Any]:
    return _on_query(item, _pair_measure)


def _pair_init() -> None:
    _init()
    _STATE["pair"] = pair_originals()


def _cached_pass(
    name: str,
    file: Path,
    work: Callable[[tuple[str, str, str]], dict[str, Any]],
    n: int,
    workers: int,
    init: Callable[[], None] | None = None,
) -> list[dict[str, Any]]:
    """Run `work` on every one of `pair_queries(n)` not in `file` yet (one JSON line per query,
    appended as they come: a pass cut short resumes), in `workers` processes set up by `init`
    (default: the index and the originals' pair features loaded); every query's record,
    skipped ones left out."""
    OUT.mkdir(parents=True, exist_ok=True)
    if init is None:
        build_index()
        pair_originals()
    have: dict[str, dict[str, Any]] = {}
    if file.is_file():
        have = {r["id"]: r for r in map(json.loads, file.read_text().splitlines()) if r}
    todo = [q for q in pair_queries(n) if q[0] not in have]
    print(
        f"{name}: {len(have):,} cached, {len(todo):,} to compute (load {os.getloadavg()[0]:.1f})", flush=True
    )
    t0 = time.perf_counter()
    with (
        file.open("a") as out,
        multiprocessing.get_context("fork").Pool(
            workers if todo else 1, (init or _pair_init) if todo else None
        ) as pool,
    ):
        for k, rec in enumerate(pool.imap_unordered(work, todo, chunksize=3), 1):
            out.write(json.dumps(rec) + "\n")
            out.flush()
            have[rec["id"]] = rec
            if k % 100 == 0:
                print(f"  … {k:,}/{len(todo):,}", flush=True)
    print(f"{name}: {time.perf_counter() - t0:.0f}s wall, load {os.getloadavg()[0]:.1f}", flush=True)
    return [have[q[0]] for q in pair_queries(n) if q[0] in have and "skip" not in have[q[0]]]


def pair_pass(n: int, workers: int = 1) -> None:
    """The direct match (trace's `_direct`: the index's short list, each original matched
    against the suspect) on `n` unrelated queries: its inliers must stay below MIN_INLIERS."""
    pair_report(_cached_pass("pair pass", PAIR_FILE, _pair_work, n, workers))


def pair_report(recs: list[dict[str, Any]]) -> None:
    mi = features.MIN_INLIERS  # this process never lowers it (the workers do, in _init)
    # 0: no plausible geometry with FEATURE_FLOOR inliers (the floor while calibrating)
    pair = np.array([r["pair"] for r in recs] or [0])
    low = lambda v: f"< {FEATURE_FLOOR}" if v < FEATURE_FLOOR else str(v)  # noqa: E731
    listed = sum(r["shortlist"] > 0 for r in recs)
    print(
        f"direct match on the short list: {len(recs):,} unrelated queries ({_groups(recs)}), {listed:,} with a short list"
    )
    print(
        "| score | queries | reporting threshold | closest unrelated | 2nd | 99th pct | false matches | margin |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    print(
        f"| direct match: inliers on one geometry | {len(recs):,} | ≥ {mi} | {low(pair.max())} | {low(np.sort(pair)[-2] if len(pair) > 1 else 0)} | {low(int(np.percentile(pair, 99)))} | {(pair >= mi).sum()} | > {mi - max(int(pair.max()), FEATURE_FLOOR)} inliers |"
    )
    best = sorted(recs, key=lambda r: -r["pair"])[:3]
    print(
        "  closest: " + "; ".join(f"{r['id'].split('|', 1)[1]} → {r['pair_to']} ({r['pair']})" for r in best)
    )
    cpu = [r["cpu"] for r in recs]
    if cpu:
        print(
            f"  (per query: median {statistics.median(cpu):.2f} s CPU, max {max(cpu):.2f} s, for the search and the direct matches)"
        )


# -- the panel pass (trace's `_by_panels`: a suspect split along uniform gutters) ---------------
PANEL_FILE = OUT / f"panel-f{features.FORMAT}.jsonl"


def _panel_measure(x: Image.Image) -> dict[str, Any]:
    """Each part of `x` (features.panels) as `_search_and_match` sees it: the most inliers
    any part reached, verified or matched directly, and the artwork."""
    names = _STATE["names"]
    boxes = features.panels(x)
    best, best_to = 0, None
    for box in boxes:
        hits, _listed, direct, direct_to = _search_and_match(x.crop(box))
        for inliers, to in [(h.inliers, names[int(h.key, 16)]) for h in hits] + [(direct, direct_to)]:
            if inliers > best:
                best, best_to = inliers, to
    return {"panels": len(boxes), "best": best, "best_to": best_to}


def _panel_work(item: tuple[str, str, str]) -> dict[str, Any]:
    return _on_query(item, _panel_measure)


def panel_pass(n: int, workers: int = 1) -> None:
    """Every part of the `n` unrelated queries of the pair pass that split along gutters
    (features.panels), searched and matched directly as trace's `_by_panels` does (each part's
    index verification and its short list's direct matches): the inliers must stay below
    MIN_INLIERS. Sprite sheets, icon sets and comic-like pictures are among the queries."""
    recs = _cached_pass("panel pass", PANEL_FILE, _panel_work, n, workers)
    split = [r for r in recs if r["panels"]]
    best = np.array([r["best"] for r in split] or [0])
    mi = features.MIN_INLIERS
    print(f"panels: {len(recs):,} unrelated queries, {len(split):,} split along gutters "
          f"({sum(r['panels'] for r in split):,} parts searched)")  # fmt: skip
    print("| queries split | reporting threshold | closest unrelated | 2nd | false matches | margin |")
    print("| --- | --- | --- | --- | --- | --- |")
    second = np.sort(best)[-2] if len(best) > 1 else 0
    low = lambda v: f"< {FEATURE_FLOOR}" if v < FEATURE_FLOOR else str(v)  # noqa: E731
    print(
        f"| {len(split):,} | ≥ {mi} | {low(int(best.max()))} | {low(int(second))} | {(best >= mi).sum()} | "
        f"> {mi - max(int(best.max()), FEATURE_FLOOR)} inliers |"
    )
    top = sorted(split, key=lambda r: -r["best"])[:3]
    print(
        "  closest: " + "; ".join(f"{r['id'].split('|', 1)[1]} → {r['best_to']} ({r['best']})" for r in top)
    )
    if split:
        cpu = [r["cpu"] for r in split]
        print(f"  (per split query: median {statistics.median(cpu):.2f} s CPU, max {max(cpu):.2f} s)")


# -- the registration pass (trace's `_by_registration`: smooth art placed from its pixels) ------
REGISTRATION_FILE = OUT / "registration.jsonl"


def _registration_init() -> None:
    """The attack table's posted home (benchmarks/trace.py --only attacks makes it): its
    originals that are weak in keypoints (features.few_strong) and have posts, each
    registered against every query (the worst case: trace registers only the short list's)."""
    from poster import markkey, store

    cases = json.loads((r2.OUT / "attack-cases.json").read_text())
    data_dir = Path(cases["data_dir"])
    conn = store.connect(data_dir / "poster.db")
    tracer = trace_mod.Tracer(conn, markkey.load(data_dir), data_dir)
    weak = []
    for (key,) in conn.execute("SELECT DISTINCT original_sha256 FROM ledger").fetchall():
        fo, ref = tracer._pair_features(key), tracer._original(key)
        if fo is not None and ref is not None and features.few_strong(fo):
            weak.append((key, ref))
    _STATE.update(tracer=tracer, weak=weak)


def _registration_measure(x: Image.Image) -> dict[str, Any]:
    """Every weak posted original registered (poster.dense) against `x` and each of its parts;
    the hidden ID read (Tracer._informed) through every map that reaches MIN_CORRELATION."""
    from poster import dense

    tracer = _STATE["tracer"]
    best, reads, payloads, named, locates = 0.0, 0, 0, [], 0
    for box in [None, *features.panels(x)]:
        part = x if box is None else x.crop(box)
        for key, ref in _STATE["weak"]:
            locates += 1
            found = dense.locate(ref, part)
            if found is None:
                continue
            best = max(best, found.correlation)
            if found.correlation < dense.MIN_CORRELATION:
                continue
            reads += 1
            got = tracer._informed(x, key, tracer._rows_of(key), features.box_shift(box) @ found.homography)
            if got is not None and got.hidden_id is not None:
                payloads += 1
            if got is not None and got.matches:
                named.append(got.matches[0].id)
    return {"locates": locates, "best": round(best, 4), "reads": reads, "payloads": payloads, "named": named}


def _registration_work(item: tuple[str, str, str]) -> dict[str, Any]:
    return _on_query(item, _registration_measure)


def registration_pass(n: int, workers: int = 1) -> None:
    """The pair pass's `n` unrelated queries (and their parts) registered against every weak
    posted original of the attack home, with the hidden ID read through each map that reaches
    dense.MIN_CORRELATION: no post may be named. Also what the stage costs an unrelated query."""
    from poster import dense

    if not (r2.OUT / "attack-cases.json").is_file():
        sys.exit("registration pass: run benchmarks/trace.py --only attacks first (it posts the home)")
    recs = _cached_pass(
        "registration pass", REGISTRATION_FILE, _registration_work, n, workers, _registration_init
    )
    _registration_init()
    best = np.array([r["best"] for r in recs] or [0.0])
    locates = sum(r["locates"] for r in recs)
    reads = sum(r["reads"] for r in recs)
    named = [(r["id"], r["named"]) for r in recs if r["named"]]
    print(
        f"registration: {len(recs):,} unrelated queries, each (and its parts) against the "
        f"{len(_STATE['weak'])} weak posted originals: {locates:,} registrations"
    )
    print(
        "| reads at | queries reaching it | reads attempted | IDs read | posts named | closest | 99th pct |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- |")
    print(
        f"| correlation ≥ {dense.MIN_CORRELATION} | {(best >= dense.MIN_CORRELATION).sum():,} | {reads:,} | "
        f"{sum(r['payloads'] for r in recs)} | {len(named)} | {best.max():.3f} | {np.percentile(best, 99):.3f} |"
    )
    for qid, ids in named:
        print(f"  NAMED: {qid} → {ids}")
    cpu = [r["cpu"] / max(1, r["locates"]) for r in recs]
    print(
        f"  (per registration, reads included: median {statistics.median(cpu):.2f} s CPU, max {max(cpu):.2f} s)"
    )


if __name__ == "__main__":
    if sys.argv[1:2] == ["registration"]:  # trace_calibration.py registration [N] [WORKERS]
        registration_pass(
            int(sys.argv[2]) if len(sys.argv) > 2 else 600, int(sys.argv[3]) if len(sys.argv) > 3 else 1
        )
        sys.exit()
    if sys.argv[1:2] == ["report"]:  # the tables from what is cached, nothing computed
        report(cached(False), cached(True), rework_set())
    elif sys.argv[1:2] == ["rework"]:  # trace_calibration.py rework [N]: the rework verdict only
        rework_pass(int(sys.argv[2]) if len(sys.argv) > 2 else 12_000)
    elif sys.argv[1:2] == ["panels"]:  # trace_calibration.py panels [N] [WORKERS]
        panel_pass(
            int(sys.argv[2]) if len(sys.argv) > 2 else 1500, int(sys.argv[3]) if len(sys.argv) > 3 else 1
        )
    elif sys.argv[1:2] == ["pair"]:  # trace_calibration.py pair [N] [WORKERS]
        pair_pass(
            int(sys.argv[2]) if len(sys.argv) > 2 else 400, int(sys.argv[3]) if len(sys.argv) > 3 else 1
        )
    else:
        calibration(
            int(sys.argv[1]) if len(sys.argv) > 1 else 12_000, int(sys.argv[2]) if len(sys.argv) > 2 else 2
        )
