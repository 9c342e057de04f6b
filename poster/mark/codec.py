"""Embedding and extraction of the hidden ID. See ``poster/mark/__init__.py`` for the design."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image

from . import ecc, tile
from ._filters import box, min3

MIN_SIDE = 256  # shortest accepted image side, in pixels

# --- embedding parameters -------------------------------------------------------------------
TARGET_RMS = 1.8  # mean embedding amplitude (grey levels RMS) at strength 1 -> PSNR ~ 43 dB
MAX_GAIN = 5.0  # cap on the content-adaptive gain (flat images are not pushed harder than this)
MAX_AMP = 7.0  # cap on the local amplitude (grey levels) at strength 1
MASK_SIDE = 512  # the perceptual mask is computed at this short side

# --- extraction parameters ------------------------------------------------------------------
WORK_SIDE = 384  # received image is resampled so its short side is this many pixels
FOLD = 96  # folded tile resolution (3 samples per chip)
Z_MIN = 5.0  # minimum sync-peak z-score before a decode is attempted
N_CAND = 4


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
    scale: float  # received period / nominal period for the received short side


def chip_size(short: int) -> float:
    """Chip size in original pixels: 128 chips over the short side, >= 6 px down to ~528 px."""
    return max(short / 128.0, min(6.0, short / 88.0))


def tile_period(short: int) -> int:
    return int(round(tile.T * chip_size(short)))


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


def _luma_small(image: Image.Image, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray | None]:
    """Luma (float32, 0..255) and alpha (0..1 or None) resampled to ``size``."""
    alpha = None
    if image.mode in ("LA", "RGBA"):
        a = image.getchannel("A")
        alpha = np.asarray(a.convert("F").resize(size, Image.BILINEAR)) / 255.0
    y = image.convert("L") if image.mode != "L" else image
    y = np.asarray(y.convert("F").resize(size, Image.BILINEAR))
    return y.astype(np.float32), alpha


def _mask(y: np.ndarray, alpha: np.ndarray | None) -> np.ndarray:
    """Perceptual amplitude in [0, 1]: texture masking x luminance x opacity."""
    hp = y - box(y, 1)
    act = np.sqrt(box(hp * hp, 2))
    act = min3(act)  # do not bleed strength from edges into neighbouring flat areas
    tex = np.clip(act / 8.0, 0.06, 1.0)
    lum = np.clip(y / 30.0, 0.0, 1.0) * np.clip((255.0 - y) / 45.0, 0.0, 1.0)
    u = tex * np.maximum(lum, 0.02)
    if alpha is not None:
        u = u * np.clip(alpha, 0.0, 1.0) ** 2
    return u.astype(np.float32)


# ----------------------------------------------------------------------------- embed
def embed(image: Image.Image, payload: int, *, key: bytes, strength: float = 1.0) -> Image.Image:
    if not isinstance(payload, int) or isinstance(payload, bool):
        raise MarkError("payload must be an int")
    if payload < 0 or payload >= 1 << ecc.PAYLOAD_BITS:
        raise MarkError(f"payload must be an unsigned integer < 2**{ecc.PAYLOAD_BITS}")
    if not (strength > 0 and math.isfinite(strength)):
        raise MarkError("strength must be a positive number")
    img, mode = _split(image)
    w, h = img.size
    short = min(w, h)
    if short < MIN_SIDE:
        raise MarkError(f"image too small for the hidden ID: short side {short} < {MIN_SIDE} px")

    f = min(1.0, MASK_SIDE / short)
    ms = (max(1, round(w * f)), max(1, round(h * f)))
    y_small, a_small = _luma_small(img, ms)
    u = _mask(y_small, a_small)
    rms = float(np.sqrt(np.mean(u.astype(np.float64) ** 2)))
    gain = min(MAX_GAIN, TARGET_RMS / max(rms, 1e-6))
    amp_small = np.minimum(u * gain, MAX_AMP) * float(strength)
    amp = _resize_f(amp_small, (w, h)) if ms != (w, h) else amp_small

    period = tile_period(short)
    pat = tile.pattern(bytes(key), payload, period)
    reps = (-(-h // period), -(-w // period))
    delta = np.tile(pat, reps)[:h, :w]
    delta *= amp
    d16 = np.rint(delta).astype(np.int16)

    arr = np.asarray(img)
    if arr.ndim == 2:
        out = np.clip(arr.astype(np.int16) + d16, 0, 255).astype(np.uint8)
    else:
        out = arr.copy()
        nc = 1 if mode in ("L", "LA") else 3
        for c in range(nc):
            out[..., c] = np.clip(arr[..., c].astype(np.int16) + d16, 0, 255).astype(np.uint8)
    return Image.fromarray(out, mode)


# ----------------------------------------------------------------------------- extract
def _work_luma(image: Image.Image) -> np.ndarray:
    img, _ = _split(image)
    w, h = img.size
    f = WORK_SIDE / min(w, h)
    size = (max(1, round(w * f)), max(1, round(h * f)))
    y, a = _luma_small(img, size)
    if a is not None:
        wsum = float(a.sum())
        fill = float((y * a).sum() / wsum) if wsum > 0 else 128.0
        y = y * a + fill * (1.0 - a)
    return y.astype(np.float64)


def _residual(y: np.ndarray, f_lo: float, f_hi: float) -> np.ndarray:
    """Whitened, band-passed, locally normalised noise residual of the working luma.

    The spectrum is divided by a smoothed estimate of its own magnitude (spectral flattening:
    image content is ~1/f, the mark is flat), restricted to the band the mark can occupy, and
    the result is normalised by its local RMS so strong edges and busy texture do not dominate.
    """
    h, w = y.shape
    spec = np.fft.rfft2(y - y.mean())
    mag = np.abs(spec)
    full = np.concatenate([mag, mag[:, -2:0:-1] if w % 2 == 0 else mag[:, :0:-1]], axis=1)
    full = np.fft.fftshift(full, axes=0)
    sm = box(full, 4)
    sm = np.fft.ifftshift(sm, axes=0)[:, : spec.shape[1]]
    fy = np.fft.fftfreq(h)[:, None]
    fx = np.fft.rfftfreq(w)[None, :]
    fr = np.hypot(fx, fy)
    band = np.clip((fr - f_lo) / f_lo, 0, 1) * np.clip((f_hi - fr) / (0.25 * f_hi) , 0, 1)
    r = np.fft.irfft2(spec * band / (sm + 1e-6), s=(h, w))
    r = r / (np.sqrt(box(r * r, 6)) + 1e-3 * (r.std() + 1e-12))
    np.clip(r, -2.5, 2.5, out=r)
    return r - r.mean()


def _fast_len(n: int) -> int:
    m = n
    while True:
        k = m
        for p in (2, 3, 5):
            while k % p == 0:
                k //= p
        if k == 1:
            return m
        m += 1


class _Lattice:
    """Autocorrelation of the residual and the search for the tile lattice."""

    def __init__(self, r: np.ndarray, rmin: float, rmax: float):
        self.h, self.w = h, w = r.shape
        self.ph, self.pw = _fast_len(2 * h), _fast_len(2 * w)
        spec = np.fft.rfft2(r, s=(self.ph, self.pw))
        ac = np.fft.irfft2(spec.real**2 + spec.imag**2, s=(self.ph, self.pw))
        ac /= ac[0, 0] + 1e-12
        self.ac = ac
        R = int(math.ceil(rmax)) + 3
        self.R = R
        lag = np.arange(-R, R + 1)
        sub = ac[np.ix_(lag % self.ph, lag % self.pw)]
        ov = np.clip((h - np.abs(lag))[:, None] / h, 0.05, 1) * np.clip(
            (w - np.abs(lag))[None, :] / w, 0.05, 1
        )
        sub = sub / ov
        score = sub - box(sub, 5)
        self.score = score
        dy, dx = np.meshgrid(lag, lag, indexing="ij")
        rad = np.hypot(dx, dy)
        ring = (rad >= rmin) & (rad <= rmax)
        loc = score >= _max3(score)
        self.sector_x = ring & loc & (dx > 0) & (np.abs(dy) <= 0.2 * dx)
        self.sector_y = ring & loc & (dy > 0) & (np.abs(dx) <= 0.2 * dy)
        self.dx, self.dy = dx, dy

    def top(self, sector: np.ndarray, n: int) -> list[tuple[float, np.ndarray]]:
        idx = np.flatnonzero(sector)
        if idx.size == 0:
            return []
        vals = self.score.ravel()[idx]
        order = np.argsort(vals)[::-1][:n]
        return [
            (float(vals[o]), np.array([self.dx.ravel()[idx[o]], self.dy.ravel()[idx[o]]], float))
            for o in order
        ]

    def _peak(self, p: np.ndarray) -> np.ndarray | None:
        """Sub-pixel local maximum of the autocorrelation near lag p=(x, y)."""
        x0, y0 = int(round(p[0])), int(round(p[1]))
        best, by, bx = -np.inf, 0, 0
        for yy in range(y0 - 2, y0 + 3):
            for xx in range(x0 - 2, x0 + 3):
                v = self.ac[yy % self.ph, xx % self.pw]
                if v > best:
                    best, by, bx = v, yy, xx

        def g(yy, xx):
            return self.ac[yy % self.ph, xx % self.pw]

        c = g(by, bx)
        ox = _parab(g(by, bx - 1), c, g(by, bx + 1))
        oy = _parab(g(by - 1, bx), c, g(by + 1, bx))
        return np.array([bx + ox, by + oy])

    def refine(self, v: np.ndarray) -> np.ndarray:
        num, den = np.zeros(2), 0.0
        k = 1
        cur = v.copy()
        while abs(k * cur[0]) < 0.75 * self.w and abs(k * cur[1]) < 0.75 * self.h:
            p = self._peak(k * cur)
            if p is None:
                break
            num += k * p
            den += k * k
            cur = num / den
            k += 1
        return cur


def _max3(a: np.ndarray) -> np.ndarray:
    return -min3(-a)


def _parab(a: float, b: float, c: float) -> float:
    d = a - 2 * b + c
    if d >= 0:
        return 0.0
    return float(np.clip(0.5 * (a - c) / d, -0.5, 0.5))


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


def extract_detail(image: Image.Image, *, key: bytes) -> Detection | None:
    key = bytes(key)
    km = tile.key_material(key)
    w0, h0 = image.size
    if min(w0, h0) < 32:
        return None
    y = _work_luma(image)
    h, w = y.shape
    nominal = WORK_SIDE * tile.T / 128.0  # period for 128 chips per short side
    rmin, rmax = 0.6 * nominal, min(2.4 * nominal, 0.62 * max(h, w))
    r = _residual(y, tile.BAND_LO / rmax, tile.BAND_HI / rmin * 1.1)
    lat = _Lattice(r, rmin, rmax)
    cx = lat.top(lat.sector_x, N_CAND)
    cy = lat.top(lat.sector_y, N_CAND)
    combos: list[tuple[float, np.ndarray, np.ndarray]] = []
    for sx, vx in cx:
        for sy, vy in cy:
            combos.append((sx + sy, vx, vy))
    for sx, vx in cx:
        combos.append((sx * 1.5, vx, np.array([-vx[1], vx[0]])))
    for sy, vy in cy:
        combos.append((sy * 1.5, np.array([vy[1], -vy[0]]), vy))
    combos.sort(key=lambda t: -t[0])
    seen: list[tuple[np.ndarray, np.ndarray]] = []
    for _, a, b in combos[:20]:
        if any(np.abs(a - p).max() < 1.5 and np.abs(b - q).max() < 1.5 for p, q in seen):
            continue
        seen.append((a, b))
        v1, v2 = lat.refine(a), lat.refine(b)
        if abs(np.cross(v1, v2)) < 1e-3 * np.dot(v1, v1):
            continue
        g, (B, c, f) = _fold(r, v1, v2)
        for mirrored in (False, True):
            gm = g[:, ::-1] if mirrored else g
            payload, z, (px, py) = _try_decode(gm, key, km)
            if payload is not None:
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
                    scale=float(np.sqrt(abs(np.cross(v1, v2)))) / nominal,
                )
    return None


def extract(image: Image.Image, *, key: bytes) -> int | None:
    d = extract_detail(image, key=key)
    return None if d is None else d.payload
