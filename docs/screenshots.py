"""Screenshots of every `poster ui` page in English and Japanese (docs/screenshots/), and the
page load times measured on the way, printed as a table.

    .venv/bin/python docs/screenshots.py            # needs /usr/bin/chromium (apt) and Playwright

A fresh home in a temp folder: the sample artwork (Pepper&Carrot by David Revoy, CC BY 4.0)
posted to the three local targets, two more artworks scheduled into slots, one file that
cannot be posted (a .psd), and a cropped copy traced back to its post.
"""

from __future__ import annotations

import io
import statistics
import sys
import tempfile
import time
from importlib import resources
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from PIL import Image  # noqa: E402

from poster import actions, cli, config, ledger, outbox, store  # noqa: E402
from poster.dispatch import Dispatcher  # noqa: E402
from tests.synthetic import painting  # noqa: E402
from tests.ui.browser import browser, serving  # noqa: E402

OUT = REPO / "docs" / "screenshots"
PAGES = [
    ("queue", "/"),
    ("preview", "/artworks/1"),
    ("calendar", "/calendar"),
    ("trace", None),  # filled in after the trace ran
    ("ledger", "/ledger"),
    ("settings", "/settings"),
    ("health", "/health"),
]


def png(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, "PNG")
    return buf.getvalue()


def setup(root: Path) -> config.Config:
    path = cli.init_home(root / "home")
    text = path.read_text(encoding="utf-8")
    text = text.replace('artist = ""', 'artist = "Hana"').replace('timezone = ""', 'timezone = "Asia/Tokyo"')
    text = text.replace(
        "slots = []                  # e.g.", 'slots = ["mon-fri 20:00", "sat,sun 12:00"]  # e.g.'
    )
    text = text.replace(
        'policy = "light"            # pixiv\'s terms',
        'slots = ["daily 19:00"]\npolicy = "light"            # pixiv\'s terms',
    )
    # no time-stamping authority is reachable where the pictures are made: off, not "waiting"
    text = text.replace(
        'tsa_urls = ["https://freetsa.org/tsr", "http://timestamp.identrust.com"]', "tsa_urls = []"
    )
    path.write_text(text, encoding="utf-8")
    cfg = config.load(path)
    sample = resources.files("poster").joinpath("data/sample/shichimi.jpg").read_bytes()
    actions.drop_into_outbox(
        cfg,
        [actions.Upload("shichimi.jpg", sample)],
        actions.PostFields(
            title="Shichimi",
            caption="Concept art for Pepper&Carrot by David Revoy (CC BY 4.0)",
            tags="PepperAndCarrot concept",
            alt=["A young witch in a dark robe with a staff"],
        ),
    )
    conn = store.connect(cfg.db_path)
    outbox.scan(conn, cfg)
    Dispatcher(cfg, conn).run_due(ignore_schedule=True)
    actions.drop_into_outbox(
        cfg,
        [actions.Upload("yuki-usagi.png", png(painting((1200, 900), 21)))],
        actions.PostFields(title="雪うさぎ", tags="うさぎ 冬 オリジナル", alt=["雪の中の白いうさぎ"]),
    )
    actions.drop_into_outbox(
        cfg,
        [
            actions.Upload("yuugure-1.png", png(painting((900, 1200), 22))),
            actions.Upload("yuugure-2.png", png(painting((900, 1200), 23))),
        ],
        actions.PostFields(title="夕暮れの街", tags="風景", rating="general"),
    )
    (cfg.outbox / "draft.psd").write_bytes(b"8BPS" + b"\0" * 64)
    import os

    old = time.time() - 60
    os.utime(cfg.outbox / "draft.psd", (old, old))
    outbox.scan(conn, cfg)
    conn.close()
    return cfg


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    timings: dict[tuple[str, str], float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        cfg = setup(Path(tmp))
        conn = store.connect(cfg.db_path)
        row = next(r for r in ledger.rows(conn) if r["target"] == "x")
        conn.close()
        posted = Image.open(row["url"].removeprefix("file://"))
        w, h = posted.size
        crop = posted.crop((int(w * 0.12), int(h * 0.08), int(w * 0.9), int(h * 0.8))).convert("RGB")
        suspect = Path(tmp) / "found-on-a-repost-site.jpg"
        crop.save(suspect, "JPEG", quality=80)
        with serving(cfg.path) as ui, browser() as chromium:
            for lang, locale in (("en", "en-US"), ("ja", "ja-JP")):
                ctx = chromium.new_context(
                    locale=locale, viewport={"width": 1280, "height": 860}, device_scale_factor=1
                )
                ctx.set_default_timeout(120_000)
                page = ctx.new_page()
                page.goto(ui.url)
                page.goto(f"http://127.0.0.1:{ui.port}/trace")
                page.set_input_files("input[type=file]", str(suspect))
                page.click("button[type=submit]")
                page.locator("article.verdict").wait_for()
                trace_url = page.url
                page.goto(f"http://127.0.0.1:{ui.port}/health")
                page.locator("table.health").wait_for()
                for name, path in PAGES:
                    url = trace_url if path is None else f"http://127.0.0.1:{ui.port}{path}"
                    samples = []
                    for _ in range(5):
                        page.goto(url, wait_until="load")
                        samples.append(
                            page.evaluate(
                                "() => { const n = performance.getEntriesByType('navigation')[0];"
                                " return n.loadEventEnd - n.startTime; }"
                            )
                        )
                    timings[(name, lang)] = statistics.median(samples)
                    page.evaluate("() => document.querySelectorAll('img').forEach(i => i.loading = 'eager')")
                    page.wait_for_load_state("networkidle")
                    page.screenshot(path=str(OUT / f"{name}-{lang}.png"), full_page=True)
                ctx.close()
    print(f"{'page':<10} {'en (ms)':>9} {'ja (ms)':>9}   median of 5 loads, to the load event")
    for name, _path in PAGES:
        print(f"{name:<10} {timings[(name, 'en')]:>9.0f} {timings[(name, 'ja')]:>9.0f}")
    print(f"screenshots: {OUT}")


if __name__ == "__main__":
    main()
