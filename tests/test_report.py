"""`poster trace --report DIR`: a self-contained evidence page per traced image, with the copy
registered onto the post or the original, the matched keypoints, the hidden ID and its check,
a verdict that claims no more than the evidence, no secrets and nothing loaded from elsewhere."""

from __future__ import annotations

import hashlib
import json
import os
import time
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image, ImageFilter, ImageOps

from poster import cli, config, markkey, report, store, trace
from tests.conftest import artwork, copy_home, data_path, run_cli, stamped_home
from tests.servers import tsa as tsa_server
from tests.synthetic import photo_like

cv2 = pytest.importorskip("cv2")

TOKEN = "tok-3f9a1c77e2b54d0a"  # a credential in the environment: never in a page


class Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.images: list[str] = []
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.blinks: list[list[str]] = []  # the images of each blink view
        self._in_blink = False
        self.text: list[str] = []
        self.styles: list[str] = []
        self._in_style = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        self.tags.append((tag, a))
        if tag == "img":
            self.images.append(a["src"] or "")
            if self._in_blink:
                self.blinks[-1].append(a["src"] or "")
        if tag == "figure" and "blink" in (a.get("class") or ""):
            self._in_blink = True
            self.blinks.append([])
        self._in_style = tag == "style"

    def handle_endtag(self, tag: str) -> None:
        if tag == "figure":
            self._in_blink = False
        if tag == "style":
            self._in_style = False

    def handle_data(self, data: str) -> None:
        (self.styles if self._in_style else self.text).append(data)

    @property
    def words(self) -> str:
        return " ".join(" ".join(self.text).split())


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


@pytest.fixture
def credential(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("POSTER_X_TOKEN", TOKEN)
    return TOKEN


def published(row: dict[str, Any]) -> Image.Image:
    with Image.open(row["url"].removeprefix("file://")) as im:
        return im.convert("RGB")


def archived(home: config.Config, row: dict[str, Any]) -> Image.Image:
    conn = store.connect(home.db_path)
    try:
        rel = conn.execute(
            "SELECT archive_path FROM originals WHERE sha256 = ?", (row["original_sha256"],)
        ).fetchone()[0]
    finally:
        conn.close()
    with Image.open(home.data_dir / rel) as im:
        return im.convert("RGB")


def check_self_contained_and_secret_free(folder: Path, home: config.Config, secrets: list[str]) -> None:
    """Every page in `folder`: its images beside it, nothing from elsewhere (no URL in any
    attribute, no CSS url(), no script, frame, object, link or base), a CSP that allows only
    that; no file holds the mark key (raw or hex) or a credential."""
    key = markkey.load(home.data_dir)
    pages = list(folder.rglob("index.html"))
    assert pages
    for page_path in pages:
        page = parse(page_path)
        for src in page.images:
            assert "/" not in src and ":" not in src and (page_path.parent / src).is_file(), src
        for tag, attrs in page.tags:
            assert tag not in ("script", "iframe", "object", "embed", "link", "base", "form"), tag
            for name, value in attrs.items():
                v = (value or "").strip().lower()
                if name in ("src", "href", "srcset", "action", "data", "poster", "background"):
                    assert "://" not in v and not v.startswith(("//", "data:", "javascript:")), (name, v)
                assert not name.startswith("on"), name  # no inline handlers either
        css = " ".join(page.styles).lower()
        assert "url(" not in css and "@import" not in css
        csp = [a for t, a in page.tags if t == "meta" and a.get("http-equiv") == "Content-Security-Policy"]
        assert csp and "default-src 'none'" in (csp[0].get("content") or "")
    for f in folder.rglob("*"):
        if f.is_file():
            data = f.read_bytes()
            assert key not in data, f
            text = data.decode("latin-1")
            for s in [key.hex(), key.hex().upper(), *secrets]:
                assert s not in text, f


def close_fraction(a: Path, b: Path, level: int = 30) -> float:
    x = np.asarray(Image.open(a).convert("RGB"), np.int16)
    y = np.asarray(Image.open(b).convert("RGB"), np.int16)
    assert x.shape == y.shape
    return float((np.abs(x - y).max(axis=2) < level).mean())


def test_exact_post_report_shows_the_registered_copy_and_the_keypoints(
    posted: Any, tmp_path: Path, credential: str
) -> None:
    """A turned, cropped, shrunk copy of the X post: named by its hidden ID; the page shows the
    copy registered onto the posted file, the matched keypoints and how the ID was read."""
    home, rows = posted
    row = next(r for r in rows if r["target"] == "x")
    im = published(row)
    w, h = im.size
    turned = im.rotate(6, resample=Image.Resampling.BICUBIC)
    box = (int(w * 0.2), int(h * 0.2), int(w * 0.8), int(h * 0.8))  # 36 % of the area
    copy = turned.crop(box).resize((int(w * 0.6 * 0.7), int(h * 0.6 * 0.7)), Image.Resampling.LANCZOS)
    suspect = tmp_path / "found.jpg"
    copy.save(suspect, quality=80)
    out_dir = tmp_path / "evidence"
    code, out, err = run_cli("trace", str(suspect), "--report", str(out_dir), "--json", cfg=home)
    assert code == 0, err
    result = json.loads(out)
    assert result["verdict"] == "exact post" and result["matches"][0]["id"] == row["id"]
    page_path = out_dir / "index.html"
    assert result["report"] == str(page_path)
    page = parse(page_path)
    text = page.words
    # the verdict, in words, first
    assert f"Exact post: the x post of {row['posted_at']}" in text
    assert (
        f"carries the hidden ID {row['id']}" in text
        and "check (a CRC-32 keyed to this installation) passed" in text
    )
    # the hidden ID and its check
    assert "how it was read" in text and "passed: CRC-32" in text and f"row {row['seq']}" in text
    read = result["hidden_id"]["read"]
    assert {
        "blind": "blind: from the copy alone",
        "original, found geometry": "through the geometry found",
    }.get(read, "with the archived original") in text
    # registered onto the posted file: same frame as that file, blink view of the two
    shown = {"reference.png", "registered.png", "overlay.png", "difference.png", "keypoints.jpg"}
    assert shown | {"suspect.jpg", "posted-variant.jpg", "original.jpg"} <= set(page.images)
    assert ["reference.png", "registered.png"] in page.blinks
    sizes = {
        Image.open(out_dir / n).size
        for n in ("reference.png", "registered.png", "overlay.png", "difference.png")
    }
    assert len(sizes) == 1
    (rw, rh), (vw, vh) = sizes.pop(), Image.open(out_dir / "posted-variant.jpg").size
    assert abs(rw / rh - vw / vh) < 0.01
    # the copy lands where it came from: about its 36 % of the post agrees with the post
    # (a wrong geometry puts the copy's pixels on other parts of the picture)
    assert 0.25 < close_fraction(out_dir / "registered.png", out_dir / "reference.png") < 0.5
    diff = np.asarray(Image.open(out_dir / "difference.png").convert("L"), np.float32)
    assert diff.mean() < 12  # ×4, and zero outside the copy
    # the keypoint image: both pictures side by side, lines between them
    kp = Image.open(out_dir / "keypoints.jpg")
    assert kp.width <= report.KEYPOINT_WIDTH and kp.height <= report.KEYPOINT_HEIGHT
    assert "Lines join keypoints of your archived original (left) and of the copy (right)" in text
    # the facts an artist needs
    assert row["row_hash"] in text and row["prev_hash"] in text
    assert row["variant_sha256"] in text and row["original_sha256"] in text
    assert hashlib.sha256(suspect.read_bytes()).hexdigest() in text
    assert "intact: 3 rows" in text and "report written" in text
    assert hashlib.sha256((out_dir / "original.jpg").read_bytes()).hexdigest() == row["original_sha256"]
    assert hashlib.sha256((out_dir / "posted-variant.jpg").read_bytes()).hexdigest() == row["variant_sha256"]
    check_self_contained_and_secret_free(out_dir, home, [credential])
    html_text = page_path.read_text(encoding="utf-8")
    for seed in row["seeds"].values():  # the visible layers' seeds are withheld
        assert str(seed) not in html_text


def test_unposted_original_report_names_no_post(posted: Any, tmp_path: Path, credential: str) -> None:
    """The artist's own file: "not from any post as posted"; the page shows it registered onto
    the original, beside each post's file, and names no post anywhere."""
    home, rows = posted
    original = archived(home, rows[0])
    suspect = tmp_path / "my-file.jpg"
    original.resize((original.width // 2, original.height // 2), Image.Resampling.LANCZOS).save(
        suspect, quality=90
    )
    out_dir = tmp_path / "evidence"
    code, out, err = run_cli("trace", str(suspect), "--report", str(out_dir), "--json", cfg=home)
    assert code == 0, err
    assert json.loads(out)["verdict"] == "not from any post"
    page = parse(out_dir / "index.html")
    text = page.words
    assert "Your artwork “forest.jpg”, not from any post as posted" in text
    assert "none of the visible layers" in text and "No post is named" in text
    assert "Exact post" not in text and "Ledger row of the post" not in text
    html_text = (out_dir / "index.html").read_text(encoding="utf-8")
    assert not [r["id"] for r in rows if r["id"] in html_text]  # no post's ID, not even listed
    assert not [r["url"] for r in rows if r["url"] in html_text]
    assert {"reference.png", "registered.png", "overlay.png", "keypoints.jpg"} <= set(page.images)
    assert "The copy registered onto your archived original" in text
    # the whole picture: registered, it covers (nearly) all of the original
    assert close_fraction(out_dir / "registered.png", out_dir / "reference.png") > 0.9
    # beside each of the three posts' files
    assert {"posts-copy.png", "posts-1.png", "posts-2.png", "posts-3.png"} <= set(page.images)
    assert "none could be read" in text  # no hidden ID
    check_self_contained_and_secret_free(out_dir, home, [credential])


def _rework_page(posted: Any, tmp_path: Path, colour: float | None) -> tuple[Any, Any]:
    """The evidence page of a likely rework (the verdict comes from trace; here one is written
    directly), and what report.write returned."""
    home, rows = posted
    original = archived(home, rows[0])
    redrawn = ImageOps.posterize(original.filter(ImageFilter.ModeFilter(7)), 3).resize((400, 566))
    suspect = tmp_path / "redrawn.jpg"
    redrawn.save(suspect, quality=85)
    art = trace.Artwork(
        rows[0]["original_sha256"], "forest.jpg", "rework", 0.83, similarity=0.97, regions=0.81, colour=colour
    )
    matches = [
        trace.Match(r["id"], r["target"], r["url"], r["posted_at"], "rework", 0.83, r, post=trace.REWORK)
        for r in rows
    ]
    result = trace.Result(matches, verdict=trace.REWORK, artwork=art)
    conn = store.connect(home.db_path)
    try:
        written = report.write(tmp_path / "ev", suspect, redrawn, result, conn, home.data_dir)
    finally:
        conn.close()
    return parse(written.page), written


def test_rework_report_of_grey_pictures_states_the_grey_threshold(posted: Any, tmp_path: Path) -> None:
    """Two grey pictures have no colour check: the page says which threshold applied instead."""
    page, _written = _rework_page(posted, tmp_path, None)
    text = page.words
    assert "Likely rework of your artwork “forest.jpg” (score 0.83)" in text
    assert "similarity 0.97; reported from 0.95 for pictures without colour" in text
    assert "the least similar part: 0.81; from 0.50" in text
    assert "whatever hues they were turned to (" not in text
    assert "rework-copy-colours.png" not in set(page.images)


def test_rework_report_compares_thumbnails(posted: Any, tmp_path: Path) -> None:
    """A likely rework: the page says so with the score, names no post, and shows the
    thumbnails and the layouts compared."""
    page, written = _rework_page(posted, tmp_path, 0.96)
    text = page.words
    assert "Likely rework of your artwork “forest.jpg” (score 0.83)" in text
    assert "similarity 0.97" in text and "no post is named" in text and "Exact post" not in text
    assert (
        "the least similar part: 0.81" in text
        and "whatever hues they were turned to (0.96; from 0.80)" in text
    )
    assert {
        "rework-copy.png",
        "rework-original.png",
        "rework-copy-layout.png",
        "rework-original-layout.png",
        "rework-copy-colours.png",
        "rework-original-colours.png",
    } <= set(page.images)
    assert ["rework-original.png", "rework-copy.png"] in page.blinks
    assert "Posts of the artwork it reworks (none is named)" in text
    assert (
        Image.open(written.page.parent / "rework-copy.png").size
        == Image.open(written.page.parent / "rework-original.png").size
    )
    check_self_contained_and_secret_free(written.page.parent, posted[0], [])


@pytest.mark.slow  # one of the longest scenarios (10-25 s): CI=true and --slow run it
def test_a_page_per_image_and_a_tampered_ledger(
    posted: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Several images: one page each (01-…, 02-…, 03-…). The ledger was tampered with: every
    page says so. An unrelated image's page says "No match" and shows no registration. A plain
    re-save of the post that the local features miss (as they miss flat vector art) is named
    by the blind read, which says nothing about where the copy sits: the page finds that itself
    by matching the copy's and the original's keypoints."""
    home, rows = posted
    by_features = trace.Tracer._by_features

    def missed_plain(self: trace.Tracer, image: Image.Image, read_id: bool) -> trace.Result | None:
        return None if image.size == im.size else by_features(self, image, read_id=read_id)

    monkeypatch.setattr(trace.Tracer, "_by_features", missed_plain)
    row = next(r for r in rows if r["target"] == "x")
    im = published(row)
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
        plain = tmp_path / "plain.jpg"
        im.save(plain, quality=85)
        files = (str(suspect), str(unrelated), str(plain))
        code, out, err = run_cli("trace", *files, "--report", str(out_dir), cfg=home)
        assert code == 0, err
        first = out_dir / "01-repost" / "index.html"
        second = out_dir / "02-other" / "index.html"
        third = out_dir / "03-plain" / "index.html"
        for page in (first, second, third):
            assert f"evidence report: {page}" in out
        text = parse(first).words
        assert "FAILED" in text and "row 3" in text
        assert "forest.jpg" in text  # the artwork is found, however far the evidence goes
        assert (out_dir / "01-repost" / "registered.png").is_file()
        other = parse(second)
        assert "No match" in other.words and "FAILED" in other.words
        assert "registered.png" not in other.images and not (out_dir / "02-other" / "original.jpg").exists()
        blind = parse(third)
        assert f"Exact post: the x post of {row['posted_at']}" in blind.words
        assert "blind: from the copy alone" in blind.words and "FAILED" in blind.words
        assert (
            "found for this report by matching the keypoints of the copy and of the original" in blind.words
        )
        assert {"registered.png", "reference.png", "keypoints.jpg"} <= set(blind.images)
        assert (
            close_fraction(out_dir / "03-plain" / "registered.png", out_dir / "03-plain" / "reference.png")
            > 0.9
        )
        check_self_contained_and_secret_free(out_dir, home, [])
    finally:
        conn = store.connect(home.db_path)
        conn.execute("UPDATE ledger SET remote_id = ? WHERE seq = 3", (rows[2]["remote_id"],))
        conn.close()


@pytest.fixture(scope="module")
def stamped(
    tmp_path_factory: pytest.TempPathFactory, tsa_pki: tuple[tsa_server.Pki, tsa_server.Pki]
) -> config.Config:
    """One artwork posted to three targets, its original and the ledger head time-stamped by
    the local TSA."""
    return stamped_home(tmp_path_factory.mktemp("stamped") / "home", *tsa_pki)


def test_the_trace_report_shows_the_time_stamps(stamped: config.Config, tmp_path: Path) -> None:
    """`poster trace --report`: "this artwork existed at … according to …", each token checked."""
    cfg = copy_home(stamped, tmp_path / "home")
    posted = next((cfg.data_dir / "posted" / "pixiv").rglob("*.png"))
    code, out, err = run_cli("trace", str(posted), "--report", str(tmp_path / "r"), cfg=cfg)
    assert code == 0, out + err
    page = (tmp_path / "r" / "index.html").read_text(encoding="utf-8")
    assert "Time-stamps (RFC 3161)" in page
    assert "existed at" in page and "according to local TSA" in page
    assert "was recorded by" in page and "RFC 3161 token verified" in page
    assert "1 matched; time-stamp tokens that do not verify: 0" in page  # ledger verify's check


def test_registration_puts_the_copy_back_in_place() -> None:
    """The registered view is the copy warped back onto the reference with the geometry given:
    with the right homography it matches the reference (up to the copy's lost detail); a map
    3 px off does not."""
    with Image.open(data_path("kodim05.jpg")) as im:  # texture everywhere: a shift shows
        ref = im.convert("RGB")
    w, h = ref.size
    m = cv2.getRotationMatrix2D((w / 2, h / 2), 8, 0.6)
    true_h = np.vstack([m, [0, 0, 1]]) @ np.array([[1, 0, -60], [0, 1, -40], [0, 0, 1.0]])
    true_h[2, :2] = (2e-5, -1e-5)  # a little perspective
    suspect = Image.fromarray(cv2.warpPerspective(np.asarray(ref), true_h, (420, 330)))

    def error(h: np.ndarray) -> float:
        views = report.registered_views(suspect, ref, h)
        assert views is not None
        _w, mask, _s = report.register(suspect, ref.size, h)
        inner = cv2.erode(mask.astype(np.uint8), np.ones((7, 7), np.uint8)) > 0
        assert inner.mean() > 0.4  # the copy covers about half of the reference
        a = np.asarray(views["registered"], np.float32)
        b = np.asarray(views["reference"], np.float32)
        return float(np.abs(a - b)[inner].mean())

    assert error(true_h) < 12  # measured 8
    assert error(np.array([[1, 0, 3], [0, 1, 0], [0, 0, 1.0]]) @ true_h) > 20  # measured 29


def test_keypoint_image_draws_the_matches() -> None:
    a, b = photo_like(900, 600, 1), photo_like(300, 500, 2)
    pairs = np.array([[10 * i, 5 * i, 3 * i, 8 * i] for i in range(150)], np.float32)
    im, drawn = report.keypoint_image(a, b, pairs)
    assert drawn == report.KEYPOINT_LINES
    assert im.width <= report.KEYPOINT_WIDTH and im.height <= report.KEYPOINT_HEIGHT
    none, zero = report.keypoint_image(a, b, pairs[:0])
    assert zero == 0 and none.size == im.size
