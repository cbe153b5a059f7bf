"""Training a property model: ``ovito-mlclass train-property CONFIG``.

A config (TOML; the built-in ones are ``training/configs/<model>.toml`` with ``kind = "property"``)
names the data file (multi-frame extended XYZ with the target in each frame's info, or a CGCNN folder),
the target and its transform, the seeded train/validation/test split, the graph, the network and the
training budget. Steps: crystals -> graphs (cached under ``~/.cache/ovito-mlclass/cgcnn/``) -> fixed
seeded split -> (optionally, ``composition_baseline``: a linear model of the target in the atom
fractions, which the network then corrects) -> AdamW with a warm-up and cosine decay of the learning rate, loss = L1 of the
standardised target + Gaussian negative log-likelihood of the σ head (on the detached mean, so the
uncertainty head does not pull the prediction; ``sigma_floor`` s0 puts sqrt(σ² + s0²) in it, so that σ cannot
collapse on a crystal the mean fits exactly), best validation MAE kept (a loss that stops being finite
ends the training with a warning) -> σ calibrated on the
validation split (one factor, so that the shares within 1σ and 2σ come closest to a Gaussian's) -> test MAE and
calibration (fraction within 1σ and 2σ) -> TorchScript file with metadata.
"""
from __future__ import annotations

import hashlib
import math
import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np

from ..training.train import read_config
from .graph import Graph, build_graph, read_cgcnn_folder, read_extxyz

TRANSFORMS = {"none": (lambda v: v), "log10": np.log10}


def load_config(name_or_path) -> tuple[dict, Path]:
    """A property-model config (``kind = "property"``) by built-in name or path."""
    return read_config(name_or_path, ("name", "quantity", "unit", "data"), kind="property")


def data_root() -> Path:
    """Where the configs' relative data paths start: $OVITO_MLCLASS_DATA, else ``../shared/data`` next
    to the current directory or to the source tree (training reads the shared data; the package at
    run time never does)."""
    if os.environ.get("OVITO_MLCLASS_DATA"):
        return Path(os.environ["OVITO_MLCLASS_DATA"])
    for base in (Path.cwd(), Path(__file__).resolve().parents[2]):
        if (base.parent / "shared" / "data").is_dir():
            return base.parent / "shared" / "data"
    return Path.cwd() / "data"


def load_dataset(config: dict) -> tuple[list, np.ndarray, Path]:
    """The crystals with a usable target and the transformed targets."""
    data = config["data"]
    path = Path(data["file"])
    path = path if path.is_absolute() else data_root() / path
    if not path.exists():
        raise FileNotFoundError(f"{path}: training data not found (set OVITO_MLCLASS_DATA to the folder that "
                                f"holds {data['file']})")
    target = data["target"]
    crystals = read_cgcnn_folder(path, target) if path.is_dir() else read_extxyz(path, [target])
    transform = TRANSFORMS[data.get("transform", "none")]
    values = np.array([c.targets[target] for c in crystals], dtype=float)
    usable = np.isfinite(values) & ((values > 0) if data.get("transform") == "log10" else True)
    with np.errstate(divide="ignore", invalid="ignore"):
        y = transform(values)
    return [c for c, ok in zip(crystals, usable) if ok], y[usable], path


def elemental_references(elements, cutoff: float, max_neighbors: int) -> tuple[list, list[str]]:
    """Graphs of the elements' reference crystals (ase's ``reference_states``: the experimental
    ground-state structure and lattice constants, built by ``ase.build.bulk``) for the given atomic
    numbers, where ase can build one, and their names ("Cu fcc", ...). Their formation energy is 0
    by definition, so a formation-energy config may add them to its training data
    (``[data] elemental_references = true``) as labels that need no calculation."""
    from ase.build import bulk
    from ase.data import chemical_symbols, reference_states

    from .graph import crystal_from_atoms

    graphs, names = [], []
    for z in sorted(set(int(z) for z in elements)):
        state = reference_states[z] if z < len(reference_states) else None
        if not state or state.get("symmetry") in (None, "atom", "diatom"):
            continue
        try:
            atoms = bulk(chemical_symbols[z])
        except Exception:  # ase has no builder for this structure (e.g. orthorhombic Ga, cubic Mn)
            continue
        graphs.append(build_graph(crystal_from_atoms(atoms, chemical_symbols[z]), cutoff, max_neighbors))
        names.append(f"{chemical_symbols[z]} {state['symmetry']}")
    return graphs, names


def split_indices(n: int, seed: int, val_fraction: float, test_fraction: float):
    """Fixed seeded split: a permutation of range(n) cut into train / validation / test."""
    order = np.random.default_rng(seed).permutation(n)
    n_test, n_val = round(test_fraction * n), round(val_fraction * n)
    return np.sort(order[n_test + n_val:]), np.sort(order[n_test:n_test + n_val]), np.sort(order[:n_test])


def graphs_cached(crystals, cutoff: float, max_neighbors: int, progress=True) -> list[Graph]:
    """Graphs of all crystals, cached (in ``cache_dir()/cgcnn``) under a digest of exactly what
    determines them: every crystal's atoms, positions, cell and periodicity, and the graph settings."""
    from ..training.snapshots import cache_dir

    digest = hashlib.sha256()
    for c in crystals:
        for array in (c.numbers, c.positions, c.cell, np.asarray(c.pbc, dtype=bool)):
            digest.update(np.ascontiguousarray(array).tobytes())
    cache = cache_dir() / "cgcnn" / f"graphs-{digest.hexdigest()[:20]}-{cutoff}-{max_neighbors}.npz"
    if cache.exists():
        with np.load(cache) as stored:  # each item access reads the whole array: read each once
            numbers, center, neighbor, distance, atoms, edges = (stored[key] for key in (
                "numbers", "center", "neighbor", "distance", "atom_offsets", "edge_offsets"))
        return [Graph(numbers[atoms[k]:atoms[k + 1]], center[edges[k]:edges[k + 1]],
                      neighbor[edges[k]:edges[k + 1]], distance[edges[k]:edges[k + 1]])
                for k in range(len(crystals))]
    from tqdm import tqdm

    graphs = [build_graph(c, cutoff, max_neighbors)
              for c in tqdm(crystals, desc="graphs", unit="crystal", disable=not progress, file=sys.stderr)]
    cache.parent.mkdir(parents=True, exist_ok=True)
    partial = cache.with_suffix(".part.npz")  # written whole, then renamed: an interrupted run leaves no cache
    np.savez(partial, numbers=np.concatenate([g.numbers for g in graphs]),
             center=np.concatenate([g.center for g in graphs]), neighbor=np.concatenate([g.neighbor for g in graphs]),
             distance=np.concatenate([g.distance for g in graphs]),
             atom_offsets=np.cumsum([0] + [g.n_atoms for g in graphs]),
             edge_offsets=np.cumsum([0] + [len(g.center) for g in graphs]))
    partial.replace(cache)
    return graphs


def make_network(config: dict, element_table):
    from .cgcnn import CGCNN

    g, n = config.get("graph", {}), config.get("network", {})
    return CGCNN(element_table, cutoff=float(g.get("cutoff", 8.0)), gaussian_step=float(g.get("gaussian_step", 0.2)),
                 width=int(n.get("width", 64)), n_conv=int(n.get("n_conv", 3)), hidden=list(n.get("hidden", [128])),
                 convolution=n.get("convolution", "gated"), output=n.get("output", "linear"),
                 softplus_beta=float(n.get("softplus_beta", 1.0)), bounds=tuple(n.get("bounds", (0.0, 1.0))))


def evaluate(net, graphs, batch: int = 256):
    """(predictions, σ) of a network in eval mode."""
    import torch

    from .cgcnn import Batch

    net.eval()
    values, sigmas = [], []
    with torch.no_grad():
        for start in range(0, len(graphs), batch):
            value, sigma, _ = Batch(graphs[start:start + batch]).run(net)
            values.append(value.numpy())
            sigmas.append(sigma.numpy())
    return np.concatenate(values).astype(float), np.concatenate(sigmas).astype(float)


def fit(net, train_graphs, y_train, val_graphs, y_val, settings: dict, seed: int, log=print):
    """Trains ``net`` in place (best validation MAE kept); returns a record of the run."""
    import torch

    from .cgcnn import Batch

    baseline = np.zeros(len(y_train))
    if settings.get("composition_baseline", False):
        baseline = fit_composition_baseline(net, train_graphs, y_train)
    residual = y_train - baseline
    net.target_std.fill_(float(residual.std()))
    compound = np.array([len(np.unique(g.numbers)) > 1 for g in train_graphs])
    if getattr(net, "output_mode", 0) == 2 and compound.any():
        net.target_mean.fill_(float(residual[compound].mean()))  # the shift enters compounds only
        net.target_std.fill_(float(residual[compound].std()))
    else:
        net.target_mean.fill_(float(residual.mean()))
    epochs, batch = int(settings["epochs"]), int(settings["batch_size"])
    sigma_floor = float(settings.get("sigma_floor", 0.0))  # in standard deviations of the target
    optimiser = torch.optim.AdamW(net.parameters(), lr=float(settings["learning_rate"]),
                                  weight_decay=float(settings.get("weight_decay", 1e-4)))
    steps = epochs * math.ceil(len(train_graphs) / batch)
    warmup = max(1, steps // 20)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimiser, lambda s: min((s + 1) / warmup, 0.5 * (1 + math.cos(math.pi * min(s, steps) / steps))))
    generator = np.random.default_rng(seed)
    torch.manual_seed(seed)
    y_t = torch.as_tensor(y_train, dtype=torch.float32)
    mean, std = net.target_mean, net.target_std
    best = (np.inf, None, -1)
    started = time.perf_counter()
    history = []
    diverged = None  # the epoch in which the loss stopped being finite
    for epoch in range(epochs):
        net.train()
        for idx in np.array_split(generator.permutation(len(train_graphs)),
                                  max(1, round(len(train_graphs) / batch))):
            prediction, sigma, _ = Batch([train_graphs[i] for i in idx]).run(net)
            target = (y_t[idx] - mean) / std
            z_pred = (prediction - mean) / std
            # a floor on σ in the likelihood only: without it σ can collapse on a crystal the mean fits almost
            # exactly (a single-element formation energy near 0), and its next residual blows the gradient up
            s = torch.sqrt((sigma / std) ** 2 + sigma_floor ** 2)
            # L1 on the mean (MAE is the figure of merit); Gaussian NLL for σ on the detached mean
            nll = torch.log(s) + 0.5 * ((target - z_pred.detach()) / s) ** 2
            loss = (z_pred - target).abs().mean() + 0.1 * nll.mean()
            if not torch.isfinite(loss):
                diverged = epoch + 1
                break
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            schedule.step()
        if diverged:
            break
        val_pred, _ = evaluate(net, val_graphs)
        mae = float(np.abs(val_pred - y_val).mean())
        history.append(mae)
        if mae < best[0]:
            best = (mae, {k: v.clone() for k, v in net.state_dict().items()}, epoch)
        log(f"epoch {epoch + 1:3d}/{epochs}  validation MAE {mae:.4f}  (best {best[0]:.4f})  "
            f"{time.perf_counter() - started:.0f} s")
    if best[1] is None:
        reason = f"the loss stopped being finite in epoch {diverged}" if diverged else "no validation MAE was finite"
        raise RuntimeError(f"training gave no usable network: {reason}; check the targets for missing values, "
                           f"or lower the learning rate ({settings['learning_rate']})")
    if diverged:
        warnings.warn(f"training diverged in epoch {diverged} of {epochs} (the loss is no longer finite); the network "
                      f"of epoch {best[2] + 1} is kept (validation MAE {best[0]:.4g}). A floor on σ ([training] sigma_floor, "
                      f"e.g. 0.01) or a lower learning rate ({settings['learning_rate']} now) may help.",
                      RuntimeWarning, stacklevel=2)
    net.load_state_dict(best[1])
    net.eval()
    return {"best_epoch": best[2] + 1, "validation_mae_history": [round(m, 5) for m in history],
            "diverged_in_epoch": diverged, "seconds": round(time.perf_counter() - started, 1)}


def fit_composition_baseline(net, graphs, y, alpha: float = 1e-3) -> np.ndarray:
    """Fits the linear composition model y ~ sum_Z x_Z e_Z (x_Z: atom fraction of element Z) by
    ridge regression on the training crystals, stores e_Z as the network's ``element_baseline``
    (elements absent from the training data get the mean target) and returns the baseline of
    every training crystal. The network then learns what composition alone does not explain; its
    atom contributions stay additive (each atom's contribution includes its element's e_Z).
    For a network with ``output = "elemental_reference"`` the model is fitted to the crystals of two
    or more elements only, and is 0 for single-element crystals (as the network's readout)."""
    import torch
    from sklearn.linear_model import Ridge

    n_elements = net.element_baseline.numel()
    fractions = np.zeros((len(graphs), n_elements))
    for k, g in enumerate(graphs):
        np.add.at(fractions[k], g.numbers, 1.0 / g.n_atoms)
    use = np.ones(len(graphs), dtype=bool)
    if getattr(net, "output_mode", 0) == 2:
        use = (fractions > 0).sum(axis=1) > 1
    seen = fractions[use].any(axis=0)
    ridge = Ridge(alpha=alpha, fit_intercept=True).fit(fractions[use], y[use])
    offsets = np.where(seen, ridge.coef_ + ridge.intercept_, float(np.mean(y[use])))
    net.element_baseline.copy_(torch.as_tensor(offsets, dtype=torch.float32))
    return np.where(use, fractions @ offsets, 0.0)


ONE_SIGMA = 0.6826894921370859  # P(|z| <= 1) of a standard normal distribution: erf(1 / sqrt(2))
TWO_SIGMA = 0.9544997361036416  # P(|z| <= 2): erf(sqrt(2))


def calibration_scale(z) -> float:
    """The factor s for σ that brings the fractions of |z| / s within 1 and within 2 closest (least
    squares) to a Gaussian's, 68.3% and 95.4%. Errors of these networks have heavier tails than a
    Gaussian: matching 1σ alone leaves too few points within 2σ, matching 2σ alone too many within
    1σ; the compromise keeps both near. The shares change only where s passes a |z| or |z| / 2, so the
    candidates are the geometric midpoints between those points (no validation point then sits on a
    boundary); among equally good ones, the middle one."""
    z = np.sort(np.abs(np.asarray(z, dtype=float)))
    z = z[z > 0]
    points = np.unique(np.concatenate([z, z / 2]))
    candidates = np.sqrt(points[:-1] * points[1:]) if len(points) > 1 else points
    within = lambda t: np.searchsorted(z, t, side="right") / len(z)  # noqa: E731
    cost = (within(candidates) - ONE_SIGMA) ** 2 + (within(2 * candidates) - TWO_SIGMA) ** 2
    best = candidates[cost <= cost.min() + 1e-12]
    return float(best[len(best) // 2])


def calibrate(net, val_graphs, y_val) -> float:
    """Sets ``sigma_scale`` (:func:`calibration_scale` of the validation z-scores) and returns it."""
    net.sigma_scale.fill_(1.0)
    prediction, sigma = evaluate(net, val_graphs)
    scale = calibration_scale((y_val - prediction) / sigma)
    net.sigma_scale.fill_(scale)
    return scale


def scores(prediction, sigma, y) -> dict:
    z = np.abs(y - prediction) / sigma
    return {"mae": float(np.abs(prediction - y).mean()), "rmse": float(np.sqrt(np.mean((prediction - y) ** 2))),
            "within_1sigma": float((z <= 1).mean()), "within_2sigma": float((z <= 2).mean()), "n": int(len(y))}


def train(config_name_or_path, output=None, threads: int | None = None, epochs: int | None = None,
          progress: bool = True, limit: int | None = None) -> Path:
    """Trains the model a config describes and writes it (default ``<name>.pt``). ``epochs`` and
    ``limit`` (first ``limit`` crystals only) shrink the run for tests; the metadata record them."""
    import torch

    from .. import __version__
    from ..model import quiet_torchscript
    from .graph_features import element_table
    from .model import KIND, PropertyModel

    t0 = time.time()
    config, config_path = load_config(config_name_or_path)
    settings = {"epochs": 60, "batch_size": 64, "learning_rate": 3e-3, "weight_decay": 1e-4, "threads": 1,
                **config.get("training", {})}
    if epochs is not None:
        settings["epochs"] = epochs
    threads = threads or int(settings["threads"])
    torch.set_num_threads(threads)
    split = config.get("split", {})
    seed = int(split.get("seed", 0))
    log = (lambda *a: print(*a, file=sys.stderr, flush=True)) if progress else (lambda *a: None)

    crystals, y, source = load_dataset(config)
    if limit:
        crystals, y = crystals[:limit], y[:limit]
    graph_settings = {"cutoff": float(config.get("graph", {}).get("cutoff", 8.0)),
                      "max_neighbors": int(config.get("graph", {}).get("max_neighbors", 12)),
                      "gaussian_step": float(config.get("graph", {}).get("gaussian_step", 0.2))}
    graphs = graphs_cached(crystals, graph_settings["cutoff"], graph_settings["max_neighbors"], progress)
    train_idx, val_idx, test_idx = split_indices(len(crystals), seed, float(split.get("validation", 0.1)),
                                                 float(split.get("test", 0.1)))
    pick = lambda idx: [graphs[i] for i in idx]  # noqa: E731
    log(f"{config['name']}: {len(crystals)} crystals from {source.name}; split {len(train_idx)} / {len(val_idx)} / "
        f"{len(test_idx)} (seed {seed})")
    table = element_table()
    train_graphs, y_train, references = pick(train_idx), y[train_idx], []
    if config["data"].get("elemental_references", False):
        seen_train = np.unique(np.concatenate([graphs[i].numbers for i in train_idx]))
        extra, references = elemental_references(seen_train, graph_settings["cutoff"], graph_settings["max_neighbors"])
        train_graphs, y_train = train_graphs + extra, np.concatenate([y_train, np.zeros(len(extra))])
        log(f"  + {len(extra)} elemental reference crystals (target 0 by definition) in the training set")
    n_members = int(settings.get("ensemble", 1))
    members, member_records = [], []
    for k in range(n_members):  # member k: initialisation and data order from seed + k
        if n_members > 1:
            log(f"ensemble member {k + 1}/{n_members} (seed {seed + k})")
        torch.manual_seed(seed + k)
        member = make_network(config, table)
        member_records.append(fit(member, train_graphs, y_train, pick(val_idx), y[val_idx], settings, seed + k, log))
        if n_members > 1:
            member_records[-1]["validation_mae"] = float(np.abs(evaluate(member, pick(val_idx))[0] - y[val_idx]).mean())
        members.append(member)
    if n_members > 1:
        from .cgcnn import Ensemble

        net = Ensemble(members).eval()
        record = {"ensemble": n_members, "member_seeds": [seed + k for k in range(n_members)], "members": member_records,
                  "seconds": round(sum(r["seconds"] for r in member_records), 1)}
    else:
        net, record = members[0], member_records[0]
    scale = calibrate(net, pick(val_idx), y[val_idx])
    val_scores = scores(*evaluate(net, pick(val_idx)), y[val_idx])
    test_scores = scores(*evaluate(net, pick(test_idx)), y[test_idx])
    test_scores["mean_predictor_mae"] = float(np.abs(y[test_idx] - y[train_idx].mean()).mean())
    seen = sorted(set(np.concatenate([graphs[i].numbers for i in train_idx]).tolist()))
    command = f"ovito-mlclass train-property {config_name_or_path}"
    metadata = {
        "kind": KIND, "format_version": 1, "name": config["name"], "description": config.get("description", ""),
        "quantity": config["quantity"], "unit": config["unit"], "transform": config["data"].get("transform", "none"),
        "target": config["data"]["target"], "graph": graph_settings, "elements": seen, "max_z": int(len(table) - 1),
        "network": config.get("network", {}),
        "uncertainty": {"method": ("Gaussian NLL head" if n_members == 1 else
                                   f"deep ensemble of {n_members}: σ² = members' mean σ² (Gaussian NLL heads) + "
                                   f"variance of their predictions") + "; σ scaled so that the shares of the validation "
                                  "split within 1σ and 2σ come closest to a Gaussian's (68.3%, 95.4%)",
                        "sigma_scale": scale},
        "ensemble": n_members,
        "validation": val_scores, "test": test_scores,
        "training": {"command": command + (f" --epochs {epochs}" if epochs is not None else "")
                     + (f" --limit {limit}" if limit else ""),
                     "config_file": config_path.name, "config": config, "data_file": str(config["data"]["file"]),
                     "data_sha256": hashlib.sha256(source.read_bytes()).hexdigest() if source.is_file() else None,
                     "elemental_references": references,
                     "split_seed": seed, "split_sizes": {"train": len(train_idx), "validation": len(val_idx),
                                                         "test": len(test_idx)},
                     "threads": threads, "settings": settings, **record, "total_seconds": round(time.time() - t0, 1),
                     "versions": {"ovito_mlclass": __version__, "torch": torch.__version__.split("+")[0]}},
    }
    with quiet_torchscript():
        scripted = torch.jit.script(net)
    path = Path(output) if output else Path(f"{config['name']}.pt")
    PropertyModel(scripted, metadata).save(path)
    log(f"saved {path}: validation MAE {val_scores['mae']:.4f}, test MAE {test_scores['mae']:.4f} {config['unit']} "
        f"(mean predictor {test_scores['mean_predictor_mae']:.4f}); test within 1σ {test_scores['within_1sigma']:.2f}, "
        f"2σ {test_scores['within_2sigma']:.2f}; {time.time() - t0:.0f} s")
    return path
