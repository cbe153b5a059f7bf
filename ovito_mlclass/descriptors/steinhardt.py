"""Steinhardt bond-order invariants q_l, w^_l and their neighbour averages qbar_l, wbar^_l.

    q_lm(i) = sum_j w_ij Y_lm(r^_ij) / sum_j w_ij          (w_ij = 1, or the Voronoi face-area fraction)
    q_l(i)  = sqrt(4 pi / (2l + 1) sum_m |q_lm(i)|^2)
    w^_l(i) = sum_{m1+m2+m3=0} (l l l; m1 m2 m3) q_lm1 q_lm2 q_lm3 / (sum_m |q_lm|^2)^(3/2)
    qbar_lm(i) = (q_lm(i) + sum_j q_lm(j)) / (N_i + 1)     (Lechner & Dellago, J. Chem. Phys. 129, 114707 (2008))

Definitions and the averaging convention are those of OVITO's SteinhardtParametersModifier;
atoms without neighbours get 0, as in OVITO.
"""
from __future__ import annotations

import numbers
from dataclasses import dataclass

import numpy as np

from ..neighbors import InputError, NeighborList
from .. import _compiled
from .wigner import coupling_table

MAX_DEGREE = 16
# q_lm the neighbour average keeps per thread: a few MB, so that the rows stay in the cache
CACHE_BYTES = 4 << 20


@dataclass(frozen=True)
class Steinhardt:
    """Which Steinhardt invariants to compute.

    ``same_species_only`` keeps only the bonds between atoms of the same species (for a binary
    of large and small particles these are the q_l^LL / q_l^SS of Boattini et al., Mol. Phys.
    116, 3066 (2018)); the neighbour average then also runs over same-species neighbours only.
    """

    degrees: tuple[int, ...] = (4, 6)
    averaged: bool = True
    wl: bool = True
    same_species_only: bool = False

    def __post_init__(self):
        degrees = tuple(self.degrees)
        if not degrees:
            raise ValueError("At least one degree l is required.")
        if any(isinstance(l, bool) or not isinstance(l, numbers.Integral) or not 0 <= l <= MAX_DEGREE
               for l in degrees):
            raise ValueError(f"Degrees must be integers in 0..{MAX_DEGREE}, got {degrees}.")
        degrees = tuple(int(l) for l in degrees)
        if len(set(degrees)) != len(degrees):
            raise ValueError(f"Degrees must not repeat, got {degrees}.")
        object.__setattr__(self, "degrees", degrees)

    @property
    def feature_names(self) -> list[str]:
        blocks = ["q"] + (["w"] if self.wl else [])
        if self.averaged:
            blocks += ["qbar"] + (["wbar"] if self.wl else [])
        return [f"{block}{l}" for block in blocks for l in self.degrees]

    def compute(self, neighbors: NeighborList, species: np.ndarray | None = None,
                out: np.ndarray | None = None, first: int | None = None) -> np.ndarray:
        """Descriptors of every atom of ``neighbors``, shape ``(n_atoms, len(feature_names))``,
        written into ``out`` if given (float64; its rows may lie inside a wider array, e.g. a block
        of columns of a feature matrix). ``first = k``: only the first k bonds of each row count
        (the k nearest of a longer nearest-neighbour list, whose rows are sorted by distance),
        without copying them."""
        if first is not None and (self.same_species_only or first < 1):
            raise ValueError("'first' needs a positive number of bonds and all species.")
        if self.same_species_only:
            if species is None:
                raise InputError("same_species_only needs the species of every atom.")
            species = np.asarray(species)
            centers = np.repeat(np.arange(neighbors.n_atoms), neighbors.counts)
            neighbors = neighbors.filtered(species[neighbors.neighbors] == species[centers])
        return _kernel(neighbors, [(self, first, out)], self.averaged)[0]


def compute_together(neighbors: NeighborList, shells, single_precision: bool = False) -> list[np.ndarray]:
    """Several sets of invariants of one neighbour list in one pass of the kernel: ``shells`` =
    ``[(recipe, first, out), ...]`` (``first = k``: the first k bonds of each row, ``None``: all;
    ``out``: an array to write into, or ``None``), all recipes averaged or none, none with
    ``same_species_only``. The 12 and the 4 nearest neighbours of one search cost one sweep over
    the atoms instead of two (the neighbour average looks each neighbour up once for both).
    ``single_precision``: summed and averaged in float32 (about 1e-7 relative, and faster; the
    outputs are float64 either way). Returns the outputs in the order given."""
    if not shells:
        raise ValueError("No Steinhardt shells given.")
    if len({recipe.averaged for recipe, _, _ in shells}) != 1 or any(r.same_species_only for r, _, _ in shells):
        raise ValueError("Steinhardt shells computed together must all be averaged or none, on all species.")
    return _kernel(neighbors, shells, shells[0][0].averaged, single_precision)


def _kernel(neighbors: NeighborList, shells, averaged: bool, single_precision: bool = False) -> list[np.ndarray]:
    """The compiled kernel (or the numba reference) on ``shells`` as :func:`compute_together` takes them."""
    outputs, arguments = [], []
    for recipe, first, out in shells:
        if first is not None and first < 1:
            raise ValueError("'first' needs a positive number of bonds.")
        out = np.empty((neighbors.n_atoms, len(recipe.feature_names))) if out is None else out
        start, m, coeff = coupling_table(recipe.degrees)
        arguments.append((-1 if first is None else int(first), np.asarray(recipe.degrees, dtype=np.int32), recipe.wl,
                          start, m, coeff, out))
        outputs.append(out)
    bins = None if neighbors.bins is None else neighbors.bins.as_tuple()
    _compiled.kernels.steinhardt_shells(neighbors.offsets, neighbors.neighbors, neighbors.vectors, neighbors.weights,
                                        bins, averaged, CACHE_BYTES, arguments, single_precision)
    return outputs
