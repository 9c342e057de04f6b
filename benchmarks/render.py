"""Render speed and memory: the full heavy pipeline against a plain Pillow resize + JPEG save.

    .venv/bin/python benchmarks/render.py [--runs 3] [--image PATH] [--no-memory]

Speed: a 4096×4096 JPEG (made from a corpus painting) is
  baseline: decoded, resized to a 2048 long edge (Lanczos), saved as JPEG 90 (plain Pillow);
  heavy:    decoded and normalised (imaging.load), every heavy step (fit 2048, noise,
            watermark, signature, metadata), hidden ID, JPEG 90, then the read-back checks
            (as encoded + X's re-encodings 4096/2048/1200 at JPEG 85 + the policy's own).
Target: heavy ≤ 6× baseline. Median of --runs runs each.

Memory: peak resident set size (ru_maxrss) of a fresh child process rendering an 8000×8000
input with heavy and with light (light keeps full size, the worst case). Target ≤ 1.5 GB.
"""

from __future__ import annotations

import argparse
import io
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

from PIL import Image

REPO = Path(__file__).resolve().parents[1]
CORPUS = REPO.parent / "shared" / "corpus"
DEFAULT_IMAGE = CORPUS / "revoy_forest_painting.jpg"
KEY = bytes(range(32))


def make_input(path: Path, side: int) -> bytes:
    with Image.open(path) as im:
        big = im.convert("RGB").resize((side, side), Image.Resampling.BICUBIC)
    buf = io.BytesIO()
    big.save(buf, "JPEG", quality=95)
    return buf.getvalue()


def baseline(data: bytes) -> bytes:
    im = Image.open(io.BytesIO(data))
    im.load()
    r = 2048 / max(im.size)
    im = im.resize((round(im.width * r), round(im.height * r)), Image.Resampling.LANCZOS)
    out = io.BytesIO()
    im.save(out, "JPEG", quality=90)
    return out.getvalue()


def pipeline(data: bytes, policy_name: str, adapter: str, seed: int = 7) -> dict[str, object]:
    from poster import imaging, policies
    from poster.config import parse
    from poster.platforms import adapter_class
    from poster.render import render

    cfg = parse(
        REPO / "benchmarks" / "config.toml",
        {"artist": "Benchmark Artist", "targets": {"t": {"adapter": "local", "policy": policy_name}}},
    )
    image = imaging.load(data, "bench", max_pixels=100_000_000)
    r = render(
        image,
        source_format="JPEG",
        policy=policies.build(cfg, policy_name),
        caps=adapter_class(adapter).capabilities,
        key=KEY,
        mark_id=0xB0B,
        artist=cfg.artist,
        seed=seed,
    )
    return {"bytes": len(r.data), "size": f"{r.width}x{r.height}", "strength": r.info["mark"]["strength"]}


def timed(fn, *args) -> tuple[float, object]:  # type: ignore[no-untyped-def]
    t = time.perf_counter()
    out = fn(*args)
    return time.perf_counter() - t, out


def child(policy_name: str, adapter: str, side: int, image: Path) -> None:
    """Runs in a fresh process so ru_maxrss is this render's peak alone."""
    data = make_input(image, side)
    del_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    error = None
    try:
        t, info = timed(pipeline, data, policy_name, adapter)
    except Exception as exc:  # report, don't hide: an untraceable render is a result too
        t, info, error = 0.0, {}, f"{type(exc).__name__}: {exc}"
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    res = {"seconds": t, "peak_mb": peak / 1024, "input_mb": del_before / 1024, "info": info, "error": error}
    print(json.dumps(res))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--image", type=Path, default=DEFAULT_IMAGE)
    ap.add_argument("--no-memory", action="store_true")
    ap.add_argument("--child", nargs=3, metavar=("POLICY", "ADAPTER", "SIDE"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if not args.image.is_file():
        ap.error(
            f"{args.image}: no such image (the default is in the test-art corpus beside this "
            "repository); pass --image PATH, e.g. tests/data/revoy_forest_painting.jpg"
        )
    if args.child:
        child(args.child[0], args.child[1], int(args.child[2]), args.image)
        return

    data = make_input(args.image, 4096)
    base_t, heavy_t, info = [], [], {}
    for _ in range(args.runs):
        base_t.append(timed(baseline, data)[0])
        t, info = timed(pipeline, data, "heavy", "x")
        heavy_t.append(t)
    b, h = statistics.median(base_t), statistics.median(heavy_t)
    mb = len(data) / 1e6
    print(f"input: {args.image.name} upscaled to 4096x4096 JPEG 95 ({mb:.1f} MB), {args.runs} runs")
    print(f"{'pipeline':<44}{'median s':>10}{'ratio':>8}")
    print(f"{'baseline: decode, resize 2048, JPEG 90':<44}{b:>10.3f}{1.0:>8.2f}")
    print(f"{'heavy (X caps): all steps, mark, checks':<44}{h:>10.3f}{h / b:>8.2f}   {info}")
    print(f"target: ratio <= 6.0 -> {'OK' if h / b <= 6.0 else 'OVER'}")
    if args.no_memory:
        return
    print()
    print(f"{'8000x8000 input, fresh process':<44}{'peak MB':>10}{'s':>8}")
    for policy_name, adapter in (("heavy", "x"), ("light", "local")):
        out = subprocess.run(
            [sys.executable, __file__, "--image", str(args.image), "--child", policy_name, adapter, "8000"],
            capture_output=True,
            text=True,
            check=True,
        )
        res = json.loads(out.stdout.strip().splitlines()[-1])
        label = f"{policy_name} ({adapter} caps)"
        note = res["error"] or res["info"]
        print(f"{label:<44}{res['peak_mb']:>10.0f}{res['seconds']:>8.2f}   {note}")
    print("target: peak <= 1536 MB (includes the interpreter, numpy and the 8000² test input itself)")


if __name__ == "__main__":
    main()
