"""End-to-end throughput: N artworks × the three default targets (x heavy, pixiv light, xfolio
light, all on the `local` adapter) through the real `poster run --once --now` — intake,
render, read-back checks, post, ledger — in a fresh temporary data folder, against the plain
floor measured in the same run.

    nice -n 10 .venv/bin/python benchmarks/throughput.py            # 8 corpus artworks: main vs this tree
    nice -n 10 .venv/bin/python benchmarks/throughput.py --n 16 --before main --runs 1
    nice -n 10 .venv/bin/python benchmarks/throughput.py --before ''  # this tree only

Images: the first N of ../shared/corpus (paintings, comic page, photos, alpha art, pixel
art; JPEG and PNG), cycled with one pixel changed when N exceeds the corpus; without the
corpus, `tests/synthetic.painting` at 1600×1200.

"before" is the code of `--before` (a git revision, default main) exported with `git archive`
and run by the same interpreter with PYTHONPATH pointing at it; "after" is this working tree.
Both run as a subprocess; CPU time is that process and every process it starts (getrusage for
what it reaps, /proc samples every 50 ms for a forkserver and its pool workers).

The plain floor, per posted variant: decode the archived original with Pillow, resize it
(Lanczos) to the variant's posted size, encode it in the variant's format (JPEG 90 or PNG),
one process, serial. Ratios: pipeline CPU-s / floor CPU-s, and pipeline wall / floor wall.
Each row says the 1-minute load average when it finished: the machine is shared.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import resource
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from PIL import Image
from revision import export  # benchmarks/, the script's own folder

REPO = Path(__file__).resolve().parents[1]
CORPUS = REPO.parent / "shared" / "corpus"
ORDER = (  # a mix first, so small N still covers paintings, photos, alpha and pixel art
    "revoy_forest_painting.jpg",
    "kodim04.png",
    "sachi_standing_alpha.png",
    "peppercarrot_comic_page_es_E01P01.jpg",
    "revoy_chaosah_family.jpg",
    "urizen_onebit_pixel_tileset.png",
    "kodim23.png",
    "revoy_pencil_sketch.jpeg",
    "revoy_shichimi_concept.jpg",
    "kenney_flat_castles_bg.png",
    "revoy_flying_city_landscape.jpg",
    "peppercarrot_logo_alpha.png",
    "kodim05.png",
    "sachi_human_fox_alpha.png",
    "kenney_flat_elements_sheet.png",
    "dcss_pixel_atlas_alpha.png",
)


def artworks(n: int) -> tuple[list[tuple[str, bytes]], str]:
    """N (file name, bytes) pairs, all different content, and where they came from."""
    files = [CORPUS / name for name in ORDER if (CORPUS / name).exists()]
    out: list[tuple[str, bytes]] = []
    if files:
        for i in range(n):
            path = files[i % len(files)]
            data = path.read_bytes()
            if i >= len(files):  # a different file for intake: one pixel changed, saved as PNG
                with Image.open(path) as im:
                    im = im.convert("RGBA" if im.mode in ("RGBA", "P", "LA") else "RGB")
                    im.putpixel((i % im.width, 0), (i % 256,) * len(im.getbands()))
                    buf = io.BytesIO()
                    im.save(buf, "PNG")
                    data = buf.getvalue()
                out.append((f"{i:03d}-{path.stem}.png", data))
            else:
                out.append((f"{i:03d}-{path.name}", data))
        return out, f"../shared/corpus ({len(files)} files, cycled)"
    sys.path.insert(0, str(REPO))
    from tests.synthetic import painting

    for i in range(n):
        buf = io.BytesIO()
        painting((1600, 1200), seed=i).save(buf, "JPEG", quality=92)
        out.append((f"{i:03d}-painting.jpg", buf.getvalue()))
    return out, "tests/synthetic.painting 1600x1200"


def poster(src: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    env = {**os.environ, "PYTHONPATH": str(src)}
    # cwd: not this tree, or `python -m` would import its poster whatever PYTHONPATH says
    return subprocess.run(
        [sys.executable, "-m", "poster", *args], env=env, cwd=src.parent, capture_output=True
    )


def cpu_children() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def _procs() -> dict[int, tuple[int, float]]:
    """pid → (parent pid, CPU seconds of the process itself) for every process."""
    tick = os.sysconf("SC_CLK_TCK")
    out = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as fh:
                fields = fh.read().rsplit(b")", 1)[1].split()
        except OSError:
            continue
        out[int(entry)] = (int(fields[1]), (int(fields[11]) + int(fields[12])) / tick)
    return out


def measured(cmd: list[str], env: dict[str, str], cwd: Path) -> tuple[int, str, float, float]:
    """(exit code, stderr, wall s, CPU s) of `cmd` and every process it starts. The process and
    the children it reaps come from getrusage; processes it does not reap (a forkserver and
    the pool workers it forks) are sampled from /proc every 50 ms until they exit."""
    cpu0, t0 = cpu_children(), time.perf_counter()
    with tempfile.TemporaryFile() as err:
        # cwd: not this tree, or `python -m` would import its poster whatever PYTHONPATH says
        proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=err)
        seen: dict[int, tuple[int, float]] = {}  # descendant → (parent when first seen, last CPU)
        alive_at_exit: set[int] = set()
        while True:
            done = proc.poll() is not None
            table = _procs()
            family = {proc.pid} | set(seen)
            for pid, (ppid, cpu) in sorted(table.items()):
                if pid in seen or ppid in family:
                    family.add(pid)
                    seen[pid] = (seen.get(pid, (ppid, 0.0))[0], cpu)
            if done:
                if not alive_at_exit:
                    alive_at_exit = {p for p in seen if p in table} | {-1}
                if not any(p in table for p in seen if p != proc.pid):
                    break
            time.sleep(0.05)
        wall = time.perf_counter() - t0
        err.seek(0)
        stderr = err.read().decode(errors="replace")[-2000:]
    # the direct child and what it reaped: getrusage; the rest: sampled
    extra = sum(
        cpu
        for pid, (ppid, cpu) in seen.items()
        if pid != proc.pid and (ppid != proc.pid or pid in alive_at_exit)
    )
    return proc.returncode, stderr, wall, cpu_children() - cpu0 + extra


def pipeline(src: Path, images: list[tuple[str, bytes]], work: Path) -> dict[str, object]:
    home = work / "home"
    done = poster(src, "init", str(home))
    if done.returncode:
        raise SystemExit(done.stderr.decode())
    cfg = home / "config.toml"
    text = cfg.read_text(encoding="utf-8")
    # no traffic to public time-stamping authorities from a benchmark
    cfg.write_text(
        "\n".join("tsa_urls = []" if line.startswith("tsa_urls =") else line for line in text.splitlines())
        + "\n",
        encoding="utf-8",
    )
    outbox = home / "queue" / "outbox"
    old = time.time() - 3600  # settled files: intake takes them at once
    for name, data in images:
        (outbox / name).write_bytes(data)
        os.utime(outbox / name, (old, old))
    code, stderr, wall, cpu = measured(
        [sys.executable, "-m", "poster", "--config", str(cfg), "run", "--once", "--now", "-q"],
        {**os.environ, "PYTHONPATH": str(src)},
        work,
    )
    db = sqlite3.connect(home / "queue" / "poster.db")
    states = Counter(s for (s,) in db.execute("SELECT state FROM jobs"))
    rows = db.execute(
        "SELECT o.archive_path, v.width, v.height, v.format, v.render FROM variants v"
        " JOIN jobs j ON j.id = v.job_id JOIN originals o ON o.artwork_id = j.artwork_id AND o.idx = v.idx"
    ).fetchall()
    ledger = db.execute("SELECT COUNT(*) FROM ledger").fetchone()[0]
    db.close()
    variants = [(home / "queue" / p, w, h, f) for p, w, h, f, _r in rows]
    marks = Counter(f"{json.loads(r)['mark']['strength']}/{json.loads(r)['mark']['read']}" for *_x, r in rows)
    return {
        "exit": code,
        "stderr": stderr,
        "wall": wall,
        "cpu": cpu,
        "states": dict(states),
        "ledger": ledger,
        "variants": variants,
        "marks": dict(marks),
    }


def floor(variants: list[tuple[Path, int, int, str]]) -> tuple[float, float]:
    """(wall s, CPU s) of decode + resize + encode to every posted variant's size and format."""
    t0, c0 = time.perf_counter(), time.process_time()
    for path, w, h, fmt in variants:
        with Image.open(path) as im:
            im.load()
            if fmt == "JPEG" or im.mode not in ("RGB", "RGBA"):
                im = im.convert("RGBA" if fmt == "PNG" and "A" in im.getbands() else "RGB")
            im = im.resize((w, h), Image.Resampling.LANCZOS)
            buf = io.BytesIO()
            if fmt == "JPEG":
                im.save(buf, "JPEG", quality=90)
            else:
                im.save(buf, fmt)
    return time.perf_counter() - t0, time.process_time() - c0


COLUMNS = (
    ("code", 8),
    ("arts", 4),
    ("vars", 4),
    ("posted", 6),
    ("ledger", 6),
    ("wall s", 7),
    ("CPU s", 7),
    ("CPU/wall", 8),
    ("CPU-s/var", 9),
    ("floor CPU-s/var", 15),
    ("x floor CPU", 11),
    ("x floor wall", 12),
    ("load1", 5),
)


def row(values: list[str]) -> str:
    return "  ".join(v.rjust(w) for v, (_n, w) in zip(values, COLUMNS, strict=True))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=8, help="artworks (each goes to 3 targets)")
    ap.add_argument("--before", default="main", help="git revision measured as 'before' ('' = skip)")
    ap.add_argument("--after", default="", help="git revision measured as 'after' ('' = this working tree)")
    ap.add_argument("--runs", type=int, default=1, help="runs of each (interleaved)")
    args = ap.parse_args()
    images, origin = artworks(args.n)
    print(f"{args.n} artworks from {origin} x 3 default targets (local adapter); {os.cpu_count()} cores")
    with tempfile.TemporaryDirectory(prefix="poster-throughput-") as tmp:
        base = Path(tmp)
        codes: list[tuple[str, Path]] = []
        if args.before:
            codes.append((args.before[:8], export(args.before, base / "before")))
        if args.after:
            codes.append((args.after[:8], export(args.after, base / "after")))
        else:
            codes.append(("this tree", REPO))
        print(row([n for n, _w in COLUMNS]))
        for run in range(args.runs):
            for label, src in codes:
                work = base / f"{label.replace(' ', '_')}-{run}"
                work.mkdir()
                r = pipeline(src, images, work)
                if r["exit"] not in (0,):
                    print(f"{label}: poster exited {r['exit']}:\n{r['stderr']}", file=sys.stderr)
                variants = r["variants"]
                assert isinstance(variants, list)
                fw, fc = floor(variants)
                nv = max(1, len(variants))
                wall, cpu = float(r["wall"]), float(r["cpu"])  # type: ignore[arg-type]
                states = r["states"]
                assert isinstance(states, dict)
                print(
                    row(
                        [
                            label,
                            str(args.n),
                            str(len(variants)),
                            str(states.get("posted", 0)),
                            str(r["ledger"]),
                            f"{wall:.1f}",
                            f"{cpu:.1f}",
                            f"{cpu / wall:.2f}",
                            f"{cpu / nv:.2f}",
                            f"{fc / nv:.3f}",
                            f"{cpu / fc:.1f}" if fc else "-",
                            f"{wall / fw:.1f}" if fw else "-",
                            f"{os.getloadavg()[0]:.1f}",
                        ]
                    ),
                    flush=True,
                )
                print(f"    {'':8}  hidden-ID strength/read: {r['marks']}  job states: {states}", flush=True)
                shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
