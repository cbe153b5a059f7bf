"""The built-in models on structures they were not trained on: ideal and thermally perturbed
lattices built here, and committed MD validation snapshots (other seeds and temperatures than
the training runs)."""
from pathlib import Path

import numpy as np
import pytest

from conftest import make_data
from ovito_mlclass.classify import classify
from ovito_mlclass.model import StructureModel, builtin_models
from ovito_mlclass.training import md_water
from ovito_mlclass.training.snapshots import NO_LABEL, Snapshot

DATA = Path(__file__).parent / "data"


def perturbed(positions, cell_rows, sigma, seed):
    rng = np.random.default_rng(seed)
    return make_data(positions + rng.normal(0.0, sigma, positions.shape), cell_rows)


def test_builtin_models_are_installed_and_described():
    for name in ("ice",):
        model = StructureModel.load(name)
        assert name in builtin_models()
        meta = model.metadata
        assert meta["training"]["command"] == f"ovito-mlclass train {name}"
        assert len(meta["training"]["data_hash"]) == 64 and meta["validation"]["balanced_accuracy"] > 0.9


@pytest.mark.parametrize("phase, expected, reps", [("ih", "Hexagonal ice", (4, 3, 3)), ("ic", "Cubic ice", (3, 3, 3)),
                                                   ("sI", "Clathrate", (2, 2, 2)), ("sII", "Clathrate", (1, 1, 1))])
@pytest.mark.parametrize("sigma", [0.0, 0.15])  # Å; 0.15 Å is the thermal amplitude of mW ice near T_m
def test_ice_model_on_ideal_and_perturbed_ices(phase, expected, reps, sigma):
    positions, cell = md_water.build_structure(phase, reps)
    result = classify(perturbed(positions, cell, sigma, seed=17), "ice")
    share = result.counts[expected] / len(positions)
    assert share >= (1.0 if sigma == 0 else 0.99), result.counts


def test_ice_model_on_supercooled_water():
    # mW liquid at 230 K (0.84 T_m), an MD validation run: < 2% ice or clathrate is the target
    snap = Snapshot.load(DATA / "mw_supercooled_230K.npz")
    result = classify(snap.to_data_collection(), "ice")
    crystalline = sum(result.counts[c] for c in ("Hexagonal ice", "Cubic ice", "Clathrate"))
    assert crystalline / len(snap) < 0.02, result.counts


def test_ice_model_on_the_ice_water_interface():
    # ice Ih slab in its melt at T_m; labels known away from the two interfaces
    snap = Snapshot.load(DATA / "mw_ice_water_interface.npz")
    result = classify(snap.to_data_collection(), "ice")
    known = snap.labels != NO_LABEL
    predicted = result.types[known] - 1
    assert (predicted == snap.labels[known]).mean() >= 0.97
