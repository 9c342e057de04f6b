"""Train the visual-word codebook poster/data/vocabulary.npz (poster.features).

    .venv/bin/python benchmarks/vocabulary.py [--images 600] [--out poster/data/vocabulary.npz]

RootSIFT descriptors of images unrelated to ../shared/corpus (every other image of the
sources in benchmarks/images.py, plus procedural art), then k-means (faiss) with 256
centroids on each half of the descriptor: a product quantiser of 65,536 words. Deterministic
for a given set of installed packages (seeded sampling and k-means).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

import images  # noqa: E402

from poster import features  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=int, default=600)
    ap.add_argument("--out", type=Path, default=REPO / "poster" / "data" / "vocabulary.npz")
    args = ap.parse_args()
    import faiss

    t0 = time.perf_counter()
    rng = np.random.default_rng(1)
    pool = []
    for name, files in images.sources().items():
        train = files[::2]  # the other half stays unseen (calibration uses every image)
        pool += [p for p in train]
        print(f"{name}: {len(train)} of {len(files)} files eligible")
    pick = rng.choice(len(pool), size=min(args.images, len(pool)), replace=False)
    descs = []
    for i in sorted(pick):
        im = images.load(pool[i])
        if im is None:
            continue
        descs.append(features.extract(im).desc)
    for _, im in images.procedural(60, seed=77):
        descs.append(features.extract(im).desc)
    x = np.concatenate(descs).astype(np.float32)
    print(f"{len(x):,} descriptors from {len(descs)} images in {time.perf_counter() - t0:.0f}s")
    cents = []
    for half in range(2):
        part = np.ascontiguousarray(x[:, half * features.SUB : (half + 1) * features.SUB])
        km = faiss.Kmeans(features.SUB, features.CENTROIDS, niter=25, seed=half + 1, verbose=False)
        km.train(part)
        cents.append(km.centroids)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(args.out, centroids=np.stack(cents).astype(np.float32))
    print(f"wrote {args.out} ({args.out.stat().st_size:,} bytes) in {time.perf_counter() - t0:.0f}s")


if __name__ == "__main__":
    main()
