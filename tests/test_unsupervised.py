"""Unsupervised structure discovery (autoencoder + Gaussian mixture) on MD snapshots with known
phases: the clusters found without labels are scored against the construction labels, the
elbow rules against the known number of phases, the exported model against the in-memory fit."""
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import adjusted_rand_score

from ovito_mlclass import UnsupervisedClassifierModifier
from ovito_mlclass import unsupervised as U
from ovito_mlclass.cli import main
from ovito_mlclass.model import StructureModel
from ovito_mlclass.neighbors import InputError
from ovito_mlclass.training.snapshots import NO_LABEL, Snapshot

from conftest import cli_error

DATA = Path(__file__).parent / "data"
TWO_PHASE = DATA / "cu_fcc_liquid_interface.npz"     # Cu fcc slab in its melt at T_m (MD coexistence)
THREE_PHASE = DATA / "fcc_liquid_bcc_liquid.npz"     # fcc Cu | liquid | bcc Fe | liquid (training/phases.py)


@pytest.fixture(scope="module")
def two_phase():
    snap = Snapshot.load(TWO_PHASE)
    data = snap.to_data_collection()
    return snap, data, U.fit_structure(data, seed=0)


@pytest.fixture(scope="module")
def three_phase():
    snap = Snapshot.load(THREE_PHASE)
    data = snap.to_data_collection()
    return snap, data, U.fit_structure(data, seed=0)


def ari(snap, labels):
    """Adjusted Rand index against the construction labels, interface / seam atoms excluded."""
    known = snap.labels != NO_LABEL
    return adjusted_rand_score(snap.labels[known], labels[known])


def test_two_phases_are_found_without_labels(two_phase):
    snap, data, result = two_phase
    assert set(np.unique(snap.labels[snap.labels != NO_LABEL])) == {0, 3}  # FCC and Liquid by construction
    assert result.n_clusters == 2                      # entropy elbow = number of phases
    prediction = U.predict_structure(result, data)
    assert ari(snap, prediction.labels) >= 0.9
    # Cluster 1 is the one with the larger mean q̄6 (the crystal), recomputed here from the features
    x, names = U.bond_order_features(data)
    q6 = x[:, names.index("qbar6")]
    assert q6[prediction.labels == 0].mean() > q6[prediction.labels == 1].mean()
    crystal = snap.labels == 0
    assert (prediction.labels[crystal] == 0).mean() > 0.9


def test_three_phases_are_found_without_labels(three_phase):
    snap, data, result = three_phase
    assert set(np.unique(snap.labels[snap.labels != NO_LABEL])) == {0, 1, 3}  # FCC, BCC, Liquid
    assert result.n_clusters == 3
    prediction = U.predict_structure(result, data)
    assert ari(snap, prediction.labels) >= 0.9
    # the elbow curves are what the rules saw: K = 1 has zero entropy, FVE rises with c
    assert result.entropy_curve.y[0] == pytest.approx(0.0, abs=1e-12)
    assert result.fve_curve.chosen == result.dims and 1 <= result.dims <= 8
    assert np.all(np.diff(result.fve_curve.y[:4]) > 0)


def test_the_mixture_posteriors_are_sklearns(three_phase):
    _, data, result = three_phase
    prediction = U.predict_structure(result, data)
    reference = result.mixture.predict_proba(prediction.latent.astype(np.float64))[:, result.order]
    np.testing.assert_allclose(prediction.posteriors, reference)
    assert np.allclose(prediction.posteriors.sum(axis=1), 1.0)
    np.testing.assert_allclose(prediction.confidence, reference.max(axis=1))


def test_same_seed_same_result_and_another_seed_another_network(two_phase):
    snap, data, result = two_phase
    again = U.fit_structure(data, seed=0)
    np.testing.assert_array_equal(again.fve_curve.y, result.fve_curve.y)
    np.testing.assert_array_equal(again.entropy_curve.y, result.entropy_curve.y)
    first, second = U.predict_structure(result, data), U.predict_structure(again, data)
    np.testing.assert_array_equal(first.labels, second.labels)
    np.testing.assert_array_equal(first.latent, second.latent)
    other = U.fit_structure(data, seed=1, dims=result.dims, clusters=2)
    assert not np.allclose(U.predict_structure(other, data).latent, first.latent)


def test_exported_model_predicts_as_the_fit(two_phase, tmp_path):
    from ovito.pipeline import Pipeline, StaticSource

    from ovito_mlclass import StructureClassifierModifier

    snap, data, result = two_phase
    path = result.save_model(tmp_path / "clusters.pt", class_names=["FCC", "Liquid"])
    model = StructureModel.load(path)
    assert model.classes == ["FCC", "Liquid"] and model.reject_threshold == 0.0
    assert model.metadata["training"]["clusters"] == 2 and model.metadata["training"]["unsupervised"]
    x = model.features.compute(data)
    probabilities = model.predict(x).probabilities
    prediction = U.predict_structure(result, data)
    np.testing.assert_allclose(probabilities, prediction.posteriors, atol=1e-5)  # torch float32 vs sklearn float64
    pipeline = Pipeline(source=StaticSource(data=data))
    pipeline.modifiers.append(StructureClassifierModifier(model=str(path)))
    types = np.asarray(pipeline.compute().particles["Structure Type"])
    np.testing.assert_array_equal(types, np.array([1, 9])[prediction.labels])  # OVITO's ids: FCC 1, then Liquid
    with pytest.raises(ValueError, match="3 class names"):
        result.to_model(class_names=["a", "b", "c"])
    with pytest.raises(ValueError, match="distinct"):
        result.to_model(class_names=["a", "a"])


def test_elbow_rule_on_curves_with_a_known_kink():
    x = np.arange(1, 9)
    assert x[U.elbow(x, np.minimum(x, 3.0), "above")] == 3            # saturating at 3 (FVE-like)
    assert x[U.elbow(x, np.maximum(x - 2.0, 0.0), "below")] == 2      # flat up to 2, then rising (entropy-like)
    # 1 - exp(-(x - 1)): in scaled axes the slope equals the chord's at x = 1 + ln(7 / (1 - e^-7))
    assert x[U.elbow(x, 1 - np.exp(-(x - 1.0)), "above")] == round(1 + np.log(7 / (1 - np.exp(-7))))
    assert U.elbow(x, x * 2.0, "above") == 0                           # a straight line has no elbow
    with pytest.raises(ValueError):
        U.elbow(x, x, "left")


def test_mixture_entropy_and_fve_closed_forms():
    p = np.array([[0.5, 0.5], [1.0, 0.0], [0.25, 0.75]])
    expected = (np.log(2) + 0.0 - (0.25 * np.log(0.25) + 0.75 * np.log(0.75))) / 3
    assert U.mixture_entropy(p) == pytest.approx(expected)
    z = np.random.default_rng(0).normal(size=(100, 3))
    assert U.fraction_of_variance_explained(z, z) == 1.0
    assert U.fraction_of_variance_explained(z, np.broadcast_to(z.mean(axis=0), z.shape)) == pytest.approx(0.0)


def test_bad_input_is_refused():
    rng = np.random.default_rng(0)
    with pytest.raises(InputError, match="Too few atoms"):
        U.fit(rng.normal(size=(50, 8)))                        # 8 clusters need >= 80 atoms
    x = rng.normal(size=(400, 8))
    x[7, 3] = np.nan
    with pytest.raises(InputError, match="non-finite"):
        U.fit(x)
    x = rng.normal(size=(400, 8))
    for bad in (0, 9):
        with pytest.raises(InputError, match="number of clusters"):
            U.fit(x, clusters=bad)
    for bad in (0, 9):
        with pytest.raises(InputError, match="bottleneck dimension"):
            U.fit(x, dims=bad)
    with pytest.raises(InputError, match="2-D"):
        U.fit(x[:, 0])
    with pytest.raises(InputError, match="order_by"):
        U.fit(x, names=[f"f{k}" for k in range(8)], order_by="qbar6")


def write_dump(path, frames):
    """A LAMMPS text dump of several frames of one orthogonal snapshot's atoms."""
    with open(path, "w") as f:
        for t, (snap, positions) in enumerate(frames):
            lo, hi = snap.cell[:, 3], snap.cell[:, 3] + np.diag(snap.cell[:, :3])
            f.write(f"ITEM: TIMESTEP\n{t}\nITEM: NUMBER OF ATOMS\n{len(positions)}\nITEM: BOX BOUNDS pp pp pp\n")
            f.writelines(f"{a} {b}\n" for a, b in zip(lo, hi))
            f.write("ITEM: ATOMS id type x y z\n")
            ids = np.arange(1, len(positions) + 1)
            np.savetxt(f, np.column_stack([ids, np.ones_like(ids), positions]), fmt="%d %d %.6f %.6f %.6f")
    return path


@pytest.fixture(scope="module")
def trajectory(tmp_path_factory):
    snap = Snapshot.load(TWO_PHASE)
    moved = snap.positions + np.random.default_rng(1).normal(0.0, 0.05, snap.positions.shape)
    return snap, moved, write_dump(tmp_path_factory.mktemp("traj") / "two.dump",
                                   [(snap, snap.positions), (snap, moved)])


def test_modifier_fits_once_on_the_reference_frame(trajectory, tmp_path):
    from ovito.io import import_file

    snap, moved, dump = trajectory
    pipeline = import_file(str(dump))
    modifier = UnsupervisedClassifierModifier(reference_frame=0, dims=2, clusters=2)
    pipeline.modifiers.append(modifier)
    first = pipeline.compute(0)
    fit = modifier.last_fit
    second = pipeline.compute(1)
    assert modifier.last_fit is fit                          # frame 1 reuses the frame-0 fit
    types = np.asarray(second.particles["Cluster Type"])
    order = np.argsort(np.asarray(second.particles["Particle Identifier"]))
    np.testing.assert_allclose(np.asarray(second.particles.positions)[order], moved, atol=1e-5)  # frame 1 read
    frame1 = Snapshot(moved, snap.cell, snap.pbc, snap.labels, snap.classes).to_data_collection()
    np.testing.assert_array_equal(types[order], U.predict_structure(fit, frame1).labels + 1)
    assert ari(snap, np.asarray(first.particles["Cluster Type"])) >= 0.9
    prop = first.particles["Cluster Type"]
    assert [t.name for t in prop.types] == ["Cluster 1", "Cluster 2"]
    assert len({tuple(t.color) for t in prop.types}) == 2
    assert first.particles["Latent Coordinates"].shape == (len(snap), 2)
    probability = np.asarray(first.particles["Cluster Probability"])
    assert probability.min() >= 0.5 - 1e-6 and probability.max() <= 1.0 + 1e-6
    assert first.attributes["UnsupervisedClassifier.clusters"] == 2
    counts = [first.attributes[f"UnsupervisedClassifier.counts.Cluster_{k}"] for k in (1, 2)]
    assert sum(counts) == len(snap) and list(first.tables["clusters"].y) == counts
    assert "cluster-fve" in first.tables and "cluster-entropy" in first.tables
    saved = StructureModel.load(modifier.save_model(tmp_path / "m.pt", ["FCC", "Liquid"]))
    assert saved.classes == ["FCC", "Liquid"]
    modifier.reference_frame = 5
    with pytest.raises(InputError, match="out of range"):
        pipeline.compute(0)


def test_cli_cluster_writes_labels_plots_and_a_model(trajectory, tmp_path, capsys):
    from PIL import Image

    snap, _, dump = trajectory
    out, plots, model = tmp_path / "labelled.dump", tmp_path / "plots", tmp_path / "clusters.pt"
    assert main(["cluster", str(dump), "-o", str(out), "--plots", str(plots), "--frames", "0", "--dims", "2",
                 "--clusters", "2", "--save-model", str(model), "--names", "FCC,Liquid"]) == 0
    text = capsys.readouterr().out
    assert "clusters 2" in text
    header = out.read_text().splitlines()[8].split()[2:]          # ITEM: ATOMS id type x y z ClusterType ...
    table = np.loadtxt(out, skiprows=9)
    table = table[np.argsort(table[:, 0])]
    assert ari(snap, table[:, header.index("ClusterType")].astype(int)) >= 0.9
    for name in ("elbow_fve.png", "elbow_entropy.png", "latent.png"):
        image = np.asarray(Image.open(plots / name).convert("L"))
        assert image.std() > 5                                  # not blank
    assert StructureModel.load(model).classes == ["FCC", "Liquid"]
    assert "No such input" in cli_error(["cluster", str(tmp_path / "missing.dump")], capsys)
