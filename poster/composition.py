"""Composition at thumbnail scale: find reworks of an artwork ("AI tracing", img2img).

A rework keeps the composition and the layout of light and dark and regenerates every
detail: lines are re-drawn, areas smoothed or posterised, hues shifted. At thumbnail size it
looks the same. The descriptor is therefore the lowest spatial frequencies of the picture's
lightness: the luma (transparency over white) box-averaged to 64 x 64, its 2-D DCT, the
coefficients (u, v) with u, v < K except the mean, each multiplied by its frequency
sqrt(u^2 + v^2) (natural images fall off as 1/f; this evens out the weight of coarse and
fine layout, so the similarity of two unrelated images is a sum of many independent terms
instead of a contest of their brightest-at-the-top gradients), then scaled to unit length.

The similarity of two images is the inner product of their descriptors (1: same layout). A
left-right mirror multiplies column u by (-1)^u, so a mirrored rework costs nothing extra.

Unrelated pictures can share a layout as a whole (two centred figures on a plain ground), so
a rework is named only when further checks agree: the same kind of descriptor in each of
nine overlapping windows of the thumbnail (`regions`), the least similar window counting,
and the layout of the colours whatever their hues (`colour`: the low frequencies of the
opponent colours as one complex field, compared up to a turn of every hue). Two grey
pictures have no colour to compare and need the stricter composition threshold
(`is_rework`). All three are computed from one 64 x 64 thumbnail and stored per artwork in
the feature index; the composition is searched (faiss), the others compared for its best
candidates only. The thresholds are calibrated in benchmarks/trace_calibration.py (the
rework pass) on more than 10,000 images unrelated to the indexed art (procedural art, photos
and illustrations that packages ship, and augmented copies of them) and on the pairs of
those images from different sources: at the thresholds, none of them is named a rework
(TRACE_RESULTS.md section 9).
"""

from __future__ import annotations

import numpy as np
from PIL import Image

GRID = 64
K = 10  # frequencies per axis kept
DIMS = K * K - 1
# Calibrated in benchmarks/trace_calibration.py (benchmarks/TRACE_RESULTS.md sections 1 and 6).
# At 0.80, unrelated images were called reworks: openclipart's card back back03.png 0.806 as
# is and 0.84 posterised (to revoy_forest_painting; tests/test_composition.py). Compared with
# each other, unrelated images from different sources reach more: on the first 6,938 images
# (18.5 M pairs) 0.935, hence 0.95 (74 of the 120 reworks of the rework set named, 62 %). The
# rework pass on all 11,862 (2026-12-03: 53 M pairs, Tux Paint's stamps counted with the
# openclipart drawings they copy) found one pair over 0.95: a crop of KDE's ColdRipple
# wallpaper and Hedgewars' Underwater sky, 0.954 — which the regions check rejects (0.163).
# Lower composition thresholds with a regions threshold do not stay clear of unrelated pairs
# (discs: a globe and a gas giant 0.89 / 0.84; smooth gradient wallpapers 0.944 / 0.910), so
# the composition threshold stays 0.95 and the regions check guards it — for two grey
# pictures. With colour, the colour check lets it drop to COLOUR_COMPOSITION (section 9).
REWORK_SIMILARITY = 0.95
MIN_ENERGY = 2.0  # below this (near-flat thumbnails) no composition match is reported


def score_of(similarity: float, grey: bool = False) -> float:
    """0.5 at the composition threshold that applies (REWORK_SIMILARITY for two grey
    pictures, COLOUR_COMPOSITION otherwise), 1 at identical composition."""
    t = REWORK_SIMILARITY if grey else COLOUR_COMPOSITION
    s = (similarity - t) / (1.0 - t)
    return float(min(1.0, max(0.0, 0.5 + 0.5 * s)))


def _dct(n: int, k: int) -> np.ndarray:
    u = np.arange(k)[:, None]
    j = np.arange(n)[None, :]
    m = np.sqrt(2.0 / n) * np.cos(np.pi / (2 * n) * u * (2 * j + 1))
    m[0] /= np.sqrt(2.0)
    return m


_D = _dct(GRID, K)
_U, _V = np.meshgrid(np.arange(K), np.arange(K))  # _U: horizontal frequency (columns)
_W = np.sqrt(_U**2 + _V**2)
_KEEP = (_U + _V) > 0
_FLIP = np.where(_U % 2 == 1, -1.0, 1.0)[_KEEP]


def thumbnail(image: Image.Image, background: tuple[int, int, int] = (255, 255, 255)) -> np.ndarray:
    """The picture (transparency over `background`) box-averaged to GRID x GRID, (GRID, GRID, 3)
    uint8: what both rework checks are computed from."""
    im = image
    if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
        rgba = im.convert("RGBA")
        base = Image.new("RGBA", rgba.size, (*background, 255))
        im = Image.alpha_composite(base, rgba)
    im = im.convert("RGB")
    if max(im.size) > 4 * GRID:
        factor = max(1, min(im.size) // (2 * GRID))
        if factor >= 2:
            im = im.reduce(factor)
    return np.asarray(im.resize((GRID, GRID), Image.Resampling.BOX), dtype=np.uint8)


def luma_of(thumb: np.ndarray) -> np.ndarray:
    rgb = thumb.astype(np.float64)
    return rgb[..., 0] * 0.299 + rgb[..., 1] * 0.587 + rgb[..., 2] * 0.114


def luma_grid(image: Image.Image, background: tuple[int, int, int] = (255, 255, 255)) -> np.ndarray:
    return luma_of(thumbnail(image, background))


def describe(image: Image.Image, background: tuple[int, int, int] = (255, 255, 255)) -> np.ndarray:
    """The unit-length descriptor (DIMS,) float32; zeros for a flat image."""
    return from_grid(luma_grid(image, background))


def from_grid(grid: np.ndarray) -> np.ndarray:
    coeffs = _D @ grid @ _D.T  # (v, u): rows are vertical frequencies
    v = (coeffs * _W)[_KEEP]
    n = float(np.linalg.norm(v))
    if n < 1e-6:
        return np.zeros(DIMS, np.float32)
    return (v / n).astype(np.float32)


def mirror(vector: np.ndarray) -> np.ndarray:
    """The descriptor of the left-right mirror image."""
    return (vector * _FLIP).astype(np.float32)


def energy(image_or_grid: Image.Image | np.ndarray) -> float:
    """How much layout there is to compare (RMS of the kept, weighted coefficients, grey
    levels): near-flat images have too little for a composition match to mean anything."""
    grid = image_or_grid if isinstance(image_or_grid, np.ndarray) else luma_grid(image_or_grid)
    coeffs = _D @ grid @ _D.T
    return float(np.sqrt(np.mean((coeffs * _W)[_KEEP] ** 2)))


# -- the second check: the composition part by part ----------------------------------------------
# Unrelated pictures can share the layout of light and dark as a whole (a glow and a round
# button, 0.84; two centred figures, 0.93; a framed card back and a framed painting, 0.84) and
# still differ in some part of the picture; a rework keeps the composition everywhere. So the
# second check compares the same kind of descriptor in nine overlapping windows (half the
# thumbnail's side, a quarter apart) and keeps the least similar window: the similarity must
# hold in each part, not only on average. Chosen by measurement over the first ~6,000
# calibration queries against the alternatives: gradient-orientation histograms on a 4 x 4
# grid (a glow and a round button: 0.90, as high as reworks), the next band of frequencies
# (the framed card back and the framed forest painting: 0.86), 2 x 2 quadrants (0.84); these
# windows put unrelated pairs with composition >= 0.8 at most 0.29 there.
WINDOW = GRID // 2
STRIDE = GRID // 4
# The least similar window must reach this. With composition >= 0.95: unrelated queries
# none (the highest composition against the 320 indexed artworks is 0.844), unrelated pairs
# one (regions 0.163, margin 0.34); the rework set loses one rework of 74 (73 named, 61 %).
# Below 0.95 the grid in TRACE_RESULTS.md section 6: e.g. composition >= 0.80 and regions
# >= 0.60 names 101 of 120 (84 %) but passes 155 unrelated pairs.
REGION_SIMILARITY = 0.5
REGION_K = 6  # frequencies (u + v < REGION_K) per window: the composition's scale, locally
_STARTS = tuple(range(0, GRID - WINDOW + 1, STRIDE))
REGIONS = len(_STARTS) ** 2
_RD = _dct(WINDOW, REGION_K)
_RU, _RV = np.meshgrid(np.arange(REGION_K), np.arange(REGION_K))
_RKEEP = ((_RU + _RV) > 0) & ((_RU + _RV) < REGION_K)
_RW = np.sqrt(_RU**2 + _RV**2)[_RKEEP]
_RFLIP = np.where(_RU % 2 == 1, -1.0, 1.0)[_RKEEP]
REGION_DIMS = REGIONS * int(_RKEEP.sum())
# the mirror image: windows in reversed column order, each with its odd columns negated
_RORDER = np.arange(REGIONS).reshape(len(_STARTS), len(_STARTS))[:, ::-1].reshape(-1)


def regions(thumb: np.ndarray) -> np.ndarray:
    """The second check's descriptor of a thumbnail (`thumbnail`): per window, its weighted
    low frequencies at unit length (zeros for a flat window, which then matches nothing),
    (REGION_DIMS,) float32."""
    luma = luma_of(thumb)
    out = []
    for y in _STARTS:
        for x in _STARTS:
            c = _RD @ luma[y : y + WINDOW, x : x + WINDOW] @ _RD.T
            v = c[_RKEEP] * _RW
            n = float(np.linalg.norm(v))
            out.append(v / n if n >= 1e-6 else np.zeros_like(v))
    return np.concatenate(out).astype(np.float32)


def mirror_regions(vector: np.ndarray) -> np.ndarray:
    """The regions descriptor of the left-right mirror image."""
    v = np.asarray(vector, np.float32).reshape(REGIONS, -1)
    return (v[_RORDER] * _RFLIP).reshape(-1).astype(np.float32)


def region_similarity(a: np.ndarray, b: np.ndarray) -> float:
    """The least similar window of two regions descriptors (1: alike in every part)."""
    per = (
        np.asarray(a, np.float32).reshape(REGIONS, -1) * np.asarray(b, np.float32).reshape(REGIONS, -1)
    ).sum(1)
    return float(per.min())


# -- the third check: the colour layout, whatever the hues ---------------------------------------
# What passes the first two checks between unrelated pictures is a shape at this scale shared by
# pictures of different colour layouts: discs (planets, plates), sprite grids, smooth gradient
# wallpapers. A rework keeps where the colours are and how colourful each part is, even when it
# turns every hue (a hue shift rotates the chroma plane; a repaint re-draws lines and flattens
# areas, which keeps the low frequencies of the chroma). So the third check compares the
# layout of the chroma: the opponent colours a = R - (G + B) / 2 and b = sqrt(3)/2 (G - B), as
# one complex field a + ib, its low DCT frequencies (u + v < COLOUR_K, the mean included: a
# colour cast is part of the layout), weighted as the composition's (at least 1), and the
# similarity |<z1, z2>| / (|z1| |z2|): 1 for the same chroma layout turned by any hue angle,
# since a turn of every hue multiplies the field by one unit complex number. Grey pictures
# (colourfulness below GREY in both) have no chroma layout to compare; for them the
# composition threshold stays REWORK_SIMILARITY.
COLOUR_K = 10
_CKEEP = (_U + _V) < COLOUR_K
_CW = np.maximum(_W, 1.0)[_CKEEP]
_CFLIP = np.tile(np.where(_U % 2 == 1, -1.0, 1.0)[_CKEEP], 2)
COLOUR_DIMS = 2 * int(_CKEEP.sum())
# Calibrated in benchmarks/trace_calibration.py (TRACE_RESULTS.md section 9): below this
# colourfulness (grey levels) in both images the grey rule applies.
GREY = 4.0
# With colour: the composition from COLOUR_COMPOSITION (instead of REWORK_SIMILARITY), the
# regions from REGION_SIMILARITY and the colour layout from COLOUR_SIMILARITY, all three.
COLOUR_COMPOSITION = 0.85
COLOUR_SIMILARITY = 0.8


def colour(thumb: np.ndarray) -> np.ndarray:
    """The third check's descriptor of a thumbnail (`thumbnail`): the weighted low DCT
    frequencies of the opponent colours a and b, (COLOUR_DIMS,) float32 (a's then b's), not
    normalised: its length is the picture's colourfulness (`colourfulness`)."""
    rgb = thumb.astype(np.float64)
    a = rgb[..., 0] - (rgb[..., 1] + rgb[..., 2]) / 2
    b = np.sqrt(3.0) / 2 * (rgb[..., 1] - rgb[..., 2])
    ca = (_D @ a @ _D.T)[_CKEEP] * _CW
    cb = (_D @ b @ _D.T)[_CKEEP] * _CW
    return (np.concatenate([ca, cb]) / GRID).astype(np.float32)


def colourfulness(vector: np.ndarray) -> float:
    """How colourful the picture is (about the RMS chroma in grey levels, weighted as the
    descriptor): a uniform chroma c over the whole picture gives c."""
    return float(np.linalg.norm(np.asarray(vector, np.float64)))


def mirror_colour(vector: np.ndarray) -> np.ndarray:
    """The colour descriptor of the left-right mirror image."""
    return (np.asarray(vector, np.float32) * _CFLIP).astype(np.float32)


def colour_similarity(a: np.ndarray, b: np.ndarray) -> float:
    """The similarity of two chroma layouts whatever hue turn lies between them (0 to 1)."""
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    n = len(a) // 2
    za, zb = a[:n] + 1j * a[n:], b[:n] + 1j * b[n:]
    norm = float(np.linalg.norm(za) * np.linalg.norm(zb))
    return 0.0 if norm < 1e-9 else float(abs(np.vdot(za, zb)) / norm)


def is_rework(similarity: float, parts: float, colours: float, grey: bool) -> bool:
    """The verdict of the three checks: with colour, composition >= COLOUR_COMPOSITION, the
    least similar part >= REGION_SIMILARITY and the colour layout >= COLOUR_SIMILARITY; two
    grey pictures (no colour to compare), composition >= REWORK_SIMILARITY and regions."""
    if parts < REGION_SIMILARITY:
        return False
    if grey:
        return similarity >= REWORK_SIMILARITY
    return similarity >= COLOUR_COMPOSITION and colours >= COLOUR_SIMILARITY


def both_grey(a: np.ndarray, b: np.ndarray) -> bool:
    """Neither picture has colour enough for the colour check (colourfulness < GREY)."""
    return colourfulness(a) < GREY and colourfulness(b) < GREY
