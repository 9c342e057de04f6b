"""Request limits of the HTTP seam, before and after, side by side in one run.

"before" is what the seam did until issue 13: `requests` with a (connect, read) timeout,
the whole answer read into memory. "after" is `poster.platforms.http.HttpClient`: an
overall deadline per request (a watchdog shuts the socket) and answers streamed and cut at
`ANSWER_LIMITS`. Both talk to the same local stand-in server (127.0.0.1, a free port):

  trickle head   the status line and headers, one byte every --trickle seconds
  trickle body   a prompt head, then the body one byte at a time
  huge answer    --huge-mb of body, streamed without a length (the server never holds it)

Each client runs in its own subprocess, so its peak RSS (ru_maxrss) is its own; the server
counts the body bytes it managed to hand to the socket before the client hung up.

    .venv/bin/python benchmarks/http_limits.py                 # about 1.5 minutes
    .venv/bin/python benchmarks/http_limits.py --trickle 1.0   # the issue's 1 byte/s (≈ 5 min)
"""

from __future__ import annotations

import argparse
import itertools
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

CHUNK = b"0123456789abcdef" * 4096  # 64 KiB


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def client(seam: str, url: str, deadline: float) -> dict:
    """One request the way `seam` makes it; runs in a subprocess."""
    import requests

    from poster.platforms.http import HttpClient, PlatformError

    base, path = url.rsplit("/", 1)
    session = requests.Session()
    session.get(f"{base}/warm", timeout=5)  # imports and first connection before measuring
    start_rss = rss_mb()
    t0 = time.monotonic()
    try:
        if seam == "before":
            r = session.get(url, timeout=(10.0, deadline))
            outcome, got = f"{r.status_code}, read whole", len(r.content)
        else:
            c = HttpClient(base, timeout=(10.0, deadline), deadline=deadline, max_retries=0)
            r = c.get(f"/{path}")
            outcome, got = f"{r.status_code}, read whole", len(r.content)
    except (requests.RequestException, PlatformError) as exc:
        outcome, got = type(exc).__name__, None
    return {
        "seconds": round(time.monotonic() - t0, 1),
        "outcome": outcome,
        "read": got,
        "rss_delta": round(rss_mb() - start_rss, 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--deadline", type=float, default=5.0, help="timeout / deadline in seconds (5)")
    ap.add_argument("--trickle", type=float, default=0.1, help="seconds between trickled bytes (0.1)")
    ap.add_argument("--huge-mb", type=int, default=100, help="size of the huge answer (100)")
    ap.add_argument("--client", nargs=3, metavar=("SEAM", "URL", "DEADLINE"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.client:
        print(json.dumps(client(args.client[0], args.client[1], float(args.client[2]))))
        return

    from poster.platforms.http import ANSWER_LIMITS
    from tests.servers.base import Response, StandInServer

    body = {"ok": True, "padding": "x" * 200}
    huge_bytes = args.huge_mb * 1024 * 1024
    server = StandInServer()
    server.route("GET", r"/warm", lambda r, m: {"ok": True})
    server.route("GET", r"/head", lambda r, m: Response(200, body, trickle=args.trickle))
    server.route("GET", r"/body", lambda r, m: Response(200, body, trickle=args.trickle, trickle_body=True))
    server.route(
        "GET",
        r"/huge",
        lambda r, m: Response(200, chunks=itertools.repeat(CHUNK, huge_bytes // len(CHUNK)), length=None),
    )
    cases = [("trickle head", "head"), ("trickle body", "body"), (f"{args.huge_mb} MB answer", "huge")]
    rows = []
    started = time.monotonic()
    with server:
        for label, path in cases:
            for seam in ("before", "after"):
                with server.lock:
                    server.sent_body_bytes = 0
                done = subprocess.run(
                    [sys.executable, __file__, "--client", seam, f"{server.url}/{path}", str(args.deadline)],
                    capture_output=True,
                    text=True,
                    cwd=ROOT,
                    check=True,
                )
                row = json.loads(done.stdout)
                time.sleep(0.3)  # let the server notice a hang-up before reading its count
                with server.lock:
                    row["sent"] = server.sent_body_bytes
                rows.append((label, seam, row))

    print(
        f"deadline/timeout {args.deadline:g} s, trickle {args.trickle:g} s/byte, "
        f"answer cap {ANSWER_LIMITS['api'] // 1024} KiB (api); {time.monotonic() - started:.0f} s in all\n"
    )
    head = f"{'case':<15} {'seam':<7} {'seconds':>8}  {'outcome':<24} {'server sent':>12} {'peak RSS Δ':>11}"
    print(head)
    print("-" * len(head))
    for label, seam, r in rows:
        sent = f"{r['sent'] / 1024 / 1024:.1f} MB" if r["sent"] >= 1024 * 1024 else f"{r['sent']} B"
        rss = f"{r['rss_delta']:.1f} MB"
        print(f"{label:<15} {seam:<7} {r['seconds']:>8.1f}  {r['outcome']:<24} {sent:>12} {rss:>11}")


if __name__ == "__main__":
    main()
