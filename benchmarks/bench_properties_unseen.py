#!/usr/bin/env python3
"""Property models on crystals they never saw: the entries of the source tables that ../shared/data
leaves out.

    pip download --no-deps matminer==0.4.0 -d /tmp/mm && tar -xzf /tmp/mm/matminer-0.4.0.tar.gz -C /tmp/mm
    python benchmarks/bench_properties_unseen.py --tables /tmp/mm/matminer-0.4.0/matminer/datasets

The shared data files are matminer 0.4.0's bundled tables (Materials Project: formation energies of
Faber et al. 2015, elastic constants of de Jong et al. 2015, dielectric data of Petousis et al. 2017)
less about 10% of their entries, set aside at random before the project began. Those entries are
independent test data for the shipped models: no training, epoch choice, calibration or model choice
has seen them. This script takes every table entry whose Materials Project id is absent from the
shared file, predicts it as a user would (the shipped model file, its graph settings) and reports the
MAE, median and 95th percentile of the absolute error and the share within 1σ and 2σ. It checks first
that the entries the two have in common carry the same targets (the same source). Entries with
elements the model never saw are counted and kept (the model warns about them).
"""
from __future__ import annotations

import argparse
import ast
import csv
import platform
import sys
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
from results_file import replace_section

HERE = Path(__file__).parent
# model -> (table, target column, transform)
TASKS = {"formation-energy": ("flla_2015.csv", "formation_energy_per_atom", "none"),
         "bulk-modulus": ("elastic_tensor.csv", "K_VRH", "log10"),
         "shear-modulus": ("elastic_tensor.csv", "G_VRH", "log10"),
         "poisson-ratio": ("elastic_tensor.csv", "poisson_ratio", "none"),
         "band-gap": ("dielectric_constant.csv", "band_gap", "none")}


def read_table(path: Path) -> list[dict]:
    """The rows of one matminer table (a '# ref' line, then CSV). The dielectric table's rows carry
    one field more than its header, a leading row index: dropped, so that the names fit."""
    csv.field_size_limit(1 << 30)
    with open(path, newline="") as handle:
        if not handle.readline().startswith("#"):
            handle.seek(0)
        reader = csv.reader(handle)
        header = next(reader)
        return [dict(zip(header, fields[len(fields) - len(header):])) for fields in reader]


def crystal_of(row: dict):
    """A :class:`Crystal` from the row's POSCAR text, or from its pymatgen ``Structure.as_dict()``
    text (ordered sites) where the table has no POSCAR."""
    import io

    import ase.io
    from ase.data import atomic_numbers

    from ovito_mlclass.properties.graph import Crystal, crystal_from_atoms

    if "poscar" in row:
        return crystal_from_atoms(ase.io.read(io.StringIO(row["poscar"]), format="vasp"), row["material_id"])
    structure = ast.literal_eval(row["structure"])
    sites = structure["sites"]
    if any(len(site["species"]) != 1 for site in sites):
        raise ValueError("disordered site")
    return Crystal([atomic_numbers[site["species"][0]["element"]] for site in sites],
                   [site["xyz"] for site in sites], structure["lattice"]["matrix"], (True, True, True),
                   name=row["material_id"])


def main():
    import warnings

    from ovito_mlclass.properties import PropertyModel
    from ovito_mlclass.properties.train import load_config, load_dataset

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tables", required=True, help="folder with matminer 0.4.0's dataset CSVs")
    parser.add_argument("--tasks", nargs="+", default=list(TASKS))
    parser.add_argument("--section", default="properties-unseen")
    parser.add_argument("--output", default=str(HERE / "RESULTS.md"))
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    tables = {}
    rows = []
    for task in args.tasks:
        table, column, transform = TASKS[task]
        if table not in tables:
            tables[table] = read_table(Path(args.tables) / table)
        config, _ = load_config(task)
        shared, y_shared, _ = load_dataset(config)
        known = dict(zip((c.name for c in shared), y_shared))
        model = PropertyModel.load(task)
        crystals, y, mismatched, skipped = [], [], 0, 0
        for row in tables[table]:
            value = float(row[column]) if row[column] not in ("", "nan") else np.nan
            if transform == "log10":
                value = np.log10(value) if value > 0 else np.nan
            if row["material_id"] in known:
                mismatched += not np.isclose(known[row["material_id"]], value, rtol=1e-6, atol=1e-9)
                continue
            if not np.isfinite(value):
                skipped += 1
                continue
            try:
                crystals.append(crystal_of(row))
            except ValueError:
                skipped += 1
                continue
            y.append(value)
        y = np.array(y)
        prediction, sigma, _ = model.predict_graphs([model.graph(c) for c in crystals])
        unseen = sum(bool(model.unseen(c.numbers)) for c in crystals)
        error = np.abs(prediction - y)
        z = error / sigma
        rows.append({"task": task, "unit": model.unit, "table": len(tables[table]), "shared": len(known),
                     "mismatched": mismatched, "n": len(y), "skipped": skipped, "unseen": unseen,
                     "mae": error.mean(), "median": np.median(error), "p95": np.percentile(error, 95),
                     "within1": (z <= 1).mean(), "within2": (z <= 2).mean(), "networks": model.metadata.get("ensemble", 1),
                     "file_test_mae": model.metadata["test"]["mae"], "min_prediction": prediction.min()})
        print(f"{task}: {len(y)} unseen crystals, MAE {error.mean():.4f} {model.unit}", file=sys.stderr)
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = ["## Property models on independent crystals (the source entries the shared data leave out)", "",
             f"`python benchmarks/bench_properties_unseen.py --tables <matminer 0.4.0 datasets>` ({when}; "
             f"{platform.machine()}). The shipped model files, predicting every entry of matminer 0.4.0's table whose "
             "Materials Project id is absent from ../shared/data (set aside before the project began; never used for "
             "training, epochs, calibration or choices). 'same targets' = entries in both whose targets agree (the "
             "same source). 'file test MAE' = the model file's own test split, for comparison.", "",
             "| model | unit | networks | table entries | in shared data (same targets) | unseen crystals | with elements "
             "the model never saw | MAE | median | 95th pct. | within 1σ | within 2σ | lowest prediction | file test MAE |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['task']} | {r['unit']} | {r['networks']} | {r['table']} | {r['shared']} "
                     f"({r['shared'] - r['mismatched']}) | {r['n']} | {r['unseen']} | {r['mae']:.4f} | {r['median']:.4f} | "
                     f"{r['p95']:.4f} | {r['within1']:.2f} | {r['within2']:.2f} | {r['min_prediction']:.3f} | "
                     f"{r['file_test_mae']:.4f} |")
    print(replace_section(args.output, args.section, "\n".join(lines)))


if __name__ == "__main__":
    main()
