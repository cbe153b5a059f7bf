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


def steinhardt_shells(offsets, neighbors, vectors, weights, bins, averaged, cache_bytes, shells, single=False):
    """Same contract as the compiled kernel: each shell (first, degrees, with_wl, wigner_start,
    wigner_m, wigner_coeff, out) on its own, one after the other; always in double precision."""
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


# ---- topology tests (the classifier's certificates) ---------------------------------------------------
def diamond_second_shells(rows, vectors):
    """Identify Diamond's test of every atom's second shell (1 cubic, 2 hexagonal, 0 neither), in
    NumPy: the bond graph of the 12 second neighbours as a matrix, its square counting common
    neighbours (the compiled kernel uses bit masks)."""
    rows = np.ascontiguousarray(np.asarray(rows)[:, :4], dtype=np.int64)
    vectors = np.ascontiguousarray(np.asarray(vectors)[:, :4], dtype=np.float64)
    out = np.empty(len(rows), dtype=np.int8)
    for start in range(0, len(rows), 32768):
        out[start:start + 32768] = _second_shells(rows, vectors, np.arange(start, min(len(rows), start + 32768)))
    return out


def _second_shells(rows, vectors, atoms):
    first = rows[atoms]
    ok = (first >= 0).all(axis=1)
    first = np.where(first >= 0, first, 0)
    ok &= (rows[first] >= 0).all(axis=(1, 2))
    second = vectors[atoms][:, :, None, :] + vectors[first]      # (m, 4, 4, 3): atom -> neighbour's neighbours
    back = (np.abs(second) <= 1e-2).all(axis=3)                   # the atom itself (Identify Diamond's tolerance)
    ok &= (back.sum(axis=2) == 1).all(axis=1)                     # exactly once among each neighbour's four
    others = np.argsort(back, axis=2, kind="stable")[:, :, :3]    # the three that are not the atom
    shell = np.take_along_axis(second, others[..., None], axis=2).reshape(len(atoms), 12, 3)
    cutoff = 1.2071068 * np.linalg.norm(shell, axis=2).mean(axis=1)
    gaps = shell[:, :, None, :] - shell[:, None, :, :]
    bonded = np.einsum("aijk,aijk->aij", gaps, gaps) <= (cutoff ** 2)[:, None, None]
    bonded[:, np.arange(12), np.arange(12)] = False
    links = bonded.astype(np.float32)
    shared = links @ links                                         # common neighbours of each pair
    degree = np.where(bonded, shared, 0)                           # [j, k]: k's bonds among j's common neighbours
    valid = (bonded.sum(axis=2) == 4) & (degree.sum(axis=2) == 4)  # four common neighbours, two bonds among them
    chain_of_two = degree.max(axis=2) == 2                         # the two bonds share an atom: 422, else 421
    ok &= valid.all(axis=1)
    n422 = chain_of_two.sum(axis=1)
    return np.select([ok & (n422 == 0), ok & (n422 == 6)], [1, 2], 0).astype(np.int8)


@numba.njit(cache=True)
def _longest_chain(pairs, n_pairs):
    """OVITO's clustering of the bonds among common neighbours: the most bonds in one cluster of
    bonds that share atoms, grown bond by bond from a list (pairs: (n, 2) atom positions)."""
    done = np.zeros(n_pairs, dtype=np.bool_)
    longest = 0
    for seed in range(n_pairs):
        if done[seed]:
            continue
        done[seed] = True
        size = 1
        members = np.zeros(32, dtype=np.bool_)
        members[pairs[seed, 0]] = True
        members[pairs[seed, 1]] = True
        grew = True
        while grew:
            grew = False
            for b in range(n_pairs):
                if not done[b] and (members[pairs[b, 0]] or members[pairs[b, 1]]):
                    done[b] = True
                    members[pairs[b, 0]] = True
                    members[pairs[b, 1]] = True
                    size += 1
                    grew = True
        longest = max(longest, size)
    return longest


@numba.njit(cache=True)
def _signatures(v, nn, cutoff2, out):
    """CNA signature (common, bonds, chain) of each of the first nn neighbours, into out (nn, 3)."""
    bonded = np.zeros((nn, nn), dtype=np.bool_)
    for a in range(nn):
        for b in range(nn):
            if a != b:
                d = v[a] - v[b]
                bonded[a, b] = d[0] * d[0] + d[1] * d[1] + d[2] * d[2] <= cutoff2
    pairs = np.zeros((nn * nn, 2), dtype=np.int64)
    for j in range(nn):
        common = np.flatnonzero(bonded[j])
        n_pairs = 0
        for x in range(len(common)):
            for y in range(x + 1, len(common)):
                if bonded[common[x], common[y]]:
                    pairs[n_pairs, 0] = common[x]
                    pairs[n_pairs, 1] = common[y]
                    n_pairs += 1
        out[j, 0] = len(common)
        out[j, 1] = n_pairs
        out[j, 2] = _longest_chain(pairs, n_pairs)


@numba.njit(cache=True)
def _counts(v, nn, cutoff, sig):
    """How many of the first nn neighbours have each signature of a lattice of the test:
    (421, 422, 444, 555, 666)."""
    _signatures(v, nn, cutoff * cutoff, sig)
    counts = np.zeros(5, dtype=np.int64)
    known = ((4, 2, 1), (4, 2, 2), (4, 4, 4), (5, 5, 5), (6, 6, 6))
    for j in range(nn):
        for s in range(5):
            if sig[j, 0] == known[s][0] and sig[j, 1] == known[s][1] and sig[j, 2] == known[s][2]:
                counts[s] += 1
    return counts


@numba.njit(cache=True)
def _adaptive_cna(rows, vectors, which, out):
    k = rows.shape[1]
    sig = np.zeros((14, 3), dtype=np.int64)
    for i in range(len(rows)):
        out[i] = 0
        if not which[i] or k < 12 or (rows[i, :12] < 0).any():
            continue
        v = vectors[i]
        scale = 0.0
        for a in range(12):
            scale += math.sqrt(v[a, 0] ** 2 + v[a, 1] ** 2 + v[a, 2] ** 2)
        factor = np.float32(np.float32(1.0) + np.sqrt(np.float32(2.0))) * np.float32(0.5)
        n421, n422, _, n555, _ = _counts(v, 12, scale / 12 * np.float64(factor), sig)
        if n421 == 12:
            out[i] = 1
        elif n421 == 6 and n422 == 6:
            out[i] = 2
        elif n555 == 12:
            out[i] = 4
        elif k >= 14 and rows[i, 12] >= 0 and rows[i, 13] >= 0:
            scale = 0.0
            for a in range(14):
                d2 = v[a, 0] ** 2 + v[a, 1] ** 2 + v[a, 2] ** 2
                scale += math.sqrt(d2 / np.float32(0.75) if a < 8 else d2)
            _, _, n444, _, n666 = _counts(v, 14, scale / 14 * np.float64(np.float32(1.207)), sig)
            if n666 == 8 and n444 == 6:
                out[i] = 3


def adaptive_cna(rows, vectors, which=None):
    """OVITO's adaptive common neighbour analysis (1 FCC, 2 HCP, 3 BCC, 4 ICO, 0 Other) of every atom
    with which[i] != 0, from its 12 (14) nearest neighbours; signatures from explicit bond lists."""
    rows = np.ascontiguousarray(np.asarray(rows)[:, :14], dtype=np.int64)
    vectors = np.ascontiguousarray(np.asarray(vectors)[:, :14], dtype=np.float64)
    which = np.ones(len(rows), dtype=np.uint8) if which is None else np.asarray(which, dtype=np.uint8)
    out = np.zeros(len(rows), dtype=np.int8)
    _adaptive_cna(rows, vectors, which, out)
    return out
