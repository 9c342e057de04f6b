"""Leak lookup: which post did this image come from?

1. The hidden ID (the codec searches scale and offset itself; the mirrored image is tried too,
   since flipped tracing is common). A hit names the exact ledger row: method `hidden-id`.
2. Otherwise perceptual similarity (poster.fingerprint) against every ledger row at once:
   whole-image and window hashes of the posted variant and of the original, the suspect's 8
   dihedral hashes; then, for a short list, a crop search on the stored thumbnail. Rows whose
   calibrated score reaches MATCH_SCORE come back as method `perceptual`, best first.
3. One artwork is usually posted to several targets, and their variants differ (resolution cap,
   random watermark layout). Among rows of the same original, the closest *variant* wins, and
   when the variant files are still in the data folder their pixels decide; `post` in the
   JSON says whether the post was told apart (`distinguished`) or not (`ambiguous`).
4. When the blind read found nothing but a perceptual match did, the hidden ID is read again
   with that artwork's original from the archive (`poster.mark.informed`: the copy is
   registered on the original and the art subtracted). A hit is method `hidden-id` with
   `via: "read with the original"`; it names the exact post even among variants of one original.

Score: 1.0 for a hidden-ID hit. For perceptual matches it is a piecewise-linear map of the
Hamming distance d (0-256) calibrated on the corpus (benchmarks/trace.py): 1 at d = 0, 0.5 at
the match threshold MATCH_DISTANCE, 0 at UNRELATED_DISTANCE, the smallest distance measured
between unrelated images. Only scores ≥ 0.5 are reported.
"""

from __future__ import annotations

import os
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps

from poster import fingerprint, imaging, ledger, mark
from poster.errors import InputError
from poster.mark import informed

MAX_TRACE_PIXELS = 400_000_000
# Calibrated in benchmarks/trace.py (corpus + synthetic attacks; see the README): unrelated art
# never came closer than 82 bits (274 queries, 0 false matches), reworks and crops of posted art
# stayed within 34 (rank-1 98.6 %); the threshold sits between, nearer the related side.
MATCH_DISTANCE = 56
UNRELATED_DISTANCE = 82
MATCH_SCORE = 0.5
MAX_MATCHES = 10
SHORTLIST = 5  # rows per short list (4 lists) that get the crop search, ~6 ms each
CROP_SEARCH_ABOVE = 32  # also search crops when the best stage-one distance is only this good
INFORMED_TRIES = 3  # originals tried for the informed read (stage 4), best perceptual match first
REGION_NAMES = ("whole", "centre 80%", "top-left 80%", "top-right 80%", "bottom-left 80%", "bottom-right 80%")


def score_of(distance: int) -> float:
    if distance <= MATCH_DISTANCE:
        return 1.0 - 0.5 * distance / MATCH_DISTANCE
    return max(0.0, 0.5 * (UNRELATED_DISTANCE - distance) / (UNRELATED_DISTANCE - MATCH_DISTANCE))


@dataclass(frozen=True)
class Match:
    id: str
    target: str
    url: str | None
    posted_at: str
    method: str  # hidden-id | perceptual
    score: float
    row: dict[str, Any]
    mirrored: bool = False
    distance: int | None = None  # perceptual: Hamming distance of the closest hash (0-256)
    via: str | None = None  # perceptual: which print matched ("variant, whole", "variant, crop …")
    post: str | None = None  # perceptual: distinguished | ambiguous (among variants of one original)
    box: tuple[float, float, float, float] | None = None  # crop of the variant the suspect shows

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "target": self.target,
            "url": self.url,
            "posted_at": self.posted_at,
            "method": self.method,
            "score": round(self.score, 4),
            "seq": self.row["seq"],
            "mirrored": self.mirrored,
        }
        if self.method == "perceptual":
            out.update(distance=self.distance, via=self.via, post=self.post)
        elif self.via:
            out.update(via=self.via)
        return out


@dataclass
class Result:
    """Everything one trace found out, for the CLI and the evidence report."""

    matches: list[Match]
    hidden_id: int | None = None  # what the codec read, even when it is not in this ledger
    hidden_id_mirrored: bool = False
    quality: int = 0
    notes: list[str] = field(default_factory=list)


def load_suspect(path: Path) -> Image.Image:
    data = imaging.read_file(path)
    im = imaging.open_image(data, str(path))
    if im.size[0] * im.size[1] > MAX_TRACE_PIXELS:
        raise InputError(f"{path}: image too large to trace")
    try:
        im.load()
        im = ImageOps.exif_transpose(im) or im
    except (OSError, ValueError, SyntaxError) as exc:
        raise InputError(f"{path}: damaged image ({exc})") from None
    return im.convert("RGBA").convert("RGB") if im.mode in ("P", "LA", "PA") else im.convert("RGB")


def read_hidden_id(image: Image.Image, key: bytes) -> tuple[int | None, bool]:
    """The hidden ID, and whether the copy was mirrored. The codec may find a mirrored mark
    by itself (`extract_detail` then says so); otherwise the mirrored image is tried."""
    detail = getattr(mark, "extract_detail", None)
    for flipped, candidate in ((False, image), (True, ImageOps.mirror(image))):
        try:
            if detail is not None:
                d = detail(candidate, key=key)
                found, mirrored = (
                    (None, False) if d is None else (d.payload, bool(getattr(d, "mirrored", False)))
                )
            else:
                found, mirrored = mark.extract(candidate, key=key), False
        except mark.MarkError:
            return None, False
        if found is not None:
            return found, mirrored != flipped
    return None, False


class Tracer:
    """Traces any number of images against one ledger; the fingerprint matrix is loaded once."""

    def __init__(
        self, conn: sqlite3.Connection, key: bytes, data_dir: Path | None = None, *, cache: Path | None = None
    ) -> None:
        self.conn = conn
        self.key = key
        self.data_dir = data_dir
        self.cache = cache
        self._index: fingerprint.Index | None = None

    @property
    def index(self) -> fingerprint.Index:
        if self._index is None:
            self._index = load_index(self.conn, self.cache)
        return self._index

    def trace_path(self, path: Path) -> Result:
        return self.trace_image(load_suspect(path))

    def trace_image(self, image: Image.Image) -> Result:
        found, mirrored = read_hidden_id(image, self.key)
        if found is not None:
            row = ledger.find(self.conn, found)
            if row is not None:
                m = Match(
                    row["id"], row["target"], row["url"], row["posted_at"], "hidden-id", 1.0, row, mirrored
                )
                return Result([m], found, mirrored)
        result = self.perceptual(image)
        if found is None and result.matches:
            informed = self._read_with_original(image, result.matches)
            if informed is not None:
                return informed
        result.hidden_id, result.hidden_id_mirrored = found, mirrored
        if found is not None:
            result.notes.append(f"a hidden ID ({ledger.format_id(found)}) was read but is not in this ledger")
        return result

    def _read_with_original(self, image: Image.Image, matches: list[Match]) -> Result | None:
        """The hidden ID read with the artwork's original at hand (stage 4).

        The blind read fails where the art's own texture drowns the mark (small busy images,
        pixel art, sketches on white); subtracting the original removes the art. The original
        from the archive is used, never a posted variant: a variant carries an ID itself, and
        whatever of it survived a removal would bias the read towards that post.
        """
        tried: set[tuple[Path, tuple[int, int] | None]] = set()
        originals: dict[Path, Image.Image | None] = {}
        for m in matches[:INFORMED_TRIES]:
            path = original_path(self.conn, self.data_dir, m.row)
            size = marked_size(self.conn, m.row)
            if path is None or (path, size) in tried:
                continue
            tried.add((path, size))
            if path not in originals:
                try:
                    data = imaging.read_file(path)
                    originals[path] = imaging.load(data, str(path), max_pixels=MAX_TRACE_PIXELS)
                except (InputError, OSError):
                    originals[path] = None
            ref = originals[path]
            if ref is None:
                continue
            try:
                background = str((m.row.get("render") or {}).get("background") or "#ffffff")
                d = informed.extract_informed(
                    image,
                    ref,
                    key=self.key,
                    marked_size=size,
                    backgrounds=informed.backgrounds_for(background),
                )
            except ValueError:  # MarkError, or a background colour that does not parse
                continue
            if d is None:
                continue
            row = ledger.find(self.conn, d.payload)
            if row is None:
                note = f"a hidden ID ({ledger.format_id(d.payload)}) was read but is not in this ledger"
                return Result([], d.payload, d.mirrored, notes=[note])
            hit = Match(
                row["id"], row["target"], row["url"], row["posted_at"], "hidden-id", 1.0, row,
                d.mirrored, via="read with the original",
            )  # fmt: skip
            return Result([hit], d.payload, d.mirrored)
        return None

    # -- perceptual ------------------------------------------------------------------------
    def perceptual(self, image: Image.Image) -> Result:
        q = fingerprint.query(image)
        if q.quality < fingerprint.MIN_QUALITY:
            return Result([], quality=q.quality, notes=["the image is too flat to compare perceptually"])
        idx = self.index
        if len(idx) == 0:
            return Result([], quality=q.quality)
        dist, trans, region = idx.distances(q)
        via: dict[int, str] = {}
        boxes: dict[int, tuple[float, float, float, float]] = {}
        hits = np.nonzero(dist <= MATCH_DISTANCE)[0]
        if len(hits) == 0 or dist.min() > CROP_SEARCH_ABOVE:
            # nothing close on the whole-image and fixed-window prints: probably a crop
            dist, via, boxes = self._crop_search(q, image, dist)
            hits = np.nonzero(dist <= MATCH_DISTANCE)[0]
        hits = hits[np.lexsort((-idx.seqs[hits], dist[hits]))][: MAX_MATCHES * 3]
        matches = []
        for i in hits:
            seq = int(idx.seqs[i])
            row = ledger.get(self.conn, seq)
            if row is None:
                continue
            r = int(region[i])
            mirrored = bool(trans[i] == 1)
            how = via.get(int(i))
            if how is None:
                which = "variant" if r < fingerprint.REGIONS else "original"
                how = f"{which}, {REGION_NAMES[r % fingerprint.REGIONS]}"
                if r % fingerprint.REGIONS:
                    boxes[int(i)] = fingerprint.REGION_BOXES[r % fingerprint.REGIONS]
            elif how.endswith("(mirrored)"):
                mirrored = True
            d = int(dist[i])
            matches.append(
                Match(
                    row["id"], row["target"], row["url"], row["posted_at"], "perceptual",
                    score_of(d), row, mirrored, d, how, None, boxes.get(int(i)),
                )
            )  # fmt: skip
        matches = self._which_post(image, q, matches)[:MAX_MATCHES]
        return Result(matches, quality=q.quality)

    def _crop_search(
        self, q: fingerprint.Query, image: Image.Image, dist: np.ndarray
    ) -> tuple[np.ndarray, dict[int, str], dict[int, tuple[float, float, float, float]]]:
        """Stage two for crops: align the suspect inside the thumbnails of a short list."""
        idx = self.index
        hist = fingerprint.histogram(fingerprint.luminance(image))
        whole, centre = idx.histogram_distances(hist)
        # short lists: by stage-one distance, by each histogram, and by the ranks combined
        # (a crop often ranks middling on every measure and first on none)
        rank = [np.argsort(np.argsort(v, kind="stable"), kind="stable") for v in (dist, whole, centre)]
        short: set[int] = set()
        for key in (dist, whole, centre, rank[0] + np.minimum(rank[1], rank[2])):
            k = min(SHORTLIST, len(idx))
            short |= set(np.argpartition(key, k - 1)[:k].tolist())
        thumbs = ledger.thumbnails(self.conn, [int(idx.seqs[i]) for i in short])
        dist = dist.copy()
        via: dict[int, str] = {}
        boxes: dict[int, tuple[float, float, float, float]] = {}
        for i in short:
            a = fingerprint.align(q, image.size, thumbs.get(int(idx.seqs[i]), b""))
            if a is not None and a.distance < dist[i]:
                dist[i] = a.distance
                box = ", ".join(f"{v:.0%}" for v in a.box)
                via[i] = f"variant, crop ({box}){' (mirrored)' if a.mirrored else ''}"
                boxes[i] = a.box
        return dist, via, boxes

    def _which_post(self, image: Image.Image, q: fingerprint.Query, matches: list[Match]) -> list[Match]:
        """Among matches showing the same original, put the post whose variant is closest
        first. Variant prints decide first; the variant files' pixels, when present, settle it."""
        if not matches:
            return matches
        groups: dict[str, list[Match]] = {}
        for m in matches:
            groups.setdefault(m.row["original_sha256"], []).append(m)
        out: list[Match] = []
        for group in sorted(groups.values(), key=lambda g: min(m.distance or 0 for m in g)):
            if len(group) == 1:
                out.append(_with_post(group[0], "distinguished"))
                continue
            # compare every variant through the same crop window: the window found for the
            # best match (all variants show the same art, so the same fractions apply)
            box = next((m.box for m in group if m.box is not None), None)
            keyed = sorted(
                ((self._variant_closeness(image, q, m, box), m) for m in group), key=lambda km: km[0]
            )
            (best_print, best_px), (second_print, second_px) = keyed[0][0], keyed[1][0]
            # told apart when the variant prints differ clearly (a watermark layout, a crop of
            # one variant only) or the pixels of one variant file are clearly closer
            clear = best_print < second_print or best_px < 0.9 * second_px
            label = "distinguished" if clear else "ambiguous"
            out.extend(_with_post(m, label if j == 0 else "ambiguous") for j, (_, m) in enumerate(keyed))
        return out

    def _variant_closeness(
        self,
        image: Image.Image,
        q: fingerprint.Query,
        m: Match,
        box: tuple[float, float, float, float] | None,
    ) -> tuple[int, float]:
        """(variant-print distance in steps of 8 bits, pixel difference to the variant file)."""
        vfp = bytes.fromhex(m.row.get("variant_fp") or "")
        qd = q.hashes[1 if m.mirrored else 0]
        step = 8  # bits: differences below this are noise between near-identical variants
        if len(vfp) != fingerprint.FP_BYTES:
            return 256 // step, self._pixel_difference(image, m, box)
        hb = fingerprint.HASH_BYTES
        vd = min(fingerprint.distance(qd, vfp[i * hb : (i + 1) * hb]) for i in range(fingerprint.REGIONS))
        if box is not None:
            vd = 256  # a crop: the whole-image prints say nothing about which variant it was
        return vd // step, self._pixel_difference(image, m, box)

    def _pixel_difference(
        self, image: Image.Image, m: Match, box: tuple[float, float, float, float] | None = None
    ) -> float:
        """Mean normalised luminance difference between the suspect and the variant file (inf
        when the file is gone or the shapes do not fit). For a crop, the window is refined on
        the pixels first, so each variant is compared at its own best alignment."""
        path = variant_path(self.conn, self.data_dir, m.row)
        other = fingerprint.load_file(path) if path is not None else None
        if other is None:
            return float("inf")
        a = ImageOps.mirror(image.convert("L")) if m.mirrored else image.convert("L")
        b = other.convert("L")
        b = b.resize((512, max(1, round(512 * b.height / b.width))), Image.Resampling.BOX)
        size = (160, max(1, round(160 * a.height / a.width)))  # coarse: blur matters less
        x = _normalised(np.asarray(a.resize(size, Image.Resampling.BOX), dtype=np.float32))
        if box is None:
            if abs(np.log(a.width / a.height) - np.log(b.width / b.height)) > 0.03:
                return float("inf")
            return _difference(x, b, (0.0, 0.0, 1.0, 1.0), size)
        # coordinate descent on the four edges, coarse to fine: the thumbnail search is only
        # accurate to about ±1.5 %, and a misaligned window hides the watermark difference
        cur = list(box)
        best = _difference(x, b, tuple(cur), size)  # type: ignore[arg-type]
        for step in (0.01, 0.004, 0.0015):
            cur, best = _refine(x, b, cur, best, size, step)
        return best


def _refine(
    x: np.ndarray, b: Image.Image, cur: list[float], best: float, size: tuple[int, int], step: float
) -> tuple[list[float], float]:
    for _ in range(20):
        improved = False
        for edge in range(4):
            for delta in (-step, step):
                trial = list(cur)
                trial[edge] = min(1.0, max(0.0, trial[edge] + delta))
                if trial[2] - trial[0] < 0.3 or trial[3] - trial[1] < 0.3:
                    continue
                d = _difference(x, b, tuple(trial), size)  # type: ignore[arg-type]
                if d < best:
                    best, cur, improved = d, trial, True
        if not improved:
            break
    return cur, best


def _normalised(a: np.ndarray) -> np.ndarray:
    return (a - a.mean()) / (a.std() + 1e-6)


def _difference(
    x: np.ndarray, b: Image.Image, box: tuple[float, float, float, float], size: tuple[int, int]
) -> float:
    w, h = b.size
    y = b.resize(size, Image.Resampling.BOX, box=(box[0] * w, box[1] * h, box[2] * w, box[3] * h))
    return float(np.abs(x - _normalised(np.asarray(y, dtype=np.float32))).mean())


INDEX_NAME = "trace-index.npz"


def index_cache(data_dir: Path) -> Path:
    return data_dir / INDEX_NAME


def refresh_index(conn: sqlite3.Connection, data_dir: Path) -> None:
    """Add newly posted rows to the on-disk index right after posting, so even the first
    trace afterwards only reads the cache (the cold read of a large ledger is the slow part)."""
    load_index(conn, index_cache(data_dir))


def load_index(conn: sqlite3.Connection, cache: Path | None = None) -> fingerprint.Index:
    """The fingerprint index of every ledger row. With `cache` (a file in the data folder),
    rows already seen are read from it and only newer rows from SQLite: reading 100,000 rows
    of prints out of SQLite takes longer than the search itself. The ledger is append-only,
    so the cache stays valid while the row it ends with still has the same chain hash;
    anything else (a rewritten ledger, a damaged file) rebuilds it."""
    seqs = np.empty(0, dtype=np.int64)
    raw = np.empty((0, 2, fingerprint.FP_BYTES), dtype=np.uint8)
    valid = np.empty((0, 2), dtype=bool)
    if cache is not None and cache.is_file():
        try:
            with np.load(cache, allow_pickle=False) as data:
                last_seq, last_hash = int(data["last_seq"]), str(data["last_hash"])
                row = conn.execute("SELECT row_hash FROM ledger WHERE seq = ?", (last_seq,)).fetchone()
                if row is not None and row[0] == last_hash and data["raw"].shape[1:] == raw.shape[1:]:
                    seqs, raw, valid = data["seqs"], data["raw"], data["valid"]
        except (OSError, ValueError, KeyError):
            pass  # rebuilt below
    after = int(seqs[-1]) if len(seqs) else 0
    new = fingerprint.Index.from_rows(*ledger.fingerprints(conn, after))
    if len(new):
        seqs = np.concatenate([seqs, new.seqs])
        raw = np.concatenate([raw, new.raw])
        valid = np.concatenate([valid, new.valid])
        if cache is not None:
            _save_cache(conn, cache, seqs, raw, valid)
    return fingerprint.Index(seqs, raw, valid)


def _save_cache(
    conn: sqlite3.Connection, cache: Path, seqs: np.ndarray, raw: np.ndarray, valid: np.ndarray
) -> None:
    last = conn.execute("SELECT row_hash FROM ledger WHERE seq = ?", (int(seqs[-1]),)).fetchone()
    if last is None:
        return
    tmp = cache.with_name(cache.name + ".tmp")
    try:
        with open(os.open(tmp, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o600), "wb") as f:
            np.savez(f, seqs=seqs, raw=raw, valid=valid, last_seq=int(seqs[-1]), last_hash=str(last[0]))
        os.replace(tmp, cache)
    except OSError:
        pass  # a read-only data folder: trace still works, just without the cache


def _with_post(m: Match, post: str) -> Match:
    return Match(
        m.id,
        m.target,
        m.url,
        m.posted_at,
        m.method,
        m.score,
        m.row,
        m.mirrored,
        m.distance,
        m.via,
        post,
        m.box,
    )


def variant_path(conn: sqlite3.Connection, data_dir: Path | None, row: dict[str, Any]) -> Path | None:
    """The posted variant's file in the data folder, if it is still there."""
    if data_dir is None:
        return None
    found = conn.execute(
        "SELECT path FROM variants WHERE mark_id = ?", (ledger.parse_id(row["id"]),)
    ).fetchone()
    if found is None:
        return None
    path = data_dir / found[0]
    return path if path.is_file() else None


def marked_size(conn: sqlite3.Connection, row: dict[str, Any]) -> tuple[int, int] | None:
    """The size of the image the post's hidden ID was embedded in (its variant's size)."""
    found = conn.execute(
        "SELECT width, height FROM variants WHERE mark_id = ?", (ledger.parse_id(row["id"]),)
    ).fetchone()
    return None if found is None else (int(found[0]), int(found[1]))


def original_path(conn: sqlite3.Connection, data_dir: Path | None, row: dict[str, Any]) -> Path | None:
    if data_dir is None:
        return None
    found = conn.execute(
        "SELECT o.archive_path FROM originals o JOIN jobs j ON j.artwork_id = o.artwork_id "
        "WHERE j.id = ? AND o.idx = ?",
        (row["job_id"], row["idx"]),
    ).fetchone()
    if found is None:
        return None
    path = data_dir / found[0]
    return path if path.is_file() else None


def trace(conn: sqlite3.Connection, path: Path, key: bytes, data_dir: Path | None = None) -> list[Match]:
    return Tracer(conn, key, data_dir).trace_path(path).matches
