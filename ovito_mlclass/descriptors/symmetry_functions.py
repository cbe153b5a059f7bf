"""Behler-Parrinello atom-centred symmetry functions (J. Behler, J. Chem. Phys. 134, 074106 (2011)).

    fc(r) = (cos(pi r / r_c) + 1) / 2 for r < r_c, else 0
    G2_i  = sum_j exp(-eta (r_ij - r_s)^2) fc(r_ij)
    G4_i  = 2^(1-zeta) sum_{j<k} (1 + lambda cos theta_ijk)^zeta exp(-eta (r_ij^2 + r_ik^2 + r_jk^2)) fc(r_ij) fc(r_ik) fc(r_jk)
    G5_i  = 2^(1-zeta) sum_{j<k} (1 + lambda cos theta_ijk)^zeta exp(-eta (r_ij^2 + r_ik^2)) fc(r_ij) fc(r_ik)

Angular sums run over unordered neighbour pairs, as in dscribe (Behler's double sum is twice
this). Element-resolved: one G2 block per neighbour species, one G4/G5 block per unordered
species pair. The angular factor is computed as 2 ((1 + lambda cos) / 2)^zeta, which stays finite
for any zeta (2^(1-zeta) and (1 + lambda cos)^zeta alone under- and overflow beyond zeta = 1023).
"""
from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations_with_replacement

import numpy as np

from ..neighbors import MAX_NEIGHBORS, InputError, NeighborList
from .. import _compiled
from .ranges import ANY, NON_NEGATIVE, POSITIVE, Range

# The numbers of a parameter row and their allowed values (lambda in [-1, 1] keeps 1 + lambda cos >= 0).
ANGULAR = (("eta", NON_NEGATIVE), ("zeta", NON_NEGATIVE), ("lambda", Range(-1.0, 1.0)))
ROWS = {"G2": (("eta", NON_NEGATIVE), ("r_s", ANY)), "G4": ANGULAR, "G5": ANGULAR}


def _rows(params, name: str) -> tuple[tuple[float, ...], ...]:
    spec = ROWS[name]
    try:
        rows = tuple(tuple(row) for row in params)
    except TypeError:
        raise ValueError(f"{name} parameters must be a list of ({', '.join(n for n, _ in spec)}) rows, "
                         f"got {params!r}.") from None
    for row in rows:
        if len(row) != len(spec):
            raise ValueError(f"Each {name} parameter set needs {len(spec)} numbers "
                             f"({', '.join(n for n, _ in spec)}), got {list(row)}.")
        for value, (label, allowed) in zip(row, spec):
            if value not in allowed:
                raise ValueError(f"{name} {label} must be {allowed}, got {value!r}.")
    return tuple(tuple(float(v) for v in row) for row in rows)


@dataclass(frozen=True)
class SymmetryFunctions:
    """Which symmetry functions to compute: ``g2`` rows ``(eta, r_s)``, ``g4``/``g5`` rows
    ``(eta, zeta, lambda)``; eta in 1/length^2, r_s and ``cutoff`` in length units."""

    cutoff: float
    g2: tuple[tuple[float, float], ...] = ()
    g4: tuple[tuple[float, float, float], ...] = ()
    g5: tuple[tuple[float, float, float], ...] = ()

    def __post_init__(self):
        if self.cutoff not in POSITIVE:
            raise ValueError(f"The cutoff must be {POSITIVE}, got {self.cutoff!r}.")
        object.__setattr__(self, "cutoff", float(self.cutoff))
        for name in ROWS:
            object.__setattr__(self, name.lower(), _rows(getattr(self, name.lower()), name))
        if not (self.g2 or self.g4 or self.g5):
            raise ValueError("At least one G2, G4 or G5 parameter set is required.")

    def feature_names(self, species_names: list[str]) -> list[str]:
        pairs = list(combinations_with_replacement(species_names, 2))
        return ([f"G2_{s}_{k}" for s in species_names for k in range(len(self.g2))]
                + [f"G4_{a}_{b}_{k}" for a, b in pairs for k in range(len(self.g4))]
                + [f"G5_{a}_{b}_{k}" for a, b in pairs for k in range(len(self.g5))])

    def compute(self, neighbors: NeighborList, species: np.ndarray | None = None, n_species: int = 1,
                out: np.ndarray | None = None) -> np.ndarray:
        """Symmetry functions of every atom. ``species`` holds 0-based species indices (all 0 if
        omitted); the neighbour list must include every neighbour within ``cutoff``."""
        if species is None:
            species = np.zeros(neighbors.n_atoms, dtype=np.int32)
        species = np.ascontiguousarray(species, dtype=np.int32)
        if len(species) != neighbors.n_atoms:
            raise InputError("species must have one entry per atom.")
        if (self.g4 or self.g5) and neighbors.n_atoms and neighbors.counts.max() > MAX_NEIGHBORS:
            # the angular terms sum over the pairs of an atom's neighbours: their square
            atom = int(neighbors.counts.argmax())
            raise InputError(f"The angular symmetry functions take at most {MAX_NEIGHBORS} neighbours per atom "
                             f"(their pairs are summed); particle {atom} has {neighbors.counts[atom]} within the "
                             f"cutoff {self.cutoff:g}.")
        n_features = len(self.feature_names([str(s) for s in range(n_species)]))
        if out is None:
            out = np.empty((neighbors.n_atoms, n_features))
        _compiled.kernels.symmetry_functions(neighbors.offsets, neighbors.neighbors, neighbors.vectors, species, n_species,
                                   self.cutoff, np.asarray(self.g2, dtype=np.float64).reshape(-1, 2),
                                   np.asarray(self.g4, dtype=np.float64).reshape(-1, 3),
                                   np.asarray(self.g5, dtype=np.float64).reshape(-1, 3), out)
        return out
