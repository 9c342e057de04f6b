"""`poster trace --report DIR`: a self-contained evidence page with its images, no secrets."""

from __future__ import annotations

import hashlib
import json
import os
import time
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from PIL import Image, ImageFilter, ImageOps

from poster import cli, config, markkey, store
from tests.conftest import artwork, data_path, run_cli


class Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.images: list[str] = []
        self.links: list[str] = []
        self.scripts = 0
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "img":
            self.images.append(a["src"] or "")
        if tag in ("link", "a") and a.get("href"):
            self.links.append(a["href"] or "")
        if tag == "script":
            self.scripts += 1

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def parse(path: Path) -> Page:
    p = Page()
    p.feed(path.read_text(encoding="utf-8"))
    return p


@pytest.fixture(scope="module")
def posted(tmp_path_factory: pytest.TempPathFactory) -> tuple[config.Config, list[dict[str, Any]]]:
    home = config.load(cli.init_home(tmp_path_factory.mktemp("report") / "home"))
    dest = home.outbox / "forest.jpg"
    dest.write_bytes(data_path("revoy_forest_painting.jpg").read_bytes())
    os.utime(dest, (time.time() - 3600,) * 2)
    code, out, err = run_cli("run", "--once", "--now", cfg=home)
    assert code == 0, out + err
    return home, json.loads(run_cli("ledger", "export", cfg=home)[1])


def _secrets(home: config.Config) -> list[str]:
    key = markkey.load(home.data_dir)
    return [key.hex(), key.hex().upper()]


def _check_no_secrets(folder: Path, secrets: list[str], raw: bytes) -> None:
    for f in folder.rglob("*"):
        if f.is_file():
            data = f.read_bytes()
            assert raw not in data, f
            text = data.decode("latin-1")
            for s in secrets:
                assert s not in text, f


def test_hidden_id_report(posted: Any, tmp_path: Path) -> None:
    home, rows = posted
    row = next(r for r in rows if r["target"] == "x")
    suspect = tmp_path / "found.jpg"
    with Image.open(row["url"].removeprefix("file://")) as im:
        im.convert("RGB").save(suspect, quality=85)
    out_dir = tmp_path / "evidence"
    code, out, err = run_cli("trace", str(suspect), "--report", str(out_dir), "--json", cfg=home)
    assert code == 0, err
    result = json.loads(out)
    assert result["matches"][0]["method"] == "hidden-id"
    page_path = out_dir / "index.html"
    assert result["report"] == str(page_path)
    page = parse(page_path)
    text = " ".join(page.text)
    # every image the page shows is next to it, and nothing is fetched from elsewhere
    assert {"suspect.jpg", "posted-variant.jpg", "original.jpg", "difference.png", "overlay.png"} <= set(
        page.images
    )
    for src in page.images:
        assert "/" not in src and (out_dir / src).is_file()
    assert page.scripts == 0 and not [u for u in page.links if "://" in u]
    # the facts an artist needs
    assert row["id"] in text and row["row_hash"] in text and row["prev_hash"] in text
    assert row["variant_sha256"] in text and row["original_sha256"] in text
    assert hashlib.sha256(suspect.read_bytes()).hexdigest() in text
    assert "intact: 3 rows" in text
    assert row["posted_at"] in text and "report written" in text
    # the copies are exact
    assert hashlib.sha256((out_dir / "original.jpg").read_bytes()).hexdigest() == row["original_sha256"]
    assert hashlib.sha256((out_dir / "posted-variant.jpg").read_bytes()).hexdigest() == row["variant_sha256"]
    # secrets: the mark key never, and the visible layers' seeds are withheld
    _check_no_secrets(out_dir, _secrets(home), markkey.load(home.data_dir))
    html_text = page_path.read_text(encoding="utf-8")
    for seed in row["seeds"].values():
        assert str(seed) not in html_text


def test_perceptual_report_and_tampered_ledger(posted: Any, tmp_path: Path) -> None:
    """A mirrored, blurred, cropped copy; the ledger was tampered with: the report says so."""
    home, rows = posted
    row = next(r for r in rows if r["target"] == "x")
    with Image.open(row["url"].removeprefix("file://")) as im:
        im = im.convert("RGB")
    w, h = im.size
    copy = ImageOps.mirror(im.crop((int(w * 0.06), int(h * 0.1), int(w * 0.97), int(h * 0.9))))
    copy = copy.resize((copy.width // 4, copy.height // 4)).filter(ImageFilter.GaussianBlur(2))
    suspect = tmp_path / "repost.png"
    copy.save(suspect)
    conn = store.connect(home.db_path)
    conn.execute("UPDATE ledger SET remote_id = 'forged' WHERE seq = 3")
    conn.close()
    try:
        out_dir = tmp_path / "ev"
        unrelated = tmp_path / "other.png"
        artwork(seed=9).save(unrelated)
        code, out, err = run_cli("trace", str(suspect), str(unrelated), "--report", str(out_dir), cfg=home)
        assert code == 0, err
        first = out_dir / "01-repost" / "index.html"
        second = out_dir / "02-other" / "index.html"
        assert f"evidence report: {first}" in out
        text = " ".join(parse(first).text)
        assert "FAILED" in text and "row 3" in text
        assert row["id"] in text  # whichever method found it, the post is named
        assert (out_dir / "01-repost" / "difference.png").is_file()
        other = " ".join(parse(second).text)
        assert "No posted copy from this ledger matches" in other
        _check_no_secrets(out_dir, _secrets(home), markkey.load(home.data_dir))
    finally:
        conn = store.connect(home.db_path)
        conn.execute("UPDATE ledger SET remote_id = ? WHERE seq = 3", (rows[2]["remote_id"],))
        conn.close()
