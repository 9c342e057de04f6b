"""Outbox intake speed: N new artworks taken in by one scan, before and after, in one run.

    nice -n 10 .venv/bin/python benchmarks/intake.py [--files 10000] [--before main]

Each artwork is a small distinct PNG (256×256, the smallest poster takes; under a kilobyte),
so the figure is intake's own cost (archive copy, database rows, jobs for the three default
targets, removal from the outbox), not decoding big images. `--before REF` exports the
`poster` package of git REF (default main) and runs the same scan with it in a child
process, side by side with this tree's; `--before ''` runs this tree only. Each child checks
that every file was queued with its archive copy and its three jobs. Target: 10,000 files ≤ 20 s.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from revision import export  # benchmarks/, the script's own folder

REPO = Path(__file__).resolve().parents[1]


def child(n: int, base: Path) -> None:
    import random

    from PIL import Image

    from poster import cli, config, outbox, store

    cfg_path = cli.init_home(base / "home")
    text = re.sub(r"(?m)^tsa_urls = .*$", "tsa_urls = []", cfg_path.read_text(encoding="utf-8"))
    cfg_path.write_text(text, encoding="utf-8")
    cfg = config.load(cfg_path)
    rnd = random.Random(1)
    old = time.time() - 3600
    for i in range(n):
        im = Image.new("RGB", (256, 256), (rnd.randrange(256), rnd.randrange(256), rnd.randrange(256)))
        im.putpixel((i % 256, i // 256 % 256), (i % 256, i // 256 % 256, 7))  # every file distinct
        path = cfg.outbox / f"art{i:05d}.png"
        im.save(path)
        os.utime(path, (old, old))
    with store.opened(cfg.db_path) as conn:
        t = time.perf_counter()
        cpu = time.process_time()
        results = outbox.scan(conn, cfg)
        wall = time.perf_counter() - t
        cpu = time.process_time() - cpu
        artworks = conn.execute("SELECT count(*) FROM artworks").fetchone()[0]
        job_rows = conn.execute("SELECT count(*) FROM jobs").fetchone()[0]
    queued = sum(r.outcome == "queued" for r in results)
    archived = sum(1 for p in cfg.archive.rglob("*.png"))
    left = sum(1 for _p in cfg.outbox.iterdir())
    print(
        json.dumps(
            {
                "wall": wall,
                "cpu": cpu,
                "queued": queued,
                "artworks": artworks,
                "jobs": job_rows,
                "archived": archived,
                "left": left,
                "outcomes": sorted({f"{r.outcome}: {r.reason}" for r in results})[:3],
                "code": str(Path(outbox.__file__).parent.parent),
            }
        )
    )


def measure(root: Path, n: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory(dir=os.environ.get("TMPDIR")) as tmp:
        proc = subprocess.run(
            [sys.executable, __file__, "--child", "--files", str(n), "--dir", tmp],
            env={**os.environ, "PYTHONPATH": str(root)},
            capture_output=True,
            text=True,
            check=False,
        )
    if proc.returncode != 0:
        raise SystemExit(proc.stderr[-3000:])
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    assert Path(got["code"]) == root.resolve(), (got["code"], root)  # the code meant was run
    ok = got["queued"] == got["artworks"] == got["archived"] == n and got["jobs"] == 3 * n
    got["ok"] = ok and got["left"] == 0
    return got


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--files", type=int, nargs="+", default=[10_000])
    ap.add_argument("--before", default="main", help="git ref to compare with ('' for none)")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--dir", type=Path, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        child(a.files[0], a.dir)
        return
    with tempfile.TemporaryDirectory() as tmp:
        codes = [("after", REPO)]
        if a.before:
            codes.insert(0, (f"before ({a.before})", export(a.before, Path(tmp) / "before")))
        print(
            f"{'files':>6}  {'code':<14} {'wall s':>8} {'cpu s':>7} {'ms/file':>8} {'files/s':>8}"
            f"  load  all queued"
        )
        for n in a.files:
            for label, root in codes:
                r = measure(root, n)
                print(
                    f"{n:>6}  {label:<14} {r['wall']:8.2f} {r['cpu']:7.2f} {1000 * r['wall'] / n:8.2f}"
                    f" {n / r['wall']:8.0f}  {os.getloadavg()[0]:4.1f}"  # the machine is shared
                    f"  {'yes' if r['ok'] else 'NO: ' + json.dumps(r)}",
                    flush=True,
                )


if __name__ == "__main__":
    main()
