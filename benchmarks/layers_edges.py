"""The visible layers on registered copies, with and without the edges of the original.

    nice -n 10 .venv/bin/python benchmarks/layers_edges.py [--per 3] [--seed 7] [--levels inf,8,4,2]

Uses the attack table's posted home (benchmarks/out/attack-home, made by `benchmarks/trace.py
--only attacks`): for every posted artwork, random crops (20-100 % of the area, rescaled and
re-encoded as `trace_round2.lossy` does) of the unposted original and of its X and pixiv
posts are registered against the original directly (`features.match_images`), and
`layers.compare` is run with `layers.EDGE_LEVEL` set to each level (inf: edges counted, as
before section 12 of TRACE_RESULTS.md). Printed per level and source: copies registered,
the right post named by the layers, a wrong post named (for the unposted original any post
is wrong).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

import trace_round2 as r2  # noqa: E402

from poster import features, layers, markkey, store, trace  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--per", type=int, default=3, help="copies per source and artwork")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--levels", default="inf,8,4,2", help="EDGE_LEVEL values, comma-separated")
    args = ap.parse_args()
    data = r2.HOME / "home" / "queue"
    if not (data / "poster.db").is_file():
        ap.error(f"{data}: no posted home; run benchmarks/trace.py --only attacks first")
    levels = [float(v) for v in args.levels.split(",")]
    conn = store.connect(data / "poster.db")
    tracer = trace.Tracer(conn, markkey.load(data), data)
    keys = [k for (k,) in conn.execute("SELECT DISTINCT original_sha256 FROM ledger ORDER BY seq")]
    counts = {lv: {src: [0, 0, 0] for src in ("unposted", "x", "pixiv")} for lv in levels}
    rng = np.random.default_rng(args.seed)
    for key in keys:
        original, rows = tracer._original(key), tracer._rows_of(key)
        if original is None:
            continue
        sources: list[tuple[str, str | None, Image.Image]] = [("unposted", None, original)]
        for r in rows:
            if r["target"] in ("x", "pixiv"):
                with Image.open(r["url"].removeprefix("file://")) as v:
                    sources.append((r["target"], r["id"], v.convert("RGB")))
        for src, post, im in sources:
            for _ in range(args.per):
                copy = r2.lossy(r2.crop_area(im, float(rng.uniform(0.2, 1.0)), rng), rng)
                hit = features.match_images(original, copy)
                if hit is None:
                    continue
                art = trace.Artwork(
                    key, None, "features", 1.0, hit.mirrored, hit.homography, hit.inliers, hit.pairs
                )
                for lv in levels:
                    layers.EDGE_LEVEL = lv
                    got = tracer.layers(copy, art, rows)
                    c = counts[lv][src]
                    c[0] += 1
                    if got is not None and got["verdict"] == "exact post":
                        c[1 if got["post"] == post else 2] += 1
    conn.close()
    print(f"== layers on registered copies: {len(keys)} artworks, {args.per} per source, seed {args.seed} ==")
    print("| EDGE_LEVEL | source | registered | right post named | wrong post named |")
    print("| --- | --- | --- | --- | --- |")
    for lv in levels:
        for src, (n, right, wrong) in counts[lv].items():
            print(f"| {lv:g} | {src} | {n} | {right} | {wrong} |")


if __name__ == "__main__":
    main()
