"""Stage 1 of the data flow: positions -> neighbour lists.

Nearest-neighbour and cutoff searches run in the compiled kernel's multithreaded cell list
(``cpp_kernels/cell_list.cpp``: periodic- and triclinic-aware, periodic images of small cells
included). They reproduce OVITO's ``NearestNeighborFinder`` and ``CutoffNeighborFinder``, the
reference they are tested against (tests/test_neighbors.py), which we used before; we have our
own because in the benchmark (1M atoms, one thread) OVITO's finders alone took longer than the
whole descriptor computation was meant to. Without the compiled kernel (numba fallback) and for
2D cells, OVITO's finders are used. Voronoi neighbours come from OVITO's Voronoi analysis. The
result is a CSR-style :class:`NeighborList` that the descriptor kernels consume as flat,
contiguous arrays.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from ovito.data import CutoffNeighborFinder, DataCollection, NearestNeighborFinder

__all__ = [
    "NeighborList",
    "InputError",
    "check_positions",
    "nearest_neighbors",
    "cutoff_neighbors",
    "voronoi_neighbors",
    "subset",
]


class InputError(ValueError):
    """The structure cannot be analysed as given (empty, non-finite, too few neighbours ...)."""


@dataclass(frozen=True)
class NeighborList:
    """Bonds of every atom in CSR form.

    The bonds of atom ``i`` are rows ``offsets[i]:offsets[i + 1]`` of ``neighbors`` (neighbour
    index) and ``vectors`` (``x_j - x_i`` with the periodic image applied). ``weights`` is ``None``
    for uniform weights, else one weight per bond (Voronoi: relative face area).
    """

    offsets: np.ndarray
    neighbors: np.ndarray
    vectors: np.ndarray
    weights: np.ndarray | None = None

    @property
    def n_atoms(self) -> int:
        return len(self.offsets) - 1

    @property
    def counts(self) -> np.ndarray:
        return np.diff(self.offsets)

    def filtered(self, keep: np.ndarray) -> "NeighborList":
        """The same list restricted to the bonds where ``keep`` is true."""
        counts = np.add.reduceat(keep.astype(np.int64), self.offsets[:-1]) if len(keep) else self.counts * 0
        counts[self.counts == 0] = 0  # reduceat returns the element itself for empty segments
        offsets = np.zeros(self.n_atoms + 1, dtype=np.int64)
        np.cumsum(counts, out=offsets[1:])
        weights = None if self.weights is None else self.weights[keep]
        return NeighborList(offsets, self.neighbors[keep], self.vectors[keep], weights)


def check_positions(data: DataCollection) -> np.ndarray:
    """The particle positions, after checking that there are some and that all are finite."""
    if data.particles is None or data.particles.count == 0:
        raise InputError("The input contains no particles.")
    positions = np.asarray(data.particles.positions)
    bad = ~np.isfinite(positions).all(axis=1)
    if bad.any():
        where = np.flatnonzero(bad)
        raise InputError(
            f"{len(where)} particle(s) have non-finite (NaN or infinite) coordinates, "
            f"first at index {where[0]} (position {positions[where[0]].tolist()})."
        )
    if data.cell is None:
        raise InputError("The input has no simulation cell.")
    return positions


def subset(data: DataCollection, mask: np.ndarray) -> DataCollection:
    """A data collection holding only the particles where ``mask`` is true (same cell), so that
    the others are treated as if they did not exist, as OVITO's ``only_selected`` options do."""
    reduced = DataCollection()
    reduced.create_cell(np.asarray(data.cell), pbc=data.cell.pbc)
    particles = reduced.create_particles(count=int(mask.sum()))
    particles.create_property("Position", data=np.asarray(data.particles.positions)[mask])
    return reduced


def _compiled_kernels():
    """The compiled kernel module, or None where only the numba fallback is available."""
    from .descriptors._backend import COMPILED, kernels  # not at import time: descriptors imports us

    return kernels if COMPILED else None


def _own_search(data: DataCollection):
    """The compiled kernel and its inputs (positions, cell matrix, pbc flags), or None where
    OVITO's finder is to be used instead (no compiled kernel, 2D cell)."""
    kernels = _compiled_kernels()
    if kernels is None or data.cell.is2D:
        return None
    positions = np.asarray(data.particles.positions, dtype=np.float64)
    return kernels, positions, np.asarray(data.cell, dtype=np.float64), tuple(bool(p) for p in data.cell.pbc)


def nearest_neighbors(data: DataCollection, n: int) -> NeighborList:
    """The ``n`` nearest neighbours of every particle, by increasing distance (the results of
    OVITO's ``NearestNeighborFinder``)."""
    if n < 1:
        raise InputError(f"The number of neighbours must be at least 1, got {n}.")
    count = data.particles.count
    search = _own_search(data)
    if search is None:
        indices, vectors = NearestNeighborFinder(n, data).find_all()
    else:
        kernels, positions, cell, pbc = search
        indices, vectors = kernels.nearest_neighbors(positions, cell, pbc, n)
    missing = indices < 0
    if missing.any():
        atoms = np.flatnonzero(missing.any(axis=1))
        found = int((~missing[atoms[0]]).sum())
        raise InputError(
            f"{len(atoms)} particle(s) have fewer than {n} neighbours "
            f"(particle {atoms[0]} has {found}); the system holds only {count} particle(s) "
            f"and its cell is periodic along {_pbc_text(data)}. Use fewer neighbours or a larger system."
        )
    offsets = np.arange(0, count * n + 1, n, dtype=np.int64)
    return NeighborList(offsets, indices.reshape(-1), vectors.reshape(-1, 3))


def cutoff_neighbors(data: DataCollection, cutoff: float) -> NeighborList:
    """All neighbours within ``cutoff`` (distance <= cutoff) of every particle (the results of
    OVITO's ``CutoffNeighborFinder``)."""
    if not cutoff > 0:
        raise InputError(f"The cutoff must be positive, got {cutoff}.")
    search = _own_search(data)
    if search is not None:
        kernels, positions, cell, pbc = search
        offsets, neighbors, vectors = kernels.cutoff_neighbors(positions, cell, pbc, float(cutoff))
        return NeighborList(offsets, neighbors, vectors)
    pairs, vectors = CutoffNeighborFinder(cutoff, data).find_all(sort_by="index")
    offsets = np.zeros(data.particles.count + 1, dtype=np.int64)
    np.cumsum(np.bincount(pairs[:, 0], minlength=data.particles.count), out=offsets[1:])
    return NeighborList(offsets, np.ascontiguousarray(pairs[:, 1]), vectors)


def voronoi_neighbors(data: DataCollection) -> NeighborList:
    """Voronoi neighbours weighted by relative face area (Mickel et al., J. Chem. Phys. 138,
    044501 (2013)), from the cell faces of OVITO's ``VoronoiAnalysisModifier``."""
    from ovito.modifiers import VoronoiAnalysisModifier

    work = data.clone()
    work.apply(VoronoiAnalysisModifier(generate_polyhedra=True, generate_bonds=True))
    faces = work.surfaces["voronoi-polyhedra"].faces
    region_particle = np.asarray(work.surfaces["voronoi-polyhedra"].regions["Particle"])
    center = region_particle[np.asarray(faces["Region"])]
    bond = np.asarray(faces["Bond Index"])
    area = np.asarray(faces["Area"], dtype=np.float64)
    if (bond < 0).any():
        raise RuntimeError("OVITO returned Voronoi faces without a bond; cannot build Voronoi neighbours.")
    bonds = work.particles.bonds
    topology = np.asarray(bonds.topology)[bond]
    image = np.asarray(bonds.pbc_vectors)[bond]
    positions = np.asarray(work.particles.positions)
    cell = np.asarray(work.cell)[:, :3]
    bond_vector = positions[topology[:, 1]] - positions[topology[:, 0]] + image @ cell.T
    forward = topology[:, 0] == center
    neighbor = np.where(forward, topology[:, 1], topology[:, 0])
    vectors = np.where(forward[:, None], bond_vector, -bond_vector)

    order = np.argsort(center, kind="stable")
    center, neighbor, vectors, area = center[order], neighbor[order], vectors[order], area[order]
    counts = np.bincount(center, minlength=data.particles.count)
    offsets = np.zeros(len(counts) + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    total_area = np.add.reduceat(area, offsets[:-1][counts > 0])
    weights = area / np.repeat(total_area, counts[counts > 0])
    return NeighborList(offsets, neighbor.astype(np.int64), np.ascontiguousarray(vectors), weights)


def _pbc_text(data: DataCollection) -> str:
    axes = [axis for axis, periodic in zip("xyz", data.cell.pbc) if periodic]
    return ", ".join(axes) if axes else "no direction"
