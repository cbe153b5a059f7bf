"""Training: the reject-threshold rule, scores, class balancing and an end-to-end run on a tiny dataset."""
import numpy as np
import pytest

from conftest import TOY_CONFIG_HEAD, crystal, write_toy_dataset
from ovito_mlclass.classify import classify
from ovito_mlclass.model import StructureModel
from ovito_mlclass.training import train as tr


# a two-class model of the toy dataset (conftest.write_toy_dataset); tests add [training] and more
TOY = 'name = "toy"\n' + TOY_CONFIG_HEAD + '''[[features.blocks]]
kind = "steinhardt"
neighbors = 12
degrees = [4, 6]
'''

def test_confusion_counts_rejections_and_atoms_to_reject():
    y_true = np.array([0, 0, 1, 1, -2, -2, -1])
    y_pred = np.array([0, -1, 1, 0, -1, 1, 0])
    m = tr.confusion(y_true, y_pred, 2)
    # rows: true 0, 1, Other; columns: predicted 0, 1, Other. The unlabelled atom (-1) is not counted.
    np.testing.assert_array_equal(m, [[1, 0, 1], [1, 1, 0], [0, 1, 1]])
    np.testing.assert_allclose(tr.recalls(m), [0.5, 0.5, 0.5])


def test_threshold_rejects_what_should_be_rejected():
    rng = np.random.default_rng(0)
    # confident, correct crystal atoms and unsure atoms that belong to no class
    sure = np.tile([0.97, 0.03], (200, 1))
    unsure = np.column_stack([rng.uniform(0.5, 0.7, 100), np.zeros(100)])
    unsure[:, 1] = 1 - unsure[:, 0]
    probs = np.vstack([sure, unsure])
    y = np.r_[np.zeros(200, int), np.full(100, -2)]
    theta, score = tr.choose_threshold(probs, y, 2)
    assert unsure.max() < theta <= 0.97 and score == 1.0


def test_threshold_without_atoms_to_reject_keeps_the_accuracy():
    probs = np.array([[0.9, 0.1], [0.8, 0.2], [0.3, 0.7], [0.45, 0.55]])
    y = np.array([0, 0, 1, 0])  # the last atom is wrong anyway: rejecting it costs nothing
    theta, score = tr.choose_threshold(probs, y, 2)
    assert theta == pytest.approx(0.7) and score == pytest.approx(5 / 6)  # 0.71 would reject the 0.7 atom


def test_balanced_subsample():
    y = np.r_[np.zeros(1000, int), np.ones(30, int), np.full(5, -1)]
    keep = tr.balanced_subsample(y, 100, np.random.default_rng(1))
    np.testing.assert_array_equal(np.bincount(y[keep]), [100, 30])


def test_train_end_to_end(tmp_path, monkeypatch):
    monkeypatch.setenv("OVITO_MLCLASS_CACHE", str(tmp_path))
    write_toy_dataset(tmp_path, "toy")
    config = tmp_path / "toy.toml"
    config.write_text(TOY + '''[training]
epochs = 40
patience = 40
threads = 1
''')
    path = tr.train(config, output=tmp_path / "toy.pt", progress=False)
    model = StructureModel.load(path)
    meta = model.metadata
    assert model.classes == ["FCC", "BCC"] and 0.0 <= model.reject_threshold <= 0.95
    assert meta["training"]["data_hash"] == tr.data_hash(tr.snapshot_files(tr.load_config(config)[0], "train")
                                                         + tr.snapshot_files(tr.load_config(config)[0], "val"))
    assert meta["training"]["training_atoms"] == {"FCC": 768, "BCC": 354}
    assert np.asarray(meta["validation"]["confusion"]).sum() == 256 + 128 - 10
    for kind in ("fcc", "bcc"):
        result = classify(crystal(kind, 3, sigma=0.02, seed=11), model, reject_threshold=0.0)
        assert (result.type_names == kind.upper()).all()
    # the same seed and data give the same network
    again = StructureModel.load(tr.train(config, output=tmp_path / "again.pt", progress=False))
    X = np.random.default_rng(0).random((10, len(model.features.names)))
    np.testing.assert_array_equal(again.predict(X)[0], model.predict(X)[0])


def test_missing_data_and_configs_are_reported(tmp_path, monkeypatch):
    monkeypatch.setenv("OVITO_MLCLASS_CACHE", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="built-in: .*metals"):
        tr.load_config("no-such-config")
    with pytest.raises(FileNotFoundError, match="generate them first"):
        tr.train("metals", output=tmp_path / "m.pt", progress=False)


def test_novelty_calls_a_lattice_of_no_class_other(tmp_path, monkeypatch):
    """A model trained on fcc and bcc with a [novelty] section: simple cubic and diamond lattices,
    classes it never saw, are novel (Other) atom by atom, while thermal fcc and bcc are not; the
    file says format 4 and records how the novelty was fitted. Labels by construction."""
    from conftest import lattice, make_data

    monkeypatch.setenv("OVITO_MLCLASS_CACHE", str(tmp_path))
    write_toy_dataset(tmp_path, "toy")
    config = tmp_path / "toy.toml"
    config.write_text(TOY.replace("degrees = [4, 6]", "degrees = [4, 6, 8]") + '''[[features.blocks]]
kind = "distances"
neighbors = 12
normalize = 12
[network]
hidden = [16, 8]
[novelty]
quantile = 0.999
[training]
epochs = 40
patience = 40
threads = 1
''')
    model = StructureModel.load(tr.train(config, output=tmp_path / "toy.pt", progress=False))
    assert model.metadata["format_version"] == 4 and model.has_novelty
    assert model.metadata["novelty"]["quantile"] == 0.999 and len(model.metadata["novelty"]["thresholds"]) == 2
    diamond = np.array([[0, 0, 0], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5], [0.25, 0.25, 0.25],
                        [0.75, 0.75, 0.25], [0.75, 0.25, 0.75], [0.25, 0.75, 0.75]])
    for basis in (np.zeros((1, 3)), diamond):  # simple cubic, cubic diamond
        positions, cell = lattice(basis, np.eye(3), 5, sigma=0.02, seed=3)
        result = classify(make_data(positions, cell), model)
        assert (result.posteriors.novelty > 1).mean() >= 0.99 and (result.types == 0).mean() >= 0.99
    for kind in ("fcc", "bcc"):
        result = classify(crystal(kind, 4, sigma=0.035, seed=12), model)
        assert (result.posteriors.novelty <= 1).mean() >= 0.97 and (result.type_names == kind.upper()).mean() >= 0.97


def test_a_bulk_phase_is_recorded_and_scored_as_classify_applies_it(tmp_path, monkeypatch):
    """[bulk_phase] goes into the file (format 5), and the validation confusion matrix is the one
    classify() gives on the validation snapshots, rule included: here BCC must have all 12 nearest
    BCC, so one atom called otherwise empties its bcc box of BCC."""
    from ovito_mlclass.training.snapshots import Snapshot
    from ovito_mlclass.training.train import confusion

    monkeypatch.setenv("OVITO_MLCLASS_CACHE", str(tmp_path))
    write_toy_dataset(tmp_path, "toy")
    bcc = Snapshot.load(tmp_path / "toy" / "val" / "bcc-7.npz")
    positions = bcc.positions.copy()
    positions[:3] += np.random.default_rng(0).normal(0, 1.0, (3, 3))   # three atoms far off the lattice
    Snapshot(positions, bcc.cell, bcc.pbc, bcc.labels, bcc.classes, meta=bcc.meta).save(
        tmp_path / "toy" / "val" / "bcc-7-damaged.npz")
    text = TOY + '''[training]
epochs = 5
threads = 1
[bulk_phase]
class = "BCC"
min_neighbors = %d
'''
    config = tmp_path / "toy.toml"
    config.write_text(text % 13)
    with pytest.raises(ValueError, match="min_neighbors <= neighbors"):
        tr.train(config, output=tmp_path / "bad.pt", progress=False)
    config.write_text(text % 12)
    model = StructureModel.load(tr.train(config, output=tmp_path / "toy.pt", progress=False))
    assert model.metadata["format_version"] == 5
    assert model.bulk_phase == {"class": "BCC", "neighbors": 12, "min_neighbors": 12, "counting": []}
    expected = 0
    for path in sorted((tmp_path / "toy" / "val").glob("*.npz")):
        snap = Snapshot.load(path)
        predicted = classify(snap.to_data_collection(), model).type_names
        index = {"FCC": 0, "BCC": 1, "Other": -1}
        labels = np.where(snap.labels >= 0, snap.labels, -1)
        expected = expected + confusion(labels, np.array([index[p] for p in predicted]), 2)
    np.testing.assert_array_equal(model.metadata["validation"]["confusion"], expected)
    assert expected[1, 2] >= 100   # the damaged box: its labelled bcc atoms are Other


def test_calibration_snapshots_are_set_aside_from_training(tmp_path, monkeypatch):
    """With [training] calibration, early stopping and θ are chosen on training snapshots set aside,
    none of which the network trains on, and the validation snapshots are only scored."""
    monkeypatch.setenv("OVITO_MLCLASS_CACHE", str(tmp_path))
    write_toy_dataset(tmp_path, "toy")
    config = tmp_path / "toy.toml"
    config.write_text('name = "toy"\nclasses = ["FCC", "BCC"]\nseed = 5\n[data]\ndatasets = ["toy"]\n[features]\n'
                      '[[features.blocks]]\nkind = "steinhardt"\nneighbors = 12\ndegrees = [4, 6]\n'
                      '[training]\nepochs = 10\nthreads = 1\ncalibration = 0.34\n')
    meta = StructureModel.load(tr.train(config, output=tmp_path / "toy.pt", progress=False)).metadata["training"]
    assert len(meta["calibration_files"]) == 2 and len(meta["train_files"]) == 4
    assert not set(meta["calibration_files"]) & set(meta["train_files"])
    assert not set(meta["calibration_files"]) & set(meta["val_files"])


def test_calibration_one_snapshot_of_every_run(tmp_path, monkeypatch):
    """calibration = "one per run": every run of two or more snapshots gives exactly one to the
    calibration split (so the thresholds see every system and temperature), runs of one give none."""
    monkeypatch.setenv("OVITO_MLCLASS_CACHE", str(tmp_path))
    folder = tmp_path / "toy" / "train"
    folder.mkdir(parents=True)
    runs = {"crystal_A_T005": 1, "crystal_A_T095": 2, "liquid_B_T110": 3, "crystal_s1_T050": 2}
    for run, count in runs.items():
        for k in range(count):
            (folder / f"{run}_s{k}.npz").touch()
    config = {"seed": 3, "data": {"datasets": ["toy"]}, "training": {"calibration": "one per run"}}
    calibration = tr.snapshot_files(config, "calibration")
    train = tr.snapshot_files(config, "train")
    assert sorted(calibration + train) == sorted(folder.glob("*.npz"))
    assert sorted(p.stem.rsplit("_s", 1)[0] for p in calibration) == sorted(r for r, n in runs.items() if n >= 2)
    assert calibration == tr.snapshot_files(config, "calibration")   # chosen by the seed
    for bad in ("one per snapshot", 1.5, True, [0.2]):
        with pytest.raises(ValueError, match="calibration must be"):
            tr.snapshot_files({**config, "training": {"calibration": bad}}, "train")
