"""The core's input type, :class:`Frame`, and the adapters that make one from whatever holds a
structure: plain arrays, a mapping of them, an ASE ``Atoms``, an OVITO ``DataCollection`` (through
:mod:`ovito_mlclass.ovito_adapter`, imported only when one is given).

    classify(atoms, "metals")                                  # ase.Atoms
    classify({"positions": xyz, "cell": rows, "pbc": (True,) * 3}, "metals")
    classify(xyz, "metals")                                    # positions alone: an open cluster
    classify(Frame.from_arrays(xyz, rows, types=symbols), "metals")

A structure without a simulation cell (a plain XYZ file, an ``Atoms`` without cell) gets a
non-periodic cell around its particles, as OVITO's own analysis modifiers treat it.

``from_arrays``, ``as_data_collection`` and ``with_cell`` (which make OVITO ``DataCollection``
objects) live in :mod:`ovito_mlclass.ovito_adapter`; they are still found here by their old names.
"""
from __future__ import annotations

import importlib
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

__all__ = ["Frame", "as_frame", "is_data_collection"]


@dataclass(frozen=True, eq=False)
class Frame:
    """One structure as arrays: ``positions`` (n, 3); ``cell`` (3, 4): the three cell vectors as
    columns, then the cell origin (OVITO's layout); ``pbc``: periodic along each cell vector;
    ``is2D``: a 2-D system (in the plane of the first two cell vectors, never periodic along the
    third); ``types``: (n,) integer particle type ids or ``None``; ``type_names``: id -> name.
    The arrays are read, never changed; a frame may be used in any thread."""

    positions: np.ndarray
    cell: np.ndarray
    pbc: tuple[bool, bool, bool] = (True, True, True)
    is2D: bool = False
    types: np.ndarray | None = None
    type_names: dict = field(default_factory=dict)

    def __post_init__(self):
        positions = np.ascontiguousarray(self.positions, dtype=np.float64)
        if positions.ndim != 2 or positions.shape[1] != 3:
            raise ValueError(f"positions must have shape (n, 3), got {positions.shape}.")
        cell = np.ascontiguousarray(self.cell, dtype=np.float64)
        if cell.shape != (3, 4):
            raise ValueError(f"cell must be (3, 4): the cell vectors as columns, then the origin; got {cell.shape}.")
        object.__setattr__(self, "positions", positions)
        object.__setattr__(self, "cell", cell)
        object.__setattr__(self, "pbc", tuple(bool(p) for p in self.pbc))
        object.__setattr__(self, "is2D", bool(self.is2D))
        if self.types is not None:
            types = np.ascontiguousarray(self.types, dtype=np.int32)
            if types.shape != (len(positions),):
                raise ValueError(f"types must have one entry per particle ({len(positions)}), got shape {types.shape}.")
            object.__setattr__(self, "types", types)

    @classmethod
    def of(cls, system) -> "Frame":
        """:func:`as_frame`."""
        return as_frame(system)

    @classmethod
    def from_arrays(cls, positions, cell=None, pbc=None, types=None) -> "Frame":
        """A frame from arrays: ``cell`` rows are the cell vectors (``None``: a non-periodic cell
        around the particles), ``pbc`` defaults to periodic where a cell is given, ``types`` are
        integer ids or names (names get ids 1, 2, ... in sorted order), one per particle."""
        positions = np.asarray(positions, dtype=np.float64)
        if positions.ndim != 2 or positions.shape[1] != 3:
            raise ValueError(f"positions must have shape (n, 3), got {positions.shape}.")
        ids, names = _type_ids(types, len(positions))
        if cell is None:
            return cls(positions, box_around(positions), (False,) * 3, types=ids, type_names=names)
        rows = np.asarray(cell, dtype=np.float64)
        if rows.shape != (3, 3):
            raise ValueError(f"cell must hold the three cell vectors as rows, shape (3, 3), got {rows.shape}.")
        return cls(positions, np.column_stack([rows.T, np.zeros(3)]), (True,) * 3 if pbc is None else pbc,
                   types=ids, type_names=names)

    @property
    def count(self) -> int:
        return len(self.positions)

    def subset(self, mask: np.ndarray) -> "Frame":
        """The particles where ``mask`` is true (same cell), so that the others are treated as if
        they did not exist, as OVITO's ``only_selected`` options do."""
        return Frame(self.positions[mask], self.cell, self.pbc, self.is2D,
                     None if self.types is None else self.types[mask], self.type_names)

    def kernel_geometry(self) -> tuple[np.ndarray, tuple[bool, bool, bool]]:
        """The cell and pbc flags the compiled searches take. A 2D cell is not periodic along its
        third vector, as in OVITO's finders (which use the full 3D vectors); where that vector
        spans no volume, it is replaced by the unit normal of the first two."""
        if not self.is2D:
            return self.cell, self.pbc
        cell = self.cell.copy()
        normal = np.cross(cell[:, 0], cell[:, 1])
        if abs(np.linalg.det(cell[:, :3])) <= 1e-12 * np.abs(cell[:, :3]).max() ** 3 and np.linalg.norm(normal) > 0:
            cell[:, 2] = normal / np.linalg.norm(normal)
        return cell, (self.pbc[0], self.pbc[1], False)


def box_around(positions: np.ndarray) -> np.ndarray:
    """A (3, 4) cell around the particles, a little wider than they reach, so that none lies on a
    wall (a unit cube at the origin where there are none)."""
    if not len(positions):
        return np.eye(3, 4)
    lo, hi = positions.min(axis=0), positions.max(axis=0)
    pad = 0.01 * max(float((hi - lo).max()), 1.0)
    return np.column_stack([np.diag(hi - lo + 2 * pad), lo - pad])


def _type_ids(types, count: int) -> tuple[np.ndarray | None, dict]:
    """Integer type ids and id -> name of per-particle ``types`` (ids, or names: sorted, ids from 1)."""
    if types is None:
        return None, {}
    types = np.asarray(types)
    if types.shape != (count,):
        raise ValueError(f"types must have one entry per particle ({count}), got shape {types.shape}.")
    if np.issubdtype(types.dtype, np.integer):
        ids = types.astype(np.int32)
        return ids, {int(t): f"Type {t}" for t in np.unique(ids)}
    names = sorted(set(types.tolist()), key=str)
    ids = (np.searchsorted(np.array(names), types) + 1).astype(np.int32)
    return ids, {k + 1: str(name) for k, name in enumerate(names)}


def is_data_collection(system) -> bool:
    """Whether ``system`` is an OVITO DataCollection (without importing OVITO: whoever made one has)."""
    data = sys.modules.get("ovito.data")
    return data is not None and isinstance(system, data.DataCollection)


def as_frame(system) -> Frame:
    """``system`` as a :class:`Frame`: a frame as is; an OVITO DataCollection (its positions, cell
    and particle types); an ``ase.Atoms`` (its element symbols become particle types); a mapping
    with ``positions`` and optionally ``cell`` (rows = cell vectors), ``pbc``, ``types`` (integer
    ids or names); or an ``(n, 3)`` array of positions."""
    if isinstance(system, Frame):
        return system
    if is_data_collection(system):
        from .ovito_adapter import frame_of

        return frame_of(system)
    if hasattr(system, "get_positions") and hasattr(system, "get_chemical_symbols"):  # ase.Atoms
        cell = np.asarray(system.cell)
        return Frame.from_arrays(system.get_positions(), cell if np.abs(cell).sum() > 0 else None,
                                 tuple(bool(p) for p in system.pbc), system.get_chemical_symbols())
    if isinstance(system, Mapping):
        unknown = set(system) - {"positions", "cell", "pbc", "types"}
        if unknown or "positions" not in system:
            raise TypeError(f"A structure given as a mapping needs 'positions' and may have 'cell', 'pbc' and "
                            f"'types'; got keys {sorted(system)}.")
        return Frame.from_arrays(system["positions"], system.get("cell"), system.get("pbc"), system.get("types"))
    positions = np.asarray(system)
    if positions.ndim == 2 and positions.shape[1] == 3 and np.issubdtype(positions.dtype, np.number):
        return Frame.from_arrays(positions)
    raise TypeError(f"Cannot read a structure from a {type(system).__name__}: give an OVITO DataCollection, an "
                    f"ase.Atoms, a mapping with 'positions' (and 'cell', 'pbc', 'types'), an (n, 3) array or a Frame.")


def __getattr__(name):
    # the DataCollection makers, by their old names here (they import OVITO)
    if name in ("from_arrays", "as_data_collection", "with_cell"):
        return getattr(importlib.import_module(".ovito_adapter", __package__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
