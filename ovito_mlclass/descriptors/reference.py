"""Pure-Python (numba) reference implementation of the descriptor kernels.

Same call signatures as the compiled ``ovito_mlclass._kernels`` module, written for clarity, not
speed, and by different routes where that makes it a useful oracle: Y_lm from the textbook
associated Legendre functions and explicit factorials; w_l as the full double sum over
(m1, m2) with a dense 3j table; G4/G5 from angles between explicit neighbour pairs. It is what
the C++ kernel is tested against, and the fallback when the compiled extension is missing.
"""
from __future__ import annotations

import math
from functools import lru_cache

import numba
import numpy as np

from .wigner import wigner_3j_lll

MAX_DEGREE = 16


def max_threads() -> int:
    return 1


@numba.njit(cache=True)
def _legendre(lmax, x, s):
    """Associated Legendre functions P_l^m(x) with the Condon-Shortley phase, m >= 0;
    x = cos(theta), s = sin(theta)."""
    p = np.zeros((lmax + 1, lmax + 1))
    p[0, 0] = 1.0
    for m in range(1, lmax + 1):
        p[m, m] = -(2 * m - 1) * s * p[m - 1, m - 1]
    for m in range(0, lmax):
        p[m + 1, m] = (2 * m + 1) * x * p[m, m]
    for m in range(0, lmax + 1):
        for l in range(m + 2, lmax + 1):
            p[l, m] = ((2 * l - 1) * x * p[l - 1, m] - (l + m - 1) * p[l - 2, m]) / (l - m)
    return p


@numba.njit(cache=True)
def _ylm_row(lmax, v, out):
    r = math.sqrt(v[0] ** 2 + v[1] ** 2 + v[2] ** 2)
    phi = math.atan2(v[1], v[0])
    p = _legendre(lmax, v[2] / r, math.hypot(v[0], v[1]) / r)
    for l in range(lmax + 1):
        for m in range(0, l + 1):
            norm = math.sqrt((2 * l + 1) / (4 * math.pi) * math.gamma(l - m + 1) / math.gamma(l + m + 1))
            y = norm * p[l, m] * complex(math.cos(m * phi), math.sin(m * phi))
            out[l * l + l + m] = y
            out[l * l + l - m] = (-1) ** m * y.conjugate()


@numba.njit(cache=True)
def _spherical_harmonics(vectors, lmax):
    out = np.zeros((len(vectors), (lmax + 1) ** 2), dtype=np.complex128)
    for b in range(len(vectors)):
        _ylm_row(lmax, vectors[b], out[b])
    return out


def spherical_harmonics(vectors, lmax):
    vectors = np.ascontiguousarray(vectors, dtype=np.float64)
    return _spherical_harmonics(vectors, int(lmax))


@lru_cache(maxsize=None)
def _dense_3j(l: int) -> np.ndarray:
    table = np.zeros((2 * l + 1, 2 * l + 1))
    for m1 in range(-l, l + 1):
        for m2 in range(-l, l + 1):
            table[m1 + l, m2 + l] = wigner_3j_lll(l, m1, m2, -m1 - m2)
    return table


@numba.njit(cache=True)
def _invariants(qlm, l, w3j, with_wl):
    """q_l and normalised w_l of one atom from its full q_lm (m = -l..l)."""
    s = 0.0
    for m in range(2 * l + 1):
        s += qlm[m].real ** 2 + qlm[m].imag ** 2
    q = math.sqrt(4 * math.pi / (2 * l + 1) * s)
    w = 0.0
    if with_wl and s > 0:
        total = 0.0
        for m1 in range(-l, l + 1):
            for m2 in range(-l, l + 1):
                m3 = -m1 - m2
                if abs(m3) <= l:
                    total += w3j[m1 + l, m2 + l] * (qlm[m1 + l] * qlm[m2 + l] * qlm[m3 + l]).real
        w = total / s ** 1.5
    return q, w


@numba.njit(cache=True)
def _steinhardt(offsets, vectors, neighbors, weights, use_weights, l, w3j, with_wl, averaged, out, cq, cw, cqb, cwb):
    n = len(offsets) - 1
    qlm = np.zeros((n, 2 * l + 1), dtype=np.complex128)
    row = np.zeros((l + 1) ** 2, dtype=np.complex128)
    for i in range(n):
        total = 0.0
        for b in range(offsets[i], offsets[i + 1]):
            w = weights[b] if use_weights else 1.0
            _ylm_row(l, vectors[b], row)
            for m in range(2 * l + 1):
                qlm[i, m] += w * row[l * l + m]
            total += w
        if total > 0:
            qlm[i] /= total
        q, w_ = _invariants(qlm[i], l, w3j, with_wl)
        out[i, cq] = q
        if with_wl:
            out[i, cw] = w_
    if averaged:
        for i in range(n):
            bar = qlm[i].copy()
            for b in range(offsets[i], offsets[i + 1]):
                bar += qlm[neighbors[b]]
            bar /= offsets[i + 1] - offsets[i] + 1
            q, w_ = _invariants(bar, l, w3j, with_wl)
            out[i, cqb] = q
            if with_wl:
                out[i, cwb] = w_


def steinhardt_shells(offsets, neighbors, vectors, weights, bins, averaged, cache_bytes, shells):
    """Same contract as the compiled kernel: each shell (first, degrees, with_wl, wigner_start,
    wigner_m, wigner_coeff, out) on its own, one after the other."""
    for first, degrees, with_wl, wigner_start, wigner_m, wigner_coeff, out in shells:
        steinhardt(offsets, neighbors, vectors, weights, bins, degrees, with_wl, averaged, wigner_start, wigner_m,
                   wigner_coeff, cache_bytes, out, first)


def steinhardt(offsets, neighbors, vectors, weights, bins, degrees, with_wl, averaged, wigner_start, wigner_m,
               wigner_coeff, cache_bytes, out, first=-1):
    """Same contract as the compiled kernel; the Wigner table arguments are ignored (the
    reference builds a dense 3j table of its own), and so are ``bins`` and ``cache_bytes``
    (the reference keeps q_lm of one degree for all atoms). ``first = k >= 0``: the first k
    bonds of each row, copied into a list of their own."""
    if first >= 0:
        offsets = np.asarray(offsets, np.int64)
        keep = np.arange(offsets[-1]) - np.repeat(offsets[:-1], np.diff(offsets)) < first
        counts = np.minimum(np.diff(offsets), first)
        offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        neighbors, vectors = np.asarray(neighbors)[keep], np.asarray(vectors)[keep]
        weights = None if weights is None else np.asarray(weights)[keep]
    vectors = np.ascontiguousarray(vectors, dtype=np.float64)
    if np.any((vectors ** 2).sum(axis=1) == 0):
        raise ValueError("neighbour vector(s) of zero length: two atoms occupy the same position")
    nd = len(degrees)
    use_weights = weights is not None
    w = np.ascontiguousarray(weights if use_weights else np.zeros(0), dtype=np.float64)
    col_qbar = nd * (2 if with_wl else 1)
    for c, l in enumerate(degrees):
        l = int(l)
        _steinhardt(np.asarray(offsets, np.int64), vectors, np.asarray(neighbors, np.int64), w, use_weights, l,
                    _dense_3j(l), bool(with_wl), bool(averaged), out, c, nd + c, col_qbar + c, col_qbar + nd + c)


@numba.njit(cache=True)
def _cutoff_function(r, rc):
    return 0.5 * (math.cos(math.pi * r / rc) + 1.0) if r < rc else 0.0


@numba.njit(cache=True)
def _symmetry_functions(offsets, neighbors, vectors, species, n_species, rc, g2, g4, g5, out):
    n_g2, n_g4, n_g5 = len(g2), len(g4), len(g5)
    base_g4 = n_species * n_g2
    base_g5 = base_g4 + n_species * (n_species + 1) // 2 * n_g4
    for i in range(len(offsets) - 1):
        out[i, :] = 0.0
        for b in range(offsets[i], offsets[i + 1]):
            rij = math.sqrt((vectors[b] ** 2).sum())
            if rij >= rc:
                continue
            sj = species[neighbors[b]]
            for p in range(n_g2):
                out[i, sj * n_g2 + p] += math.exp(-g2[p, 0] * (rij - g2[p, 1]) ** 2) * _cutoff_function(rij, rc)
            for c in range(b + 1, offsets[i + 1]):
                rik = math.sqrt((vectors[c] ** 2).sum())
                if rik >= rc:
                    continue
                sk = species[neighbors[c]]
                a, z = min(sj, sk), max(sj, sk)
                pair = a * n_species - a * (a - 1) // 2 + (z - a)
                cos_theta = (vectors[b] @ vectors[c]) / (rij * rik)
                rjk = math.sqrt(((vectors[c] - vectors[b]) ** 2).sum())
                # 2^(1-zeta) (1 + lambda cos)^zeta, finite for any zeta
                for p in range(n_g5):
                    eta, zeta, lam = g5[p]
                    out[i, base_g5 + pair * n_g5 + p] += (
                        2.0 * ((1 + lam * cos_theta) / 2) ** zeta * math.exp(-eta * (rij ** 2 + rik ** 2))
                        * _cutoff_function(rij, rc) * _cutoff_function(rik, rc))
                if rjk >= rc:
                    continue
                for p in range(n_g4):
                    eta, zeta, lam = g4[p]
                    out[i, base_g4 + pair * n_g4 + p] += (
                        2.0 * ((1 + lam * cos_theta) / 2) ** zeta
                        * math.exp(-eta * (rij ** 2 + rik ** 2 + rjk ** 2))
                        * _cutoff_function(rij, rc) * _cutoff_function(rik, rc) * _cutoff_function(rjk, rc))


def symmetry_functions(offsets, neighbors, vectors, species, n_species, cutoff, g2, g4, g5, out):
    vectors = np.ascontiguousarray(vectors, dtype=np.float64)
    if np.any((vectors ** 2).sum(axis=1) == 0):
        raise ValueError("neighbour vector(s) of zero length: two atoms occupy the same position")
    _symmetry_functions(np.asarray(offsets, np.int64), np.asarray(neighbors, np.int64), vectors,
                        np.asarray(species, np.int32), int(n_species), float(cutoff),
                        np.asarray(g2, np.float64).reshape(-1, 2), np.asarray(g4, np.float64).reshape(-1, 3),
                        np.asarray(g5, np.float64).reshape(-1, 3), out)


@numba.njit(cache=True)
def _cross(a, b):
    return np.array([a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]])


@numba.njit(cache=True)
def _face_area(vectors, begin, end, j, half):
    """Area of the face of bond j of an atom with bonds begin..end-1, clipped in 3-d: a square of
    half-width `half` in the bisector plane of bond j, cut by the half-spaces x . v_k <= |v_k|^2 / 2
    of the other bonds. Second value False if the face still touches the square's edge."""
    normal = vectors[j] / math.sqrt((vectors[j] ** 2).sum())
    axis = np.zeros(3)
    axis[np.argmin(np.abs(normal))] = 1.0
    u = axis - (axis * normal).sum() * normal
    u /= math.sqrt((u ** 2).sum())
    w = _cross(normal, u)
    centre = 0.5 * vectors[j]
    size = end - begin + 4
    polygon, clipped = np.empty((size, 3)), np.empty((size, 3))
    for t, (su, sw) in enumerate(((-1.0, -1.0), (1.0, -1.0), (1.0, 1.0), (-1.0, 1.0))):
        polygon[t] = centre + half * (su * u + sw * w)
    count = 4
    for k in range(begin, end):
        if k == j:
            continue
        v = vectors[k]
        offset = 0.5 * (v ** 2).sum()
        kept = 0
        for t in range(count):
            p, q = polygon[t], polygon[(t + 1) % count]
            dp, dq = (p * v).sum() - offset, (q * v).sum() - offset
            if dp <= 0:
                clipped[kept] = p
                kept += 1
            if dp * dq < 0:
                clipped[kept] = p + dp / (dp - dq) * (q - p)
                kept += 1
        polygon, clipped, count = clipped, polygon, kept
        if count == 0:
            return 0.0, True
    for t in range(count):
        d = polygon[t] - centre
        if max(abs((d * u).sum()), abs((d * w).sum())) >= half * (1 - 1e-9):
            return 0.0, False
    twice = np.zeros(3)
    for t in range(1, count - 1):
        twice += _cross(polygon[t] - polygon[0], polygon[t + 1] - polygon[0])
    return 0.5 * math.sqrt((twice ** 2).sum()), True


@numba.njit(cache=True)
def _voronoi_face_areas(offsets, vectors, areas):
    open_cells = 0
    for i in range(len(offsets) - 1):
        begin, end = offsets[i], offsets[i + 1]
        longest = 0.0
        for b in range(begin, end):
            longest = max(longest, math.sqrt((vectors[b] ** 2).sum()))
        closed = True
        for j in range(begin, end):
            half = 2.0 * longest
            while True:
                areas[j], ok = _face_area(vectors, begin, end, j, half)
                if ok or half > 1e6 * longest:
                    break
                half *= 8.0
            closed &= ok
        open_cells += not closed
    return open_cells


def voronoi_face_areas(offsets, vectors):
    vectors = np.ascontiguousarray(vectors, dtype=np.float64)
    if np.any((vectors ** 2).sum(axis=1) == 0):
        raise ValueError("neighbour vector(s) of zero length: two atoms occupy the same position")
    areas = np.zeros(len(vectors))
    open_cells = _voronoi_face_areas(np.asarray(offsets, np.int64), vectors, areas)
    if open_cells:
        raise ValueError(f"{open_cells} Voronoi cell(s) are not closed by their neighbours: "
                         "the neighbour list lacks some of the Voronoi neighbours")
    return areas
