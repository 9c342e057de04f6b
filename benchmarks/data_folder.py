"""What keeping the data folder safe costs, at realistic ledger sizes.

Builds a database with N posted jobs (ledger rows with fingerprints and thumbnails of the
real sizes, jobs, events, variants), then times, side by side in one run:

  open ro     opening read-only (what status, trace, ledger and doctor do now)
  quick       PRAGMA quick_check (status, trace and run do it before anything else)
  full        PRAGMA integrity_check (ledger verify, ledger head, doctor, backup)
  status      reading every job as `poster status` does
  backup      SQLite's online backup API into a new file (what `poster backup` copies)

    .venv/bin/python benchmarks/data_folder.py                 # 10,000 and 100,000 rows
    .venv/bin/python benchmarks/data_folder.py --rows 1000 20000
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from poster import jobs, ledger, store  # noqa: E402


def build(db: Path, n: int) -> None:
    conn = store.connect(db)
    rnd = os.urandom
    render = ledger.canonical({"policy": {"name": "light"}, "steps": [{"use": "noise", "seed": 1}] * 4})
    with store.transaction(conn):
        conn.execute(
            "INSERT INTO artworks (id, content_key, name, meta, created_at)"
            " VALUES (1, 'k', 'a.png', '{}', 't')"
        )
        conn.execute("INSERT INTO originals VALUES (1, 0, 'a.png', ?, 'archive/aa/a.png')", ("0" * 64,))
        for i in range(1, n + 1):
            conn.execute(
                "INSERT INTO jobs (id, artwork_id, target, state, scheduled_at, post_key, created_at,"
                " updated_at) VALUES (?, 1, ?, 'posted', '2026-01-01T00:00:00+00:00', ?, 't', 't')",
                (i, f"t{i}", f"key{i}"),
            )
            for state in ("pending", "rendering", "ready", "posting", "posted"):
                conn.execute("INSERT INTO events (job_id, at, state) VALUES (?, 't', ?)", (i, state))
            conn.execute("INSERT INTO marks VALUES (?, ?, 0, 't')", (i, i))
            conn.execute(
                "INSERT INTO variants VALUES (?, 0, ?, ?, ?, 'JPEG', 2048, 1536, 900000, ?)",
                (i, i, f"variants/{i}/00.jpg", "0" * 64, render),
            )
            ledger.append(
                conn,
                ledger.Entry(
                    mark_id=i,
                    job_id=i,
                    idx=0,
                    target=f"t{i}",
                    adapter="local",
                    url=f"file:///p/{i}.jpg",
                    media_url=None,
                    remote_id=f"r{i}",
                    posted_at="2026-01-01T00:00:00+00:00",
                    original_sha256="0" * 64,
                    variant_sha256="1" * 64,
                    render=render,
                    variant_fp=rnd(6 * 32 + 64),
                    original_fp=rnd(6 * 32 + 64),
                    variant_thumb=rnd(1024),
                ),
            )
    conn.close()


def timed(fn: object, repeat: int = 3) -> float:
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn()  # type: ignore[operator]
        best = min(best, time.perf_counter() - t)
    return best


def measure(n: int, work: Path) -> dict[str, object]:
    db = work / f"poster-{n}.db"
    t = time.perf_counter()
    build(db, n)
    built = time.perf_counter() - t

    def open_ro() -> None:
        store.connect(db, readonly=True).close()

    def check(quick: bool) -> None:
        with store.opened(db, readonly=True) as conn:
            assert store.integrity_problem(conn, quick=quick) is None

    def status() -> None:
        with store.opened(db, readonly=True) as conn:
            jobs.all_jobs(conn)

    def backup() -> None:
        dest = work / "copy.db"
        dest.unlink(missing_ok=True)
        with store.opened(db, readonly=True) as src:
            dst = sqlite3.connect(dest)
            src.backup(dst)
            dst.close()

    return {
        "rows": n,
        "MB": round(db.stat().st_size / 1e6, 1),
        "build s": round(built, 1),
        "open ro ms": round(timed(open_ro) * 1000, 1),
        "quick ms": round(timed(lambda: check(True)) * 1000),
        "full ms": round(timed(lambda: check(False)) * 1000),
        "status ms": round(timed(status) * 1000),
        "backup ms": round(timed(backup) * 1000),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, nargs="+", default=[10_000, 100_000])
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        results = [measure(n, Path(tmp)) for n in args.rows]
    if args.json:
        print(json.dumps(results, indent=2))
        return
    cols = list(results[0])
    print("  ".join(f"{c:>10}" for c in cols))
    for r in results:
        print("  ".join(f"{r[c]!s:>10}" for c in cols))


if __name__ == "__main__":
    main()
