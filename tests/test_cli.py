"""The daemon says what it does: a real `poster run` subprocess, a line per post and per
failure; `-q` silences them."""

from __future__ import annotations

import signal
import time
from pathlib import Path

from tests.servers.slow import SlowServer, _daemon, home_with_slow_target


def _run_until(log: Path, proc: object, needle: str, timeout: float = 90.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = log.read_text(errors="replace") if log.exists() else ""
        if needle in text:
            return text
        assert proc.poll() is None, text  # type: ignore[attr-defined]
        time.sleep(0.2)
    raise AssertionError(f"{needle!r} never appeared:\n{log.read_text(errors='replace')}")


def _home(tmp_path: Path, url: str) -> Path:
    cfg_path = home_with_slow_target(tmp_path / "home", url)
    # a second target that must fail: Mastodon without a token (fails before any request)
    cfg_path.write_text(
        cfg_path.read_text(encoding="utf-8")
        + '\n[targets.b]\nadapter = "mastodon"\ninstance = "http://127.0.0.1:9"\n',
        encoding="utf-8",
    )
    text = cfg_path.read_text(encoding="utf-8").replace('notify = ["desktop"]', "notify = []")
    cfg_path.write_text(text, encoding="utf-8")
    return cfg_path


def test_the_daemon_prints_a_line_per_post_and_per_failure(tmp_path: Path) -> None:
    with SlowServer(delay=(0.0, 0.1)) as server:
        cfg_path = _home(tmp_path, server.url)
        log = tmp_path / "log"
        proc = _daemon(cfg_path, log, "run")
        try:
            text = _run_until(log, proc, "posted    a")
            text = _run_until(log, proc, "failed    b")
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=30)
    posted = next(line for line in text.splitlines() if line.startswith("posted    a"))
    assert "a.png" in posted and server.url.split("//")[1] in posted  # target, file, URL
    failed = next(line for line in text.splitlines() if line.startswith("failed    b"))
    assert "a.png" in failed and "poster login b" in failed  # the reason


def test_quiet_daemon_prints_no_lines(tmp_path: Path) -> None:
    with SlowServer(delay=(0.0, 0.1)) as server:
        cfg_path = _home(tmp_path, server.url)
        log = tmp_path / "log"
        proc = _daemon(cfg_path, log, "run", "-q")
        try:
            deadline = time.monotonic() + 90
            while not server.posts and time.monotonic() < deadline:
                time.sleep(0.2)
            assert server.posts, log.read_text(errors="replace")
            time.sleep(2.0)  # the line would be printed right after the post is recorded
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=30)
    text = log.read_text(errors="replace")
    assert "posted    a" not in text and "queued" not in text
