"""Error correction for the hidden ID: CRC-32 check + K=7 rate-1/3 convolutional code.

The info word is ``payload (48 bits) || crc32(salt || payload) (32 bits)`` followed by six zero
tail bits; it is encoded with the classic K=7 code (generators 133, 171, 165 octal) into
258 coded bits and decoded with a soft-decision Viterbi decoder (correlation metric).
The CRC is salted with a key-derived value so a decode made with the wrong key can never
pass the check by construction of a valid codeword of another key.
"""

from __future__ import annotations

import zlib

import numpy as np

PAYLOAD_BITS = 48
CRC_BITS = 32
INFO_BITS = PAYLOAD_BITS + CRC_BITS
K = 7
TAIL = K - 1
GENERATORS = (0o133, 0o171, 0o165)
RATE_INV = len(GENERATORS)
CODED_BITS = (INFO_BITS + TAIL) * RATE_INV  # 258

_NSTATES = 1 << (K - 1)


def _parity(x: int) -> int:
    return bin(x).count("1") & 1


# output bits for (state, input) -> register = (state << 1) | input
_OUT = np.zeros((_NSTATES, 2, RATE_INV), dtype=np.int8)
for _s in range(_NSTATES):
    for _b in range(2):
        _reg = (_s << 1) | _b
        for _j, _g in enumerate(GENERATORS):
            _OUT[_s, _b, _j] = _parity(_reg & _g)
_SIGN = (1 - 2 * _OUT).astype(np.float64)  # bit 0 -> +1, bit 1 -> -1
# predecessors of each next state ns: s = (ns >> 1) | (p << 5), input b = ns & 1
_NS = np.arange(_NSTATES)
_PRED = np.stack([(_NS >> 1), (_NS >> 1) | (1 << (K - 2))], axis=1)  # (64, 2)
_INB = _NS & 1


def crc(payload: int, salt: bytes) -> int:
    return zlib.crc32(salt + payload.to_bytes(6, "big")) & 0xFFFFFFFF


def info_bits(payload: int, salt: bytes) -> np.ndarray:
    word = (payload << CRC_BITS) | crc(payload, salt)
    return np.array([(word >> (INFO_BITS - 1 - i)) & 1 for i in range(INFO_BITS)], dtype=np.int8)


def encode(bits: np.ndarray) -> np.ndarray:
    """Convolutionally encode ``bits`` (+ zero tail) -> coded bits (0/1), length CODED_BITS."""
    out = np.empty((len(bits) + TAIL, RATE_INV), dtype=np.int8)
    state = 0
    for t, b in enumerate(list(bits) + [0] * TAIL):
        out[t] = _OUT[state, int(b)]
        state = ((state << 1) | int(b)) & (_NSTATES - 1)
    return out.reshape(-1)


def viterbi(soft: np.ndarray) -> np.ndarray:
    """Soft Viterbi decode. ``soft[i] > 0`` means coded bit i is likely 0. Returns info bits."""
    soft = np.asarray(soft, dtype=np.float64).reshape(-1, RATE_INV)
    steps = soft.shape[0]
    metric = np.full(_NSTATES, -1e18)
    metric[0] = 0.0
    decisions = np.zeros((steps, _NSTATES), dtype=np.int8)
    for t in range(steps):
        bm = _SIGN @ soft[t]  # (64, 2): branch metric for (state, input)
        c0 = metric[_PRED[:, 0]] + bm[_PRED[:, 0], _INB]
        c1 = metric[_PRED[:, 1]] + bm[_PRED[:, 1], _INB]
        choose1 = c1 > c0
        decisions[t] = choose1
        metric = np.where(choose1, c1, c0)
    state = 0  # zero tail -> end in state 0
    bits = np.zeros(steps, dtype=np.int8)
    for t in range(steps - 1, -1, -1):
        bits[t] = state & 1
        state = int(_PRED[state, int(decisions[t, state])])
    return bits[: steps - TAIL]


def check(bits: np.ndarray, salt: bytes) -> int | None:
    """Return the payload if the CRC matches, else None."""
    word = 0
    for b in bits:
        word = (word << 1) | int(b)
    payload = word >> CRC_BITS
    if (word & 0xFFFFFFFF) != crc(payload, salt):
        return None
    return payload
