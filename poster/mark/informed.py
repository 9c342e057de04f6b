"""Informed extraction: reading the hidden ID of a copy with the unmarked image at hand.

Blind extraction (:func:`poster.mark.extract`) has to tell the mark from the image it is hidden
in; on small busy photos, sparse pixel art and sketches on white paper the image's own
texture in the mark's band is several times stronger than the mark, and the ID is lost. The
artist, though, has the original. With it, the image can be *subtracted*:

1. **Registration.** The copy is located in the original: a coarse search over mirror and
   scale (the copy's size ratio, then a grid for crops and added borders) by phase
   correlation of locally normalised high-pass images, then a Gauss-Newton refinement of a
   full affine map (scale, aspect, rotation, shear, offset) over a pyramid up to the working
   resolution (<= 1024 px long edge of the original).
2. **Prediction.** When the copy is an axis-aligned resize / crop / border of the original
   (most re-posts and screenshots), the original is resampled *exactly as the copy was*:
   in the copy's own pixels, through Pillow's bilinear, bicubic, Lanczos and box filters,
   with the scale and offset refined to a hundredth of a pixel by Gauss-Newton on nine
   patches; a tone curve and a least-squares mix of the filters and a blur are fitted
   and subtracted there (downscaled pixel art: residual ~0.2x the mark instead of ~10x).
   Otherwise (turned or sheared copies, or when that read fails) the copy is resampled
   onto the original's working grid and the original, mapped through a fitted tone curve
   and a least-squares mix of blurred copies of itself, is subtracted there.
3. **Decoding.** What remains is the mark plus what the attacks added. It is weighted by
   the amplitude the embedder gave each place (known from the original) over the local
   residual power, folded on the tile lattice, whose period and origin are known in the
   original's frame, and decoded exactly like a blind read: sync peak, Viterbi, CRC. If the
   sync is found but the CRC fails, the tentative answer is redrawn as a pattern and each
   place re-weighted by how much of it survives there (lossy codecs wipe flat areas and keep
   edges), up to two more decodes. The CRC check guards every decode as it guards the
   blind read: a wrong original, a wrong key or an unmarked copy give ``None`` (at most 6
   CRC-checked decodes per background colour: <= 18 / 2^32 per copy).

The reference is the image as it was before marking, or the artist's original it was made
from (protection layers such as noise, a resized copy or a visible watermark only add to what
is left over; the registration and the occlusion mask take care of size and overlays). Never
a *marked* image with its mark taken out: whatever of that mark survived the removal would
bias the read towards that ID.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import numpy as np
from PIL import Image, ImageColor

from . import ecc, tile
from ._filters import box, power
from .codec import (
    MIN_SIDE,
    WORK_LONG,
    Z_MIN,
    Detection,
    _fold,
    _luma_small,
    _resize_f,
    _split,
    amplitude_small,
    chip_size,
    tile_period,
)

COARSE_LONG = 192  # long edge of the coarse registration level (original's frame)
COARSE_R = 3  # radius of the high-pass used at the coarse level (robust to small turns)
MIN_NCC = 0.1  # overlap correlation of the registered high-pass images to attempt a decode
MIN_OVERLAP = 0.3  # fraction of the original that must be covered by the copy
# ... when the geometry is known (local features found where the copy sits): a crop down to
# a tenth of the original can be read, since no blind search has to find it
KNOWN_OVERLAP = 0.08
OCCLUDED_MIN = 6.0  # local mean difference (grey levels) above which a place is not the original
INFORMED_LONG = 1024  # most working pixels on the long edge (1024 at least)


@dataclass(frozen=True)
class Registration:
    """Affine map from the original's working frame to the (pre-scaled) copy."""

    a: np.ndarray  # 2 x 3: (u, v) = a @ (x, y, 1), continuous pixel coordinates
    mirrored: bool  # ``a`` applies to the horizontally flipped copy
    ncc: float  # correlation of the registered high-pass images


def _features(y: np.ndarray, r: int = 2) -> np.ndarray:
    """Locally normalised high-pass: insensitive to brightness, contrast and gamma changes."""
    hp = y - box(y, r)
    return hp / (np.sqrt(power(hp, 3 * r)) + 2.0)


def _resize_to(y: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    if (y.shape[1], y.shape[0]) == size:
        return y
    resample = Image.BILINEAR if size[0] > y.shape[1] else Image.BOX
    return _resize_f(y, size, resample).astype(np.float64)


def _flatten(image: Image.Image, background: tuple[int, int, int]) -> Image.Image:
    """``image`` in L or RGB, composited on ``background`` where transparent."""
    img, _ = _split(image)
    if img.mode in ("LA", "RGBA"):
        base = Image.new("RGBA", img.size, (*background, 255))
        img = Image.alpha_composite(base, img.convert("RGBA")).convert("RGB")
    return img


def _luma(
    image: Image.Image,
    long_max: int | None = None,
    background: tuple[int, int, int] = (255, 255, 255),
    size: tuple[int, int] | None = None,
) -> np.ndarray:
    """Luma (float64) composited on ``background`` where transparent, optionally downscaled.

    Composited at full size first, as a platform flattens the image: the colour under
    transparent pixels is arbitrary and must not leak into the edges of opaque shapes.
    """
    img = _flatten(image, background)
    w, h = img.size
    if size is None:
        f = 1.0 if long_max is None else min(1.0, long_max / max(w, h))
        size = (max(1, round(w * f)), max(1, round(h * f)))
    y, _ = _luma_small(img, size)
    return y.astype(np.float64)


def _warp(y: np.ndarray, a: np.ndarray, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """``y`` sampled at a @ (x, y, 1) for every pixel of an output of ``size``; and validity."""
    data = (a[0, 0], a[0, 1], a[0, 2], a[1, 0], a[1, 1], a[1, 2])
    im = Image.fromarray(y.astype(np.float32), "F")
    out = np.asarray(im.transform(size, Image.AFFINE, data, Image.BILINEAR), dtype=np.float64)
    w, h = size
    xx = np.arange(w) + 0.5
    yy = (np.arange(h) + 0.5)[:, None]
    u = a[0, 0] * xx + a[0, 1] * yy + a[0, 2]
    v = a[1, 0] * xx + a[1, 1] * yy + a[1, 2]
    hh, ww = y.shape
    valid = (u >= 1.0) & (u <= ww - 1.0) & (v >= 1.0) & (v <= hh - 1.0)
    return out, valid


def _phase_offset(ref: np.ndarray, mov: np.ndarray) -> tuple[float, float, float]:
    """Translation (dx, dy) with mov(x) ~ ref(x + (dx, dy)) and the overlap correlation."""
    hh = max(ref.shape[0], mov.shape[0]) * 2
    ww = max(ref.shape[1], mov.shape[1]) * 2
    fa = np.fft.rfft2(ref, s=(hh, ww))
    fb = np.fft.rfft2(mov, s=(hh, ww))
    cross = fa * np.conj(fb)
    cross /= np.abs(cross) + 1e-9
    pc = np.fft.irfft2(cross, s=(hh, ww))
    best = (-2.0, 0.0, 0.0)
    for idx in np.argsort(pc.ravel())[::-1][:4]:
        dy, dx = divmod(int(idx), ww)
        dy = dy - hh if dy > hh // 2 else dy
        dx = dx - ww if dx > ww // 2 else dx
        c = _overlap_ncc(ref, mov, dx, dy)
        if c > best[0]:
            best = (c, float(dx), float(dy))
    return best[1], best[2], best[0]


def _overlap_ncc(ref: np.ndarray, mov: np.ndarray, dx: int, dy: int) -> float:
    y0, x0 = max(0, dy), max(0, dx)
    y1 = min(ref.shape[0], dy + mov.shape[0])
    x1 = min(ref.shape[1], dx + mov.shape[1])
    if y1 - y0 < 8 or x1 - x0 < 8:
        return -1.0
    if (y1 - y0) * (x1 - x0) < MIN_OVERLAP * ref.size:
        return -1.0
    p = ref[y0:y1, x0:x1]
    q = mov[y0 - dy : y1 - dy, x0 - dx : x1 - dx]
    p = p - p.mean()
    q = q - q.mean()
    return float((p * q).sum() / (np.sqrt((p * p).sum() * (q * q).sum()) + 1e-9))


def _refine(
    f_ref: np.ndarray,
    f_mov: np.ndarray,
    a: np.ndarray,
    iters: int,
    stride: int = 1,
    min_overlap: float = MIN_OVERLAP,
) -> tuple[np.ndarray, float]:
    """Gauss-Newton on the 6 affine parameters (forward compositional, symmetric gradients),
    on every ``stride``-th pixel (big levels need far fewer than all)."""
    h, w = f_ref.shape
    size = (w, h)
    s = float(max(w, h))
    sub = (slice(None, None, stride), slice(None, None, stride))
    xx = ((np.arange(w) + 0.5) / s)[None, :].repeat(h, 0)[sub]
    yy = ((np.arange(h) + 0.5) / s)[:, None].repeat(w, 1)[sub]
    gry, grx = (g[sub] for g in np.gradient(f_ref))
    ref = f_ref[sub]
    rad = max(1, 4 // stride)
    ref_energy = power(ref, rad)
    best_a, best_ncc = a, -1.0
    for it in range(iters + 1):
        warped_full, valid_full = _warp(f_mov, a, size)
        if valid_full.mean() < min_overlap:
            break
        warped, m = warped_full[sub], valid_full[sub].ravel()
        p, q = ref.ravel()[m], warped.ravel()[m]
        p, q = p - p.mean(), q - q.mean()
        ncc = float((p * q).sum() / (np.sqrt((p * p).sum() * (q * q).sum()) + 1e-9))
        if ncc > best_ncc:  # Gauss-Newton can wander on weak images: keep the best seen
            best_a, best_ncc = a, ncc
        if it == iters:
            break
        wy, wx = (g[sub] for g in np.gradient(warped_full))
        gx = (0.5 * (wx + grx)).ravel()[m]
        gy = (0.5 * (wy + gry)).ravel()[m]
        e = (warped - ref).ravel()[m]
        # places that do not look like the original at all (an added border, a caption) must
        # not pull: weight by the local correlation of the two images
        num = box(warped * ref, rad)
        den = np.sqrt(power(warped, rad) * ref_energy) + 1e-6
        wt = np.clip(num / den, 0.0, 1.0).ravel()[m]
        x, y = xx.ravel()[m], yy.ravel()[m]
        # the Jacobian one parameter per row: six contiguous rows and two matrix products
        # instead of an N x 6 stack (at 1024 px that stack and its products were half a step)
        jac = np.empty((6, len(e)))
        np.multiply(gx, x, out=jac[0])
        np.multiply(gx, y, out=jac[1])
        jac[2] = gx
        np.multiply(gy, x, out=jac[3])
        np.multiply(gy, y, out=jac[4])
        jac[5] = gy
        jac *= s
        jw = jac * wt
        hess = jw @ jac.T + 1e-6 * np.eye(6) * len(e)
        d = -np.linalg.solve(hess, jw @ e)
        # compose: x -> x + D x, in normalised coordinates
        dm = np.array([[d[0], d[1], d[2] * s], [d[3], d[4], d[5] * s], [0.0, 0.0, 0.0]])
        full = np.vstack([a, [0.0, 0.0, 1.0]])
        a = (full @ (np.eye(3) + dm))[:2]
        if np.abs(d[[0, 1, 3, 4]]).max() < 1e-4 and np.abs(d[[2, 5]]).max() * s < 0.01:
            iters = it + 1  # converged: measure this last step, then stop
    return best_a, best_ncc


def register(host: np.ndarray, copy: np.ndarray) -> Registration | None:
    """Locate ``copy`` (luma) in ``host`` (luma, the original's working frame)."""
    hh, hw = host.shape
    ch, cw = copy.shape
    cs = COARSE_LONG / max(hh, hw)
    csize = (max(8, round(hw * cs)), max(8, round(hh * cs)))
    f_host = _features(_resize_to(host, csize), COARSE_R)
    ratio_w, ratio_h = cw / hw, ch / hh  # copy pixels per host pixel, if not cropped
    hyps: list[tuple[float, float]] = [(ratio_w, ratio_h)]
    # a crop of the original: scale >= the larger size ratio; added borders: a bit below it
    base = max(ratio_w, ratio_h)
    ks = [1.03**i for i in range(-12, 13)]
    hyps += [(base * k, base * k) for k in sorted(ks, key=lambda k: abs(math.log(k)))]
    best: tuple[float, bool, np.ndarray, tuple[float, float]] | None = None
    flipped = copy[:, ::-1]

    def trial(sx: float, sy: float, mirrored: bool, deg: float) -> None:
        nonlocal best
        src = flipped if mirrored else copy
        # the copy at the coarse scale of the host, turned back by ``deg``
        size = (max(8, round(cw / sx * cs)), max(8, round(ch / sy * cs)))
        if size[0] > 4 * csize[0] or size[1] > 4 * csize[1]:
            return
        small = _resize_to(src, size)
        rot = np.eye(3)
        if deg:
            t = math.radians(deg)
            c, s = math.cos(t), math.sin(t)
            cx, cy = size[0] / 2, size[1] / 2
            rot = np.array([[c, -s, cx - c * cx + s * cy], [s, c, cy - s * cx - c * cy], [0, 0, 1]])
            small, valid = _warp(small, rot[:2], size)
            small = np.where(valid, small, small[valid].mean() if valid.any() else 0.0)
        dx, dy, score = _phase_offset(f_host, _features(small, COARSE_R))
        shift = np.array([[1.0, 0.0, -dx], [0.0, 1.0, -dy], [0.0, 0.0, 1.0]])
        to_copy = np.diag([cw / size[0], ch / size[1], 1.0])
        if best is None or score > best[0]:
            best = (score, mirrored, (to_copy @ rot @ shift)[:2], (sx, sy))

    for sx, sy in hyps:
        for mirrored in (False, True):
            trial(sx, sy, mirrored, 0.0)
        if best is not None and best[0] > 0.5:
            break  # a clear match (the first hypothesis: the whole copy is the whole original)
    if best is None or best[0] < 0.5:
        # a turned copy: small rotations at the size ratio
        scales = [hyps[0]] if best is None or best[3] == hyps[0] else [hyps[0], best[3]]
        for deg in (1.5, -1.5, 3.0, -3.0, 4.5, -4.5):
            for sx, sy in scales:
                for mirrored in (False, True):
                    trial(sx, sy, mirrored, deg)
    if best is None or best[0] < 0.1:
        return None
    _, mirrored, a_coarse, _ = best
    a, ncc = _pyramid(host, flipped if mirrored else copy, a_coarse)
    if ncc < MIN_NCC:
        return None
    return Registration(a, mirrored, ncc)


def register_known(host: np.ndarray, copy: np.ndarray, a_host: np.ndarray) -> Registration | None:
    """Refine a known map (``a_host``: the original's working frame -> copy pixels, e.g. from
    matched local features) instead of searching for it; crops down to KNOWN_OVERLAP."""
    hh, hw = host.shape
    cs = COARSE_LONG / max(hh, hw)
    a = a_host.copy()
    a[:, :2] = a[:, :2] / cs  # the coarse frame is the host scaled by cs
    a, ncc = _pyramid(host, copy, a, KNOWN_OVERLAP)
    if ncc < MIN_NCC:
        return None
    return Registration(a, False, ncc)


def _pyramid(
    host: np.ndarray, src: np.ndarray, a_coarse: np.ndarray, min_overlap: float = MIN_OVERLAP
) -> tuple[np.ndarray, float]:
    """Gauss-Newton refinement of ``a_coarse`` (coarse host frame -> ``src`` pixels) over a
    pyramid up to the host's resolution; the map at the host's frame and its correlation."""
    hh, hw = host.shape
    ch, cw = src.shape
    # pyramid refinement; the copy is pre-scaled to about each level's resolution
    a = a_coarse.copy()  # coarse host frame -> copy pixels
    ncc = -1.0
    levels = sorted({COARSE_LONG, 384, 768, max(hh, hw)})
    prev_long = COARSE_LONG
    for long in levels:
        if long > max(hh, hw):
            continue
        f = long / max(hh, hw)
        size = (max(8, round(hw * f)), max(8, round(hh * f)))
        a = a.copy()
        a[:, :2] *= prev_long / long
        prev_long = long
        scale = math.sqrt(abs(np.linalg.det(a[:, :2])))  # copy pixels per level pixel
        pre = min(1.0, 1.0 / scale)
        src_l = _resize_to(src, (max(8, round(cw * pre)), max(8, round(ch * pre)))) if pre < 1.0 else src
        pre_x = src_l.shape[1] / cw
        pre_y = src_l.shape[0] / ch
        a_l = a * np.array([[pre_x], [pre_y]])
        r = 1 if long <= 384 else 2
        iters, stride = (25, 1) if long < 768 else (8, 1)
        a_l, ncc = _refine(
            _features(_resize_to(host, size), r), _features(src_l, r), a_l, iters, stride, min_overlap
        )
        a = a_l / np.array([[pre_x], [pre_y]])
    return a, ncc


def _tone_curve(x: np.ndarray, y: np.ndarray, bins: int = 48) -> tuple[np.ndarray, np.ndarray]:
    """Knots of a piecewise-linear fit of y against x (1-D, x in 0..255): the copy's tone curve."""
    idx = np.clip((x * (bins / 255.0)).astype(np.int64), 0, bins - 1)
    cnt = np.bincount(idx, minlength=bins)
    sx = np.bincount(idx, weights=x, minlength=bins)
    sy = np.bincount(idx, weights=y, minlength=bins)
    ok = cnt >= 20
    if ok.sum() < 2:  # (nearly) one tone: only an offset can be told
        off = float(y.mean() - x.mean()) if len(x) else 0.0
        return np.array([0.0, 255.0]), np.array([off, 255.0 + off])
    return sx[ok] / cnt[ok], sy[ok] / cnt[ok]


BLURS = (0.6, 1.2, 2.4)  # Gaussian blurs (working pixels) mixed into the prediction


def _mix(basis: list[np.ndarray], seen: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """The least-squares combination of ``basis`` images (and a constant) closest to ``seen``
    where ``valid``."""
    basis = [*basis, np.ones_like(seen)]
    wt = valid.astype(np.float64)
    n = len(basis)
    gram = np.empty((n, n))
    rhs = np.empty(n)
    weighted = [b * wt for b in basis]
    for i in range(n):
        rhs[i] = float(np.vdot(weighted[i], seen))
        for j in range(i, n):
            gram[i, j] = gram[j, i] = float(np.vdot(weighted[i], basis[j]))
    coef = np.linalg.lstsq(gram, rhs, rcond=None)[0]
    return sum(c * b for c, b in zip(coef, basis, strict=True))


def _predict(host: np.ndarray, seen: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """The copy as the original would look through the same tone and blur changes: the tone
    curve fitted on the overlap, then a least-squares mix of the toned original and blurred
    copies of it (blur, resampling and compression softness)."""
    m = valid.ravel()
    kx, ky = _tone_curve(host.ravel()[m], seen.ravel()[m])
    tone = np.interp(host, kx, ky)
    h, w = tone.shape
    mean = float(tone.mean())
    spec = np.fft.rfft2(tone - mean)
    f2 = np.fft.fftfreq(h)[:, None] ** 2 + np.fft.rfftfreq(w)[None, :] ** 2
    basis = [tone]
    for sigma in BLURS:
        basis.append(np.fft.irfft2(spec * np.exp(-2.0 * math.pi**2 * sigma**2 * f2), s=(h, w)) + mean)
    return _mix(basis, seen, valid)


def _unoccluded(
    seen: np.ndarray,
    pred: np.ndarray,
    valid: np.ndarray,
    refit: Callable[[np.ndarray], np.ndarray],
    min_overlap: float = MIN_OVERLAP,
) -> tuple[np.ndarray, np.ndarray] | None:
    """What does not follow the original at all (an added border, a caption, a sticker) is
    left out, and the prediction fitted again without it (``refit(valid) -> prediction``)."""
    for _ in range(4):
        loc = box(np.abs(seen - pred), 4)
        bad = loc > max(OCCLUDED_MIN, 4.0 * float(np.median(loc[valid])))
        if (bad & valid).sum() < 0.002 * valid.sum():
            break
        valid = valid & (box(bad.astype(np.float64), 4) < 1e-6)
        if valid.mean() < min_overlap * 0.5:
            return None
        pred = refit(valid)
    return pred, valid


def backgrounds_for(colour: str) -> tuple[tuple[int, int, int], ...]:
    """Colours transparent art may have been flattened on: the post's own (a CSS-style colour
    such as ``#ffffff``), then white and black. ValueError if ``colour`` does not parse."""
    r, g, b = ImageColor.getrgb(colour)[:3]
    return tuple(dict.fromkeys([(r, g, b), (255, 255, 255), (0, 0, 0)]))


def _band(d: np.ndarray, px: float, py: float) -> np.ndarray:
    """``d`` limited to the mark's band (chip frequencies BAND_LO..BAND_HI per tile period)."""
    h, w = d.shape
    fy = np.fft.fftfreq(h)[:, None] * py
    fx = np.fft.rfftfreq(w)[None, :] * px
    r = np.hypot(fx, fy)
    gain = np.clip((r - tile.BAND_LO + 1.5) / 1.5, 0, 1) * np.clip((tile.BAND_HI + 1.5 - r) / 1.5, 0, 1)
    return np.fft.irfft2(np.fft.rfft2(d) * gain, s=(h, w))


SHIFTS = np.arange(-1.5, 1.51, 0.25)  # fractional tile offsets (fold samples) searched


def _decode_near_origin(
    g: np.ndarray, key: bytes, km: tile.KeyMaterial
) -> tuple[int | None, float, np.ndarray | None]:
    """Decode the folded tile at the best *fractional* alignment near the known origin.

    The tile origin is known here (the original's top-left corner), up to the half-pixel
    conventions of the resampling chain: a third of a chip. An integer-sample search (the
    blind reader's) can land one sample off on weak marks, so the sync correlation is
    evaluated at quarter-sample shifts within +-1.5 samples and the tile shifted exactly.
    Returns the payload (None unless the CRC matches), the sync peak's z-score and the
    decoded info bits (None when the sync peak is too weak to attempt a decode).
    """
    n = g.shape[0]
    spec = np.fft.fft2(g)
    prod = spec * tile.sync_reference_fft(key, n)
    k = np.fft.fftfreq(n) * n
    phase = np.exp(2j * np.pi * np.outer(SHIFTS, k) / n)  # (shifts, n)
    corr = np.einsum("ay,yx,bx->ab", phase, prod, phase).real / (n * n)
    iy, ix = np.unravel_index(int(np.argmax(corr)), corr.shape)
    xc = np.fft.ifft2(prod).real
    z = float((corr[iy, ix] - xc.mean()) / (xc.std() + 1e-12))
    if z < Z_MIN:
        return None, z, None
    ramp = np.outer(phase[iy], phase[ix])
    aligned = np.fft.ifft2(spec * ramp).real
    est = tile.downsample(aligned).ravel()
    d = est[km.data_pos] * km.data_scramble
    soft = np.bincount(km.data_bit, weights=d, minlength=ecc.CODED_BITS)
    info = ecc.viterbi(soft)
    return ecc.check(info, km.salt), z, info


@dataclass(frozen=True)
class _Lattice:
    """The mark's tile lattice on the original's working grid."""

    size: tuple[int, int]  # working grid (w, h)
    marked: tuple[int, int]  # size of the image the mark was embedded in
    v1: np.ndarray
    v2: np.ndarray
    chip: float  # chip size, working pixels

    @classmethod
    def of(cls, size: tuple[int, int], marked: tuple[int, int]) -> _Lattice:
        (hw, hh), (mw, mh) = size, marked
        period = tile_period(mw, mh)
        v1, v2 = np.array([period * hw / mw, 0.0]), np.array([0.0, period * hh / mh])
        return cls(size, marked, v1, v2, chip_size(mw, mh) * hw / mw)

    def pattern(self, chips: np.ndarray) -> np.ndarray:
        """The pattern of ``chips`` as the embedder laid it on the marked image, sampled on the
        working grid (unit amplitude; tiled from the top-left corner)."""
        n = FOLD_PATTERN
        t = tile.upsample(chips, n).astype(np.float32)
        (hw, hh), (mw, mh) = self.size, self.marked
        period = tile_period(mw, mh)
        # working pixel centre x + 0.5 is marked pixel (x + 0.5) * mw / hw - 0.5, i.e. tile
        # sample ((x + 0.5) * mw / hw - 0.5) * n / period; one extra period keeps it positive
        ax, ay = mw / hw * n / period, mh / hh * n / period
        c0 = 0.5 - 0.5 * n / period + n
        canvas = np.tile(t, (int(hh * ay / n) + 3, int(hw * ax / n) + 3))
        data = (ax, 0, c0, 0, ay, c0)
        im = Image.fromarray(canvas, "F").transform((hw, hh), Image.AFFINE, data, Image.BILINEAR)
        return np.asarray(im, dtype=np.float64)


FOLD_PATTERN = 96  # samples per tile period when the pattern is redrawn (3 per chip)
DD_PASSES = 2  # decision-directed re-weighting passes after a failed decode


def _decode_residual(
    resid: np.ndarray, valid: np.ndarray, amp: np.ndarray, lat: _Lattice, key: bytes
) -> tuple[int, float] | None:
    """Payload and sync z-score of what is left of a copy once the original is subtracted
    (on the original's working grid), or None.

    First weighted by the amplitude the embedder used over the local power of the rest. If
    the sync is found but the CRC fails, the decoder's own tentative answer is redrawn as a
    pattern and the rest re-weighted by how much of that pattern each place still shows:
    lossy codecs wipe the mark out of flat areas and keep it near edges, which the embedder's
    amplitude alone cannot know. Each pass is one more CRC-guarded decode.
    """
    km = tile.key_material(key)
    d = _band(np.where(valid, resid, 0.0), lat.v1[0], lat.v2[1])
    power_d = power(d, max(2, round(1.5 * lat.chip)))
    wgt = np.where(valid, amp / (power_d + 1e-3 + 0.05 * float(power_d[valid].mean())), 0.0)
    payload, z, info = _decode_near_origin(_fold(d * wgt, lat.v1, lat.v2)[0], key, km)
    rad = max(2, round(6 * lat.chip))
    for _ in range(DD_PASSES):
        if payload is not None or info is None:
            break
        e = _band(amp * lat.pattern(tile.chips_of_info(key, info)), lat.v1[0], lat.v2[1])
        ee = power(e, rad)
        gain = np.clip(box(d * e, rad) / (ee + 1e-6 * float(ee.mean()) + 1e-12), 0.0, None)
        noise = power(d - gain * e, rad)
        wgt = np.where(valid, gain * np.sqrt(ee) / (noise + 1e-3 + 0.05 * float(noise[valid].mean())), 0.0)
        payload, z, info = _decode_near_origin(_fold(d * wgt, lat.v1, lat.v2)[0], key, km)
    return None if payload is None else (payload, z)


def extract_informed(
    image: Image.Image,
    reference: Image.Image,
    *,
    key: bytes,
    marked_size: tuple[int, int] | None = None,
    backgrounds: Sequence[tuple[int, int, int]] = ((255, 255, 255), (0, 0, 0)),
    geometry: np.ndarray | None = None,
) -> Detection | None:
    """The payload of ``image``, a copy of ``reference`` (the unmarked original) after any
    edits; ``None`` when it cannot be read (not a copy, wrong key, unmarked, too damaged).

    ``geometry``: where the copy sits, when it is known (poster.features): a 3 x 3 homography
    from the reference's pixels to the copy's (a mirror shows as a negative determinant). The
    copy is then cut to the original's outline (captions, UI bars and other collage panels
    left out), straightened when the map has perspective (a photo of a screen), and the
    registration refines that map instead of searching (turns of any angle, crops down to
    KNOWN_OVERLAP of the original). When the refined map does not hold, the blind search runs.

    ``marked_size``: the size of the image the mark was embedded in, when the reference is
    the same picture at another size (the artist's full-size original of a fitted post); the
    tile period follows from it. ``backgrounds``: for transparent art, the colours a platform
    may have flattened it on, tried in turn (the post's own background first).
    """
    key = bytes(key)
    ref, _ = _split(reference)
    if min(ref.size) < 64 or min(image.size) < 32:
        return None
    marked_size = marked_size or ref.size
    if min(marked_size) < MIN_SIDE:
        return None
    amp_small = amplitude_small(ref)
    transparent = ref.mode in ("LA", "RGBA") and ref.getchannel("A").getextrema()[0] < 255
    view = None if geometry is None else known_view(image, ref.size, np.asarray(geometry, np.float64))
    for background in dict.fromkeys(backgrounds) if transparent else ((255, 255, 255),):
        found = None
        if view is not None:
            found = _extract_on(view.image, ref, amp_small, key, background, marked_size, view.a)
            if found is not None and view.mirrored:
                found = replace(found, mirrored=True)
        else:  # no known view (a known view that did not read: the blind search would not either)
            found = _extract_on(image, ref, amp_small, key, background, marked_size)
        if found is not None:
            return found
    return None


@dataclass(frozen=True)
class KnownView:
    """The part of a copy that shows the original, un-mirrored (and straightened when the map
    has perspective), and the affine map from the original's pixels to it."""

    image: Image.Image
    a: np.ndarray  # 2 x 3: original pixels -> view pixels
    mirrored: bool


PERSPECTIVE_PX = 1.5  # deviation from an affine map (copy px) above which a copy is straightened


def known_view(image: Image.Image, ref_size: tuple[int, int], h: np.ndarray) -> KnownView | None:
    """Cut (and if needed straighten) ``image`` to where the original lands under ``h``."""
    if h.shape != (3, 3) or not np.isfinite(h).all() or abs(h[2, 2]) < 1e-12:
        return None
    h = h / h[2, 2]
    mirrored = bool(np.linalg.det(h[:2, :2]) < 0)
    if mirrored:
        image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        h = np.array([[-1.0, 0.0, image.width], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]) @ h
    rw, rh = ref_size
    corners = np.array([[0, 0, 1], [rw, 0, 1], [rw, rh, 1], [0, rh, 1]], np.float64) @ h.T
    if (corners[:, 2] <= 0).any():
        return None
    quad = corners[:, :2] / corners[:, 2:3]
    # the affine map through three corners; how far the fourth lands from it is the perspective
    src = np.array([[0, 0], [rw, 0], [0, rh]], np.float64)
    aff = np.linalg.solve(np.c_[src, np.ones(3)], quad[[0, 1, 3]]).T  # 2 x 3
    fourth = aff @ np.array([rw, rh, 1.0])
    margin = 4
    x0 = max(0, math.floor(quad[:, 0].min()) - margin)
    y0 = max(0, math.floor(quad[:, 1].min()) - margin)
    x1 = min(image.width, math.ceil(quad[:, 0].max()) + margin)
    y1 = min(image.height, math.ceil(quad[:, 1].max()) + margin)
    if x1 - x0 < 32 or y1 - y0 < 32:
        return None
    if float(np.hypot(*(fourth - quad[2]))) <= PERSPECTIVE_PX:
        a = aff - np.array([[0, 0, x0], [0, 0, y0]], np.float64)
        return KnownView(image.crop((x0, y0, x1, y1)), a, mirrored)
    # straighten: resample the copy into the original's frame at the copy's own scale
    scale = math.sqrt(abs(np.linalg.det(aff[:, :2])))
    sw, sh = max(32, round(rw * scale)), max(32, round(rh * scale))
    to_copy = h @ np.diag([1 / scale, 1 / scale, 1.0])  # view px -> copy px
    inv = to_copy / to_copy[2, 2]
    data = tuple(inv.ravel()[:8])
    rgb = image.convert("RGB")
    straight = rgb.transform((sw, sh), Image.Transform.PERSPECTIVE, data, Image.Resampling.BICUBIC)
    # where the copy had no pixels, the view shows the copy's mean colour (left out as occluded)
    mask = Image.new("L", rgb.size, 255).transform(
        (sw, sh), Image.Transform.PERSPECTIVE, data, Image.Resampling.NEAREST
    )
    mean = tuple(int(v) for v in np.asarray(rgb, np.float64).reshape(-1, 3).mean(0))
    straight = Image.composite(straight, Image.new("RGB", (sw, sh), mean), mask)
    bbox = mask.getbbox()
    if bbox is None:
        return None
    bx0, by0 = bbox[:2]
    view = straight.crop(bbox)
    a = np.array([[scale, 0.0, -bx0], [0.0, scale, -by0]], np.float64)
    return KnownView(view, a, mirrored)


KERNELS = (Image.BILINEAR, Image.BICUBIC, Image.LANCZOS, Image.BOX)  # resamplers simulated
CHAIN_ITERS = 10  # Gauss-Newton steps of the exact-chain fit
CHAIN_PATCH = 160  # side of the 3 x 3 patches the exact-chain fit runs on (copy pixels)
CHAIN_MAX_PX = 3_000_000  # larger copies are read on the working grid only
AXIS_TOL = 1.0  # copy pixels of shear/turn across the copy still treated as axis-aligned


Map = tuple[float, float, float, float]  # (sx, tx, sy, ty): original x -> copy sx * x + tx


class _Chain:
    """The original resampled exactly as a copy was: an axis-aligned scale + offset from the
    original's pixels to the copy's, and the resampling filter.

    Downscaled pixel art is a different picture under every filter and every quarter-pixel
    offset: predicted on the working grid (a second resampling), its edges leave a residual
    ten times the mark. Predicted in the copy's own pixels through the same filter at the
    right offset, it cancels to a fraction of the mark.
    """

    def __init__(self, orig: Image.Image, seen: np.ndarray, th: Map):
        self.orig, self.seen, self.th = orig, seen, th

    def region(self, th: Map, margin: float = 2.0) -> tuple[int, int, int, int]:
        """Copy pixels (u0, v0, u1, v1) whose source lies inside the original (with a margin)."""
        sx, tx, sy, ty = th
        ch, cw = self.seen.shape
        rw, rh = self.orig.size
        u0, v0 = max(0, math.ceil(tx + margin * sx)), max(0, math.ceil(ty + margin * sy))
        u1 = min(cw, math.floor(sx * (rw - margin) + tx))
        v1 = min(ch, math.floor(sy * (rh - margin) + ty))
        return u0, v0, u1, v1

    def predict(self, th: Map, k: int, out: tuple[int, int, int, int]) -> np.ndarray:
        sx, tx, sy, ty = th
        u0, v0, u1, v1 = out
        src = ((u0 - tx) / sx, (v0 - ty) / sy, (u1 - tx) / sx, (v1 - ty) / sy)
        return np.asarray(self.orig.resize((u1 - u0, v1 - v0), k, box=src), dtype=np.float64)

    def _patches(self, th: Map) -> list[tuple[int, int, int, int]]:
        u0, v0, u1, v1 = self.region(th, 4.0)
        pw, ph = min(CHAIN_PATCH, (u1 - u0) // 3), min(CHAIN_PATCH, (v1 - v0) // 3)
        if pw < 16 or ph < 16:
            return []
        xs = np.linspace(u0, u1 - pw, 3).astype(int)
        ys = np.linspace(v0, v1 - ph, 3).astype(int)
        return [(int(x), int(y), int(x) + pw, int(y) + ph) for y in ys for x in xs]

    def fit(self) -> int | None:
        """Refine the map and pick the filter; the filter (None if the fit fails)."""
        patches = self._patches(self.th)
        if not patches:
            return None

        def misfit(th: Map, k: int) -> tuple[np.ndarray, ...]:
            r, gx, gy, uu, vv = [], [], [], [], []
            for out in patches:
                p = self.predict(th, k, out)
                s = self.seen[out[1] : out[3], out[0] : out[2]]
                q = np.stack([p.ravel(), np.ones(p.size)], 1)
                c = np.linalg.lstsq(q, s.ravel(), rcond=None)[0]
                p = c[0] * p + c[1]
                py, px = np.gradient(p)
                r.append((s - p).ravel())
                gx.append(px.ravel())
                gy.append(py.ravel())
                uu.append(np.repeat(np.arange(out[0], out[2])[None, :] + 0.5, p.shape[0], 0).ravel())
                vv.append(np.repeat(np.arange(out[1], out[3])[:, None] + 0.5, p.shape[1], 1).ravel())
            return tuple(np.concatenate(x) for x in (r, gx, gy, uu, vv))

        errs = {k: float(np.mean(misfit(self.th, k)[0] ** 2)) for k in KERNELS}
        k = min(errs, key=errs.get)
        th = self.th
        start = th
        for _ in range(CHAIN_ITERS):
            r, gx, gy, uu, vv = misfit(th, k)
            sx, tx, sy, ty = th
            jac = np.stack([-gx * (uu - tx) / sx, -gx, -gy * (vv - ty) / sy, -gy], 1)
            sig = 1.4826 * float(np.median(np.abs(r))) + 1e-6
            wt = 1.0 / np.maximum(1.0, np.abs(r) / (3.0 * sig))  # overlays must not pull
            jw = jac * wt[:, None]
            step = np.linalg.solve(jw.T @ jac + 1e-9 * np.eye(4), jw.T @ r)
            th = (sx + step[0], tx + step[1], sy + step[2], ty + step[3])
            if abs(step[1]) < 0.002 and abs(step[3]) < 0.002:
                break
        if abs(th[1] - start[1]) > 3 or abs(th[3] - start[3]) > 3 or abs(th[0] / start[0] - 1) > 0.01:
            return None  # wandered off: not an axis-aligned resample of the original
        self.th = th
        return k

    def residual(self, k: int) -> tuple[np.ndarray, np.ndarray] | None:
        """The copy minus its prediction, and where that is meaningful, both copy-sized."""
        out = self.region(self.th)
        u0, v0, u1, v1 = out
        seen = self.seen[v0:v1, u0:u1]
        preds = {j: self.predict(self.th, j, out) for j in KERNELS}
        valid = np.ones(seen.shape, bool)

        def refit(valid: np.ndarray) -> np.ndarray:
            m = valid.ravel()
            kx, ky = _tone_curve(preds[k].ravel()[m], seen.ravel()[m])
            toned = {j: np.interp(p, kx, ky) for j, p in preds.items()}
            return _mix([*toned.values(), box(toned[k], 1)], seen, valid)

        kept = _unoccluded(seen, refit(valid), valid, refit)
        if kept is None:
            return None
        pred, valid = kept
        resid = np.zeros(self.seen.shape)
        ok = np.zeros(self.seen.shape, bool)
        resid[v0:v1, u0:u1] = np.where(valid, seen - pred, 0.0)
        ok[v0:v1, u0:u1] = valid
        return resid, ok


def _axis_map(
    reg: Registration, copy_shape: tuple[int, int], image_size: tuple[int, int], host_shape, ref_size
) -> Map | None:
    """(sx, tx, sy, ty): original pixel x -> copy pixel sx * x + tx, if the registration is an
    axis-aligned scale + offset (no turn or shear worth a pixel across the copy)."""
    iw, ih = image_size
    a = reg.a * np.array([[iw / copy_shape[1]], [ih / copy_shape[0]]])
    if abs(a[0, 1]) * ih > AXIS_TOL or abs(a[1, 0]) * iw > AXIS_TOL:
        return None
    fx, fy = host_shape[1] / ref_size[0], host_shape[0] / ref_size[1]
    return float(a[0, 0] * fx), float(a[0, 2]), float(a[1, 1] * fy), float(a[1, 2])


def _extract_on(
    image: Image.Image,
    ref: Image.Image,
    amp_small: np.ndarray,
    key: bytes,
    background: tuple[int, int, int],
    marked_size: tuple[int, int],
    known: np.ndarray | None = None,
) -> Detection | None:
    rw, rh = ref.size
    # work at about the copy's own resolution (sharp pixel art needs it), 1024-1536 px
    ratio = max(image.width / rw, image.height / rh)
    host = _luma(ref, round(min(max(WORK_LONG, max(rw, rh) * ratio), INFORMED_LONG)), background)
    copy = _luma(image, 2048, background)
    min_overlap = MIN_OVERLAP
    if known is not None:
        hh0, hw0 = host.shape
        fh = np.diag([rw / hw0, rh / hh0, 1.0])  # host px -> original px
        fc = np.diag([copy.shape[1] / image.width, copy.shape[0] / image.height])  # copy luma scale
        reg = register_known(host, copy, fc @ np.asarray(known, np.float64) @ fh)
        if reg is None:
            return None
        min_overlap = KNOWN_OVERLAP
    else:
        reg = register(host, copy)
    if reg is None:
        return None
    hh, hw = host.shape
    lat = _Lattice.of((hw, hh), marked_size)
    amp = _resize_to(amp_small.astype(np.float64), (hw, hh))
    # resample the copy onto the original's working grid: if it is bigger, first downscaled
    # from its own pixels in one step, the way the original's working image was made (two
    # different resampling chains would differ at every sharp edge of pixel art)
    a = reg.a
    scale = math.sqrt(abs(np.linalg.det(a[:, :2])))
    size = (image.width, image.height)
    if scale > 1.2 or copy.shape != (image.height, image.width):
        pre = min(1.0, 1.0 / scale * copy.shape[1] / image.width)
        size = (max(8, round(image.width * pre)), max(8, round(image.height * pre)))
        a = a * np.array([[size[0] / copy.shape[1]], [size[1] / copy.shape[0]]])

    def to_grid(plane: np.ndarray, flipped: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """A copy-sized plane (already mirrored as registered, or not) on the working grid,
        and where it lands inside the copy."""
        if (plane.shape[1], plane.shape[0]) != size:
            plane = _resize_f(plane, size).astype(np.float64)
        if reg.mirrored and not flipped:
            plane = plane[:, ::-1]
        return _warp(plane, a, (hw, hh))

    found = None
    th = _axis_map(reg, copy.shape, image.size, host.shape, ref.size)
    if th is not None and image.width * image.height <= CHAIN_MAX_PX:
        flipped = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT) if reg.mirrored else image
        seen_full = np.asarray(_flatten(flipped, background).convert("F"), np.float64)
        chain = _Chain(_flatten(ref, background).convert("F"), seen_full, th)
        k = chain.fit()
        got = chain.residual(k) if k is not None else None
        if got is not None:
            resid, ok = got
            d, inside = to_grid(resid, flipped=True)
            cover, _ = to_grid(ok.astype(np.float64), flipped=True)
            valid = inside & (cover > 0.999)
            if valid.mean() >= min_overlap * 0.5:
                found = _decode_residual(d, valid, amp, lat, key)
    if found is None:
        # the general path: turned and sheared copies, and what the exact chain did not read
        seen, valid = to_grid(_luma(image, size=size, background=background))
        if valid.mean() < min_overlap:
            return None
        kept = _unoccluded(
            seen, _predict(host, seen, valid), valid, lambda v: _predict(host, seen, v), min_overlap
        )
        if kept is None:
            return None
        pred, valid = kept
        found = _decode_residual(seen - pred, valid, amp, lat, key)
    if found is None:
        return None
    payload, z = found
    # geometry in the copy's pixels (reg.a maps the original's working frame to the copy)
    p1 = float(np.hypot(*reg.a[:, 0])) * lat.v1[0]
    p2 = float(np.hypot(*reg.a[:, 1])) * lat.v2[1]
    return Detection(
        payload=payload,
        confidence=z,
        period=(p1, p2),
        rotation_deg=math.degrees(math.atan2(reg.a[1, 0], reg.a[0, 0])),
        mirrored=reg.mirrored,
        offset=(float(reg.a[0, 2]) % p1, float(reg.a[1, 2]) % p2),
        chip_px=float(np.sqrt(abs(np.linalg.det(reg.a[:, :2])))) * lat.chip,
    )


__all__ = ["Registration", "extract_informed", "register"]
