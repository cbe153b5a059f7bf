"""Stage 1 of the data flow: positions -> neighbour lists.

Every neighbour search is delegated to OVITO's finders (C++, periodic- and triclinic-aware,
periodic images of small cells included). The result is a CSR-style :class:`NeighborList` that
the descriptor kernels consume as flat, contiguous arrays.
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
    "spatial_order",
]


class InputError(ValueError):
    """The structure cannot be analysed as given (empty, non-finite, too few neighbours ...)."""


@dataclass(frozen=True)
class NeighborList:
    """Bonds of every atom in CSR form.

    The bonds of atom ``i`` are rows ``offsets[i]:offsets[i + 1]`` of ``neighbors`` (neighbour
    index) and ``vectors`` (``x_j - x_i`` with the periodic image applied). ``weights`` is ``None``
    for uniform weights, else one weight per bond (Voronoi: relative face area). ``order`` is a
    permutation of the atoms in which neighbours come close together (see :func:`spatial_order`),
    or ``None``; it only affects speed and memory of the kernels, never their results.
    """

    offsets: np.ndarray
    neighbors: np.ndarray
    vectors: np.ndarray
    weights: np.ndarray | None = None
    order: np.ndarray | None = None

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
        return NeighborList(offsets, self.neighbors[keep], self.vectors[keep], weights, self.order)


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


def nearest_neighbors(data: DataCollection, n: int) -> NeighborList:
    """The ``n`` nearest neighbours of every particle (OVITO's ``NearestNeighborFinder``)."""
    if n < 1:
        raise InputError(f"The number of neighbours must be at least 1, got {n}.")
    count = data.particles.count
    indices, vectors = NearestNeighborFinder(n, data).find_all()
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
    return NeighborList(offsets, indices.reshape(-1), vectors.reshape(-1, 3), order=spatial_order(data))


def cutoff_neighbors(data: DataCollection, cutoff: float) -> NeighborList:
    """All neighbours within ``cutoff`` of every particle (OVITO's ``CutoffNeighborFinder``)."""
    if not cutoff > 0:
        raise InputError(f"The cutoff must be positive, got {cutoff}.")
    pairs, vectors = CutoffNeighborFinder(cutoff, data).find_all(sort_by="index")
    offsets = np.zeros(data.particles.count + 1, dtype=np.int64)
    np.cumsum(np.bincount(pairs[:, 0], minlength=data.particles.count), out=offsets[1:])
    return NeighborList(offsets, np.ascontiguousarray(pairs[:, 1]), vectors, order=spatial_order(data))


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
    return NeighborList(offsets, neighbor.astype(np.int64), np.ascontiguousarray(vectors), weights,
                        order=spatial_order(data))


def spatial_order(data: DataCollection) -> np.ndarray | None:
    """A permutation that visits the particles slab by slab along the third cell vector (rows
    along the second, then the first), slabs about one interatomic spacing thick, so that the
    neighbours of a particle have nearby ranks (the kernels treat the order as cyclic, so the
    last slab of a periodic cell is near the first). ``None`` for a degenerate cell (the kernels
    then use index order)."""
    positions = np.asarray(data.particles.positions, dtype=np.float64)
    cell = np.asarray(data.cell, dtype=np.float64)
    matrix = cell[:, :3]
    volume = abs(np.linalg.det(matrix))
    if len(positions) == 0 or not volume > 0:
        return None
    reduced = np.linalg.solve(matrix, (positions - cell[:, 3]).T).T
    spacing = (volume / len(positions)) ** (1 / 3)
    key = np.zeros(len(positions), dtype=np.int64)
    for axis in (2, 1, 0):
        other = matrix[:, [(axis + 1) % 3, (axis + 2) % 3]]
        height = volume / np.linalg.norm(np.cross(other[:, 0], other[:, 1]))
        count = max(1, int(height / (SLAB_SPACINGS * spacing)))
        s = reduced[:, axis] - np.floor(reduced[:, axis])  # outside a non-periodic cell: any bin will do
        key = key * count + np.minimum((s * count).astype(np.int64), count - 1)
    return np.argsort(key, kind="stable")


SLAB_SPACINGS = 1.0


def _pbc_text(data: DataCollection) -> str:
    axes = [axis for axis, periodic in zip("xyz", data.cell.pbc) if periodic]
    return ", ".join(axes) if axes else "no direction"
