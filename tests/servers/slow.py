"""A slow stand-in platform, its test-only adapter, and the crash campaign that kills a real
`poster run` daemon with SIGKILL at random moments (used by tests/test_crash.py and
benchmarks/crash.py).

The server commits a post half-way through a slow answer and keeps going after the client
has died, like a real platform: that is what makes an interrupted post `uncertain`. It does
not deduplicate anything, so a second post of the same job shows up as a duplicate. It lets
a client look posts up by the job's key (`GET /posts?key=`), which is what lets the adapter's
`find_existing` prove honestly whether an interrupted post exists.

Run the daemon with the adapter registered: `python -m tests.servers.slow poster ARGS...`.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from tests.servers.base import HttpError, Request, StandInServer

REPO = Path(__file__).resolve().parents[2]


# -- the server ---------------------------------------------------------------------------------
class SlowServer(StandInServer):
    def __init__(self, *, delay: tuple[float, float] = (0.1, 0.6), seed: int = 0) -> None:
        super().__init__()
        self.delay = delay
        self.rng = random.Random(seed)
        self.posts: list[dict[str, Any]] = []  # every post accepted, in order
        self._plock = threading.Lock()
        # a client killed mid-answer is the point of this server: no broken-pipe tracebacks
        self.httpd.handle_error = lambda request, client_address: None  # type: ignore[method-assign]
        self.route("POST", r"/posts", self.create)
        self.route("GET", r"/posts", self.find)

    def _sleep(self) -> None:
        with self._plock:
            d = self.rng.uniform(*self.delay) / 2
        time.sleep(d)

    def create(self, req: Request, m: Any) -> dict[str, Any]:
        body = req.json or {}
        if not body.get("key") or not body.get("media"):
            raise HttpError(422, {"error": "key and media are required"})
        self._sleep()  # the request is "being processed" ...
        with self._plock:  # ... accepted here, whether or not the client is still there ...
            post = {
                "id": str(len(self.posts) + 1),
                "key": body["key"],
                "target": body.get("target"),
                "caption": body.get("caption"),
                "media": body["media"],
                "at": time.time(),
            }
            post["url"] = f"{self.url}/p/{post['id']}"
            self.posts.append(post)
        self._sleep()  # ... and answered slowly
        return {"id": post["id"], "url": post["url"]}

    def find(self, req: Request, m: Any) -> dict[str, Any]:
        key = (req.query.get("key") or [""])[0]
        with self._plock:
            return {"posts": [p for p in self.posts if p["key"] == key]}


# -- the adapter --------------------------------------------------------------------------------
def _adapter_class() -> type:
    """Defined lazily so importing this module for the server alone needs no poster import."""
    import requests

    from poster.platforms.base import Adapter, Capabilities, Existence, Post, PostResult

    class SlowAdapter(Adapter):
        name = "slow"
        capabilities = Capabilities(max_bytes=50_000_000, formats=("PNG", "JPEG"), images_per_post=4)
        settings_keys = frozenset({"api_base", "timeout", "lookup"})
        settle_seconds: ClassVar[float] = 0.0  # set per instance from the timeout

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.base = str(self.settings["api_base"]).rstrip("/")
            self.timeout = float(self.settings.get("timeout") or 5)
            # after this long an interrupted request can no longer land on the server
            self.settle_seconds = self.timeout + 1

        def post(self, post: Post) -> PostResult:
            body = {
                "key": post.key,
                "target": self.target,
                "caption": post.caption,
                "media": [hashlib.sha256(m.data).hexdigest() for m in post.media],
            }
            try:
                r = requests.post(f"{self.base}/posts", json=body, timeout=self.timeout)
            except requests.RequestException as exc:  # may have been accepted: never guess
                return PostResult.uncertain(f"no answer from the server: {type(exc).__name__}")
            if r.status_code != 200:
                return PostResult.fatal(f"server refused: {r.status_code}")
            data = r.json()
            return PostResult.posted(remote_id=data["id"], url=data["url"])

        def find_existing(self, post: Post) -> tuple[Existence, PostResult | None]:
            if self.settings.get("lookup") is False:  # a platform with no way to look up
                return Existence.UNKNOWN, None
            try:
                r = requests.get(f"{self.base}/posts", params={"key": post.key}, timeout=self.timeout)
                r.raise_for_status()
                found = r.json()["posts"]
            except (requests.RequestException, ValueError, KeyError):
                return Existence.UNKNOWN, None
            if found:
                return Existence.EXISTS, PostResult.posted(remote_id=found[0]["id"], url=found[0]["url"])
            return Existence.ABSENT, None

    return SlowAdapter


def register() -> None:
    from poster import platforms

    platforms._REGISTRY.setdefault("slow", "tests.servers.slow:SlowAdapter")


def __getattr__(name: str) -> Any:  # `tests.servers.slow:SlowAdapter` for the registry
    if name == "SlowAdapter":
        cls = _adapter_class()
        globals()["SlowAdapter"] = cls
        return cls
    raise AttributeError(name)


# -- the crash campaign -------------------------------------------------------------------------
@dataclass
class Figures:
    kills: int = 0
    files: int = 0
    jobs: int = 0
    accepted: int = 0  # posts the server accepted
    posted: int = 0  # jobs posted with a ledger row
    duplicates: int = 0  # (target, caption) accepted more than once
    uncertain: int = 0  # jobs left for the user to confirm
    resolved: int = 0  # interrupted posts settled by looking them up
    failed: int = 0
    unaccounted: int = 0  # accepted posts neither in the ledger nor uncertain
    lost: int = 0  # files neither posted nor reported
    originals_bad: int = 0  # originals missing or changed
    ledger_ok: bool = False
    clean_exit: bool = False
    seconds: float = 0.0
    problems: list[str] = field(default_factory=list)

    def row(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "problems"}


def _png(seed: int) -> bytes:
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:256, 0:256].astype(np.float32)
    img = np.stack([128 + 90 * np.sin(x / (30 + seed % 7)), 128 + 90 * np.cos(y / 23), x * 0 + 128], -1)
    img += rng.normal(0, 8, img.shape)
    buf = io.BytesIO()
    Image.fromarray(np.clip(img, 0, 255).astype(np.uint8), "RGB").save(buf, "PNG")
    return buf.getvalue()


def home_with_slow_target(folder: Path, url: str, timeout: int = 10) -> Path:
    """A poster home in ``folder`` with one target `a` on the slow adapter at ``url`` and one
    artwork waiting in the outbox; returns the config path."""
    from poster import cli, config

    cfg_path = cli.init_home(folder)
    head = cfg_path.read_text(encoding="utf-8").split("[intake]")[0]
    cfg_path.write_text(
        head + "[intake]\nstable_seconds = 0.0\nscan_interval = 1.0\n\n"
        f'[targets.a]\nadapter = "slow"\npolicy = "light"\napi_base = "{url}"\ntimeout = {timeout}\n',
        encoding="utf-8",
    )
    register()
    (config.load(cfg_path).outbox / "a.png").write_bytes(_png(1))
    return cfg_path


def _daemon(cfg_path: Path, log: Path, *args: str) -> subprocess.Popen[bytes]:
    """`poster --config CFG run` (or `ARGS`) as a subprocess with the slow adapter."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-m", "tests.servers.slow", "poster", "--config", str(cfg_path)]
    with log.open("ab") as fh:
        return subprocess.Popen(
            [*cmd, *(args or ("run",))],
            cwd=REPO,
            env=env,
            stdout=fh,
            stderr=fh,
        )


def _running_lines(log: Path) -> int:
    return log.read_text(errors="replace").count("poster is running") if log.exists() else 0


_OPEN = ("pending", "rendering", "ready", "posting", "retry_wait")


def _states(db: Path) -> Counter[str]:
    if not db.exists():
        return Counter()
    with sqlite3.connect(db, timeout=30) as conn:
        return Counter(r[0] for r in conn.execute("SELECT state FROM jobs"))


def campaign(
    workdir: Path,
    *,
    kills: int,
    files: int,
    seed: int = 0,
    kill_window: tuple[float, float] = (0.8, 3.0),
    settle_timeout: float = 60.0,
    finish_timeout: float = 300.0,
    lookup: bool = True,
) -> Figures:
    """Drop `files` artworks for two targets, SIGKILL the daemon `kills` times at random
    moments, then let it finish and check every promise. Returns the figures."""
    from poster import cli, config, ledger, store

    rng = random.Random(seed)
    fig = Figures(files=files)
    t0 = time.monotonic()
    cfg_path = cli.init_home(workdir / "home")
    with SlowServer(seed=seed) as server:
        text = cfg_path.read_text(encoding="utf-8")
        head = text.split("[intake]")[0].replace('timezone = ""', 'timezone = "UTC"')
        cfg_path.write_text(
            head
            + "[intake]\nstable_seconds = 0.0\nscan_interval = 1.0\n\n"
            + "".join(
                f'[targets.{t}]\nadapter = "slow"\npolicy = "light"\napi_base = "{server.url}"\n'
                f"timeout = 3\nmin_interval_minutes = 0\nlookup = {str(lookup).lower()}\n\n"
                for t in ("a", "b")
            ),
            encoding="utf-8",
        )
        register()
        cfg = config.load(cfg_path)
        originals: dict[str, str] = {}

        def drop(i: int) -> None:
            data = _png(seed * 1000 + i)
            name = f"art{i:03d}.png"
            originals[name] = hashlib.sha256(data).hexdigest()
            (cfg.outbox / f"art{i:03d}.toml").write_text(f'caption = "crash test {i}"\n', encoding="utf-8")
            tmp = cfg.outbox / f".{name}.part"  # appear atomically, as a finished export would
            tmp.write_bytes(data)
            os.replace(tmp, cfg.outbox / name)

        # half the files at the start, the rest during the kills (so intake is hit too)
        for i in range(files // 2):
            drop(i)
        late = list(range(files // 2, files))
        log = workdir / "daemon.log"
        for _ in range(kills):
            if late and rng.random() < 0.5:
                drop(late.pop(0))
            proc = _daemon(cfg_path, log)
            time.sleep(rng.uniform(*kill_window))
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            fig.kills += 1
        for i in late:
            drop(i)

        # the last run: no kill; wait until nothing is open, then a clean SIGTERM
        started = _running_lines(log)
        proc = _daemon(cfg_path, log)
        start = time.monotonic()
        # the wait ends as soon as everything is settled; a busy machine (CI beside other work)
        # may need minutes to render and post what is left, which is not a lost file
        deadline = start + finish_timeout
        while time.monotonic() < deadline and _running_lines(log) == started:
            time.sleep(0.1)  # SIGTERM before the daemon is up would test nothing
        while time.monotonic() < deadline:
            time.sleep(0.5)
            st = _states(cfg.db_path)
            outbox_left = [p for p in cfg.outbox.iterdir() if p.suffix == ".png"]
            done = not outbox_left and sum(st.values()) == 2 * files and not any(st[s] for s in _OPEN)
            # uncertain jobs may still be settled by a lookup once the settle time has passed
            if done and (not st["uncertain"] or not lookup or time.monotonic() > start + settle_timeout / 2):
                break
        proc.send_signal(signal.SIGTERM)
        try:
            fig.clean_exit = proc.wait(timeout=30) == 0
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            fig.problems.append("daemon did not stop within 30 s of SIGTERM")
        accepted = list(server.posts)

    # -- the checks
    fig.accepted = len(accepted)
    dup = Counter((p["target"], p["caption"]) for p in accepted)
    fig.duplicates = sum(n - 1 for n in dup.values() if n > 1)
    for (target, caption), n in dup.items():
        if n > 1:
            fig.problems.append(f"{caption!r} posted {n} times to {target}")
    conn = store.connect(cfg.db_path)
    try:
        jobs_by_key = {r["post_key"]: r for r in conn.execute("SELECT * FROM jobs")}
        ledgered = {r[0] for r in conn.execute("SELECT DISTINCT job_id FROM ledger")}
        for p in accepted:
            j = jobs_by_key.get(p["key"])
            ok = j is not None and (
                (j["state"] == "posted" and j["id"] in ledgered) or j["state"] == "uncertain"
            )
            if not ok:
                fig.unaccounted += 1
                fig.problems.append(f"accepted post {p['url']} ({p['caption']}) is not in the ledger")
        fig.jobs = len(jobs_by_key)
        states = Counter(r["state"] for r in jobs_by_key.values())
        fig.uncertain = states["uncertain"]
        fig.failed = states["failed"]
        fig.posted = sum(1 for r in jobs_by_key.values() if r["state"] == "posted" and r["id"] in ledgered)
        fig.resolved = (
            conn.execute("SELECT COUNT(DISTINCT job_id) FROM events WHERE state = 'uncertain'").fetchone()[0]
            - fig.uncertain
        )
        arts = {r["name"]: r["id"] for r in conn.execute("SELECT id, name FROM artworks")}
        for name, digest in originals.items():
            archived = cfg.archive / digest[:2] / f"{digest}.png"
            still = cfg.outbox / name
            good = any(
                p.exists() and hashlib.sha256(p.read_bytes()).hexdigest() == digest for p in (archived, still)
            )
            if not good:
                fig.originals_bad += 1
                fig.problems.append(f"{name}: original missing or changed")
            if name not in arts:
                fig.lost += 1
                fig.problems.append(f"{name}: never taken in")
                continue
            rows = conn.execute(
                "SELECT state, reason FROM jobs WHERE artwork_id = ?", (arts[name],)
            ).fetchall()
            settled = [
                r
                for r in rows
                if r["state"] == "posted" or (r["state"] in ("failed", "uncertain") and r["reason"])
            ]
            if len(rows) != 2 or len(settled) != 2:
                fig.lost += 1
                fig.problems.append(f"{name}: jobs {[(r['state'], r['reason']) for r in rows]}")
        fig.ledger_ok = ledger.verify(conn).ok
    finally:
        conn.close()
    fig.seconds = round(time.monotonic() - t0, 1)
    return fig


def main(argv: list[str]) -> None:
    if argv[:1] == ["poster"]:
        register()
        from poster.cli import main as poster_main

        poster_main(argv[1:])
    elif argv[:1] == ["campaign"]:  # python -m tests.servers.slow campaign DIR KILLS FILES
        import tempfile

        fig = campaign(
            Path(argv[1] if len(argv) > 1 else tempfile.mkdtemp()), kills=int(argv[2]), files=int(argv[3])
        )
        print(json.dumps(fig.__dict__, indent=2))
    else:
        sys.exit("usage: python -m tests.servers.slow poster ARGS... | campaign DIR KILLS FILES")


if __name__ == "__main__":
    main(sys.argv[1:])
