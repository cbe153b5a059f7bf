#!/usr/bin/env python3
"""Unsupervised structure discovery (autoencoder + Gaussian mixture, Boattini et al. 2019) next
to the supervised ``metals`` model and OVITO's PTM, on the same MD validation snapshots.

    OMP_NUM_THREADS=1 python benchmarks/bench_unsupervised.py [--threads 1] [--output benchmarks/RESULTS.md]

Cases (``cache_dir()/metals/val``: other seeds than the metals training runs, Ag unseen by it):
- Ag fcc slab in its melt at T_m (MD coexistence; interface bands unlabelled);
- fcc Ag | liquid Ag | bcc Fe | liquid Ag, stacked from MD slabs (``training/phases.py``; seams unlabelled);
- four bulk snapshots pooled (features computed per snapshot): fcc Ag, bcc Fe, hcp Mg at 0.9 T_m, liquid Ag at T_m.

Scores over the labelled atoms against the construction labels: adjusted Rand index (ARI; label
names do not matter, so the clusters and PTM's/the model's types are scored alike) and purity (the
share of atoms whose cluster's majority label is their own). The unsupervised fit chooses c and
K itself (seed 0). PTM at its default RMSD cutoff (liquid atoms are right as Other). Timing: a
102,690-atom box (the stacked box repeated 3 x 3 laterally), one thread: the fit (features of all
atoms, networks and mixtures on a 20,000-atom subset) and applying the fit to all atoms, with
``metals`` and PTM on the same box for scale.
"""
from __future__ import annotations

import argparse
import platform
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
from results_file import replace_section

HERE = Path(__file__).parent
sys.path.append(str(HERE.parent / "training_data"))   # the training-data generators (repository scripts)


def purity(truth, predicted):
    total = 0
    for k in np.unique(predicted):
        total += np.bincount(truth[predicted == k]).max()
    return total / len(truth)


def ptm_types(data):
    from ovito.modifiers import PolyhedralTemplateMatchingModifier as PTM

    work = data.clone()
    work.apply(PTM())
    return np.asarray(work.particles["Structure Type"])


def score(truth, predicted):
    from sklearn.metrics import adjusted_rand_score

    return adjusted_rand_score(truth, predicted), purity(truth, predicted)


def cases():
    import phases
    from ovito_mlclass.training.snapshots import Snapshot, cache_dir

    val = cache_dir() / "metals" / "val"
    yield "Ag fcc slab in its melt at T_m", [Snapshot.load(val / "interface_Ag_s0.npz")]
    yield "fcc Ag / liquid / bcc Fe / liquid (stacked)", [phases.build("fcc_liquid_bcc_liquid_val")]
    yield "pooled bulk: fcc Ag, bcc Fe, hcp Mg (0.9 T_m), liquid Ag (T_m)", [
        Snapshot.load(val / f"{stem}.npz") for stem in
        ("crystal_Ag_T090_s0", "crystal_Fe_T090_s0", "crystal_Mg_T090_s0", "liquid_Ag_T100_s0")]


def accuracy():
    from ovito_mlclass import unsupervised as U
    from ovito_mlclass.classify import classify
    from ovito_mlclass.training.snapshots import NO_LABEL

    rows = []
    for name, snaps in cases():
        datas = [s.to_data_collection() for s in snaps]
        x = np.vstack([U.bond_order_features(d)[0] for d in datas])
        names = U.bond_order_features(datas[0])[1]
        truth = np.concatenate([s.labels for s in snaps])
        known = truth != NO_LABEL
        started = time.perf_counter()
        result = U.fit(x, names=names, seed=0)
        seconds = time.perf_counter() - started
        ours = result.predict(x).labels
        metals = np.concatenate([classify(d, "metals").types for d in datas])
        ptm = np.concatenate([ptm_types(d) for d in datas])
        phases_known = len(np.unique(truth[known]))
        rows.append({"case": name, "atoms": len(truth), "labelled": int(known.sum()), "phases": phases_known,
                     "dims": result.dims, "clusters": result.n_clusters, "fit_s": seconds,
                     "entropy": result.entropy_curve.y.round(3).tolist(), "bic_K": int(result.bic_curve.chosen),
                     "ours": score(truth[known], ours[known]), "metals": score(truth[known], metals[known]),
                     "ptm": score(truth[known], ptm[known])})
        print(rows[-1], flush=True)
    return rows


def timing():
    from ovito_mlclass import unsupervised as U
    from ovito_mlclass.classify import classify
    import phases
    from ovito_mlclass.training.snapshots import Snapshot

    box = phases.build("fcc_liquid_bcc_liquid_val")
    side = box.cell[0, 0]
    shifts = [(i * side, j * side, 0.0) for i in range(3) for j in range(3)]
    positions = np.vstack([box.positions + s for s in shifts])
    cell = box.cell.copy()
    cell[0, 0] = cell[1, 1] = 3 * side
    big = Snapshot(positions, cell, (True,) * 3, np.tile(box.labels, 9), box.classes)
    data = big.to_data_collection()
    out = {"atoms": len(big)}
    started = time.perf_counter()
    result = U.fit_structure(data, seed=0)
    out["fit_s"] = time.perf_counter() - started
    started = time.perf_counter()
    U.predict_structure(result, data)
    out["apply_s"] = time.perf_counter() - started
    started = time.perf_counter()
    classify(data, "metals")
    out["metals_s"] = time.perf_counter() - started
    started = time.perf_counter()
    ptm_types(data)
    out["ptm_s"] = time.perf_counter() - started
    out["dims"], out["clusters"] = result.dims, result.n_clusters
    print(out, flush=True)
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output", default=str(HERE / "RESULTS.md"))
    parser.add_argument("--threads", type=int, default=1, help="torch and kernel threads (default 1)")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    rows, speed = accuracy(), timing()
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = ["## Unsupervised structure discovery (autoencoder + Gaussian mixture)", "",
             f"`python benchmarks/bench_unsupervised.py` ({when}; {platform.processor() or platform.machine()}, "
             f"{args.threads} thread(s); inputs q̄_1..q̄_8 over 12 nearest neighbours, seed 0). Labelled atoms only; "
             "ARI = adjusted Rand index against the construction labels, purity = share of atoms whose "
             "cluster's majority label is their own. The unsupervised fit picks c (FVE elbow) and K (entropy "
             "elbow) itself; `metals` is the supervised model (Ag and these seeds unseen in its training); "
             "PTM at its default RMSD cutoff (liquid = Other).", "",
             "| case | atoms (labelled) | phases | c | K (BIC min) | unsupervised ARI / purity | metals ARI / purity "
             "| PTM ARI / purity | fit s |", "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        cell = lambda key: f"{r[key][0]:.3f} / {r[key][1]:.3f}"  # noqa: E731
        lines.append(f"| {r['case']} | {r['atoms']} ({r['labelled']}) | {r['phases']} | {r['dims']} | "
                     f"{r['clusters']} ({r['bic_K']}) | {cell('ours')} | {cell('metals')} | {cell('ptm')} | "
                     f"{r['fit_s']:.1f} |")
    lines += ["", "Mixture entropy S_K (K = 1..8) per case: " +
              "; ".join(f"{r['case'].split(' (')[0]}: {r['entropy']}" for r in rows), "",
              f"Speed on {speed['atoms']:,} atoms (the stacked box repeated 3 × 3), {args.threads} thread(s): "
              f"fit {speed['fit_s']:.1f} s (c = {speed['dims']}, K = {speed['clusters']}; features of all atoms, "
              f"networks and mixtures on 20,000), apply {speed['apply_s']:.2f} s; `metals` classification "
              f"{speed['metals_s']:.2f} s, PTM {speed['ptm_s']:.2f} s on the same box."]
    print(replace_section(args.output, "unsupervised", "\n".join(lines)))


if __name__ == "__main__":
    main()
