"""Launching `poster ui` as a user does: a real process, a real port, the printed URL."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

from poster import config
from poster.errors import UserError
from poster.ui.server import Launch, url_for


def _start(cfg: config.Config, *args: str) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "poster", "--config", str(cfg.path), "ui", "--no-browser", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "LANG": "C.UTF-8"},
    )
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    port = int(line.split(":")[2].split("/")[0])
    deadline = time.time() + 30
    while time.time() < deadline:  # serving (and its signal handling) has started
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2)
        except urllib.error.HTTPError:
            break
        except OSError:
            time.sleep(0.1)
    return proc, line


def _stop(proc: subprocess.Popen[str]) -> str:
    proc.send_signal(signal.SIGINT)
    try:
        _out, err = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise
    return err


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *a, **k):  # type: ignore[no-untyped-def]
        return None


def test_poster_ui_prints_one_url_with_a_secret_and_serves_it(home: config.Config) -> None:
    proc, line = _start(home, "--port", "0")
    try:
        m = re.fullmatch(r"http://127\.0\.0\.1:(\d+)/\?token=([A-Za-z0-9_-]{40,})", line)
        assert m, line
        port, token = int(m.group(1)), m.group(2)
        assert port > 0
        opener = urllib.request.build_opener(_NoRedirect)
        with pytest.raises(urllib.error.HTTPError) as e:
            opener.open(f"http://127.0.0.1:{port}/")
        assert e.value.code == 401
        with pytest.raises(urllib.error.HTTPError) as e:
            opener.open(line)
        assert e.value.code == 303 and e.value.headers["location"] == "/"
        cookie = e.value.headers["set-cookie"].split(";")[0]
        page = opener.open(urllib.request.Request(f"http://127.0.0.1:{port}/", headers={"Cookie": cookie}))
        assert page.status == 200 and b"poster" in page.read()
        # the daemon runs inside: the data folder's run lock is taken
        from poster import daemon

        assert daemon.is_running(home)
    finally:
        err = _stop(proc)
    assert proc.returncode == 0, err
    assert token not in err  # the secret is printed once, on stdout, and never logged


def test_a_second_ui_only_shows_when_a_daemon_runs(home: config.Config) -> None:
    first, _line = _start(home, "--port", "0")
    try:
        second, line = _start(home, "--port", "0")
        try:
            assert line.startswith("http://127.0.0.1:")
        finally:
            err = _stop(second)
        assert "only shows and edits" in err
    finally:
        _stop(first)


def test_a_non_loopback_host_is_refused_unless_forced(home: config.Config) -> None:
    with pytest.raises(UserError, match="not a loopback address"):
        Launch(home.path, host="0.0.0.0", daemon=False)
    warnings: list[str] = []
    launch = Launch(home.path, host="0.0.0.0", port=0, daemon=False, allow_remote=True, warn=warnings.append)
    try:
        assert warnings and "0.0.0.0" in warnings[0]
        assert launch.state.host_allowed(f"0.0.0.0:{launch.port}")
        assert not launch.state.host_allowed(f"localhost:{launch.port}")  # bound elsewhere
    finally:
        launch.close()


def test_a_busy_port_is_a_one_line_error(home: config.Config) -> None:
    launch = Launch(home.path, port=0, daemon=False)
    try:
        with pytest.raises(UserError, match="--port 0"):
            Launch(home.path, port=launch.port, daemon=False)
    finally:
        launch.close()


def test_ipv6_urls_have_brackets() -> None:
    assert url_for("::1", 8765, "s") == "http://[::1]:8765/?token=s"
    assert url_for("127.0.0.1", 1, "s") == "http://127.0.0.1:1/?token=s"


def test_ui_releases_the_run_lock_when_it_stops(home: config.Config) -> None:
    from poster import daemon

    launch = Launch(home.path, port=0)
    assert launch.state.daemon == "inside" and daemon.is_running(home)
    launch.close()
    time.sleep(0.1)
    assert not daemon.is_running(home)
    with daemon.run_lock(home):  # `poster run` can take the folder now
        assert daemon.is_running(home)
