"""Helpers for the data-folder tests (store, backup, daemon): a small poster home, `poster`
as a real subprocess, a real `poster run` daemon, and the check that a data folder lost and
duplicated nothing."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from poster import cli, config, ledger, store

REPO = Path(__file__).resolve().parents[1]


def small_png(seed: int) -> bytes:
    from tests.servers.slow import _png

    return _png(seed)


def make_home(folder: Path, *, targets: str | None = None, scan_interval: float = 1.0) -> Path:
    """`poster init` into `folder`, with a quick outbox scan; `targets` replaces the three
    default local targets. Returns the config path."""
    cfg_path = cli.init_home(folder)
    text = cfg_path.read_text(encoding="utf-8")
    text = text.replace("stable_seconds = 5.0", "stable_seconds = 0.0")
    text = text.replace("scan_interval = 30.0", f"scan_interval = {scan_interval}")
    if targets is not None:
        text = text.split("# A target is one account")[0] + targets
    cfg_path.write_text(text, encoding="utf-8")
    return cfg_path


def drop(cfg: config.Config, name: str, data: bytes) -> Path:
    """Put a finished file into the outbox at once (written aside, then renamed)."""
    dest = cfg.outbox / name
    tmp = dest.with_name(f".{dest.name}.part")
    tmp.write_bytes(data)
    old = time.time() - 3600
    os.utime(tmp, (old, old))
    os.replace(tmp, dest)
    return dest


def poster(
    cfg_path: Path, *args: str, prefix: list[str] | None = None, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """`poster --config CFG ARGS...` as a real process."""
    return subprocess.run(
        [*(prefix or []), sys.executable, "-m", "poster", "--config", str(cfg_path), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


@contextmanager
def daemon(
    cfg_path: Path, log: Path, *args: str, module: str = "poster"
) -> Iterator[subprocess.Popen[bytes]]:
    """A real `poster run` (stderr and stdout into `log`), stopped with SIGTERM at the end.
    `module` may be `tests.servers.slow poster` to have the slow test adapter registered."""
    cmd = [sys.executable, "-m", *module.split(), "--config", str(cfg_path), "run", *args]
    with log.open("ab") as fh:
        proc = subprocess.Popen(
            cmd,
            cwd=REPO,
            env={**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(REPO)},
            stdout=fh,
            stderr=fh,
        )
    try:
        wait_for(
            lambda: "poster is running" in log.read_text(errors="replace"), proc, what="the daemon to start"
        )
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def wait_for(
    check: Callable[[], bool],
    proc: subprocess.Popen[bytes] | None = None,
    *,
    timeout: float = 120,
    what: str = "",
) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"the daemon exited ({proc.returncode}) while waiting for {what}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def states(cfg: config.Config) -> Counter[str]:
    with store.opened(cfg.db_path, readonly=True) as conn:
        return Counter(r[0] for r in conn.execute("SELECT state FROM jobs"))


def assert_complete(cfg: config.Config, originals: dict[str, bytes], targets: list[str]) -> None:
    """Every artwork archived once and unchanged, every job posted once (local adapter:
    one published folder per job, no leftovers), one ledger row per job, chain intact."""
    with store.opened(cfg.db_path, readonly=True, check="full") as conn:
        jobs_rows = conn.execute("SELECT id, target, state, post_key FROM jobs").fetchall()
        rows = ledger.rows(conn)
        assert ledger.verify(conn).ok
        arts = conn.execute("SELECT count(*) FROM artworks").fetchone()[0]
    assert arts == len(originals)
    assert len(jobs_rows) == len(originals) * len(targets)
    assert {r["state"] for r in jobs_rows} == {"posted"}, Counter(r["state"] for r in jobs_rows)
    assert len(rows) == len(jobs_rows)
    assert len({r["id"] for r in rows}) == len(rows)
    assert Counter(r["job_id"] for r in rows) == Counter({r["id"]: 1 for r in jobs_rows})
    archived = [p for p in cfg.archive.rglob("*") if p.is_file()]
    digests = {hashlib.sha256(d).hexdigest() for d in originals.values()}
    assert sorted(p.name.split(".")[0] for p in archived) == sorted(digests)
    for p in archived:
        assert hashlib.sha256(p.read_bytes()).hexdigest() == p.name.split(".")[0]
    for t in targets:
        folder = cfg.data_dir / "posted" / t
        published = sorted(p.name for p in folder.iterdir()) if folder.exists() else []
        keys = sorted(r["post_key"] for r in jobs_rows if r["target"] == t)
        assert published == keys, (t, published, keys)  # once each, no temporary leftovers
    assert not [p for p in cfg.outbox.iterdir() if not p.name.startswith(".")]


def status_json(cfg_path: Path, prefix: list[str] | None = None) -> list[dict[str, object]]:
    r = poster(cfg_path, "status", "--json", prefix=prefix)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)
