"""Stage 1 of the data flow: positions -> neighbour lists.

Nearest-neighbour and cutoff searches run in the compiled kernel's multithreaded cell list
(``cpp_kernels/cell_list.cpp``: periodic- and triclinic-aware, periodic images of small cells
included, 2D cells as OVITO treats them: not periodic along the third cell vector). They
reproduce OVITO's ``NearestNeighborFinder`` and ``CutoffNeighborFinder``, the reference they are
tested against (tests/test_neighbors.py), which we used before; we have our own because in the
benchmarks OVITO's finders alone took longer than the whole descriptor computation was meant to.
Without the compiled kernel (numba fallback), OVITO's finders are used
(:mod:`ovito_mlclass.ovito_adapter`, imported only then).
Voronoi cells are built by the kernel as well (tested against OVITO's Voronoi analysis, which is
the fallback, and takes over next to large empty regions). The result is a CSR-style
:class:`NeighborList` that the descriptor kernels consume as flat, contiguous arrays.

Every search takes a :class:`~ovito_mlclass.frames.Frame` (arrays: a search on one may run in
any thread) or anything :func:`~ovito_mlclass.frames.as_frame` reads (an OVITO DataCollection:
in the thread that owns it, as OVITO's Python API must not be called from other threads).
Every mode refuses the same inputs with the same :class:`InputError`: two particles at distance
zero, and searches that would need more than the machine's memory or visit more than 10^7 periodic
images and bins from one bin.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import _compiled
from .frames import Frame
from .work_arrays import WORK

__all__ = [
    "NeighborList",
    "InputError",
    "Structure",
    "check_positions",
    "nearest_neighbors",
    "require_neighbors",
    "cutoff_neighbors",
    "voronoi_neighbors",
    "voronoi_faces",
    "subset",
    "spatial_bins",
    "SpatialBins",
]


# Most nearest neighbours a search may ask for (the search's time grows as their square in small periodic cells).
MAX_NEIGHBORS = 10_000


class InputError(ValueError):
    """The structure cannot be analysed as given (empty, non-finite, too few neighbours ...)."""


@dataclass(frozen=True)
class SpatialBins:
    """The particles sorted into a grid of bins: the particles of bin (x, y, z), b = (z * ny + y)
    * nx + x, are ``order[start[b]:start[b + 1]]``; ``periodic``: whether the grid wraps around.
    The Steinhardt kernel sweeps the bins so that the q_lm it averages stay in cache, looking up
    neighbours in the adjacent bins (those further away are recomputed: bins should be about as
    wide as the longest bonds); without bins it keeps q_lm of all particles at once (1.4 kB per
    particle for l = 2..12)."""

    order: np.ndarray
    start: np.ndarray
    shape: tuple[int, int, int]
    periodic: tuple[bool, bool, bool]

    def as_tuple(self) -> tuple:
        return (self.order, self.start, self.shape, self.periodic)


@dataclass(frozen=True)
class NeighborList:
    """Bonds of every atom in CSR form.

    The bonds of atom ``i`` are rows ``offsets[i]:offsets[i + 1]`` of ``neighbors`` (neighbour
    index) and ``vectors`` (``x_j - x_i`` with the periodic image applied). ``weights`` is ``None``
    for uniform weights, else one weight per bond (Voronoi: relative face area). ``order`` is a
    the atoms sorted into spatial bins (see :class:`SpatialBins`), or ``None``; they only affect
    speed and memory of the kernels, never their results.
    """

    offsets: np.ndarray
    neighbors: np.ndarray
    vectors: np.ndarray
    weights: np.ndarray | None = None
    bins: SpatialBins | None = None

    @property
    def n_atoms(self) -> int:
        return len(self.offsets) - 1

    @property
    def counts(self) -> np.ndarray:
        return np.diff(self.offsets)

    def filtered(self, keep: np.ndarray) -> "NeighborList":
        """The same list restricted to the bonds where ``keep`` is true."""
        centers = np.repeat(np.arange(self.n_atoms), self.counts)
        counts = np.bincount(centers[keep], minlength=self.n_atoms)
        offsets = np.zeros(self.n_atoms + 1, dtype=np.int64)
        np.cumsum(counts, out=offsets[1:])
        weights = None if self.weights is None else self.weights[keep]
        return NeighborList(offsets, self.neighbors[keep], self.vectors[keep], weights, self.bins)


# the name of the frame type here before it was the core's input type
Structure = Frame


def check_positions(data) -> np.ndarray:
    """The particle positions, after checking that there are some and that all are finite."""
    positions = Frame.of(data).positions
    if not len(positions):
        raise InputError("The input contains no particles.")
    if not np.isfinite(positions).all():
        where = np.flatnonzero(~np.isfinite(positions).all(axis=1))
        raise InputError(
            f"{len(where)} particle(s) have non-finite (NaN or infinite) coordinates, "
            f"first at index {where[0]} (position {positions[where[0]].tolist()})."
        )
    return positions


def subset(data, mask: np.ndarray) -> Frame:
    """:meth:`Frame.subset <ovito_mlclass.frames.Frame.subset>` of ``data``."""
    return Frame.of(data).subset(mask)


def _compiled_kernels():
    """The compiled kernel module, or None where only the numba fallback is available."""
    return _compiled.kernels if _compiled.COMPILED else None


def _kernel_call(search, *args, **kwargs):
    """A compiled search; its refusals (two atoms at one position, a search too large) as InputError."""
    try:
        return search(*args, **kwargs)
    except ValueError as exc:
        raise InputError(f"{str(exc)[:1].upper()}{str(exc)[1:]}.") from None
    finally:  # a large search keeps its bins' memory for the next frame, let go with the work arrays
        if _compiled.kernels.kept_block_bytes():
            WORK.touch()


def _refuse_coincident(structure: Frame) -> None:
    """The compiled searches' refusal of particles at distance zero from another (or from a periodic
    image of one), for OVITO's own finders and Voronoi analysis, which skip or list them."""
    matrix, pbc = structure.kernel_geometry()
    cell, origin = matrix[:, :3], matrix[:, 3]
    reduced = np.linalg.solve(cell, (structure.positions - origin).T).T
    images = np.where(pbc, np.floor(reduced), 0.0)
    wrapped = structure.positions - images @ cell.T
    _, inverse, counts = np.unique(wrapped, axis=0, return_inverse=True, return_counts=True)
    shared = counts[inverse.reshape(-1)] > 1
    if shared.any():
        i = int(np.flatnonzero(shared)[0])
        x, y, z = structure.positions[i]
        raise InputError(f"{int(shared.sum())} particle(s) have another particle at distance zero (the first: particle "
                         f"{i} at ({x:.6g}, {y:.6g}, {z:.6g})): two atoms occupy the same position.")


def nearest_neighbors(data, n: int, allow_missing: bool = False, out: tuple | None = None) -> NeighborList:
    """The ``n`` nearest neighbours of every particle, by increasing distance (the results of
    OVITO's ``NearestNeighborFinder``). Neighbours at the same distance (within 1e-10, relative:
    the shells of a perfect lattice) come in an order drawn per particle from a hash of the two
    indices, not in an order rounding would make alike along the lattice. A particle with fewer
    than ``n`` neighbours (a small non-periodic system) is an :class:`InputError`, unless
    ``allow_missing``: then its missing neighbours come last, with index -1 and vector 0 (see
    :func:`require_neighbors`). ``out``: arrays ``(indices, vectors)`` of shapes ``(count, n)``
    int64 and ``(count, n, 3)`` float64 to write the result into."""
    if not 1 <= n <= MAX_NEIGHBORS:
        raise InputError(f"The number of neighbours must be in 1..{MAX_NEIGHBORS}, got {n}.")
    structure = Frame.of(data)
    kernels = _compiled_kernels()
    bins = None
    if kernels is None:
        _refuse_coincident(structure)
        from .ovito_adapter import nearest_neighbors as ovito_nearest_neighbors

        indices, vectors = ovito_nearest_neighbors(structure, n)
        if out is not None:
            out[0][:], out[1][:] = indices, vectors
            indices, vectors = out
    else:
        cell, pbc = structure.kernel_geometry()
        # the search's own bins serve the neighbour average (no second binning)
        outputs = {} if out is None else {"out_neighbors": out[0], "out_vectors": out[1]}
        indices, vectors, bins = _kernel_call(kernels.nearest_neighbors, structure.positions, cell, pbc, n,
                                              with_bins=True, **outputs)
        bins = SpatialBins(*bins)
    if not allow_missing:
        require_neighbors(structure, indices, n)
    elif (indices[:, -1] < 0).any():  # missing neighbours come last: the last column tells
        vectors = np.where((indices < 0)[..., None], 0.0, vectors)  # OVITO's finder leaves them undefined
    offsets = np.arange(0, structure.count * n + 1, n, dtype=np.int64)
    return NeighborList(offsets, indices.reshape(-1), vectors.reshape(-1, 3), bins=bins)


def require_neighbors(data, indices: np.ndarray, k: int) -> None:
    """InputError unless every particle has its ``k`` nearest neighbours among ``indices``
    (shape ``(n_particles, >= k)``, -1 = missing, by increasing distance)."""
    if k <= 0 or not (np.asarray(indices)[:, k - 1] < 0).any():  # a row's missing neighbours come last
        return
    missing = np.asarray(indices)[:, :k] < 0
    if missing.any():
        structure = Frame.of(data)
        atoms = np.flatnonzero(missing.any(axis=1))
        found = int((~missing[atoms[0]]).sum())
        raise InputError(
            f"{len(atoms)} particle(s) have fewer than {k} neighbours "
            f"(particle {atoms[0]} has {found}); the system holds only {structure.count} particle(s) "
            f"and its cell is periodic along {_pbc_text(structure)}. Use fewer neighbours or a larger system."
        )


def cutoff_neighbors(data, cutoff: float) -> NeighborList:
    """All neighbours within ``cutoff`` (distance <= cutoff) of every particle (the results of
    OVITO's ``CutoffNeighborFinder``)."""
    if not (cutoff > 0 and np.isfinite(cutoff)):
        raise InputError(f"The cutoff must be positive and finite, got {cutoff}.")
    structure = Frame.of(data)
    kernels = _compiled_kernels()
    if kernels is not None:
        cell, pbc = structure.kernel_geometry()
        offsets, neighbors, vectors, bins = _kernel_call(kernels.cutoff_neighbors, structure.positions, cell, pbc,
                                                         float(cutoff), with_bins=True)
        return NeighborList(offsets, neighbors, vectors, bins=SpatialBins(*bins))
    from .ovito_adapter import cutoff_pairs

    _refuse_coincident(structure)
    pairs, vectors = cutoff_pairs(structure, cutoff)
    offsets = np.zeros(structure.count + 1, dtype=np.int64)
    np.cumsum(np.bincount(pairs[:, 0], minlength=structure.count), out=offsets[1:])
    return NeighborList(offsets, np.ascontiguousarray(pairs[:, 1]), vectors)


def voronoi_neighbors(data) -> NeighborList:
    """Voronoi neighbours weighted by relative face area (Mickel et al., J. Chem. Phys. 138,
    044501 (2013)): weight = area of the shared Voronoi face / surface area of the atom's cell."""
    faces = voronoi_faces(data)
    counts = faces.counts
    total = np.add.reduceat(faces.weights, faces.offsets[:-1][counts > 0]) if len(faces.weights) else faces.weights
    if (total <= 0).any():
        raise InputError("Some Voronoi cells have zero surface area; the structure is degenerate.")
    return NeighborList(faces.offsets, faces.neighbors, faces.vectors,
                        faces.weights / np.repeat(total, counts[counts > 0]), faces.bins)


def voronoi_faces(data) -> NeighborList:
    """The Voronoi cell of every particle: one bond per face of non-zero area, ``weights`` = the
    face areas (absolute). Periodic images of one particle, the particle's own included, are
    separate faces, as in OVITO's ``VoronoiAnalysisModifier`` bonds.

    The compiled kernel builds the cells itself from a cell-list search (``cpp_kernels/voronoi.cpp``),
    tested against OVITO's Voronoi polyhedra; we have our own because OVITO's Voronoi analysis alone
    takes longer than the whole Voronoi-weighted Steinhardt computation is meant to (benchmarks/RESULTS.md).
    Without the compiled kernel, and where a cell borders a large empty region (which the kernel's
    face-by-face construction cannot do quickly), the faces are OVITO's
    ``VoronoiAnalysisModifier(generate_bonds=True)`` bonds and the numba reference computes their areas.
    """
    structure = Frame.of(data)
    if not all(structure.pbc) or structure.is2D:
        # voro++ cuts the cells at open boundaries by the box walls, which are not neighbours
        kind = "2D" if structure.is2D else f"periodic along {_pbc_text(structure)} only"
        raise InputError(f"Voronoi neighbours need a 3D cell that is periodic in all three directions; this one is {kind}.")
    kernels = _compiled_kernels()
    if kernels is not None:
        try:
            offsets, neighbors, vectors, areas = _kernel_call(kernels.voronoi_cells, structure.positions,
                                                              structure.cell, structure.pbc)
        except kernels.CellsTooLarge:
            return _ovito_voronoi_faces(structure)
        longest = float(np.sqrt(np.einsum("ij,ij->i", vectors, vectors).max())) if len(vectors) else 0.0
        return NeighborList(offsets, neighbors, vectors, areas, bins=spatial_bins(structure, longest))
    return _ovito_voronoi_faces(structure)


def _ovito_voronoi_faces(data) -> NeighborList:
    from .descriptors import reference
    from .ovito_adapter import voronoi_bonds

    structure = Frame.of(data)
    _refuse_coincident(structure)
    count, positions, cell = structure.count, structure.positions, structure.cell[:, :3]
    # OVITO's bond conventions (checked against its polyhedra mesh): one bond per pair of faces,
    # a -> b with image shift n standing for the face of a towards b + n and the face of b towards
    # a - n; several periodic images of one pair, and an atom's own images in small cells
    # (a == b), are separate bonds. With the default thresholds (face_threshold =
    # relative_face_threshold = 0) every face of non-zero area has a bond.
    topology, shifts = voronoi_bonds(structure)
    bond_vector = shifts @ cell.T
    bond_vector += positions[topology[:, 1]]
    bond_vector -= positions[topology[:, 0]]

    # both directions of every bond, grouped by centre atom
    n_bonds = len(topology)
    order = np.argsort(topology.T.reshape(-1), kind="stable")  # centres: topology[:, 0], then topology[:, 1]
    forward = order < n_bonds
    order[~forward] -= n_bonds  # now the bond index
    neighbor = topology.reshape(-1)[2 * order + forward]  # topology[b, 1] if forward else topology[b, 0]
    counts = np.bincount(topology.reshape(-1), minlength=count)
    vectors = bond_vector[order]
    vectors[~forward] *= -1.0
    offsets = np.zeros(count + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    try:
        areas = reference.voronoi_face_areas(offsets, vectors)
    except ValueError as exc:
        raise InputError(str(exc)) from exc
    return NeighborList(offsets, neighbor, vectors, areas)


def spatial_bins(data, width: float) -> SpatialBins | None:
    """The particles sorted into bins about ``width`` wide (at least one interatomic spacing), for
    the Steinhardt neighbour average. ``None`` where the compiled kernel is missing (the numba
    reference needs no bins)."""
    kernels = _compiled_kernels()
    if kernels is None:
        return None
    structure = Frame.of(data)
    cell, pbc = structure.kernel_geometry()
    return SpatialBins(*_kernel_call(kernels.spatial_bins, structure.positions, cell, pbc, float(width)))


def _pbc_text(structure: Frame) -> str:
    axes = [axis for axis, periodic in zip("xyz", structure.pbc) if periodic]
    return ", ".join(axes) if axes else "no direction"
