"""Leak lookup: which post did this image come from?

Every answer says how far the evidence goes (`Result.verdict`, and `post` on each match):

* **exact post** — the copy carries that post's hidden ID (read blind, or with the original
  at hand), or that post's visible layers (its random watermark layout, its signature) and
  not those of the artwork's other posts. Only then is one post named.
* **artwork only** — the copy shows the artwork (local features agree on one geometry, or
  the perceptual hashes are close) but nothing ties it to one post: every post of the
  artwork is listed, none is named.
* **not from any post** — the copy shows the artwork but none of the visible layers every
  one of its posts carries: a leak of the source file (the artist's disk, a stream, a
  commission client), not of a post. No post is listed.
* **likely rework** — no copy of the artwork, but its composition at thumbnail scale
  (poster.composition): an img2img "AI tracing" or a repaint. Calibrated score; never a post.

Stages:

1. **Local features** (poster.features): SIFT keypoints of every archived original in an
   inverted file; the suspect's keypoints find the artwork and, by RANSAC, where the copy
   sits (crop, scale, turn, mirror, perspective, a panel of a collage); when the index's own
   verification finds nothing, its short list's originals are matched directly (`_direct`),
   and failing that a suspect split by uniform gutters is searched part by part (`_by_panels`:
   the other panels of a collage outvote its art), and last the short lists' originals with
   too few strong keypoints are placed from their pixels (`_by_registration`, poster.dense:
   such a copy is named by the hidden ID read through that map, or not at all). The hidden ID is then
   read with the original through that geometry (`poster.mark.informed`): a hit is method
   `hidden-id` with `via: "read with the original"` and names the exact post, and trace
   stops there (the blind read costs more and reads nothing the informed read cannot).
2. Otherwise the hidden ID read blind (the codec searches scale and offset itself; the
   mirrored image is tried too, since flipped tracing is common). A hit in this ledger names
   the exact ledger row: method `hidden-id`.
3. When the features found the artwork but no ID was read, the visible layers are compared
   (`_layers`): one post's layers, none (not from any post), or "artwork only".
4. When the features found nothing: perceptual similarity (poster.fingerprint) against
   every ledger row at once (faiss's binary range search on large ledgers): whole-image and
   window hashes of the posted variant and of the original, the suspect's 8 dihedral
   hashes; then, for a short list, a crop search on the stored thumbnail. Rows whose
   calibrated score reaches MATCH_SCORE name the artwork (never a post by themselves); the
   hidden ID is read again with that artwork's original, and the closest variant is listed
   first.
5. Last, a composition match at thumbnail scale (poster.composition): a likely rework.

Score: 1.0 for a hidden-ID hit. For perceptual matches it is a piecewise-linear map of the
Hamming distance d (0-256) calibrated on the corpus (benchmarks/trace.py): 1 at d = 0, 0.5 at
the match threshold MATCH_DISTANCE, 0 at UNRELATED_DISTANCE, the smallest distance measured
between unrelated images. Only scores ≥ 0.5 are reported.
"""

from __future__ import annotations

import logging
import os
import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps

from poster import fingerprint, imaging, ledger, mark
from poster.errors import InputError, UserError
from poster.i18n import N_, _
from poster.ledger import variant_path
from poster.mark import informed

log = logging.getLogger(__name__)
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
LOCATES = 6  # weak originals registered densely per suspect, 0.2-0.5 s each (Tracer._by_registration)
REGISTRATIONS = 2  # of those, the best-correlated maps the hidden ID is read through (0.5-1 s each)
REWORK_CANDIDATES = 5  # composition matches per orientation given the second rework check
COPY_DISTANCE = 32  # perceptual matches farther than this (bits) may be reworks rather than copies
# a part of a suspect searched on its own (None: the whole) and its short list (features.search)
Part = tuple[tuple[int, int, int, int] | None, dict[str, int]]
REGION_NAMES = ("whole", "centre 80%", "top-left 80%", "top-right 80%", "bottom-left 80%", "bottom-right 80%")


def features_score(inliers: int) -> float:
    """0.5 at MIN_INLIERS matches agreeing on one geometry, towards 1 with more (calibrated
    in benchmarks/trace.py: unrelated images never reached MIN_INLIERS)."""
    from poster import features

    return float(min(1.0, 1.0 - 0.5 * features.MIN_INLIERS / max(inliers, features.MIN_INLIERS)))


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
    extra: dict[str, Any] | None = None  # more JSON fields (e.g. the features' inliers)

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
            out.update(distance=self.distance, via=self.via)
        elif self.via:
            out.update(via=self.via)
        if self.post:
            out["post"] = self.post
        if self.extra:
            out.update(self.extra)
        return out


# verdicts (Result.verdict) and what `post` says on each match
EXACT = "exact post"
ARTWORK = "artwork only"
UNPOSTED = "not from any post"
REWORK = "likely rework"
NOTHING = "no match"
VERDICT_LABEL = {  # short labels for tables (translated where shown); the JSON keeps the keys
    EXACT: N_("exact post"),
    ARTWORK: N_("artwork only"),
    UNPOSTED: N_("not from any post"),
    REWORK: N_("likely rework"),
    NOTHING: N_("no match"),
    "error": N_("error"),
}


# how a hidden ID was read (Result.id_read); every read passed the key-salted CRC-32
READ_BLIND = "blind"  # from the copy alone
READ_GEOMETRY = "original, found geometry"  # with the original, through the local features' map
READ_ORIGINAL = "original"  # with the original, registered by informed's own search


def _foreign_id(payload: int) -> str:
    return _("a hidden ID ({id}) was read but is not in this ledger").format(id=ledger.format_id(payload))


@dataclass(frozen=True)
class Artwork:
    """The artwork a copy shows (one archived original) and how it was found."""

    key: str  # the original's sha256
    name: str | None  # the outbox name it came in as
    method: str  # features | registration | perceptual | rework
    score: float
    mirrored: bool = False
    geometry: np.ndarray | None = None  # 3 x 3: original pixels -> suspect pixels
    inliers: int | None = None  # features: matches that agree on the geometry
    pairs: np.ndarray | None = None  # features: (n, 4) original x, y -> suspect x, y
    similarity: float | None = None  # rework: composition similarity (poster.composition)
    regions: float | None = None  # rework: the second check (composition.regions)
    colour: float | None = None  # rework: the colour check (composition.colour); None: both grey

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "original_sha256": self.key,
            "name": self.name,
            "method": self.method,
            "score": round(self.score, 4),
            "mirrored": self.mirrored,
        }
        if self.inliers is not None:
            out["inliers"] = self.inliers
        if self.similarity is not None:
            out["similarity"] = round(self.similarity, 4)
        if self.regions is not None:
            out["regions"] = round(self.regions, 4)
        if self.colour is not None:
            out["colour"] = round(self.colour, 4)
        if self.geometry is not None:
            out["geometry"] = [[round(float(v), 6) for v in row] for row in self.geometry]
        return out


@dataclass
class Result:
    """Everything one trace found out, for the CLI and the evidence report."""

    matches: list[Match]
    hidden_id: int | None = None  # what the codec read, even when it is not in this ledger
    hidden_id_mirrored: bool = False
    quality: int = 0
    notes: list[str] = field(default_factory=list)
    verdict: str = ""
    artwork: Artwork | None = None
    layers: dict[str, Any] | None = None  # the visible-layer comparison, when one was made
    id_read: str | None = None  # how `hidden_id` was read: READ_BLIND | READ_GEOMETRY | READ_ORIGINAL

    def __post_init__(self) -> None:
        if not self.verdict:
            self.verdict = _verdict_of(self.matches)

    def summary(self) -> dict[str, Any]:
        """The per-image JSON beyond `matches` (added fields of the CONTRACT's shape)."""
        out: dict[str, Any] = {"verdict": self.verdict}
        if self.artwork is not None:
            out["artwork"] = self.artwork.to_json()
        if self.layers is not None:
            out["layers"] = self.layers
        if self.hidden_id is not None:
            out["hidden_id"] = {
                "id": ledger.format_id(self.hidden_id),
                "read": self.id_read,
                "mirrored": self.hidden_id_mirrored,
                "in_ledger": any(m.method == "hidden-id" for m in self.matches),
            }
        return out


def _verdict_of(matches: list[Match]) -> str:
    if not matches:
        return NOTHING
    post = matches[0].post
    if post == "exact":
        return EXACT
    return REWORK if post == REWORK else ARTWORK


def load_suspect(path: Path) -> Image.Image:
    return suspect_from_bytes(imaging.read_file(path), str(path))


def read_hidden_id(image: Image.Image, key: bytes) -> tuple[int | None, bool]:
    """The hidden ID, and whether the copy was mirrored. Read once: `extract_detail` finds a
    mirrored mark by itself (it decodes each folded lattice both ways round, and the lattice
    of a mirrored copy is the mirror of the original's); a second full pass on the mirrored
    image cost as much again (~1.5 s of CPU on a 1600 px copy without a mark, the usual
    case) and read nothing more."""
    try:
        d = mark.extract_detail(image, key=key)
    except mark.MarkError:
        return None, False
    return (None, False) if d is None else (d.payload, bool(d.mirrored))


class Tracer:
    """Traces any number of images against one ledger; the indexes are loaded once."""

    def __init__(
        self,
        conn: sqlite3.Connection,
        key: bytes,
        data_dir: Path | None = None,
        *,
        cache: Path | None = None,
        features_index: bool = True,
        findex: Any = None,
    ) -> None:
        self.conn = conn
        self.key = key
        self.data_dir = data_dir
        self.cache = cache
        self.use_features = features_index and data_dir is not None
        self._index: fingerprint.Index | None = None
        # features.FeatureIndex, when the caller brought it up to date (actions.prepare_trace_index)
        self._findex: Any = findex if self.use_features else None
        self._originals: dict[str, Image.Image | None] = {}
        self._pairs: dict[str, Any] = {}  # original key -> features.pair_features (or None)
        # original key -> too few strong keypoints (features.few_strong), for every original
        # whose pair features were made: kept when those are dropped, it costs a bool
        self._weak: dict[str, bool] = {}

    @property
    def index(self) -> fingerprint.Index:
        if self._index is None:
            self._index = load_index(self.conn, self.cache)
        return self._index

    @property
    def findex(self) -> Any:
        """The local-feature index (poster.features), brought up to date with the archive
        first: originals that were never indexed (a crash, an older poster) are added now."""
        if self._findex is None and self.use_features and self.data_dir is not None:
            from poster import features

            try:
                self._findex = features.update(self.conn, self.data_dir)
            except OSError as exc:  # a read-only data folder: use what is there
                log.warning("feature index not updated: %s", exc)
                self._findex = features.FeatureIndex(self.data_dir / features.INDEX_DIR)
        return self._findex

    def trace_path(self, path: Path) -> Result:
        return self.trace_image(load_suspect(path))

    def trace_image(self, image: Image.Image) -> Result:
        # Local features first (~0.5 s): when they find the artwork, the hidden ID read with
        # the original through the found geometry names the post, and the blind read (2-4 s
        # of CPU on a large copy, both orientations) is not needed: it reads nothing the
        # informed read cannot (benchmarks/TRACE_RESULTS.md, attack table).
        by_features = self._by_features(image, read_id=True)
        if by_features is not None and _read_exact(by_features):
            return by_features
        found, mirrored = read_hidden_id(image, self.key)
        if found is not None:
            row = ledger.find(self.conn, found)
            if row is not None:  # a hidden ID in this ledger outranks any visible-layer verdict
                m = Match(
                    row["id"], row["target"], row["url"], row["posted_at"], "hidden-id", 1.0, row, mirrored,
                    post="exact",
                )  # fmt: skip
                art = by_features.artwork if by_features is not None else None
                return Result([m], found, mirrored, verdict=EXACT, artwork=art, id_read=READ_BLIND)
        notes = []
        if found is not None:
            notes.append(_foreign_id(found))
        foreign: Result | None = None  # an ID read with the original that this ledger never issued
        result = by_features
        if result is None:
            result = self.perceptual(image)
            if found is None and result.matches:
                informed = self._read_with_original(image, result.matches)
                if informed is not None and informed.matches:
                    return informed
                foreign = informed
            if result.matches:
                result = self._perceptual_verdict(image, result)
            else:
                result = self._rework(image, result)
        if result.hidden_id is None and found is not None:
            result.hidden_id, result.hidden_id_mirrored, result.id_read = found, mirrored, READ_BLIND
        elif result.hidden_id is None and foreign is not None:
            result.hidden_id, result.hidden_id_mirrored = foreign.hidden_id, foreign.hidden_id_mirrored
            result.id_read = foreign.id_read
            notes += foreign.notes
        result.notes = notes + result.notes
        return result

    # -- local features ----------------------------------------------------------------------
    def _by_features(self, image: Image.Image, *, read_id: bool) -> Result | None:
        """Stage 0: the artwork by local features, then its post by the hidden ID read with
        the original through the found geometry, else by the visible layers."""
        index = self.findex
        if index is None or len(index) == 0:
            return None
        from poster import features

        shortlist: dict[str, int] = {}
        hits = index.search(features.extract_query(image), shortlist=shortlist)
        if not hits and shortlist:
            hits = self._direct(image, shortlist)
        in_panel = False
        parts: list[Part] = [(None, shortlist)]
        if not hits:
            hits, parts = self._by_panels(image, index, parts)
            in_panel = bool(hits)
        if not hits:
            return self._by_registration(image, parts) if read_id else None
        tries = hits[:INFORMED_TRIES]
        for hit in tries:
            rows = self._rows_of(hit.key)
            art = Artwork(
                hit.key, self._artwork_name(hit.key), "features", features_score(hit.inliers), hit.mirrored,
                hit.homography, hit.inliers, hit.pairs,
            )  # fmt: skip
            got = self._informed(image, hit.key, rows, hit.homography) if read_id and rows else None
            if got is not None and got.matches:
                got.artwork = art
                return got
            if rows or hit is tries[-1]:  # an artwork without posts: try the next one
                # A direct match also registers reworks that keep the drawing (re-drawn lines
                # over a pencil sketch: the X post's layers "shown" through it, benchmarks/
                # TRACE_RESULTS.md, section 4); the layers name a post only for a faithful
                # copy (residual from the original <= layers.COPY_NOISE), so they decide here
                # as for any registered copy (tests/test_trace.py, direct match). Not for a
                # geometry found in one panel (fewer inliers: there the layers once named the pixiv
                # post of an unposted original's crop, TRACE_RESULTS section 12), a second guard
                # beside layers.EDGE_LEVEL: such a copy is named by its hidden ID or not at all.
                verdict = self._artwork_verdict(image, art, rows, layers_name_post=not in_panel)
                if got is not None:  # an ID this ledger never issued: said, never matched
                    verdict.hidden_id, verdict.hidden_id_mirrored = got.hidden_id, got.hidden_id_mirrored
                    verdict.id_read = got.id_read
                    verdict.notes = got.notes + verdict.notes
                return verdict
        return None

    def _by_panels(self, image: Image.Image, index: Any, parts: list[Part]) -> tuple[list[Any], list[Part]]:
        """The search and the direct match again on each part of a suspect split by uniform
        gutters (a collage, a picture under a caption band: features.panels), largest first,
        until one finds its artwork; the hits in the whole suspect's pixels. Only a suspect
        with gutters pays for it, and only when nothing was found whole. Also `parts` with
        each searched part's box and short list added (for `_by_registration`)."""
        from poster import features

        parts = list(parts)
        for box in features.panels(image):
            part = image.crop(box)
            shortlist: dict[str, int] = {}
            hits = index.search(features.extract_query(part), shortlist=shortlist)
            if not hits and shortlist:
                hits = self._direct(part, shortlist)
            if hits:
                return [features.in_panel(h, box) for h in hits], parts
            parts.append((box, shortlist))
        return [], parts

    def _by_registration(self, image: Image.Image, parts: list[Part]) -> Result | None:
        """Smooth art (poster.dense): the short lists' originals with too few strong
        keypoints for the features (features.few_strong) are registered densely against the
        suspect (each part, then whole), and the hidden ID is read through that map. Only a
        read ID of a post of that same original names anything: a correlation of smooth
        pixels is no evidence (any sky matches a gradient), so nothing else is said. At most
        LOCATES originals are registered and REGISTRATIONS read, and only weak ones: a suspect
        whose short lists hold only keypoint-rich art (nearly every query) pays nothing."""
        from poster import dense, features

        located: list[tuple[float, str, np.ndarray, bool]] = []
        tried = 0
        # the parts first: a suspect with gutters is more often art beside other things
        # (a caption, a collage) than art with flat bands, and only art alone can be placed
        for box, shortlist in sorted(parts, key=lambda p: p[0] is None):
            for key in sorted(shortlist, key=lambda k: -shortlist[k])[: features.SHORTLIST]:
                # every short-listed original was described for the direct match (`_direct`)
                if tried >= LOCATES or not self._weak.get(key) or not self._rows_of(key):
                    continue
                ref = self._original(key)
                if ref is None:
                    continue
                tried += 1
                found = dense.locate(ref, image if box is None else image.crop(box))
                if found is not None and found.correlation >= dense.MIN_CORRELATION:
                    geometry = features.box_shift(box) @ found.homography
                    located.append((found.correlation, key, geometry, found.mirrored))
        # the reads cost more than the registrations: the best-correlated maps first
        for correlation, key, geometry, mirrored in sorted(located, key=lambda t: -t[0])[:REGISTRATIONS]:
            got = self._informed(image, key, self._rows_of(key), geometry)
            if got is None or not got.matches or got.matches[0].row["original_sha256"] != key:
                continue  # nothing read, or an ID of another artwork: this map proves nothing
            name = self._artwork_name(key)
            got.artwork = Artwork(key, name, "registration", correlation, mirrored, geometry)
            return got
        return None

    def _direct(self, image: Image.Image, shortlist: dict[str, int]) -> list[Any]:
        """The short list's originals matched directly against the suspect (poster.features,
        SHORTLIST): the index's quantised keypoints of a tight crop of smooth or densely
        hatched art agree on too few places, the originals' own keypoints on many. The same
        MIN_INLIERS and plausibility test decide (calibrated in benchmarks/trace_calibration.py,
        pair pass)."""
        from poster import features

        fs: Any = None
        hits = []
        # the SHORTLIST best-voted over both orientations (the search lists each's best)
        for key in sorted(shortlist, key=lambda k: -shortlist[k])[: features.SHORTLIST]:
            fo = self._pair_features(key)
            if fo is None:
                continue
            if fs is None:
                fs = features.pair_features(image)
            hit = features.match_features(fo, fs, key=key)
            if hit is not None:
                hits.append(hit)
        return sorted(hits, key=lambda h: -h.inliers)

    def _pair_features(self, key: str) -> Any:
        """An original's keypoints for a direct match (kept for a few originals: a batch
        often shows the same artwork several times)."""
        from poster import features

        if key not in self._pairs:
            ref = self._original(key)
            if len(self._pairs) > 4:
                self._pairs.pop(next(iter(self._pairs)))
            self._pairs[key] = None if ref is None else features.pair_features(ref)
            self._weak[key] = ref is not None and features.few_strong(self._pairs[key])
        return self._pairs[key]

    def _artwork_verdict(
        self, image: Image.Image, art: Artwork, rows: list[dict[str, Any]], *, layers_name_post: bool = True
    ) -> Result:
        """The artwork is known, its hidden ID was not read: the visible layers decide between
        one post, the source file (no post) and "artwork only" (without `layers_name_post`,
        between the last two only)."""
        layers = self.layers(image, art, rows) if art.geometry is not None else None
        if layers is not None and layers["verdict"] == EXACT and not layers_name_post:
            layers = dict(layers, verdict=ARTWORK, post=None)
        extra = {"inliers": art.inliers} if art.inliers is not None else None
        if layers is not None and layers["verdict"] == UNPOSTED:
            return Result([], verdict=UNPOSTED, artwork=art, layers=layers)
        if not rows:  # archived, never posted (yet)
            return Result(
                [], verdict=UNPOSTED, artwork=art, layers=layers, notes=[_("this artwork has no posts")]
            )
        if layers is not None and layers["verdict"] == EXACT:
            best = layers["post"]
            ordered = sorted(rows, key=lambda r: r["id"] != best)
            matches = [
                Match(
                    r["id"], r["target"], r["url"], r["posted_at"],
                    "visible-layers" if r["id"] == best else art.method, art.score, r, art.mirrored,
                    via=None, post="exact" if r["id"] == best else ARTWORK, extra=extra,
                )
                for r in ordered
            ]  # fmt: skip
            return Result(matches, verdict=EXACT, artwork=art, layers=layers)
        matches = [
            Match(r["id"], r["target"], r["url"], r["posted_at"], art.method, art.score, r, art.mirrored,
                  post=ARTWORK, extra=extra)
            for r in sorted(rows, key=lambda r: -r["seq"])
        ]  # fmt: skip
        return Result(matches, verdict=ARTWORK, artwork=art, layers=layers)

    def _perceptual_verdict(self, image: Image.Image, result: Result) -> Result:
        """Perceptual matches name the artwork, never a post (the closest variant is listed
        first); a distant one is a likely rework rather than a copy."""
        best = result.matches[0]
        key = best.row["original_sha256"]
        if (best.distance or 0) > COPY_DISTANCE:
            rework = self._rework(image, Result([], quality=result.quality))
            if rework.matches:
                return rework
        box = best.box
        art = Artwork(key, self._artwork_name(key), "perceptual", best.score, best.mirrored)
        geometry = self._box_geometry(image, key, box, best.mirrored)
        if geometry is not None:
            art = Artwork(key, art.name, "perceptual", best.score, best.mirrored, geometry)
        layers = self.layers(image, art, self._rows_of(key)) if geometry is not None else None
        if layers is not None and layers["verdict"] == UNPOSTED:
            return self._artwork_verdict(image, art, self._rows_of(key))
        if layers is not None and layers["verdict"] == EXACT:
            # A perceptual box is a guess of where the copy sits, not a registration: the
            # layers of an img2img rework of the X post "matched" through it and named that
            # post (benchmarks/TRACE_RESULTS.md, attack table). Only the local features'
            # geometry lets the layers name a post; here the artwork is all that is shown.
            layers = None
        matches = [_with_post(m, ARTWORK) for m in result.matches]
        return Result(
            matches, quality=result.quality, notes=result.notes, verdict=ARTWORK, artwork=art, layers=layers
        )

    def _box_geometry(
        self, image: Image.Image, key: str, box: tuple[float, float, float, float] | None, mirrored: bool
    ) -> np.ndarray | None:
        """The map original -> suspect of a perceptual match: the suspect shows `box` (the
        whole picture when None) of the artwork, scaled."""
        ref = self._original(key)
        if ref is None:
            return None
        bx = box or (0.0, 0.0, 1.0, 1.0)
        rw, rh = ref.size
        x0, y0, x1, y1 = bx[0] * rw, bx[1] * rh, bx[2] * rw, bx[3] * rh
        sx, sy = image.width / max(1e-6, x1 - x0), image.height / max(1e-6, y1 - y0)
        h = np.array([[sx, 0.0, -x0 * sx], [0.0, sy, -y0 * sy], [0.0, 0.0, 1.0]])
        if mirrored:
            h = np.array([[-1.0, 0.0, image.width], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]) @ h
        return h

    def _rows_of(self, key: str) -> list[dict[str, Any]]:
        found = self.conn.execute("SELECT seq FROM ledger WHERE original_sha256 = ? ORDER BY seq", (key,))
        return [r for r in (ledger.get(self.conn, int(s)) for (s,) in found.fetchall()) if r is not None]

    def _artwork_name(self, key: str) -> str | None:
        row = self.conn.execute(
            "SELECT a.name, o.name FROM originals o JOIN artworks a ON a.id = o.artwork_id "
            "WHERE o.sha256 = ? ORDER BY o.rowid LIMIT 1",
            (key,),
        ).fetchone()
        if row is None:
            return None
        return row[0] if row[0] == row[1] else f"{row[0]}/{row[1]}"

    def _original(self, key: str) -> Image.Image | None:
        if key not in self._originals:
            ref = None
            found = self.conn.execute(
                "SELECT archive_path FROM originals WHERE sha256 = ? LIMIT 1", (key,)
            ).fetchone()
            if found is not None and self.data_dir is not None:
                path = self.data_dir / found[0]
                try:
                    ref = imaging.load(imaging.read_file(path), str(path), max_pixels=MAX_TRACE_PIXELS)
                except (InputError, OSError):
                    ref = None
            if len(self._originals) > 4:  # a batch: keep a few, not every artwork in memory
                self._originals.pop(next(iter(self._originals)))
            self._originals[key] = ref
        return self._originals[key]

    def _informed(
        self, image: Image.Image, key: str, rows: list[dict[str, Any]], geometry: np.ndarray | None
    ) -> Result | None:
        """The hidden ID read with the original `key` at hand (through `geometry` if known),
        once per distinct marked size among its posts."""
        ref = self._original(key)
        if ref is None:
            return None
        # whether the read goes through the found geometry (informed.extract_informed falls
        # back to its own registration search when the map gives no usable view)
        view = None if geometry is None else informed.known_view(image, ref.size, np.asarray(geometry, float))
        how = READ_ORIGINAL if view is None else READ_GEOMETRY
        tried: set[tuple[tuple[int, int] | None, str]] = set()
        for row in rows:
            size = marked_size(self.conn, row)
            background = str((row.get("render") or {}).get("background") or "#ffffff")
            if (size, background) in tried:
                continue
            tried.add((size, background))
            try:
                d = informed.extract_informed(
                    image, ref, key=self.key, marked_size=size,
                    backgrounds=informed.backgrounds_for(background), geometry=geometry,
                )  # fmt: skip
            except ValueError:
                continue
            if d is None:
                continue
            hit_row = ledger.find(self.conn, d.payload)
            if hit_row is None:
                return Result([], d.payload, d.mirrored, notes=[_foreign_id(d.payload)], id_read=how)
            m = Match(
                hit_row["id"], hit_row["target"], hit_row["url"], hit_row["posted_at"], "hidden-id", 1.0,
                hit_row, d.mirrored, via="read with the original", post="exact",
            )  # fmt: skip
            return Result([m], d.payload, d.mirrored, verdict=EXACT, id_read=how)
        return None

    def _read_with_original(self, image: Image.Image, matches: list[Match]) -> Result | None:
        """The hidden ID read with the artwork's original at hand (stage 4), for perceptual
        matches: the original from the archive is used, never a posted variant (a variant
        carries an ID itself, and whatever of it survived would bias the read)."""
        seen: set[str] = set()
        for m in matches:
            key = m.row["original_sha256"]
            if key in seen:
                continue
            seen.add(key)
            if len(seen) > INFORMED_TRIES:
                break
            got = self._informed(image, key, self._rows_of(key), None)
            if got is not None:
                return got
        return None

    # -- visible layers ----------------------------------------------------------------------
    def layers(self, image: Image.Image, art: Artwork, rows: list[dict[str, Any]]) -> dict[str, Any] | None:
        """Which posted variant's visible layers (signature, random watermark) the copy shows,
        if any: see `poster.layers`. None when the files to compare are not there."""
        from poster import layers as layers_mod

        ref = self._original(art.key)
        if ref is None or art.geometry is None:
            return None
        variants: dict[str, Image.Image | None] = {}
        for r in rows:
            path = variant_path(self.conn, self.data_dir, r)
            variants[r["id"]] = fingerprint.load_file(path) if path is not None else None
        return layers_mod.compare(image, ref, variants, art.geometry)

    # -- reworks -----------------------------------------------------------------------------
    def _rework(self, image: Image.Image, result: Result) -> Result:
        """The last stage: a composition match at thumbnail scale, confirmed part by part and
        by the layout of the colours (poster.composition)."""
        index = self.findex
        if index is None or len(index) == 0:
            return result
        from poster import composition

        thumb = composition.thumbnail(image)
        grid = composition.luma_of(thumb)
        if composition.energy(grid) < composition.MIN_ENERGY:
            return result
        v = composition.from_grid(grid)
        sims, ids = index.composition_search(np.stack([v, composition.mirror(v)]), k=REWORK_CANDIDATES)
        if sims.size == 0:
            return result
        # Three checks: the layout of light and dark of the whole picture (the index's first
        # stage), the same in each of nine overlapping parts (the least similar part
        # counting), and the layout of the colours whatever their hues. Unrelated pictures
        # with a similar layout reach the first, not all three; two grey pictures have no
        # colour to compare and need the stricter composition (thresholds: poster.composition).
        rg_query = composition.regions(thumb)
        query_regions = (rg_query, composition.mirror_regions(rg_query))
        col_query = composition.colour(thumb)
        query_colour = (col_query, composition.mirror_colour(col_query))
        floor = min(composition.COLOUR_COMPOSITION, composition.REWORK_SIMILARITY)
        found: tuple[float, float, float | None, int, int] | None = None
        for flip, j in sorted(np.ndindex(*sims.shape), key=lambda fj: -sims[fj]):
            sim, img = float(sims[flip, j]), int(ids[flip, j])
            if img < 0 or sim < floor:
                break  # sorted: every other candidate is further
            stored_colour = index.colour_of(img)
            parts = composition.region_similarity(index.regions_of(img), query_regions[flip])
            colours = composition.colour_similarity(stored_colour, query_colour[flip])
            grey = composition.both_grey(stored_colour, col_query)
            if composition.is_rework(sim, parts, colours, grey):
                found = (sim, parts, None if grey else colours, img, flip)  # None: no colour
                break
        if found is None:
            return result
        sim, parts, colours, img, flip = found
        key = index.key(img)
        score = composition.score_of(sim, grey=colours is None)
        art = Artwork(
            key,
            self._artwork_name(key),
            "rework",
            score,
            bool(flip),
            similarity=sim,
            regions=parts,
            colour=colours,
        )
        rows = self._rows_of(key)
        extra = {"similarity": round(sim, 4), "regions": round(parts, 4)}
        if colours is not None:
            extra["colour"] = round(colours, 4)
        matches = [
            Match(r["id"], r["target"], r["url"], r["posted_at"], "rework", score, r, bool(flip),
                  post=REWORK, extra=extra)
            for r in sorted(rows, key=lambda r: -r["seq"])
        ]  # fmt: skip
        return Result(matches, quality=result.quality, notes=result.notes, verdict=REWORK, artwork=art)

    # -- perceptual ------------------------------------------------------------------------
    def perceptual(self, image: Image.Image) -> Result:
        q = fingerprint.query(image)
        if q.quality < fingerprint.MIN_QUALITY:
            return Result([], quality=q.quality, notes=[_("the image is too flat to compare perceptually")])
        idx = self.index
        if len(idx) == 0:
            return Result([], quality=q.quality)
        dist, trans, region = idx.distances(q, radius=UNRELATED_DISTANCE)
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
        rank = [_ranks(v) for v in (dist, whole, centre)]
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
        first (variant prints first, then the variant files' pixels). An order, not a claim:
        every match is "artwork only" (a closer variant is no proof, e.g. the unposted
        original is closest to the variant with the fewest visible layers); `layers`
        decides whether one post can be named."""
        if not matches:
            return matches
        groups: dict[str, list[Match]] = {}
        for m in matches:
            groups.setdefault(m.row["original_sha256"], []).append(m)
        out: list[Match] = []
        for group in sorted(groups.values(), key=lambda g: min(m.distance or 0 for m in g)):
            if len(group) == 1:
                out.append(_with_post(group[0], ARTWORK))
                continue
            # compare every variant through the same crop window: the window found for the
            # best match (all variants show the same art, so the same fractions apply)
            box = next((m.box for m in group if m.box is not None), None)
            keyed = sorted(
                ((self._variant_closeness(image, q, m, box), m) for m in group), key=lambda km: km[0]
            )
            out.extend(_with_post(m, ARTWORK) for _, m in keyed)
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


def _ranks(v: np.ndarray) -> np.ndarray:
    """The rank of each value (ties by position), as argsort(argsort(v)) gives it but with one
    sort: the inverse of a permutation is a scatter (at 10^6 rows each sort costs ~70 ms)."""
    order = np.argsort(v, kind="stable")
    rank = np.empty(len(v), np.int64)
    rank[order] = np.arange(len(v))
    return rank


def _refine(
    x: np.ndarray, b: Image.Image, cur: list[float], best: float, size: tuple[int, int], step: float
) -> tuple[list[float], float]:
    for _round in range(20):
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


def refresh_index(conn: sqlite3.Connection, data_dir: Path, *, budget: int | None = None) -> None:
    """Add newly posted rows to the on-disk index right after posting, so even the first
    trace afterwards only reads the cache (the cold read of a large ledger is the slow part).
    The local-feature index gets every newly archived original here too (poster.features:
    extracted once per original, not per trace; at most `budget` of them now)."""
    load_index(conn, index_cache(data_dir))
    from poster import features

    features.update(conn, data_dir, budget=budget)


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


def _read_exact(result: Result) -> bool:
    """The result names a post by its hidden ID (read with the original)."""
    return result.verdict == EXACT and bool(result.matches) and result.matches[0].method == "hidden-id"


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
        m.extra,
    )


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


# -- batches ---------------------------------------------------------------------------------
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".gif", ".bmp", ".tif", ".tiff", ".avif", ".heic")


def expand(paths: Sequence[Path]) -> list[Path]:
    """Files to trace: each file as given, each folder's images (recursively, sorted)."""
    out: list[Path] = []
    for p in paths:
        if p.is_dir():
            out += sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES)
        else:
            out.append(p)
    return out


@dataclass
class Traced:
    """One image of a batch: its name, the result, or the one-line reason it could not be traced."""

    name: str
    result: Result | None
    image: Image.Image | None = None
    error: str | None = None
    source: Path | None = None  # the file the image was read from (the report keeps a copy)
    report: Path | None = None  # its evidence report's page, once written

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"file": self.name}
        if self.result is None:
            out.update(matches=[], verdict="error", error=self.error)
            return out
        out["matches"] = [m.to_json() for m in self.result.matches]
        out.update(self.result.summary())
        if self.result.notes:
            out["notes"] = self.result.notes
        if self.report is not None:
            out["report"] = str(self.report)
        return out


# a file, image bytes, or (the name to show, bytes or the file): uploads keep their own name
Source = Path | bytes | tuple[str, bytes] | tuple[str, Path]


def trace_many(
    tracer: Tracer,
    items: Sequence[Source],
    *,
    progress: Callable[[int, int, str], None] | None = None,
    keep_images: bool = False,
) -> list[Traced]:
    """Trace each item (a file path, image bytes, or (name, bytes or path)); a bad item is
    reported in its entry and does not stop the others. `progress(done, total, name)` after each."""
    out: list[Traced] = []
    for n, item in enumerate(items, 1):
        if isinstance(item, Path):
            name, data = str(item), item
        elif isinstance(item, tuple):
            name, data = item
        else:
            name, data = f"image {n}", item
        source = data if isinstance(data, Path) else None
        try:
            if isinstance(item, Path):
                image = load_suspect(item)
            else:  # errors name the file as the user knows it, not where an upload was saved
                image = suspect_from_bytes(imaging.read_file(data) if isinstance(data, Path) else data, name)
            out.append(Traced(name, tracer.trace_image(image), image if keep_images else None, source=source))
        except UserError as exc:
            out.append(Traced(name, None, error=str(exc), source=source))
        if progress is not None:
            progress(n, len(items), name)
    return out


def suspect_from_bytes(data: bytes, name: str) -> Image.Image:
    im = imaging.open_image(data, name)
    if im.size[0] * im.size[1] > MAX_TRACE_PIXELS:
        raise InputError(_("{file}: image too large to trace").format(file=name))
    try:
        im.load()
        im = ImageOps.exif_transpose(im) or im
    except (OSError, ValueError, SyntaxError) as exc:
        raise InputError(_("{file}: damaged image ({reason})").format(file=name, reason=exc)) from None
    return im.convert("RGBA").convert("RGB") if im.mode in ("P", "LA", "PA") else im.convert("RGB")
