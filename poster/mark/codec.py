"""Embedding and extraction of the hidden ID. See ``poster/mark/__init__.py`` for the design."""

from __future__ import annotations

import math
import operator
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from PIL import Image

from . import ecc, sync, tile
from ._filters import box, min3, power

MIN_SIDE = 256  # shortest accepted image side, in pixels
C_MIN = 7.0  # smallest chip size (original px): ~2.5 px after a 0.35x downscale
N_LONG_MAX = 460  # at most this many chips along the long edge (~2.6 px at 1200 px)

# --- embedding parameters -------------------------------------------------------------------
TARGET_RMS = 2.3  # mean embedding amplitude (grey levels RMS) at strength 1
MAX_GAIN = 14.0  # cap on the content-adaptive gain (flat images are not pushed harder)
MAX_AMP = 12.0  # cap on the local amplitude (grey levels) at strength 1
FLAT_AMP = 0.35  # amplitude allowed in perfectly flat areas (grey levels; dithered)
TEX_AMP = 1.0  # extra amplitude per grey level of local texture RMS
MASK_PX = 2.8  # the perceptual mask is computed with pixels of about chip_size / MASK_PX

# --- extraction parameters ------------------------------------------------------------------
WORK_LONG = 1024  # received images are downscaled to at most this long edge
FOLD = 96  # folded tile resolution (3 samples per chip)
Z_MIN = 4.0  # minimum sync-peak z-score before a decode is attempted
PASSES = (("hp", False), ("white", False), ("hp", True))  # residual kind, wide search
HALF_MIN = 256  # smallest long edge of the half-resolution view
N_CAND = 6  # lattice candidates (spectral comb maxima) verified by sync + decoding
COMB_MIN = 1.05  # minimum comb score (mean normalised power on the lattice; 1 = no mark)
# Minimum height of a candidate's comb score above its period scan (Comb.scan_z) before it is
# folded and decoded. Folding is most of the blind read's time on an image without a mark
# (~30 candidates passed COMB_MIN there, 13 ms each at 1024 px): JPEG block grids, pixel-art
# tiles and hatching lift the raw comb score of unmarked images to 2.6, so the score is judged
# against the image's own scan. Calibrated on benchmarks/mark.py's attack set + the trace
# attacks (benchmarks/TRACE_RESULTS.md, section 8): copies read with >= GATE_PERIODS periods
# in view had their lattice >= 6.8 scan sigmas up; unmarked images keep ~18 % of the fold work.
SCAN_Z_MIN = 4.0
# ... only for lattices with at least this many periods in the view. With few periods the comb
# peak is weak (kodim04 cropped to 429 x 643: its mark 3.8 scan sigmas up, 6.5 periods, read),
# and such folds are cheap: a fold resamples ~FOLD^2 samples per period in view.
GATE_PERIODS = 24


class MarkError(ValueError):
    """Bad input for the hidden-ID codec (unsupported image, too small, bad payload)."""


@dataclass(frozen=True)
class Detection:
    payload: int
    confidence: float  # sync correlation peak, in standard deviations of the search surface
    period: tuple[float, float]  # tile period in received pixels along the two lattice axes
    rotation_deg: float
    mirrored: bool
    offset: tuple[float, float]  # tile origin (x, y) in received pixels, modulo the period
    chip_px: float  # chip size in received pixels (geometric mean of the two axes)


def chip_size(w: int, h: int) -> float:
    """Chip size in original pixels.

    As small as possible (the host image interferes less at higher frequencies) while staying
    >= ~2.5 px after a 0.35x downscale (C_MIN) and after an X-style fit to 1200 px long edge
    (long / N_LONG_MAX); small images use bigger chips so >= 2.5 tiles fit on the short side.
    """
    long, short = max(w, h), min(w, h)
    return min(max(C_MIN, long / N_LONG_MAX), short / (2.5 * tile.T))


def tile_period(w: int, h: int) -> int:
    return round(tile.T * chip_size(w, h))


# ----------------------------------------------------------------------------- helpers
def _split(image: Image.Image) -> tuple[Image.Image, str]:
    """Return an image in L, LA, RGB or RGBA and the mode to give back."""
    mode = image.mode
    if mode in ("L", "LA", "RGB", "RGBA"):
        return image, mode
    if mode == "P":
        has_alpha = "transparency" in image.info or image.palette.mode == "RGBA"
        image = image.convert("RGBA" if has_alpha else "RGB")
        return image, image.mode
    if mode in ("1", "I", "I;16", "F"):
        image = image.convert("L")
        return image, "L"
    if mode == "PA":
        image = image.convert("RGBA")
        return image, "RGBA"
    image = image.convert("RGB")
    return image, "RGB"


def _resize_f(a: np.ndarray, size: tuple[int, int], resample=Image.BILINEAR) -> np.ndarray:
    return np.asarray(Image.fromarray(a.astype(np.float32, copy=False), "F").resize(size, resample))


BAND_ROWS = 256  # embed and the luma downscale work in horizontal bands of this many rows


def _bands(h: int):
    for r0 in range(0, h, BAND_ROWS):
        yield r0, min(h, r0 + BAND_ROWS)


def _luma_small(image: Image.Image, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray | None]:
    """Luma (float32, 0..255) and alpha (0..1 or None) resampled (bilinear) to ``size``.

    Equal to ``image.convert("L").convert("F").resize(size, BILINEAR)`` up to float32
    rounding (bit-identical when Pillow runs its horizontal pass first, as it does for the
    corpus; some tall shapes differ by 1 ulp), but the full-size float copies are never made:
    the horizontal pass runs per band of rows, the vertical pass on the narrow result.
    """
    w, h = image.size
    sw = size[0]
    has_alpha = image.mode in ("LA", "RGBA")
    yh = np.empty((h, sw), np.float32)
    ah = np.empty((h, sw), np.float32) if has_alpha else None
    for r0, r1 in _bands(h):
        band = image.crop((0, r0, w, r1))
        if ah is not None:
            ah[r0:r1] = np.asarray(band.getchannel("A").convert("F").resize((sw, r1 - r0), Image.BILINEAR))
        yb = band.convert("L") if band.mode != "L" else band
        yh[r0:r1] = np.asarray(yb.convert("F").resize((sw, r1 - r0), Image.BILINEAR))
    y = np.asarray(Image.fromarray(yh, "F").resize(size, Image.BILINEAR))
    alpha = None
    if ah is not None:
        alpha = np.asarray(Image.fromarray(ah, "F").resize(size, Image.BILINEAR)) / 255.0
    return y.astype(np.float32), alpha


def _pil_coeffs(in_size: int, out_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Pillow's bilinear resampling taps (start index, 3 weights) for ``in_size -> out_size``.

    A transcription of Pillow's ``precompute_coeffs`` (Resample.c) for the upscaling case,
    so one band of a bilinear resize can be computed alone, bit-identical to the whole.
    """
    scale = in_size / out_size
    fs = max(scale, 1.0)
    support = fs
    ksize = math.ceil(support) * 2 + 1
    center = (np.arange(out_size, dtype=np.float64) + 0.5) * scale
    xmin = np.maximum((center - support + 0.5).astype(np.int64), 0)
    xmax = np.minimum((center + support + 0.5).astype(np.int64), in_size) - xmin
    k = np.zeros((out_size, ksize))
    for j in range(ksize):
        x = np.abs((j + xmin - center + 0.5) * (1.0 / fs))
        k[:, j] = np.where((j < xmax) & (x < 1.0), 1.0 - x, 0.0)
    ww = np.zeros(out_size)
    for j in range(ksize):
        ww += k[:, j]
    k = np.where(ww[:, None] != 0.0, k / np.where(ww == 0.0, 1.0, ww)[:, None], k)
    return xmin, k


class _AmpRows:
    """Rows of the bilinear upscale of a small float map to (w, h), one band at a time."""

    def __init__(self, small: np.ndarray, w: int, h: int):
        sh = small.shape[0]
        self.same = small.shape == (h, w)
        self.hor = small if small.shape[1] == w else _resize_f(small, (w, sh))
        self.vert = None if sh == h else _pil_coeffs(sh, h)

    def rows(self, r0: int, r1: int) -> np.ndarray:
        if self.vert is None:
            return self.hor[r0:r1].astype(np.float32)
        xmin, k = self.vert
        xmin, k = xmin[r0:r1], k[r0:r1]
        n_in = self.hor.shape[0]
        acc = np.zeros((r1 - r0, self.hor.shape[1]), np.float64)
        for j in range(k.shape[1]):
            idx = np.minimum(xmin + j, n_in - 1)
            acc += self.hor[idx].astype(np.float64) * k[:, j : j + 1]
        return acc.astype(np.float32)


def _mask(y: np.ndarray, alpha: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """Perceptual shape ``u`` in [0, 1] (texture x luminance x opacity) and a hard cap.

    The cap (grey levels) is a contrast-masking bound: the mark may never be stronger than a
    fraction of the local texture, so flat colour stays (nearly) untouched however little
    texture the image has elsewhere.
    """
    hp = y - box(y, 1)
    act = np.sqrt(power(hp, 1))
    act = min3(act)  # do not bleed strength from edges into neighbouring flat areas
    tex = np.clip(act / 8.0, 0.06, 1.0)
    lum = np.clip(y / 30.0, 0.0, 1.0) * np.clip((255.0 - y) / 45.0, 0.0, 1.0)
    u = tex * np.maximum(lum, 0.02)
    if alpha is not None:
        u = u * np.clip(alpha, 0.0, 1.0) ** 2
    cap = FLAT_AMP + TEX_AMP * act
    return u.astype(np.float32), cap.astype(np.float32)


def amplitude_small(img: Image.Image) -> np.ndarray:
    """The embedding amplitude (grey levels at strength 1) on a grid of ~chip/MASK_PX pixels.

    ``img`` is in L, LA, RGB or RGBA. Upscaled bilinearly to the image size, this is the local
    amplitude of the pattern: the informed extractor uses it to weight what it reads.
    """
    w, h = img.size
    f = min(1.0, MASK_PX / chip_size(w, h))
    ms = (max(1, round(w * f)), max(1, round(h * f)))
    y_small, a_small = _luma_small(img, ms)
    u, cap = _mask(y_small, a_small)
    rms = float(np.sqrt(np.mean(u.astype(np.float64) ** 2)))
    gain = min(MAX_GAIN, TARGET_RMS / max(rms, 1e-6))
    return np.minimum(np.minimum(u * gain, cap), MAX_AMP)


# ----------------------------------------------------------------------------- embed
def embed(image: Image.Image, payload: int, *, key: bytes, strength: float = 1.0) -> Image.Image:
    if isinstance(payload, bool):
        raise MarkError("payload must be an int")
    try:
        payload = operator.index(payload)  # int, numpy integers
    except TypeError:
        raise MarkError("payload must be an int") from None
    if payload < 0 or payload >= 1 << ecc.PAYLOAD_BITS:
        raise MarkError(f"payload must be an unsigned integer < 2**{ecc.PAYLOAD_BITS}")
    if not (strength > 0 and math.isfinite(strength)):
        raise MarkError("strength must be a positive number")
    img, mode = _split(image)
    w, h = img.size
    short = min(w, h)
    if short < MIN_SIDE:
        raise MarkError(f"image too small for the hidden ID: short side {short} < {MIN_SIDE} px")

    amps = _AmpRows(amplitude_small(img) * float(strength), w, h)

    period = tile_period(w, h)
    pat = tile.pattern(bytes(key), payload, period)
    reps_w = -(-w // period)
    # dithered rounding: sub-grey-level amplitudes (flat areas) survive on average; the
    # generator is drawn band after band, which gives the same stream as one full-size draw
    rng = np.random.default_rng(payload ^ 0x5EED)
    nc = 1 if mode in ("L", "LA") else 3
    out = Image.new(mode, (w, h))
    for r0, r1 in _bands(h):
        delta = np.tile(pat[np.arange(r0, r1) % period], (1, reps_w))[:, :w]
        delta *= amps.rows(r0, r1)
        delta += rng.random(delta.shape, dtype=np.float32)
        d16 = np.floor(delta).astype(np.int16)
        arr = np.array(img.crop((0, r0, w, r1)))
        if mode in ("LA", "RGBA"):
            d16[arr[..., -1] == 0] = 0  # fully transparent pixels stay bit-identical
        if arr.ndim == 2:
            arr = np.clip(arr.astype(np.int16) + d16, 0, 255).astype(np.uint8)
        else:
            for c in range(nc):
                arr[..., c] = np.clip(arr[..., c].astype(np.int16) + d16, 0, 255).astype(np.uint8)
        out.paste(Image.fromarray(arr, mode), (0, r0))
    return out


# ----------------------------------------------------------------------------- extract
def _work_size(w: int, h: int) -> tuple[int, int]:
    f = min(1.0, WORK_LONG / max(w, h))
    return (max(1, round(w * f)), max(1, round(h * f)))


def _work_luma(image: Image.Image) -> np.ndarray:
    img, _ = _split(image)
    y, a = _luma_small(img, _work_size(*img.size))
    if a is not None:
        wsum = float(a.sum())
        fill = float((y * a).sum() / wsum) if wsum > 0 else 128.0
        y = y * a + fill * (1.0 - a)
    return y.astype(np.float64)


def _search_range(h: int, w: int) -> tuple[float, float]:
    """Range of tile periods (working pixels) searched by the extractor."""
    return tile.T * 1.7, min(0.62 * max(h, w), tile.T * 11.0)


def _whitener(y: np.ndarray, kind: str = "hp") -> tuple[np.ndarray, np.ndarray]:
    """Spectral gain (rfft layout) and local-RMS normaliser of the residual of ``y``."""
    gain, norm, _ = _whiten(y, kind)
    return gain, norm


@lru_cache(maxsize=4)
def _band_gains(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """The residual's band-pass (rfft layout) for an h × w view, and the "hp" gain (the band
    times one minus the 7 × 7 local mean's response). They depend on the shape alone, and a
    render reads three copies of one shape: made once (read-only; ~8 ms at 1024 px)."""
    rmin, rmax = _search_range(h, w)
    f_lo, f_hi = tile.BAND_LO / rmax, tile.BAND_HI / rmin * 1.1
    fy = np.fft.fftfreq(h)[:, None]
    fx = np.fft.rfftfreq(w)[None, :]
    fr = np.hypot(fx, fy)
    band = np.clip((fr - f_lo) / f_lo, 0, 1) * np.clip((f_hi - fr) / (0.25 * f_hi), 0, 1)
    hp = band * (1.0 - np.sinc(7 * fx) * np.sinc(7 * fy))
    band.flags.writeable = False
    hp.flags.writeable = False
    return band, hp


def _whiten(y: np.ndarray, kind: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gain, normaliser and the band-passed residual before normalisation.

    The residual is what :func:`_residual` needs next: returning it saves the extractor a
    second forward and inverse FFT of the working view per pass (~30 ms at 1024 px).
    """
    h, w = y.shape
    spec = np.fft.rfft2(y - y.mean())
    band, hp_gain = _band_gains(h, w)
    if kind == "white":
        mag = np.abs(spec)
        full = np.concatenate([mag, mag[:, -2:0:-1] if w % 2 == 0 else mag[:, :0:-1]], axis=1)
        full = np.fft.fftshift(full, axes=0)
        sm = box(full, 4)
        sm = np.fft.ifftshift(sm, axes=0)[:, : spec.shape[1]]
        gain = band / (sm + 1e-6)
    else:
        gain = hp_gain
    r = np.fft.irfft2(spec * gain, s=(h, w))
    norm = 1.0 / (np.sqrt(power(r, 6)) + 1e-3 * (r.std() + 1e-12))
    return gain, norm, r


def _residual(y: np.ndarray, params=None, clip: bool = True, kind: str = "hp") -> np.ndarray:
    """Band-passed, locally normalised noise residual of the working luma.

    ``kind="hp"``: image minus its 7x7 local mean (a spatial high-pass; best on painted and
    drawn art). ``kind="white"``: spectral flattening (the spectrum divided by a smoothed
    estimate of its own magnitude; best on pixel-art sheets whose periodic tiles would swamp a
    plain high-pass). Both are band-limited to where the mark can be and normalised by their
    local RMS so strong edges and busy texture do not dominate. ``params`` (from
    :func:`_whitener` of the host) freezes the normaliser: the embedder uses it to predict, in
    linear approximation, what the extractor will see of the mark.
    """
    h, w = y.shape
    if params is not None:
        gain, norm = params
        r = np.fft.irfft2(np.fft.rfft2(y - y.mean()) * gain, s=(h, w)) * norm
    else:
        _, norm, r = _whiten(y, kind)  # the same gain on the same input: the same residual
        r *= norm
    if clip:
        np.clip(r, -2.5, 2.5, out=r)
    return r - r.mean()


def _fold(r: np.ndarray, v1: np.ndarray, v2: np.ndarray) -> tuple[np.ndarray, tuple]:
    """Resample r so that lattice vectors map to FOLD pixels and sum all periods."""
    h, w = r.shape
    B = np.array([[v1[0], v2[0]], [v1[1], v2[1]]]) / FOLD  # input = B @ (u, w)
    Binv = np.linalg.inv(B)
    corners = np.array([[0, 0], [w, 0], [0, h], [w, h]], float).T
    uv = Binv @ corners
    u0, w0 = np.floor(uv.min(axis=1))
    u1, w1 = np.ceil(uv.max(axis=1))
    ow, oh = int(u1 - u0), int(w1 - w0)
    ow = -(-ow // FOLD) * FOLD
    oh = -(-oh // FOLD) * FOLD
    c = B[0, 0] * u0 + B[0, 1] * w0
    f = B[1, 0] * u0 + B[1, 1] * w0
    data = (B[0, 0], B[0, 1], c, B[1, 0], B[1, 1], f)
    im = Image.fromarray(r.astype(np.float32), "F")
    out = np.asarray(im.transform((ow, oh), Image.AFFINE, data, Image.BILINEAR), dtype=np.float64)
    g = out.reshape(oh // FOLD, FOLD, ow // FOLD, FOLD).sum(axis=(0, 2))
    return g, (B, c, f)


def _try_decode(g: np.ndarray, key: bytes, km) -> tuple[int | None, float, tuple[int, int]]:
    ref = tile.sync_reference_fft(key, FOLD)
    xc = np.fft.ifft2(np.fft.fft2(g) * ref).real
    peak = int(np.argmax(xc))
    py, px = divmod(peak, FOLD)
    sd = float(xc.std()) + 1e-12
    z = float((xc.flat[peak] - xc.mean()) / sd)
    if z < Z_MIN:
        return None, z, (px, py)
    aligned = np.roll(g, (-py, -px), axis=(0, 1))
    est = tile.downsample(aligned).ravel()
    d = est[km.data_pos] * km.data_scramble
    soft = np.bincount(km.data_bit, weights=d, minlength=ecc.CODED_BITS)
    bits = ecc.viterbi(soft)
    return ecc.check(bits, km.salt), z, (px, py)


def _candidates(comb: sync.Comb, shape: tuple[int, int], wide: bool = False):
    """Lattice bases (v1 ~ x axis, v2 ~ y axis) to verify, most plausible first."""
    rmin, rmax = _search_range(*shape)
    found = comb.wide_search(rmin, rmax) if wide else comb.search(rmin, rmax, N_CAND)
    for sc, px, py, th in found:
        if sc < COMB_MIN:
            continue
        many = shape[0] * shape[1] / (px * py) >= GATE_PERIODS
        if many and comb.scan_z(sc, rmin, rmax) < SCAN_Z_MIN:
            continue
        yield _basis(px, py, th)


def _basis(px: float, py: float, th: float) -> tuple[np.ndarray, np.ndarray]:
    c, s = math.cos(th), math.sin(th)
    return np.array([px * c, px * s]), np.array([-py * s, py * c])


def extract_detail(image: Image.Image, *, key: bytes) -> Detection | None:
    """Like :func:`extract`, with the detection's confidence and recovered geometry."""
    key = bytes(key)
    km = tile.key_material(key)
    w0, h0 = image.size
    if min(w0, h0) < 2 * _search_range(1, 1)[0]:
        return None
    y = _work_luma(image)
    # A second, half-resolution view: the residual filter is tuned for chips of ~2-4 working
    # pixels, and copies that were never downscaled (small originals) have bigger chips.
    views = [y]
    if max(y.shape) >= 2 * HALF_MIN:
        views.append(_resize_f(y, (y.shape[1] // 2, y.shape[0] // 2)).astype(np.float64))
    # The wide pass reads the same high-pass residual and spectrum as the first: each is made
    # once per view and kind, and a lattice already verified is not folded again.
    residuals: dict[tuple[int, str], tuple[np.ndarray, sync.Comb]] = {}
    tried: set[tuple[float, ...]] = set()
    passes = [(i, v, kind, wide) for kind, wide in PASSES for i, v in enumerate(views)]
    for vi, yv, kind, wide in passes:
        w = yv.shape[1]
        if (vi, kind) not in residuals:
            r = _residual(yv, kind=kind)
            residuals[vi, kind] = r, sync.Comb(r)
        r, comb = residuals[vi, kind]
        for v1, v2 in _candidates(comb, r.shape, wide):
            lattice = (vi, *v1, *v2)
            if lattice in tried:
                continue
            tried.add(lattice)
            g, _ = _fold(r, v1, v2)
            for mirrored in (False, True):
                gm = g[:, ::-1] if mirrored else g
                payload, z, (px, py) = _try_decode(gm, key, km)
                if payload is None:
                    continue
                s_recv = w0 / w
                p1 = float(np.hypot(*v1)) * s_recv
                p2 = float(np.hypot(*v2)) * s_recv
                return Detection(
                    payload=payload,
                    confidence=z,
                    period=(p1, p2),
                    rotation_deg=math.degrees(math.atan2(v1[1], v1[0])),
                    mirrored=mirrored,
                    offset=(float(px) / FOLD * p1, float(py) / FOLD * p2),
                    chip_px=float(np.sqrt(abs(v1[0] * v2[1] - v1[1] * v2[0]))) * s_recv / tile.T,
                )
    return None


def extract(image: Image.Image, *, key: bytes) -> int | None:
    d = extract_detail(image, key=key)
    return None if d is None else d.payload
