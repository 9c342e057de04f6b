"""Evidence report: one self-contained HTML page (plus the images next to it) per traced image.

Made to be attached to a takedown request or shown to a platform: the suspect copy, the
posted variant it matches and the original side by side, a difference view and an overlay,
the hidden ID read, the ledger row with its chain hash and the result of verifying the whole
chain, the RFC 3161 time-stamps of the original and of the ledger head that pins the row (each
token verified again), SHA-256 of every file, and the times. No external assets, no scripts.

Never in the report: the mark key, credentials, and the random seeds of the visible layers
(a seed redraws the exact watermark layout, which would help someone remove it); the seeds
stay in the ledger, and `poster ledger export` shows them to the owner.
"""

from __future__ import annotations

import hashlib
import html
import json
import shutil
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from cryptography import x509
from PIL import Image, ImageChops, ImageOps

from poster import __version__, fingerprint, ledger, store
from poster.i18n import _
from poster.trace import MATCH_DISTANCE, Match, Result, original_path, variant_path

PREVIEW_EDGE = 1200  # longest edge of the comparison images


@dataclass(frozen=True)
class Written:
    page: Path
    files: tuple[Path, ...]


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _copy(src: Path, out: Path, stem: str) -> Path:
    dest = out / f"{stem}{src.suffix.lower() or '.img'}"
    shutil.copyfile(src, dest)
    return dest


def _fit(im: Image.Image) -> Image.Image:
    im = im.convert("RGB")
    scale = PREVIEW_EDGE / max(im.size)
    if scale < 1:
        im = im.resize(
            (max(1, round(im.width * scale)), max(1, round(im.height * scale))), Image.Resampling.LANCZOS
        )
    return im


def comparison(
    suspect: Image.Image,
    variant: Image.Image,
    *,
    mirrored: bool,
    box: tuple[float, float, float, float] | None,
) -> tuple[Image.Image, Image.Image, float]:
    """The suspect brought onto the posted variant (un-mirrored, scaled, within the crop
    window), then: an amplified absolute difference, a 50 % overlay, and the mean difference
    (0-255) — small where the suspect is the posted copy."""
    s = ImageOps.mirror(suspect) if mirrored else suspect
    v = variant.convert("RGB")
    if box is not None:
        w, h = v.size
        v = v.crop((round(box[0] * w), round(box[1] * h), round(box[2] * w), round(box[3] * h)))
    v = _fit(v)
    if s.width < v.width:
        # bring the variant down to the suspect's resolution and back, so that the difference
        # shows what was changed rather than the detail lost to downscaling
        v = v.resize((s.width, max(1, round(s.width * v.height / v.width))), Image.Resampling.LANCZOS).resize(
            v.size, Image.Resampling.LANCZOS
        )
    s = s.convert("RGB").resize(v.size, Image.Resampling.LANCZOS)
    diff = ImageChops.difference(s, v)
    mean = float(np.asarray(diff, dtype=np.float32).mean())
    amplified = Image.fromarray(np.clip(np.asarray(diff, dtype=np.float32) * 4, 0, 255).astype(np.uint8))
    overlay = Image.blend(v, s, 0.5)
    return amplified, overlay, mean


def geometry(
    suspect: Image.Image, variant: Image.Image, best: Match
) -> tuple[tuple[float, float, float, float] | None, bool]:
    """Where the suspect sits on the posted variant (crop window, mirrored?). A perceptual
    match already knows; for a hidden-ID match (the codec finds its mark at any offset and
    does not say where the crop is) the thumbnail crop search finds it."""
    if best.method == "perceptual":
        return best.box, best.mirrored
    a = fingerprint.align(fingerprint.query(suspect), suspect.size, fingerprint.thumbnail(variant))
    if a is not None and a.distance <= MATCH_DISTANCE:
        whole = a.box == (0.0, 0.0, 1.0, 1.0)
        return (None if whole else a.box), a.mirrored
    return None, best.mirrored


def _esc(value: Any) -> str:
    return html.escape("" if value is None else str(value))


def _table(rows: list[tuple[str, Any]]) -> str:
    cells = "".join(f"<tr><th>{_esc(k)}</th><td>{_esc(v)}</td></tr>" for k, v in rows)
    return f"<table>{cells}</table>"


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


CSS = """
body{font-family:system-ui,sans-serif;margin:2em;max-width:1400px;color:#111}
h1{font-size:1.5em}h2{font-size:1.2em;margin-top:1.6em;border-bottom:1px solid #ccc}
table{border-collapse:collapse;margin:.5em 0}th,td{border:1px solid #ccc;padding:.3em .6em;
text-align:left;vertical-align:top;font-size:.9em}th{background:#f4f4f4;white-space:nowrap}
.grid{display:flex;flex-wrap:wrap;gap:1em}.grid figure{margin:0;flex:1 1 300px}
.grid img{max-width:100%;border:1px solid #999}
pre{background:#f7f7f7;padding:.8em;overflow:auto;font-size:.8em}
.verdict{font-size:1.1em;padding:.6em;border-left:4px solid #333;background:#f4f4f4}
"""


def time_stamps(
    conn: sqlite3.Connection, row: dict[str, Any], trust: Sequence[x509.Certificate]
) -> list[tuple[str, str]]:
    """What the RFC 3161 time-stamps say about a ledger row's artwork and post, each token
    checked again here: (what, finding) pairs."""
    from poster import timestamps

    out: list[tuple[str, str]] = []
    original = timestamps.for_original(conn, row["original_sha256"])
    head = timestamps.covering_head(conn, row["seq"])
    for what, stamp, claim in (
        (
            _("original"),
            original,
            _("this artwork (original SHA-256 {sha}) existed at {time} according to {tsa}"),
        ),
        (_("ledger row"), head, _("this post (ledger row {seq}) was recorded by {time} according to {tsa}")),
    ):
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
            sha=row["original_sha256"], seq=row["seq"], time=store.iso(token.gen_time), tsa=token.tsa_name
        )
        if stamp.kind == timestamps.HEAD and stamp.seq != row["seq"]:
            text += _(" (the time-stamped chain head is row {head}, which pins every row before it)").format(
                head=stamp.seq
            )
        out.append(
            (
                what,
                text + _(" — RFC 3161 token verified; `poster proof {id}` exports it").format(id=row["id"]),
            )
        )
    return out


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
    out_dir.mkdir(parents=True, exist_ok=True)
    made: list[Path] = []
    now = datetime.now(UTC).replace(microsecond=0).isoformat()
    suspect_copy = _copy(suspect_path, out_dir, "suspect")
    made.append(suspect_copy)
    files: list[tuple[str, Path, str]] = [("suspect (as found)", suspect_copy, sha256_file(suspect_path))]
    from poster import timestamps

    anchors = list(trust) if trust is not None else timestamps.default_anchors(data_dir)
    stamped_check = timestamps.check_ledger(conn, anchors, data_dir)  # `poster ledger verify`'s check
    check = stamped_check.chain
    best: Match | None = result.matches[0] if result.matches else None

    figures = [("suspect (as found)", suspect_copy.name)]
    diff_mean: float | None = None
    if best is not None:
        vpath = variant_path(conn, data_dir, best.row)
        opath = original_path(conn, data_dir, best.row)
        if vpath is not None:
            vcopy = _copy(vpath, out_dir, "posted-variant")
            made.append(vcopy)
            figures.append((f"posted variant ({best.target})", vcopy.name))
            files.append((f"posted variant ({best.target})", vcopy, sha256_file(vpath)))
            variant = fingerprint.load_file(vpath)
            if variant is not None:
                box, mirrored = geometry(suspect, variant, best)
                diff, overlay, diff_mean = comparison(suspect, variant, mirrored=mirrored, box=box)
                for name, im in (("difference", diff), ("overlay", overlay)):
                    p = out_dir / f"{name}.png"
                    im.save(p)
                    made.append(p)
        if opath is not None:
            ocopy = _copy(opath, out_dir, "original")
            made.append(ocopy)
            figures.append(("original (archived)", ocopy.name))
            files.append(("original (archived)", ocopy, sha256_file(opath)))

    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>Evidence report: {_esc(suspect_path.name)}</title><style>{CSS}</style></head><body>",
        f"<h1>Evidence report: {_esc(suspect_path.name)}</h1>",
    ]
    if best is None:
        verdict = "No posted copy from this ledger matches this image."
    elif best.method == "hidden-id":
        how = (
            " with the artwork's original at hand (the copy was aligned on the archived original "
            "and the art subtracted before decoding)"
            if best.via
            else ""
        )
        verdict = (
            f"The hidden ID {best.id} read from this image{how} identifies the {best.target} post of "
            f"{best.posted_at}{' (the copy was mirrored)' if best.mirrored else ''}."
        )
    else:
        verdict = (
            f"No hidden ID survived; by perceptual similarity (score {best.score:.2f}, "
            f"{best.distance}/256 bits apart, via {best.via}) this image is derived from the "
            f"{best.target} post of {best.posted_at} (hidden ID {best.id})."
        )
    parts.append(f"<p class='verdict'>{_esc(verdict)}</p>")
    parts.append("<h2>Images</h2><div class='grid'>")
    for label, name in figures:
        parts.append(
            f"<figure><img src='{_esc(name)}' alt='{_esc(label)}'>"
            f"<figcaption>{_esc(label)}</figcaption></figure>"
        )
    parts.append("</div>")
    if diff_mean is not None:
        parts.append("<h2>Comparison</h2><div class='grid'>")
        parts.append(
            "<figure><img src='difference.png' alt='difference'><figcaption>absolute difference ×4 "
            f"(suspect brought onto the posted variant; mean {diff_mean:.1f} of 255)</figcaption></figure>"
        )
        parts.append(
            "<figure><img src='overlay.png' alt='overlay'><figcaption>50 % overlay</figcaption></figure>"
        )
        parts.append("</div>")
    hid = ledger.format_id(result.hidden_id) if result.hidden_id is not None else "none could be read"
    parts.append("<h2>Findings</h2>")
    parts.append(
        _table(
            [
                (
                    "hidden ID read",
                    hid
                    + (" (from the mirrored image)" if result.hidden_id_mirrored else "")
                    + (
                        " (with the original)"
                        if best is not None and best.via and best.method == "hidden-id"
                        else ""
                    ),
                ),
                ("method", best.method if best else "—"),
                ("score", f"{best.score:.4f}" if best else "—"),
                ("post", f"{best.target}: {best.url}" if best else "—"),
                ("posted at", best.posted_at if best else "—"),
                ("which post (perceptual)", best.post if best and best.post else "—"),
                ("notes", "; ".join(result.notes) or "—"),
            ]
        )
    )
    if len(result.matches) > 1:
        parts.append("<h2>Other candidates</h2>")
        parts.append(
            _table(
                [
                    (f"{m.target} {m.id}", f"score {m.score:.3f}, {m.method}, {m.url}")
                    for m in result.matches[1:]
                ]
            )
        )
    if best is not None:
        parts.append("<h2>Ledger row</h2>")
        parts.append(
            _table(
                [
                    ("sequence", best.row["seq"]),
                    ("previous row hash", best.row["prev_hash"]),
                    ("row hash (SHA-256 over the previous hash and this row)", best.row["row_hash"]),
                    ("original SHA-256", best.row["original_sha256"]),
                    ("posted variant SHA-256", best.row["variant_sha256"]),
                ]
            )
        )
        parts.append(f"<pre>{_esc(json.dumps(_public_row(best.row), indent=2, ensure_ascii=False))}</pre>")
    chain = (
        f"intact: {check.rows} rows, each hash recomputed and linked"
        if check.ok
        else f"FAILED: {check.problem} (first bad row {check.first_bad})"
    )
    parts.append("<h2>Ledger verification</h2>")
    head = ledger.head(conn)
    parts.append(
        _table(
            [
                ("hash chain", chain),
                (
                    _("time-stamped heads"),
                    _("{count} matched; time-stamp tokens that do not verify: {bad}").format(
                        count=check.heads, bad=len(stamped_check.bad)
                    ),
                ),
                ("chain head (row hash of the last row)", f"{head['row_hash']} (row {head['seq']})"),
                ("verified at", now),
            ]
        )
    )
    if best is not None:
        parts.append(f"<h2>{_esc(_('Time-stamps (RFC 3161)'))}</h2>")
        parts.append(_table(time_stamps(conn, best.row, anchors)))
    parts.append("<h2>Files</h2>")
    parts.append(_table([(label, f"{p.name}  SHA-256 {digest}") for label, p, digest in files]))
    parts.append("<h2>Times</h2>")
    suspect_mtime = (
        datetime.fromtimestamp(suspect_path.stat().st_mtime, UTC).replace(microsecond=0).isoformat()
    )
    parts.append(
        _table(
            [
                ("report written", now),
                ("suspect file modified", suspect_mtime),
                ("post recorded", best.posted_at if best else "—"),
                ("made with", f"poster {__version__}"),
            ]
        )
    )
    parts.append("</body></html>")
    page = out_dir / "index.html"
    page.write_text("\n".join(parts), encoding="utf-8")
    made.append(page)
    return Written(page, tuple(made))
