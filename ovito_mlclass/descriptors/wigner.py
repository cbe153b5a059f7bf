"""Wigner 3j coupling tables for the third-order invariants w_l, in exact rational arithmetic."""
from __future__ import annotations

import math
from fractions import Fraction
from functools import lru_cache

import numpy as np


def wigner_3j_lll(l: int, m1: int, m2: int, m3: int) -> float:
    """(l l l; m1 m2 m3) by Racah's formula, summed exactly; one rounding at the end."""
    if m1 + m2 + m3 != 0 or max(abs(m1), abs(m2), abs(m3)) > l:
        return 0.0
    f = math.factorial
    triangle = Fraction(f(l) ** 3, f(3 * l + 1))
    magnitudes = f(l + m1) * f(l - m1) * f(l + m2) * f(l - m2) * f(l + m3) * f(l - m3)
    total = Fraction(0)
    for k in range(l + 1):
        denominators = (k, m1 + k, k - m2, l - k, l - k - m1, l - k + m2)
        if min(denominators) < 0:
            continue
        term = Fraction(1, math.prod(f(d) for d in denominators))
        total += -term if k % 2 else term
    sign = -1 if (-m3) % 2 else 1  # (-1)^(j1 - j2 - m3) with j1 = j2
    squared = triangle * magnitudes
    return sign * float(total) * math.sqrt(squared.numerator) / math.sqrt(squared.denominator) if total else 0.0


@lru_cache(maxsize=None)
def _rows(l: int) -> tuple[np.ndarray, np.ndarray]:
    """(m1, m2, m3) with m1 <= m2 <= m3 and m1 + m2 + m3 = 0, and 3j times the number of
    distinct permutations (the 3j symbol of equal degrees is symmetric under permutations up to
    the sign (-1)^(3l)). For odd l the sign makes the full sum vanish exactly: no rows. For even l
    the triple (-m3, -m2, -m1) has the same 3j symbol and the complex-conjugate product
    (q_l,-m = (-1)^m conj(q_lm)), so only one of the two is kept, with twice the weight; the
    kernels take the real part."""
    ms, coeffs = [], []
    if l % 2:
        return np.zeros((0, 3), dtype=np.int32), np.zeros(0)
    for m1 in range(-l, l + 1):
        for m2 in range(m1, l + 1):
            m3 = -m1 - m2
            if m3 < m2 or m3 > l:
                continue
            mirror = (-m3, -m2, -m1)
            if mirror < (m1, m2, m3):
                continue
            permutations = len({(m1, m2, m3), (m1, m3, m2), (m2, m1, m3), (m2, m3, m1), (m3, m1, m2), (m3, m2, m1)})
            pairs = 1 if mirror == (m1, m2, m3) else 2
            ms.append((m1, m2, m3))
            coeffs.append(pairs * permutations * wigner_3j_lll(l, m1, m2, m3))
    return np.array(ms, dtype=np.int32).reshape(-1, 3), np.array(coeffs, dtype=np.float64)


def coupling_table(degrees) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(start, m, coeff)`` for the given degrees, in the layout the kernels expect."""
    blocks = [_rows(int(l)) for l in degrees]
    start = np.zeros(len(blocks) + 1, dtype=np.int64)
    np.cumsum([len(c) for _, c in blocks], out=start[1:])
    m = np.concatenate([b[0] for b in blocks]) if blocks else np.zeros((0, 3), np.int32)
    coeff = np.concatenate([b[1] for b in blocks]) if blocks else np.zeros(0)
    return start, np.ascontiguousarray(m, dtype=np.int32), np.ascontiguousarray(coeff)
