"""Blind recovery of the tile lattice (period, aspect, rotation) from the power spectrum.

The mark is periodic, so all of its energy sits on the reciprocal lattice of the tile:
frequencies k*u1 + l*u2 with u1, u2 the reciprocal basis of the tile period. Over the mark's
band that is ~270 spectral lines (half plane), a tiny fraction of all frequency bins, so the
mean of the (locally normalised) power spectrum over a candidate lattice is a very sensitive
detector - it sums the autocorrelation over *every* lattice lag at once instead of looking at
one or two autocorrelation peaks. The search is a 1-D scan over the period (log steps fine
enough that the highest harmonic moves by < 0.35 bin), then a local refinement of the two
periods (aspect change) and the angle (rotation).
"""

from __future__ import annotations

import math

import numpy as np

from . import tile
from ._filters import box


def _lattice_points() -> np.ndarray:
    kmax = math.ceil(tile.BAND_HI)
    k, m = np.meshgrid(np.arange(0, kmax + 1), np.arange(-kmax, kmax + 1), indexing="ij")
    k, m = k.ravel(), m.ravel()
    r = np.hypot(k, m)
    keep = (r >= tile.BAND_LO) & (r <= tile.BAND_HI) & ((k > 0) | (m > 0))
    return np.stack([k[keep], m[keep]], 1).astype(np.float64)


_PTS = _lattice_points()


class Comb:
    def __init__(self, r: np.ndarray):
        self.h, self.w = r.shape
        spec = np.fft.rfft2(r)
        p = spec.real**2 + spec.imag**2
        p[0, 0] = 0.0
        # local normalisation: each bin relative to its neighbourhood (host spectrum ~ 1)
        norm = np.fft.ifftshift(box(np.fft.fftshift(p, axes=0), 4), axes=0)
        self.p = p / (norm + 1e-12)
        self.p_flat = self.p.ravel()
        self.hw = p.shape[1]
        self._scan: tuple[tuple[float, float], np.ndarray, np.ndarray] | None = None

    def score(self, px, py, theta=0.0, pts: np.ndarray = _PTS) -> np.ndarray:
        """Mean normalised power over the lattice (vectorised over candidate arrays)."""
        px = np.atleast_1d(np.asarray(px, np.float64))[:, None]
        py = np.atleast_1d(np.asarray(py, np.float64))[:, None]
        th = np.atleast_1d(np.asarray(theta, np.float64))[:, None]
        k, m = pts[:, 0][None, :], pts[:, 1][None, :]
        c, s = np.cos(th), np.sin(th)
        fx = k / px * c - m / py * s
        fy = k / px * s + m / py * c
        neg = fx < 0
        fx = np.where(neg, -fx, fx)
        fy = np.where(neg, -fy, fy)
        bx = fx * self.w
        by = fy * self.h
        x0 = np.floor(bx).astype(np.int64)
        y0 = np.floor(by).astype(np.int64)
        ax = bx - x0
        ay = by - y0
        ok = x0 + 1 < self.hw
        x0 = np.minimum(x0, self.hw - 2)
        # flat indices into the row-major spectrum: one gather each instead of 2-D fancy
        # indexing (the scan and the refinements call this ~300 times per image)
        i0 = (y0 % self.h) * self.hw + x0
        i1 = ((y0 + 1) % self.h) * self.hw + x0
        p = self.p_flat
        v = (
            p[i0] * (1 - ax) * (1 - ay)
            + p[i0 + 1] * ax * (1 - ay)
            + p[i1] * (1 - ax) * ay
            + p[i1 + 1] * ax * ay
        )
        v = np.where(ok, v, 1.0)
        return v.mean(axis=1)

    def scan(self, pmin: float, pmax: float) -> tuple[np.ndarray, np.ndarray]:
        """The 1-D period scan (square, unrotated lattices): periods and their scores."""
        if self._scan is None or self._scan[0] != (pmin, pmax):
            top = tile.BAND_HI * max(self.w, self.h)
            periods = [pmin]
            while periods[-1] < pmax:
                p = periods[-1]
                periods.append(p * (1 + 0.35 * p / top))
            pa = np.array(periods)
            self._scan = ((pmin, pmax), pa, self.score(pa, pa))
        return self._scan[1], self._scan[2]

    def scan_z(self, score: float, pmin: float, pmax: float) -> float:
        """How far ``score`` stands above the period scan: (score - median) / std of the scan.

        The scan's level and spread are the host image's own (JPEG block grids, pixel-art
        tiles and hatching raise the raw comb score of unmarked images to 2.6): a mark
        stands out of its own image's scan, whatever that level is.
        """
        sc = self.scan(pmin, pmax)[1]
        return float((score - np.median(sc)) / (sc.std() + 1e-12))

    def search(self, pmin: float, pmax: float, n: int = 6) -> list[tuple[float, float, float, float]]:
        """Best lattices as (score, px, py, theta), best first."""
        periods, sc = self.scan(pmin, pmax)
        # local maxima of the profile
        loc = np.flatnonzero((sc >= np.roll(sc, 1)) & (sc >= np.roll(sc, -1)))
        loc = loc[np.argsort(sc[loc])[::-1]][:n]
        out = []
        for i in loc:
            out.append(self.refine(float(periods[i])))
        out.sort(key=lambda t: -t[0])
        return out

    def refine(self, p: float, py0: float | None = None, th0: float = 0.0):
        """Local maximisation of the score over (px, py, theta) from (p, py0 or p, th0)."""
        px, py, th = p, (p if py0 is None else py0), th0
        best = float(self.score(px, py, th)[0])
        top = tile.BAND_HI * max(self.w, self.h)
        dp = 0.35 * p * p / top
        dth = 0.35 / top * p
        for scale in (4.0, 2.0, 1.0, 0.5, 0.25):
            for _ in range(3):
                cands = []
                for ax in (-1, 0, 1):
                    for ay in (-1, 0, 1):
                        for at in (-1, 0, 1):
                            cands.append((px + ax * dp * scale, py + ay * dp * scale, th + at * dth * scale))
                cands = np.array(cands)
                s = self.score(cands[:, 0], cands[:, 1], cands[:, 2])
                j = int(np.argmax(s))
                if s[j] <= best:
                    break
                best = float(s[j])
                px, py, th = (float(v) for v in cands[j])
        return best, px, py, th

    def wide_search(self, pmin: float, pmax: float, n: int = 3):
        """Lattices at any small rotation / aspect change (for rotated or stretched copies).

        The inverse FFT of the normalised power spectrum is a *whitened* autocorrelation: all
        the mark's spectral lines add up in its peaks at the lattice vectors, whatever their
        orientation, so the basis is read off its peaks and then refined on the spectrum.
        """
        h, w = self.h, self.w
        fy = np.fft.fftfreq(h)[:, None]
        fx = np.fft.rfftfreq(w)[None, :]
        fr = np.hypot(fx, fy)
        band = (fr >= tile.BAND_LO / pmax) & (fr <= tile.BAND_HI / pmin)
        ac = np.fft.irfft2(np.where(band, self.p - 1.0, 0.0), s=(h, w))
        ac = np.fft.fftshift(ac)
        cy, cx = h // 2, w // 2
        # Only lags within the ring's outer radius (+ the 3 x 3 neighbourhood) can be peaks or
        # partners: work on that window of the autocorrelation, not on all of it (its rolls
        # and coordinate grids were ~60 ms per call at 1024 px). Inside the ring, every
        # neighbour is inside the window, so the peaks are those of the whole surface.
        r_out = min(pmax * 1.1, 0.45 * min(h, w))
        m = math.ceil(r_out) + 2
        y0, y1 = max(0, cy - m), min(h, cy + m + 1)
        x0, x1 = max(0, cx - m), min(w, cx + m + 1)
        ac = ac[y0:y1, x0:x1]
        dy, dx = np.mgrid[y0 - cy : y1 - cy, x0 - cx : x1 - cx]
        rad = np.hypot(dx, dy)
        ring = (rad >= pmin * 0.9) & (rad <= r_out)
        mx = ac.copy()
        for sy in (-1, 0, 1):
            for sx in (-1, 0, 1):
                mx = np.maximum(mx, np.roll(ac, (sy, sx), axis=(0, 1)))
        peak = (ac >= mx) & ring & (dx > 0) & (np.abs(dy) <= 0.16 * dx)
        idx = np.flatnonzero(peak)
        idx = idx[np.argsort(ac.ravel()[idx])[::-1]][:n]
        out = []
        for i in idx:
            vx, vy = float(dx.ravel()[i]), float(dy.ravel()[i])
            p1 = math.hypot(vx, vy)
            th = math.atan2(vy, vx)
            # partner near the 90-degree rotation (aspect change: different length)
            ux, uy = -vy / p1, vx / p1
            proj = dx * ux + dy * uy
            perp = np.abs(dx * (vx / p1) + dy * (vy / p1))
            near = (proj > 0.85 * p1) & (proj < 1.18 * p1) & (perp <= 0.08 * p1 + 1) & ring
            p2 = p1
            if near.any():
                j = np.flatnonzero(near.ravel())[np.argmax(ac[near])]
                p2 = float(proj.ravel()[j])
            out.append(self.refine(p1, p2, th))
        out.sort(key=lambda t: -t[0])
        return out
