"""Adsorption energies from electronic fingerprints: the site and its neighbours against a
brute-force search over periodic images, the fingerprints against mendeleev, the counts of the
data's README, and the network against the linear d-band-centre model fitted here with
scikit-learn on the same folds. Uses the shared TinNet *OH set; skips without it."""
import os
import re
import shutil
from functools import lru_cache
from pathlib import Path

import numpy as np
import pytest

from ovito_mlclass.cli import main
from ovito_mlclass.properties import adsorption as A

from conftest import cli_error

SHARED = Path(os.environ.get("OVITO_MLCLASS_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
FOLDER = SHARED / "adsorption"
pytestmark = pytest.mark.skipif(not (FOLDER / "ead.txt").is_file(),
                                reason=f"shared adsorption data not found under {SHARED}")


@pytest.fixture(scope="module")
def data():
    return A.load_adsorption_set(FOLDER)


@pytest.fixture(scope="module")
def images():
    from ase.io import read

    return read(FOLDER / A.CLEAN_IMAGES, index=":"), read(FOLDER / A.ADSORBATE_IMAGES, index=":")


def brute_force_shell(atoms, site, count):
    """The ``count`` nearest metal atoms of ``site`` over all in-plane periodic images."""
    cell = np.asarray(atoms.cell)
    found = []
    for i in range(-2, 3):
        for j in range(-2, 3):
            shifted = atoms.positions[:16] + i * cell[0] + j * cell[1]
            distance = np.linalg.norm(shifted - atoms.positions[site], axis=1)
            found += [(d, k) for k, d in enumerate(distance) if d > 1e-6]
    found.sort()
    return sorted(k for _, k in found[:count]), found[count][0] - found[count - 1][0]


def test_site_and_neighbour_shell_equal_a_brute_force_search(images):
    clean, adsorbed = images
    for frame in range(0, len(clean), 37):
        site, neighbours = A.site_and_neighbours(clean[frame], adsorbed[frame], 16, 16)
        o_to_metal = [np.min([np.linalg.norm(adsorbed[frame].positions[16] - adsorbed[frame].positions[k]
                                             - i * adsorbed[frame].cell[0] - j * adsorbed[frame].cell[1])
                              for i in (-1, 0, 1) for j in (-1, 0, 1)]) for k in range(16)]
        assert site == int(np.argmin(o_to_metal))
        assert site in (12, 15)                          # the data README: the site is atom 12 or 15
        expected, gap = brute_force_shell(clean[frame], site, A.NEIGHBOURS)
        assert gap > 0.1                                 # the 9-atom first shell is well separated
        assert sorted(neighbours) == expected


@lru_cache(maxsize=None)
def element(symbol):
    from mendeleev import element as lookup    # the Element API: another path than the package's table

    return lookup(symbol)


def test_fingerprints_and_counts(data, images):
    assert len(data.energies) == 748
    assert len(set(data.site_elements)) == 26            # counts of the data README
    assert sum(1 for c in data.compositions if re.fullmatch(r"[A-Z][a-z]?16", c)) == 15   # pure metals
    np.testing.assert_array_equal(data.d_band_centre, np.loadtxt(FOLDER / "d_cen.txt"))
    clean, adsorbed = images
    for frame in (0, 101, 500):
        site, neighbours = A.site_and_neighbours(clean[frame], adsorbed[frame], 16, 16)
        symbols = clean[frame].get_chemical_symbols()
        row = dict(zip(A.FINGERPRINTS, data.fingerprints[frame]))
        assert row["site electronegativity"] == pytest.approx(element(symbols[site]).en_pauling)
        assert row["site ionization_energy"] == pytest.approx(element(symbols[site]).ionenergies[1])
        assert row["local electronegativity"] == pytest.approx(
            np.mean([element(symbols[k]).en_pauling for k in neighbours]))


def test_network_beats_the_linear_d_band_model_on_held_out_folds(data):
    from sklearn.linear_model import LinearRegression

    cv = A.cross_validate(data, folds=4, seed=2)
    reference = np.empty_like(data.energies)
    for train, test in cv.folds:
        fit = LinearRegression().fit(data.d_band_centre[train, None], data.energies[train])
        reference[test] = fit.predict(data.d_band_centre[test, None])
    np.testing.assert_allclose(cv.linear_predictions, reference)
    linear_rmse = np.sqrt(np.mean((reference - data.energies) ** 2))
    assert cv.network_rmse < 0.75 * linear_rmse
    assert cv.linear_rmse < cv.mean_rmse                 # ε_d does carry the trend (Hammer–Nørskov)


def test_training_is_deterministic(data):
    X, y = data.fingerprints[:200], data.energies[:200]
    first = A.FingerprintNetwork(epochs=50, seed=5).fit(X, y).predict(X[:20])
    second = A.FingerprintNetwork(epochs=50, seed=5).fit(X, y).predict(X[:20])
    other = A.FingerprintNetwork(epochs=50, seed=6).fit(X, y).predict(X[:20])
    np.testing.assert_array_equal(first, second)
    assert not np.array_equal(first, other)


def test_clear_errors(tmp_path, capsys):
    with pytest.raises(FileNotFoundError, match="folder not found"):
        A.load_adsorption_set(tmp_path / "nowhere")
    for name in ("ead.txt", *A.DATA_FILES.values(), A.ADSORBATE_IMAGES, A.CLEAN_IMAGES):
        os.symlink(FOLDER / name, tmp_path / name)
    (tmp_path / "vad2.txt").unlink()
    with pytest.raises(FileNotFoundError, match="vad2.txt"):
        A.load_adsorption_set(tmp_path)
    lines = (FOLDER / "vad2.txt").read_text().splitlines()
    (tmp_path / "vad2.txt").write_text("\n".join(lines[:-1]) + "\n")
    with pytest.raises(ValueError, match="747 lines"):
        A.load_adsorption_set(tmp_path)
    (tmp_path / "vad2.txt").write_text("\n".join(lines[:-1] + ["abc"]) + "\n")
    with pytest.raises(ValueError, match="one number per line"):
        A.load_adsorption_set(tmp_path)
    shutil.copy(FOLDER / "vad2.txt", tmp_path / "vad2.txt")
    (tmp_path / A.CLEAN_IMAGES).unlink()
    assert A.CLEAN_IMAGES in cli_error(["adsorption-energy", str(tmp_path)], capsys)


def test_cli_reports_both_models(data, capsys):
    assert main(["adsorption-energy", str(FOLDER), "--folds", "2", "--seed", "1"]) == 0
    printed = capsys.readouterr().out
    cv = A.cross_validate(data, folds=2, seed=1)
    assert f"network              RMSE {cv.network_rmse:.3f} eV" in printed
    assert f"linear d-band centre RMSE {cv.linear_rmse:.3f} eV" in printed
