"""Low-texture art and SIFT's contrast threshold: which attacked copies local features can match.

    nice -n 10 .venv/bin/python benchmarks/low_texture.py [--seeds 2]

For each artwork (the corpus's pale flat-colour castles background, and the attack table's
synthetic-0: circles on gradients), a heavy X post and a light pixiv post are rendered (the
real policies), then every attack of the attack table's ATTACK_SET but the rework is applied
`--seeds` times. Each copy is matched directly against the original (`features.match_features`,
the floor lowered to 4 so near misses show) with both sides described at a given pair of
contrast thresholds (OpenCV's default 0.04, and lower), at most PAIR_KEEP keypoints spread as
`features.extract` spreads them. Printed per artwork: the keypoints of the original at each
threshold, and per threshold pair the copies reaching MIN_INLIERS, with every copy's inliers.

It shows what the extraction's CONTRAST and WEAK_FILL rest on (benchmarks/TRACE_RESULTS.md,
section 11): at the default the castles have 4 keypoints and no copy can be matched; both sides
need the faint ones. Needs ../shared/corpus. A few minutes on two cores.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

import trace_round2 as r2  # noqa: E402

from poster import features  # noqa: E402

PAIRS = ((0.04, 0.04), (0.02, 0.01), (0.01, 0.01), (0.01, 0.04))  # (original, copy)


def posted(image: Image.Image, policy: str, adapter: str) -> Image.Image:
    """The copy `adapter` would post under `policy`, decoded."""
    import io

    import render as bench_render  # benchmarks/render.py

    buf = io.BytesIO()
    image.save(buf, "PNG")
    r = bench_render.render_copy(buf.getvalue(), policy, adapter, source_format="PNG")
    return Image.open(io.BytesIO(r.data)).convert("RGB")


def described(image: Image.Image, contrast: float) -> features.Features:
    """`features.extract` at one contrast threshold, every keypoint a candidate (no strong-first
    order): what a single threshold gives."""
    cv2 = features._cv2()
    g, scale = features.grey(image)
    h, w = g.shape
    sift = cv2.SIFT_create(contrastThreshold=contrast)
    kps = sift.detect(g, None)
    if not kps:
        return features.Features(np.empty((0, 2), np.float32), np.empty((0, 128), np.float32), (w, h), scale)
    xy = np.array([k.pt for k in kps], np.float32)
    resp = np.array([k.response for k in kps], np.float32)
    chosen = features._spread(xy, resp, (w, h), features.PAIR_KEEP)
    kps, desc = sift.compute(g, [kps[int(i)] for i in chosen])
    d = desc.astype(np.float32)
    d /= d.sum(axis=1, keepdims=True) + 1e-7
    return features.Features(np.array([k.pt for k in kps], np.float32), np.sqrt(d), (w, h), scale)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=2, help="attacked copies per attack and post")
    args = ap.parse_args()
    if not r2.CORPUS.is_dir():
        ap.error(f"{r2.CORPUS}: the test-art corpus is not beside this repository")
    with Image.open(r2.CORPUS / "kenney_flat_castles_bg.png") as src:
        art = {"kenney_flat_castles_bg.png": src.convert("RGB"), "synthetic-0": r2._synthetic_art(0)}
    attacks = {k: fn for k, fn in r2.ATTACK_SET.items() if fn is not r2.rework}
    for name, original in art.items():
        counts = {c: len(described(original, c)) for c in sorted({p[0] for p in PAIRS} | {0.005})}
        print(f"\n== {name}: keypoints of the original by contrast threshold: {counts} ==", flush=True)
        copies: dict[str, list[tuple[str, Image.Image]]] = {}
        for label, policy, adapter in (("X (heavy)", "heavy", "x"), ("pixiv (light)", "light", "pixiv")):
            post = posted(original, policy, adapter)
            copies[label] = [
                (attack, fn(post, np.random.default_rng(seed)))
                for attack, fn in attacks.items()
                for seed in range(args.seeds)
            ]
        print(
            "| original / copy contrast | "
            + " | ".join(f"{k}: ≥ {features.MIN_INLIERS} inliers" for k in copies)
            + " |"
        )
        print("| --- | " + " | ".join("---" for _ in copies) + " |")
        detail: dict[Any, list[int]] = {}
        for oc, cc in PAIRS:
            fo = described(original, oc)
            cells = []
            for label, items in copies.items():
                got = []
                for _attack, im in items:
                    hit = features.match_features(fo, described(im, cc), min_inliers=4)
                    got.append(hit.inliers if hit else 0)
                detail[(oc, cc, label)] = got
                cells.append(f"{sum(g >= features.MIN_INLIERS for g in got)} / {len(got)}")
            print(f"| {oc} / {cc} | " + " | ".join(cells) + " |", flush=True)
        print("inliers per copy (attacks in ATTACK_SET order, each --seeds times):")
        for (oc, cc, label), got in detail.items():
            print(f"  {oc} / {cc} {label}: {got}")


if __name__ == "__main__":
    main()
