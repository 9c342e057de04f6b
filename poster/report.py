"""Evidence report: one self-contained HTML page (plus the images next to it) per traced image.

Made to be attached to a takedown request or shown to a platform's support desk by someone
who has never heard of poster. The page leads with the verdict in words that claim no more
than the evidence shows (`poster.trace`), then shows that evidence so a person can check it:

* **registration** — the copy warped (OpenCV) onto the post it came from, or onto the
  archived original, with the homography trace found (or, for a copy named by its hidden ID
  alone, one found here by matching the two images' keypoints): an overlay, a blink view
  (pure CSS: the copy and the reference alternate in place) and the difference;
* **matched keypoints** — lines between the keypoints of the original and of the copy that
  agree on that geometry (RANSAC inliers), in one compact image;
* **hidden ID** — the ID decoded, how it was read (from the copy alone, or with the archived
  original through the geometry found) and its check (CRC-32 keyed to this installation);
* **visible layers** — how much of each post's watermark, signature and noise the copy shows;
* **rework** — for a likely rework, the two pictures at thumbnail size and the lightness
  layout the composition match compares;
* **time-stamps** — the RFC 3161 tokens of the original and of the ledger head that pins the
  post's row, each verified again here (proof that the artist had the art first);
* then the ledger row, the verification of the whole hash chain (time-stamped heads
  included), SHA-256 of every file and the times.

Each part is written by a function of its own (`_..._section(ev)`, returning HTML), so a part
can be added (a time stamp of the ledger head, issue 15) without touching the others.

Never in the report: the mark key, credentials, and the random seeds of the visible layers
(a seed redraws the exact watermark layout, which would help someone remove it); the seeds
stay in the ledger, and `poster ledger export` shows them to the owner. The page loads
nothing from elsewhere (its Content-Security-Policy allows only the images beside it and
its own style) and runs no script.
"""

from __future__ import annotations

import colorsys
import html
import json
import math
import shutil
import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from cryptography import x509
from PIL import Image, ImageOps

from poster import __version__, i18n, imaging, ledger, store
from poster.errors import InputError
from poster.i18n import _
from poster.trace import (
    ARTWORK,
    EXACT,
    MAX_TRACE_PIXELS,
    NOTHING,
    READ_BLIND,
    READ_GEOMETRY,
    REWORK,
    UNPOSTED,
    VERDICT_LABEL,
    Match,
    Result,
    variant_path,
)

PREVIEW_EDGE = 1200  # longest edge of the plain image previews
REGISTER_EDGE = 900  # longest edge of the registered views (overlay, blink, difference)
KEYPOINT_WIDTH = 1150  # the keypoint image: both pictures side by side within this width ...
KEYPOINT_HEIGHT = 520  # ... and at most this height
KEYPOINT_LINES = 60  # at most this many matches drawn (evenly chosen), so the lines stay legible
THUMB = 256  # edge of the rework thumbnails
POSTS_EDGE = 700  # long edge of the copy-beside-each-post views
MAX_POSTS_SHOWN = 4
OUTSIDE_DIM = 0.35  # brightness of the reference where the copy has no pixels


@dataclass(frozen=True)
class Written:
    page: Path
    files: tuple[Path, ...]


@dataclass
class Evidence:
    """What the sections of one page share: the trace result and the files and geometry
    behind it. Sections add the images they write to `made` and `files`."""

    out_dir: Path
    suspect_path: Path
    suspect: Image.Image
    result: Result
    conn: sqlite3.Connection
    data_dir: Path | None
    now: str
    made: list[Path] = field(default_factory=list)
    files: list[tuple[str, Path, str]] = field(default_factory=list)  # label, file, SHA-256 of source
    original: Image.Image | None = None
    original_file: Path | None = None
    variant: Image.Image | None = None
    variant_file: Path | None = None
    geometry: np.ndarray | None = None  # 3 x 3: original px -> suspect px
    pairs: np.ndarray | None = None  # (n, 4): original x, y -> suspect x, y (inliers)
    located_here: bool = False  # the geometry was found for this report, not by trace
    trust: list[x509.Certificate] = field(default_factory=list)  # RFC 3161 trust anchors

    @property
    def best(self) -> Match | None:
        return self.result.matches[0] if self.result.matches else None

    @property
    def exact(self) -> Match | None:
        """The post named, only when the verdict names one."""
        best = self.best
        return best if self.result.verdict == EXACT and best is not None and best.post == "exact" else None

    @property
    def artwork_key(self) -> str | None:
        if self.result.artwork is not None:
            return self.result.artwork.key
        best = self.best
        return str(best.row["original_sha256"]) if best is not None else None

    def save(self, name: str, im: Image.Image, **params: Any) -> str:
        path = self.out_dir / name
        im.save(path, **params)
        self.made.append(path)
        return name


def _copy(src: Path, out: Path, stem: str) -> Path:
    dest = out / f"{stem}{src.suffix.lower() or '.img'}"
    shutil.copyfile(src, dest)
    return dest


def _fit(im: Image.Image, edge: int = PREVIEW_EDGE) -> Image.Image:
    im = _rgb(im)
    scale = edge / max(im.size)
    if scale < 1:
        im = im.resize(
            (max(1, round(im.width * scale)), max(1, round(im.height * scale))), Image.Resampling.LANCZOS
        )
    return im


def _rgb(im: Image.Image) -> Image.Image:
    """RGB, transparency over white (as the platforms without alpha show it)."""
    if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
        rgba = im.convert("RGBA")
        return Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba).convert("RGB")
    return im.convert("RGB")


def _load(path: Path | None) -> Image.Image | None:
    if path is None:
        return None
    try:
        return imaging.load(imaging.read_file(path), str(path), max_pixels=MAX_TRACE_PIXELS)
    except (InputError, OSError):
        return None


def _archived_original(conn: sqlite3.Connection, data_dir: Path | None, key: str | None) -> Path | None:
    if data_dir is None or key is None:
        return None
    found = conn.execute(
        "SELECT archive_path FROM originals WHERE sha256 = ? ORDER BY rowid LIMIT 1", (key,)
    ).fetchone()
    if found is None:
        return None
    path = data_dir / found[0]
    return path if path.is_file() else None


# -- geometry and images ------------------------------------------------------------------------
def _locate(ev: Evidence) -> None:
    """The geometry the registration and the keypoint image show: what trace found, else
    (a copy named by its hidden ID alone, or a perceptual match, whose map has no keypoint
    pairs) the original and the copy matched directly."""
    art = ev.result.artwork
    if art is not None and art.geometry is not None:
        ev.geometry, ev.pairs = np.asarray(art.geometry, np.float64), art.pairs
    if ev.pairs is not None or ev.original is None or ev.result.verdict in (REWORK, NOTHING):
        return
    from poster import features

    hit = features.match_images(ev.original, ev.suspect)
    if hit is not None:
        ev.geometry, ev.pairs, ev.located_here = hit.homography, hit.pairs, True


def register(
    suspect: Image.Image, ref_size: tuple[int, int], h: np.ndarray, edge: int = REGISTER_EDGE
) -> tuple[np.ndarray, np.ndarray, float]:
    """The suspect warped onto a reference frame (`h`: reference px -> suspect px), at most
    `edge` px on the long side: (RGB pixels, mask of where the copy has pixels, the frame's
    scale in reference px)."""
    import cv2

    rw, rh = ref_size
    s = min(1.0, edge / max(rw, rh))
    size = (max(1, round(rw * s)), max(1, round(rh * s)))
    m = np.asarray(h, np.float64) @ np.diag([1 / s, 1 / s, 1.0])  # frame px -> suspect px
    src = np.asarray(_rgb(suspect))
    # a copy much sharper than the frame is shrunk first (warpPerspective samples, it does
    # not average: a 4000 px photo straight onto 900 px would alias)
    shrink = math.sqrt(abs(np.linalg.det(m[:2, :2] / m[2, 2])))
    if shrink > 1.5:
        small = (max(1, round(src.shape[1] / shrink)), max(1, round(src.shape[0] / shrink)))
        src = cv2.resize(src, small, interpolation=cv2.INTER_AREA)
        m = np.diag([small[0] / suspect.width, small[1] / suspect.height, 1.0]) @ m
    flags = cv2.WARP_INVERSE_MAP
    warped = cv2.warpPerspective(src, m, size, flags=cv2.INTER_LINEAR | flags, borderValue=(0, 0, 0))
    inside = np.full(src.shape[:2], 255, np.uint8)
    mask = cv2.warpPerspective(inside, m, size, flags=cv2.INTER_NEAREST | flags, borderValue=0) > 0
    return warped, mask, s


def _outline(mask: np.ndarray) -> np.ndarray:
    """The border of `mask`, 2 px wide."""
    import cv2

    m = mask.astype(np.uint8)
    return (cv2.dilate(m, np.ones((5, 5), np.uint8)) > 0) & ~(cv2.erode(m, np.ones((3, 3), np.uint8)) > 0)


def registered_views(
    suspect: Image.Image, reference: Image.Image, h: np.ndarray
) -> dict[str, Image.Image] | None:
    """The four registered views: `reference` (fitted), `registered` (the copy in place, the
    reference dimmed where the copy has no pixels, the copy's outline in orange), `overlay`
    (half and half) and `difference` (absolute, ×4, black outside the copy)."""
    warped, mask, _scale = register(suspect, reference.size, h)
    if mask.sum() < 64:
        return None
    size = (mask.shape[1], mask.shape[0])
    ref = np.asarray(_rgb(reference).resize(size, Image.Resampling.LANCZOS), np.float32)
    cop = warped.astype(np.float32)
    m = mask[..., None]
    dim = ref * OUTSIDE_DIM + 255 * (1 - OUTSIDE_DIM) * 0.15
    edge = _outline(mask)[..., None]
    orange = np.array([255, 140, 0], np.float32)

    def image(a: np.ndarray) -> Image.Image:
        return Image.fromarray(np.clip(a, 0, 255).astype(np.uint8))

    registered = np.where(edge, orange, np.where(m, cop, dim))
    overlay = np.where(edge, orange, np.where(m, 0.5 * cop + 0.5 * ref, dim))
    difference = np.where(m, np.abs(cop - ref) * 4, 0)
    return {
        "reference": image(np.where(edge, orange, ref)),
        "registered": image(registered),
        "overlay": image(overlay),
        "difference": image(difference),
    }


def keypoint_image(original: Image.Image, suspect: Image.Image, pairs: np.ndarray) -> tuple[Image.Image, int]:
    """The original (left) and the copy (right) at one height, with lines between matched
    keypoints (at most KEYPOINT_LINES, spread over the matches); returns the image and the
    number of lines drawn."""
    import cv2

    gap = 16
    aspect = original.width / original.height + suspect.width / suspect.height
    height = max(120, min(KEYPOINT_HEIGHT, round((KEYPOINT_WIDTH - gap) / aspect)))

    def fit(im: Image.Image) -> tuple[np.ndarray, float]:
        s = height / im.height
        w = max(1, round(im.width * s))
        return np.asarray(_rgb(im).resize((w, height), Image.Resampling.LANCZOS)), s

    left, sl = fit(original)
    right, sr = fit(suspect)
    canvas = np.full((height, left.shape[1] + gap + right.shape[1], 3), 255, np.uint8)
    canvas[:, : left.shape[1]] = left
    canvas[:, left.shape[1] + gap :] = right
    # the pictures a little paler, so the lines stand out
    canvas = (canvas.astype(np.float32) * 0.75 + 255 * 0.25).astype(np.uint8)
    n = len(pairs)
    chosen = np.unique(np.linspace(0, n - 1, min(n, KEYPOINT_LINES)).round().astype(int)) if n else []
    off = left.shape[1] + gap
    for k, i in enumerate(chosen):
        ox, oy, sx, sy = (float(v) for v in pairs[i])
        a = (round(ox * sl), round(oy * sl))
        b = (round(sx * sr) + off, round(sy * sr))
        r, g, bl = colorsys.hsv_to_rgb((k * 0.618) % 1.0, 0.9, 0.85)
        colour = (int(r * 255), int(g * 255), int(bl * 255))
        cv2.line(canvas, a, b, colour, 1, cv2.LINE_AA)
        cv2.circle(canvas, a, 3, colour, 1, cv2.LINE_AA)
        cv2.circle(canvas, b, 3, colour, 1, cv2.LINE_AA)
    return Image.fromarray(canvas), len(chosen)


# -- html helpers -------------------------------------------------------------------------------
def _esc(value: Any) -> str:
    return html.escape("" if value is None else str(value))


def _table(rows: list[tuple[str, Any]]) -> str:
    cells = "".join(f"<tr><th>{_esc(k)}</th><td>{_esc(v)}</td></tr>" for k, v in rows)
    return f"<table>{cells}</table>"


def _figure(src: str, caption: str, css: str = "") -> str:
    cls = f" class='{css}'" if css else ""
    img = f"<img src='{_esc(src)}' alt='{_esc(caption)}'>"
    return f"<figure{cls}>{img}<figcaption>{_esc(caption)}</figcaption></figure>"


def _public_row(row: dict[str, Any]) -> dict[str, Any]:
    """The ledger row as shown in the report: fingerprints shortened, seeds withheld."""
    shown = {k: v for k, v in row.items() if k not in ("seeds", "variant_thumb")}
    render = json.loads(json.dumps(row.get("render", {})))
    if isinstance(render, dict):
        render.pop("seed", None)
        for step in render.get("steps", []):
            if isinstance(step, dict) and "seed" in step:
                step["seed"] = "(withheld)"
    shown["render"] = render
    for k in ("variant_fp", "original_fp"):
        if shown.get(k):
            shown[k] = f"{shown[k][:32]}… ({len(shown[k]) // 2} bytes)"
    return shown


def _artwork_name(ev: Evidence) -> str:
    art = ev.result.artwork
    if art is not None and art.name:
        return art.name
    key = ev.artwork_key
    return key[:12] if key else "?"


CSS = """
body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1200px;padding:0 1em;color:#111;
line-height:1.45}
h1{font-size:1.5em;margin-bottom:.2em}h2{font-size:1.2em;margin-top:1.8em;border-bottom:1px solid #ccc}
.sub{color:#555;margin-top:0}
table{border-collapse:collapse;margin:.5em 0}th,td{border:1px solid #ccc;padding:.3em .6em;
text-align:left;vertical-align:top;font-size:.9em}th{background:#f4f4f4;white-space:nowrap}
td{word-break:break-word}
.grid{display:flex;flex-wrap:wrap;gap:1em;align-items:flex-start}
.grid figure{margin:0;flex:1 1 320px;max-width:100%}
figure img{max-width:100%;max-height:560px;border:1px solid #999;display:block}
figcaption{font-size:.85em;color:#333;margin-top:.3em}
figure.wide{flex-basis:100%}
.small figure{flex:0 1 260px}.small figure img{max-height:360px}
pre{background:#f7f7f7;padding:.8em;overflow:auto;font-size:.8em}
.verdict{font-size:1.05em;padding:.8em 1em;border-left:6px solid #555;background:#f4f4f4}
.verdict strong{display:block;font-size:1.25em;margin-bottom:.3em}
.v-exact{border-color:#1a7f37;background:#eef8f0}.v-unposted{border-color:#0969da;background:#eef4fc}
.v-artwork{border-color:#9a6700;background:#fdf8e8}.v-rework{border-color:#8250df;background:#f5f0fd}
.v-none{border-color:#777}
.blink .stack{position:relative;display:inline-block;max-width:100%}
.blink .stack img{display:block}
.blink img.top{position:absolute;left:0;top:0;width:100%;height:100%;
animation:blink 2.4s steps(1,end) infinite}
.blink:hover img.top,.blink:hover .lab{animation-play-state:paused}
.blink .lab{position:absolute;left:.5em;top:.5em;background:rgba(0,0,0,.7);color:#fff;
padding:.15em .5em;font-size:.85em;border-radius:3px}
.blink .lab.a{animation:blink 2.4s steps(1,end) infinite}
.blink .lab.b{animation:blink 2.4s steps(1,end) infinite reverse}
.reg figure{flex:1 1 300px}.reg figure img{max-height:480px}
@keyframes blink{0%{opacity:1}50%{opacity:0}}
.note{color:#444;font-size:.9em}
"""

CSP = "default-src 'none'; img-src 'self'; style-src 'unsafe-inline'"


# -- sections -----------------------------------------------------------------------------------
def _head_section(ev: Evidence) -> str:
    title = _("Evidence report: {file}").format(file=ev.suspect_path.name)
    made = _("Made by poster {version} on {when} (UTC) from its ledger of posts.").format(
        version=__version__, when=ev.now
    )
    return (
        f"<!DOCTYPE html><html lang='{_esc(i18n.current())}'><head><meta charset='utf-8'>"
        f"<meta http-equiv='Content-Security-Policy' content=\"{CSP}\">"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>{_esc(title)}</title><style>{CSS}</style></head><body>"
        f"<h1>{_esc(title)}</h1><p class='sub'>{_esc(made)}</p>"
    )


def _placed_by_pixels(ev: Evidence) -> bool:
    """Whether trace located the copy from its pixels (poster.dense), not by keypoints."""
    return ev.result.artwork is not None and ev.result.artwork.method == "registration"


def verdict_text(ev: Evidence) -> tuple[str, str, str]:
    """(CSS class, headline, explanation) of the verdict, in words that claim no more than
    the evidence shows."""
    r = ev.result
    art = r.artwork
    name = _artwork_name(ev)
    exact = ev.exact
    if exact is not None and exact.method == "hidden-id":
        how = {
            READ_BLIND: _("from the image alone"),
            READ_GEOMETRY: _("with your archived original, after the copy was located on it from its pixels")
            if _placed_by_pixels(ev)
            else _("with your archived original, after the copy was located on it by matching keypoints"),
        }.get(r.id_read or "", _("with your archived original, after the copy was aligned on it"))
        head = _("Exact post: the {target} post of {posted_at}").format(
            target=exact.target, posted_at=exact.posted_at
        )
        text = _(
            "This image carries the hidden ID {id}, which was embedded only in that post ({url}). "
            "It was read {how}, and its check (a CRC-32 keyed to this installation) passed."
        ).format(id=exact.id, url=exact.url or "—", how=how)
        if exact.mirrored:
            text += " " + _("The copy is mirrored.")
        return "v-exact", head, text
    if exact is not None:  # visible layers
        shown = ((r.layers or {}).get("posts", {}).get(exact.id) or {}).get("shown")
        head = _("Exact post: the {target} post of {posted_at}").format(
            target=exact.target, posted_at=exact.posted_at
        )
        text = _(
            "No hidden ID could be read, but this image shows the visible layers of that post "
            "({url}): its random watermark layout, signature and noise ({shown} of them), and "
            "follows that post rather than any other post of the artwork."
        ).format(url=exact.url or "—", shown="—" if shown is None else f"{shown:.0%}")
        return "v-exact", head, text
    score = art.score if art is not None else (ev.best.score if ev.best else 0.0)
    if r.verdict == UNPOSTED:
        head = _("Your artwork “{name}”, not from any post as posted").format(name=name)
        rows = len((r.layers or {}).get("posts", {}))
        if rows:
            text = _(
                "This image shows your artwork (score {score:.2f}), but none of the visible layers "
                "(watermark, signature, noise) that each of its {count} posts carries, and no hidden "
                "ID was read. That points to a copy of the source file (your own disk, a stream, a "
                "file given to a client) rather than to a post. No post is named."
            ).format(score=score, count=rows)
        else:
            text = _(
                "This image shows your artwork (score {score:.2f}); the artwork has no posts in this "
                "ledger, so the copy cannot come from one. No post is named."
            ).format(score=score)
        return "v-unposted", head, text
    if r.verdict == ARTWORK:
        head = _("Your artwork “{name}”; which post (if any) cannot be told").format(name=name)
        text = _(
            "This image shows your artwork (score {score:.2f}), but neither a hidden ID nor the "
            "visible layers of one post could be established, so no post is named. The artwork's "
            "posts are listed below as candidates only."
        ).format(score=score)
        return "v-artwork", head, text
    if r.verdict == REWORK:
        from poster import composition

        sim = art.similarity if art is not None and art.similarity is not None else 0.0
        parts = art.regions if art is not None and art.regions is not None else 0.0
        colours = art.colour if art is not None else None
        head = _("Likely rework of your artwork “{name}” (score {score:.2f})").format(name=name, score=score)
        shared = {"similarity": sim, "regions": parts, "regions_threshold": composition.REGION_SIMILARITY}
        if colours is not None:
            text = _(
                "This image is not a copy of the artwork's pixels, but at thumbnail size its "
                "composition and layout of light and dark match the artwork (similarity "
                "{similarity:.2f}; reported from {threshold:.2f}), in each part of the picture as "
                "well (the least similar part: {regions:.2f}; from {regions_threshold:.2f}), and so "
                "does the layout of its colours, whatever hues they were turned to ({colour:.2f}; "
                "from {colour_threshold:.2f}), as an img2img “AI tracing” or a repaint keeps them. "
                "It is not a copy of any post, and no post is named."
            ).format(
                **shared,
                threshold=composition.COLOUR_COMPOSITION,
                colour=colours,
                colour_threshold=composition.COLOUR_SIMILARITY,
            )
        else:
            text = _(
                "This image is not a copy of the artwork's pixels, but at thumbnail size its "
                "composition and layout of light and dark match the artwork (similarity "
                "{similarity:.2f}; reported from {threshold:.2f} for pictures without colour), in "
                "each part of the picture as well (the least similar part: {regions:.2f}; from "
                "{regions_threshold:.2f}), as an img2img “AI tracing” or a repaint keeps them. It "
                "is not a copy of any post, and no post is named."
            ).format(**shared, threshold=composition.REWORK_SIMILARITY)
        return "v-rework", head, text
    return (
        "v-none",
        _("No match"),
        _("No hidden ID from this ledger, and nothing similar enough to any archived artwork."),
    )


def _verdict_section(ev: Evidence) -> str:
    css, head, text = verdict_text(ev)
    return f"<div class='verdict {css}'><strong>{_esc(head)}</strong>{_esc(text)}</div>"


def _reference(ev: Evidence) -> tuple[Image.Image, np.ndarray, str] | None:
    """The frame the copy is registered onto: the named post's variant file (the geometry
    carried over from the original, which the variant shows fitted), else the original."""
    if ev.geometry is None or ev.original is None:
        return None
    exact = ev.exact
    o = ev.original
    if exact is not None and ev.variant is not None:
        v = ev.variant
        if abs(math.log((v.width / v.height) / (o.width / o.height))) < 0.02:
            h = ev.geometry @ np.diag([o.width / v.width, o.height / v.height, 1.0])
            return v, h, _("the {target} post (its posted file)").format(target=exact.target)
    return o, ev.geometry, _("your archived original")


def _registration_section(ev: Evidence) -> str:
    ref = _reference(ev)
    if ref is None:
        return ""
    reference, h, what = ref
    views = registered_views(ev.suspect, reference, h)
    if views is None:
        return ""
    names = {k: ev.save(f"{k}.png", im) for k, im in views.items()}
    how = (
        _("found for this report by matching the keypoints of the copy and of the original directly")
        if ev.located_here
        else _("found by the trace")
    )
    intro = _(
        "The copy is warped onto {what} with the geometry (a homography: crop, scale, turn, "
        "mirror, perspective) {how}. Where the copy has no pixels the reference is shown dimmed; "
        "the orange line is the copy's edge. If the copy is that picture, the two coincide."
    ).format(what=what, how=how)
    blink = _blink(
        names["reference"],
        names["registered"],
        _("reference"),
        _("the copy"),
        _(
            "Blink view: the copy (in place, its edge in orange) and the reference alternate; "
            "hover to hold one."
        ),
    )
    overlay = _figure(
        names["overlay"], _("Overlay: copy and reference half and half (sharp where they agree)")
    )
    difference = _figure(
        names["difference"],
        _("Difference ×4: dark where the copy equals the reference; what was added or changed shows bright"),
    )
    title = _("The copy registered onto {what}").format(what=what)
    return (
        f"<h2>{_esc(title)}</h2><p>{_esc(intro)}</p><div class='grid reg'>{blink}{overlay}{difference}</div>"
    )


def _blink(under: str, top: str, under_label: str, top_label: str, caption: str) -> str:
    """Two images of one size that alternate in place (CSS animation; hover holds one)."""
    return (
        "<figure class='blink'><div class='stack'>"
        f"<img src='{_esc(under)}' alt='{_esc(under_label)}'>"
        f"<img class='top' src='{_esc(top)}' alt='{_esc(top_label)}'>"
        f"<span class='lab a'>{_esc(top_label)}</span><span class='lab b'>{_esc(under_label)}</span>"
        f"</div><figcaption>{_esc(caption)}</figcaption></figure>"
    )


def _keypoints_section(ev: Evidence) -> str:
    if ev.pairs is None or ev.original is None or len(ev.pairs) == 0:
        return ""
    im, drawn = keypoint_image(ev.original, ev.suspect, ev.pairs)
    name = ev.save("keypoints.jpg", im, quality=90)
    caption = _(
        "Lines join keypoints of your archived original (left) and of the copy (right) that match "
        "and agree on one geometry (RANSAC): {drawn} of {count} matches are drawn."
    ).format(count=len(ev.pairs), drawn=drawn)
    return f"<h2>{_esc(_('Matched keypoints'))}</h2><div class='grid'>{_figure(name, caption, 'wide')}</div>"


def _hidden_id_section(ev: Evidence) -> str:
    r = ev.result
    rows: list[tuple[str, Any]]
    if r.hidden_id is None:
        rows = [
            (
                _("hidden ID"),
                _("none could be read (the copy may be too small or too damaged, or not from a post)"),
            ),
        ]
    else:
        how = {
            READ_BLIND: _("blind: from the copy alone"),
            READ_GEOMETRY: _("with the archived original, through the geometry found from the pixels")
            if _placed_by_pixels(ev)
            else _("with the archived original, through the geometry found by the keypoints"),
        }.get(r.id_read or "", _("with the archived original (aligned by its own search)"))
        hit = next((m for m in r.matches if m.method == "hidden-id"), None)
        rows = [
            (_("hidden ID"), ledger.format_id(r.hidden_id)),
            (_("how it was read"), how),
            (_("check"), _("passed: CRC-32 keyed to this installation (a wrong or absent ID fails it)")),
            (_("mirrored copy"), _("yes") if r.hidden_id_mirrored else _("no")),
            (
                _("in this ledger"),
                _("yes: row {seq}, the {target} post of {posted_at}").format(
                    seq=hit.row["seq"], target=hit.target, posted_at=hit.posted_at
                )
                if hit is not None
                else _("no: this installation never issued it"),
            ),
        ]
    return f"<h2>{_esc(_('Hidden ID'))}</h2>" + _table(rows)


def _layers_section(ev: Evidence) -> str:
    layers = ev.result.layers
    if not layers or not layers.get("posts"):
        return ""
    rows_by_id = {r["id"]: r for r in _posts_of(ev)}
    body = []
    for pid, p in layers["posts"].items():
        row = rows_by_id.get(pid)
        # by platform and date, as a person knows the post (and no ID that could be read as
        # naming it where the verdict names none)
        label = _post_label(row) if row else pid
        edges = p.get("with_edges") or {}
        if p.get("measured"):
            value = _("{shown} of its layers shown ({pixels} pixels compared)").format(
                shown=f"{p['shown']:.0%}", pixels=p["pixels"]
            )
        elif edges.get("measured"):  # only on the art's edges: enough to see none, not to name
            value = _(
                "{shown} of its layers shown ({pixels} pixels compared, edges of the art included)"
            ).format(shown=f"{edges['shown']:.0%}", pixels=edges["pixels"])
        else:
            value = _("not measured: {why}").format(why=p.get("why") or "—")
        body.append((label, value))
    intro = _(
        "Each post of this artwork carries visible layers of its own (a random watermark layout, "
        "the signature, noise). On the geometry found, the copy was compared with each: 100 % "
        "means it shows all of a post's layers, 0 % none."
    )
    return f"<h2>{_esc(_('Visible layers of each post'))}</h2><p>{_esc(intro)}</p>" + _table(body)


def _posts_section(ev: Evidence) -> str:
    """The copy beside each post's file, in the same frame: a post's watermark or signature
    that the copy lacks (or shows) is there to see. For verdicts that turn on the visible
    layers (not from any post, artwork only, an exact post by its layers)."""
    if ev.result.layers is None or ev.geometry is None or ev.original is None:
        return ""
    if ev.exact is not None and ev.exact.method == "hidden-id":
        return ""
    o = ev.original
    warped, mask, _scale = register(ev.suspect, o.size, ev.geometry, POSTS_EDGE)
    if mask.sum() < 64:
        return ""
    size = (mask.shape[1], mask.shape[0])
    figures = [_figure(ev.save("posts-copy.png", _masked(warped, mask)), _("the copy"))]
    for n, row in enumerate(_posts_of(ev)[:MAX_POSTS_SHOWN], 1):
        v = _load(variant_path(ev.conn, ev.data_dir, row))
        if v is None or abs(math.log((v.width / v.height) / (o.width / o.height))) > 0.02:
            continue
        view = np.asarray(_rgb(v).resize(size, Image.Resampling.LANCZOS))
        label = _("{post}, at the same place").format(post=_post_label(row))
        figures.append(_figure(ev.save(f"posts-{n}.png", _masked(view, mask)), label))
    intro = _(
        "The copy beside the posted file of each post of this artwork, cut to the part the copy "
        "shows. Every post carries visible layers the original does not have (depending on the "
        "post: a random watermark layout, the signature, fine noise)."
    )
    return (
        f"<h2>{_esc(_('The copy beside each post'))}</h2><p>{_esc(intro)}</p>"
        f"<div class='grid small'>{''.join(figures)}</div>"
    )


def _masked(pixels: np.ndarray, mask: np.ndarray) -> Image.Image:
    """`pixels` where the copy has pixels, cropped to the copy's bounding box."""
    ys, xs = np.nonzero(mask)
    y0, y1, x0, x1 = int(ys.min()), int(ys.max()) + 1, int(xs.min()), int(xs.max()) + 1
    a = np.where(mask[..., None], pixels, 255).astype(np.uint8)
    return Image.fromarray(a[y0:y1, x0:x1])


def _post_label(row: dict[str, Any]) -> str:
    return _("the {target} post of {posted_at}").format(target=row["target"], posted_at=row["posted_at"])


def _posts_of(ev: Evidence) -> list[dict[str, Any]]:
    key = ev.artwork_key
    if key is None:
        return []
    seqs = ev.conn.execute("SELECT seq FROM ledger WHERE original_sha256 = ? ORDER BY seq", (key,))
    return [r for r in (ledger.get(ev.conn, int(s)) for (s,) in seqs.fetchall()) if r is not None]


def _rework_section(ev: Evidence) -> str:
    art = ev.result.artwork
    if ev.result.verdict != REWORK or art is None or ev.original is None:
        return ""
    from poster import composition

    original = ImageOps.mirror(ev.original) if art.mirrored else ev.original
    box = _fit(original, THUMB).size
    copy_thumb = _rgb(ev.suspect).resize(box, Image.Resampling.LANCZOS)
    orig_thumb = _rgb(original).resize(box, Image.Resampling.LANCZOS)

    def layout(im: Image.Image) -> Image.Image:
        # as the match sees it: the mean and the contrast do not count, so both are evened out
        grid = composition.luma_grid(im)
        grid = 128 + 48 * (grid - grid.mean()) / (grid.std() + 1e-6)
        return Image.fromarray(np.clip(grid, 0, 255).astype(np.uint8)).resize(
            (THUMB, THUMB), Image.Resampling.NEAREST
        )

    def colours(im: Image.Image) -> Image.Image:
        # as the colour check sees it: the chroma alone (each pixel less its grey), on mid
        # grey, its strength evened out; the check itself ignores a turn of every hue
        chroma = composition.thumbnail(im).astype(np.float64)
        chroma -= chroma.mean(axis=-1, keepdims=True)
        chroma *= 60 / (np.sqrt((chroma**2).sum(-1)).mean() + 1e-6)
        return Image.fromarray(np.clip(128 + chroma, 0, 255).astype(np.uint8)).resize(
            (THUMB, THUMB), Image.Resampling.NEAREST
        )

    a = ev.save("rework-copy.png", copy_thumb)
    b = ev.save("rework-original.png", orig_thumb)
    la = ev.save("rework-copy-layout.png", layout(ev.suspect))
    lb = ev.save("rework-original-layout.png", layout(original))
    colour_row = ""
    if art.colour is not None:
        ca = ev.save("rework-copy-colours.png", colours(ev.suspect))
        cb = ev.save("rework-original-colours.png", colours(original))
        colour_row = (
            "<div class='grid'>"
            + _figure(ca, _("layout of colours: the copy"))
            + _figure(cb, _("layout of colours: your original"))
            + "</div>"
        )
    blink = _blink(
        b,
        a,
        _("original"),
        _("the copy"),
        _("Blink view: the copy and the original alternate; hover to hold one."),
    )
    mirrored = " " + _("(the original is shown mirrored, as the copy is)") if art.mirrored else ""
    intro = _(
        "At thumbnail size a rework looks like the artwork it was made from. The match compares "
        "the layout of light and dark below (64 × 64, brightness and contrast evened out; its "
        "lowest frequencies), which survives re-drawn lines, smoothing, posterisation and colour "
        "shifts; in each part of the picture; and, for pictures in colour, where the colours "
        "are and how strong, whatever hues they were turned to."
    )
    return (
        f"<h2>{_esc(_('Thumbnail comparison'))}</h2><p>{_esc(intro + mirrored)}</p><div class='grid'>"
        + _figure(a, _("the copy"))
        + _figure(b, _("your archived original"))
        + blink
        + "</div><div class='grid'>"
        + _figure(la, _("layout of light and dark: the copy"))
        + _figure(lb, _("layout of light and dark: your original"))
        + "</div>"
        + colour_row
    )


def _images_section(ev: Evidence) -> str:
    figures = [(_("suspect (as found)"), ev.files[0][1].name)]
    exact = ev.exact
    if exact is not None and ev.variant_file is not None:
        figures.append((_("posted file ({target})").format(target=exact.target), ev.variant_file.name))
    if ev.original_file is not None:
        figures.append((_("original (archived)"), ev.original_file.name))
    return (
        f"<h2>{_esc(_('Images'))}</h2><div class='grid'>"
        + "".join(_figure(name, label) for label, name in figures)
        + "</div>"
    )


def _details_section(ev: Evidence) -> str:
    r = ev.result
    art = r.artwork
    rows: list[tuple[str, Any]] = [(_("verdict"), _(VERDICT_LABEL.get(r.verdict, r.verdict)))]
    if art is not None:
        rows += [
            (_("artwork"), f"{art.name or '—'} (SHA-256 {art.key})"),
            (_("found by"), art.method),
            (_("score"), f"{art.score:.4f}"),
        ]
        if art.inliers is not None:
            rows.append((_("distinct keypoints agreeing on the geometry"), art.inliers))
        if _placed_by_pixels(ev):
            rows.append(
                (
                    _("how the copy was placed"),
                    _(
                        "from its pixels, the art having too few keypoints. The score is their "
                        "correlation, which is no evidence by itself; the evidence is the hidden "
                        "ID read through this placement"
                    ),
                )
            )
    elif ev.best is not None:
        rows += [(_("found by"), ev.best.method), (_("score"), f"{ev.best.score:.4f}")]
    rows.append((_("notes"), "; ".join(r.notes) or "—"))
    return f"<h2>{_esc(_('Details'))}</h2>" + _table(rows)


def _candidates_section(ev: Evidence) -> str:
    r = ev.result
    others = [m for m in r.matches if m is not ev.exact]
    if not others:
        return ""
    if r.verdict == EXACT:
        title = _("Other posts of this artwork")
    elif r.verdict == REWORK:
        title = _("Posts of the artwork it reworks (none is named)")
    else:
        title = _("Posts of this artwork (candidates; none is named)")
    rows = [
        (f"{m.target} {m.id}", _("posted {posted_at}: {url}").format(posted_at=m.posted_at, url=m.url or "—"))
        for m in others
    ]
    return f"<h2>{_esc(title)}</h2>" + _table(rows)


def _ledger_section(ev: Evidence) -> str:
    exact = ev.exact
    if exact is None:
        return ""
    row = exact.row
    return (
        f"<h2>{_esc(_('Ledger row of the post'))}</h2>"
        + _table(
            [
                (_("sequence"), row["seq"]),
                (_("previous row hash"), row["prev_hash"]),
                (_("row hash (SHA-256 over the previous hash and this row)"), row["row_hash"]),
                (_("original SHA-256"), row["original_sha256"]),
                (_("posted variant SHA-256"), row["variant_sha256"]),
            ]
        )
        + f"<pre>{_esc(json.dumps(_public_row(row), indent=2, ensure_ascii=False))}</pre>"
    )


def _verification_section(ev: Evidence) -> str:
    from poster import timestamps

    stamped = timestamps.check_ledger(ev.conn, ev.trust, ev.data_dir)  # `poster ledger verify`'s check
    check = stamped.chain
    chain = (
        _("intact: {rows} rows, each hash recomputed and linked").format(rows=check.rows)
        if check.ok
        else _("FAILED: {problem} (first bad row {row})").format(problem=check.problem, row=check.first_bad)
    )
    head = ledger.head(ev.conn)
    return f"<h2>{_esc(_('Ledger verification'))}</h2>" + _table(
        [
            (_("hash chain"), chain),
            (
                _("time-stamped heads"),
                _("{count} matched; time-stamp tokens that do not verify: {bad}").format(
                    count=check.heads, bad=len(stamped.bad)
                ),
            ),
            (
                _("chain head (row hash of the last row)"),
                _("{hash} (row {seq})").format(hash=head["row_hash"], seq=head["seq"]),
            ),
            (_("verified at"), ev.now),
        ]
    )


def time_stamps(
    conn: sqlite3.Connection,
    original_sha256: str,
    row: dict[str, Any] | None,
    trust: Sequence[x509.Certificate],
) -> list[tuple[str, str]]:
    """What the RFC 3161 time-stamps say about an artwork (and, given its ledger row, the
    post), each token checked again here: (what, finding) pairs."""
    from poster import timestamps

    out: list[tuple[str, str]] = []
    wanted = [
        (
            _("original"),
            timestamps.for_original(conn, original_sha256),
            _("this artwork (original SHA-256 {sha}) existed at {time} according to {tsa}"),
        )
    ]
    if row is not None:
        wanted.append(
            (
                _("ledger row"),
                timestamps.covering_head(conn, row["seq"]),
                _("this post (ledger row {seq}) was recorded by {time} according to {tsa}"),
            )
        )
    for what, stamp, claim in wanted:
        if stamp is None or stamp.state != "stamped":
            state = stamp.state if stamp is not None else _("never requested")
            out.append((what, _("not time-stamped ({state})").format(state=state)))
            continue
        try:
            token = timestamps.verify(stamp.token or b"", bytes.fromhex(stamp.digest), trust)
        except timestamps.TsaError as exc:
            out.append((what, _("time-stamp does NOT verify: {reason}").format(reason=exc)))
            continue
        text = claim.format(
            sha=original_sha256,
            seq=row["seq"] if row is not None else "",
            time=store.iso(token.gen_time),
            tsa=token.tsa_name,
        )
        if row is not None and stamp.kind == timestamps.HEAD and stamp.seq != row["seq"]:
            text += _(" (the time-stamped chain head is row {head}, which pins every row before it)").format(
                head=stamp.seq
            )
        if row is not None:
            text += _(" — RFC 3161 token verified; `poster proof {id}` exports it").format(id=row["id"])
        else:
            text += _(" — RFC 3161 token verified; `poster proof {sha}` exports it").format(
                sha=original_sha256
            )
        out.append((what, text))
    return out


def _timestamps_section(ev: Evidence) -> str:
    """For the post named, its original's and its ledger row's time-stamps; for an artwork
    found without a post (a crop, a rework), its original's: the artist had it first."""
    exact = ev.exact
    key = exact.row["original_sha256"] if exact is not None else ev.artwork_key
    if key is None or ev.result.verdict == NOTHING:
        return ""
    rows = time_stamps(ev.conn, str(key), exact.row if exact is not None else None, ev.trust)
    return f"<h2>{_esc(_('Time-stamps (RFC 3161)'))}</h2>" + _table(rows)


def _files_section(ev: Evidence) -> str:
    rows = [(label, _("{file}  SHA-256 {digest}").format(file=p.name, digest=d)) for label, p, d in ev.files]
    return f"<h2>{_esc(_('Files'))}</h2>" + _table(rows)


def _times_section(ev: Evidence) -> str:
    mtime = datetime.fromtimestamp(ev.suspect_path.stat().st_mtime, UTC).replace(microsecond=0).isoformat()
    exact = ev.exact
    return f"<h2>{_esc(_('Times'))}</h2>" + _table(
        [
            (_("report written"), ev.now),
            (_("suspect file modified"), mtime),
            (_("post recorded"), exact.posted_at if exact else "—"),
            (_("made with"), f"poster {__version__}"),
        ]
    )


# The page, top to bottom. Another part is one more function here.
SECTIONS: tuple[Callable[[Evidence], str], ...] = (
    _head_section,
    _verdict_section,
    _registration_section,
    _posts_section,
    _layers_section,
    _keypoints_section,
    _rework_section,
    _hidden_id_section,
    _details_section,
    _candidates_section,
    _images_section,
    _ledger_section,
    _timestamps_section,
    _verification_section,
    _files_section,
    _times_section,
)


def write(
    out_dir: Path,
    suspect_path: Path,
    suspect: Image.Image,
    result: Result,
    conn: sqlite3.Connection,
    data_dir: Path | None,
    *,
    trust: Sequence[x509.Certificate] | None = None,
) -> Written:
    """Write DIR/index.html and the images it shows; returns the page and every file.
    `trust`: the RFC 3161 trust anchors (timestamps.anchors(config)); default: the roots of
    the default time-stamping authorities (shipped, and those fetched into `data_dir`)."""
    from poster import timestamps

    out_dir.mkdir(parents=True, exist_ok=True)
    now = datetime.now(UTC).replace(microsecond=0).isoformat()
    ev = Evidence(out_dir, suspect_path, suspect, result, conn, data_dir, now)
    ev.trust = list(trust) if trust is not None else timestamps.default_anchors(data_dir)
    suspect_copy = _copy(suspect_path, out_dir, "suspect")
    ev.made.append(suspect_copy)
    ev.files.append((_("suspect (as found)"), suspect_copy, store.sha256_file(suspect_path)))
    exact = ev.exact
    if exact is not None:
        vpath = variant_path(conn, data_dir, exact.row)
        if vpath is not None:
            ev.variant_file = _copy(vpath, out_dir, "posted-variant")
            ev.made.append(ev.variant_file)
            ev.files.append(
                (
                    _("posted file ({target})").format(target=exact.target),
                    ev.variant_file,
                    store.sha256_file(vpath),
                )
            )
            ev.variant = _load(vpath)
    opath = _archived_original(conn, data_dir, ev.artwork_key) if result.verdict != NOTHING else None
    if opath is not None:
        ev.original_file = _copy(opath, out_dir, "original")
        ev.made.append(ev.original_file)
        ev.files.append((_("original (archived)"), ev.original_file, store.sha256_file(opath)))
        ev.original = _load(opath)
    _locate(ev)
    parts = [section(ev) for section in SECTIONS]
    parts.append("</body></html>")
    page = out_dir / "index.html"
    page.write_text("\n".join(p for p in parts if p), encoding="utf-8")
    ev.made.append(page)
    return Written(page, tuple(ev.made))
