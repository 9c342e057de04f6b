"""The daemon says what it does: a real `poster run` subprocess, a line per post and per
failure; `-q` silences them."""

from __future__ import annotations

import json
import re
import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from poster import config
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


def test_an_interactive_terminal_sees_render_progress_and_the_lines(tmp_path: Path) -> None:
    """The reporter as `poster run` uses it on a terminal (rich, forced to a buffer here)."""
    import io
    from datetime import UTC, datetime

    from rich.console import Console

    from poster import cli, config, jobs
    from poster.dispatch import Held, Outcome

    path = cli.init_home(tmp_path / "home")
    text = path.read_text(encoding="utf-8").replace('timezone = ""', 'timezone = "UTC"')
    path.write_text(text, encoding="utf-8")
    cfg = config.load(path)
    buf = io.StringIO()
    reporter = cli._Reporter(cfg, lines=True, live=False)
    reporter._console = Console(file=buf, force_terminal=True, width=200)
    reporter.progress(_FakeJob("rabbit.png", "x"), "watermark")  # type: ignore[arg-type]
    reporter(Outcome(1, "x", "rabbit.png", jobs.State.POSTED, url="https://x.example/1"))
    reporter(Held(2, "pixiv", "fox.png", datetime(2026, 11, 23, 10, 0, tzinfo=UTC), "paced: daily cap"))
    reporter.done()
    out = buf.getvalue()
    assert "rendering rabbit.png for x: watermark" in out
    assert "posted    x        rabbit.png  https://x.example/1" in out
    assert "held      pixiv    fox.png until 2026-11-23" in out and "daily cap" in out


class _FakeJob:
    def __init__(self, name: str, target: str) -> None:
        self.name, self.target = name, target


# -- start-up: a command imports what it uses ---------------------------------------------------
# The libraries that cost tenths of a second to import. `--help` needs none of them; `status`
# needs pydantic only when the config changed since its last full check (poster.configsnap),
# none of the rest.
_HEAVY = (
    "PIL",
    "numpy",
    "cv2",
    "faiss",
    "rich",
    "apprise",
    "cryptography",
    "rfc3161_client",
    "requests",
    "starlette",
    "jinja2",
    "tomlkit",
)


def _imported(*args: str, cwd: Path) -> set[str]:
    """The top-level packages a real `python -X importtime -m poster ARGS` imported."""
    import subprocess
    import sys

    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "poster", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    names = set()
    for line in proc.stderr.splitlines():
        if line.startswith("import time:") and line.count("|") == 2:
            names.add(line.rsplit("|", 1)[1].strip().split(".")[0])
    assert "poster" in names and "click" in names, proc.stderr[-2000:]  # the listing was read
    return names


def test_help_imports_no_heavy_library(tmp_path: Path) -> None:
    imported = _imported("--help", cwd=tmp_path)
    assert not imported & {*_HEAVY, "pydantic"}


def test_status_imports_no_heavy_library(home: config.Config, drop: Callable[..., Path]) -> None:
    from poster import outbox, store
    from tests.conftest import artwork

    drop("a.png", artwork())
    with store.opened(home.db_path) as conn:
        assert [r.outcome for r in outbox.scan(conn, home)] == ["queued"]
    for args in (["status"], ["status", "--json"]):
        # the config edited: loaded and checked in full, which leaves a snapshot of it
        with home.path.open("a", encoding="utf-8") as fh:
            fh.write("\n")
        imported = _imported("--config", str(home.path), *args, cwd=home.path.parent)
        assert "pydantic" in imported
        assert not imported & set(_HEAVY), args
        # unchanged since: its essentials come from that snapshot, without pydantic
        imported = _imported("--config", str(home.path), *args, cwd=home.path.parent)
        assert not imported & {*_HEAVY, "pydantic"}, args


# -- streamed JSON and the status pages ---------------------------------------------------------
def test_a_streamed_json_array_is_the_same_text(capsys: pytest.CaptureFixture[str]) -> None:
    from poster import cli

    item = {"id": 1, "file": "a\x1b[31m.png", "render": {"steps": [{"use": "noise"}], "x": []}, "n": None}
    for value in ([], [item], [item, {"id": 2}, {}], [[1, 2], "s", 3]):
        cli.emit_json(value)
        whole = capsys.readouterr().out
        cli.emit_json_array(iter(value))
        assert capsys.readouterr().out == whole


def test_status_shows_the_newest_page_and_json_every_job(
    home: config.Config, drop: Callable[..., Path]
) -> None:
    from poster import outbox, store
    from tests.conftest import artwork, run_cli

    drop("a.png", artwork(seed=1))
    drop("b.png", artwork(seed=2))
    with store.opened(home.db_path) as conn:
        outbox.scan(conn, home)
    code, out, _err = run_cli("status", "--json", cfg=home)
    assert code == 0 and sorted(j["id"] for j in json.loads(out)) == [1, 2, 3, 4, 5, 6]

    def shown(*args: str) -> tuple[list[int], str]:
        code, out, _err = run_cli("status", *args, cfg=home)
        assert code == 0
        ids = [int(m.group(1)) for m in re.finditer(r"(?m)^ *(\d+)  \S", out)]  # the table's lines
        return sorted(ids), out

    ids, out = shown("--limit", "2")
    assert ids == [5, 6] and "2 of 6 jobs shown" in out and "--offset 2" in out
    ids, out = shown("--limit", "2", "--offset", "2")
    assert ids == [3, 4] and "--offset 4" in out
    ids, out = shown("--limit", "0")
    assert ids == [1, 2, 3, 4, 5, 6] and "jobs shown" not in out
    ids, out = shown()  # the default page holds them all
    assert ids == [1, 2, 3, 4, 5, 6] and "jobs shown" not in out
