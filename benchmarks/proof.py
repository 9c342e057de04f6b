"""What time-stamping costs `poster run --once`, side by side in one run.

Each scenario makes a fresh home (`poster init`), drops one artwork planned for 2099 (so it is
taken in and its original time-stamped, but nothing is rendered: rendering takes seconds and
would drown the difference on a shared machine), and times a real `poster run --once`
subprocess, repeated; the table shows the median wall time and how many stamps were made or
left waiting:

  off          tsa_urls = []
  defaults     the public TSAs of the template (FreeTSA, IdenTrust); on a machine without
               network the name lookup fails, which is what this measures there
  local        a real TSA on 127.0.0.1 (`openssl ts -reply`, tests/servers/tsa.py)
  refused      a local port nobody listens on
  hanging      a local port that accepts connections and never answers

    .venv/bin/python benchmarks/proof.py              # 5 repeats, about a minute
    .venv/bin/python benchmarks/proof.py --repeats 5
"""

from __future__ import annotations

import argparse
import os
import re
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from poster import cli  # noqa: E402
from tests.conftest import artwork  # noqa: E402
from tests.servers import tsa as tsa_server  # noqa: E402


@contextmanager
def scenario(name: str, base: Path) -> Iterator[tuple[list[str], Path | None]]:
    """(tsa_urls, tsa_ca_file) for a scenario, with its local server running."""
    if name == "off":
        yield [], None
    elif name == "defaults":
        yield ["https://freetsa.org/tsr", "http://timestamp.identrust.com"], None
    elif name == "local":
        pki = tsa_server.make_pki(base / "pki", "local")
        with tsa_server.TsaServer(pki, pki) as server:
            yield [server.tsr_url], pki.root  # type: ignore[attr-defined]
    elif name == "refused":
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        yield [f"http://127.0.0.1:{port}/tsr"], None
    elif name == "hanging":
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            s.listen(8)
            yield [f"http://127.0.0.1:{s.getsockname()[1]}/tsr"], None
    else:
        raise ValueError(name)


def home(folder: Path, urls: list[str], ca: Path | None) -> Path:
    """`poster init` with [proof] set for the scenario; returns the config's path."""
    path = cli.init_home(folder)
    listed = ", ".join(f'"{u}"' for u in urls)
    extra = f'\ntsa_ca_file = "{ca}"' if ca else ""
    text = re.sub(r"(?m)^tsa_urls = .*$", f"tsa_urls = [{listed}]{extra}", path.read_text(encoding="utf-8"))
    path.write_text(text, encoding="utf-8")
    return path


def one_run(name: str, base: Path) -> tuple[float, int, int]:
    with scenario(name, base) as (urls, ca):
        cfg = home(base / "home", urls, ca)
        art = base / "home" / "queue" / "outbox" / "art.png"
        artwork((640, 480), seed=1).save(art)
        art.with_suffix(".toml").write_text('at = "2099-01-01T00:00:00+00:00"\n', encoding="utf-8")
        for path in (art, art.with_suffix(".toml")):
            os.utime(path, (0, 0))
        started = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-m", "poster", "--config", str(cfg), "run", "--once"],
            capture_output=True,
            text=True,
            check=False,
        )
        took = time.perf_counter() - started
        if done.returncode != 0:
            raise RuntimeError(f"{name}: poster run failed:\n{done.stdout}{done.stderr}")
        conn = sqlite3.connect(base / "home" / "queue" / "poster.db")
        counts = dict(conn.execute("SELECT state, count(*) FROM stamps GROUP BY state").fetchall())
        conn.close()
        return took, counts.get("stamped", 0), counts.get("pending", 0)


def round_times(name: str, base: Path, repeats: int) -> list[float]:
    """The stamping round alone, in-process (`Stamper.run` after intake, one original to
    stamp), without the process start-up and intake that dominate `run --once`."""
    from poster import config, outbox, store
    from poster.timestamps import Stamper

    with scenario(name, base) as (urls, ca):
        cfg = config.load(home(base / "home-r", urls, ca))
        art = cfg.outbox / "art.png"
        artwork((640, 480), seed=1).save(art)
        art.with_suffix(".toml").write_text('at = "2099-01-01T00:00:00+00:00"\n', encoding="utf-8")
        for p in (art, art.with_suffix(".toml")):
            os.utime(p, (0, 0))
        conn = store.connect(cfg.db_path)
        outbox.scan(conn, cfg)
        out = []
        for _ in range(repeats):
            conn.execute("DELETE FROM stamps")
            started = time.perf_counter()
            Stamper(cfg).run(conn)  # a new Stamper each time: as `poster run --once` does
            out.append(time.perf_counter() - started)
        conn.close()
        return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    names = ["off", "defaults", "local", "refused", "hanging"]
    times: dict[str, list[float]] = {n: [] for n in names}
    stamps: dict[str, tuple[int, int]] = {}
    for r in range(args.repeats):
        for name in names:  # interleaved, so load on the machine hits every scenario alike
            with tempfile.TemporaryDirectory() as tmp:
                took, made, waiting = one_run(name, Path(tmp))
            times[name].append(took)
            stamps[name] = (made, waiting)
            print(f"  repeat {r + 1} {name:<9} {took:6.2f} s", file=sys.stderr)
    rounds = {}
    for name in names:
        with tempfile.TemporaryDirectory() as tmp:
            rounds[name] = round_times(name, Path(tmp), args.repeats)
    base = statistics.median(times["off"])
    print(
        f"{'scenario':<10} {'median s':>9} {'min s':>7} {'max s':>7} {'vs off':>8} "
        f"{'stamped':>8} {'waiting':>8}"
    )
    for name in names:
        t = times[name]
        made, waiting = stamps[name]
        print(
            f"{name:<10} {statistics.median(t):9.2f} {min(t):7.2f} {max(t):7.2f} "
            f"{statistics.median(t) - base:+7.2f}s {made:8d} {waiting:8d}"
        )
    print(f"\n{'scenario':<10} {'stamping round alone, median ms':>32} {'min ms':>8} {'max ms':>8}")
    for name in names:
        t = [x * 1000 for x in rounds[name]]
        print(f"{name:<10} {statistics.median(t):32.1f} {min(t):8.1f} {max(t):8.1f}")


if __name__ == "__main__":
    main()
