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
        norm = box(np.fft.fftshift(p, axes=0), 4)
        self.p = p / (np.fft.ifftshift(norm, axes=0) + 1e-12)
        self.hw = p.shape[1]

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
        y0m, y1m = y0 % self.h, (y0 + 1) % self.h
        p = self.p
        v = (
            p[y0m, x0] * (1 - ax) * (1 - ay)
            + p[y0m, x0 + 1] * ax * (1 - ay)
            + p[y1m, x0] * (1 - ax) * ay
            + p[y1m, x0 + 1] * ax * ay
        )
        v = np.where(ok, v, 1.0)
        return v.mean(axis=1)

    def search(self, pmin: float, pmax: float, n: int = 6) -> list[tuple[float, float, float, float]]:
        """Best lattices as (score, px, py, theta), best first."""
        top = tile.BAND_HI * max(self.w, self.h)
        periods = [pmin]
        while periods[-1] < pmax:
            p = periods[-1]
            periods.append(p * (1 + 0.35 * p / top))
        periods = np.array(periods)
        sc = self.score(periods, periods)
        # local maxima of the profile
        loc = np.flatnonzero((sc >= np.roll(sc, 1)) & (sc >= np.roll(sc, -1)))
        loc = loc[np.argsort(sc[loc])[::-1]][:n]
        out = []
        for i in loc:
            out.append(self.refine(float(periods[i])))
        out.sort(key=lambda t: -t[0])
        return out

    def refine(self, p: float) -> tuple[float, float, float, float]:
        px = py = p
        th = 0.0
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

    def rotation_scan(self, pmin: float, pmax: float, max_deg: float = 4.0, n: int = 3):
        """Coarse (period, angle) scan using only low harmonics; for rotated copies."""
        low = _PTS[np.hypot(_PTS[:, 0], _PTS[:, 1]) <= tile.BAND_LO + 3]
        top = (tile.BAND_LO + 3) * max(self.w, self.h)
        periods = [pmin]
        while periods[-1] < pmax:
            p = periods[-1]
            periods.append(p * (1 + 0.35 * p / top))
        periods = np.array(periods)
        angles = np.deg2rad(np.arange(-max_deg, max_deg + 1e-9, 0.5))
        pp, aa = np.meshgrid(periods, angles, indexing="ij")
        sc = self.score(pp.ravel(), pp.ravel(), aa.ravel(), low).reshape(pp.shape)
        flat = np.argsort(sc.ravel())[::-1][: n * 4]
        out = []
        for f in flat:
            i, j = divmod(int(f), sc.shape[1])
            out.append((float(periods[i]), float(angles[j])))
        return out
