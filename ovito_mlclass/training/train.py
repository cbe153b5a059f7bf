"""Training a structure classifier from labelled snapshots: ``ovito-mlclass train CONFIG``.

A config (TOML; the built-in ones are in ``training/configs/``) names the datasets, the classes,
the feature specification and the network. Training is reproducible: fixed seeds, one thread
count, and the model file records the config, the command, a hash of the training data and the
validation scores.

Steps: features of every snapshot (cached next to the data) -> class-balanced subsample ->
standardisation -> cross-entropy with class weights, Adam, early stopping on the validation loss
-> reject threshold θ chosen on validation data -> TorchScript file with metadata.

A config whose ``[network]`` has ``kind = "pointnet"`` trains a :class:`~.network.PointNet` on a
single ``point_cloud`` feature block instead: every training batch is randomly rotated (and
mirrored), and the validation clouds are randomly rotated once (fixed seed), so early stopping,
θ and the recorded scores measure accuracy in arbitrary orientations, not in the orientation of
the MD boxes. Point clouds are not cached (the neighbour search is cheaper than the file).

With ``neighbor_average = k`` in ``[network]``, a second stage follows: the point MLP is frozen,
every atom's pooled feature is averaged over the atom and its k nearest neighbours (as
``StructureModel.predict`` will do), and the head alone is trained on those averages
(``[training] head_epochs``). Training end to end through the average would cost k + 1 clouds
per atom and step; the frozen features already separate the classes, the noise is what the
average removes.
"""
from __future__ import annotations

import hashlib
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..features import FeatureSpec
from ..classify import bulk_phase_region
from ..model import StructureModel, check_bulk_phase, quiet_torchscript
from ..structure_types import PALETTE, standard_color
from .snapshots import NO_LABEL, Snapshot, cache_dir

CONFIG_DIR = Path(__file__).parent / "configs"
OTHER = "Other"


def read_config(name_or_path, required: tuple, kind: str | None = None) -> tuple[dict, Path]:
    """A TOML config by path or by built-in name (``configs/<name>.toml``) whose ``kind`` key is
    ``kind`` (structure configs have none), with the ``required`` keys; clear errors otherwise."""
    try:
        import tomllib
    except ImportError:  # Python 3.10
        import tomli as tomllib
    what = f"{kind} config" if kind else "training config"
    path = Path(name_or_path)
    if not path.exists():
        path = CONFIG_DIR / f"{name_or_path}.toml"
    if not path.exists():
        known = ", ".join(p.stem for p in sorted(CONFIG_DIR.glob("*.toml")) if _config_kind(p) == kind)
        raise FileNotFoundError(f"No {what} {str(name_or_path)!r}; built-in: {known}.")
    with open(path, "rb") as f:
        config = tomllib.load(f)
    if config.get("kind") != kind:
        raise ValueError(f"{path}: not a {what} (kind = {config.get('kind')!r}); structure classifiers are trained "
                         f"by `ovito-mlclass train`, property models by `ovito-mlclass train-property`.")
    for key in required:
        if key not in config:
            raise ValueError(f"{path}: the config lacks '{key}'.")
    return config, path


def _config_kind(path: Path):
    try:
        import tomllib
    except ImportError:  # Python 3.10
        import tomli as tomllib
    with open(path, "rb") as f:
        return tomllib.load(f).get("kind")


# The features of a config that names none: Steinhardt invariants over the 12 nearest neighbours (the
# close-packed shells) and over the 4 nearest (tetrahedral bonding), each averaged over the
# neighbours, and the 16 nearest distances over the mean of the first 12: scale-free, and enough
# for the lattices OVITO's PTM knows.
DEFAULT_FEATURES = {"scale_neighbors": 12, "blocks": [
    {"kind": "steinhardt", "neighbors": 12, "degrees": [4, 6, 8, 10, 12], "averaged": True, "wl": False},
    {"kind": "steinhardt", "neighbors": 4, "degrees": [3, 4, 6], "averaged": True, "wl": True},
    {"kind": "distances", "neighbors": 16, "normalize": 12}]}


def load_config(name_or_path) -> tuple[dict, Path]:
    """A structure-classifier config by built-in name (``metals``, ``ice``, ``tcp``, ``metals-pointnet``,
    ``ice-pointnet``) or path. A config of your own may leave out ``[features]`` (then
    :data:`DEFAULT_FEATURES`) and give its data as structures or labelled frames
    (:mod:`.user_data`) instead of datasets; such a model gets the novelty score of the built-in
    default model (``[novelty] quantile = 0.999``) unless the config says otherwise."""
    config, path = read_config(name_or_path, ("name", "classes", "data"))
    config.setdefault("features", DEFAULT_FEATURES)
    own_data = not config["data"].get("datasets")
    if own_data and config.get("network", {}).get("kind", "feedforward") == "feedforward":
        config.setdefault("novelty", {"quantile": 0.999})
    return config, path


# ---------------------------------------------------------------------------------------------
# data


@dataclass
class Split:
    """Features and targets of all atoms of one split. ``y``: model class index, -1 = no label,
    -2 = an atom the model should reject (its dataset class is not a model class, or a defect core)."""

    X: np.ndarray
    y: np.ndarray
    sites: np.ndarray          # site class index or -1
    group: np.ndarray          # index into `groups`: which kind of snapshot / temperature the atom came from
    groups: list
    files: list
    neighbors: np.ndarray | None = None  # (n, k) rows of every atom's k nearest (-1: missing), if asked for


ONE_PER_RUN = "one per run"
_RUN_OF_SNAPSHOT = re.compile(r"_s\d+$")  # <run>_s<k>: the k-th snapshot of a run


def calibration_setting(config: dict):
    """``[training] calibration``: 0 (none), a fraction of the training snapshots, or "one per run"."""
    value = config.get("training", {}).get("calibration", 0.0)
    if value == ONE_PER_RUN:
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value < 1.0:
        raise ValueError(f'[training] calibration must be a fraction in [0, 1) or "{ONE_PER_RUN}", got {value!r}.')
    return float(value)


def snapshot_files(config: dict, split: str) -> list[Path]:
    """The snapshots of a split. With ``[training] calibration``, some training snapshots form the
    split "calibration", which early stopping, the reject threshold and the novelty thresholds are
    chosen on, and "train" is the rest: then nothing is chosen on the "val" snapshots, whose scores
    the model file reports. ``calibration = f``: the fraction f of the training snapshots, chosen by
    the seed. ``calibration = "one per run"``: one snapshot (chosen by the seed) of every run that
    wrote two or more (files ``<run>_s<k>.npz``), so that the thresholds see every system, phase and
    temperature of the training data, not a random part of them."""
    setting = calibration_setting(config)
    if split in ("train", "calibration") and setting:
        files = snapshot_files({**config, "training": {}}, "train")
        rng = np.random.default_rng(int(config.get("seed", 0)) + 17)
        if setting == ONE_PER_RUN:
            runs = {}
            for k, f in enumerate(files):
                runs.setdefault((f.parent, _RUN_OF_SNAPSHOT.sub("", f.stem)), []).append(k)
            chosen = {int(rng.choice(ks)) for ks in runs.values() if len(ks) >= 2}
        else:
            chosen = set(rng.choice(len(files), max(1, round(setting * len(files))), replace=False).tolist())
        return [f for k, f in enumerate(files) if (k in chosen) == (split == "calibration")]
    files = []
    for dataset in config["data"]["datasets"]:
        folder = cache_dir() / dataset / split
        found = sorted(folder.glob("*.npz"))
        if not found:
            hint = config["data"].get("generate", "the dataset's generator")
            raise FileNotFoundError(f"No {split} snapshots in {folder}; generate them first: {hint}")
        files += found
    return files


def data_hash(files: list[Path]) -> str:
    """sha256 over the snapshot files' names and contents, in order."""
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def _features_cached(path: Path, data, spec: FeatureSpec, neighbors: int = 0):
    if neighbors:  # PointNets (make_network checks) and the validation scores of a bulk phase
        X, rows = spec.compute(data, neighbors=neighbors)
        return X.astype(np.float32), rows
    if any(b["kind"] == "point_cloud" for b in spec.blocks):
        return spec.compute(data).astype(np.float32)
    key = hashlib.sha256(spec.to_json().encode() + path.read_bytes()).hexdigest()[:24]
    cached = cache_dir() / "features" / f"{path.stem}-{key}.npy"
    if cached.exists():
        return np.load(cached)
    X = spec.compute(data)
    cached.parent.mkdir(parents=True, exist_ok=True)
    np.save(cached.with_suffix(".part.npy"), X)
    cached.with_suffix(".part.npy").replace(cached)
    return X


def group_name(meta: dict) -> str:
    """How results are broken down: kind of run, lattice and temperature (as a fraction of T_m)."""
    kind = meta.get("kind", "")
    phase = meta.get("lattice") or meta.get("phase") or meta.get("structure") or ""
    t, u, T = meta.get("T_over_Tm"), meta.get("amplitude_d_nn"), meta.get("temperature_K")
    condition = f"{t:.2f} Tm" if isinstance(t, (int, float)) else (f"u = {u:.2f} d_nn" if isinstance(u, (int, float)) else
                                                                  f"{T:g} K" if isinstance(T, (int, float)) else "")
    return " ".join(str(p) for p in (kind, phase, condition) if p) or "all"


def load_split(config: dict, spec: FeatureSpec, split: str, progress=True, neighbors: int = 0) -> Split:
    classes = list(config["classes"])
    index = {name: i for i, name in enumerate(classes)}
    data = config["data"]
    reject = set(data.get("reject_classes", []))      # dataset classes the model must call Other
    # unlabelled atoms the model must call Other, e.g. [[data.reject]] kinds = ["surface"], extra =
    # "surface_layer", below = 0.5 (the outermost layer); reject_defect_core: one such rule
    rules = list(data.get("reject", [])) + ([data["reject_defect_core"]] if "reject_defect_core" in data else [])
    site_cfg = config.get("sites")
    files = snapshot_files(config, split)
    Xs, ys, ss, gs, ns, groups = [], [], [], [], [], []
    offset = 0
    iterator = files
    if progress:
        try:
            from tqdm import tqdm
            iterator = tqdm(files, desc=f"features ({split})", unit="snapshot", file=sys.stderr)
        except ImportError:
            pass
    for path in iterator:
        snap = Snapshot.load(path)
        data = snap.frame()
        mask = spec.selection(data)
        X = _features_cached(path, data, spec, neighbors)
        if neighbors:
            X, rows = X
            ns.append(np.where(rows >= 0, rows + offset, -1))   # rows of the whole split
        offset += len(X)
        labels = snap.labels[mask]
        y = np.full(len(labels), -1, dtype=np.int64)
        for k, name in enumerate(snap.classes):
            if name in index:
                y[labels == k] = index[name]
            elif name in reject:
                y[labels == k] = -2
        for rule in rules:
            if snap.meta.get("kind") in rule.get("kinds", []) and rule["extra"] in snap.extra:
                value = np.asarray(snap.extra[rule["extra"]])[mask]
                y[(labels == NO_LABEL) & (value < rule["below"])] = -2
        sites = np.full(len(labels), -1, dtype=np.int64)
        if site_cfg and site_cfg["extra"] in snap.extra:
            values = np.asarray(snap.extra[site_cfg["extra"]])[mask]
            for k, v in enumerate(site_cfg["values"]):
                sites[values == v] = k
        name = group_name(snap.meta)
        if name not in groups:
            groups.append(name)
        Xs.append(X), ys.append(y), ss.append(sites), gs.append(np.full(len(y), groups.index(name)))
    return Split(np.concatenate(Xs).astype(np.float32), np.concatenate(ys), np.concatenate(ss), np.concatenate(gs),
                 groups, files, np.concatenate(ns) if neighbors else None)


def balanced_subsample(y: np.ndarray, per_class: int, rng: np.random.Generator) -> np.ndarray:
    """Indices of at most ``per_class`` atoms of every class (labelled atoms only)."""
    keep = []
    for c in np.unique(y[y >= 0]):
        members = np.flatnonzero(y == c)
        keep.append(members if len(members) <= per_class else rng.choice(members, per_class, replace=False))
    return np.sort(np.concatenate(keep))


# ---------------------------------------------------------------------------------------------
# scores


def confusion(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> np.ndarray:
    """Rows: true class (model classes, then Other); columns: predicted (model classes, then Other).
    ``y_pred`` = -1 means rejected (Other); ``y_true`` = -2 means the atom should be Other."""
    t = np.where(y_true == -2, n_classes, y_true)
    p = np.where(y_pred < 0, n_classes, y_pred)
    keep = t >= 0
    return np.bincount(t[keep] * (n_classes + 1) + p[keep], minlength=(n_classes + 1) ** 2).reshape(
        n_classes + 1, n_classes + 1)


def recalls(matrix: np.ndarray) -> np.ndarray:
    totals = matrix.sum(axis=1)
    return np.where(totals > 0, np.diag(matrix) / np.maximum(totals, 1), np.nan)


def choose_threshold(probs: np.ndarray, y: np.ndarray, n_classes: int, novel: np.ndarray | None = None
                     ) -> tuple[float, float]:
    """θ maximising the balanced accuracy on validation data, where atoms that should be Other
    (y = -2) count as a class of their own; with none of those, the largest θ that costs at most
    0.1 percentage points of balanced accuracy. Atoms marked ``novel`` are Other whatever θ.
    Returns (θ, balanced accuracy)."""
    best = probs.max(axis=1)
    argmax = probs.argmax(axis=1)
    novel = np.zeros(len(y), dtype=bool) if novel is None else novel
    grid = np.round(np.arange(0.0, 0.96, 0.01), 2)
    scores = []
    for theta in grid:
        matrix = confusion(y, np.where((best < theta) | novel, -1, argmax), n_classes)
        scores.append(np.nanmean(recalls(matrix)))
    scores = np.array(scores)
    if (y == -2).any():
        i = int(np.argmax(scores))
    else:
        i = int(np.flatnonzero(scores >= scores[0] - 1e-3).max())
    return float(grid[i]), float(scores[i])


def fit_novelty(net, X, y, X_val, y_val, n_classes: int, quantile: float, shrinkage: float) -> dict:
    """Class-conditional Gaussians of the standardised descriptors (Mahalanobis distances, Lee et
    al., NeurIPS 2018, in the input space), one covariance per class shrunk towards its mean
    variance (``shrinkage``): fitted on the training atoms of each class; each class's threshold is
    the ``quantile`` of its held-out atoms' squared distances, so that about 1 - quantile of the
    atoms of a training class are taken for novel. Sets them in ``net`` and returns what the
    metadata record."""
    import torch

    with torch.no_grad():
        H = net.standardised(torch.from_numpy(X)).double().numpy()
        H_val = net.standardised(torch.from_numpy(X_val)).double().numpy()
    width = H.shape[1]
    means, factors, thresholds = np.zeros((n_classes, width)), np.zeros((n_classes, width, width)), np.ones(n_classes)
    for c in range(n_classes):
        members = H[y == c]
        means[c] = members.mean(axis=0)
        cov = np.cov(members, rowvar=False) if len(members) > 1 else np.eye(width)
        cov = (1 - shrinkage) * cov + shrinkage * max(np.trace(cov) / width, 1e-12) * np.eye(width)
        factors[c] = np.linalg.cholesky(np.linalg.inv(cov))  # precision = L L^T: d^2 = |(h - mean) L|^2
        d = (H_val[y_val == c] - means[c]) @ factors[c]
        thresholds[c] = np.quantile((d * d).sum(axis=1), quantile) if len(d) else np.inf
    net.set_novelty(means, factors, thresholds)
    return {"space": f"standardised descriptors ({width})", "quantile": quantile, "shrinkage": shrinkage,
            "thresholds": thresholds.tolist()}


# ---------------------------------------------------------------------------------------------
# training


def make_network(config: dict, spec: FeatureSpec, n_features: int, n_classes: int, n_sites: int):
    """The config's ``[network]``: ``kind = "feedforward"`` (default; ``hidden``) or ``"pointnet"``
    (``point_widths``, ``head``, ``align_radius``, ``neighbor_average``; one ``point_cloud`` feature
    block, no site output)."""
    from .network import PointNet, StructureNet

    network = config.get("network", {})
    kind = network.get("kind", "feedforward")
    if kind == "feedforward":
        if network.get("neighbor_average"):
            raise ValueError("neighbor_average needs a PointNet (kind = 'pointnet'): it averages the pooled feature.")
        return StructureNet(n_features, n_classes, list(network.get("hidden", [64, 64])), n_sites)
    if kind != "pointnet":
        raise ValueError(f"Unknown network kind {kind!r}; known: 'feedforward', 'pointnet'.")
    if len(spec.blocks) != 1 or spec.blocks[0]["kind"] != "point_cloud":
        raise ValueError("A PointNet takes exactly one feature block, of kind 'point_cloud'.")
    if n_sites:
        raise ValueError("A PointNet has no site output; remove [sites] from the config.")
    if int(network.get("neighbor_average", 0)) < 0:
        raise ValueError("neighbor_average must be 0 (off) or a number of nearest neighbours.")
    return PointNet(spec.blocks[0]["neighbors"], n_classes, list(network.get("point_widths", [32, 64, 64])),
                    list(network.get("head", [64])), float(network.get("align_radius", 0.0)))


def rotate_clouds(x, generator):
    """Every row of ``x`` (``(n, 3N)`` point clouds) turned by its own random orthogonal matrix."""
    import torch

    from .network import random_rotations

    n = x.shape[0]
    rotations = random_rotations(n, generator)
    return torch.bmm(x.reshape(n, -1, 3), rotations.transpose(1, 2)).reshape(n, -1)


def _evaluate(net, X, batch: int | None):
    """The network on ``X`` in batches (None: all at once, as the descriptor models were trained)."""
    import torch

    if batch is None:
        return net(X)[:2]
    parts = [net(X[start:start + batch]) for start in range(0, len(X), batch)]
    return torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])


def averaged_features(net, split: Split, batch: int, k: int):
    """Every atom's pooled PointNet feature averaged over the atom and its k nearest neighbours."""
    import torch

    from ..model import embed_all, neighbor_mean

    with torch.no_grad():
        return neighbor_mean(embed_all(net, split.X, batch), torch.from_numpy(np.ascontiguousarray(split.neighbors[:, :k])))


def train_head(net, h, y, h_val, y_val, loss, loss_val, settings: dict, generator, log) -> int:
    """Stage 2: only ``net.head`` and ``net.classes`` learn, on fixed (averaged) features, with early
    stopping on the validation loss. Returns the number of epochs run."""
    import torch

    params = list(net.head.parameters()) + list(net.classes.parameters())
    optimiser = torch.optim.Adam(params, lr=float(settings["learning_rate"]), weight_decay=float(settings["weight_decay"]))
    best_loss, best_state, waited = np.inf, None, 0
    epochs = int(settings.get("head_epochs", 30))
    for epoch in range(epochs):
        for idx in torch.randperm(len(h), generator=generator).split(int(settings["batch_size"])):
            optimiser.zero_grad()
            loss(net.classify(h[idx]), y[idx]).backward()
            optimiser.step()
        with torch.no_grad():
            val_loss = float(loss_val(net.classify(h_val), y_val))
        if val_loss < best_loss - 1e-5:
            best_loss, waited = val_loss, 0
            best_state = {k: v.clone() for k, v in net.state_dict().items()}
        else:
            waited += 1
        log(f"head epoch {epoch:3d}  validation loss on neighbour averages {val_loss:.5f}  (best {best_loss:.5f})")
        if waited >= int(settings["patience"]):
            break
    net.load_state_dict(best_state)
    net.eval()
    return epoch + 1


def report(metadata: dict, training_counts) -> list[str]:
    """The validation in lines a user reads: recall per class, and warnings for a class with too
    little training data or two classes the features hardly tell apart."""
    v = metadata["validation"]
    classes = metadata["classes"]
    matrix = np.asarray(v["confusion"], dtype=float)
    lines = [f"{'class':<20s} {'training atoms':>14s} {'validation atoms':>16s} {'recall':>8s}"]
    for k, cls in enumerate(classes):
        recall = v["recall"].get(cls)
        lines.append(f"{cls:<20s} {int(training_counts[k]):14d} {int(matrix[k].sum()):16d} "
                     f"{'' if recall is None else f'{recall:8.4f}'}")
    if matrix[len(classes)].sum():  # atoms that must be Other (surface layers, boundary cores ...)
        lines.append(f"{'(must be Other)':<20s} {'':>14s} {int(matrix[len(classes)].sum()):16d} "
                     f"{matrix[len(classes), len(classes)] / matrix[len(classes)].sum():8.4f}")
    for k, cls in enumerate(classes):
        if training_counts[k] < 1000:
            lines.append(f"warning: class {cls!r} has only {int(training_counts[k])} training atoms; give more "
                         f"structures or frames of it.")
    rows = matrix[:len(classes), :len(classes)] / np.maximum(matrix[:len(classes)].sum(axis=1, keepdims=True), 1)
    for a in range(len(classes)):
        for b in range(len(classes)):
            if a != b and rows[a, b] > 0.1:
                lines.append(f"warning: {rows[a, b]:.0%} of the validation atoms of {classes[a]!r} are called "
                             f"{classes[b]!r}: the features hardly tell them apart (a [features] reaching farther "
                             f"may help).")
    return lines


def training_sample(split: Split, settings: dict, classes: list, rng) -> np.ndarray:
    """Rows of the training split to learn from: a class-balanced subsample, plus (with
    ``outlier_weight``) as many atoms that must be Other."""
    pick = balanced_subsample(split.y, int(settings["max_atoms_per_class"]), rng)
    if float(settings.get("outlier_weight", 0.0)):  # atoms that must be Other, pushed towards uniform posteriors
        outliers = np.flatnonzero(split.y == -2)
        if len(outliers) > int(settings["max_atoms_per_class"]):
            outliers = rng.choice(outliers, int(settings["max_atoms_per_class"]), replace=False)
        pick = np.sort(np.concatenate([pick, outliers]))
    counts = np.bincount(split.y[pick][split.y[pick] >= 0], minlength=len(classes))
    if (counts == 0).any():
        raise ValueError(f"No training atoms for class(es) {[c for c, n in zip(classes, counts) if n == 0]}.")
    return pick


def fit_network(net, train: tuple, check: tuple, n_classes: int, settings: dict, seed: int, pointnet: bool,
                eval_batch, has_sites: bool, log, t0: float) -> tuple[int, int, object]:
    """Minimise the class-weighted cross-entropy (plus outlier exposure and the site loss) with
    Adam; stop early on the loss of the ``check`` atoms. ``train`` and ``check`` are (X, y, sites)
    tensors. Leaves the best state in ``net``; returns (epochs run, best epoch, the class loss)."""
    import torch

    Xt, yt, st = train
    Xvt, yvt, svt = check
    counts = np.bincount(yt[yt >= 0].numpy(), minlength=n_classes)
    class_weight = torch.as_tensor((yt >= 0).sum().item() / (n_classes * counts), dtype=torch.float32)
    loss_classes = torch.nn.CrossEntropyLoss(weight=class_weight)
    loss_sites = torch.nn.CrossEntropyLoss(ignore_index=-1)
    check_counts = np.maximum(np.bincount(yvt[yvt >= 0].numpy(), minlength=n_classes), 1)
    loss_val = torch.nn.CrossEntropyLoss(weight=torch.as_tensor(len(yvt) / (n_classes * check_counts),
                                                                 dtype=torch.float32))
    outlier_weight = float(settings.get("outlier_weight", 0.0))
    optimiser = torch.optim.Adam(net.parameters(), lr=float(settings["learning_rate"]),
                                 weight_decay=float(settings["weight_decay"]))

    def objective(logits, site_logits, target, site_target, loss):
        inlier = target >= 0
        value = loss(logits[inlier], target[inlier])
        if outlier_weight and not inlier.all():  # outlier exposure (Hendrycks et al., ICLR 2019)
            value = value - outlier_weight * torch.log_softmax(logits[~inlier], dim=1).mean()
        if has_sites and (site_target >= 0).any():
            value = value + loss_sites(site_logits, site_target)
        return value

    best_loss, best_state, best_epoch, waited = np.inf, None, 0, 0
    batch = int(settings["batch_size"])
    generator = torch.Generator().manual_seed(seed)
    # optional cosine decay of the learning rate over the epochs (the PointNets profit from it)
    schedule = (torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, int(settings["epochs"]))
                if settings.get("cosine_schedule") else None)
    for epoch in range(int(settings["epochs"])):
        net.train()
        for idx in torch.randperm(len(Xt), generator=generator).split(batch):
            optimiser.zero_grad()
            xb = rotate_clouds(Xt[idx], generator) if pointnet else Xt[idx]
            logits, site_logits = net(xb)[:2]
            objective(logits, site_logits, yt[idx], st[idx], loss_classes).backward()
            optimiser.step()
        if schedule is not None:
            schedule.step()
        net.eval()
        with torch.no_grad():
            logits, site_logits = _evaluate(net, Xvt, eval_batch)
            val_loss = float(objective(logits, site_logits, yvt, svt, loss_val))
        if val_loss < best_loss - 1e-5:
            best_loss, best_epoch, waited = val_loss, epoch, 0
            best_state = {k: v.clone() for k, v in net.state_dict().items()}
        else:
            waited += 1
        if epoch % (1 if pointnet else 10) == 0:  # PointNet epochs are long: report each
            log(f"epoch {epoch:4d}  validation loss {val_loss:.5f}  (best {best_loss:.5f} at {best_epoch})  "
                f"{time.time() - t0:.0f} s")
        if waited >= int(settings["patience"]):
            break
    net.load_state_dict(best_state)
    net.eval()
    return epoch + 1, best_epoch, (loss_classes, loss_val, generator)


def validation_scores(val_split: Split, predicted: np.ndarray, classes: list) -> dict:
    """Confusion matrix, recalls, balanced accuracy and accuracy per kind of snapshot of the
    final predictions (class index, -1 = Other) of every validation atom."""
    matrix = confusion(val_split.y, predicted, len(classes))
    by_group = {}
    for g, name in enumerate(val_split.groups):
        sel = val_split.group == g
        m = confusion(val_split.y[sel], predicted[sel], len(classes))
        if m.sum():
            by_group[name] = {"atoms": int(m.sum()), "accuracy": float(np.trace(m) / m.sum())}
    return {"confusion": matrix.tolist(), "confusion_axes": classes + [OTHER],
            "recall": dict(zip(classes + [OTHER], [None if np.isnan(r) else float(r) for r in recalls(matrix)])),
            "balanced_accuracy": float(np.nanmean(recalls(matrix))), "by_group": by_group,
            "atoms": int(matrix.sum())}


def class_colors(config: dict, classes: list) -> list:
    """Each class's colour: the config's, else OVITO's for its name, else the palette's."""
    colors = dict(config.get("colors", {}))
    unnamed = [c for c in classes if c not in colors and standard_color(c) is None]
    for k, c in enumerate(unnamed):
        colors[c] = list(PALETTE[k % len(PALETTE)])
    return [list(colors.get(c) or standard_color(c)) for c in classes]


def bulk_phase_rule(config: dict, classes: list) -> dict | None:
    """The config's ``[bulk_phase]`` (``class``, ``neighbors`` = 12, ``min_neighbors`` = 6,
    ``counting`` = []) as the model file stores it, checked; None without one."""
    if "bulk_phase" not in config:
        return None
    given = config["bulk_phase"]
    rule = {"class": given.get("class"), "neighbors": given.get("neighbors", 12),
            "min_neighbors": given.get("min_neighbors", 6), "counting": list(given.get("counting", []))}
    unknown = set(given) - set(rule)
    if unknown:
        raise ValueError(f"Unknown key(s) {sorted(unknown)} in [bulk_phase]; allowed: {sorted(rule)}.")

    def fail(text):
        raise ValueError(f"[bulk_phase]: {text}")

    check_bulk_phase(rule, classes, fail)
    return rule


def train(config_name_or_path, output=None, threads: int | None = None, progress: bool = True) -> Path:
    """Train the model a config describes and write it (``output``, default ``<name>.pt``):
    features of the splits -> training sample -> network -> (neighbour-averaged head) -> novelty
    -> reject threshold -> validation scores -> TorchScript file with metadata."""
    import torch

    from .. import __version__

    t0 = time.time()
    config, config_path = load_config(config_name_or_path)
    if not config["data"].get("datasets"):  # your own structures or labelled frames
        from .user_data import prepare

        config["data"]["datasets"] = [prepare(config, config_path, progress)]
    classes = list(config["classes"])
    if OTHER in classes:
        raise ValueError(f"'{OTHER}' is the reject label and cannot be a class.")
    spec = FeatureSpec.from_dict(config["features"])
    settings = {"epochs": 200, "batch_size": 1024, "learning_rate": 2e-3, "weight_decay": 1e-5,
                "patience": 15, "max_atoms_per_class": 100_000, **config.get("training", {})}
    seed = int(config.get("seed", 0))
    threads = threads or int(settings.get("threads", 2))
    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    log = (lambda *a: print(*a, file=sys.stderr, flush=True)) if progress else (lambda *a: None)

    # the data: train, val (only scored) and what early stopping, θ and the novelty are chosen on
    # (the calibration snapshots set aside from training, else val)
    site_classes = list(config.get("sites", {}).get("classes", []))
    bulk_phase = bulk_phase_rule(config, classes)
    net = make_network(config, spec, len(spec.names), len(classes), len(site_classes))  # checks [network] first
    average = int(config.get("network", {}).get("neighbor_average", 0))
    train_split = load_split(config, spec, "train", progress, neighbors=average)
    # the validation scores of a bulk phase look at each atom's nearest neighbours: the same search
    val_split = load_split(config, spec, "val", progress,
                           neighbors=max(average, bulk_phase["neighbors"] if bulk_phase else 0))
    calibration = calibration_setting(config)
    choose_split = load_split(config, spec, "calibration", progress, neighbors=average) if calibration else val_split
    log(f"train: {len(train_split.y)} atoms from {len(train_split.files)} snapshots; "
        f"val: {len(val_split.y)} atoms from {len(val_split.files)} snapshots")
    pick = training_sample(train_split, settings, classes, rng)
    X, y, sites = train_split.X[pick], train_split.y[pick], train_split.sites[pick]
    counts = np.bincount(y[y >= 0], minlength=len(classes))
    pointnet = config.get("network", {}).get("kind") == "pointnet"
    eval_batch = 256 if pointnet else None  # as StructureModel.batch_size: cache-sized
    if pointnet:  # validation clouds in random orientations, fixed once (see the module docstring)
        for split in {id(val_split): val_split, id(choose_split): choose_split}.values():
            split.X = rotate_clouds(torch.from_numpy(split.X), torch.Generator().manual_seed(seed + 1)).numpy()
    else:
        net.set_standardisation(X[y >= 0].mean(axis=0), X[y >= 0].std(axis=0))
    val_keep = choose_split.y >= 0
    if "max_val_atoms_per_class" in settings:  # early stopping on a subsample (the final scores use all)
        pick_val = balanced_subsample(choose_split.y, int(settings["max_val_atoms_per_class"]),
                                      np.random.default_rng(seed + 2))
        val_keep = np.isin(np.arange(len(choose_split.y)), pick_val)
    check = tuple(torch.from_numpy(a[val_keep]) for a in (choose_split.X, choose_split.y, choose_split.sites))

    # the network
    epochs_run, best_epoch, (loss_classes, loss_val, generator) = fit_network(
        net, (torch.from_numpy(X), torch.from_numpy(y), torch.from_numpy(sites)), check, len(classes), settings,
        seed, pointnet, eval_batch, bool(site_classes), log, t0)
    head_epochs = None
    if average:  # stage 2 (module docstring): the head on neighbour-averaged features
        train_split.X = rotate_clouds(torch.from_numpy(train_split.X), generator).numpy()
        choose_features = averaged_features(net, choose_split, eval_batch, average)
        val_features = (choose_features if choose_split is val_split
                        else averaged_features(net, val_split, eval_batch, average))
        head_epochs = train_head(net, averaged_features(net, train_split, eval_batch, average)[pick], torch.from_numpy(y),
                                 choose_features[torch.from_numpy(val_keep)], check[1], loss_classes, loss_val,
                                 settings, generator, log)

    # novelty and the reject threshold, chosen on the calibration (else validation) atoms
    novelty_config = config.get("novelty")
    novelty_record = None
    if calibration:
        log(f"calibration (early stopping, θ, novelty): {len(choose_split.y)} atoms from "
            f"{len(choose_split.files)} training snapshots set aside; val is only scored")
    if novelty_config is not None:
        if pointnet:
            raise ValueError("[novelty] needs a feed-forward network (kind = 'feedforward').")
        novelty_record = fit_novelty(net, X[y >= 0], y[y >= 0], choose_split.X[choose_split.y >= 0],
                                     choose_split.y[choose_split.y >= 0], len(classes),
                                     float(novelty_config.get("quantile", 0.999)),
                                     float(novelty_config.get("shrinkage", 0.05)))

    def outputs(split, averaged):  # posteriors, site logits and novelty of every atom of a split
        with torch.no_grad():
            if average:
                return torch.softmax(net.classify(averaged), dim=1).numpy(), None, None
            logits, site_logits = _evaluate(net, torch.from_numpy(split.X), eval_batch)
            novel = net(torch.from_numpy(split.X))[2].numpy() > 1.0 if novelty_record is not None else None
            return torch.softmax(logits, dim=1).numpy(), site_logits, novel

    probs, _, novel = outputs(choose_split, choose_features if average else None)
    theta, _ = choose_threshold(probs, choose_split.y, len(classes), novel)

    # the validation scores: every validation atom, with everything fixed
    probs, site_logits, novel = outputs(val_split, val_features if average else None)
    predicted = np.where((probs.max(axis=1) < theta) | (novel if novel is not None else False), -1,
                         probs.argmax(axis=1))
    if bulk_phase:  # as classify.bulk_phase_types, on class indices
        near = val_split.neighbors[:, :bulk_phase["neighbors"]]
        phase = predicted == classes.index(bulk_phase["class"])
        counted = np.isin(predicted, [classes.index(c) for c in bulk_phase["counting"] if c != bulk_phase["class"]])
        predicted[phase & ~bulk_phase_region(phase, counted, near, bulk_phase["min_neighbors"])] = -1
    validation = validation_scores(val_split, predicted, classes)
    if pointnet:
        validation["orientation"] = f"every validation cloud randomly rotated (seed {seed + 1})"
    if site_classes:
        ok = val_split.sites >= 0
        site_pred = site_logits.argmax(dim=1).numpy()
        validation["site_accuracy"] = float((site_pred[ok] == val_split.sites[ok]).mean()) if ok.any() else None
    if novelty_record is not None:
        should_be_other = val_split.y == -2
        novelty_record["validation"] = {
            "class_atoms_novel": float(novel[val_split.y >= 0].mean()),
            "should_be_other_atoms_novel": float(novel[should_be_other].mean()) if should_be_other.any() else None}

    metadata = {
        # version-1 readers cannot build point clouds, version-2 readers would not average, version-3
        # readers would not reject novel atoms, version-4 readers would not apply the bulk-phase rule
        "format_version": 5 if bulk_phase else 4 if novelty_record else 3 if average else 2 if pointnet else 1,
        **({"novelty": novelty_record} if novelty_record else {}),
        **({"bulk_phase": bulk_phase} if bulk_phase else {}),
        **({"neighbor_average": average} if average else {}),
        "name": config["name"],
        "description": config.get("description", ""),
        "classes": classes,
        "colors": class_colors(config, classes),
        "site_classes": site_classes,
        "site_property": config.get("sites", {}).get("property", ""),
        **({"site_classes_of": list(config["sites"].get("of", classes))} if site_classes else {}),
        **({"single_species": config["single_species"]} if "single_species" in config else {}),
        "features": spec.to_dict(),
        "reject_threshold": theta,
        "training": {
            "command": f"ovito-mlclass train {config_name_or_path}",
            "config_file": config_path.name,
            "config": config,
            "seed": seed,
            "threads": threads,
            "epochs_run": epochs_run,
            "best_epoch": best_epoch,
            **({"head_epochs_run": head_epochs} if average else {}),
            "training_atoms": {c: int(n) for c, n in zip(classes, counts)},
            "data_hash": data_hash(train_split.files + val_split.files),
            "train_files": [p.name for p in train_split.files],
            "val_files": [p.name for p in val_split.files],
            **({"calibration_files": [p.name for p in choose_split.files]} if calibration else {}),
            "seconds": round(time.time() - t0, 1),
            "versions": {"ovito_mlclass": __version__, "torch": torch.__version__.split("+")[0],
                         "numpy": np.__version__},
        },
        "validation": validation,
    }
    with quiet_torchscript():
        scripted = torch.jit.script(net)
    path = Path(output) if output else Path(f"{config['name']}.pt")
    StructureModel(module=scripted, metadata=metadata).save(path)
    log(f"saved {path}: θ = {theta:.2f}, balanced validation accuracy {validation['balanced_accuracy']:.4f}, "
        f"{time.time() - t0:.0f} s")
    for line in report(metadata, counts):
        log(line)
    return path
