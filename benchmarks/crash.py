"""Crash benchmark: the long version of tests/test_crash.py.

Runs several rounds; each round starts a slow stand-in platform on 127.0.0.1, drops artworks
for two targets, runs the real `poster run` daemon and kills it with SIGKILL at random
moments, restarts it, and finally lets it finish and stop on SIGTERM. Then it checks every
promise and prints one row per round:

  kills       SIGKILLs of the daemon
  accepted    posts the server accepted          posted   jobs posted with a ledger row
  dup         (target, caption) accepted twice   unacc.   accepted posts not in the ledger
                                                          and not `uncertain`
  uncertain   jobs left for `poster confirm`     resolved interrupted posts settled by lookup
  lost        files neither posted nor reported  orig.bad originals missing or changed

    .venv/bin/python benchmarks/crash.py                  # 4 rounds x 25 kills = 100 kills
    .venv/bin/python benchmarks/crash.py --rounds 6 --kills 30 --files 16
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.servers.slow import Figures, campaign  # noqa: E402

COLUMNS = [
    ("round", 5),
    ("kills", 5),
    ("files", 5),
    ("jobs", 4),
    ("accepted", 8),
    ("posted", 6),
    ("dup", 3),
    ("unacc.", 6),
    ("uncertain", 9),
    ("resolved", 8),
    ("failed", 6),
    ("lost", 4),
    ("orig.bad", 8),
    ("ledger", 6),
    ("exit", 5),
    ("s", 6),
]


def cells(name: str, f: Figures) -> list[str]:
    return [
        name,
        str(f.kills),
        str(f.files),
        str(f.jobs),
        str(f.accepted),
        str(f.posted),
        str(f.duplicates),
        str(f.unaccounted),
        str(f.uncertain),
        str(f.resolved),
        str(f.failed),
        str(f.lost),
        str(f.originals_bad),
        "ok" if f.ledger_ok else "BAD",
        "ok" if f.clean_exit else "BAD",
        f"{f.seconds:.0f}",
    ]


def line(values: list[str]) -> str:
    return "  ".join(v.rjust(w) for v, (_, w) in zip(values, COLUMNS, strict=True))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--kills", type=int, default=25, help="SIGKILLs per round")
    ap.add_argument("--files", type=int, default=12, help="artworks per round (two jobs each)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument(
        "--no-lookup",
        action="store_true",
        help="the platform cannot look posts up: interrupted posts stay uncertain for the user",
    )
    ap.add_argument("--keep", type=Path, help="keep each round's data folder under this directory")
    args = ap.parse_args()

    print(line([c for c, _ in COLUMNS]))
    total = Figures(ledger_ok=True, clean_exit=True)
    problems: list[str] = []
    for r in range(args.rounds):
        base = args.keep or Path(tempfile.mkdtemp(prefix="poster-crash-"))
        work = base / f"round{r}"
        work.mkdir(parents=True, exist_ok=True)
        f = campaign(work, kills=args.kills, files=args.files, seed=args.seed + r, lookup=not args.no_lookup)
        print(line(cells(str(r + 1), f)), flush=True)
        problems += [f"round {r + 1}: {p}" for p in f.problems]
        for key in (
            "kills",
            "files",
            "jobs",
            "accepted",
            "posted",
            "duplicates",
            "unaccounted",
            "uncertain",
            "resolved",
            "failed",
            "lost",
            "originals_bad",
            "seconds",
        ):
            setattr(total, key, getattr(total, key) + getattr(f, key))
        total.ledger_ok &= f.ledger_ok
        total.clean_exit &= f.clean_exit
    print(line(cells("all", total)))
    for p in problems:
        print("PROBLEM:", p)
    bad = (
        total.duplicates
        or total.unaccounted
        or total.lost
        or total.originals_bad
        or not total.ledger_ok
        or not total.clean_exit
    )
    ok = "ok: no duplicates, nothing lost, every accepted post accounted for"
    print("\nresult:", "FAIL" if bad else ok)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
