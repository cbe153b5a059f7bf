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
"""
from __future__ import annotations

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
OPPOSITE = -0.7  # cosine below which two neighbour directions count as opposite (thermal spread allowed)


def ordering_types(structure_types, species, neighbors, vectors) -> np.ndarray:
    """The ordering type (ids above) of every atom: ``structure_types`` (n,) OVITO structure type
    ids, ``species`` (n,) particle types, ``neighbors`` (n, k >= 14) indices of every atom's nearest
    neighbours by increasing distance (-1: missing) and ``vectors`` (n, k, 3) the vectors to them."""
    structure_types = np.asarray(structure_types)
    species = np.asarray(species)
    neighbors = np.asarray(neighbors)
    out = np.zeros(len(structure_types), dtype=np.int32)
    for structure, k in TEMPLATES.items():
        atoms = np.flatnonzero(structure_types == structure)
        if not len(atoms):
            continue
        if neighbors.shape[1] < k:  # a frame too small for this template
            continue
        first = neighbors[atoms, :k]
        if structure in BONDED:  # the first shells of the first shell (the atom itself among them: like)
            second = neighbors[np.where(first >= 0, first, 0)][:, :, :k].reshape(len(atoms), -1)
            second = np.where((first >= 0).repeat(k, axis=1), second, -1)
            rows = np.concatenate([first, second], axis=1)
        else:
            rows = first
        complete = (rows >= 0).all(axis=1)
        like = species[np.where(rows >= 0, rows, 0)] == species[atoms, None]
        n_like = like.sum(axis=1)
        out[atoms[complete & (n_like == like.shape[1])]] = PURE
        if structure in BONDED:  # the first shell all unlike, the second all like
            ordered = complete & ~like[:, :k].any(axis=1) & like[:, k:].all(axis=1)
            out[atoms[ordered]] = BONDED[structure]
        elif structure == 3:  # BCC: B2 has its 8 first neighbours unlike, its 6 second like
            out[atoms[complete & (n_like == 6)]] = B2
        elif structure == 1:  # FCC: L10 and L12
            out[atoms[complete & (n_like == 0)]] = L12_B
            pairs_like = _two_opposite_pairs(vectors[atoms, :12], like)
            pairs_unlike = _two_opposite_pairs(vectors[atoms, :12], ~like)
            out[atoms[complete & (n_like == 4) & pairs_like]] = L10
            out[atoms[complete & (n_like == 8) & pairs_unlike]] = L12_A
    return out


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
    k = min(max(TEMPLATES.values()), n - 1)
    if k < 1:
        return np.zeros(n, dtype=np.int32)
    found = nearest_neighbors(frame, k, allow_missing=True)
    species = np.zeros(n, dtype=np.int32) if frame.types is None else frame.types
    return ordering_types(structure_types, species, found.neighbors.reshape(n, k), found.vectors.reshape(n, k, 3))
