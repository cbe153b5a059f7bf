"""Double-perovskite band gaps by Pearson filter + Gaussian kernel ridge regression: features
against mendeleev's Element API, Slater's rules worked by hand and the LUMO table; the filter
against a brute-force check of its rule with scipy's pearsonr; the fitted model against the
closed-form KRR solution; determinism; clear errors. The real-data tests use the shared
double-perovskite set (Pilania et al. 2016) and skip without it."""
import csv
import os
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import pearsonr

from ovito_mlclass.cli import main
from ovito_mlclass.properties import perovskites as P
from ovito_mlclass.properties.composition_features import BOHR, UnknownElementError, read_lumo_table

from conftest import cli_error

SHARED = Path(os.environ.get("OVITO_MLCLASS_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
GAPS = SHARED / "perovskites" / "double_perovskites_gap.csv"
LUMO = SHARED / "perovskites" / "double_perovskites_gap_lumo.csv"
needs_data = pytest.mark.skipif(not GAPS.is_file() or not LUMO.is_file(),
                                reason=f"shared double-perovskite data not found under {SHARED}")
SMALL_GRID = dict(alphas=(1e-3, 1e-2, 1e-1), gammas=(0.01, 0.03, 0.1))


@pytest.fixture(scope="module")
def gap_data():
    table = P.read_gap_table(GAPS)
    lumo = read_lumo_table(LUMO)
    return table, lumo, P.perovskite_features(table.sites, lumo)


def brute_force_filter(X, y, threshold, max_features):
    """The filter's rule written out with scipy's pearsonr, pair by pair."""
    columns = [j for j in range(X.shape[1]) if np.ptp(X[:, j]) > 0]
    score = {j: abs(pearsonr(X[:, j], y).statistic) for j in columns}
    kept = []
    for j in sorted(columns, key=lambda j: (-score[j], j)):
        if len(kept) < max_features and all(abs(pearsonr(X[:, j], X[:, k]).statistic) <= threshold for k in kept):
            kept.append(j)
    return kept


def correlated_features(seed=0, n=300):
    """Six groups of three strongly correlated columns, a constant column, and a target."""
    rng = np.random.default_rng(seed)
    base = rng.normal(size=(n, 6))
    X = np.column_stack([base[:, g] + rng.normal(0, s, n) for g in range(6) for s in (0.05, 0.3, 0.8)])
    X = np.column_stack([X, np.full(n, 2.0)])
    y = base @ np.array([1.0, -0.8, 0.6, 0.4, 0.2, 0.1]) + rng.normal(0, 0.1, n)
    return X, y


@pytest.mark.parametrize("threshold, max_features", [(0.8, 16), (0.5, 16), (0.95, 4)])
def test_pearson_filter_follows_its_rule(threshold, max_features):
    X, y = correlated_features()
    selected = P.PearsonFilter(max_features, threshold).fit(X, y).selected_
    assert list(selected) == brute_force_filter(X, y, threshold, max_features)
    r = np.corrcoef(X[:, selected], rowvar=False)
    assert np.all(np.abs(r[np.triu_indices(len(selected), 1)]) <= threshold)
    assert X.shape[1] - 1 not in selected                      # the constant column
    again = P.PearsonFilter(max_features, threshold).fit(X.copy(), y.copy()).selected_
    assert list(again) == list(selected)


@needs_data
def test_pearson_filter_on_the_perovskite_features(gap_data):
    table, _, X = gap_data
    selected = P.PearsonFilter().fit(X, table.gaps).selected_
    assert len(selected) == P.MAX_FEATURES
    assert list(selected) == brute_force_filter(X, table.gaps, P.PEARSON_THRESHOLD, P.MAX_FEATURES)


def test_features_come_from_mendeleev_slater_rules_and_the_lumo_table(tmp_path):
    from mendeleev import element

    lumo_file = tmp_path / "lumo.csv"
    lumo_file.write_text(",atom,lumo\n0,Sr,-1.5\n1,Ti,-2.25\n2,Ba,-1.25\n3,Zr,-2.0\n")
    features = P.perovskite_features([("Sr", "Ti", "Ba", "Zr")], read_lumo_table(lumo_file))[0]
    column = {name: value for name, value in zip(P.FEATURE_NAMES, features)}
    for site, symbol, lumo in [("A1", "Sr", -1.5), ("B1", "Ti", -2.25), ("A2", "Ba", -1.25), ("B2", "Zr", -2.0)]:
        e = element(symbol)
        affinity = e.electron_affinity or 0.0
        assert column[f"{site} electronegativity"] == pytest.approx(e.en_pauling)
        assert column[f"{site} ionization_energy"] == pytest.approx(e.ionenergies[1])
        assert column[f"{site} homo"] == pytest.approx(-(e.ionenergies[1] + affinity) / 2)
        assert column[f"{site} lumo"] == lumo
    # Slater's rules by hand. Sr 5s: 1 other 5s x 0.35, n = 4 (8 electrons) x 0.85, 28 inner x 1;
    # n* = 4.0. Ti 3d: 1 other 3d x 0.35, 18 inner x 1; n* = 3.
    assert column["A1 r_s"] == pytest.approx(4.0 ** 2 / (38 - (0.35 + 8 * 0.85 + 28)) * BOHR)
    assert column["A1 r_p"] == column["A1 r_s"]                 # one Slater group: same radius
    assert column["B1 r_d"] == pytest.approx(3 ** 2 / (22 - (0.35 + 18)) * BOHR)


def closed_form_krr(X_train, y_train, X_test, selected, alpha, gamma):
    """Standardise the selected columns, then f(x) = k(x, X) (K + αI)⁻¹ y with an rbf kernel."""
    mean, std = X_train[:, selected].mean(axis=0), X_train[:, selected].std(axis=0)
    A, B = (X_train[:, selected] - mean) / std, (X_test[:, selected] - mean) / std
    kernel = lambda U, V: np.exp(-gamma * ((U[:, None, :] - V[None, :, :]) ** 2).sum(-1))  # noqa: E731
    return kernel(B, A) @ np.linalg.solve(kernel(A, A) + alpha * np.eye(len(A)), y_train)


def test_krr_is_the_closed_form_and_recovers_a_smooth_function():
    rng = np.random.default_rng(1)
    X = rng.uniform(-2, 2, size=(400, 3))
    y = np.sin(X[:, 0]) + 0.5 * X[:, 1] ** 2          # x2 does not matter
    result = P.fit_band_gap_model(X, y, seed=0, folds=3, inner_folds=3, feature_names=("x0", "x1", "x2"),
                                  alphas=(1e-6, 1e-4, 1e-2), gammas=(0.03, 0.1, 0.3, 1.0))
    X_new = rng.uniform(-1.8, 1.8, size=(50, 3))
    truth = np.sin(X_new[:, 0]) + 0.5 * X_new[:, 1] ** 2
    selected = result.pipeline.named_steps["pearson"].selected_
    expected = closed_form_krr(X, y, X_new, selected, result.best_params["alpha"], result.best_params["gamma"])
    np.testing.assert_allclose(result.predict(X_new), expected, rtol=1e-6, atol=1e-6)
    assert np.sqrt(np.mean((result.predict(X_new) - truth) ** 2)) < 0.02 * truth.std()
    assert result.cv_rmse < 0.05 * y.std()


@needs_data
def test_cross_validation_is_deterministic_and_beats_the_linear_and_mean_baselines(gap_data):
    from sklearn.linear_model import LinearRegression
    from sklearn.model_selection import KFold, cross_val_predict

    table, _, X = gap_data
    first = P.fit_band_gap_model(X, table.gaps, seed=3, folds=3, inner_folds=3, **SMALL_GRID)
    second = P.fit_band_gap_model(X, table.gaps, seed=3, folds=3, inner_folds=3, **SMALL_GRID)
    np.testing.assert_array_equal(first.cv_predictions, second.cv_predictions)
    assert first.best_params == second.best_params
    assert first.selected_features == second.selected_features
    folds = KFold(3, shuffle=True, random_state=3)
    linear = cross_val_predict(LinearRegression(), X, table.gaps, cv=folds)
    linear_rmse = np.sqrt(np.mean((linear - table.gaps) ** 2))
    assert first.cv_rmse < 0.75 * linear_rmse
    assert first.cv_rmse < 0.5 * table.gaps.std()
    assert first.cv_mae == pytest.approx(np.mean(np.abs(first.cv_predictions - table.gaps)))


def write_gap_csv(path, rows):
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["", "formula", "a_1", "b_1", "a_2", "b_2", "gap gllbsc"])
        for i, (sites, gap) in enumerate(rows):
            writer.writerow([i, "".join(sites) + "O6", *sites, gap])


def test_clear_errors(tmp_path, capsys):
    lumo_file = tmp_path / "lumo.csv"
    lumo_file.write_text("atom,lumo\nBa,-1.0\nTi,-2.0\nSr,-1.5\n")
    lumo = read_lumo_table(lumo_file)
    with pytest.raises(UnknownElementError, match="Zr"):
        P.perovskite_features([("Ba", "Ti", "Sr", "Zr")], lumo)       # not in the LUMO table
    with pytest.raises(UnknownElementError, match="'Xx'"):
        P.perovskite_features([("Ba", "Ti", "Sr", "Xx")], {**lumo, "Xx": 0.0})
    with pytest.raises(FileNotFoundError, match="nowhere.csv"):
        P.read_gap_table(tmp_path / "nowhere.csv")
    with pytest.raises(FileNotFoundError):
        read_lumo_table(tmp_path / "nowhere.csv")
    bad = tmp_path / "bad.csv"
    bad.write_text("formula,a_1,b_1,a_2\nBaTiSrTiO6,Ba,Ti,Sr\n")
    with pytest.raises(ValueError, match="b_2"):
        P.read_gap_table(bad)
    write_gap_csv(bad, [(("Ba", "Ti", "Sr", "Ti"), "n/a")])
    with pytest.raises(ValueError, match="rows \\[0\\]"):
        P.read_gap_table(bad)
    (tmp_path / "lumo_bad.csv").write_text("symbol,energy\nBa,1\n")
    with pytest.raises(ValueError, match="'atom' and 'lumo'"):
        read_lumo_table(tmp_path / "lumo_bad.csv")
    for text in ("BaTiSrZr", "BaTiO3", "Ba,Ti,Sr"):
        with pytest.raises(ValueError, match="four|A1B1A2B2O6"):
            P.parse_formula(text)
    assert P.parse_formula("BaTiSrZrO6") == P.parse_formula("Ba, Ti, Sr, Zr") == ("Ba", "Ti", "Sr", "Zr")
    write_gap_csv(bad, [(("Ba", "Ti", "Sr", "Ti"), 3.0)] * 20)
    assert "not in the LUMO table" in cli_error(["perovskite-gap", str(bad), "--lumo", str(lumo_file), "--predict",
                                                 "BaTiSrZrO6"], capsys)


@needs_data
def test_cli_prints_cross_validated_errors_and_predictions(gap_data, tmp_path, capsys):
    table, lumo, _ = gap_data
    subset = tmp_path / "subset.csv"
    write_gap_csv(subset, list(zip(table.sites[:100], table.gaps[:100])))
    assert main(["perovskite-gap", str(subset), "--lumo", str(LUMO), "--folds", "3",
                 "--predict", table.formulas[200], ",".join(table.sites[201])]) == 0
    printed = capsys.readouterr().out
    assert "100 compounds" in printed and "CV RMSE" in printed
    small = P.read_gap_table(subset)
    expected = P.fit_band_gap_model(P.perovskite_features(small.sites, lumo), small.gaps, seed=0, folds=3)
    assert f"CV RMSE {expected.cv_rmse:.3f} eV" in printed
    predicted = expected.predict(P.perovskite_features([table.sites[200], table.sites[201]], lumo))
    assert f"{table.formulas[200]}: predicted band gap {predicted[0]:.2f} eV" in printed
    assert f"predicted band gap {predicted[1]:.2f} eV" in printed
