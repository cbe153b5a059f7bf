#!/usr/bin/env python3
"""Lattice orientation near melting: ours (``ovito_mlclass.orientation`` on the ``metals`` model's
classes) against OVITO's PTM (``output_orientation=True``), on thermal single crystals whose
orientation is known exactly, and the speed of both on a million atoms.

    python benchmarks/bench_orientation.py [--elements Cu Fe Mg] [--fractions 0.5 0.75 0.9 0.95]
                                           [--cells 63] [--threads 1 2] [--reps 2]

Accuracy: for each element and T/T_m, a crystal is run with the training-data generator's protocol
(``md_metals``: NPT at P = 0 to the mean box, NVT, one snapshot; the validation box sizes, 2,662 to
2,916 atoms; snapshots are kept in ``cache_dir()/orientation-bench``). The crystal's axes stay along
the box axes (a periodic crystal cannot turn), so after turning the whole snapshot, positions and
cell, by a random rotation R, its lattice orientation is known exactly: the truth is what OVITO's
PTM gives for the perfect lattice turned by R. For ours (averaged, and each atom's own fit), PTM at
its default RMSD cutoff (0.1) and PTM without cutoff, the table gives the fraction of atoms that
get an orientation of the crystal's lattice (classified as it) and the median, mean and 90th
percentile of their disorientation to the truth.

Speed: thermally disordered fcc Cu (σ = 0.1 Å, as in the other benchmarks), 1,000,188 atoms, in a
fresh process per thread count (``NUMBA_NUM_THREADS``, ``OMP_NUM_THREADS``, ``OVITO_THREAD_COUNT``):
our orientation from given structure types (neighbour search, fits, average), our classification
for reference, and OVITO's PTM with ``output_orientation=True`` (best of ``--reps``).

Results go to the orientation section of ``benchmarks/RESULTS.md``.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from results_file import replace_section

HERE = Path(__file__).parent
sys.path.append(str(HERE.parent / "training_data"))   # the training-data generators (repository scripts)
SIZES = {"FCC": (9, 9, 9), "BCC": (11, 11, 11), "HCP": (11, 7, 9)}   # md_metals' validation boxes
LATTICE_ID = {"FCC": 1, "HCP": 2, "BCC": 3}                           # OVITO's structure type ids


def snapshot(symbol: str, fraction: float, seed: int):
    """One MD snapshot of the element's crystal at ``fraction`` T_m (cached)."""
    import md_metals
    from ovito_mlclass.training.snapshots import Snapshot, cache_dir

    path = cache_dir() / "orientation-bench" / f"{symbol}_T{round(100 * fraction):03d}_seed{seed}.npz"
    if path.exists():
        return Snapshot.load(path)
    el = md_metals.element(symbol)
    spec = md_metals.RunSpec("crystal", symbol, "val", path.stem, seed, SIZES[el.lattice], fraction, n_snap=1)
    snaps, dropped = md_metals._run_crystal(spec)
    if dropped:
        raise RuntimeError(f"{symbol} at {fraction} T_m: {dropped}")
    snaps[0].save(path)
    return snaps[0]


def turned(positions, cell, pbc, rotation):
    """An OVITO DataCollection of the configuration turned by ``rotation`` (positions and cell)."""
    from ovito.data import DataCollection

    data = DataCollection()
    data.create_cell(rotation @ np.asarray(cell), pbc=pbc)   # (3, 4): the cell vectors and origin turn alike
    data.create_particles(count=len(positions)).create_property("Position", data=positions @ rotation.T)
    return data


def ptm(data, rmsd_cutoff):
    from ovito.modifiers import PolyhedralTemplateMatchingModifier

    work = data.clone()
    work.apply(PolyhedralTemplateMatchingModifier(rmsd_cutoff=rmsd_cutoff, output_orientation=True))
    return np.asarray(work.particles["Structure Type"]), np.asarray(work.particles["Orientation"], dtype=np.float64)


def accuracy_row(symbol, fraction, seed):
    from scipy.spatial.transform import Rotation

    from ovito_mlclass.classify import classify
    from ovito_mlclass.orientation import disorientation, orientations
    import md_metals

    el = md_metals.element(symbol)
    snap = snapshot(symbol, fraction, seed)
    rotation = Rotation.random(random_state=seed).as_matrix()
    data = turned(snap.positions, snap.cell, snap.pbc, rotation)
    # the truth: OVITO's PTM orientation of the perfect lattice turned alike
    ideal, box = md_metals.crystal(el, SIZES[el.lattice])
    ideal_types, ideal_q = ptm(turned(ideal, np.column_stack([np.diag(box), np.zeros(3)]), (True,) * 3, rotation), 0.1)
    lattice = LATTICE_ID[el.lattice]
    assert (ideal_types == lattice).all() and np.ptp(ideal_q, axis=0).max() < 1e-6
    truth = ideal_q[0]

    row = {"element": symbol, "lattice": el.lattice, "fraction": fraction, "atoms": len(snap),
           "T_kinetic": snap.meta.get("T_kinetic")}
    t = time.perf_counter()
    types = classify(data, "metals").types
    row["classify_s"] = time.perf_counter() - t
    methods = {"ours": (types, orientations(data, types)),
               "ours, single-atom fit": (types, orientations(data, types, average=False)),
               "PTM (RMSD 0.1)": ptm(data, 0.1),
               "PTM (no cutoff)": ptm(data, 0.0)}
    for name, (kinds, q) in methods.items():
        mine = kinds == lattice
        error = np.degrees(disorientation(q[mine], truth, el.lattice))
        row[name] = {"fraction": float(mine.mean()),
                     "median": float(np.median(error)) if len(error) else float("nan"),
                     "mean": float(error.mean()) if len(error) else float("nan"),
                     "p90": float(np.percentile(error, 90)) if len(error) else float("nan")}
    return row


def fastest(reps, step):
    """(wall, CPU) seconds of the fastest of ``reps`` runs; the CPU time (all threads of this
    process) tells more than the wall time on a machine that other work keeps busy."""
    runs = []
    for _ in range(reps):
        wall, cpu = time.perf_counter(), time.process_time()
        step()
        runs.append((time.perf_counter() - wall, time.process_time() - cpu))
    return min(runs)


def speed_child(cells, reps):
    sys.path.insert(0, str(HERE))
    from bench_descriptors import make_ovito_data
    from ovito.modifiers import PolyhedralTemplateMatchingModifier

    from ovito_mlclass.classify import classify
    from ovito_mlclass.orientation import orientations

    data, n = make_ovito_data(cells)
    small, _ = make_ovito_data(3)
    orientations(small, classify(small, "metals").types)    # warm-up: imports, JIT, model loading
    ptm_modifier = PolyhedralTemplateMatchingModifier(output_orientation=True)
    types = classify(data, "metals").types
    result = {"atoms": n, "fcc_fraction": float((types == 1).mean()),
              "orientation": fastest(reps, lambda: orientations(data, types)),
              "classify": fastest(reps, lambda: classify(data, "metals")),
              "PTM": fastest(reps, lambda: data.clone().apply(ptm_modifier))}
    print(json.dumps(result))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--elements", nargs="+", default=["Cu", "Fe", "Mg"])
    parser.add_argument("--fractions", type=float, nargs="+", default=[0.5, 0.75, 0.9, 0.95])
    parser.add_argument("--seed", type=int, default=4242)
    parser.add_argument("--cells", type=int, default=63,
                        help="fcc unit cells per edge of the speed frame (63: 1,000,188 atoms)")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--reps", type=int, default=2)
    parser.add_argument("--output", default=str(HERE / "RESULTS.md"))
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return speed_child(args.cells, args.reps)

    load_before = os.getloadavg()
    started = time.perf_counter()
    rows = []
    for k, symbol in enumerate(args.elements):
        for j, fraction in enumerate(args.fractions):
            rows.append(accuracy_row(symbol, fraction, args.seed + 10 * k + j))
            print(json.dumps(rows[-1]), file=sys.stderr)

    speed = []
    for threads in args.threads:
        t = str(threads)
        env = dict(os.environ, OMP_NUM_THREADS=t, OVITO_THREAD_COUNT=t, NUMBA_NUM_THREADS=t, MKL_NUM_THREADS=t,
                   OPENBLAS_NUM_THREADS=t)
        command = [sys.executable, __file__, "--child", "--cells", str(args.cells), "--reps", str(args.reps)]
        out = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
        speed.append((threads, json.loads(out.stdout.strip().splitlines()[-1])))
        print(f"{threads} thread(s): {speed[-1][1]}", file=sys.stderr)
    load_after = os.getloadavg()

    import ovito

    methods = ["ours", "ours, single-atom fit", "PTM (RMSD 0.1)", "PTM (no cutoff)"]
    lines = ["## Lattice orientation near melting (ours vs PTM)", "",
             f"`python benchmarks/bench_orientation.py {' '.join(sys.argv[1:])}`".replace(" `", "`") +
             f", {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, {platform.processor() or platform.machine()}, "
             f"{os.cpu_count()} logical CPUs shared with other work (load average over 1 minute "
             f"{load_before[0]:.1f} at the start, {load_after[0]:.1f} at the end), ovito {ovito.version_string}; "
             f"{(time.perf_counter() - started) / 60:.1f} min in all.", "",
             "Single crystals from MD (`md_metals` protocol, EAM), each turned by a random rotation, so that the "
             "true orientation is known; truth = OVITO's PTM orientation of the perfect lattice turned alike. "
             "Ours = `orientations(data, classify(data, 'metals').types)` (averaged over the atom and its same-class "
             "neighbours); single-atom fit = `average=False`. Each cell: the fraction of atoms that get an "
             "orientation of the crystal's lattice (classified as it), then the disorientation of those to the truth: "
             "median (mean, 90th percentile).", "",
             "| crystal | T/T_m | atoms | " + " | ".join(methods) + " |",
             "|---|---|---|" + "---|" * len(methods)]
    for r in rows:
        cells = [f"{100 * r[m]['fraction']:.1f}% · {r[m]['median']:.2f}° ({r[m]['mean']:.2f}, {r[m]['p90']:.2f})"
                 for m in methods]
        lines.append(f"| {r['element']} ({r['lattice']}) | {r['fraction']:.2f} | {r['atoms']:,} | "
                     + " | ".join(cells) + " |")
    lines += ["", f"Speed: thermally disordered fcc Cu (σ = 0.1 Å), {speed[0][1]['atoms']:,} atoms, fastest of "
              f"{args.reps}, a fresh process per thread count; wall time, and in brackets the CPU time of the process "
              "(all its threads), which other work on the machine inflates less. Ours = orientation from given "
              "structure types (12-nearest-neighbour search, fits, averages); classification = "
              "`classify(data, 'metals')`; PTM = `PolyhedralTemplateMatchingModifier(output_orientation=True)` "
              "(types and orientations).", "",
              "| threads | ours: orientation [s] | ours: classification [s] | ours: both [s] | PTM [s] | "
              "PTM / ours (both), wall (CPU) | atoms classified FCC |",
              "|---|---|---|---|---|---|---|"]
    for threads, s in speed:
        (ow, oc), (cw, cc), (pw, pc) = s["orientation"], s["classify"], s["PTM"]
        lines.append(f"| {threads} | {ow:.2f} ({oc:.2f}) | {cw:.2f} ({cc:.2f}) | {ow + cw:.2f} ({oc + cc:.2f}) | "
                     f"{pw:.2f} ({pc:.2f}) | {pw / (ow + cw):.2f}× ({pc / (oc + cc):.2f}×) | "
                     f"{100 * s['fcc_fraction']:.2f}% |")
    print(replace_section(args.output, "orientation", "\n".join(lines)))


if __name__ == "__main__":
    main()
