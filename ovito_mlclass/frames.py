"""Inputs at the edge: whatever holds a structure (an OVITO ``DataCollection``, an ASE ``Atoms``,
plain arrays) as the ``DataCollection`` the classifier reads.

    classify(atoms, "metals")                                  # ase.Atoms
    classify({"positions": xyz, "cell": rows, "pbc": (True,) * 3}, "metals")
    classify(xyz, "metals")                                    # positions alone: an open cluster

A structure without a simulation cell (a plain XYZ file, an ``Atoms`` without cell) gets a
non-periodic cell around its particles, as OVITO's own analysis modifiers treat it.
"""
from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from ovito.data import DataCollection, ParticleType


def as_data_collection(system) -> DataCollection:
    """``system`` as a DataCollection with a simulation cell: a DataCollection (a cell-less one
    gets :func:`with_cell`), an ``ase.Atoms`` (its element symbols become particle types), a mapping
    with ``positions`` and optionally ``cell`` (rows = cell vectors), ``pbc``, ``types`` (integer
    ids or names), or an ``(n, 3)`` array of positions."""
    if isinstance(system, DataCollection):
        return with_cell(system)
    if hasattr(system, "get_positions") and hasattr(system, "get_chemical_symbols"):  # ase.Atoms
        cell = np.asarray(system.cell)
        return from_arrays(system.get_positions(), cell if np.abs(cell).sum() > 0 else None,
                           tuple(bool(p) for p in system.pbc), system.get_chemical_symbols())
    if isinstance(system, Mapping):
        unknown = set(system) - {"positions", "cell", "pbc", "types"}
        if unknown or "positions" not in system:
            raise TypeError(f"A structure given as a mapping needs 'positions' and may have 'cell', 'pbc' and "
                            f"'types'; got keys {sorted(system)}.")
        return from_arrays(system["positions"], system.get("cell"), system.get("pbc"), system.get("types"))
    positions = np.asarray(system)
    if positions.ndim == 2 and positions.shape[1] == 3 and np.issubdtype(positions.dtype, np.number):
        return from_arrays(positions)
    raise TypeError(f"Cannot read a structure from a {type(system).__name__}: give an OVITO DataCollection, an "
                    f"ase.Atoms, a mapping with 'positions' (and 'cell', 'pbc', 'types') or an (n, 3) array.")


def from_arrays(positions, cell=None, pbc=None, types=None) -> DataCollection:
    """A DataCollection from arrays: ``cell`` rows are the cell vectors (``None``: a non-periodic
    cell around the particles), ``pbc`` defaults to periodic where a cell is given, ``types`` are
    integer ids or names, one per particle."""
    positions = np.asarray(positions, dtype=np.float64)
    if positions.ndim != 2 or positions.shape[1] != 3:
        raise ValueError(f"positions must have shape (n, 3), got {positions.shape}.")
    data = DataCollection()
    particles = data.create_particles(count=len(positions))
    particles.create_property("Position", data=positions)
    if types is not None:
        types = np.asarray(types)
        if types.shape != (len(positions),):
            raise ValueError(f"types must have one entry per particle ({len(positions)}), got shape {types.shape}.")
        names = sorted(set(types.tolist()), key=str) if not np.issubdtype(types.dtype, np.integer) else None
        ids = np.searchsorted(np.array(names), types) + 1 if names else types.astype(np.int32)
        prop = particles.create_property("Particle Type", data=ids)
        for type_id in np.unique(ids):
            prop.types.append(ParticleType(id=int(type_id), name=names[type_id - 1] if names else f"Type {type_id}"))
    if cell is None:
        return with_cell(data)
    rows = np.asarray(cell, dtype=np.float64)
    if rows.shape != (3, 3):
        raise ValueError(f"cell must hold the three cell vectors as rows, shape (3, 3), got {rows.shape}.")
    data.create_cell(rows.T, pbc=tuple(bool(p) for p in (pbc if pbc is not None else (True,) * 3)))
    return data


def with_cell(data: DataCollection) -> DataCollection:
    """``data`` itself if it has a simulation cell; else a copy with a non-periodic box around its
    particles (a little wider than they reach, so that none lies on a wall)."""
    if data.cell is not None or data.particles is None or data.particles.count == 0:
        return data
    positions = np.asarray(data.particles.positions)
    lo, hi = positions.min(axis=0), positions.max(axis=0)
    pad = 0.01 * max(float((hi - lo).max()), 1.0)
    boxed = data.clone()
    boxed.create_cell(np.column_stack([np.diag(hi - lo + 2 * pad), lo - pad]), pbc=(False, False, False))
    return boxed
