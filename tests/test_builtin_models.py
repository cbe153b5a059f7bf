"""The built-in models on structures they were not trained on: ideal and thermally perturbed
lattices built here, and committed MD validation snapshots (other seeds and temperatures than
the training runs)."""
from pathlib import Path

import numpy as np
import pytest

from conftest import crystal, make_data, random_rotation
from ovito_mlclass.classify import classify
from ovito_mlclass.model import StructureModel, builtin_models
from ovito_mlclass.structure_types import ALIASES
import md_water
import tcp
from ovito_mlclass.training.snapshots import NO_LABEL, Snapshot

DATA = Path(__file__).parent / "data"


def perturbed(positions, cell_rows, sigma, seed):
    rng = np.random.default_rng(seed)
    return make_data(positions + rng.normal(0.0, sigma, positions.shape), cell_rows)


def test_builtin_models_are_installed_and_described():
    for name in ("openworld", "metals", "ice", "tcp"):
        model = StructureModel.load(name)
        assert name in builtin_models()
        meta = model.metadata
        assert meta["training"]["command"] == f"ovito-mlclass train {name}"
        assert len(meta["training"]["data_hash"]) == 64 and meta["validation"]["balanced_accuracy"] > 0.9


@pytest.mark.parametrize("phase, expected, reps", [("ih", "Hexagonal ice", (4, 3, 3)), ("ic", "Cubic ice", (3, 3, 3)),
                                                   ("sI", "Hydrate", (2, 2, 2)), ("sII", "Hydrate", (1, 1, 1))])
@pytest.mark.parametrize("sigma", [0.0, 0.15])  # Å; 0.15 Å is the thermal amplitude of mW ice near T_m
@pytest.mark.parametrize("model", ["ice", "ice-pointnet"])
def test_ice_model_on_ideal_and_perturbed_ices(phase, expected, reps, sigma, model):
    positions, cell = md_water.build_structure(phase, reps)
    result = classify(perturbed(positions, cell, sigma, seed=17), model)
    share = result.counts[expected] / len(positions)
    assert share >= (1.0 if sigma == 0 else 0.99), result.counts


def label_names(snap) -> np.ndarray:
    """The class name of every labelled atom, as OVITO names the structure type ("Clathrate" is
    OVITO's "Hydrate"); "" for unlabelled atoms."""
    names = np.array([ALIASES.get(c, c) for c in snap.classes] + [""])
    return names[snap.labels]  # NO_LABEL (-1) picks the last entry


@pytest.mark.parametrize("model", ["ice", "ice-pointnet"])
def test_ice_model_on_supercooled_water(model):
    # mW liquid at 230 K (0.84 T_m), an MD validation run: < 2% ice or clathrate is the target
    snap = Snapshot.load(DATA / "mw_supercooled_230K.npz")
    result = classify(snap.to_data_collection(), model)
    crystalline = sum(result.counts[c] for c in ("Hexagonal ice", "Cubic ice", "Hydrate"))  # OVITO's name
    assert crystalline / len(snap) < 0.02, result.counts


@pytest.mark.parametrize("model", ["ice", "ice-pointnet"])
def test_ice_model_on_the_ice_water_interface(model):
    # ice Ih slab in its melt at T_m; labels known away from the two interfaces
    snap = Snapshot.load(DATA / "mw_ice_water_interface.npz")
    result = classify(snap.to_data_collection(), model)
    known = snap.labels != NO_LABEL
    assert (result.type_names[known] == label_names(snap)[known]).mean() >= 0.97


@pytest.mark.parametrize("kind, expected", [("fcc", "FCC"), ("bcc", "BCC"), ("hcp", "HCP")])
@pytest.mark.parametrize("sigma", [0.0, 0.03, 0.05])  # in lattice constants: 0.05 a is near melting
@pytest.mark.parametrize("model", ["metals", "metals-pointnet"])
def test_metals_model_on_ideal_and_perturbed_lattices(kind, expected, sigma, model):
    data = crystal(kind, 6, sigma=sigma, seed=23)
    positions, rows = np.asarray(data.particles.positions), np.asarray(data.cell)[:, :3].T
    rotation = random_rotation(3)  # the PointNet's rotation invariance is learnt: an orientation unlike the MD boxes'
    for scale, turn in ((1.0, np.eye(3)), (3.61, np.eye(3)), (2.2, rotation)):  # scale-free: a = 1, Cu's, any
        scaled = make_data(positions @ turn.T * scale, rows @ turn.T * scale)
        result = classify(scaled, model)
        assert result.counts[expected] / data.particles.count >= (1.0 if sigma == 0 else 0.99), result.counts


@pytest.mark.parametrize("name, expected, minimum", [
    ("w_bcc_0.95Tm", "BCC", 0.95),      # W at 0.95 T_m (MD, other seed and box than training)
    ("mg_hcp_0.95Tm", "HCP", 0.97),     # Mg at 0.95 T_m
])
@pytest.mark.parametrize("model", ["metals", "metals-pointnet"])
def test_metals_model_near_melting(name, expected, minimum, model):
    snap = Snapshot.load(DATA / f"{name}.npz")
    result = classify(snap.to_data_collection(), model)
    assert result.counts[expected] / len(snap) >= minimum, result.counts


def test_metals_model_on_an_unseen_supercooled_liquid():
    # Ag (no Ag in the training data) at 0.9 T_m: < 1% of the liquid may be called crystalline
    snap = Snapshot.load(DATA / "ag_supercooled_0.9Tm.npz")
    result = classify(snap.to_data_collection(), "metals")
    assert sum(result.counts[c] for c in ("FCC", "BCC", "HCP")) / len(snap) < 0.01, result.counts


def test_metals_model_finds_the_stacking_fault():
    # intrinsic stacking fault in Ag: the two fault layers are locally hcp, the rest fcc
    snap = Snapshot.load(DATA / "ag_stacking_fault_0.25Tm.npz")
    result = classify(snap.to_data_collection(), "metals")
    known = snap.labels != NO_LABEL
    assert (result.type_names[known] == label_names(snap)[known]).mean() >= 0.99


@pytest.mark.parametrize("phase", tcp.CLASSES)
@pytest.mark.parametrize("u", [0.0, 0.02, 0.05])  # 3D rms displacement in units of d_nn
def test_tcp_model_on_ideal_and_perturbed_phases(phase, u):
    positions, cell, fk = tcp.build(phase)  # Wyckoff positions (published tables), FK site per atom
    reps = (3, 3, 3) if len(positions) < 40 else (2, 2, 1)
    grid = np.stack(np.meshgrid(*[np.arange(r) for r in reps], indexing="ij"), -1).reshape(-1, 3)
    tiled = (positions[None] + (grid @ cell[:, :3].T)[:, None]).reshape(-1, 3)
    rows = (cell[:, :3] * np.array(reps)).T
    sigma = u * tcp.D_NN / np.sqrt(3)
    result = classify(perturbed(tiled, rows, sigma, seed=31), "tcp")
    assert result.counts[phase] / len(tiled) >= 0.99, result.counts
    sites = np.array(result.site_names)[result.site_types]
    assert (sites == np.char.add("Z", np.tile(fk, len(grid)).astype(str))).mean() >= 0.995


@pytest.mark.parametrize("kind", ["fcc", "bcc", "hcp"])
def test_tcp_model_gives_no_frank_kasper_site_outside_the_tcp_phases(kind):
    """Frank-Kasper sites exist only in the Frank-Kasper phases: an fcc, bcc or hcp crystal (by
    construction) has none."""
    result = classify(crystal(kind, 5, sigma=0.02, seed=4), "tcp")
    assert (result.type_names == kind.upper()).mean() > 0.99
    assert (np.array(result.site_names)[result.site_types] == "None").all()


def test_tcp_modifier_writes_no_frank_kasper_site_in_fcc():
    """The same through the OVITO modifier: every atom of an fcc crystal (by construction) gets
    site type 0, named None."""
    from ovito_mlclass import StructureClassifierModifier

    data = crystal("fcc", 5, sigma=0.02, seed=6)
    data.apply(StructureClassifierModifier(model="tcp"))
    site = data.particles["Frank-Kasper Site"]
    assert site.type_by_id(0).name == "None"
    assert (np.asarray(site) == 0).all()
    assert (np.asarray(data.particles["Structure Type"]) == 1).mean() > 0.99  # OVITO's FCC id
