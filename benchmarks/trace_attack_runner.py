"""Trace prepared attack copies with one engine and write what it answered (JSON lines).

    PYTHONPATH=<a checkout's root> python benchmarks/trace_attack_runner.py CASES.json OUT.jsonl [--extras]

Run by benchmarks/trace_round2.py's attack table with this branch's `poster` and, for the
"before" column, with main's (a worktree of main put first on PYTHONPATH): the same posted data
folder and the same attacked files go through both. Only the API both engines share is used
(`Tracer.trace_image`, `Result.matches`, `Match.method/id/post/row`); the verdict is read
when the engine has one. `--extras` also runs the perceptual stage alone and the blind read.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from PIL import Image


def main() -> None:
    cases_path, out_path = Path(sys.argv[1]), Path(sys.argv[2])
    extras = "--extras" in sys.argv
    from poster import ledger, markkey, store
    from poster import trace as trace_mod

    spec = json.loads(cases_path.read_text())
    data_dir = Path(spec["data_dir"])
    conn = store.connect(data_dir / "poster.db")
    key = markkey.load(data_dir)
    tracer = trace_mod.Tracer(conn, key, data_dir, cache=trace_mod.index_cache(data_dir))
    done = set()
    if out_path.exists():
        done = {json.loads(line)["file"] for line in out_path.read_text().splitlines() if line.strip()}
    with out_path.open("a") as out:
        for case in spec["cases"]:
            if case["file"] in done:
                continue
            with Image.open(case["file"]) as im:
                image = im.convert("RGB")
            t = time.perf_counter()
            c = time.process_time()
            res = tracer.trace_image(image)
            wall, cpu = time.perf_counter() - t, time.process_time() - c
            top = res.matches[0] if res.matches else None
            named = None  # the post this engine names as the source, if any
            if top is not None and (top.method == "hidden-id" or top.post in ("exact", "distinguished")):
                named = top.id
            art = getattr(res, "artwork", None)
            rec = {
                "file": case["file"],
                "verdict": getattr(res, "verdict", None),
                "named": named,
                "method": top.method if top else None,
                "top_original": top.row["original_sha256"] if top else None,
                "artwork": art.key if art is not None else None,
                "artwork_method": art.method if art is not None else None,
                "layers": getattr(res, "layers", None),
                "wall": round(wall, 3),
                "cpu": round(cpu, 3),
            }
            if extras:
                p = tracer.perceptual(image)
                rec["perceptual"] = p.matches[0].row["original_sha256"] if p.matches else None
                found, _ = trace_mod.read_hidden_id(image, key)
                rec["blind"] = ledger.format_id(found) if found is not None else None
            out.write(json.dumps(rec, default=str) + "\n")
            out.flush()
    conn.close()


if __name__ == "__main__":
    main()
