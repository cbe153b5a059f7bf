"""Unsupervised structure discovery: autoencoder + Gaussian mixture (Boattini, Dijkstra & Filion,
J. Chem. Phys. 151, 154901 (2019)), as a plain NumPy/torch API.

For a system nobody has labelled, every atom is described by a vector Q(i) of neighbour-averaged
bond-order parameters (default q̄_l, l = 1..8, over 12 nearest neighbours; the paper used q̄_1..q̄_8
over SANN neighbours, which this package lacks — its choices here are as recalled, the full text
was not at hand to check them), which is

1. standardised (zero mean, unit variance per component);
2. compressed by a fully connected autoencoder d -> h -> c -> h -> d (ReLU hidden layers,
   linear bottleneck and output, h = 10 d) trained on the loss of the paper,
   E = (1/N) Σ_i ‖Q(i) − Q̂(i)‖² + λ Σ w²  (λ on the weights, not the biases);
3. clustered in the c-dimensional latent space by a Gaussian mixture (scikit-learn
   ``GaussianMixture``, full covariances).

Both model sizes come from the data, each by one deterministic elbow rule (:func:`elbow`):

- bottleneck dimension c: the elbow of the fraction of variance explained,
  FVE(c) = 1 − Σ‖Q − Q̂‖² / Σ‖Q − ⟨Q⟩‖², for c = 1..d;
- number of clusters K: the elbow of the mixture entropy S_K = −(1/N) Σ_i Σ_k p_ik ln p_ik
  (p_ik: posterior of cluster k for atom i) for K = 1..K_max. S_1 = 0; S_K stays small while
  every component sits on a real cluster and jumps once a component must split one, so the elbow
  is the last K before the jump (the entropy plot of Baudry et al., J. Comput. Graph. Stat. 19,
  332 (2010)). The Bayesian information criterion of every mixture is kept next to it, for
  comparison.

The elbow of a curve is its point farthest from the straight line through its two end points,
both axes scaled to [0, 1] ("Kneedle", Satopää et al., ICDCS Workshops 2011): above the chord for
the rising, saturating FVE, below it for the flat-then-rising entropy. Either choice can be
overridden (``dims=``, ``clusters=``).

Clusters are numbered reproducibly: by decreasing mean of one feature over their atoms (default
q̄6, so Cluster 1 is the most ordered). Training runs on one thread with fixed seeds
(``torch.manual_seed``, the mixture's ``random_state``), so a seed fixes the result.

    result = fit(X, seed=0)              # X: (n_atoms, d) features, e.g. from bond_order_features
    result.dims, result.n_clusters       # chosen c and K; result.fve_curve, result.entropy_curve
    labels, confidence, latent = result.predict(X)

:func:`fit_structure` does the same from an OVITO ``DataCollection``, and
:meth:`UnsupervisedFit.save_model` writes the fitted encoder and mixture as a classifier file that
:class:`~ovito_mlclass.model.StructureModel` and ``StructureClassifierModifier`` load.
"""
from __future__ import annotations

import json
import math
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import torch

from .features import FeatureSpec
from .neighbors import InputError

DEFAULT_DEGREES = tuple(range(1, 9))  # q̄_1 .. q̄_8: the input vector of Boattini et al. (2019)
MIN_ATOMS_PER_CLUSTER = 10            # fewer atoms per allowed cluster cannot support a full-covariance mixture
HIDDEN_PER_INPUT = 10                 # hidden layer width h = 10 d
WEIGHT_DECAY = 1e-5                   # λ of the loss
METHOD = "autoencoder + Gaussian mixture (Boattini, Dijkstra & Filion, J. Chem. Phys. 151, 154901 (2019))"
# distinct colours for Cluster 1, 2, ... (matplotlib's tab10, without its grey)
CLUSTER_COLORS = [(0.122, 0.467, 0.706), (1.0, 0.498, 0.055), (0.173, 0.627, 0.173), (0.839, 0.153, 0.157),
                  (0.580, 0.404, 0.741), (0.549, 0.337, 0.294), (0.890, 0.467, 0.761), (0.737, 0.741, 0.133),
                  (0.090, 0.745, 0.812)]


# ---------------------------------------------------------------------------------------------- elbows

def elbow(x, y, bend: str) -> int:
    """Index of the elbow of the curve (x, y): its point farthest from the chord through its end
    points, both axes scaled to [0, 1], on the side given by ``bend``: ``"above"`` for a rising,
    saturating curve (FVE), ``"below"`` for a flat-then-rising one (entropy). Curves of fewer
    than three points, or without a point on that side of the chord, give 0."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if len(x) < 3:
        return 0
    xs = (x - x[0]) / (x[-1] - x[0])
    span = y.max() - y.min()
    if span <= 0:
        return 0
    ys = (y - y.min()) / span
    chord = ys[0] + (ys[-1] - ys[0]) * xs
    if bend not in ("above", "below"):
        raise ValueError(f"bend must be 'above' or 'below', got {bend!r}")
    # vertical distance to the chord: proportional to the perpendicular one
    distance = (ys - chord) if bend == "above" else (chord - ys)
    if distance.max() <= 1e-12:
        return 0
    return int(np.argmax(distance))


def mixture_entropy(posteriors: np.ndarray) -> float:
    """S = −(1/N) Σ_i Σ_k p_ik ln p_ik (0 ln 0 = 0): how ambiguously the mixture assigns atoms."""
    p = np.asarray(posteriors, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(p > 0, p * np.log(p), 0.0)
    return max(0.0, float(-terms.sum() / len(p)))  # never -0.0


def fraction_of_variance_explained(z: np.ndarray, reconstructed: np.ndarray) -> float:
    """FVE = 1 − Σ‖Q − Q̂‖² / Σ‖Q − ⟨Q⟩‖²."""
    total = ((z - z.mean(axis=0)) ** 2).sum()
    return float(1.0 - ((z - reconstructed) ** 2).sum() / total) if total > 0 else 1.0


# ---------------------------------------------------------------------------------------------- autoencoder

@contextmanager
def _deterministic_torch(threads: int = 1):
    """One thread and deterministic kernels while training: same seed -> same weights."""
    before_threads, before_det = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(before_det)
        torch.set_num_threads(before_threads)


def _layers(d: int, c: int, hidden: int):
    nn = torch.nn
    encoder = nn.Sequential(nn.Linear(d, hidden), nn.ReLU(), nn.Linear(hidden, c))
    decoder = nn.Sequential(nn.Linear(c, hidden), nn.ReLU(), nn.Linear(hidden, d))
    return encoder, decoder


def train_autoencoder(z: np.ndarray, dims: int, *, seed: int = 0, hidden: int | None = None,
                      weight_decay: float = WEIGHT_DECAY, steps: int = 1500, batch: int = 512, lr: float = 1e-2):
    """Train a d -> h -> dims -> h -> d autoencoder on standardised features ``z`` (n, d) with
    E = (1/N) Σ‖Q − Q̂‖² + λ Σ w² (Adam, mini-batches, ``steps`` updates). Returns
    ``(encoder, decoder, fve)`` with the FVE over all of ``z``."""
    n, d = z.shape
    hidden = hidden or HIDDEN_PER_INPUT * d
    with _deterministic_torch():
        torch.manual_seed(seed)
        encoder, decoder = _layers(d, dims, hidden)
        weights = [p for name, p in [*encoder.named_parameters(), *decoder.named_parameters()] if name.endswith("weight")]
        params = [*encoder.parameters(), *decoder.parameters()]
        optimizer = torch.optim.Adam(params, lr=lr)
        # the learning rate decays tenfold over the run: fast start, settled end (no epochs to tune)
        schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 0.1 ** (step / steps))
        x = torch.from_numpy(np.ascontiguousarray(z, dtype=np.float32))
        generator = torch.Generator().manual_seed(seed)
        batch = min(batch, n)
        order, position = torch.randperm(n, generator=generator), 0
        for _ in range(steps):
            if position + batch > n:
                order, position = torch.randperm(n, generator=generator), 0
            xb = x[order[position:position + batch]]
            position += batch
            loss = ((decoder(encoder(xb)) - xb) ** 2).sum(dim=1).mean()
            loss = loss + weight_decay * sum((w ** 2).sum() for w in weights)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
        encoder.eval(), decoder.eval()
        with torch.no_grad():
            reconstructed = decoder(encoder(x)).numpy()
    return encoder, decoder, fraction_of_variance_explained(z, reconstructed)


# ---------------------------------------------------------------------------------------------- the fit

@dataclass
class Curve:
    """An elbow curve: ``x`` (dimensions or cluster counts), ``y`` and the chosen ``x`` value."""

    x: np.ndarray
    y: np.ndarray
    chosen: int
    label: str

    def to_dict(self) -> dict:
        return {"x": self.x.tolist(), "y": [round(float(v), 6) for v in self.y], "chosen": int(self.chosen),
                "label": self.label}


@dataclass
class Prediction:
    labels: np.ndarray        # (n,) int: 0-based cluster index (Cluster labels[i] + 1)
    confidence: np.ndarray    # (n,) float: posterior of the assigned cluster
    latent: np.ndarray        # (n, c) float32: latent coordinates
    posteriors: np.ndarray    # (n, K) float: all cluster posteriors


@dataclass
class UnsupervisedFit:
    """A fitted autoencoder + Gaussian mixture. ``predict`` labels new atoms with the same clusters."""

    mean: np.ndarray                 # (d,) standardisation
    scale: np.ndarray                # (d,)
    encoder: object                  # torch module d -> c
    mixture: object                  # sklearn GaussianMixture on the latent space
    order: np.ndarray                # cluster k (0-based, ordered) is mixture component order[k]
    fve_curve: Curve
    entropy_curve: Curve
    bic_curve: Curve
    settings: dict                   # seed, hidden, λ, steps, atoms, order feature ...
    feature_spec: FeatureSpec | None = None   # the recipe of the features, when fitted from a structure
    columns: np.ndarray | None = None         # which columns of feature_spec's output are Q
    names: list = field(default_factory=list)  # names of the d features of Q

    @property
    def dims(self) -> int:
        return int(self.fve_curve.chosen)

    @property
    def n_clusters(self) -> int:
        return int(self.entropy_curve.chosen)

    @property
    def class_names(self) -> list[str]:
        return [f"Cluster {k + 1}" for k in range(self.n_clusters)]

    def latent(self, features: np.ndarray) -> np.ndarray:
        z = _standardise(_checked(features, len(self.mean)), self.mean, self.scale)
        with torch.no_grad():
            return self.encoder(torch.from_numpy(z.astype(np.float32))).numpy()

    def predict(self, features: np.ndarray) -> Prediction:
        """Clusters of atoms with features ``(n, d)`` (the columns Q, in the fitted order)."""
        latent = self.latent(features)
        posteriors = self.mixture.predict_proba(latent.astype(np.float64))[:, self.order]
        labels = posteriors.argmax(axis=1)
        return Prediction(labels, posteriors[np.arange(len(labels)), labels], latent, posteriors)

    # ---- export ------------------------------------------------------------------------------
    def module(self):
        """The fitted encoder and mixture as one torch module: raw features of ``feature_spec``
        (float32, ``(n, n_features)``) -> cluster logits, whose softmax is the mixture posterior."""
        if self.feature_spec is None:
            raise ValueError("This fit has no feature recipe (it was made from a bare array); fit it with "
                             "fit_structure(), or set feature_spec and columns, to export it.")
        return ClusterNet(self)

    def to_model(self, class_names=None, colors=None, description: str | None = None):
        """A :class:`~ovito_mlclass.model.StructureModel` (TorchScript) with clusters renamed to
        ``class_names`` (default ``Cluster 1..K``)."""
        from .model import StructureModel, quiet_torchscript
        from .structure_types import standard_color

        names = list(class_names) if class_names else self.class_names
        if len(names) != self.n_clusters:
            raise ValueError(f"{len(names)} class names given for {self.n_clusters} clusters.")
        if len(set(names)) != len(names) or any(not str(n).strip() for n in names):
            raise ValueError(f"Class names must be distinct and non-empty, got {names}.")
        if colors is None:
            colors = [standard_color(n) or CLUSTER_COLORS[k % len(CLUSTER_COLORS)] for k, n in enumerate(names)]
        with quiet_torchscript():
            scripted = torch.jit.script(self.module().eval())
        metadata = {
            "format_version": 1,  # descriptor features only: every reader understands it
            "name": "unsupervised",
            "description": description or f"{self.n_clusters} clusters found without labels: {METHOD}",
            "classes": [str(n) for n in names],
            "colors": [list(map(float, c)) for c in colors],
            "features": self.feature_spec.to_dict(),
            "reject_threshold": 0.0,   # a mixture assigns every atom; no reject option
            "training": {"method": METHOD, "unsupervised": True, "inputs": self.names, "dims": self.dims,
                         "clusters": self.n_clusters, "fve": self.fve_curve.to_dict(),
                         "entropy": self.entropy_curve.to_dict(), "bic": self.bic_curve.to_dict(),
                         "cluster_names": dict(zip(self.class_names, map(str, names))), **self.settings},
        }
        json.dumps(metadata)
        return StructureModel(module=scripted, metadata=metadata)

    def save_model(self, path, class_names=None, colors=None, description: str | None = None):
        """Write the classifier file (see :meth:`to_model`); returns its path."""
        return self.to_model(class_names, colors, description).save(path)


class ClusterNet(torch.nn.Module):
    """Feature columns -> standardise -> encoder -> Gaussian-mixture log joint densities
    log w_k + log N(h | μ_k, Σ_k), in cluster order. Their softmax is the mixture posterior (the
    same algebra as scikit-learn's, via the Cholesky factors of the precision matrices)."""

    def __init__(self, fit: "UnsupervisedFit"):
        super().__init__()
        g, order = fit.mixture, fit.order
        c = fit.dims
        as_t = lambda a: torch.as_tensor(np.ascontiguousarray(a), dtype=torch.float32)  # noqa: E731
        self.register_buffer("columns", torch.as_tensor(np.asarray(fit.columns, dtype=np.int64)))
        self.register_buffer("mean", as_t(fit.mean))
        self.register_buffer("scale", as_t(fit.scale))
        self.encoder = fit.encoder
        prec_chol = g.precisions_cholesky_[order]                       # (K, c, c)
        log_det = np.log(np.diagonal(prec_chol, axis1=1, axis2=2)).sum(axis=1)
        self.register_buffer("means", as_t(g.means_[order]))
        self.register_buffer("prec_chol", as_t(prec_chol))
        self.register_buffer("offset", as_t(np.log(g.weights_[order]) + log_det - 0.5 * c * math.log(2 * math.pi)))

    def forward(self, x):
        z = (torch.index_select(x, 1, self.columns) - self.mean) / self.scale
        h = self.encoder(z)
        y = torch.einsum("nc,kcd->nkd", h, self.prec_chol) - torch.einsum("kc,kcd->kd", self.means, self.prec_chol)
        return self.offset - 0.5 * (y * y).sum(dim=2)


# ---------------------------------------------------------------------------------------------- fitting

def _checked(features, d: int | None = None) -> np.ndarray:
    x = np.asarray(features, dtype=np.float64)
    if x.ndim != 2:
        raise InputError(f"Features must be a 2-D array (atoms, components), got shape {x.shape}.")
    if d is not None and x.shape[1] != d:
        raise InputError(f"Expected {d} feature components, got {x.shape[1]}.")
    bad = ~np.isfinite(x).all(axis=1)
    if bad.any():
        raise InputError(f"{int(bad.sum())} atom(s) have non-finite features (NaN or inf), e.g. atom "
                         f"{int(np.flatnonzero(bad)[0])}; clean the input first.")
    return x


def _standardise(x, mean, scale):
    return (x - mean) / scale


def fit(features, **options) -> UnsupervisedFit:
    """Fit an autoencoder and a Gaussian mixture to ``features`` (n_atoms, d) without labels; the
    options are those of :func:`fit_steps`."""
    return _drain(fit_steps(features, **options))


def _drain(steps):
    while True:
        try:
            next(steps)
        except StopIteration as done:
            return done.value


def fit_steps(features, *, seed: int = 0, dims: int | None = None, clusters: int | None = None,
        max_dims: int | None = None, max_clusters: int = 8, names=None, order_by: str | int | None = None,
        hidden: int | None = None, weight_decay: float = WEIGHT_DECAY, steps: int = 1500, scan_steps: int = 500,
        max_atoms: int = 20000):
    """:func:`fit` as a generator that yields progress ``(fraction, text)`` between stages and
    returns the :class:`UnsupervisedFit` (``result = yield from fit_steps(X)``).

    ``dims`` / ``clusters``: fixed bottleneck dimension / number of clusters (``None``: chosen at the
    elbow of the FVE over 1..``max_dims`` (default d) / of the mixture entropy over 1..``max_clusters``).
    ``names``: the d feature names; ``order_by``: the feature (name or column) whose mean over a
    cluster numbers the clusters, in decreasing order (default ``qbar6`` if named, else column 0).
    ``max_atoms``: the networks and mixtures are fitted on at most this many atoms (a seeded
    random subset; prediction covers all). The FVE scan trains each candidate for ``scan_steps``
    updates (the elbow needs the curve's shape, not converged networks); the chosen dimension is
    then trained for ``steps``.
    """
    from .extras import requires

    with requires("unsupervised", "unsupervised structure discovery"):
        from sklearn.mixture import GaussianMixture

    x = _checked(features)
    n, d = x.shape
    names = [str(s) for s in names] if names is not None else [f"x{k}" for k in range(d)]
    if len(names) != d:
        raise InputError(f"{len(names)} feature names for {d} feature components.")
    max_dims = d if max_dims is None else int(max_dims)
    if not 1 <= max_dims <= d:
        raise InputError(f"max_dims must lie in 1..{d} (the number of feature components), got {max_dims}.")
    if dims is not None and not 1 <= int(dims) <= d:
        raise InputError(f"The bottleneck dimension must lie in 1..{d} (the number of feature components), got {dims}.")
    if int(max_clusters) < 1:
        raise InputError(f"max_clusters must be at least 1, got {max_clusters}.")
    if clusters is not None and not 1 <= int(clusters) <= int(max_clusters):
        raise InputError(f"The number of clusters must lie in 1..max_clusters = {max_clusters}, got {clusters}.")
    k_limit = int(clusters) if clusters is not None else int(max_clusters)
    if n < MIN_ATOMS_PER_CLUSTER * max(k_limit, 2):
        raise InputError(f"Too few atoms: {n}; fitting up to {k_limit} clusters needs at least "
                         f"{MIN_ATOMS_PER_CLUSTER * max(k_limit, 2)}.")
    if isinstance(order_by, str):
        if order_by not in names:
            raise InputError(f"order_by={order_by!r} is not one of the features {names}.")
        order_column = names.index(order_by)
    elif order_by is None:
        order_column = names.index("qbar6") if "qbar6" in names else 0
    else:
        order_column = int(order_by)
        if not 0 <= order_column < d:
            raise InputError(f"order_by column {order_column} out of range 0..{d - 1}.")

    rng = np.random.default_rng(seed)
    train = np.sort(rng.choice(n, max_atoms, replace=False)) if n > max_atoms else np.arange(n)
    xt = x[train]
    mean = xt.mean(axis=0)
    scale = xt.std(axis=0)
    scale[scale <= 1e-12 * max(1.0, float(np.abs(mean).max()))] = 1.0  # a constant component stays 0
    z = _standardise(xt, mean, scale)

    # bottleneck dimension: FVE for c = 1..max_dims (or only the given c)
    candidates = [int(dims)] if dims is not None else list(range(1, max_dims + 1))
    fve = []
    for i, c in enumerate(candidates):
        if len(candidates) > 1:
            yield 0.6 * i / len(candidates), f"autoencoder scan, {c} latent dimension(s)"
            fve.append(train_autoencoder(z, c, seed=seed, hidden=hidden, weight_decay=weight_decay, steps=scan_steps)[2])
    chosen_c = candidates[elbow(candidates, fve, "above")] if dims is None else int(dims)
    yield 0.6, f"autoencoder, {chosen_c} latent dimension(s)"
    encoder, _, final_fve = train_autoencoder(z, chosen_c, seed=seed, hidden=hidden, weight_decay=weight_decay,
                                              steps=steps)
    fve_curve = Curve(np.array(candidates), np.array(fve or [final_fve]), chosen_c, "fraction of variance explained")

    with torch.no_grad():
        latent = encoder(torch.from_numpy(z.astype(np.float32))).numpy().astype(np.float64)

    # number of clusters: mixture entropy for K = 1..max_clusters (or only the given K)
    ks = [int(clusters)] if clusters is not None else list(range(1, int(max_clusters) + 1))
    entropy, bic, mixtures = [], [], {}
    for i, k in enumerate(ks):
        yield 0.8 + 0.2 * i / len(ks), f"Gaussian mixture, {k} cluster(s)"
        g = GaussianMixture(n_components=k, covariance_type="full", n_init=3, random_state=seed,
                            reg_covar=1e-6, max_iter=500).fit(latent)
        entropy.append(mixture_entropy(g.predict_proba(latent)))
        bic.append(g.bic(latent))
        mixtures[k] = g
    chosen_k = ks[elbow(ks, entropy, "below")] if clusters is None else int(clusters)
    mixture = mixtures[chosen_k]

    # reproducible numbering: decreasing mean of the order feature over each cluster's atoms
    hard = mixture.predict(latent)
    key = np.array([x[train][hard == k, order_column].mean() if (hard == k).any() else -np.inf
                    for k in range(chosen_k)])
    order = np.argsort(-key, kind="stable")
    settings = {"seed": int(seed), "hidden": int(hidden or HIDDEN_PER_INPUT * d), "weight_decay": float(weight_decay),
                "steps": int(steps), "scan_steps": int(scan_steps), "fve": float(final_fve), "atoms": int(len(train)),
                "order_by": names[order_column]}
    return UnsupervisedFit(mean=mean, scale=scale, encoder=encoder, mixture=mixture, order=order,
                           fve_curve=fve_curve,
                           entropy_curve=Curve(np.array(ks), np.array(entropy), chosen_k, "mixture entropy S_K"),
                           bic_curve=Curve(np.array(ks), np.array(bic), ks[int(np.argmin(bic))],  # for comparison only
                                           "Bayesian information criterion"),
                           settings=settings, names=names)


# ---------------------------------------------------------------------------------------------- from structures

@dataclass(frozen=True)
class BondOrderRecipe:
    """The input vector Q: q̄_l for ``degrees`` (and w̄_l with ``wbar``) over ``neighbors`` nearest
    neighbours or Voronoi neighbours (``"voronoi"``; face-area weighted)."""

    degrees: tuple = DEFAULT_DEGREES
    neighbors: int | str = 12
    wbar: bool = False

    def spec(self) -> FeatureSpec:
        return FeatureSpec.from_dict({"blocks": [{"kind": "steinhardt", "neighbors": self.neighbors,
                                                  "degrees": list(self.degrees), "averaged": True, "wl": self.wbar}]})

    def columns(self, spec: FeatureSpec | None = None) -> tuple[np.ndarray, list[str]]:
        """Indices of Q in the spec's feature vector, and the names of Q's components."""
        spec = spec or self.spec()
        wanted = [f"qbar{l}" for l in self.degrees] + ([f"wbar{l}" for l in self.degrees] if self.wbar else [])
        base = [name.rsplit("_", 1)[0] for name in spec.names]  # "qbar6_nn12" -> "qbar6"
        return np.array([base.index(w) for w in wanted], dtype=np.int64), wanted


def bond_order_features(data, recipe: BondOrderRecipe = BondOrderRecipe()) -> tuple[np.ndarray, list[str]]:
    """Q of every particle of an OVITO DataCollection, and the component names."""
    spec = recipe.spec()
    columns, names = recipe.columns(spec)
    return spec.compute(data)[:, columns], names


def fit_structure(data, recipe: BondOrderRecipe = BondOrderRecipe(), **options) -> UnsupervisedFit:
    """:func:`fit` on the bond-order features of ``data``; the fit remembers the recipe, so it can
    be applied to other structures (:func:`predict_structure`) and exported."""
    return _drain(fit_structure_steps(data, recipe, **options))


def fit_structure_steps(data, recipe: BondOrderRecipe = BondOrderRecipe(), **options):
    """:func:`fit_structure` as a generator of progress ``(fraction, text)`` (see :func:`fit_steps`)."""
    yield 0.0, "bond-order features"
    x, names = bond_order_features(data, recipe)
    result = yield from fit_steps(x, names=names, **options)
    result.feature_spec = recipe.spec()
    result.columns = recipe.columns(result.feature_spec)[0]
    result.settings["recipe"] = {"degrees": list(recipe.degrees), "neighbors": recipe.neighbors, "wbar": recipe.wbar}
    return result


def predict_structure(result: UnsupervisedFit, data) -> Prediction:
    """Clusters of every particle of ``data`` with a fit made by :func:`fit_structure`."""
    if result.feature_spec is None:
        raise ValueError("This fit has no feature recipe; use predict() with a feature array.")
    return result.predict(result.feature_spec.compute(data)[:, result.columns])
