"""Peak memory of the commands that print every row, before and after, in one run.

    nice -n 10 .venv/bin/python benchmarks/memory.py [--rows 100000 1000000] [--before main]
                                                     [--before-max 100000]

Builds a data folder with N posted jobs (one artwork each) and N ledger rows of the real
sizes (fingerprints 256 bytes, thumbnail 1 KB: about 4 KB of JSON a row), then runs each
command as a real `python -m poster` process with its output going to /dev/null, and reports
its peak resident set size (ru_maxrss) and wall time:

  ledger export --json / --csv, status --json, status (human: the newest page)

`--before REF` exports the `poster` package of git REF (default main) and runs the same
commands with it, side by side; only up to `--before-max` rows (the old code holds every row
in memory: 1.7 GB at 100,000 rows, so a million would need some 17 GB). Target: ≤ 150 MB
at 1,000,000 rows.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from revision import export  # benchmarks/, the script's own folder

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

COMMANDS = {
    "ledger export --json": ["ledger", "export", "--json"],
    "ledger export --csv": ["ledger", "export", "--csv"],
    "status --json": ["status", "--json"],
    "status": ["status"],
}


def build(home: Path, n: int) -> Path:
    from poster import cli, config, ledger, store

    cfg_path = cli.init_home(home)
    text = re.sub(r"(?m)^tsa_urls = .*$", "tsa_urls = []", cfg_path.read_text(encoding="utf-8"))
    cfg_path.write_text(text, encoding="utf-8")
    cfg = config.load(cfg_path)
    render = ledger.canonical({"policy": {"name": "light"}, "steps": [{"use": "noise", "seed": 1}] * 4})
    at = "2026-01-01T00:00:00+00:00"
    conn = store.connect(cfg.db_path)
    conn.execute("PRAGMA synchronous=OFF")  # building only
    chunk = 20_000
    for start in range(1, n + 1, chunk):
        ids = range(start, min(n, start + chunk - 1) + 1)
        with store.transaction(conn):
            conn.executemany(
                "INSERT INTO artworks (id, content_key, name, meta, created_at) VALUES (?, ?, ?, '{}', ?)",
                ((i, f"k{i}", f"art{i}.png", at) for i in ids),
            )
            conn.executemany(
                "INSERT INTO jobs (id, artwork_id, target, state, scheduled_at, post_key, url, created_at,"
                " updated_at) VALUES (?, ?, 'x', 'posted', ?, ?, ?, ?, ?)",
                ((i, i, at, f"key{i}", f"file:///p/{i}.jpg", at, at) for i in ids),
            )
            conn.executemany(
                "INSERT INTO ledger (seq, mark_id, job_id, idx, target, adapter, url, media_url, remote_id,"
                " posted_at, original_sha256, variant_sha256, render, variant_fp, original_fp, variant_thumb,"
                " prev_hash, row_hash)"
                " VALUES (?, ?, ?, 0, 'x', 'local', ?, NULL, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    (
                        i,
                        i,
                        i,
                        f"file:///p/{i}.jpg",
                        f"r{i}",
                        at,
                        "0" * 64,
                        "1" * 64,
                        render,
                        os.urandom(256),
                        os.urandom(256),
                        os.urandom(1024),
                        "2" * 64,
                        "3" * 64,
                    )
                    for i in ids
                ),
            )
    conn.close()
    return cfg_path


def run(root: Path, cfg_path: Path, args: list[str]) -> tuple[float, float, float]:
    """(peak RSS in MB, wall seconds, CPU seconds) of one real `python -m poster` process."""
    env = {**os.environ, "PYTHONPATH": str(root)}
    t = time.perf_counter()
    with open(os.devnull, "wb") as null:
        proc = subprocess.Popen(
            [sys.executable, "-m", "poster", "--config", str(cfg_path), *args],
            stdout=null,
            stderr=subprocess.PIPE,
            env=env,
            cwd=cfg_path.parent,  # not this tree: `-m` would put it first on the path
        )
        assert proc.stderr is not None
        err = proc.stderr.read()
        _pid, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - t
    if proc.returncode != 0:
        raise SystemExit(f"{args}: exit {proc.returncode}: {err.decode(errors='replace')[-2000:]}")
    return usage.ru_maxrss / 1024, wall, usage.ru_utime + usage.ru_stime


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, nargs="+", default=[100_000, 1_000_000])
    ap.add_argument("--before", default="main", help="git ref to compare with ('' for none)")
    ap.add_argument("--before-max", type=int, default=100_000)
    ap.add_argument("--only", nargs="+", choices=list(COMMANDS), help="run only these commands")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        old = export(a.before, base / "before") if a.before else None
        print(
            f"{'rows':>8}  {'command':<22} {'code':<14} {'peak MB':>8} {'wall s':>7} {'cpu s':>7}  load",
            flush=True,
        )
        for n in a.rows:
            t = time.perf_counter()
            cfg_path = build(base / f"home-{n}", n)
            print(f"# {n} rows built in {time.perf_counter() - t:.0f} s", flush=True)
            codes = [("after", REPO)]
            if old is not None and n <= a.before_max:
                codes.insert(0, (f"before ({a.before})", old))
            for name, args in COMMANDS.items():
                if a.only and name not in a.only:
                    continue
                for label, root in codes:
                    mb, wall, cpu = run(root, cfg_path, args)
                    load = os.getloadavg()[0]  # the machine is shared: how busy it was
                    print(
                        f"{n:>8}  {name:<22} {label:<14} {mb:8.0f} {wall:7.1f} {cpu:7.1f}  {load:4.1f}",
                        flush=True,
                    )
            for p in sorted(cfg_path.parent.rglob("poster.db*")):
                p.unlink()


if __name__ == "__main__":
    main()
