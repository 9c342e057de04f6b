"""`poster --help` wall time by language, measured side by side in one run.

English needs no catalog; Japanese reads poster/locale/ja/LC_MESSAGES/poster.mo with plain
gettext (an installed wheel always has it), or, in a checkout without a current .mo,
compiles the .po in memory with Babel. The rows compare the three, each a fresh process,
interleaved so that load on the machine hits them alike:

    .venv/bin/python benchmarks/help_language.py            # 9 runs of each
    .venv/bin/python benchmarks/help_language.py --runs 15

The .mo is compiled into a temporary copy of the package, never into the checkout.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _copy_with_mo(dest: Path) -> Path:
    shutil.copytree(ROOT / "poster", dest / "poster", ignore=shutil.ignore_patterns("__pycache__"))
    from babel.messages.mofile import write_mo
    from babel.messages.pofile import read_po

    po = dest / "poster" / "locale" / "ja" / "LC_MESSAGES" / "poster.po"
    with po.open("rb") as src, po.with_suffix(".mo").open("wb") as out:
        write_mo(out, read_po(src, locale="ja"))
    return dest


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=9)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        with_mo = _copy_with_mo(Path(tmp))
        rows = {
            "en": (ROOT, "en_US.UTF-8"),
            "ja, .po compiled in memory": (ROOT, "ja_JP.UTF-8"),
            "ja, gettext .mo": (with_mo, "ja_JP.UTF-8"),
        }
        times: dict[str, list[float]] = {k: [] for k in rows}
        for _run in range(args.runs):
            for name, (tree, lang) in rows.items():
                env = {"PATH": "/usr/bin:/bin", "LANG": lang, "HOME": tmp, "PYTHONPATH": str(tree)}
                t = time.perf_counter()
                argv = [sys.executable, "-m", "poster", "--help"]
                r = subprocess.run(argv, env=env, cwd=tmp, capture_output=True, text=True)
                times[name].append(time.perf_counter() - t)
                assert r.returncode == 0, r.stderr
                assert ("コマンド" in r.stdout) == lang.startswith("ja"), r.stdout[:200]
    print(f"`poster --help`, {args.runs} runs each (seconds)")
    print(f"{'language':28} {'median':>8} {'min':>8}")
    for name, v in times.items():
        print(f"{name:28} {statistics.median(v):8.3f} {min(v):8.3f}")


if __name__ == "__main__":
    main()
