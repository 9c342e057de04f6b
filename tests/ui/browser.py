"""A real `poster ui` server on a free port and Debian's Chromium driven by Playwright
(no browser download: PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1, `executable_path`). Shared by the
browser tests and docs/screenshots.py."""

from __future__ import annotations

import os
import shutil
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

CHROMIUM = os.environ.get("POSTER_CHROMIUM", "/usr/bin/chromium")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    # a name that resolves to this machine, as a DNS-rebinding attack would make it
    "--host-resolver-rules=MAP rebind.test 127.0.0.1",
]


def chromium_missing() -> str | None:
    """Why the browser tests cannot run here, or None."""
    if not (Path(CHROMIUM).exists() or shutil.which(CHROMIUM)):
        return f"{CHROMIUM} not installed (apt-get install chromium)"
    try:
        import playwright  # noqa: F401
    except ImportError:
        return "playwright is not installed (pip install -e '.[test]')"
    return None


@contextmanager
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    os.environ.setdefault("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        try:
            yield b
        finally:
            b.close()


@contextmanager
def serving(config_path: Path, *, daemon: bool = True) -> Iterator[Any]:
    """`poster ui` in this process (a thread), as the command runs it."""
    from poster.ui.server import Launch

    launch = Launch(config_path, port=0, daemon=daemon)
    thread = threading.Thread(target=launch.serve, name="poster-ui", daemon=True)
    thread.start()
    deadline = time.time() + 20
    while (launch.server is None or not launch.server.started) and time.time() < deadline:
        time.sleep(0.05)
    try:
        yield launch
    finally:
        launch.stop()
        thread.join(timeout=60)
