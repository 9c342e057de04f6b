"""Local features: find an artwork again from any part of it, and where that part sits.

Global hashes (poster.fingerprint) see the whole picture; a tight crop, a turn, a caption
band, a collage panel or a photo of a screen moves every one of their coefficients. Local
features do not care: each keypoint describes a small patch, and a copy keeps many patches
of the original. This module keeps, for every archived original, SIFT keypoints (OpenCV,
`opencv-python-headless`) quantised into visual words, and finds a suspect's artwork with
an inverted file and geometric verification (RANSAC), the standard recipe of image
retrieval (Sivic & Zisserman 2003; Philbin et al. 2007; Jégou et al. 2008):

1. **Extraction** (`extract`): grey image at FEATURE_LONG px on the long edge, the
   KEEP strongest SIFT keypoints, spread over the picture (a per-cell quota, so that any
   part of the art keeps its share), RootSIFT descriptors; pale flat art, which has few
   keypoints at OpenCV's default contrast, makes up the number with fainter ones (CONTRAST).
2. **Words**: a RootSIFT descriptor is quantised by a product quantiser: each half
   (64 dims) to the nearest of 256 centroids, so a word is one of 65,536 pairs (the
   inverted multi-index of Babenko & Lempitsky 2012, which needs a codebook of 512
   centroids instead of 65,536). The codebook (`poster/data/vocabulary.npz`) was trained
   with `benchmarks/vocabulary.py` on images unrelated to the test corpus.
3. **Hamming embedding**: a word alone is coarse; each keypoint also keeps 32 bits, the
   signs of 32 fixed random projections of its descriptor's offset from the word's
   centroid. Two keypoints *match* when they share a word and their bits differ in at most
   HAMMING bits, which keeps the precision of a far larger vocabulary.
4. **Inverted file** (`FeatureIndex`): per word, the list of (image, x, y, bits) of every
   indexed keypoint, as flat arrays memory-mapped from disk: a query reads only the lists
   of its own words, whatever the size of the archive. The index grows in segments (like a
   search engine's): each batch of new originals is one segment, written to a temporary
   folder and renamed into place, then listed in MANIFEST.json (replaced atomically).
   Similar-sized segments are merged, so there are O(log n) of them. A crash at any point
   leaves the previous manifest, which names only complete segments.
5. **Verification** (`FeatureIndex.search`): the images with the most matching keypoints
   (weighted by the words' rarity) get a RANSAC homography fit (OpenCV USAC MAGSAC) on
   their matches; an artwork is found when at least MIN_INLIERS matches agree on one
   plausible geometry. The mirror image is searched too, at no extraction cost: a mirrored
   SIFT descriptor is a fixed permutation of the original's (rows of cells reversed,
   orientations negated). The homography maps the original's pixels onto the suspect's:
   it says where the copy is, for the read of the hidden ID with the original
   (poster.mark.informed) and for the evidence report.
6. **Direct match** (`match_features`): when verification finds nothing, the search's
   best-voted images (SHORTLIST) are matched by trace against the suspect with their
   originals' own keypoints (nearest neighbour, ratio test, the same RANSAC and MIN_INLIERS):
   a tight crop of soft or densely hatched art keeps too few of the index's quantised
   keypoints, not of the original's.

OpenCV and the codebook are loaded on first use (never by `poster --help`).
"""

from __future__ import annotations

import itertools
import json
import logging
import math
import os
import shutil
import sqlite3
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from poster import store

log = logging.getLogger(__name__)

FEATURE_LONG = 1024  # originals and suspects are described at (at most) this long edge
KEEP = 600  # keypoints kept per original (the inverted file's size is about 12 bytes each)
QUERY_KEEP = 1500  # keypoints of a suspect (many: a crop may hold a small part of the art)
QUERY_MIN_LONG = 480  # smaller suspects are enlarged to this long edge before extraction
MAX_UPSCALE = 3.0
GRID = 6  # keypoints are spread over GRID x GRID cells (a quota per cell)
# SIFT's contrast threshold. OpenCV's default (0.04) finds 4 keypoints in a pale flat-colour
# background (the corpus's kenney_flat_castles_bg: no copy of it could be found) and 16 in soft
# circles on gradients; at 0.01 they have 284 and 297 (benchmarks/TRACE_RESULTS.md, section
# 11). Both sides need it: a copy described at the default has no faint keypoints to meet the
# original's. The faint ones only make up for too few strong ones (extract).
CONTRAST = 0.01
# OpenCV keeps a keypoint when its response times the layers per octave (3) reaches the
# contrast threshold: the responses of the default's (0.04) keypoints
STRONG_RESPONSE = 0.04 / 3
WEAK_FILL = 300  # an image with fewer strong keypoints is made up to this many with faint ones
SUB = 64  # dimensions per half of a descriptor (product quantiser)
CENTROIDS = 256  # centroids per half: 65,536 words
WORDS = CENTROIDS * CENTROIDS
BITS = 32  # Hamming-embedding bits per keypoint
HAMMING = 10  # most differing bits for two keypoints to match
POS_SCALE = 32.0  # positions are stored in 1/32 px of the feature frame (uint16: < 2048 px)
CANDIDATES = 12  # images verified geometrically per query
MIN_INLIERS = 14  # matches agreeing on one geometry for an artwork to count as found
RANSAC_PX = 5.0  # reprojection error (suspect feature-frame px) of an inlier
AFFINE_SHARE = 0.9  # inliers an affine map must explain to replace the homography (_simplest)
MAX_PER_KEYPOINT = 3  # postings per query keypoint and image kept for RANSAC
# The index keeps KEEP keypoints of an original, quantised: a crop of 20-30 % of a densely
# hatched pencil sketch or a soft painting shares 13-230 voted matches with its original,
# but RANSAC finds only 4-10 consistent ones among them, while the same copy matched
# directly against the original (PAIR_KEEP keypoints, ratio test) has 58-243 inliers
# (benchmarks/TRACE_RESULTS.md, section 4). So the best-voted images (at most SHORTLIST, with
# at least SHORTLIST_VOTES votes) are kept for a direct match when verification finds nothing.
SHORTLIST = 5
SHORTLIST_VOTES = 8
# Stop words: a query skips words with more than MAX_LIST_FACTOR times the mean number of
# postings per word (at least MIN_LIST_CAP): at 10^6 originals the few most frequent words
# would otherwise be most of what a query reads (benchmarks/TRACE_RESULTS.md, scale).
MAX_LIST_FACTOR = 8.0
MIN_LIST_CAP = 2000
READ_BATCH = 2_000_000  # postings read and filtered at a time (bounded temporaries)
INDEX_DIR = "features"
MANIFEST = "MANIFEST.json"
FORMAT = 2  # bumped when extraction or the codebook changes: old segments are rebuilt
# Originals a daemon tick adds to the index (update's budget): after a FORMAT change the whole
# archive is extracted again, 0.3-1.3 s of CPU an original (the corpus, under load), and a tick
# holding it all would hold the posts due meanwhile; trace completes the index before it answers.
TICK_BUDGET = 32

# A posting: which image, where (feature frame, 1/32 px) and the Hamming-embedding bits.
POSTING = np.dtype([("img", "<u4"), ("x", "<u2"), ("y", "<u2"), ("sig", "<u4")])


def _cv2() -> Any:
    import cv2  # lazily: only trace and intake need it

    return cv2


# -- codebook ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Codebook:
    centroids: np.ndarray  # (2, CENTROIDS, SUB) float32
    projection: np.ndarray  # (BITS, 2 * SUB) float32: Hamming-embedding directions

    @property
    def version(self) -> str:
        import hashlib

        h = hashlib.sha256(self.centroids.tobytes() + self.projection.tobytes()).hexdigest()
        return f"{FORMAT}:{h[:16]}"


def projection() -> np.ndarray:
    """The Hamming-embedding directions: fixed (seeded) Gaussian directions, orthonormalised."""
    g = np.random.default_rng(20261124).normal(size=(2 * SUB, BITS))
    q, _ = np.linalg.qr(g)
    return np.ascontiguousarray(q.T, dtype=np.float32)


@cache
def codebook() -> Codebook:
    ref = resources.files("poster").joinpath("data/vocabulary.npz")
    with resources.as_file(ref) as path, np.load(path) as data:
        centroids = np.asarray(data["centroids"], dtype=np.float32)
    return Codebook(centroids, projection())


# -- extraction -------------------------------------------------------------------------------
@dataclass
class Features:
    """Keypoints of one image in its feature frame (the image scaled by `scale`)."""

    xy: np.ndarray  # (n, 2) float32, feature-frame pixels
    desc: np.ndarray  # (n, 128) float32 RootSIFT
    size: tuple[int, int]  # feature frame (w, h)
    scale: float  # feature frame px per image px
    strength: np.ndarray = field(default_factory=lambda: np.empty(0, np.float32))

    def __len__(self) -> int:
        return len(self.xy)


def grey(
    image: Image.Image,
    long: int = FEATURE_LONG,
    background: tuple[int, int, int] = (255, 255, 255),
    min_long: int = 0,
) -> tuple[np.ndarray, float]:
    """8-bit grey at most `long` px on the long edge (transparency over `background`), and
    the scale applied; an image smaller than `min_long` is enlarged (bicubic, at most
    MAX_UPSCALE times) to that long edge."""
    im = image
    if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
        rgba = im.convert("RGBA")
        base = Image.new("RGBA", rgba.size, (*background, 255))
        im = Image.alpha_composite(base, rgba)
    scale = min(1.0, long / max(im.size))
    if scale < 1.0:
        size = (max(1, round(im.width * scale)), max(1, round(im.height * scale)))
        # reduce() first: a box pre-shrink keeps a 100-megapixel original cheap
        factor = int(1 / scale) // 2
        if factor >= 2:
            im = im.reduce(factor)
        im = im.convert("RGB").resize(size, Image.Resampling.LANCZOS)
        scale = size[0] / image.width
    elif max(im.size) < min_long:
        up = min(MAX_UPSCALE, min_long / max(im.size))
        size = (max(1, round(im.width * up)), max(1, round(im.height * up)))
        im = im.convert("RGB").resize(size, Image.Resampling.BICUBIC)
        scale = size[0] / image.width
    return np.asarray(im.convert("L")), scale


def extract(
    image: Image.Image,
    *,
    keep: int = KEEP,
    long: int = FEATURE_LONG,
    background: tuple[int, int, int] = (255, 255, 255),
    min_long: int = 0,
) -> Features:
    """SIFT keypoints and RootSIFT descriptors, at most `keep`, spread over the picture."""
    cv2 = _cv2()
    g, scale = grey(image, long, background, min_long)
    h, w = g.shape
    empty = Features(np.empty((0, 2), np.float32), np.empty((0, 128), np.float32), (w, h), scale)
    if min(w, h) < 16:
        return empty
    sift = cv2.SIFT_create(contrastThreshold=CONTRAST)
    kps = sift.detect(g, None)
    if not kps:
        return empty
    xy = np.array([k.pt for k in kps], dtype=np.float32)
    resp = np.array([k.response for k in kps], dtype=np.float32)
    # Keypoints above OpenCV's default contrast first, as they always were (the strongest
    # keep * 3, spread); faint ones only make up the number to WEAK_FILL. Given a quota of
    # their own, paper grain and the flat cells of a comic page took it from the drawing (a
    # crop of the comic page was no longer found); filling up to `keep`, nearly every query
    # read more postings, and the feature search at 10^6 images took 0.68 s instead of 0.13 s
    # (TRACE_RESULTS section 11). Only the chosen keypoints are described.
    strong = np.nonzero(resp >= STRONG_RESPONSE)[0]
    strong = strong[np.argsort(-resp[strong], kind="stable")[: keep * 3]]
    chosen = strong[_spread(xy[strong], resp[strong], (w, h), keep)]
    fill = min(keep, WEAK_FILL) - len(chosen)
    if fill > 0:
        weak = np.nonzero(resp < STRONG_RESPONSE)[0]
        chosen = np.concatenate([chosen, weak[_spread(xy[weak], resp[weak], (w, h), fill)]])
    kps, desc = sift.compute(g, [kps[int(i)] for i in chosen])
    if desc is None or len(kps) == 0:
        return empty
    xy = np.array([k.pt for k in kps], dtype=np.float32)
    resp = np.array([k.response for k in kps], dtype=np.float32)
    d = desc.astype(np.float32)
    d /= d.sum(axis=1, keepdims=True) + 1e-7
    return Features(xy, np.sqrt(d), (w, h), scale, resp)


def few_strong(f: Features) -> bool:
    """Whether an image (described by `extract`) has fewer keypoints above OpenCV's default
    contrast than WEAK_FILL: pale flat art and soft paintings (4-85 in the test set, drawn art
    700 and more), whose copies the features may not find (poster.dense)."""
    return int((f.strength >= STRONG_RESPONSE).sum()) < WEAK_FILL


def extract_query(image: Image.Image) -> Features:
    """A suspect's features: up to QUERY_KEEP keypoints, and a small copy (a tight crop of a
    small post, a thumbnail) enlarged to QUERY_MIN_LONG first: the crop's part of the original
    was described at up to FEATURE_LONG px, and at a few hundred pixels SIFT finds too few
    keypoints there (a 230 px crop of a 768 px post: 7 inliers, enlarged twice: 22)."""
    return extract(image, keep=QUERY_KEEP, min_long=QUERY_MIN_LONG)


def _spread(xy: np.ndarray, resp: np.ndarray, size: tuple[int, int], keep: int) -> np.ndarray:
    """Indices of at most `keep` keypoints, strongest first within each of GRID x GRID cells,
    taken round-robin so every part of the picture keeps keypoints."""
    if len(xy) <= keep:
        return np.argsort(-resp)
    w, h = size
    cell = (
        np.minimum(xy[:, 1] * GRID // h, GRID - 1) * GRID + np.minimum(xy[:, 0] * GRID // w, GRID - 1)
    ).astype(int)
    order = np.lexsort((-resp, cell))
    sorted_cells = cell[order]
    starts = np.searchsorted(sorted_cells, sorted_cells, side="left")
    rank = np.arange(len(order)) - starts  # rank within its cell
    pick = order[np.lexsort((-resp[order], rank))][:keep]
    return pick


@cache
def _mirror_permutation() -> np.ndarray:
    """SIFT descriptor of the mirrored patch: rows of the 4 x 4 cells reversed and the 8
    orientation bins negated (checked against OpenCV in tests/test_features.py)."""
    idx = np.arange(128).reshape(4, 4, 8)
    return idx[::-1, :, :][:, :, (-np.arange(8)) % 8].ravel()


def mirrored(f: Features) -> Features:
    """The features of the left-right mirror image, without extracting again."""
    xy = f.xy.copy()
    xy[:, 0] = f.size[0] - xy[:, 0]
    return Features(xy, f.desc[:, _mirror_permutation()], f.size, f.scale, f.strength)


# -- quantisation -----------------------------------------------------------------------------
def quantise(desc: np.ndarray, book: Codebook, assign: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Words (n, assign) and Hamming bits (n, assign) of RootSIFT descriptors: the nearest
    word, and with assign > 1 also the next nearest combinations (query side only: a
    near-duplicate patch may fall just across a cell border)."""
    n = len(desc)
    if n == 0:
        return np.empty((0, assign), np.uint32), np.empty((0, assign), np.uint32)
    parts = []
    for half in range(2):
        x = desc[:, half * SUB : (half + 1) * SUB]
        c = book.centroids[half]
        d2 = (x * x).sum(1)[:, None] - 2 * x @ c.T + (c * c).sum(1)[None, :]
        parts.append(d2)
    if assign == 1:
        a = parts[0].argmin(1)[:, None]
        b = parts[1].argmin(1)[:, None]
    else:
        k = 2
        ia, ib = _two_smallest(parts[0]), _two_smallest(parts[1])
        da = np.take_along_axis(parts[0], ia, 1)
        db = np.take_along_axis(parts[1], ib, 1)
        tot = (da[:, :, None] + db[:, None, :]).reshape(n, k * k)
        best = np.argsort(tot, axis=1)[:, :assign]
        a = np.take_along_axis(np.repeat(ia, k, axis=1), best, 1)
        b = np.take_along_axis(np.tile(ib, (1, k)), best, 1)
    words = (a * CENTROIDS + b).astype(np.uint32)
    sigs = np.empty(words.shape, np.uint32)
    weights = (1 << np.arange(BITS, dtype=np.uint64)).astype(np.uint64)
    for j in range(words.shape[1]):
        centre = np.concatenate([book.centroids[0][a[:, j]], book.centroids[1][b[:, j]]], axis=1)
        bits = (desc - centre) @ book.projection.T > 0
        sigs[:, j] = (bits.astype(np.uint64) @ weights).astype(np.uint32)
    return words, sigs


def _two_smallest(d: np.ndarray) -> np.ndarray:
    """Column indices of the two smallest values of each row (n, 2). Two argmin passes:
    numpy's row-wise argpartition costs ~80 µs a row, 400 times more (profiled)."""
    rows = np.arange(len(d))
    first = d.argmin(axis=1)
    masked = d.copy()
    masked[rows, first] = np.inf
    return np.stack([first, masked.argmin(axis=1)], axis=1)


# -- stored entries ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Entry:
    """What the index keeps of one original."""

    key: str  # the original's sha256 (hex)
    size: tuple[int, int]  # feature frame (w, h)
    scale: float  # feature frame px per original px
    words: np.ndarray  # (n,) uint32
    sigs: np.ndarray  # (n,) uint32
    xy: np.ndarray  # (n, 2) uint16, 1/32 px of the feature frame
    composition: np.ndarray  # the rework descriptor (poster.composition), float16
    regions: np.ndarray  # the rework's second check (composition.regions), float16
    colour: np.ndarray  # the rework's colour check (composition.colour), float16


def entry_of(
    key: str,
    image: Image.Image,
    book: Codebook | None = None,
    background: tuple[int, int, int] = (255, 255, 255),
) -> Entry:
    from poster import composition

    book = book or codebook()
    f = extract(image, background=background)
    words, sigs = quantise(f.desc, book)
    xy = np.clip(np.round(f.xy * POS_SCALE), 0, 65535).astype(np.uint16)
    thumb = composition.thumbnail(image, background=background)
    comp = composition.from_grid(composition.luma_of(thumb)).astype(np.float16)
    parts = composition.regions(thumb).astype(np.float16)
    col = composition.colour(thumb).astype(np.float16)
    return Entry(key, f.size, f.scale, words[:, 0], sigs[:, 0], xy, comp, parts, col)


# -- segments ---------------------------------------------------------------------------------
class Segment:
    """One immutable part of the index, memory-mapped: the postings sorted by word with an
    offsets table, and per image its key, feature-frame size and scale."""

    FILES = (
        "offsets.npy",
        "postings.npy",
        "keys.npy",
        "frames.npy",
        "composition.npy",
        "regions.npy",
        "colour.npy",
    )

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offsets = np.load(path / "offsets.npy", mmap_mode="r")
        self.postings = np.load(path / "postings.npy", mmap_mode="r")
        self.keys = np.load(path / "keys.npy", mmap_mode="r")  # (n, 32) uint8: sha256 digests
        self.frames = np.load(path / "frames.npy", mmap_mode="r")  # (n, 3) float64: w, h, scale
        self.composition = np.load(path / "composition.npy", mmap_mode="r")  # (n, D) float16
        # (n, composition.REGION_DIMS) and (n, composition.COLOUR_DIMS) float16. Every segment of
        # this FORMAT has them: a missing file is damage, and the segment is rebuilt
        self.regions = np.load(path / "regions.npy", mmap_mode="r")
        self.colour = np.load(path / "colour.npy", mmap_mode="r")
        self.data_offset = int(self.postings.offset)  # where the array starts in postings.npy
        if len(self.offsets) != WORDS + 1 or self.postings.dtype != POSTING:
            raise ValueError(f"{path}: not a feature segment of this version")

    def read_lists(self, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
        """The postings [starts[i], ends[i]) of each list, one after another, read from the
        file with one plain read per list. Not through the memory map: copying 35 million
        postings (a query at 10^6 images) out of the map cost 3-4 s, mostly in page faults,
        the same bytes read into one buffer 0.2-0.3 s."""
        lens = ends - starts
        out = np.empty(int(lens.sum()), POSTING)
        view = memoryview(out.view(np.uint8))
        size = POSTING.itemsize
        pos = 0
        with open(self.path / "postings.npy", "rb", buffering=0) as f:
            for a, n in zip(starts.tolist(), lens.tolist(), strict=True):
                f.seek(self.data_offset + a * size)
                want, got = n * size, 0
                while got < want:  # a raw read may return less than asked
                    k = f.readinto(view[pos + got : pos + want])
                    if not k:
                        raise OSError(f"{self.path}: postings file shorter than its offsets")
                    got += k
                pos += want
        return out

    def __len__(self) -> int:
        return len(self.keys)

    @staticmethod
    def write(path: Path, entries: Sequence[Entry], dims: int) -> None:
        """Write entries as a segment folder (via a temporary folder renamed into place)."""
        from poster import composition

        tmp = path.with_name(path.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        store.ensure_private_dir(tmp)  # the index describes the user's unposted art
        counts = np.array([len(e.words) for e in entries], dtype=np.int64)
        total = int(counts.sum())
        words = np.concatenate([e.words for e in entries]) if total else np.empty(0, np.uint32)
        post = np.empty(total, POSTING)
        if total:
            post["img"] = np.repeat(np.arange(len(entries), dtype=np.uint32), counts)
            post["x"] = np.concatenate([e.xy[:, 0] for e in entries])
            post["y"] = np.concatenate([e.xy[:, 1] for e in entries])
            post["sig"] = np.concatenate([e.sigs for e in entries])
        order = np.argsort(words, kind="stable")
        offsets = np.zeros(WORDS + 1, np.int64)
        offsets[1:] = np.cumsum(np.bincount(words, minlength=WORDS))
        keys = np.array([np.frombuffer(bytes.fromhex(e.key), np.uint8) for e in entries], np.uint8).reshape(
            -1, 32
        )
        frames = np.array([(e.size[0], e.size[1], e.scale) for e in entries], np.float64).reshape(-1, 3)
        comp = np.zeros((len(entries), dims), np.float16)
        for i, e in enumerate(entries):
            if len(e.composition) == dims:
                comp[i] = e.composition
        _save(tmp / "offsets.npy", offsets)
        _save(tmp / "postings.npy", post[order])
        _save(tmp / "keys.npy", keys)
        _save(tmp / "frames.npy", frames)
        _save(tmp / "composition.npy", comp)
        _save(tmp / "regions.npy", _stacked([e.regions for e in entries], composition.REGION_DIMS))
        _save(tmp / "colour.npy", _stacked([e.colour for e in entries], composition.COLOUR_DIMS))
        shutil.rmtree(path, ignore_errors=True)
        os.replace(tmp, path)


def _save(path: Path, array: np.ndarray) -> None:
    with open(os.open(path, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o600), "wb") as f:
        np.save(f, array)
        f.flush()
        os.fsync(f.fileno())


def _stacked(vectors: Sequence[np.ndarray], dims: int) -> np.ndarray:
    """One descriptor of `dims` dimensions per entry, as rows (float16)."""
    return np.array(vectors, np.float16).reshape(len(vectors), dims)


def merge_segments(path: Path, parts: Sequence[Segment], dims: int) -> None:
    """One segment from several (image numbers follow the order of `parts`), written a
    word-range at a time so memory stays bounded however large the parts are."""
    tmp = path.with_name(path.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    store.ensure_private_dir(tmp)  # the index describes the user's unposted art
    base = np.cumsum([0] + [len(p) for p in parts])
    offsets = np.zeros(WORDS + 1, np.int64)
    for p in parts:
        offsets += np.asarray(p.offsets)
    total = int(offsets[-1])
    out = np.lib.format.open_memmap(tmp / "postings.npy", mode="w+", dtype=POSTING, shape=(total,))
    step = 4096  # words per pass
    pos = 0
    for w0 in range(0, WORDS, step):
        w1 = min(WORDS, w0 + step)
        chunks = []
        for p, b in zip(parts, base[:-1], strict=True):
            o = np.asarray(p.offsets[w0 : w1 + 1])
            c = np.array(p.postings[o[0] : o[-1]])
            c["img"] += np.uint32(b)
            w = np.repeat(np.arange(w0, w1), np.diff(o))
            chunks.append((w, c))
        ws = np.concatenate([w for w, _ in chunks])
        cs = np.concatenate([c for _, c in chunks])
        order = np.argsort(ws, kind="stable")
        out[pos : pos + len(cs)] = cs[order]
        pos += len(cs)
    out.flush()
    del out
    os.chmod(tmp / "postings.npy", 0o600)  # open_memmap creates it with the umask's mode
    _save(tmp / "offsets.npy", offsets)
    _save(tmp / "keys.npy", np.concatenate([np.asarray(p.keys) for p in parts]))
    _save(tmp / "frames.npy", np.concatenate([np.asarray(p.frames) for p in parts]))
    _save(tmp / "composition.npy", np.concatenate([np.asarray(p.composition) for p in parts]))
    _save(tmp / "regions.npy", np.concatenate([np.asarray(p.regions) for p in parts]))
    _save(tmp / "colour.npy", np.concatenate([np.asarray(p.colour) for p in parts]))
    shutil.rmtree(path, ignore_errors=True)
    os.replace(tmp, path)


# -- the index --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Hit:
    """An artwork found by its local features."""

    key: str  # the original's sha256
    inliers: int  # matches agreeing on the geometry
    matches: int  # matches before verification
    homography: np.ndarray  # 3 x 3: original pixels -> suspect pixels
    mirrored: bool  # the suspect is a mirror image of (part of) the original
    pairs: np.ndarray  # (inliers, 4) float32: original x, y -> suspect x, y (pixels)
    coverage: float  # fraction of the suspect covered by the original's projection


def _read_manifest(root: Path) -> dict[str, Any]:
    try:
        data = json.loads((root / MANIFEST).read_text())
        if isinstance(data, dict) and isinstance(data.get("segments"), list):
            return data
    except (OSError, ValueError):
        pass
    return {"segments": []}


class FeatureIndex:
    """The inverted file of every indexed original, read from `root` (data folder/features)."""

    def __init__(self, root: Path, book: Codebook | None = None) -> None:
        self.root = root
        self.book = book or codebook()
        self.manifest = _read_manifest(root)
        if self.manifest.get("codebook") not in (None, self.book.version):
            self.manifest = {"segments": []}  # made with another codebook: unusable
        self.segments: list[Segment] = []
        for name in self.manifest["segments"]:
            try:
                self.segments.append(Segment(root / name))
            except (OSError, ValueError) as exc:
                log.warning("feature segment %s unusable (%s); it will be rebuilt", name, exc)
                self.segments = []
                self.manifest = {"segments": []}
                break
        self.base = np.cumsum([0] + [len(s) for s in self.segments])
        self._idf: np.ndarray | None = None
        self._comp: Any = None
        self._longest: int | None = None

    def __len__(self) -> int:
        return int(self.base[-1])

    @property
    def covered(self) -> int:
        """The originals table's rowid up to which every original has been seen."""
        return int(self.manifest.get("covered", 0))

    def key(self, img: int) -> str:
        s = int(np.searchsorted(self.base, img, side="right") - 1)
        return bytes(np.asarray(self.segments[s].keys[img - self.base[s]])).hex()

    def frame(self, img: int) -> tuple[float, float, float]:
        s = int(np.searchsorted(self.base, img, side="right") - 1)
        w, h, scale = np.asarray(self.segments[s].frames[img - self.base[s]])
        return float(w), float(h), float(scale)

    def keys(self) -> list[str]:
        return [bytes(k).hex() for s in self.segments for k in np.asarray(s.keys)]

    @property
    def idf(self) -> np.ndarray:
        if self._idf is None:
            df = np.zeros(WORDS, np.float64)
            for s in self.segments:
                df += np.diff(np.asarray(s.offsets))
            n = max(1, len(self))
            self._idf = np.log((n + 1) / (df + 1)).astype(np.float32) + 0.1
        return self._idf

    # -- search -------------------------------------------------------------------------------
    def _postings(self, words: np.ndarray) -> list[tuple[int, np.ndarray, np.ndarray, np.ndarray]]:
        """Every posting of the given words (sorted), per segment: (the segment's first image
        number, which of `words` it has lists for, their lengths, their postings one list
        after another). Each list is one contiguous run of the segment's file, read as it is
        (a gather through an index array of every posting cost 5 times more at 10^5 images,
        15 times at 10^6)."""
        parts = []
        w = words.astype(np.int64)
        for s, base in zip(self.segments, self.base[:-1], strict=True):
            starts = np.asarray(s.offsets[w])
            ends = np.asarray(s.offsets[w + 1])
            nz = np.nonzero(ends > starts)[0]
            if len(nz):
                parts.append((int(base), nz, ends[nz] - starts[nz], s.read_lists(starts[nz], ends[nz])))
        return parts

    def list_lengths(self, words: np.ndarray) -> np.ndarray:
        """How many postings each word has, over every segment."""
        w = words.astype(np.int64)
        total = np.zeros(len(w), np.int64)
        for s in self.segments:
            total += np.asarray(s.offsets[w + 1]) - np.asarray(s.offsets[w])
        return total

    @property
    def longest_list(self) -> int:
        """Postings above which a word is a stop word for queries (see MAX_LIST_FACTOR)."""
        if self._longest is None:
            total = sum(int(s.offsets[-1]) for s in self.segments)
            self._longest = max(MIN_LIST_CAP, int(MAX_LIST_FACTOR * total / WORDS))
        return self._longest

    def matches(self, f: Features, assign: int = 2) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(query keypoint, image, x, y) of every Hamming-embedding match. Words whose lists
        are longer than `longest_list` are skipped (stop words: they cost the most to read
        and tell the least), and the lists are read and filtered a batch of words at a time,
        so the temporaries stay bounded at any index size."""
        words, sigs = quantise(f.desc, self.book, assign)
        flat_w, flat_s = words.ravel(), sigs.ravel()
        qkp = np.repeat(np.arange(len(f)), words.shape[1])
        # query entries grouped by word: word u serves entries order[starts[u] : starts[u] + counts[u]]
        order = np.argsort(flat_w, kind="stable")
        uniq, starts, counts = np.unique(flat_w[order], return_index=True, return_counts=True)
        lens = self.list_lengths(uniq)
        usable = np.nonzero((lens > 0) & (lens <= self.longest_list))[0]
        out_q, out_img, out_x, out_y = [], [], [], []
        a = 0
        csum = np.cumsum(lens[usable])
        while a < len(usable):
            # words a..b whose lists add up to at most READ_BATCH postings (at least one word)
            b = max(a + 1, int(np.searchsorted(csum, (csum[a - 1] if a else 0) + READ_BATCH, side="right")))
            sel = usable[a:b]
            a = b
            for base, nz, ln, post in self._postings(uniq[sel]):
                word = sel[nz]  # the query's unique words this part has postings of
                ends = np.cumsum(ln)  # word k's postings are post[ends[k] - ln[k] : ends[k]]
                sig = post["sig"]
                # a word serves one query entry almost always; the rare second (third...)
                # entry of a word is compared in its own pass over just that word's postings,
                # instead of repeating every posting once per entry. The query's bits are
                # spread over the postings word by word (no per-posting index, no gather).
                got_post, got_entry = [], []
                for r in range(int(counts[word].max())):
                    entry_of_word = order[starts[word] + np.minimum(r, counts[word] - 1)]
                    if r == 0:
                        qsig = np.repeat(flat_s[entry_of_word], ln)
                        ok = np.nonzero(np.bitwise_count(sig ^ qsig) <= HAMMING)[0]
                    else:
                        k = np.nonzero(counts[word] > r)[0]
                        lk = ln[k]
                        rows = np.repeat(ends[k] - lk - (np.cumsum(lk) - lk), lk) + np.arange(int(lk.sum()))
                        qsig = np.repeat(flat_s[entry_of_word[k]], lk)
                        ok = rows[np.bitwise_count(sig[rows] ^ qsig) <= HAMMING]
                    got_post.append(ok)
                    got_entry.append(entry_of_word[np.searchsorted(ends, ok, side="right")])
                pi, ei = np.concatenate(got_post), np.concatenate(got_entry)
                if len(got_post) > 1:  # posting by posting, its entries in turn (as RANSAC saw them)
                    o = np.lexsort((ei, pi))
                    pi, ei = pi[o], ei[o]
                p = post[pi]
                out_q.append(qkp[ei])
                out_img.append(p["img"].astype(np.int64) + base)
                out_x.append(p["x"] / POS_SCALE)
                out_y.append(p["y"] / POS_SCALE)
        if not out_q:
            e = np.empty(0, np.int64)
            return e, e, e.astype(np.float32), e.astype(np.float32)
        return np.concatenate(out_q), np.concatenate(out_img), np.concatenate(out_x), np.concatenate(out_y)

    def search(
        self,
        f: Features,
        *,
        candidates: int = CANDIDATES,
        mirror: bool = True,
        shortlist: dict[str, int] | None = None,
    ) -> list[Hit]:
        """Artworks whose keypoints agree with the suspect's on one geometry, best first.
        `shortlist`, when given, receives the best-voted images (key -> votes: at most
        SHORTLIST per orientation searched, each with at least SHORTLIST_VOTES) whether or
        not they were verified: for `match_features` when the
        index's own verification finds nothing (see SHORTLIST_VOTES)."""
        if len(self) == 0 or len(f) < 4:
            return []
        hits: list[Hit] = []
        for flipped in (False, True) if mirror else (False,):
            g = mirrored(f) if flipped else f
            q, img, x, y = self.matches(g)
            if len(q) == 0:
                continue
            # votes: one per (query keypoint, image), weighted by the word's rarity
            pair = _distinct(q * np.int64(len(self) + 1) + img)
            vimg = pair % (len(self) + 1)
            votes = np.bincount(vimg, minlength=len(self))
            k = min(candidates, len(votes))
            top = np.argpartition(-votes, k - 1)[:k]  # O(n), not a sort of every image
            top = top[np.argsort(-votes[top], kind="stable")]
            if shortlist is not None:
                for i in top[:SHORTLIST]:
                    if votes[i] >= SHORTLIST_VOTES:
                        name = self.key(int(i))
                        shortlist[name] = max(shortlist.get(name, 0), int(votes[i]))
            for i in top:
                # too few votes to reach MIN_INLIERS, or far behind the best candidate
                if votes[i] < MIN_INLIERS or votes[i] < 0.15 * votes[top[0]]:
                    break
                sel = img == i
                hit = self._verify(int(i), g, q[sel], x[sel], y[sel], flipped, f)
                if hit is not None:
                    hits.append(hit)
            if hits:
                break  # found as seen: the mirror is only searched when nothing was
        hits.sort(key=lambda h: -h.inliers)
        return hits

    def _verify(
        self, img: int, g: Features, q: np.ndarray, x: np.ndarray, y: np.ndarray, flipped: bool, f: Features
    ) -> Hit | None:
        cv2 = _cv2()
        # keep at most MAX_PER_KEYPOINT postings per query keypoint (bursty words)
        order = np.argsort(q, kind="stable")
        q, x, y = q[order], x[order], y[order]
        first = np.searchsorted(q, q, side="left")
        keep = (np.arange(len(q)) - first) < MAX_PER_KEYPOINT
        q, x, y = q[keep], x[keep], y[keep]
        if len(np.unique(q)) < MIN_INLIERS:
            return None
        src = np.stack([x, y], 1).astype(np.float32)
        dst = g.xy[q].astype(np.float32)
        H, mask = cv2.findHomography(src, dst, cv2.USAC_MAGSAC, RANSAC_PX, maxIters=2000, confidence=0.999)
        if H is None or mask is None:
            return None
        inl = mask.ravel().astype(bool)
        # one inlier per query keypoint and per original location
        qi = q[inl]
        n_inl = min(len(np.unique(qi)), len(np.unique(np.round(src[inl] / 2), axis=0)))
        if n_inl < MIN_INLIERS:
            return None
        H = _simplest(H, src[inl], dst[inl])
        w, h, scale = self.frame(img)
        if not _plausible(H, (w, h), g.size):
            return None
        # pixels: original px -> suspect px (undo both feature-frame scales, and the mirror)
        to_orig = np.diag([scale, scale, 1.0])
        from_susp = np.diag([1 / f.scale, 1 / f.scale, 1.0])
        Hp = from_susp @ H @ to_orig
        pts_o = src[inl] / scale
        pts_s = dst[inl] / f.scale
        if flipped:
            flip = np.array([[-1.0, 0.0, f.size[0] / f.scale], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
            Hp = flip @ Hp
            pts_s = pts_s.copy()
            pts_s[:, 0] = f.size[0] / f.scale - pts_s[:, 0]
        Hp = Hp / Hp[2, 2]
        cover = _coverage(H, (w, h), g.size)
        return Hit(
            self.key(img),
            n_inl,
            len(np.unique(q)),
            Hp,
            flipped,
            np.hstack([pts_o, pts_s]).astype(np.float32),
            cover,
        )

    # -- reworks ------------------------------------------------------------------------------
    def composition_matrix(self) -> np.ndarray:
        """Every image's rework descriptor (n, D) float16, in index order."""
        if not self.segments:
            return np.empty((0, 0), np.float16)
        return np.concatenate([np.asarray(s.composition) for s in self.segments])

    def regions_of(self, img: int) -> np.ndarray:
        """The stored regions descriptor (composition.regions) of one image, float32."""
        s = int(np.searchsorted(self.base, img, side="right") - 1)
        return np.asarray(self.segments[s].regions[img - self.base[s]], np.float32)

    def colour_of(self, img: int) -> np.ndarray:
        """The stored colour descriptor (composition.colour) of one image, float32."""
        s = int(np.searchsorted(self.base, img, side="right") - 1)
        return np.asarray(self.segments[s].colour[img - self.base[s]], np.float32)

    def composition_search(self, vectors: np.ndarray, k: int = 5) -> tuple[np.ndarray, np.ndarray]:
        """Inner products of the query vectors (q, D) with every image's descriptor: the k
        best (similarity, image) per query, through a flat faiss index. The stored vectors
        are float16 and held as float32 (4 bytes a dimension: 0.4 GB at 10^6 images): the same
        products as fp16 codes (to float rounding), but the fp16 scalar quantiser decodes
        every vector per query, 0.41 s of CPU for two queries at 10^6 images against 0.13 s."""
        import faiss  # lazily

        if self._comp is None:
            dims = self.segments[0].composition.shape[1] if self.segments else 0
            index = faiss.IndexFlatIP(dims)
            for s in self.segments:
                c = s.composition
                for a in range(0, len(c), 65536):
                    index.add(np.ascontiguousarray(c[a : a + 65536], dtype=np.float32))
            self._comp = index
        k = min(k, len(self))
        if k == 0:
            return np.empty((len(vectors), 0)), np.empty((len(vectors), 0), np.int64)
        sims, ids = self._comp.search(np.ascontiguousarray(vectors, dtype=np.float32), k)
        return sims, ids


def _distinct(x: np.ndarray) -> np.ndarray:
    """np.unique of a large int64 array by sorting: numpy 2.4's hash-based unique took 30
    times longer on the 1.5 million (keypoint, image) pairs of a query at 10^6 images."""
    s = np.sort(x)
    return s[np.concatenate(([True], s[1:] != s[:-1]))] if len(s) else s


def _simplest(H: np.ndarray, src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """The affine map instead of the homography when it explains the inliers as well (within
    RANSAC_PX for AFFINE_SHARE of them): the perspective terms of a fit to a small crop are
    poorly held and throw the original's outline far off (tens of pixels at its corners),
    while a photo of a screen, which needs them, shows enough of the art to pin them down."""
    cv2 = _cv2()
    a = cv2.estimateAffine2D(src, dst, method=cv2.LMEDS)[0]
    if a is None:
        return H
    err = np.hypot(*(src @ a[:, :2].T + a[:, 2] - dst).T)
    if (err <= RANSAC_PX).mean() >= AFFINE_SHARE:
        return np.vstack([a, [0.0, 0.0, 1.0]])
    return H


# -- collages ----------------------------------------------------------------------------------
# A collage's other panels take most of a query's keypoints and votes: in the attack table the
# pencil sketch and a concept painting, each one panel of four beside procedural paintings, were
# on no short list (the filler voted for the synthetic originals), while searched alone each
# panel put its original first and the direct match found 103 and 152 inliers. So a suspect
# that splits along uniform gutters (`panels`) is searched again panel by panel when nothing
# was found whole (trace.Tracer._by_panels).
PANEL_LONG = 512  # gutters are looked for at this long edge
GUTTER_STD = 6.0  # grey levels: a row or column this uniform along its whole length is a gutter
GUTTER_MIN = 0.006  # of the side: thinner uniform runs are flat art, not a gutter
PANEL_MIN_AREA = 0.06  # of the picture: smaller parts (a caption line, a margin) are skipped
MAX_PANELS = 6  # the largest parts searched, at most


def panels(image: Image.Image) -> list[tuple[int, int, int, int]]:
    """Boxes (left, top, right, bottom; image pixels) of the parts a collage or a captioned
    picture is split into by uniform rows and columns running across it, largest first; empty
    when there is no such gutter. A gutter is a run of rows (columns) whose grey values hardly
    vary along the whole width (height), away from the edges (a border is not a gutter). Each
    part is split again the same way, within itself, and its parts listed after it: a
    collage's rows need not share their columns (a 2 x 2 grid whose lower cells are wider)."""
    g, scale = grey(image, PANEL_LONG)
    g = g.astype(np.float32)
    h, w = g.shape
    top = _split(g, (0, 0, w, h))
    if len(top) < 2:
        return []
    found = list(top)
    for box in top:
        inner = _split(g, box)
        if len(inner) > 1:
            found += inner
    boxes = [
        (round(x0 / scale), round(y0 / scale), round(x1 / scale), round(y1 / scale))
        for x0, y0, x1, y1 in found
        if (y1 - y0) * (x1 - x0) >= PANEL_MIN_AREA * h * w
    ]
    boxes.sort(key=lambda b: -(b[2] - b[0]) * (b[3] - b[1]))
    return boxes[:MAX_PANELS]


def _split(g: np.ndarray, box: tuple[int, int, int, int]) -> list[tuple[int, int, int, int]]:
    """The parts of `box` (grey pixels) between its gutters: [box] itself when it has none."""
    x0, y0, x1, y1 = box
    part = g[y0:y1, x0:x1]
    ys = [0, *_gutters(part.std(axis=1)), y1 - y0]
    xs = [0, *_gutters(part.std(axis=0)), x1 - x0]
    return [
        (x0 + a, y0 + b, x0 + c, y0 + d) for b, d in itertools.pairwise(ys) for a, c in itertools.pairwise(xs)
    ]


def _gutters(std: np.ndarray) -> list[int]:
    """The middle of each run of uniform lines at least GUTTER_MIN of the side long and
    wholly inside the picture (not touching an edge)."""
    flat = np.concatenate([[0], (std < GUTTER_STD).astype(np.int8), [0]])
    edges = np.diff(flat)
    n = len(std)
    return [
        (int(a) + int(b)) // 2
        for a, b in zip(np.nonzero(edges == 1)[0], np.nonzero(edges == -1)[0], strict=True)
        if a > 0 and b < n and b - a >= max(2, GUTTER_MIN * n)
    ]


def box_shift(box: tuple[int, int, int, int] | None) -> np.ndarray:
    """The map (3 x 3) from the pixels of the crop `box` of a suspect to the whole suspect's
    (None: the whole suspect, the identity)."""
    if box is None:
        return np.eye(3)
    return np.array([[1.0, 0.0, box[0]], [0.0, 1.0, box[1]], [0.0, 0.0, 1.0]])


def in_panel(hit: Hit, box: tuple[int, int, int, int]) -> Hit:
    """A hit found in the crop `box` of a suspect, as a hit in the whole suspect."""
    pairs = hit.pairs.copy()
    pairs[:, 2:] += (float(box[0]), float(box[1]))
    return replace(hit, homography=box_shift(box) @ hit.homography, pairs=pairs)


PAIR_KEEP = 2000  # keypoints per image when two images are matched directly
PAIR_RATIO = 0.8  # Lowe's ratio test for a direct match


def match_images(original: Image.Image, suspect: Image.Image, *, mirror: bool = True) -> Hit | None:
    """The geometry of `suspect` as a copy of `original`, found without the index: both
    images' keypoints matched directly (nearest neighbour, ratio test), then the same RANSAC
    fit and plausibility test as `FeatureIndex.search`. For the evidence report, when the copy
    was named by its hidden ID and the index was never asked where it sits. `key` is empty."""
    return match_features(pair_features(original), pair_features(suspect), mirror=mirror)


def pair_features(image: Image.Image) -> Features:
    """An image's keypoints for `match_features` (either side)."""
    return extract(image, keep=PAIR_KEEP)


def match_features(
    fo: Features, fs: Features, *, mirror: bool = True, key: str = "", min_inliers: int | None = None
) -> Hit | None:
    """`match_images` on features extracted once (`pair_features`): trace matches a suspect
    against its short list's originals this way. Inliers are counted once per original place
    and per suspect keypoint (SIFT puts several orientations at one point), like the index's
    verification; at least `min_inliers` (MIN_INLIERS) are needed."""
    cv2 = _cv2()
    floor = MIN_INLIERS if min_inliers is None else min_inliers
    if len(fo) < floor or len(fs) < floor:
        return None
    matcher = cv2.BFMatcher(cv2.NORM_L2)
    for flipped in (False, True) if mirror else (False,):
        g = mirrored(fs) if flipped else fs
        pairs = matcher.knnMatch(fo.desc, g.desc, k=2)
        good = [m[0] for m in pairs if len(m) == 2 and m[0].distance < PAIR_RATIO * m[1].distance]
        if len(good) < floor:
            continue
        src = fo.xy[[m.queryIdx for m in good]].astype(np.float32)
        dst = g.xy[[m.trainIdx for m in good]].astype(np.float32)
        H, mask = cv2.findHomography(src, dst, cv2.USAC_MAGSAC, RANSAC_PX, maxIters=2000, confidence=0.999)
        if H is None or mask is None:
            continue
        inl = mask.ravel().astype(bool)
        places = (len(np.unique(np.round(p[inl] / 2), axis=0)) for p in (src, dst))
        n_inl = min(places)
        if n_inl < floor or not _plausible(H, fo.size, g.size):
            continue
        Hp = np.diag([1 / fs.scale, 1 / fs.scale, 1.0]) @ H @ np.diag([fo.scale, fo.scale, 1.0])
        pts_o = src[inl] / fo.scale
        pts_s = dst[inl] / fs.scale
        if flipped:
            width = fs.size[0] / fs.scale
            Hp = np.array([[-1.0, 0.0, width], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]) @ Hp
            pts_s = pts_s.copy()
            pts_s[:, 0] = width - pts_s[:, 0]
        hit = Hit(
            key, n_inl, len(good), Hp / Hp[2, 2], flipped, np.hstack([pts_o, pts_s]).astype(np.float32),
            _coverage(H, fo.size, g.size),
        )  # fmt: skip
        return hit  # as seen; the mirror is only tried when nothing was found
    return None


def _corners(size: tuple[float, float]) -> np.ndarray:
    w, h = size
    return np.array([[0, 0], [w, 0], [w, h], [0, h]], np.float64)


def _project(H: np.ndarray, pts: np.ndarray) -> np.ndarray:
    p = np.hstack([pts, np.ones((len(pts), 1))]) @ H.T
    return p[:, :2] / p[:, 2:3]


def _plausible(H: np.ndarray, orig: tuple[float, float], susp: tuple[int, int]) -> bool:
    """A geometry a copy can have: the original's outline stays a convex, not too distorted
    quadrilateral (a photo of a screen tilts it, nothing folds it), at a sane scale, and it
    overlaps the suspect."""
    if not np.isfinite(H).all():
        return False
    quad = _project(H, _corners(orig))
    if not np.isfinite(quad).all():
        return False
    # convex, same orientation at every corner (a mirror is handled outside: never here)
    cross = []
    for i in range(4):
        a, b, c = quad[i], quad[(i + 1) % 4], quad[(i + 2) % 4]
        cross.append((b[0] - a[0]) * (c[1] - b[1]) - (b[1] - a[1]) * (c[0] - b[0]))
    if not (all(c > 0 for c in cross)):
        return False
    area = 0.5 * abs(
        sum(quad[i, 0] * quad[(i + 1) % 4, 1] - quad[(i + 1) % 4, 0] * quad[i, 1] for i in range(4))
    )
    scale = math.sqrt(area / (orig[0] * orig[1]))
    if not 0.05 <= scale <= 20:
        return False
    # opposite sides of similar length (perspective of a photo: within a factor of 2)
    sides = [float(np.hypot(*(quad[(i + 1) % 4] - quad[i]))) for i in range(4)]
    if max(sides[0] / sides[2], sides[2] / sides[0], sides[1] / sides[3], sides[3] / sides[1]) > 2.0:
        return False
    # angles: no corner sharper than 45 degrees
    for i in range(4):
        u = quad[(i + 1) % 4] - quad[i]
        v = quad[(i - 1) % 4] - quad[i]
        cosang = float(u @ v / (np.linalg.norm(u) * np.linalg.norm(v) + 1e-9))
        if abs(cosang) > math.cos(math.radians(45)):
            return False
    return _coverage(H, orig, susp) > 0.0


def _coverage(H: np.ndarray, orig: tuple[float, float], susp: tuple[int, int]) -> float:
    """Fraction of the suspect inside the original's projected outline (a coarse grid)."""
    w, h = susp
    xs, ys = np.meshgrid(np.linspace(0, w, 24), np.linspace(0, h, 24))
    pts = np.stack([xs.ravel(), ys.ravel()], 1)
    try:
        inv = np.linalg.inv(H)
    except np.linalg.LinAlgError:
        return 0.0
    back = _project(inv, pts)
    ow, oh = orig
    inside = (back[:, 0] >= 0) & (back[:, 0] <= ow) & (back[:, 1] >= 0) & (back[:, 1] <= oh)
    return float(inside.mean())


# -- keeping the index up to date ---------------------------------------------------------------
@dataclass(frozen=True)
class Pending:
    rowid: int
    key: str
    path: Path | None  # None: the archived file is gone
    background: str


def pending(conn: sqlite3.Connection, data_dir: Path, after: int) -> list[Pending]:
    """Originals added after rowid `after`, with their archive files."""
    rows = conn.execute(
        "SELECT rowid, sha256, archive_path FROM originals WHERE rowid > ? ORDER BY rowid", (after,)
    ).fetchall()
    out = []
    for rowid, sha, rel in rows:
        p = data_dir / rel
        out.append(Pending(int(rowid), str(sha), p if p.is_file() else None, "#ffffff"))
    return out


def update(
    conn: sqlite3.Connection,
    data_dir: Path,
    *,
    progress: Callable[[int, int], None] | None = None,
    budget: int | None = None,
) -> FeatureIndex:
    """Bring the index in DATA/features up to date with the archive: extract features of
    every original added since the last update, as one new segment, then merge segments of
    similar size. `budget`: at most this many originals now (the rest next time).

    Safe to interrupt at any point: a segment is complete before the manifest names it, and
    the manifest is replaced atomically. Originals whose archived file is missing or cannot
    be read are skipped (and retried at the next update)."""
    from poster import imaging

    root = data_dir / INDEX_DIR
    store.ensure_private_dir(root)
    index = FeatureIndex(root)
    manifest = index.manifest
    retry = [str(k) for k in manifest.get("retry", [])]
    todo = pending(conn, data_dir, index.covered)
    if retry:
        rows = conn.execute(
            "SELECT rowid, sha256, archive_path FROM originals "
            f"WHERE sha256 IN ({','.join('?' * len(retry))})",
            retry,
        ).fetchall()
        todo = [
            Pending(0, str(s), (data_dir / r) if (data_dir / r).is_file() else None, "#ffffff")
            for _, s, r in rows
        ] + todo
    if not todo:
        return index
    if budget is not None:
        todo = todo[:budget]
    # only when there is work: every key as a string took 0.9 s at 10^6 images, and the daemon's
    # ticks and each trace call this with nothing to add
    known = set(index.keys())
    book = index.book
    entries: list[Entry] = []
    still_missing: list[str] = []
    covered = index.covered
    done_keys: set[str] = set()
    for n, p in enumerate(todo, 1):
        if progress:
            progress(n, len(todo))
        if p.rowid:
            covered = max(covered, p.rowid)
        if p.key in known or p.key in done_keys:
            continue
        if p.path is None:
            still_missing.append(p.key)
            continue
        try:
            image = imaging.load(imaging.read_file(p.path), str(p.path), max_pixels=400_000_000)
            entries.append(entry_of(p.key, image, book))
            done_keys.add(p.key)
        except Exception as exc:  # a damaged archive file must not stop the others
            log.warning("%s: no features (%s)", p.path, exc)
            still_missing.append(p.key)
    segments = list(manifest.get("segments", []))
    dims = _dims(index, entries)
    if entries:
        name = _new_name(root, segments)
        Segment.write(root / name, entries, dims)
        segments.append(name)
        segments = _merge(root, segments, dims)
    _write_manifest(
        root,
        {
            "codebook": book.version,
            "segments": segments,
            "covered": covered,
            "retry": sorted(set(still_missing)),
        },
    )
    _tidy(root, segments)
    return FeatureIndex(root, book)


def _dims(index: FeatureIndex, entries: Sequence[Entry]) -> int:
    if index.segments:
        return int(index.segments[0].composition.shape[1])
    for e in entries:
        if e.composition is not None:
            return len(e.composition)
    from poster import composition

    return composition.DIMS


def _new_name(root: Path, segments: Sequence[str]) -> str:
    n = 1 + max([int(s.split("-")[1]) for s in segments if s.startswith("seg-")] + [0])
    while (root / f"seg-{n:06d}").exists():
        n += 1
    return f"seg-{n:06d}"


def _merge(root: Path, segments: list[str], dims: int) -> list[str]:
    """Merge the newest segments while the last is at least half the size of the one before
    (a binary counter: O(log n) segments, each image rewritten O(log n) times)."""
    while len(segments) >= 2:
        a, b = Segment(root / segments[-2]), Segment(root / segments[-1])
        if len(b) * 2 < len(a):
            break
        name = _new_name(root, segments)
        merge_segments(root / name, [a, b], dims)
        del a, b
        segments = [*segments[:-2], name]
    return segments


def _write_manifest(root: Path, data: dict[str, Any]) -> None:
    tmp = root / (MANIFEST + ".tmp")
    with open(os.open(tmp, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o600), "w") as f:
        json.dump(data, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, root / MANIFEST)


def _tidy(root: Path, keep: Iterable[str]) -> None:
    """Remove segment folders the manifest no longer names (merged, or left by a crash)."""
    keep = set(keep)
    for p in root.iterdir():
        if p.is_dir() and p.name not in keep and p.name.startswith("seg-"):
            shutil.rmtree(p, ignore_errors=True)
