"""The pages in a real Chromium against a real `poster ui` (daemon inside, local adapter).

Skipped without Chromium locally; under CI=true they must run (.ci/run installs chromium)."""

from __future__ import annotations

import hashlib
import os
import re
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from playwright.sync_api import expect

from poster import config, ledger, store
from tests.ui.browser import browser, chromium_missing, serving
from tests.ui.conftest import jpeg_bytes, png_bytes, set_top_level

missing = chromium_missing()
if missing and os.environ.get("CI") != "true":
    pytest.skip(missing, allow_module_level=True)

TIMEOUT = 90_000  # ms: rendering and tracing share two cores with the rest of the suite


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    assert missing is None, missing  # under CI=true a missing browser is a failure
    with browser() as b:
        yield b


@pytest.fixture
def ui(home: config.Config) -> Iterator[Any]:
    with serving(home.path) as launch:
        yield launch


@pytest.fixture
def page(chromium: Any, ui: Any) -> Iterator[Any]:
    context = chromium.new_context(locale="en-US", accept_downloads=True)
    context.set_default_timeout(TIMEOUT)
    p = context.new_page()
    p.goto(ui.url)
    yield p
    context.close()


def _until(check: Any, timeout: float = TIMEOUT / 1000) -> None:
    deadline = time.time() + timeout
    while not check():
        assert time.time() < deadline, "timed out"
        time.sleep(0.2)


def _rows(home: config.Config) -> list[dict[str, Any]]:
    conn = store.connect(home.db_path)
    try:
        return ledger.rows(conn)
    finally:
        conn.close()


def test_login_secret_and_host(chromium: Any, ui: Any) -> None:
    ctx = chromium.new_context()
    p = ctx.new_page()
    base = f"http://127.0.0.1:{ui.port}"
    r = p.goto(base + "/")
    assert r.status == 401
    p.goto(ui.url)
    assert p.url == base + "/"  # the token left the address bar
    assert p.locator("h1").first.inner_text() == "New post"
    (cookie,) = ctx.cookies()
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    assert p.evaluate("document.cookie") == ""  # scripts cannot read the session
    # DNS rebinding: another name for 127.0.0.1 gets nothing, not even with the token
    r = p.goto(f"http://rebind.test:{ui.port}/?token={ui.secret}")
    assert r.status == 403
    ctx.close()


class _Attacker(BaseHTTPRequestHandler):
    target = ""

    def do_GET(self) -> None:
        body = (
            f'<form id=f method=post action="{self.target}/settings">'
            "<input name=artist value=pwned><input name=csrftoken value=x></form>"
            "<script>document.getElementById('f').submit()</script>"
        ).encode()
        self.send_response(200)
        self.send_header("content-type", "text/html")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


def test_a_page_on_another_origin_cannot_change_settings(page: Any, ui: Any, home: config.Config) -> None:
    """Same host, other port: same-site, so a SameSite=Strict cookie alone would go along;
    Sec-Fetch-Site (cross-origin) is what refuses it."""
    _Attacker.target = f"http://127.0.0.1:{ui.port}"
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Attacker)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with page.expect_response(lambda r: r.url.endswith("/settings")) as answer:
            page.goto(f"http://127.0.0.1:{server.server_address[1]}/")
        assert answer.value.status == 403
    finally:
        server.shutdown()
        server.server_close()
    assert config.load(home.path).artist == ""


@pytest.mark.slow  # one of the longest scenarios (10-25 s): CI=true and --slow run it
def test_drop_queue_post_ledger_export(page: Any, home: config.Config, tmp_path: Path) -> None:
    art = tmp_path / "rabbit.png"
    art.write_bytes(png_bytes((800, 600), seed=11))
    # a real drag and drop: a File in a DataTransfer, dropped on the zone
    data = list(art.read_bytes())
    handle = page.evaluate_handle(
        """(bytes) => { const dt = new DataTransfer();
            dt.items.add(new File([new Uint8Array(bytes)], 'rabbit.png', {type: 'image/png'}));
            return dt; }""",
        data,
    )
    page.dispatch_event("[data-dropzone]", "drop", {"dataTransfer": handle})
    assert page.locator("[data-picked] img").count() == 1
    page.fill("input[name=title]", "Snow rabbit")
    page.fill("input[name=tags]", "rabbit, winter")
    page.uncheck("input[name=targets][value=xfolio]")
    page.click("button[type=submit]")
    page.wait_for_selector("[data-status].ok")
    # the daemon inside poster ui takes it in and posts; the queue refreshes itself
    expect(page.locator("tr.job[data-state=posted]")).to_have_count(2, timeout=TIMEOUT)
    assert "Snow rabbit" in page.inner_text("#queue")
    rows = _rows(home)
    assert sorted(r["target"] for r in rows) == ["pixiv", "x"]

    page.click("nav >> text=Ledger")
    page.fill("input[name=q]", "snow")
    page.click("form.filters button")
    for r in rows:
        assert page.locator(f'tr[data-ledger-id="{r["id"]}"]').count() == 1
    with page.expect_download() as dl:
        page.click("text=Export CSV")
    text = Path(dl.value.path()).read_text(encoding="utf-8")
    assert text.startswith("id,target,url,posted_at")
    assert {r["id"] for r in rows} <= set(re.findall(r"^([0-9a-f]{12}),", text, re.M))


def test_preview_shows_the_posted_bytes_at_100_percent(page: Any, ui: Any, home: config.Config) -> None:
    set_top_level(home.path, "approve", "true")
    page.set_input_files(
        "input[type=file][name=images]",
        files=[{"name": "fox.png", "mimeType": "image/png", "buffer": png_bytes((1000, 700), seed=12)}],
    )
    page.click("button[type=submit]")
    expect(page.locator("tr.job[data-state=ready]")).to_have_count(3, timeout=TIMEOUT)
    assert page.locator(".state-approve").count() >= 3
    page.click("#queue h3 a")
    variant = page.locator("img[data-variant]").first
    variant.wait_for()
    _until(
        lambda: page.evaluate(
            "() => [...document.querySelectorAll('img')].every(i => i.complete && i.naturalWidth > 0)"
        )
    )
    shown = {}
    for img in page.locator("img[data-variant]").all():
        job_idx = img.get_attribute("data-variant")
        shown[int(job_idx.split("-")[0])] = page.request.get(img.evaluate("i => i.currentSrc")).body()
    # zoom: one image pixel per screen pixel
    frame = page.locator("[data-zoom]").nth(1)
    frame.click()
    assert "actual" in frame.get_attribute("class")
    natural, drawn = page.evaluate(
        "() => { const i = document.querySelectorAll('[data-zoom]')[1].querySelector('img');"
        " return [i.naturalWidth, i.getBoundingClientRect().width * devicePixelRatio]; }"
    )
    assert abs(natural - drawn) < 1.5
    assert _rows(home) == []  # nothing posted before approval
    page.click("text=Approve all")
    page.wait_for_url(re.compile(r"msg="))
    page.goto(page.url.split("?")[0])
    _until(lambda: len(_rows(home)) == 3)
    rows = _rows(home)
    assert len(rows) == 3
    for r in rows:
        published = Path(r["url"].removeprefix("file://")).read_bytes()
        assert published == shown[r["job_id"]]
        assert hashlib.sha256(published).hexdigest() == r["variant_sha256"]


def test_trace_names_the_post_of_a_cropped_copy(page: Any, home: config.Config, tmp_path: Path) -> None:
    page.set_input_files(
        "input[type=file][name=images]",
        files=[{"name": "cat.png", "mimeType": "image/png", "buffer": png_bytes((900, 700), seed=13)}],
    )
    page.click("button[type=submit]")
    expect(page.locator("tr.job[data-state=posted]")).to_have_count(3, timeout=TIMEOUT)
    row = next(r for r in _rows(home) if r["target"] == "pixiv")
    posted = Image.open(row["url"].removeprefix("file://"))
    w, h = posted.size
    crop = posted.crop((int(w * 0.1), int(h * 0.05), int(w * 0.95), int(h * 0.85)))
    page.click("nav >> text=Trace")
    page.set_input_files(
        "input[type=file][name=images]",
        files=[{"name": "found.jpg", "mimeType": "image/jpeg", "buffer": jpeg_bytes(crop, 80)}],
    )
    page.click("button[type=submit]")
    verdict = page.locator("article.verdict")
    verdict.wait_for()
    assert verdict.locator(f'[data-ledger-id="{row["id"]}"]').count() == 1
    assert "pixiv post" in verdict.inner_text()
    with page.context.expect_page() as report:
        page.click("text=Open the evidence report")
    report.value.wait_for_load_state()
    assert row["id"] in report.value.content()


def test_settings_errors_in_japanese(page: Any, home: config.Config) -> None:
    page.click("button[lang=ja]")  # the switch in the page
    page.click("nav >> text=設定")
    page.fill("input[name=timezone]", "Mars/Olympus")
    page.fill("input[name='targets.x.min_interval_minutes']", "-3")
    page.click("button[type=submit] >> text=保存する")
    assert "保存していません" in page.inner_text("[role=alert].flash")
    error = page.locator("[data-error-for='targets.x.min_interval_minutes']")
    assert error.inner_text() == "0 以上にしてください"
    # beside its field: inside the same label as the input
    assert page.locator("label:has(input[name='targets.x.min_interval_minutes']) .field-error").count() == 1
    assert "Mars/Olympus" in page.inner_text("[data-error-for=timezone]")
    assert config.load(home.path).timezone is None
    page.fill("input[name=timezone]", "Asia/Tokyo")
    page.fill("input[name='targets.x.min_interval_minutes']", "10")
    page.click("button[type=submit] >> text=保存する")
    assert "保存しました" in page.inner_text("[role=status]")
    assert config.load(home.path).timezone == "Asia/Tokyo"
