"""Key-derived tile: T x T chips, band-limited, carrying a sync part and the coded payload.

Chips 0/1 layout (all derived from sha256(key)):
* ``SYNC_CHIPS`` chip positions carry a fixed pseudo-random +-1 sync sequence;
* the other chips carry the 258 coded bits, each repeated on 2-3 chips at key-permuted
  positions and XOR-scrambled with a key-derived sequence.
The chip grid is turned into a smooth periodic pattern by band-limited (FFT zero-padding)
interpolation, keeping only chip frequencies with radius in [BAND_LO, BAND_HI] (cycles per tile):
no DC / low frequencies (swamped by image content, visible as blotches; measured: moving the
lower edge from 1.5 to 6 raised the per-chip SNR 10-15 %) and no corner frequencies (lost
first by downscaling and JPEG).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from . import ecc

T = 32  # chips per tile side
SYNC_CHIPS = 256
BAND_LO = 6.0
BAND_HI = 14.5


def _freq_index(n: int) -> np.ndarray:
    return np.round(np.fft.fftfreq(T) * T).astype(int) % n


@lru_cache(maxsize=1)
def band_mask() -> np.ndarray:
    k = np.fft.fftfreq(T) * T
    r = np.hypot(k[:, None], k[None, :])
    return ((r >= BAND_LO) & (r <= BAND_HI)).astype(np.float64)


@dataclass(frozen=True)
class KeyMaterial:
    salt: bytes
    sync_pos: np.ndarray  # flat chip indices (SYNC_CHIPS,)
    sync_val: np.ndarray  # +-1 (SYNC_CHIPS,)
    data_pos: np.ndarray  # flat chip indices (T*T - SYNC_CHIPS,)
    data_bit: np.ndarray  # coded-bit index for each data chip
    data_scramble: np.ndarray  # +-1 for each data chip


@lru_cache(maxsize=32)
def key_material(key: bytes) -> KeyMaterial:
    digest = hashlib.sha256(b"poster.mark.v1\0" + bytes(key)).digest()
    rng = np.random.Generator(np.random.PCG64(int.from_bytes(digest, "big")))
    perm = rng.permutation(T * T)
    sync_pos = np.sort(perm[:SYNC_CHIPS])
    data_pos = perm[SYNC_CHIPS:]
    sync_val = rng.choice(np.array([-1.0, 1.0]), SYNC_CHIPS)
    n_data = len(data_pos)
    data_bit = rng.permutation(np.arange(n_data) % ecc.CODED_BITS)
    data_scramble = rng.choice(np.array([-1.0, 1.0]), n_data)
    return KeyMaterial(digest[:8], sync_pos, sync_val, data_pos, data_bit, data_scramble)


def chips(key: bytes, payload: int) -> np.ndarray:
    return chips_of_info(key, ecc.info_bits(payload, key_material(key).salt))


def chips_of_info(key: bytes, info: np.ndarray) -> np.ndarray:
    """The chip grid of an info word (payload + CRC bits), valid or not: a decoder's tentative
    decision turned back into the pattern it stands for."""
    km = key_material(key)
    coded = ecc.encode(info)
    c = np.zeros(T * T)
    c[km.sync_pos] = km.sync_val
    c[km.data_pos] = (1.0 - 2.0 * coded[km.data_bit]) * km.data_scramble
    return c.reshape(T, T)


def upsample(chip_grid: np.ndarray, n: int) -> np.ndarray:
    """Band-limited periodic interpolation of a T x T chip grid to n x n samples."""
    spec = np.fft.fft2(chip_grid) * band_mask()
    big = np.zeros((n, n), dtype=np.complex128)
    idx = _freq_index(n)
    big[np.ix_(idx, idx)] = spec
    out = np.fft.ifft2(big).real
    return out


def downsample(tile: np.ndarray) -> np.ndarray:
    """Adjoint of :func:`upsample`: n x n folded tile -> T x T band-limited chip estimates."""
    n = tile.shape[0]
    spec = np.fft.fft2(tile)
    idx = _freq_index(n)
    small = spec[np.ix_(idx, idx)] * band_mask()
    return np.fft.ifft2(small).real


def pattern_from_chips(c: np.ndarray, n: int) -> np.ndarray:
    """One period (n x n pixels) of the pattern of chip grid ``c``, float32 with unit RMS."""
    p = upsample(c, n)
    p /= np.sqrt(np.mean(p * p)) + 1e-12
    return p.astype(np.float32)


@lru_cache(maxsize=16)
def pattern(key: bytes, payload: int, n: int) -> np.ndarray:
    """One period (n x n pixels) of the plain (uninformed) pattern, float32 with unit RMS."""
    return pattern_from_chips(chips(key, payload), n)


@lru_cache(maxsize=16)
def sync_reference_fft(key: bytes, n: int) -> np.ndarray:
    km = key_material(key)
    c = np.zeros(T * T)
    c[km.sync_pos] = km.sync_val
    ref = upsample(c.reshape(T, T), n)
    ref -= ref.mean()
    ref /= np.sqrt(np.sum(ref * ref)) + 1e-12
    return np.conj(np.fft.fft2(ref))
