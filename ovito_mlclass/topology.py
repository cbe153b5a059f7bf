"""Topology tests of OVITO's structure identification, on the plain arrays of a
:class:`~ovito_mlclass.frames.Frame`: the classifier's certificates.

- :func:`adaptive_cna`: adaptive common neighbour analysis (Stukowski, Modelling Simul. Mater.
  Sci. Eng. 20, 045021 (2012); OVITO's ``CommonNeighborAnalysisModifier``): the 12 nearest
  neighbours, bonded within 1.207 times their mean distance, form FCC (CNA signature 421 for all
  12), HCP (six 421, six 422) or an icosahedron (555 for all 12); else the 14 nearest (the first 8
  scaled to the second shell's distance) form BCC (666 for 8, 444 for 6).
- :func:`diamond_topology`: Identify Diamond (Maras et al., Comput. Phys. Commun. 205, 13 (2016),
  appendix A; OVITO's ``IdentifyDiamondModifier``): an atom's 12 second neighbours, the four
  nearest of each of its four nearest other than itself, sit as the neighbours of an FCC atom
  (cubic diamond) or an HCP atom (hexagonal diamond), with a cutoff of 1.2071 times their mean
  distance.
- :func:`graphene_topology`: the same for a honeycomb sheet (PTM's graphene template: 3 bonds and
  6 second neighbours): an atom's 6 second neighbours, the 2 other nearest of each of its 3
  nearest, form a ring around it, the hexagon of a triangular lattice.

These look at bonds only, not at how far atoms have moved from their sites: a complete shell
with the lattice's topology is that lattice by construction, and it stays so up to melting
wherever the bond network is intact. The classifier uses them as certificates
(:func:`ovito_mlclass.classify.network_types`): an atom whose most probable class the topology
confirms keeps it, even where the posterior or the novelty score alone would have made it Other;
where the network's two most probable classes are FCC and HCP, adaptive CNA decides between them;
and an atom the network cannot place at all gets the fcc or hcp first shell adaptive CNA finds,
inside a close-packed crystal (:func:`close_packed_shells`,
:func:`ovito_mlclass.classify.close_packed_types`).
"""
from __future__ import annotations

import numpy as np

from . import _compiled
from .frames import as_frame
from .neighbors import nearest_neighbors

NONE, CUBIC, HEXAGONAL, NEAR_CUBIC, NEAR_HEXAGONAL, SECOND_CUBIC, SECOND_HEXAGONAL = range(7)   # diamond_topology
CNA_OTHER, CNA_FCC, CNA_HCP, CNA_BCC, CNA_ICO = range(5)        # adaptive_cna: OVITO's structure type ids
SURROUNDING, SURROUNDED = 16, 0.23  # surrounded: the neighbours counted, the largest offset of their centroid
LOST = 0.25   # close_packed_shells: a largest posterior below this, the network cannot place the atom
GRAPHENE, NEAR_GRAPHENE, SECOND_GRAPHENE = 1, 2, 3   # graphene_topology (NONE: none)
BOND_GAP = 1.25        # graphene: the 4th nearest beyond this times the mean of the 3 bonds (ideal: sqrt 3)
RING = (1 + 3 ** 0.5) / 2   # graphene: ring neighbours within this times the second shell's radius (ideal: 1)
HONEYCOMB_CHUNK = 65536   # graphene: atoms tested at once


def adaptive_cna(data, rows=None, vectors=None, which=None) -> np.ndarray:
    """OVITO's adaptive CNA type (CNA_FCC, CNA_HCP, CNA_BCC, CNA_ICO or CNA_OTHER) of every particle
    of ``data`` (of those where ``which`` (n,) is true, if given; the others CNA_OTHER). ``rows``
    (n, k >= 14) and ``vectors`` (n, k, 3): every particle's nearest neighbours, as the features'
    search found them (else searched here); with 12 <= k < 14 there is no BCC."""
    frame = as_frame(data)
    n = frame.count
    if n == 0 or frame.is2D:
        return np.zeros(n, dtype=np.int8)
    if rows is None:
        found = nearest_neighbors(frame, 14, allow_missing=True)
        rows, vectors = found.neighbors.reshape(n, 14), found.vectors.reshape(n, 14, 3)
    return _cna_of_rows(rows, vectors, which)


def _cna_of_rows(rows, vectors, which=None) -> np.ndarray:
    """Adaptive CNA of each row of neighbours (``rows`` (m, k >= 12), ``vectors`` (m, k, 3))."""
    which = None if which is None else np.ascontiguousarray(which, dtype=np.uint8)
    return _compiled.kernels.adaptive_cna(_rows_contiguous(rows, np.int64, 14),
                                          _rows_contiguous(vectors, np.float64, 14), which)


def close_packed_shells(classes, confidence, data, rows=None, vectors=None) -> np.ndarray | None:
    """For every particle of ``data`` the network cannot place, its largest posterior
    (``confidence`` (n,)) below 0.25: the class (index into ``classes``) FCC or HCP where adaptive
    CNA finds that first shell, else -1 (and -1 for the others). None for a model without both
    classes. ``rows``, ``vectors``: as for :func:`certified_classes`. What
    :func:`ovito_mlclass.classify.close_packed_types` gives inside a close-packed crystal."""
    classes = list(classes)
    if "FCC" not in classes or "HCP" not in classes:
        return None
    out = np.full(len(confidence), -1, dtype=np.int16)
    lost = np.flatnonzero(np.asarray(confidence) < LOST)   # few: their rows only
    if len(lost):
        _, rows, vectors = _searched(data, rows, vectors)
        if rows is not None:
            # a shell is read from its vectors alone, the rows only for missing neighbours (-1): the
            # subset's rows as 0 / -1, which index no atom outside it
            found = _cna_of_rows(np.where(rows[lost, :14] >= 0, 0, -1), vectors[lost])
            for name, kind in (("FCC", CNA_FCC), ("HCP", CNA_HCP)):
                out[lost[found == kind]] = classes.index(name)
    return out


def diamond_topology(data, rows=None, vectors=None) -> np.ndarray:
    """Per particle of ``data``: CUBIC or HEXAGONAL where its own second shell passes Identify
    Diamond's test; NEAR_CUBIC or NEAR_HEXAGONAL where it does not but it is among the four nearest
    of atoms that do, all of one kind (Identify Diamond's first neighbours, where they are
    unambiguous); SECOND_CUBIC or SECOND_HEXAGONAL where it is none of these but among the four
    nearest of such first neighbours, all of one kind, and surrounded by the material
    (:func:`surrounded`; Identify Diamond's second neighbours other than the outermost atoms of a
    free surface); else NONE. ``rows`` (n, k >= 4) and ``vectors`` (n, k, 3): every particle's
    nearest neighbours, as the features' search found them (else searched here; with k < 16, the
    16 nearest are searched for the second neighbours). A 2-D frame is NONE throughout."""
    n, rows, vectors = _searched(data, rows, vectors)
    out = np.zeros(n, dtype=np.int8)
    if rows is None:
        return out
    out[:] = _compiled.kernels.diamond_second_shells(_rows_contiguous(rows, np.int64, 4),
                                                     _rows_contiguous(vectors, np.float64, 4))
    steps = (((CUBIC, HEXAGONAL), (NEAR_CUBIC, NEAR_HEXAGONAL)),
             ((NEAR_CUBIC, NEAR_HEXAGONAL), (SECOND_CUBIC, SECOND_HEXAGONAL)))
    for (cubic, hexagonal), (near_cubic, near_hexagonal) in steps:
        listed = {kind: _listed(rows, 4, out == kind) for kind in (cubic, hexagonal)}
        free = np.flatnonzero((out == NONE) & (listed[cubic] != listed[hexagonal]))
        if near_cubic == SECOND_CUBIC:   # only where the material surrounds the atom
            free = free[surrounded(rows[free], vectors[free])]
        out[free] = np.where(listed[cubic][free], near_cubic, near_hexagonal)
    return out


def graphene_topology(data, rows=None, vectors=None, which=None) -> np.ndarray:
    """Per particle of ``data``: GRAPHENE where its 3 nearest neighbours and theirs form a honeycomb
    cell around it: its 4th nearest lies beyond 1.25 times the mean distance of the 3 (sqrt 3 times
    in graphene), each of the 3 counts the particle among its own 3 nearest, and the 6 others they
    count (its second neighbours) form a ring: each within (1 + sqrt 3) / 2 times their mean
    distance from the particle of exactly two others (the sides of a regular hexagon; the next pairs
    lie sqrt 3 times as far apart). NEAR_GRAPHENE where it is not but among the 3 nearest of such an
    atom, SECOND_GRAPHENE where it is neither but among the 3 nearest of a NEAR_GRAPHENE atom and
    surrounded (:func:`surrounded`), else NONE. ``which`` (n,): only these particles are typed (the
    others NONE; the atoms near them are tested for it). ``rows`` (n, k >= 16), ``vectors``
    (n, k, 3): every particle's nearest neighbours (else searched here). A 2-D frame is NONE."""
    n, rows, vectors = _searched(data, rows, vectors)
    out = np.zeros(n, dtype=np.int8)
    if rows is None:
        return out
    tested = np.ones(n, dtype=bool) if which is None else np.asarray(which, dtype=bool).copy()
    for _ in range(2):   # and the atoms that may list them, or list those: among their 6 nearest
        tested |= _listed(rows, 6, tested)
    for start in range(0, n, HONEYCOMB_CHUNK):   # (atoms, 6, 6, 3) temporaries: a bounded number of atoms at once
        atoms = np.flatnonzero(tested[start:start + HONEYCOMB_CHUNK]) + start
        out[atoms] = np.where(_honeycomb(atoms, rows, vectors), GRAPHENE, NONE)
    for kind, listed_kind in ((GRAPHENE, NEAR_GRAPHENE), (NEAR_GRAPHENE, SECOND_GRAPHENE)):
        free = np.flatnonzero(_listed(rows, 3, out == kind) & (out == NONE))
        if listed_kind == SECOND_GRAPHENE:   # only where the material surrounds the atom
            free = free[surrounded(rows[free], vectors[free])]
        out[free] = listed_kind
    if which is not None:
        out[~np.asarray(which, dtype=bool)] = NONE
    return out


def _honeycomb(atoms, rows, vectors) -> np.ndarray:
    """:func:`graphene_topology`'s own test of ``atoms``."""
    first, first_vectors = rows[atoms, :4], vectors[atoms, :4]
    distance = np.linalg.norm(first_vectors, axis=2)
    ok = (first >= 0).all(axis=1) & (distance[:, 3] > BOND_GAP * distance[:, :3].mean(axis=1))
    bonded = np.where(first[:, :3] >= 0, first[:, :3], 0)
    theirs, their_vectors = rows[bonded, :3], vectors[bonded, :3]        # (m, 3, 3): their 3 nearest
    others = theirs != atoms[:, None, None]
    ok &= (others.sum(axis=2) == 2).all(axis=1) & (theirs >= 0).all(axis=(1, 2))
    # the two others of each, in order: where the atom itself is first, skip it
    pick = np.argsort(~others, axis=2, kind="stable")[:, :, :2]
    second = first_vectors[:, :3, None, :] + np.take_along_axis(their_vectors, pick[..., None], axis=2)
    second = second.reshape(len(atoms), 6, 3)
    radius = np.linalg.norm(second, axis=2).mean(axis=1)
    apart = np.linalg.norm(second[:, :, None] - second[:, None], axis=3)
    ring = (apart <= RING * radius[:, None, None]) & ~np.eye(6, dtype=bool)
    return ok & (ring.sum(axis=2) == 2).all(axis=1)


def _searched(data, rows, vectors):
    """The particle count of ``data`` and every particle's nearest neighbours, at least 16 (the
    given ``rows`` and ``vectors`` where they reach that far, else searched); no rows (None) for an
    empty or 2-D frame."""
    frame = as_frame(data)
    n = frame.count
    if n == 0 or frame.is2D:
        return n, None, None
    if rows is None or rows.shape[1] < SURROUNDING:
        found = nearest_neighbors(frame, SURROUNDING, allow_missing=True)
        rows, vectors = found.neighbors.reshape(n, SURROUNDING), found.vectors.reshape(n, SURROUNDING, 3)
    return n, rows, vectors


def _listed(rows, k, among) -> np.ndarray:
    """Per particle: is it among the ``k`` nearest (``rows``) of a particle of ``among`` (n,) bool?"""
    listed = np.zeros(len(rows), dtype=bool)
    near = rows[among, :k].ravel()
    listed[near[near >= 0]] = True
    return listed


def surrounded(rows, vectors) -> np.ndarray:
    """Per particle: its 16 nearest neighbours (a diamond lattice's first and second shells) surround
    it, their centroid within 0.23 times their mean distance from it. In a crystal the centroid is
    near the atom, also next to a broken bond; an atom with half of its surroundings missing (the
    outermost atoms of a free surface) lies far off it. The threshold lies between the two on the
    hot diamond crystals and Si surfaces of the training split (at most 0.21 there; 0.25 and more).
    ``rows`` (n, k >= 16), ``vectors`` (n, k, 3); an atom with fewer than 16 is not surrounded."""
    rows, vectors = rows[:, :SURROUNDING], vectors[:, :SURROUNDING]
    distance = np.linalg.norm(vectors, axis=2).mean(axis=1)
    offset = np.linalg.norm(vectors.mean(axis=1), axis=1)
    return (rows >= 0).all(axis=1) & (offset <= SURROUNDED * distance)


def _rows_contiguous(array, dtype, k: int) -> np.ndarray:
    """``array``'s first ``k`` columns as a view where each row is contiguous (the kernels read the
    rows of a wider search in place), else a copy."""
    array = np.asarray(array, dtype=dtype)[:, :k]
    inner = array.strides[-1] == array.itemsize and (array.ndim == 2 or array.strides[1] == 3 * array.itemsize)
    return array if inner else np.ascontiguousarray(array)


CNA_CLASSES = {"FCC": CNA_FCC, "HCP": CNA_HCP, "BCC": CNA_BCC, "ICO": CNA_ICO}
DIAMOND_CLASSES = {"Cubic diamond": (CUBIC, NEAR_CUBIC, SECOND_CUBIC),
                   "Hexagonal diamond": (HEXAGONAL, NEAR_HEXAGONAL, SECOND_HEXAGONAL)}


def certified_classes(classes, best, data, rows=None, vectors=None, probabilities=None) -> np.ndarray | None:
    """The class (index into ``classes``) the topology certifies for every particle of ``data``
    whose network's most probable class is ``best`` (n,), -1 where none: adaptive CNA's type where
    it is that class (FCC, HCP, BCC, ICO), Identify Diamond's diamond where that class is either
    diamond (the test decides which), graphene where :func:`graphene_topology` finds it. None where
    no particle's most probable class has a test.
    ``rows``, ``vectors``: every particle's nearest neighbours (k >= 16), as the features' search
    found them. ``probabilities`` (n, classes), the network's posteriors: where its two most probable
    classes are FCC and HCP, adaptive CNA's answer decides between them (an fcc atom next to a twin
    plane, whose averaged descriptors see the hcp atoms of the plane, has an fcc first shell)."""
    classes = list(classes)
    out = np.full(len(best), -1, dtype=np.int16)
    tested = False
    by_cna = {classes.index(name): kind for name, kind in CNA_CLASSES.items() if name in classes}
    member = lambda indices: np.isin(np.arange(len(classes)), indices)  # per class: a lookup, faster than isin(best)
    is_class = lambda indices: member(indices)[best]
    candidates = is_class(list(by_cna))
    if candidates.any():
        tested = True
        class_of = np.full(5, -1, dtype=np.int16)
        for index, kind in by_cna.items():
            class_of[kind] = index
        found = class_of[adaptive_cna(data, rows, vectors, which=candidates)]
        out[candidates & (found == best)] = best[candidates & (found == best)]
        if probabilities is not None and "FCC" in classes and "HCP" in classes:
            close_packed = member([classes.index("FCC"), classes.index("HCP")])
            # the atoms where CNA finds the other close-packed class (few): is it the runner-up?
            contested = np.flatnonzero(candidates & close_packed[best] & close_packed[found] & (found != best) & (found >= 0))
            ranked = np.array(probabilities[contested], dtype=np.float64)
            ranked[np.arange(len(contested)), best[contested]] = -1.0
            runner_up = contested[ranked.argmax(axis=1) == found[contested]]
            out[runner_up] = found[runner_up]
    if "Graphene" in classes:
        proposed = best == classes.index("Graphene")
        if proposed.any():
            tested = True
            out[proposed & (graphene_topology(data, rows, vectors, which=proposed) != NONE)] = classes.index("Graphene")
    if all(name in classes for name in DIAMOND_CLASSES):
        proposed = is_class([classes.index(name) for name in DIAMOND_CLASSES])
        if proposed.any():
            tested = True
            kinds = diamond_topology(data, rows, vectors)
            for name, shell in DIAMOND_CLASSES.items():
                out[proposed & np.isin(kinds, shell)] = classes.index(name)
    return out if tested else None
