# ruff: noqa: E501
"""The scale table of issue 17: a whole `Tracer.trace_image` per found image at 10^3 … 10^6 posts.

    .venv/bin/python benchmarks/trace.py --only scale [--scale 1000 100000 1000000]

Each size is a real data folder (benchmarks/out/scale/N/, kept between runs): two corpus
artworks posted through `poster run --once --now` (x heavy, pixiv and xfolio light: 6 real
rows, real marks, real archive), then N generated posts appended:

* ledger rows continuing the real hash chain, with random 48-bit IDs, random perceptual
  prints (PDQ bits and histograms) and thumbnails of synthetic paintings;
* one local-feature entry per generated post (600 postings, as `features.KEEP`), whose visual
  words are drawn from the word frequencies measured on 200 unrelated package images and
  procedural art (so the inverted lists are as long and as skewed as a real collection's, not
  uniform), with random places and Hamming bits; and composition vectors of real images
  shuffled with noise (not random unit vectors: real ones crowd together).

Each size is measured in its own process (peak RSS is per size): every index opened (from
the OS page cache; the folder is built as the daemon leaves it, with the perceptual index's
cache file written), the first trace, then the median over found images (X copies attacked
as a leaker would) and unrelated images (no match: every stage runs). One Tracer traces them
all, as `poster trace DIR` does: a decoded original is kept between its copies.

    .venv/bin/python benchmarks/trace_scale.py build 100000 1000000   # folders only
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import sqlite3
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

OUT = REPO / "benchmarks" / "out" / "scale"


def _features_format() -> int:
    from poster import features

    return features.FORMAT


# the folders hold feature segments of one extraction (features.FORMAT): another one would
# find them unusable and index only the posted base, so each FORMAT has its own folders
if _features_format() > 1:
    OUT = OUT.with_name(f"scale-f{_features_format()}")
BASE_ART = ("revoy_forest_painting.jpg", "kodim23.png")


def _base() -> Path:
    """The posted base data folder (2 artworks, 6 rows), made once."""
    import trace_round2 as r2

    from poster import cli, config
    from tests.conftest import run_cli

    base = OUT / "base"
    cfg_path = base / "home" / "config.toml"
    if cfg_path.is_file():
        return config.load(cfg_path).data_dir
    shutil.rmtree(base, ignore_errors=True)
    home = config.load(cli.init_home(base / "home"))
    for name in BASE_ART:
        (home.outbox / name).write_bytes((r2.CORPUS / name).read_bytes())
        os.utime(home.outbox / name, (time.time() - 3600,) * 2)
    code, out, err = run_cli("run", "--once", "--now", cfg=home)
    if code != 0:
        raise SystemExit(out + err)
    return home.data_dir


def word_frequencies() -> np.ndarray:
    """P(word) over 65,536 words, from 200 unrelated images (cached)."""
    import images

    from poster import features

    cache = OUT / "word_freq.npy"
    if cache.is_file():
        return np.load(cache)
    book = features.codebook()
    sample = [im for _, im in images.procedural(40, seed=31)]
    for _group, files in images.sources().items():
        step = max(1, len(files) // 20)
        sample += [x for x in (images.load(p, 1024) for p in files[1::step][:20]) if x is not None]
    sample = sample[:200]
    words = np.concatenate([features.entry_of("0" * 64, im, book).words for im in sample]).astype(np.int64)
    freq = np.bincount(words, minlength=features.WORDS).astype(np.float64)
    p = (freq + 0.1) / (freq + 0.1).sum()
    OUT.mkdir(parents=True, exist_ok=True)
    np.save(cache, p)
    print(f"word frequencies from {len(sample)} unrelated images ({len(words):,} keypoints)")
    return p


def build(n: int) -> Path:
    """benchmarks/out/scale/N/data: the base folder plus n generated posts (made once)."""
    from poster import composition, features, fingerprint, ledger, store
    from poster import trace as trace_mod
    from tests.synthetic import painting

    root = OUT / str(n)
    data = root / "data"
    if (root / "READY").is_file():
        if not trace_mod.index_cache(data).is_file():  # a folder built before the cache was
            _refresh(data)
        generated = data / features.INDEX_DIR / "seg-900000"
        if not (generated / "colour.npy").is_file():  # built before the rework stage's checks
            _rework_descriptors(generated, n, np.random.default_rng(n + 1), composition.DIMS)
        return data
    t0 = time.perf_counter()
    shutil.rmtree(root, ignore_errors=True)
    shutil.copytree(_base(), data)
    rng = np.random.default_rng(n)
    conn = store.connect(data / "poster.db")
    last = conn.execute("SELECT seq, row_hash FROM ledger ORDER BY seq DESC LIMIT 1").fetchone()
    seq0, prev = int(last[0]), str(last[1])
    keys = rng.integers(0, 256, (n, 32), dtype=np.uint8)
    pool = [fingerprint.thumbnail(painting((640, 480), 2000 + i)) for i in range(32)]
    cols = ledger.HASHED_FIELDS
    sql = f"INSERT INTO ledger ({', '.join(cols)}, prev_hash, row_hash) VALUES ({', '.join('?' * (len(cols) + 2))})"
    # everything random drawn in bulk (numpy), one row at a time only for the hash chain
    # (each row hashes its predecessor's hash), inserted 50,000 rows per executemany
    fp_len = fingerprint.REGIONS * fingerprint.HASH_BYTES
    mark_ids = rng.integers(1, 2**48, n, dtype=np.int64)
    targets = ("x", "pixiv", "xfolio")
    conn.execute("BEGIN")
    step = 50_000
    for a in range(0, n, step):
        b = min(n, a + step)
        hashes = rng.integers(0, 256, (b - a, fp_len), dtype=np.uint8)
        hist = np.sort(rng.integers(0, 256, (b - a, 2, fingerprint.HIST_BINS), dtype=np.uint8), axis=2)
        fps = np.concatenate([hashes, hist.reshape(b - a, -1)], axis=1)
        batch = []
        for i in range(a, b):
            seq = seq0 + 1 + i
            fp = fps[i - a].tobytes()
            fields = {
                "seq": seq, "mark_id": int(mark_ids[i]), "job_id": 10**9 + i, "idx": 0,
                "target": targets[i % 3], "adapter": "local", "url": f"https://example.org/{seq}",
                "media_url": None, "remote_id": str(seq), "posted_at": "2026-11-22T00:00:00+00:00",
                "original_sha256": keys[i].tobytes().hex(), "variant_sha256": "1" * 64, "render": "{}",
                "variant_fp": fp, "original_fp": fp, "variant_thumb": pool[i % len(pool)],
            }  # fmt: skip
            row_hash = ledger._row_hash(prev, fields)
            batch.append([fields[c] for c in cols] + [prev, row_hash])
            prev = row_hash
        conn.executemany(sql, batch)
    conn.execute("COMMIT")
    covered = int(conn.execute("SELECT max(rowid) FROM originals").fetchone()[0])
    conn.close()
    t_ledger = time.perf_counter() - t0
    # the real originals' segment exists (indexed after posting); add the generated one
    froot = data / features.INDEX_DIR
    manifest = json.loads((froot / features.MANIFEST).read_text())
    _generated_segment(froot / "seg-900000", keys, word_frequencies(), rng, composition.DIMS)
    manifest["segments"] = [*manifest["segments"], "seg-900000"]
    manifest["covered"] = covered
    features._write_manifest(froot, manifest)
    _refresh(data)
    (root / "READY").write_text(
        json.dumps({"n": n, "ledger_s": round(t_ledger), "total_s": round(time.perf_counter() - t0)})
    )
    return data


def _refresh(data: Path) -> None:
    """What the daemon does after posting (trace.refresh_index): the perceptual index cache
    written, so the first trace reads it as it would in a real data folder."""
    from poster import store
    from poster import trace as trace_mod

    conn = store.connect(data / "poster.db")
    try:
        trace_mod.refresh_index(conn, data)
    finally:
        conn.close()


def _generated_segment(
    path: Path, keys: np.ndarray, word_p: np.ndarray, rng: np.random.Generator, dims: int
) -> None:
    from poster import features

    n = len(keys)
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
        chunk["y"] = rng.integers(0, 768 * 32, b - a, dtype=np.uint16)
        chunk["sig"] = rng.integers(0, 2**32, b - a, dtype=np.uint32)
        post[a:b] = chunk
    post.flush()
    del post
    np.save(tmp / "offsets.npy", offsets)
    np.save(tmp / "keys.npy", keys)
    np.save(tmp / "frames.npy", np.tile(np.array([[1024.0, 768.0, 0.5]]), (n, 1)))
    _rework_descriptors(tmp, n, rng, dims)
    os.replace(tmp, path)


def _rework_descriptors(seg: Path, n: int, rng: np.random.Generator, dims: int) -> None:
    """The rework stage's three descriptors per generated post: composition vectors of real
    images (package images) mixed with noise and renormalised, and the same images' regions
    and colour descriptors, so the stage compares what a real index would hand it."""
    comps, parts, colours = _real_descriptors()
    pick = rng.integers(0, len(comps), n)
    v = comps[pick] + rng.normal(0, 0.6 / np.sqrt(dims), (n, dims)).astype(np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    np.save(seg / "composition.npy", v.astype(np.float16))
    np.save(seg / "regions.npy", parts[pick].astype(np.float16))
    np.save(seg / "colour.npy", colours[pick].astype(np.float16))


def _real_descriptors() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Composition, regions and colour descriptors of package images (cached)."""
    import images

    from poster import composition

    cache = OUT / "rework-descriptors.npz"
    if cache.is_file():
        got = np.load(cache)
        return got["composition"], got["regions"], got["colour"]
    comps, parts, colours = [], [], []
    for _g, files in images.sources().items():
        for p in files[2 :: max(1, len(files) // 60)][:60]:  # the scale suspects use files[:2]
            im = images.load(p, 512)
            if im is not None:
                thumb = composition.thumbnail(im)
                comps.append(composition.from_grid(composition.luma_of(thumb)))
                parts.append(composition.regions(thumb))
                colours.append(composition.colour(thumb))
    if not comps:
        raise SystemExit("no package images found: install the Debian packages named in benchmarks/images.py")
    out = tuple(np.stack(x).astype(np.float32) for x in (comps, parts, colours))
    OUT.mkdir(parents=True, exist_ok=True)
    np.savez(cache, composition=out[0], regions=out[1], colour=out[2])
    return out


def suspects(data: Path) -> list[tuple[str, Image.Image]]:
    import images
    import trace_round2 as r2

    from tests.synthetic import painting, photo_like

    conn = sqlite3.connect(data / "poster.db")
    urls = [
        u
        for (u,) in conn.execute(
            "SELECT url FROM ledger WHERE target = 'x' AND url LIKE 'file:%' ORDER BY seq"
        )
    ]
    conn.close()
    rng = np.random.default_rng(5)
    out = []
    for url in urls:
        with Image.open(url.removeprefix("file://")) as v:
            post = v.convert("RGB")
        out.append(("X twice", r2.x_twice(post, rng)))
        out.append(("crop 20-25 %", r2.lossy(r2.crop_area(post, 0.22, rng), rng)))
        out.append(("rotate + crop", r2.rotate_crop(post, rng)))
        out.append(("caption", r2.caption(post, rng)))
    files = images.sources().get("wallpapers", [])
    for p in files[:2]:
        im = images.load(p, 1600)
        if im is not None:
            out.append(("unrelated photo", r2.encode(im, "JPEG", 85)))
    out.append(("unrelated painting", r2.encode(painting((1200, 900), 77), "JPEG", 85)))
    out.append(("unrelated photo-like", r2.encode(photo_like(1000, 800, 78), "JPEG", 85)))
    return out


def measure(n: int) -> dict[str, Any]:
    """Run in a subprocess per size: times and peak RSS of whole traces."""
    from poster import features, markkey, store
    from poster import trace as trace_mod

    data = build(n)
    cases = suspects(data)
    conn = store.connect(data / "poster.db")
    key = markkey.load(data)
    # every index opened before any trace: the perceptual index and the composition index
    # are loaded lazily by the first trace that needs them, which would put their load into
    # whichever image comes first without a feature match
    t, c = time.perf_counter(), time.process_time()
    tracer = trace_mod.Tracer(conn, key, data, cache=trace_mod.index_cache(data))
    _ = tracer.index
    fidx = tracer.findex
    fidx.composition_search(np.zeros((1, fidx.segments[0].composition.shape[1]), np.float32), k=1)
    opened, opened_cpu = time.perf_counter() - t, time.process_time() - c
    t = time.perf_counter()
    first = None
    rows = []
    for label, im in cases:
        t1 = time.perf_counter()
        c1 = time.process_time()
        res = tracer.trace_image(im)
        wall, cpu = time.perf_counter() - t1, time.process_time() - c1
        if first is None:
            first = time.perf_counter() - t
            continue  # the first trace (first use of the codebook, cv2, faiss...): reported apart
        ok = (
            (res.verdict == trace_mod.EXACT)
            if not label.startswith("unrelated")
            else (res.verdict == trace_mod.NOTHING)
        )
        rows.append((label, wall, cpu, ok, res.verdict))
    # the feature search alone, on the found images (extraction apart)
    fs, fs_cpu = [], []
    for _label, im in cases:
        f = features.extract_query(im)
        t1, c1 = time.perf_counter(), time.process_time()
        tracer.findex.search(f)
        fs.append(time.perf_counter() - t1)
        fs_cpu.append(time.process_time() - c1)
    conn.close()
    disk = sum(f.stat().st_size for f in data.rglob("*") if f.is_file())
    findex = sum(f.stat().st_size for f in (data / features.INDEX_DIR).rglob("*") if f.is_file())
    return {
        "n": n,
        "first": first,
        "open": opened,
        "open_cpu": opened_cpu,
        "median": statistics.median(r[1] for r in rows),
        "median_cpu": statistics.median(r[2] for r in rows),
        "max": max(r[1] for r in rows),
        "found_median": statistics.median(r[1] for r in rows if not r[0].startswith("unrelated")),
        "unrelated_median": statistics.median(r[1] for r in rows if r[0].startswith("unrelated")),
        "feature_search": statistics.median(fs),
        "feature_search_cpu": statistics.median(fs_cpu),
        "feature_search_max": max(fs),
        "right": sum(r[3] for r in rows),
        "cases": len(rows),
        "wrong": [f"{r[0]}: {r[4]}" for r in rows if not r[3]],
        "images": [[r[0], r[1], r[2], r[4]] for r in rows],
        "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "disk_gb": disk / 1e9,
        "features_gb": findex / 1e9,
        "load": os.getloadavg()[0],
    }


def scale_table(sizes: list[int], per_image: bool = False) -> None:
    print("\n== scale: whole traces in a data folder of N generated posts + 2 real artworks ==")
    print(
        "| posts | on disk (features) | open indexes (cpu) | first trace | median per image (cpu) | found / unrelated median | "
        "slowest | feature search | right | peak RSS | load |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for n in sizes:
        t = time.perf_counter()
        env = dict(os.environ, OPENBLAS_NUM_THREADS="1")
        got = subprocess.run(
            [sys.executable, __file__, str(n)], env=env, capture_output=True, text=True, check=False
        )
        if got.returncode != 0:
            print(f"| {n:,} | failed: {got.stderr.strip().splitlines()[-1:]} |")
            continue
        r = json.loads(got.stdout.strip().splitlines()[-1])
        print(
            f"| {n:,} | {r['disk_gb']:.2f} GB ({r['features_gb']:.2f}) | {r['open']:.2f} s ({r['open_cpu']:.2f}) | "
            f"{r['first']:.2f} s | "
            f"{r['median']:.2f} s ({r['median_cpu']:.2f}) | {r['found_median']:.2f} / {r['unrelated_median']:.2f} s | "
            f"{r['max']:.2f} s | {r['feature_search']:.3f} s ({r['feature_search_cpu']:.3f}; max {r['feature_search_max']:.2f}) | {r['right']}/{r['cases']} | {r['rss_mb']:.0f} MB | "
            f"{r['load']:.1f} |",
            flush=True,
        )
        for w in r["wrong"]:
            print(f"  {n:,}: {w}")
        if per_image:
            for label, wall, cpu, verdict in r["images"]:
                print(f"    {label:<22} cpu {cpu:5.2f}  wall {wall:5.2f}  {verdict}")
        print(f"  ({n:,}: {time.perf_counter() - t:.0f} s including building the folder once)", flush=True)
    print(
        "(open indexes: the ledger's perceptual index (from its cache file), the feature index and "
        "the composition index, wall (CPU); first trace: the first image after that; median: Tracer.trace_image "
        "per image after that, wall (process CPU); right: found images named as the exact post, "
        "unrelated ones 'no match'; feature search: FeatureIndex.search alone, median wall (CPU; slowest wall); peak RSS of the "
        "measuring process; load: the machine's 1-minute load average (2 cores, shared))"
    )


if __name__ == "__main__":
    if sys.argv[1] == "build":  # make the data folders now (slow once), measure later
        for size in sys.argv[2:]:
            t = time.perf_counter()
            build(int(size))
            print(f"{int(size):,}: built in {time.perf_counter() - t:.0f}s", flush=True)
    else:
        print(json.dumps(measure(int(sys.argv[1]))))
