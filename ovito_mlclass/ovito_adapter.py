"""The edge to OVITO: ``DataCollection`` <-> :class:`~ovito_mlclass.frames.Frame`, and OVITO's
own neighbour finders and Voronoi analysis where the core falls back on them (no compiled
kernel; Voronoi cells next to large empty regions). The core imports this module only when it
meets a DataCollection or needs such a fallback.
"""
from __future__ import annotations

import threading

import numpy as np
from ovito.data import CutoffNeighborFinder, DataCollection, NearestNeighborFinder, ParticleType

from .frames import Frame, as_frame, box_around

__all__ = ["frame_of", "data_collection", "as_data_collection", "from_arrays", "with_cell"]

# OVITO's Python API works in the thread that imported it only (imported above, with this module)
_OVITO_THREAD = threading.current_thread()


def _require_ovito_thread() -> None:
    if threading.current_thread() is not _OVITO_THREAD:
        raise RuntimeError("OVITO's Python API may only be used in the thread that imported it, not in a worker thread.")


def frame_of(data: DataCollection) -> Frame:
    """The positions, cell and particle types of ``data`` (a cell-less one: a non-periodic box
    around its particles, see :func:`with_cell`). Call it in the thread that owns ``data``."""
    particles = data.particles
    # copies: the frame owns its arrays, which other threads may read while OVITO changes `data`
    positions = np.zeros((0, 3)) if particles is None else np.array(particles.positions, dtype=np.float64)
    types = None if particles is None else particles.particle_types
    ids = None if types is None else np.array(types, dtype=np.int32)
    names = {} if types is None else {t.id: t.name for t in types.types}
    if data.cell is None:
        return Frame(positions, box_around(positions), (False,) * 3, types=ids, type_names=names)
    return Frame(positions, np.asarray(data.cell), data.cell.pbc, data.cell.is2D, ids, names)


def data_collection(frame: Frame) -> DataCollection:
    """A DataCollection of the frame's positions, cell and particle types."""
    _require_ovito_thread()
    data = DataCollection()
    data.create_cell(frame.cell, pbc=frame.pbc)
    data.cell_.is2D = frame.is2D
    particles = data.create_particles(count=frame.count)
    particles.create_property("Position", data=frame.positions)
    if frame.types is not None:
        prop = particles.create_property("Particle Type", data=frame.types)
        for type_id in np.unique(frame.types):
            prop.types.append(ParticleType(id=int(type_id), name=frame.type_names.get(int(type_id), f"Type {type_id}")))
    return data


def from_arrays(positions, cell=None, pbc=None, types=None) -> DataCollection:
    """A DataCollection from arrays (see :meth:`Frame.from_arrays <ovito_mlclass.frames.Frame.from_arrays>`)."""
    return data_collection(Frame.from_arrays(positions, cell, pbc, types))


def as_data_collection(system) -> DataCollection:
    """``system`` (see :func:`~ovito_mlclass.frames.as_frame`) as a DataCollection with a cell;
    a DataCollection as is, or :func:`with_cell`."""
    if isinstance(system, DataCollection):
        return with_cell(system)
    return data_collection(as_frame(system))


def with_cell(data: DataCollection) -> DataCollection:
    """``data`` itself if it has a simulation cell; else a copy with a non-periodic box around its
    particles (a little wider than they reach, so that none lies on a wall)."""
    if data.cell is not None or data.particles is None or data.particles.count == 0:
        return data
    boxed = data.clone()
    boxed.create_cell(box_around(np.asarray(data.particles.positions)), pbc=(False, False, False))
    return boxed


# ---- OVITO's analyses, where the core falls back on them ------------------------------------
def nearest_neighbors(frame: Frame, n: int) -> tuple[np.ndarray, np.ndarray]:
    """OVITO's ``NearestNeighborFinder``: (indices (count, n), vectors (count, n, 3))."""
    return NearestNeighborFinder(n, data_collection(frame)).find_all()


def cutoff_pairs(frame: Frame, cutoff: float) -> tuple[np.ndarray, np.ndarray]:
    """OVITO's ``CutoffNeighborFinder``: (pairs (m, 2) sorted by centre, vectors (m, 3))."""
    return CutoffNeighborFinder(cutoff, data_collection(frame)).find_all(sort_by="index")


def voronoi_bonds(frame: Frame) -> tuple[np.ndarray, np.ndarray]:
    """The bonds of ``VoronoiAnalysisModifier(generate_bonds=True)``: (topology (m, 2) int64,
    periodic image shifts (m, 3) float64)."""
    from ovito.modifiers import VoronoiAnalysisModifier

    work = data_collection(frame)  # positions and cell only, and freed as soon as the bonds are read
    work.apply(VoronoiAnalysisModifier(generate_bonds=True))
    return (np.array(work.particles.bonds.topology, dtype=np.int64),
            np.asarray(work.particles.bonds.pbc_vectors, dtype=np.float64))
