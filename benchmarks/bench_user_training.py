#!/usr/bin/env python3
"""A model from perfect lattices alone, scored on held-out MD: ``ovito-mlclass train`` with
``[[data.structures]]`` of one unit cell per class (fcc Cu, bcc Fe, hcp Mg), nothing else.

    python benchmarks/bench_user_training.py [--seeds 1 2 3] [--variants md perturbation] [--threads 2]

Variants (the config's ``[[data.structures]]``):

- ``md``: each unit cell twice, once perturbed (the default Gaussian displacements) and once with
  ``md``: the EAM potential of the ``metals`` data generator (``md_metals.ELEMENTS``: Cu Mishin,
  Fe Mendelev, Mg Sun-Mendelev) at 0.1, 0.3, 0.5, 0.7 and 0.9 T_m (its T_m), NPT at P = 0; the
  validation MD at the temperatures between (0.2 ... 0.8 T_m), all with the config's seed.
- ``perturbation``: the perturbed unit cells only (no MD).

Each variant is trained with every seed of ``--seeds`` (the seed changes the MD velocities, the
displacements and the network); no seed is chosen, all are reported. The held-out data are the
``metals`` validation snapshots (``cache_dir()/metals/val``, made by ``md_metals`` with other
seeds, box sizes and protocol: NPT to the mean box, then NVT); training writes to and reads only
``cache_dir()/user-<name>``. Score: per class, the fraction of the atoms of the crystal runs of Cu
(FCC), Fe (BCC) and Mg (HCP) at 0.75 T_m that the model labels with their lattice (Other and any
other class count as wrong); also every other crystal run of the validation set (other
temperatures, the unseen elements Ag, W, Zr), and OVITO's PTM (default RMSD cutoff 0.1) on the
same atoms for reference. Results go to section ``user-training`` of ``benchmarks/RESULTS.md``.
"""
from __future__ import annotations

import argparse
import math
import os
import platform
import sys
import time
from collections import defaultdict
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from results_file import replace_section

HERE = Path(__file__).parent
sys.path.append(str(HERE.parent / "training_data"))   # the training-data generators (repository scripts)
ELEMENT_OF = {"FCC": "Cu", "BCC": "Fe", "HCP": "Mg"}
TRAIN_FRACTIONS = (0.1, 0.3, 0.5, 0.7, 0.9)
TARGET = 0.75   # T/T_m of the reported held-out runs
PTM_ID = {"FCC": 1, "HCP": 2, "BCC": 3}


def unit_cell(symbol: str):
    """The conventional cubic cell (fcc, bcc) or the hexagonal cell (hcp) at the 0 K lattice constant."""
    from md_metals import element

    el = element(symbol)
    a = el.a0
    if el.lattice == "FCC":
        return np.array([[0, 0, 0], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]]) * a, np.eye(3) * a
    if el.lattice == "BCC":
        return np.array([[0, 0, 0], [0.5, 0.5, 0.5]]) * a, np.eye(3) * a
    rows = np.array([[a, 0, 0], [-a / 2, a * math.sqrt(3) / 2, 0], [0, 0, a * el.c_over_a]])
    return np.array([[1 / 3, 2 / 3, 0.25], [2 / 3, 1 / 3, 0.75]]) @ rows, rows


def write_xyz(path: Path, symbol: str):
    positions, rows = unit_cell(symbol)
    lattice = " ".join(f"{v:.6f}" for v in rows.reshape(-1))
    lines = [str(len(positions)), f'Lattice="{lattice}" Properties=species:S:1:pos:R:3 pbc="T T T"']
    lines += [f"{symbol} {x:.6f} {y:.6f} {z:.6f}" for x, y, z in positions]
    path.write_text("\n".join(lines) + "\n")


def config_text(variant: str, seed: int, threads: int) -> str:
    from md_metals import element

    lines = [f'name = "bench-{variant}"', 'classes = ["FCC", "BCC", "HCP"]', f"seed = {seed}"]
    for cls, symbol in ELEMENT_OF.items():
        lines += ["[[data.structures]]", f'class = "{cls}"', f'file = "{symbol}.xyz"']
        if variant == "md":
            el = element(symbol)
            temperatures = ", ".join(f"{round(f * el.T_m)}" for f in TRAIN_FRACTIONS)
            lines += ["[[data.structures]]", f'class = "{cls}"', f'file = "{symbol}.xyz"', "[data.structures.md]",
                      f'potential = "{el.potential}"', f'elements = ["{symbol}"]', f"masses = [{el.mass}]",
                      f"temperatures = [{temperatures}]", f"threads = {threads}"]
    lines += ["[training]", f"threads = {threads}"]
    return "\n".join(lines) + "\n"


def held_out_files():
    from ovito_mlclass.training.snapshots import cache_dir

    return sorted((cache_dir() / "metals" / "val").glob("crystal_*.npz"))


def held_out():
    """The crystal runs of the metals validation set: (element, lattice, T/T_m, snapshot) each."""
    from ovito_mlclass.training.snapshots import Snapshot, cache_dir

    files = held_out_files()
    if not files:
        raise SystemExit(f"no held-out snapshots in {cache_dir() / 'metals' / 'val'}: "
                         "python training_data/md_metals.py --split val")
    out = []
    for path in files:
        snap = Snapshot.load(path)
        m = snap.meta
        out.append((m["element"], m["lattice"], round(float(m["T_over_Tm"]), 2), snap))
    return out


def score(model, runs) -> dict:
    """(element, lattice, T/T_m) -> [right, atoms] of the model."""
    from ovito_mlclass.classify import classify

    result = defaultdict(lambda: [0, 0])
    for symbol, lattice, fraction, snap in runs:
        names = classify(snap.to_data_collection(), model).type_names
        cell = result[(symbol, lattice, fraction)]
        cell[0] += int((names == lattice).sum())
        cell[1] += len(names)
    return dict(result)


def ptm_score(runs) -> dict:
    from ovito.modifiers import PolyhedralTemplateMatchingModifier

    result = defaultdict(lambda: [0, 0])
    for symbol, lattice, fraction, snap in runs:
        data = snap.to_data_collection()
        data.apply(PolyhedralTemplateMatchingModifier())
        types = np.asarray(data.particles["Structure Type"])
        cell = result[(symbol, lattice, fraction)]
        cell[0] += int((types == PTM_ID[lattice]).sum())
        cell[1] += len(types)
    return dict(result)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--variants", nargs="+", default=["md", "perturbation"], choices=["md", "perturbation"])
    parser.add_argument("--threads", type=int, default=2, help="training threads and parallel MD runs")
    parser.add_argument("--work", default=None, help="folder for the configs and models (default: a temporary one)")
    parser.add_argument("--output", default=str(HERE / "RESULTS.md"))
    args = parser.parse_args()

    import tempfile

    import ovito
    import torch

    from ovito_mlclass.model import StructureModel
    from md_metals import element
    from ovito_mlclass.training.train import train

    work = Path(args.work or tempfile.mkdtemp(prefix="bench-user-training-"))
    work.mkdir(parents=True, exist_ok=True)
    for symbol in ELEMENT_OF.values():
        write_xyz(work / f"{symbol}.xyz", symbol)
    runs = held_out()
    held_out_names = {p.name for p in held_out_files()}
    load_before = os.getloadavg()
    started = time.perf_counter()
    results = {}   # (variant, seed) -> {"scores", "seconds", "atoms", "epochs"}
    for variant in args.variants:
        for seed in args.seeds:
            config = work / f"{variant}-{seed}.toml"
            config.write_text(config_text(variant, seed, args.threads))
            t0 = time.perf_counter()
            path = train(config, output=work / f"{variant}-{seed}.pt", progress=False)
            seconds = time.perf_counter() - t0
            model = StructureModel.load(path)
            training = model.metadata["training"]
            seen = set(training["train_files"] + training["val_files"])
            assert not seen & held_out_names and all(name.startswith("s") for name in seen)  # user snapshots only
            results[(variant, seed)] = {"scores": score(model, runs), "seconds": seconds,
                                        "atoms": sum(training["training_atoms"].values()),
                                        "epochs": training["epochs_run"]}
            at = {c: results[(variant, seed)]["scores"][(s, c, TARGET)] for c, s in ELEMENT_OF.items()}
            print(f"{variant} seed {seed}: {seconds:.0f} s, " + ", ".join(
                f"{c} {r / n:.4f}" for c, (r, n) in at.items()), file=sys.stderr, flush=True)
    ptm = ptm_score(runs)
    load_after = os.getloadavg()

    def accuracy(scores, key):
        right, atoms = scores[key]
        return right / atoms

    md_note = ", ".join(f"{s} {element(s).potential} (T_m {element(s).T_m:.0f} K)" for s in ELEMENT_OF.values())
    lines = ["## A model from perfect lattices alone (your own structures)", "",
             f"`python benchmarks/bench_user_training.py {' '.join(sys.argv[1:])}`".replace(" `", "`") +
             f", {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, {platform.processor() or platform.machine()}, "
             f"{os.cpu_count()} logical CPUs shared with other work (load average over 1 minute "
             f"{load_before[0]:.1f} at the start, {load_after[0]:.1f} at the end), {args.threads} threads "
             f"(training; parallel MD runs), ovito {ovito.version_string}, torch {torch.__version__.split('+')[0]}; "
             f"{(time.perf_counter() - started) / 60:.1f} min in all.", "",
             "`ovito-mlclass train` on a config whose only data are three unit cells (`[[data.structures]]`): "
             "fcc Cu, bcc Fe (cubic cells), hcp Mg (hexagonal cell), each repeated to 2,000 atoms or more; default "
             "features and network. Variant *perturbation + MD*: each cell perturbed (default displacements, "
             "0.01–0.09 d_nn) and run with `md` at " + ", ".join(f"{f:g}" for f in TRAIN_FRACTIONS) +
             f" T_m (validation MD at the temperatures between), potentials of the `metals` data generator: "
             f"{md_note}. Variant *perturbation only*: no MD. Held out: the crystal runs of the `metals` validation "
             "set (`md_metals`, other seeds, boxes and protocol), never seen by the training. Accuracy = the "
             "fraction of a run's atoms labelled with their lattice (Other counts as wrong); mean over the "
             f"training seeds {', '.join(map(str, args.seeds))} with the range (min–max) in brackets; no seed "
             "was chosen. Time = the whole `train` call (MD, features, training), per seed. The models know only "
             "these three classes, so the held-out liquids are not scored: nothing here tests the rejection of other "
             "structures.", "",
             f"### Per class at {TARGET} T_m (Cu, Fe, Mg; 2 snapshots each)", "",
             "| variant | FCC (Cu) | BCC (Fe) | HCP (Mg) | time to train [s] | training atoms | epochs |",
             "|---|---|---|---|---|---|---|"]
    names = {"md": "perturbation + MD", "perturbation": "perturbation only"}
    for variant in args.variants:
        per = [results[(variant, s)] for s in args.seeds]
        cells = []
        for cls, symbol in ELEMENT_OF.items():
            values = [accuracy(r["scores"], (symbol, cls, TARGET)) for r in per]
            cells.append(f"{100 * np.mean(values):.2f}% ({100 * min(values):.2f}–{100 * max(values):.2f})")
        seconds = [r["seconds"] for r in per]
        lines.append(f"| {names[variant]} | " + " | ".join(cells) +
                     f" | {np.mean(seconds):.0f} ({min(seconds):.0f}–{max(seconds):.0f}) | {per[0]['atoms']:,} | "
                     f"{', '.join(str(r['epochs']) for r in per)} |")
    ptm_cells = [f"{100 * accuracy(ptm, (s, c, TARGET)):.2f}%" for c, s in ELEMENT_OF.items()]
    lines.append("| OVITO PTM (RMSD cutoff 0.1), for reference | " + " | ".join(ptm_cells) + " | | | |")
    lines += ["", "### Every held-out crystal run (mean over the seeds; Ag, W, Zr unseen elements)", "",
              "| crystal | T/T_m | atoms | " + " | ".join(names[v] for v in args.variants) + " | PTM (0.1) |",
              "|---|---|---|" + "---|" * (len(args.variants) + 1)]
    for key in sorted(ptm, key=lambda k: (list(ELEMENT_OF).index(k[1]), k[0], k[2])):
        cells = [f"{100 * np.mean([accuracy(results[(v, s)]['scores'], key) for s in args.seeds]):.2f}%"
                 for v in args.variants]
        lines.append(f"| {key[0]} ({key[1]}) | {key[2]:.2f} | {ptm[key][1]:,} | " + " | ".join(cells) +
                     f" | {100 * accuracy(ptm, key):.2f}% |")
    print(replace_section(args.output, "user-training", "\n".join(lines)))


if __name__ == "__main__":
    main()
