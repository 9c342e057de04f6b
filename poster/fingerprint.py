"""Perceptual fingerprints: find posted art again after the hidden ID is gone.

The hash is PDQ as Meta specifies it (https://github.com/facebook/ThreatExchange/blob/main/pdq/
README.md, "hashing.pdf"), written in numpy:

1. luminance Y = 0.299 R + 0.587 G + 0.114 B;
2. area-downsample to 64 × 64 (PIL's BOX filter — Meta's reference uses a Jarosz tent filter
   followed by decimation; both are low-pass-then-sample, so hashes differ from the reference
   by a few bits and are *not* interchangeable with other PDQ implementations);
3. the 16 × 16 lowest non-DC 2-D DCT-II coefficients;
4. one bit per coefficient: above the median or not → 256 bits.

Why not a library: `pdqhash` 0.2.8 (the PyPI binding of Meta's C++) ships as an sdist only:
it built here in ~19 s, but every user would need a C++ compiler (no wheels for Windows or
macOS either). `imagehash` pulls scipy and PyWavelets (≈ 40 MB+) for a DCT that is four lines
of numpy. The algorithm is small and well specified; tests/test_fingerprint.py checks it
against Meta's reference (pdqhash) on corpus images — 2-8 bits apart out of 256, the
difference being the downsampling filter — and against the properties trace relies on:
stable under resize, recompression, blur, noise and colour shifts; ~128 bits apart for
unrelated images; the mirrored and rotated hashes computed from the DCT signs equal the
hashes of the mirrored and rotated images. `quality` is on our own scale, not PDQ's.

Dihedral variants come for free: mirroring the image left-right multiplies DCT column k by
(-1)^k (here k = 1..16 because the DC term is skipped), and a transpose of the pixel grid is a
transpose of the coefficients. So a suspect's 8 dihedral hashes cost one DCT.

Moderate crops move every low-frequency coefficient, so one whole-image hash is not enough.
A posted image is therefore fingerprinted as REGIONS: the whole image plus five sub-windows
(the four 80 % corner windows and the 80 % centre). A suspect is hashed whole; a crop of the
posted copy lands close to one of the windows. Trace takes the minimum distance over regions.

Larger or off-grid crops are handled in a second stage (`align`): each ledger row also keeps a
32 × 32 luminance thumbnail of the posted variant. For a short list of candidates, trace tries
every crop window of the thumbnail that keeps at least 60 % of each side (2.5 % steps, aspect
ratio consistent with the suspect), computes the PDQ hash of each window directly from the
thumbnail (resample + DCT folded into one precomputed linear map per window), and keeps the
closest. A 32 × 32 thumbnail reproduces the hash of the real crop to within ~10-20 bits, so the
distance stays far below that of unrelated art. The short list comes from the stage-one
distance plus crop-tolerant luminance histograms (whole image, and centre 60 %).

Stored per image (`of_image`): REGIONS × 32 bytes of hashes then HIST_BYTES of cumulative
luminance histograms; the thumbnail (`thumbnail`) is 4 bytes of width/height then 32 × 32 bytes.
Both are kept inside the ledger's hash chain (as hex).
"""

from __future__ import annotations

import io
import logging
import sqlite3
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps

log = logging.getLogger(__name__)
HASH_BYTES = 32
WORK_EDGE = 1024  # images are box-reduced to at most this long edge before hashing
SIZE = 64
# (left, top, right, bottom) as fractions of width/height; index 0 is the whole image.
REGION_BOXES: tuple[tuple[float, float, float, float], ...] = (
    (0.0, 0.0, 1.0, 1.0),
    (0.1, 0.1, 0.9, 0.9),
    (0.0, 0.0, 0.8, 0.8),
    (0.2, 0.0, 1.0, 0.8),
    (0.0, 0.2, 0.8, 1.0),
    (0.2, 0.2, 1.0, 1.0),
)
REGIONS = len(REGION_BOXES)
HIST_BINS = 16
HIST_BYTES = 2 * HIST_BINS  # whole image, then centre 60 %
FP_BYTES = REGIONS * HASH_BYTES + HIST_BYTES
THUMB = 32
THUMB_BYTES = 4 + THUMB * THUMB
# Below this gradient quality (0-100, PDQ's measure) the image is nearly flat: its hash bits
# are mostly noise around the median and would match other flat images, so trace ignores it.
MIN_QUALITY = 20


def _dct_matrix() -> np.ndarray:
    # Rows k = 1..16: PDQ drops the DC row (overall brightness carries no identity).
    k = np.arange(1, 17)[:, None]
    j = np.arange(SIZE)[None, :]
    return np.sqrt(2.0 / SIZE) * np.cos(np.pi / (2 * SIZE) * k * (2 * j + 1))


_DCT = _dct_matrix()
# Sign pattern of a left-right mirror: column k (1-based) flips when k is odd.
_FLIP = np.where(np.arange(1, 17) % 2 == 1, -1.0, 1.0)


def luminance(image: Image.Image) -> Image.Image:
    """Greyscale as PDQ defines it, with transparency composited over white (the way the
    image is shown, and the way render flattens it before posting)."""
    alpha = image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info)
    image = image.convert("RGBA" if alpha else "RGB")
    if max(image.size) > WORK_EDGE:
        # box-reduce first: every print is a box average of at most 128 × 128 cells anyway,
        # and a float copy of a 100-megapixel suspect would cost gigabytes
        image = image.reduce(-(-max(image.size) // WORK_EDGE))
    if alpha:
        bg = Image.new("RGBA", image.size, (255, 255, 255, 255))
        image = Image.alpha_composite(bg, image)
    rgb = np.asarray(image.convert("RGB"), dtype=np.float32)
    y = rgb[..., 0] * 0.299 + rgb[..., 1] * 0.587 + rgb[..., 2] * 0.114
    return Image.fromarray(y, "F")


def _grid(luma: Image.Image) -> np.ndarray:
    return np.asarray(luma.resize((SIZE, SIZE), Image.Resampling.BOX), dtype=np.float64)


def _coefficients(grid: np.ndarray) -> np.ndarray:
    return _DCT @ grid @ _DCT.T


def _bits(coeffs: np.ndarray) -> bytes:
    flat = coeffs.ravel()
    return np.packbits(flat > np.median(flat)).tobytes()


def quality(grid: np.ndarray) -> int:
    """PDQ's quality: summed neighbour gradients of the 64 × 64 grid (0-255 scale), capped
    at 100. Flat or near-flat images score low."""
    g = np.abs(np.diff(grid, axis=0)).sum() + np.abs(np.diff(grid, axis=1)).sum()
    return int(min(100, g / 90))


def dihedral(coeffs: np.ndarray) -> list[np.ndarray]:
    """The 8 dihedral transforms of an image, as DCT coefficients (identity first, the
    left-right mirror second)."""
    mirror = coeffs * _FLIP[None, :]
    flipv = coeffs * _FLIP[:, None]
    rot180 = coeffs * _FLIP[:, None] * _FLIP[None, :]
    t = coeffs.T
    return [
        coeffs,
        mirror,
        flipv,
        rot180,
        t,
        t * _FLIP[None, :],
        t * _FLIP[:, None],
        t * _FLIP[:, None] * _FLIP[None, :],
    ]


def pdq(image: Image.Image) -> bytes:
    """The 256-bit hash of the whole image."""
    return _bits(_coefficients(_grid(luminance(image))))


def _region(luma: Image.Image, box: tuple[float, float, float, float]) -> Image.Image:
    w, h = luma.size
    left, top, right, bottom = box
    return luma.crop((round(left * w), round(top * h), round(right * w), round(bottom * h)))


@dataclass(frozen=True)
class Query:
    """A suspect image, hashed for lookup: its 8 dihedral whole-image hashes."""

    hashes: tuple[bytes, ...]  # 8 × 32 bytes, identity first, mirror second
    quality: int

    def matrix(self) -> np.ndarray:
        return np.frombuffer(b"".join(self.hashes), dtype=np.uint64).reshape(len(self.hashes), 4)


def query(image: Image.Image) -> Query:
    grid = _grid(luminance(image))
    return Query(tuple(_bits(c) for c in dihedral(_coefficients(grid))), quality(grid))


def of_image(image: Image.Image) -> bytes:
    """The stored fingerprint of a posted variant or an original: REGIONS hashes."""
    luma = luminance(image)
    hashes = b"".join(_bits(_coefficients(_grid(_region(luma, box)))) for box in REGION_BOXES)
    return hashes + histogram(luma)


def histogram(luma: Image.Image) -> bytes:
    """Cumulative 16-bin luminance histograms (0-255 per bin) of the whole image and of its
    centre 60 %. They shortlist candidates for `align` when no whole-image or window hash is
    close. The centre one suits crops from all sides (a crop of up to 20 % a side keeps that
    region, and the suspect's own centre covers nearly the same pixels: the source's rank
    among 166 rows went from ~25-75 to 0-12 for such crops); the whole-image one suits crops
    from one side. Cumulative, so that a brightness shift moves the curve a little instead
    of emptying bins."""
    small = np.asarray(luma.resize((128, 128), Image.Resampling.BOX), dtype=np.float64)
    out = b""
    for part in (small, small[26:102, 26:102]):
        counts, _ = np.histogram(part, bins=HIST_BINS, range=(0, 256))
        out += bytes(np.round(np.cumsum(counts) / counts.sum() * 255).astype(np.uint8))
    return out


def thumbnail(image: Image.Image) -> bytes:
    """Width, height and a 32 × 32 luminance thumbnail (stretched to square), for `align`."""
    luma = luminance(image)
    small = np.asarray(luma.resize((THUMB, THUMB), Image.Resampling.BOX), dtype=np.float64)
    head = struct.pack("<HH", min(image.width, 65535), min(image.height, 65535))
    return head + np.round(small).clip(0, 255).astype(np.uint8).tobytes()


def load_file(path: Path) -> Image.Image | None:
    """The image to fingerprint, or None when it cannot be read (the row then has no print,
    which is better than refusing to record a post that already happened)."""
    try:
        with Image.open(io.BytesIO(path.read_bytes())) as im:
            im.draft("RGB", (1024, 1024))  # JPEG: decode at reduced size; the hashes are 64 × 64
            im = ImageOps.exif_transpose(im) or im
            im.load()
            return im.copy()
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
        return None


def for_files(variant: Path, original: Path, original_fp: bytes | None = None) -> dict[str, bytes]:
    """The ledger fields for one posted image: `variant_fp`, `original_fp`, `variant_thumb`.
    `original_fp`: the original's print if already known (it is the same for every target)."""
    v = load_file(variant)
    if original_fp is None:
        o = load_file(original)
        original_fp = of_image(o) if o is not None else b""
    return {
        "variant_fp": of_image(v) if v is not None else b"",
        "original_fp": original_fp,
        "variant_thumb": thumbnail(v) if v is not None else b"",
    }


def for_job(
    conn: sqlite3.Connection,
    data_dir: Path,
    job_id: int,
    artwork_id: int,
    original_prints: dict[str, bytes] | None = None,
) -> dict[int, dict[str, bytes]]:
    """Ledger fingerprint fields for each posted image of a job, by image index.
    `original_prints` (archive path → print), kept by the caller across jobs, spares decoding
    an artwork's original again for each of its targets.

    Called by dispatch right before the ledger rows are written (outside the write
    transaction: decoding takes a moment). The post already happened, so nothing here may
    stop the ledger row from being written: any failure leaves that row without prints."""
    from poster import jobs

    out: dict[int, dict[str, bytes]] = {}
    try:
        originals = {o.idx: o for o in jobs.originals(conn, artwork_id)}
        for v in jobs.variants(conn, job_id):
            o = originals.get(v.idx)
            original = data_dir / o.archive_path if o is not None else data_dir / "missing"
            known = original_prints.get(str(original)) if original_prints is not None else None
            out[v.idx] = for_files(data_dir / v.path, original, known)
            if original_prints is not None and out[v.idx]["original_fp"]:
                original_prints[str(original)] = out[v.idx]["original_fp"]
    except Exception:  # a bug here must not cost the ledger row
        log.warning("job %d: fingerprints not computed", job_id, exc_info=True)
    return out


def distance(a: bytes, b: bytes) -> int:
    """Hamming distance of two 256-bit hashes."""
    x = np.frombuffer(a, dtype=np.uint64) ^ np.frombuffer(b, dtype=np.uint64)
    return int(np.bitwise_count(x).sum())


class Index:
    """Every ledger row's fingerprints as packed matrices, for a vectorised nearest search.

    `raw`: rows × 2 (variant, original) × FP_BYTES; `matrix` views its hashes as
    rows × (variant REGIONS + original REGIONS) × 4 uint64; `hist` its histograms. Rows
    without a fingerprint are masked out (`valid`)."""

    def __init__(self, seqs: np.ndarray, raw: np.ndarray, valid: np.ndarray) -> None:
        n = len(seqs)
        self.seqs = np.asarray(seqs, dtype=np.int64)
        self.raw = raw.reshape(n, 2, FP_BYTES)
        self.valid = valid.reshape(n, 2)
        hashes = np.ascontiguousarray(self.raw[:, :, : REGIONS * HASH_BYTES])
        self.matrix = hashes.view(np.uint64).reshape(n, 2 * REGIONS, 4)
        self.hist = self.raw[:, :, REGIONS * HASH_BYTES :].astype(np.int16)
        self.region_valid = np.repeat(self.valid, REGIONS, axis=1)
        self._binary: tuple[Any, Any] | None = None  # faiss indexes, built on first use

    @classmethod
    def from_rows(cls, seqs: Sequence[int], variant: Sequence[bytes], original: Sequence[bytes]) -> Index:
        n = len(seqs)
        try:
            lengths = np.fromiter(map(len, (*variant, *original)), dtype=np.int64, count=2 * n)
        except TypeError:  # a NULL somewhere: take the careful path
            lengths = np.zeros(2 * n, dtype=np.int64)
        if n and (lengths == FP_BYTES).all():
            # the common case, without a Python loop over 100,000 rows
            v = np.frombuffer(b"".join(variant), dtype=np.uint8).reshape(n, FP_BYTES)
            o = np.frombuffer(b"".join(original), dtype=np.uint8).reshape(n, FP_BYTES)
            return cls(
                np.asarray(seqs, dtype=np.int64), np.stack([v, o], axis=1), np.ones((n, 2), dtype=bool)
            )
        empty = bytes(FP_BYTES)
        ok_v = [v is not None and len(v) == FP_BYTES for v in variant]
        ok_o = [o is not None and len(o) == FP_BYTES for o in original]
        parts = [
            part
            for v, o, gv, go in zip(variant, original, ok_v, ok_o, strict=True)
            for part in (v if gv else empty, o if go else empty)
        ]
        raw = np.frombuffer(b"".join(parts), dtype=np.uint8).reshape(n, 2, FP_BYTES)
        valid = np.stack([np.asarray(ok_v, dtype=bool), np.asarray(ok_o, dtype=bool)], axis=1)
        return cls(np.asarray(seqs, dtype=np.int64), raw, valid.reshape(n, 2))

    def __len__(self) -> int:
        return len(self.seqs)

    def distances(self, q: Query, *, radius: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """For every row: the smallest Hamming distance between the query and the row's
        prints, plus which query transform (0-7, 1 = mirror) and which region gave it.

        Identity and mirror are compared with every region (crops of flipped copies are
        common); the six rotations/flips only with the two whole-image prints, since rotated
        reposts are rare and every extra comparison adds chances for a false match.

        With `radius` on a ledger of more than SCAN_ROWS rows, faiss's binary range search
        (SIMD popcount, no temporaries per row) finds the prints within `radius` bits, and
        every other row gets NO_MATCH: a numpy scan of 10^6 rows x 12 prints costs ~1.8 s of
        CPU, the range search ~0.2 s (benchmarks/TRACE_RESULTS.md)."""
        if radius is not None and len(self.seqs) > SCAN_ROWS:
            return self._range_distances(q, radius)
        n = len(self.seqs)
        best = np.full(n, NO_MATCH, dtype=np.int32)
        best_t = np.zeros(n, dtype=np.int8)
        best_r = np.zeros(n, dtype=np.int8)
        if n == 0:
            return best, best_t, best_r
        qm = q.matrix()
        whole = [0, REGIONS]
        # (transform, region) of each candidate column, in the order they are concatenated
        cols_t = np.array([0] * (2 * REGIONS) + [1] * (2 * REGIONS) + [t for t in range(2, 8) for _ in whole])
        cols_r = np.array(list(range(2 * REGIONS)) * 2 + whole * 6)
        chunk = 8192  # keeps the temporaries in cache
        for a in range(0, n, chunk):
            m = self.matrix[a : a + chunk]
            c = len(m)
            flips = _popcount256(m[:, None] ^ qm[:2, None, :])
            rots = _popcount256(m[:, None, whole] ^ qm[2:, None, :])
            d = np.concatenate([flips.reshape(c, -1), rots.reshape(c, -1)], axis=1)
            valid = self.region_valid[a : a + chunk]
            mask = np.concatenate([valid, valid, np.tile(valid[:, whole], 6)], axis=1)
            d[~mask] = NO_MATCH
            k = d.argmin(axis=1)
            best[a : a + c] = d[np.arange(c), k]
            best_t[a : a + c] = cols_t[k]
            best_r[a : a + c] = cols_r[k]
        return best, best_t, best_r

    def _range_distances(self, q: Query, radius: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        n = len(self.seqs)
        best = np.full(n, NO_MATCH, dtype=np.int32)
        best_t = np.zeros(n, dtype=np.int8)
        best_r = np.zeros(n, dtype=np.int8)
        if self._binary is None:
            import faiss  # lazily: only large ledgers need it

            codes = self.matrix.view(np.uint8).reshape(n * 2 * REGIONS, HASH_BYTES)
            every = faiss.IndexBinaryFlat(HASH_BYTES * 8)
            every.add(np.ascontiguousarray(codes))
            whole = faiss.IndexBinaryFlat(HASH_BYTES * 8)
            whole.add(
                np.ascontiguousarray(self.matrix[:, [0, REGIONS]].view(np.uint8).reshape(n * 2, HASH_BYTES))
            )
            self._binary = (every, whole)
        every, whole = self._binary
        qm = np.frombuffer(b"".join(q.hashes), dtype=np.uint8).reshape(len(q.hashes), HASH_BYTES)
        found = []  # (transform, row, region, distance)
        for index, queries, transforms, per_row, regions in (
            (every, qm[:2], np.array([0, 1]), 2 * REGIONS, np.arange(2 * REGIONS)),
            (whole, qm[2:], np.arange(2, 8), 2, np.array([0, REGIONS])),
        ):
            # faiss counts a match at distance < radius: ask for radius + 1 to include it
            lims, dist, ids = index.range_search(np.ascontiguousarray(queries), radius + 1)
            which = np.repeat(np.arange(len(queries)), np.diff(lims.astype(np.int64)))
            ids = ids.astype(np.int64)
            found.append((transforms[which], ids // per_row, regions[ids % per_row], dist.astype(np.int32)))
        t, rows, region, dist = (np.concatenate(parts) for parts in zip(*found, strict=True))
        ok = self.region_valid[rows, region]
        t, rows, region, dist = t[ok], rows[ok], region[ok], dist[ok]
        # the smallest distance per row (ties: the lowest transform, then region, as the scan)
        order = np.lexsort((region, t, dist, rows))
        first = np.ones(len(order), bool)
        first[1:] = rows[order][1:] != rows[order][:-1]
        pick = order[first]
        best[rows[pick]] = dist[pick]
        best_t[rows[pick]] = t[pick]
        best_r[rows[pick]] = region[pick]
        return best, best_t, best_r

    def histogram_distances(self, hist: bytes) -> tuple[np.ndarray, np.ndarray]:
        """L1 distances between cumulative histograms, whole image and centre (each the
        closer of variant and original)."""
        h = np.frombuffer(hist, dtype=np.uint8).astype(np.int16)
        out = []
        for part in (slice(0, HIST_BINS), slice(HIST_BINS, HIST_BYTES)):
            d = np.abs(self.hist[:, :, part] - h[part]).sum(axis=2, dtype=np.int32)
            d[~self.valid] = 1 << 20
            out.append(d.min(axis=1))
        return out[0], out[1]


def _popcount256(x: np.ndarray) -> np.ndarray:
    """Bit count over the last axis of 4 uint64 words (explicit adds: a numpy reduction over
    an axis of length 4 is several times slower)."""
    b = np.bitwise_count(x)
    return b[..., 0].astype(np.uint16) + b[..., 1] + b[..., 2] + b[..., 3]


NO_MATCH = 257
SCAN_ROWS = 50_000  # above this many rows, `distances(radius=...)` uses faiss's range search

# -- stage two: crop search on the thumbnail -------------------------------------------------
MIN_KEEP = 0.6  # each side of a crop keeps at least this fraction
FINE = 0.0125  # window grid step (fraction of the side)
COARSE = 4  # the coarse pass uses every 4th grid step (5 %)
ASPECT_TOLERANCE = 0.04  # |log| of the aspect mismatch a window may have
REFINE_TOP = 3  # coarse windows refined on the fine grid


@cache
def _windows() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All 1-D windows on the FINE grid as (start, size) fractions and in grid units, and for
    each the 16 × THUMB matrix that resamples that window of a THUMB-pixel axis to SIZE
    samples (linear interpolation) and applies PDQ's DCT rows. Built once; the same for
    every candidate."""
    steps = round(1 / FINE)
    units = [
        (start, size)
        for size in range(round(MIN_KEEP * steps), steps + 1)
        for start in range(0, steps - size + 1)
    ]
    unit = np.asarray(units, dtype=np.int32)
    span = unit.astype(np.float64) / steps
    bases = np.empty((len(units), 16, THUMB), dtype=np.float32)
    j = (np.arange(SIZE) + 0.5) / SIZE
    for w, (start, size) in enumerate(span):
        x = np.clip((start + j * size) * THUMB - 0.5, 0, THUMB - 1)  # pixel-centre coordinates
        lo = np.floor(x).astype(int)
        hi = np.minimum(lo + 1, THUMB - 1)
        frac = x - lo
        interp = np.zeros((SIZE, THUMB))
        interp[np.arange(SIZE), lo] += 1 - frac
        interp[np.arange(SIZE), hi] += frac
        bases[w] = _DCT @ interp
    return span, unit, bases


@dataclass(frozen=True)
class Alignment:
    distance: int
    mirrored: bool
    box: tuple[float, float, float, float]  # the crop of the posted image, as fractions


def align(q: Query, suspect_size: tuple[int, int], thumb: bytes) -> Alignment | None:
    """Best crop window of a posted variant (its thumbnail) for the suspect: the smallest
    Hamming distance between the suspect's hash (or its mirror's) and the window's hash.
    Coarse pass on a 5 % grid, then the best few refined on the 1.25 % grid."""
    if len(thumb) != THUMB_BYTES:
        return None
    pw, ph = struct.unpack("<HH", thumb[:4])
    if not (pw and ph):
        return None
    grid = np.frombuffer(thumb[4:], dtype=np.uint8).reshape(THUMB, THUMB).astype(np.float32)
    span, unit, bases = _windows()
    sw, sh = suspect_size
    want = np.log(sw / sh) - np.log(pw / ph)  # window aspect (wx·pw)/(wy·ph) must be sw/sh
    logsize = np.log(span[:, 1])
    rows = bases @ grid  # every window applied to the rows: (windows, 16, THUMB)
    qm = q.matrix()[:2]

    def score(xs: np.ndarray, ys: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        mismatch = logsize[xs][:, None] - logsize[ys][None, :] - want
        a, b = np.nonzero(np.abs(mismatch) < ASPECT_TOLERANCE)
        ix, iy = xs[a], ys[b]
        if len(ix) == 0:
            return ix, iy, np.empty(0, dtype=np.int32), np.empty(0, dtype=bool)
        coeffs = (rows[iy] @ bases[ix].transpose(0, 2, 1)).reshape(len(ix), 256)
        bits = np.packbits(coeffs > np.median(coeffs, axis=1, keepdims=True), axis=1)
        words = np.ascontiguousarray(bits).view(np.uint64)
        d = _popcount256(words[:, None, :] ^ qm[None, :, :]).astype(np.int32)  # (pairs, 2)
        return ix, iy, d.min(axis=1), d.argmin(axis=1).astype(bool)

    coarse = np.nonzero((unit[:, 0] % COARSE == 0) & (unit[:, 1] % COARSE == 0))[0]
    ix, iy, d, mirrored = score(coarse, coarse)
    if len(d) == 0:
        return None
    results = [(int(d[i]), bool(mirrored[i]), int(ix[i]), int(iy[i])) for i in np.argsort(d)[:REFINE_TOP]]
    ends = unit[:, 0] + unit[:, 1]
    for _, _, cx, cy in list(results):
        # neighbours: both edges within half a coarse step
        half = COARSE // 2
        nx = np.nonzero((np.abs(unit[:, 0] - unit[cx, 0]) <= half) & (np.abs(ends - ends[cx]) <= half))[0]
        ny = np.nonzero((np.abs(unit[:, 0] - unit[cy, 0]) <= half) & (np.abs(ends - ends[cy]) <= half))[0]
        fx, fy, fd, fm = score(nx, ny)
        if len(fd):
            k = int(fd.argmin())
            results.append((int(fd[k]), bool(fm[k]), int(fx[k]), int(fy[k])))
    dist, mirror, bx, by = min(results)
    x0, xs = span[bx]
    y0, ys = span[by]
    return Alignment(dist, mirror, (float(x0), float(y0), float(x0 + xs), float(y0 + ys)))
