"""The diamond topology test of OVITO's Identify Diamond (Maras et al., Comput. Phys. Commun. 205,
13 (2016), appendix A), on the plain arrays of a :class:`~ovito_mlclass.frames.Frame`.

An atom is cubic (hexagonal) diamond when its 12 second neighbours, the four nearest of each of
its four nearest neighbours other than itself, sit as the 12 neighbours of an FCC (HCP) atom:
with a cutoff of 1.2071 times their mean distance from the atom, every one of them has four of
the others as common neighbours with two bonds among those four, the bonds apart (CNA signature
421) for all 12 in cubic diamond, a chain of two (422) for six of them in hexagonal diamond. The
test looks at bonds only, not at how far atoms have moved from their sites, so it holds up to
melting wherever the bond network is intact; a complete such second shell is the diamond lattice
by construction.

The classifier uses it as a certificate (:func:`ovito_mlclass.classify.network_types`): an atom
whose most probable class is a diamond keeps the diamond this test finds, even where the
network's posterior or its novelty score alone would have made it Other. Identify Diamond's
"first neighbour" atoms (listed as a neighbour by a diamond atom, not one themselves) only decide
between the two diamonds for atoms the network already calls one.
"""
from __future__ import annotations

import numpy as np

from . import _compiled
from .frames import as_frame
from .neighbors import nearest_neighbors

NONE, CUBIC, HEXAGONAL, NEAR_CUBIC, NEAR_HEXAGONAL = range(5)
CUTOFF_FACTOR = 1.2071068  # sqrt(2) (1 + sqrt(1/2)) / 2: between the FCC first and second shells, in
                           # units of the mean second-neighbour distance (Identify Diamond's value)


def diamond_topology(data, rows=None, vectors=None) -> np.ndarray:
    """Per particle of ``data``: CUBIC or HEXAGONAL where its own second shell passes the test,
    NEAR_CUBIC or NEAR_HEXAGONAL where it does not but it is among the four nearest of atoms that
    do, all of one kind (Identify Diamond's first neighbours, where they are unambiguous), else
    NONE. ``rows`` (n, k >= 4) and ``vectors`` (n, k, 3): every particle's nearest neighbours, as
    the features' search found them (else searched here). A 2-D frame, or one of fewer than five
    particles, is NONE throughout."""
    frame = as_frame(data)
    n = frame.count
    out = np.zeros(n, dtype=np.int8)
    if n < 5 or frame.is2D:
        return out
    if rows is None:
        found = nearest_neighbors(frame, 4, allow_missing=True)
        rows, vectors = found.neighbors.reshape(n, 4), found.vectors.reshape(n, 4, 3)
    out[:] = second_shell_types(rows, vectors)
    rows = rows[:, :4]
    listed = {}
    for kind in (CUBIC, HEXAGONAL):  # listed among the four nearest of an atom of that kind
        listed[kind] = np.zeros(n, dtype=bool)
        neighbors = rows[out == kind].ravel()
        listed[kind][neighbors[neighbors >= 0]] = True
    free = out == NONE
    out[free & listed[CUBIC] & ~listed[HEXAGONAL]] = NEAR_CUBIC
    out[free & listed[HEXAGONAL] & ~listed[CUBIC]] = NEAR_HEXAGONAL
    return out


def second_shell_types(rows, vectors, chunk: int = 32768) -> np.ndarray:
    """CUBIC, HEXAGONAL or NONE for every atom from the first four of every atom's k nearest
    ``rows`` (n, k >= 4; -1: missing) and the vectors to them (n, k, 3): the compiled kernel
    (threaded, bit masks; it reads the rows where they lie, a view of a wider search included)
    where there is one, else NumPy (matrix products of the bond graph; the kernel's reference)."""
    if _compiled.COMPILED:
        return _compiled.kernels.diamond_second_shells(_rows_contiguous(rows, np.int64),
                                                       _rows_contiguous(vectors, np.float64))
    rows = np.ascontiguousarray(rows[:, :4], dtype=np.int64)
    vectors = np.ascontiguousarray(vectors[:, :4], dtype=np.float64)
    out = np.empty(len(rows), dtype=np.int8)
    for start in range(0, len(rows), chunk):
        out[start:start + chunk] = _second_shell_types(rows, vectors, np.arange(start, min(len(rows), start + chunk)))
    return out


def _rows_contiguous(array, dtype) -> np.ndarray:
    """``array`` as is where each row is contiguous (a view of the first columns of a wider array
    is), else a copy of its first four columns."""
    array = np.asarray(array, dtype=dtype)
    inner = array.strides[-1] == array.itemsize and (array.ndim == 2 or array.strides[1] == 3 * array.itemsize)
    return array if inner else np.ascontiguousarray(array[:, :4])


def _second_shell_types(rows, vectors, atoms) -> np.ndarray:
    first = rows[atoms]
    ok = (first >= 0).all(axis=1)
    first = np.where(first >= 0, first, 0)
    ok &= (rows[first] >= 0).all(axis=(1, 2))
    second = vectors[atoms][:, :, None, :] + vectors[first]      # (m, 4, 4, 3): atom -> neighbour's neighbours
    back = (np.abs(second) <= 1e-2).all(axis=3)                   # the atom itself (Identify Diamond's tolerance)
    ok &= (back.sum(axis=2) == 1).all(axis=1)                     # exactly once among each neighbour's four
    others = np.argsort(back, axis=2, kind="stable")[:, :, :3]    # the three that are not the atom
    shell = np.take_along_axis(second, others[..., None], axis=2).reshape(len(atoms), 12, 3)
    cutoff = CUTOFF_FACTOR * np.linalg.norm(shell, axis=2).mean(axis=1)
    gaps = shell[:, :, None, :] - shell[:, None, :, :]
    bonded = np.einsum("aijk,aijk->aij", gaps, gaps) <= (cutoff ** 2)[:, None, None]
    bonded[:, np.arange(12), np.arange(12)] = False
    links = bonded.astype(np.float32)
    shared = links @ links                                         # common neighbours of each pair
    degree = np.where(bonded, shared, 0)                           # [j, k]: k's bonds among j's common neighbours
    common = bonded.sum(axis=2)
    bonds = degree.sum(axis=2)                                     # twice the bonds among the common neighbours
    valid = (common == 4) & (bonds == 4)
    chain_of_two = degree.max(axis=2) == 2                         # the two bonds share an atom: 422, else 421
    ok &= valid.all(axis=1)
    n422 = chain_of_two.sum(axis=1)
    return np.select([ok & (n422 == 0), ok & (n422 == 6)], [CUBIC, HEXAGONAL], NONE).astype(np.int8)
