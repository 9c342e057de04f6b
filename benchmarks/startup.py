"""Start-up time of `poster --help` and `poster status`, before and after, in one run.

    .venv/bin/python benchmarks/startup.py [--before main] [--runs 7]

`--before REF` exports the `poster` package of git REF (default main) into a temporary folder
and runs it with the same interpreter, side by side with this tree's: the best of --runs runs
of each (wall and CPU seconds of the whole process), and which heavy libraries it imported
(from `python -X importtime`). `status` runs against a fresh `poster init` home with one job.
Target: ≤ 0.3 s. `status` reads the settings it needs from the snapshot of the config's last
full check (poster.configsnap) when the file is unchanged; "config just edited" changes the
file's bytes before every run, so the config is loaded and checked in full (pydantic).
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from revision import export  # benchmarks/, the script's own folder

REPO = Path(__file__).resolve().parents[1]
HEAVY = (
    "PIL",
    "numpy",
    "cv2",
    "faiss",
    "rich",
    "apprise",
    "pydantic",
    "cryptography",
    "requests",
    "starlette",
)


def run(root: Path, args: list[str], cwd: Path) -> tuple[float, float]:
    env = {**os.environ, "PYTHONPATH": str(root)}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    subprocess.run([sys.executable, "-m", "poster", *args], cwd=cwd, env=env, check=True, capture_output=True)
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def heavy(root: Path, args: list[str], cwd: Path) -> list[str]:
    env = {**os.environ, "PYTHONPATH": str(root)}
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "poster", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
    )
    names = {m.group(1) for m in re.finditer(r"\|\s+([A-Za-z_0-9]+)(?:\.[\w.]+)?\s*$", proc.stderr, re.M)}
    return [h for h in HEAVY if h in names]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--before", default="main", help="git ref to compare with (default main)")
    ap.add_argument("--runs", type=int, default=7)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        (base / "before").mkdir()
        old = export(a.before, base / "before")
        home = base / "home"
        # the config snapshot `status` reads (poster.configsnap) goes to a cache folder of its own
        os.environ["XDG_CACHE_HOME"] = str(base / "cache")
        sys.path.insert(0, str(REPO))
        from poster import cli, config, outbox, store
        from tests.synthetic import painting

        cfg_path = cli.init_home(home)
        text = re.sub(r"(?m)^tsa_urls = .*$", "tsa_urls = []", cfg_path.read_text(encoding="utf-8"))
        cfg_path.write_text(text, encoding="utf-8")
        cfg = config.load(cfg_path)
        painting((640, 480), 1).save(cfg.outbox / "a.png")
        os.utime(cfg.outbox / "a.png", (time.time() - 3600,) * 2)
        with store.opened(cfg.db_path) as conn:
            outbox.scan(conn, cfg)
        status = ["--config", str(cfg_path), "status"]

        def edit() -> None:  # a change of the file's bytes: the config is checked in full again
            with cfg_path.open("a", encoding="utf-8") as fh:
                fh.write("\n")

        commands: dict[str, tuple[list[str], Callable[[], None] | None]] = {
            "--help": (["--help"], None),
            "status": (status, None),
            "status, config just edited": (status, edit),
        }
        print(f"best of {a.runs} runs; seconds for the whole process (python start-up included)")
        print(f"{'command':<27} {'code':<14} {'wall':>6} {'cpu':>6}  heavy libraries imported")
        for name, (args, prepare) in commands.items():
            for label, root in ((f"before ({a.before})", old), ("after", REPO)):
                times = []
                for _ in range(a.runs):
                    if prepare:
                        prepare()
                    times.append(run(root, args, home))
                wall = min(t[0] for t in times)
                cpu = min(t[1] for t in times)
                if prepare:
                    prepare()
                libs = ", ".join(heavy(root, args, home)) or "-"
                print(f"{name:<27} {label:<14} {wall:6.3f} {cpu:6.3f}  {libs}")
        floor = []
        for _ in range(a.runs):
            t = time.perf_counter()
            subprocess.run([sys.executable, "-c", "pass"], check=True)
            floor.append(time.perf_counter() - t)
        print(f"{'(python)':<27} {'-c pass':<14} {min(floor):6.3f}")


if __name__ == "__main__":
    main()
