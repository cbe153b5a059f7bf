"""Band gaps of double perovskites A1 B1 A2 B2 O6 by Gaussian-kernel ridge regression on elemental
features (Pilania et al., "Machine learning bandgaps of double perovskites", Sci. Rep. 6, 19375
(2016)), with scikit-learn.

1. Features: 7 elemental properties per site × 4 sites (A1, B1, A2, B2) = 28 columns:
   Pauling electronegativity, first ionisation energy, highest occupied and lowest unoccupied
   Kohn–Sham level of the atom, and the s/p/d valence orbital radii. The LUMO comes from a table
   the caller gives (:func:`~.composition_features.read_lumo_table`); the rest from mendeleev, with the
   substitutes for the HOMO and for Zunger's orbital radii named in :mod:`.composition_features`.
   Under Slater's rules the s and p radii of a shell are equal, so r_p repeats r_s and the
   filter below drops it.
2. Pearson filter (:class:`PearsonFilter`, fitted on the training data only): the features are
   ranked by |r| with the target (largest first; ties by column order) and kept greedily — a
   feature is dropped when |r| with any feature already kept exceeds ``threshold`` — until
   ``max_features`` (16) are kept. Constant columns are dropped.
3. ``StandardScaler`` + ``KernelRidge(kernel="rbf")``; α and γ by ``GridSearchCV`` on seeded
   shuffled K folds.

The reported error is a nested cross-validation: the whole procedure (filter, scaling, grid
search) is refitted on each outer training fold and scored on the held-out fold, so no test
compound touches the feature selection or the hyper-parameters.

    data = read_gap_table("double_perovskites_gap.csv")
    lumo = read_lumo_table("double_perovskites_gap_lumo.csv")
    result = fit_band_gap_model(perovskite_features(data.sites, lumo), data.gaps, seed=0)
    result.cv_rmse, result.selected_features, result.predict(perovskite_features([("Ba", "Ti", "Sr", "Zr")], lumo))
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin

from .composition_features import PROPERTIES, UnknownElementError, property_matrix, read_csv_table

SITES = ("A1", "B1", "A2", "B2")
SITE_COLUMNS = ("a_1", "b_1", "a_2", "b_2")          # matminer's double_perovskites_gap columns
GAP_COLUMN = "gap gllbsc"
SITE_PROPERTIES = ("electronegativity", "ionization_energy", "homo", "lumo", "r_s", "r_p", "r_d")
FEATURE_NAMES = tuple(f"{site} {prop}" for site in SITES for prop in SITE_PROPERTIES)
MAX_FEATURES = 16                 # Pilania et al.: at most 16 features after the correlation filter
PEARSON_THRESHOLD = 0.8           # |r| above which two features count as redundant
ALPHAS = tuple(10.0 ** np.arange(-4, 0.5, 1))          # ridge strength α
GAMMAS = tuple(10.0 ** np.arange(-3, 0.5, 0.5))        # rbf width γ (features standardised)
METHOD = ("Gaussian-kernel ridge regression on 28 elemental features after a Pearson filter "
          "(Pilania et al., Sci. Rep. 6, 19375 (2016))")


@dataclass
class GapTable:
    formulas: list[str]
    sites: list[tuple[str, str, str, str]]
    gaps: np.ndarray


def read_gap_table(path) -> GapTable:
    """A double-perovskite band-gap CSV with columns ``a_1, b_1, a_2, b_2`` (element symbols) and
    ``gap gllbsc`` (eV), as matminer's ``double_perovskites_gap``."""
    import pandas as pd

    path = Path(path)
    table = read_csv_table(path, "band-gap table")
    missing = [c for c in (*SITE_COLUMNS, GAP_COLUMN) if c not in table.columns]
    if missing:
        raise ValueError(f"{path}: missing column(s) {missing}; expected {', '.join((*SITE_COLUMNS, GAP_COLUMN))}")
    gaps = pd.to_numeric(table[GAP_COLUMN], errors="coerce").to_numpy(float)
    bad = np.flatnonzero(~np.isfinite(gaps) | table[list(SITE_COLUMNS)].isna().any(axis=1).to_numpy())
    if len(bad):
        raise ValueError(f"{path}: rows {bad[:5].tolist()}{' ...' if len(bad) > 5 else ''} lack a band gap or a site element")
    sites = [tuple(str(s).strip() for s in row) for row in table[list(SITE_COLUMNS)].itertuples(index=False)]
    formulas = table["formula"].astype(str).tolist() if "formula" in table.columns else [
        "".join(s) + "O6" for s in sites]
    return GapTable(formulas, sites, gaps)


def parse_formula(formula: str) -> tuple[str, str, str, str]:
    """Sites of a formula written A1 B1 A2 B2 O6 (``"BaTiSrZrO6"``) or as ``"Ba,Ti,Sr,Zr"``."""
    parts = [p.strip() for p in formula.split(",")] if "," in formula else re.findall(r"[A-Z][a-z]?", formula)
    if "," not in formula:
        if not re.fullmatch(r"(?:[A-Z][a-z]?){4}O6", formula):
            raise ValueError(f"{formula!r}: write a double perovskite as A1B1A2B2O6 (e.g. BaTiSrZrO6) or A1,B1,A2,B2")
        parts = parts[:4]
    if len(parts) != 4:
        raise ValueError(f"{formula!r}: a double perovskite has four cation sites A1, B1, A2, B2")
    return tuple(parts)


def perovskite_features(sites, lumo: dict[str, float]) -> np.ndarray:
    """(n, 28) features, columns :data:`FEATURE_NAMES`, of compounds given as (A1, B1, A2, B2)."""
    sites = [tuple(s) for s in sites]
    if not sites or any(len(s) != 4 for s in sites):
        raise ValueError("give each compound as four site elements (A1, B1, A2, B2)")
    elements = sorted({e for s in sites for e in s})
    absent = [e for e in elements if e not in lumo]
    if absent:
        raise UnknownElementError(f"element(s) {', '.join(absent)} not in the LUMO table")
    mendeleev_names = [p for p in SITE_PROPERTIES if p != "lumo"]
    table = {e: dict(zip(mendeleev_names, row))
             for e, row in zip(elements, property_matrix(elements, mendeleev_names))}
    for e in elements:
        table[e]["lumo"] = lumo[e]
    return np.array([[table[e][p] for e in s for p in SITE_PROPERTIES] for s in sites], dtype=float)


class PearsonFilter(TransformerMixin, BaseEstimator):
    """Keeps at most ``max_features`` weakly correlated columns (rule in the module docstring).
    After ``fit``: ``selected_`` (column indices, in the order kept) and ``order_``."""

    def __init__(self, max_features: int = MAX_FEATURES, threshold: float = PEARSON_THRESHOLD):
        self.max_features = max_features
        self.threshold = threshold

    def fit(self, X, y):
        X, y = np.asarray(X, dtype=float), np.asarray(y, dtype=float)
        varying = np.flatnonzero(X.std(axis=0) > 0)
        if len(varying) == 0 or y.std() == 0:
            raise ValueError("the Pearson filter needs varying features and targets")
        r = np.corrcoef(np.column_stack([X[:, varying], y]), rowvar=False)
        with_target = np.abs(r[:-1, -1])
        ranked = np.argsort(-with_target, kind="stable")      # stable: ties keep column order
        kept: list[int] = []
        for i in ranked:
            if len(kept) == self.max_features:
                break
            if all(abs(r[i, k]) <= self.threshold for k in kept):
                kept.append(int(i))
        self.order_ = varying[ranked]
        self.selected_ = varying[kept]
        return self

    def transform(self, X):
        return np.asarray(X, dtype=float)[:, self.selected_]


def make_pipeline(max_features: int = MAX_FEATURES, threshold: float = PEARSON_THRESHOLD):
    from sklearn.kernel_ridge import KernelRidge
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    return Pipeline([("pearson", PearsonFilter(max_features, threshold)), ("scale", StandardScaler()),
                     ("krr", KernelRidge(kernel="rbf"))])


def grid_search(folds: int, seed: int, alphas=ALPHAS, gammas=GAMMAS, **filter_options):
    from sklearn.model_selection import GridSearchCV, KFold

    return GridSearchCV(make_pipeline(**filter_options),
                        {"krr__alpha": list(alphas), "krr__gamma": list(gammas)},
                        cv=KFold(folds, shuffle=True, random_state=seed),
                        scoring="neg_root_mean_squared_error")


@dataclass
class BandGapModel:
    """A fitted model and its nested cross-validation scores (eV)."""
    search: object                       # GridSearchCV refitted on all data: .best_estimator_, .best_params_
    feature_names: tuple[str, ...]
    cv_rmse: float
    cv_mae: float
    cv_predictions: np.ndarray           # out-of-fold prediction of every compound
    fold_rmse: list[float] = field(default_factory=list)
    mean_predictor_rmse: float = float("nan")   # the same folds, predicting the training mean

    @property
    def pipeline(self):
        return self.search.best_estimator_

    @property
    def best_params(self) -> dict:
        return {k.removeprefix("krr__"): v for k, v in self.search.best_params_.items()}

    @property
    def selected_features(self) -> list[str]:
        return [self.feature_names[i] for i in self.pipeline.named_steps["pearson"].selected_]

    def predict(self, X) -> np.ndarray:
        return self.pipeline.predict(np.asarray(X, dtype=float))


def fit_band_gap_model(X, y, *, seed: int = 0, folds: int = 5, inner_folds: int = 5, alphas=ALPHAS,
                       gammas=GAMMAS, feature_names=FEATURE_NAMES, max_features: int = MAX_FEATURES,
                       threshold: float = PEARSON_THRESHOLD, progress: bool = False) -> BandGapModel:
    """Nested K-fold CV of filter + KRR (outer ``folds``, grid search on ``inner_folds``, both
    shuffled with ``seed``), then the same grid search refitted on all of (X, y)."""
    from sklearn.model_selection import KFold
    from tqdm import tqdm

    X, y = np.asarray(X, dtype=float), np.asarray(y, dtype=float)
    if X.ndim != 2 or len(X) != len(y) or len(y) < 2 * folds:
        raise ValueError(f"need a 2-d feature array and one target per row, at least {2 * folds} rows")
    if not (np.isfinite(X).all() and np.isfinite(y).all()):
        raise ValueError("features and targets must be finite")
    if len(feature_names) != X.shape[1]:
        raise ValueError(f"{len(feature_names)} feature names for {X.shape[1]} feature columns")
    options = dict(alphas=alphas, gammas=gammas, max_features=max_features, threshold=threshold)
    predictions, baseline = np.empty_like(y), np.empty_like(y)
    fold_rmse = []
    splits = list(KFold(folds, shuffle=True, random_state=seed).split(X))
    for train, test in tqdm(splits, desc="nested cross-validation", unit="fold", disable=not progress):
        search = grid_search(inner_folds, seed, **options).fit(X[train], y[train])
        predictions[test] = search.predict(X[test])
        baseline[test] = y[train].mean()
        fold_rmse.append(float(np.sqrt(np.mean((predictions[test] - y[test]) ** 2))))
    search = grid_search(inner_folds, seed, **options).fit(X, y)
    error = predictions - y
    return BandGapModel(search, tuple(feature_names), float(np.sqrt(np.mean(error ** 2))),
                        float(np.mean(np.abs(error))), predictions, fold_rmse,
                        float(np.sqrt(np.mean((baseline - y) ** 2))))


__all__ = ["FEATURE_NAMES", "SITE_PROPERTIES", "PROPERTIES", "BandGapModel", "GapTable", "PearsonFilter",
           "fit_band_gap_model", "parse_formula", "perovskite_features", "read_gap_table", "make_pipeline"]
