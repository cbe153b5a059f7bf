"""Chemical ordering of two-species crystals, as OVITO's polyhedral template matching reports it
(``PolyhedralTemplateMatchingModifier(output_ordering=True)``: the ``Ordering Type`` property with
the ids of ``PolyhedralTemplateMatchingModifier.OrderingType``).

An atom's ordering follows from its structure type (the classifier's) and the species of the
neighbours that structure's template holds. They are counted as sets, and the second shell of the
diamonds and graphene is taken as the first shells of the first-shell neighbours, so that near
melting, when shells come close in distance (in wurtzite an unlike atom lies 2% beyond the 12
like second neighbours), the ordering does not depend on the order of the neighbours:

=====================  ==============================  =============================================
ordering (id)          structure                       neighbours (the template's nearest)
=====================  ==============================  =============================================
PURE (1)               any crystal                     all of the template's neighbours like the atom
L10 (2)                FCC                             of 12: 4 like, forming two opposite pairs (a plane)
L12_A (3)              FCC                             of 12: 8 like, the 4 unlike forming two opposite pairs
L12_B (4)              FCC                             of 12: none like (the minority site)
B2 (5)                 BCC                             of 14: 8 unlike, 6 like
ZINCBLENDE_WURTZITE    cubic or hexagonal diamond      the 4 nearest unlike; their other 12 neighbours
(6)                                                    like the atom
BORON_NITRIDE (7)      graphene                        the 3 nearest unlike; their other 6 neighbours
                                                       like the atom
OTHER (0)              anything else                   (also atoms of no crystal structure)
=====================  ==============================  =============================================

The template's neighbours are the nearest ones. Near melting an atom of the next shell now and
then comes nearer than one of the first (in L1₂ Ni₃Al at 0.85 T_m about one atom in a hundred),
and the species counted are then not the template's. The FCC and BCC templates are
centrosymmetric, every neighbour has an opposite one, while an intruder from the next shell has
none; so an FCC or BCC atom whose nearest neighbours give no ordering is tried once more with the
12 (14) of its 13 (15) nearest that best form opposite pairs. In the diamonds and graphene a bond
now and then stretches beyond an atom of the second shell, or beyond several; an atom whose bonds
give no ordering is tried once more with the bonds of it and of its bonded neighbours taken as the
4 of their 16 nearest with the largest faces of their Voronoi cells, as PTM picks them (a stretched
bond keeps a large face), and in graphene, whose sheet leaves the cell open, as the 3 of the 4
nearest whose directions best form a triangle.
"""
from __future__ import annotations

import itertools

import numpy as np

from .frames import as_frame
from .neighbors import nearest_neighbors

# PolyhedralTemplateMatchingModifier.OrderingType (OVITO 3.17): id -> (name and colour of the type of
# the 'Ordering Type' property, the name in PTM's 'ordering_counts' attributes)
ORDERING_TYPES = {
    0: ("Other", (0.95, 0.95, 0.95), "NONE"), 1: ("Pure", (0.4, 0.62, 1.0), "PURE"),
    2: ("L10", (1.0, 0.6, 0.2), "L10"), 3: ("L12 (A-site)", (0.35, 0.85, 0.35), "L12_A"),
    4: ("L12 (B-site)", (1.0, 0.35, 0.35), "L12_B"), 5: ("B2", (0.75, 0.4, 1.0), "B2"),
    6: ("Zincblende/Wurtzite", (0.2, 0.88, 0.9), "ZINCBLENDE_WURTZITE"),
    7: ("Boron/Nitride", (1.0, 0.9, 0.2), "BORON_NITRIDE"),
}
OTHER, PURE, L10, L12_A, L12_B, B2, ZINCBLENDE_WURTZITE, BORON_NITRIDE = range(8)

# structure type id (OVITO's) -> template neighbours (diamonds, graphene: the first shell; the second
# is the first shells' first shells)
TEMPLATES = {1: 12, 2: 12, 3: 14, 4: 12, 5: 6, 6: 4, 7: 4, 8: 3}
BONDED = {6: ZINCBLENDE_WURTZITE, 7: ZINCBLENDE_WURTZITE, 8: BORON_NITRIDE}
CENTROSYMMETRIC = (1, 3)  # FCC, BCC: the template's neighbours come in opposite pairs
# like neighbours among the k + 1 from which leaving one out can give an ordering (FCC: 0, 4, 8, 12; BCC: 6, 14)
RETRY_COUNTS = {1: (0, 1, 4, 5, 8, 9, 12, 13), 3: (6, 7, 14, 15)}
NEIGHBORS_NEEDED = 16  # a diamond's first and second shells, its Voronoi cell
OPPOSITE = -0.7  # cosine below which two neighbour directions count as opposite (thermal spread allowed)
# a diamond atom's bonds are looked for among its Voronoi faces where its 5th nearest neighbour lies
# within this factor of its 4th (the second shell lies at 1.63 bond lengths; the stretched bonds found
# on the training split all had their 5th nearest within 1.15 of their 4th)
AMBIGUOUS = 1.2


def ordering_types(structure_types, species, neighbors, vectors) -> np.ndarray:
    """The ordering type (ids above) of every atom: ``structure_types`` (n,) OVITO structure type
    ids, ``species`` (n,) particle types, ``neighbors`` (n, k >= 14; 15 for the second try of BCC
    atoms, 16 for the diamonds' Voronoi cells) indices of every atom's nearest neighbours by
    increasing distance (-1: missing) and ``vectors`` (n, k, 3) the vectors to them."""
    structure_types = np.asarray(structure_types)
    species = np.asarray(species)
    neighbors = np.asarray(neighbors)
    vectors = np.asarray(vectors)
    out = np.zeros(len(structure_types), dtype=np.int32)
    for structure, k in TEMPLATES.items():
        atoms = np.flatnonzero(structure_types == structure)
        if not len(atoms) or neighbors.shape[1] < k:  # none, or a frame too small for this template
            continue
        out[atoms] = _ordering(structure, k, atoms, species, neighbors, neighbors[atoms, :k], vectors[atoms, :k])
        if structure in CENTROSYMMETRIC and neighbors.shape[1] > k:
            again = atoms[out[atoms] == OTHER]
            again = again[(neighbors[again, :k + 1] >= 0).all(axis=1)]
            # only where leaving one out can give a count of like neighbours that some ordering has
            n_like = (species[neighbors[again, :k + 1]] == species[again, None]).sum(axis=1)
            again = again[np.isin(n_like, RETRY_COUNTS[structure])]
            if len(again):
                keep = _most_centrosymmetric(vectors[again, :k + 1])
                rows = np.take_along_axis(neighbors[again, :k + 1], keep, axis=1)
                rows_vectors = np.take_along_axis(vectors[again, :k + 1], keep[:, :, None], axis=1)
                out[again] = _ordering(structure, k, again, species, neighbors, rows, rows_vectors)
        # the bonds of these atoms and of their bonded neighbours: the diamonds' from their Voronoi
        # cells, graphene's (a sheet: no closed cell) from the directions of its 4 nearest
        if structure in BONDED and neighbors.shape[1] > k:
            again = atoms[out[atoms] == OTHER]
            again = again[(neighbors[again, :k] >= 0).all(axis=1)]
            if len(again):
                repaired = np.union1d(again, neighbors[again, :k].ravel())
                bonds = (_bonds_by_faces if k == 4 else _bonds_by_angles)(k, repaired, neighbors, vectors)
                out[again] = _ordering(structure, k, again, species, bonds, bonds[again], vectors[again, :k])
    return out


def _ordering(structure, k, atoms, species, neighbors, first, first_vectors) -> np.ndarray:
    """Ordering of ``atoms`` of one structure type whose template neighbours are ``first`` (m, k)
    with the vectors ``first_vectors`` (m, k, 3); ``neighbors``: every atom's nearest (the second
    shell of the bonded structures)."""
    out = np.zeros(len(atoms), dtype=np.int32)
    if structure in BONDED:  # the first shells of the first shell (the atom itself among them: like)
        second = neighbors[np.where(first >= 0, first, 0)][:, :, :k].reshape(len(atoms), -1)
        second = np.where((first >= 0).repeat(k, axis=1), second, -1)
        rows = np.concatenate([first, second], axis=1)
    else:
        rows = first
    complete = (rows >= 0).all(axis=1)
    like = species[np.where(rows >= 0, rows, 0)] == species[atoms, None]
    n_like = like.sum(axis=1)
    out[complete & (n_like == like.shape[1])] = PURE
    if structure in BONDED:  # the first shell all unlike, the second all like
        out[complete & ~like[:, :k].any(axis=1) & like[:, k:].all(axis=1)] = BONDED[structure]
    elif structure == 3:  # BCC: B2 has its 8 first neighbours unlike, its 6 second like
        out[complete & (n_like == 6)] = B2
    elif structure == 1:  # FCC: L10 and L12
        out[complete & (n_like == 0)] = L12_B
        out[complete & (n_like == 4) & _two_opposite_pairs(first_vectors, like)] = L10
        out[complete & (n_like == 8) & _two_opposite_pairs(first_vectors, ~like)] = L12_A
    return out


def _bonds_by_faces(k, atoms, neighbors, vectors) -> np.ndarray:
    """Every atom's ``k`` nearest neighbours, except for ``atoms``: the k of their neighbours with
    the largest faces of their Voronoi cells (PTM's choice). A stretched bond keeps a large face
    where it has fallen behind atoms of the second shell in distance (a perfect diamond's bond faces
    are 15 times larger than its second neighbours')."""
    from .descriptors.reference import _voronoi_face_areas  # numba: only where a hot diamond needs it

    bonds = neighbors[:, :k].copy()
    atoms = atoms[(neighbors[atoms] >= 0).all(axis=1) & (np.abs(vectors[atoms]).sum(axis=2) > 0).all(axis=1)]
    d = np.linalg.norm(vectors[atoms, k - 1:k + 1], axis=2)
    atoms = atoms[d[:, 1] < AMBIGUOUS * d[:, 0]]    # elsewhere the nearest are the bonds beyond doubt
    c = neighbors.shape[1]
    areas = np.zeros(len(atoms) * c)      # a face the neighbours leave open: 0
    _voronoi_face_areas(np.arange(len(atoms) + 1, dtype=np.int64) * c,
                        np.ascontiguousarray(vectors[atoms].reshape(-1, 3), dtype=np.float64), areas)
    largest = np.argsort(-areas.reshape(len(atoms), c), axis=1, kind="stable")[:, :k]
    bonds[atoms] = np.take_along_axis(neighbors[atoms], largest, axis=1)
    return bonds


def _bonds_by_angles(k, atoms, neighbors, vectors) -> np.ndarray:
    """Every atom's ``k`` nearest neighbours, except for ``atoms``: the k of their k + 1 nearest whose
    directions best form the bonds (graphene, k = 3: three at 120°), i.e. with the smallest sum of
    the squared deviations of their bond-angle cosines from the ideal one."""
    candidates = k + 1
    bonds = neighbors[:, :k].copy()
    atoms = atoms[(neighbors[atoms, :candidates] >= 0).all(axis=1)]
    unit = vectors[atoms, :candidates]
    unit = unit / np.linalg.norm(unit, axis=2, keepdims=True)
    deviation = (unit @ unit.transpose(0, 2, 1) - (-0.5 if k == 3 else -1.0 / 3.0)) ** 2
    choices = np.array(list(itertools.combinations(range(candidates), k)))    # (c, k)
    pairs = np.array(list(itertools.combinations(range(k), 2)))
    cost = deviation[:, choices[:, pairs[:, 0]], choices[:, pairs[:, 1]]].sum(axis=2)   # (atoms, c)
    keep = choices[cost.argmin(axis=1)]
    bonds[atoms] = np.take_along_axis(neighbors[atoms, :candidates], keep, axis=1)
    return bonds


def _all_but(left_out, candidates: int) -> np.ndarray:
    """Per row, the positions 0 .. candidates - 1 but ``left_out`` (m,), ascending: (m, candidates - 1)."""
    everyone = np.arange(candidates)
    return np.where(everyone[None, :-1] < left_out[:, None], everyone[None, :-1], everyone[None, 1:])


def _most_centrosymmetric(vectors, chunk: int = 32768) -> np.ndarray:
    """Per atom, of its k + 1 nearest neighbours ``vectors`` (m, k + 1, 3): the positions (m, k),
    ascending, of the k that best form opposite pairs, i.e. the one left out minimises the sum over
    the others of 1 + cos(angle to the most nearly opposite of the others)."""
    m, candidates = vectors.shape[:2]
    keep = np.empty((m, candidates - 1), dtype=np.int64)
    everyone = np.arange(candidates)
    for start in range(0, m, chunk):
        unit = vectors[start:start + chunk]
        unit = unit / np.sqrt(np.einsum("aij,aij->ai", unit, unit))[:, :, None]
        cosines = unit @ unit.transpose(0, 2, 1)
        cosines[:, everyone, everyone] = np.inf
        partner = cosines.argmin(axis=2)          # each neighbour's most nearly opposite one
        rows = np.arange(len(unit))[:, None]
        best = cosines[rows, everyone, partner]
        cosines[rows, everyone, partner] = np.inf
        second = cosines.min(axis=2)              # its next best, should the partner be left out
        # leaving out d: the others keep their partners unless it was d
        cost = (1.0 + best).sum(axis=1)[:, None] - (1.0 + best)
        cost += np.bincount((rows * candidates + partner).ravel(), weights=(second - best).ravel(),
                            minlength=cost.size).reshape(cost.shape)
        keep[start:start + len(unit)] = _all_but(cost.argmin(axis=1), candidates)
    return keep


def _two_opposite_pairs(vectors, chosen) -> np.ndarray:
    """Per atom: are its ``chosen`` neighbours (exactly four of them where this matters) two pairs
    of opposite directions, i.e. a square around the atom in one lattice plane?"""
    result = np.zeros(len(vectors), dtype=bool)
    four = np.flatnonzero(chosen.sum(axis=1) == 4)
    if not len(four):
        return result
    picked = vectors[four][chosen[four]].reshape(len(four), 4, 3)
    unit = picked / np.linalg.norm(picked, axis=2, keepdims=True)
    cosines = np.einsum("aij,akj->aik", unit, unit)
    cosines[:, np.arange(4), np.arange(4)] = 2.0  # never its own partner
    partner = cosines.argmin(axis=2)
    mutual = partner[np.arange(len(four))[:, None], partner] == np.arange(4)
    result[four] = mutual.all(axis=1) & (cosines.min(axis=2) < OPPOSITE).all(axis=1)
    return result


def ordering_of(data, structure_types) -> np.ndarray:
    """:func:`ordering_types` of the particles of ``data`` (a :class:`~ovito_mlclass.frames.Frame`
    or what :func:`~ovito_mlclass.frames.as_frame` reads; its particle types as species: without
    them every crystalline atom is PURE)."""
    frame = as_frame(data)
    n = frame.count
    k = min(NEIGHBORS_NEEDED, n - 1)
    if k < 1:
        return np.zeros(n, dtype=np.int32)
    found = nearest_neighbors(frame, k, allow_missing=True)
    species = np.zeros(n, dtype=np.int32) if frame.types is None else frame.types
    return ordering_types(structure_types, species, found.neighbors.reshape(n, k), found.vectors.reshape(n, k, 3))
