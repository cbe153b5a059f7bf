"""Model files (TorchScript and torch.export with metadata), the classification API and the modifier."""
import json
import os
from typing import Tuple
import warnings

import numpy as np
import pytest
import torch
from ovito.pipeline import Pipeline, StaticSource

from conftest import crystal, make_data, run_python
from ovito_mlclass import classify as cl
from ovito_mlclass.features import FeatureSpec
from ovito_mlclass.model import METADATA_FILE, ModelError, StructureModel, quiet_torchscript
from ovito_mlclass.modifiers import StructureClassifierModifier
from ovito_mlclass.training.network import StructureNet

SPEC = {"blocks": [{"kind": "steinhardt", "neighbors": 12, "degrees": [4, 6], "averaged": True, "wl": False}]}
CLASSES = ["FCC", "BCC", "Liquid"]
BULK = {"class": "Liquid", "neighbors": 12, "min_neighbors": 6, "counting": ["BCC"]}


def metadata(**changes):
    meta = {"format_version": 1, "name": "tiny", "classes": CLASSES,
            "colors": [[0.4, 1.0, 0.4], [0.4, 0.4, 1.0], [0.7, 0.7, 0.75]], "features": SPEC,
            "reject_threshold": 0.5, "site_classes": []}
    meta.update(changes)
    return meta


def tiny_net(n_sites=0, seed=0):
    torch.manual_seed(seed)
    net = StructureNet(4, len(CLASSES), [8], n_sites)
    net.set_standardisation(np.full(4, 0.3), np.full(4, 0.1))
    return net.eval()


@pytest.fixture
def model_file(tmp_path):
    with quiet_torchscript():
        scripted = torch.jit.script(tiny_net())
    return StructureModel(scripted, metadata()).save(tmp_path / "tiny.pt")


def test_round_trip_keeps_metadata_and_outputs(model_file):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # torch's TorchScript deprecation warnings must not reach users
        model = StructureModel.load(model_file)
    assert model.metadata == metadata() and model.classes == CLASSES and model.reject_threshold == 0.5
    X = np.random.default_rng(1).random((50, 4))
    with torch.no_grad():
        logits = tiny_net()(torch.tensor(X, dtype=torch.float32))[0]
    np.testing.assert_allclose(model.predict(X)[0], torch.softmax(logits, 1).numpy(), rtol=1e-6)


def payload_pickle(marker):
    """A pickle that creates ``marker`` when unpickled: what a hostile model file would hide."""
    import pickle

    class Payload:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    return pickle.dumps(Payload(), protocol=2)


def hostile_files(tmp_path, model_file):
    """Files that run code if anything unpickles them, each named as a model."""
    import zipfile

    marker = tmp_path / "payload-ran"
    payload = payload_pickle(marker)
    files = {}
    net = torch.nn.Linear(4, len(CLASSES))  # any network: what matters is the archive around it
    program = torch.export.export(net, (torch.zeros(4, 4),), dynamic_shapes=({0: torch.export.Dim("batch")},))
    torch.export.save(program, str(tmp_path / "exported.pt2"), extra_files={METADATA_FILE: json.dumps(metadata())})
    with zipfile.ZipFile(tmp_path / "exported.pt2") as z:   # the payload in the archive's sample inputs
        items = {n: (payload if "sample_inputs" in n else z.read(n)) for n in z.namelist()}
    assert any("sample_inputs" in n for n in items)
    with zipfile.ZipFile(tmp_path / "hostile.pt2", "w") as z:
        for name, data in items.items():
            z.writestr(name, data)
    files["torch.export archive"] = tmp_path / "hostile.pt2"
    (tmp_path / "raw-pickle.pt").write_bytes(payload)
    files["raw pickle named .pt"] = tmp_path / "raw-pickle.pt"
    torch.save({"weights": torch.zeros(3)}, str(tmp_path / "saved.pt"))
    with zipfile.ZipFile(tmp_path / "saved.pt") as z:    # torch.save's zip format, payload as its data.pkl
        items = {n: (payload if n.endswith("data.pkl") else z.read(n)) for n in z.namelist()}
    with zipfile.ZipFile(tmp_path / "torch-save.pt", "w") as z:
        for name, data in items.items():
            z.writestr(name, data)
    files["torch.save zip named .pt"] = tmp_path / "torch-save.pt"
    with zipfile.ZipFile(model_file) as z:               # a TorchScript archive whose data.pkl is the payload
        items = {n: (payload if n.endswith("/data.pkl") else z.read(n)) for n in z.namelist()}
    with zipfile.ZipFile(tmp_path / "script.pt", "w") as z:
        for name, data in items.items():
            z.writestr(name, data)
    files["TorchScript archive with a pickle payload"] = tmp_path / "script.pt"
    return files, marker


def test_no_model_loader_runs_code_from_a_file(tmp_path, model_file, capsys):
    """Every way a user hands us a model file: each is refused with a ModelError, and the payload
    (which would create a file) never runs."""
    from ovito_mlclass.cli import main
    from ovito_mlclass.model import load_model
    from ovito_mlclass.modifiers import PropertyPredictorModifier
    from ovito_mlclass.properties import PropertyModel
    from ovito_mlclass.properties.model import load_property_model

    files, marker = hostile_files(tmp_path, model_file)
    loaders = {
        "StructureModel.load": StructureModel.load,
        "load_model": load_model,
        "PropertyModel.load": PropertyModel.load,
        "load_property_model": load_property_model,
        "StructureClassifierModifier": lambda f: crystal("fcc", 3).apply(StructureClassifierModifier(model=str(f))),
        "PropertyPredictorModifier": lambda f: crystal("fcc", 3).apply(PropertyPredictorModifier(model=str(f))),
    }
    for kind, path in files.items():
        for name, load in loaders.items():
            with pytest.raises(Exception, match="not a TorchScript|not a readable TorchScript|torch.export") as info:
                load(path)
            assert "ModelError" in repr(info.value) or "not a" in str(info.value), (kind, name, info.value)
            assert not marker.exists(), (kind, name)
        dump = tmp_path / "tiny.xyz"
        dump.write_text("2\nLattice=\"4 0 0 0 4 0 0 0 4\" Properties=species:S:1:pos:R:3\nCu 0 0 0\nCu 2 2 0\n")
        for command in (["classify", str(dump), "-m", str(path)], ["predict-property", str(dump), "-m", str(path)]):
            assert main(command) == 2, (kind, command)
            assert "TorchScript" in capsys.readouterr().err, (kind, command)
            assert not marker.exists(), (kind, command)


def test_a_network_that_never_returns_does_not_hang_loading(tmp_path):
    """Nothing from the file runs at load: a network that loops forever is loaded at once (it would
    hang only when asked to classify)."""

    class Forever(torch.nn.Module):
        def forward(self, x):
            while True:
                x = x + 1.0
            return x

    path = tmp_path / "forever.pt"
    with quiet_torchscript():
        torch.jit.save(torch.jit.script(Forever()), str(path), _extra_files={METADATA_FILE: json.dumps(metadata())})
    code = f"from ovito_mlclass.model import StructureModel; m = StructureModel.load({str(path)!r}); print(m.classes)"
    done = run_python(code, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "FCC" in done.stdout


def test_prediction_on_several_threads_equals_one_thread(model_file):
    # batches run side by side on threads of their own, each on one core; torch's setting comes back
    model = StructureModel.load(model_file)
    model._network = None  # the TorchScript path (GPUs, networks the compiled kernel does not run)
    features = np.random.default_rng(0).normal(0.3, 0.1, (1000, 4))
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = model.predict(features, batch=64).probabilities
        torch.set_num_threads(2)
        two = model.predict(features, batch=64).probabilities
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
    np.testing.assert_array_equal(two, one)
    np.testing.assert_allclose(one.sum(axis=1), 1.0, rtol=1e-6)


# ---- the compiled StructureNet (the CPU path): the TorchScript module is the reference -----------


def torchscript_outputs(module, X):
    """(class posteriors, site posteriors or None, novelty or None, predicted class) of the
    TorchScript module (older files return no novelty)."""
    with torch.no_grad():
        logits, sites, *novelty = module(torch.tensor(X, dtype=torch.float32))
    return (torch.softmax(logits, 1).numpy(), torch.softmax(sites, 1).numpy() if sites.shape[1] else None,
            novelty[0].numpy() if novelty else None, logits.argmax(1).numpy())


def features_like_training(module, n, seed):
    """Descriptors spread as the network's standardisation says its training data were, and wider."""
    mean, std = module.mean.numpy().astype(float), 1.0 / module.inv_std.numpy().astype(float)
    return mean + std * np.random.default_rng(seed).normal(0.0, 1.5, (n, len(mean)))


def assert_same_outputs(prediction, module, X):
    probs, sites, novelty, best = torchscript_outputs(module, X)
    np.testing.assert_allclose(prediction.probabilities, probs, rtol=1e-4, atol=2e-6)
    if sites is None:
        assert prediction.sites is None
    else:
        np.testing.assert_allclose(prediction.sites, sites, rtol=1e-4, atol=2e-6)
    if prediction.most_probable is not None:  # the kernel's own: numpy's argmax and max of its posteriors
        np.testing.assert_array_equal(prediction.most_probable, prediction.probabilities.argmax(1))
        np.testing.assert_array_equal(prediction.confidence, prediction.probabilities.max(1))
    if prediction.novelty is not None:  # of the predicted class: where both predict the same one
        agree = prediction.probabilities.argmax(1) == best
        assert agree.mean() > 0.999
        np.testing.assert_allclose(prediction.novelty[agree], novelty[agree], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", ["openworld", "metals", "ice", "tcp"])
def test_compiled_network_of_the_shipped_models_equals_torchscript(name):
    model = StructureModel.load(name)
    X = features_like_training(model.module, 5000, seed=1)
    prediction = model.predict(X)
    assert model._network  # the kernel is what classification on the CPU runs
    assert (prediction.novelty is not None) == model.has_novelty and (prediction.sites is not None) == bool(model.site_classes)
    assert_same_outputs(prediction, model.module, X)


def scripted_structure_net(n_features, hidden, n_classes, n_sites, novelty, seed=0):
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    net = StructureNet(n_features, n_classes, hidden, n_sites)
    net.set_standardisation(rng.normal(0, 1, n_features), rng.uniform(0.5, 2.0, n_features))
    with torch.no_grad():
        net.body[0].weight[0, :2] = torch.tensor([1e-40, -3e-39])  # subnormal weights, as training leaves a few
    if novelty:
        factors = np.tril(rng.normal(0, 0.5, (n_classes, n_features, n_features)))
        net.set_novelty(rng.normal(0, 1, (n_classes, n_features)), factors, rng.uniform(0.5, 5.0, n_classes))
    with quiet_torchscript():
        return torch.jit.script(net.eval())


# widths the kernel pads (not multiples of 16) and ones it does not, one to three hidden layers,
# with and without sites and novelty; atom counts that are not a multiple of its blocks
@pytest.mark.parametrize("n_features, hidden, n_classes, n_sites, novelty, n", [
    (4, [8], 3, 0, False, 10), (38, [48, 32], 9, 0, True, 1001), (20, [20, 40, 16], 5, 3, True, 130),
    (172, [64, 64], 10, 4, True, 67), (7, [130], 2, 1, False, 3)])
def test_compiled_network_of_other_shapes_equals_torchscript(n_features, hidden, n_classes, n_sites, novelty, n):
    from ovito_mlclass.model import Prediction, compiled_network

    module = scripted_structure_net(n_features, hidden, n_classes, n_sites, novelty)
    X = features_like_training(module, n, seed=2)
    prediction = Prediction(*compiled_network(module, novelty)(X))
    assert (prediction.novelty is not None) == novelty and (prediction.sites is not None) == bool(n_sites)
    assert_same_outputs(prediction, module, X)


class StructureNetVariant(StructureNet):
    """The shipped network's name and layers, another function: the logits doubled."""

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        z = self.standardised(x)
        h = self.body(z)
        logits = 2.0 * self.classes(h)
        return logits, self.sites(h)[:, : self.n_sites], self.novelty(z, logits.argmax(dim=1))


StructureNetVariant.__name__ = "StructureNet"  # the name the kernel checks first


def test_a_network_the_compiled_kernel_does_not_reproduce_runs_in_torchscript(tmp_path):
    from ovito_mlclass.model import compiled_network

    torch.manual_seed(0)
    with quiet_torchscript():
        variant = torch.jit.script(StructureNetVariant(4, len(CLASSES), [8]).eval())
    model = StructureModel(variant, metadata())
    X = np.random.default_rng(3).normal(0.0, 1.0, (300, 4))
    with pytest.warns(RuntimeWarning, match="compiled network does not reproduce this network's outputs"):
        prediction = model.predict(X)
    assert model._network is None
    with torch.no_grad():
        expected = torch.softmax(variant(torch.tensor(X, dtype=torch.float32))[0], 1).numpy()
    np.testing.assert_allclose(prediction.probabilities, expected, rtol=1e-6)
    with quiet_torchscript():  # networks of other kinds: not for the kernel at all
        relu = StructureNet(4, 3, [8])
        relu.body[1] = torch.nn.ReLU()
        assert compiled_network(torch.jit.script(relu), False) is None
        assert compiled_network(torch.jit.script(torch.nn.Linear(4, 3)), False) is None


def test_compiled_network_gives_the_same_bits_on_one_and_two_threads():
    code = """if True:
        import hashlib, numpy as np, sys
        from ovito_mlclass.model import StructureModel
        model = StructureModel.load("openworld")
        mean, std = model.module.mean.numpy(), 1.0 / model.module.inv_std.numpy()
        X = mean + std * np.random.default_rng(5).normal(0.0, 1.5, (20001, len(mean)))
        p = model.predict(X)
        assert model._network
        sys.stdout.write(hashlib.sha256(p.probabilities.tobytes() + p.novelty.tobytes() + p.most_probable.tobytes()
                                        + p.confidence.tobytes()).hexdigest())"""
    runs = [run_python(code, env={**os.environ, "OMP_NUM_THREADS": str(t)}) for t in (1, 2)]
    for done in runs:
        assert done.returncode == 0, done.stderr
    assert runs[0].stdout == runs[1].stdout


@pytest.mark.parametrize("kind, sigma", [("fcc", 0.06), ("bcc", 0.08), ("hcp", 0.1), ("fcc", 0.2)])
def test_descriptors_in_single_precision_give_the_default_models_labels(kind, sigma):
    """Classification sums the Steinhardt descriptors in float32, the precision its network takes:
    on hot crystals and a melt-like disorder, the same labels as the double-precision descriptors
    (atoms within float rounding of a tie excepted) and the same novelty to 1e-4."""
    model = StructureModel.load("openworld")
    data = crystal(kind, 8, sigma=sigma, seed=4)
    double = model.predict(model.features.compute(data))
    single = model.predict(model.features.compute(data, single_precision=True))
    same = double.probabilities.argmax(1) == single.probabilities.argmax(1)
    assert same.mean() >= 0.999
    np.testing.assert_allclose(single.probabilities, double.probabilities, rtol=0, atol=1e-4)
    np.testing.assert_allclose(single.novelty[same], double.novelty[same], rtol=1e-4, atol=1e-5)


def test_compiled_network_checks_its_input():
    from ovito_mlclass._compiled import kernels

    module = scripted_structure_net(4, [8], 3, 0, True)
    a = lambda t: t.detach().numpy()
    args = [a(module.mean), a(module.inv_std), [a(module.body[0].weight)], [a(module.body[0].bias)],
            a(module.classes.weight), a(module.classes.bias), a(module.sites.weight), a(module.sites.bias), 0]
    novelty = [a(module.novelty_means), a(module.novelty_factors), a(module.novelty_scales)]
    with pytest.raises(ValueError, match="one value per feature"):
        kernels.structure_net(np.zeros((5, 5)), *args)
    with pytest.raises(ValueError, match=r"class layer: weight \(out, 8\)"):
        kernels.structure_net(np.zeros((5, 4)), *args[:4], a(module.classes.weight).T.copy(), *args[5:])
    with pytest.raises(ValueError, match="n_sites exceeds"):
        kernels.structure_net(np.zeros((5, 4)), *args[:-1], 2)
    with pytest.raises(ValueError, match=r"novelty: means \(C, F\)"):
        kernels.structure_net(np.zeros((5, 4)), *args, novelty[0][:2], *novelty[1:])
    probs, sites, scores, best, confidence = kernels.structure_net(np.zeros((0, 4)), *args, *novelty)
    assert probs.shape == (0, 3) and sites is None and scores.shape == best.shape == confidence.shape == (0,)


def test_reject_threshold(model_file):
    data = crystal("fcc", 3, sigma=0.05, seed=3)
    model = StructureModel.load(model_file)
    post = cl.posteriors(data, model)
    best = post.probabilities.max(axis=1)
    for theta in (0.0, 0.4, 0.6, 1.0):
        result = cl.assign(post, model, theta)
        np.testing.assert_array_equal(result.types == 0, best < theta)
        ids = np.array(model.structure_types.ids)  # the classes' OVITO type ids (test_conventions)
        np.testing.assert_array_equal(result.types[best >= theta], ids[post.probabilities.argmax(1)][best >= theta])
    assert (cl.assign(post, model).types == 0).sum() == (best < 0.5).sum()  # the model's own θ
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        cl.assign(post, model, 1.5)


def test_modifier_outputs_and_threshold_reuses_the_cache(model_file, monkeypatch):
    data = crystal("bcc", 3, sigma=0.05, seed=5)
    modifier = StructureClassifierModifier(model=str(model_file), output_probabilities=True)
    pipeline = Pipeline(source=StaticSource(data=data))
    pipeline.modifiers.append(modifier)
    out = pipeline.compute()
    types = np.asarray(out.particles["Structure Type"])
    by_id = {t.id: t.name for t in out.particles["Structure Type"].types}
    assert by_id == {0: "Other", 1: "FCC", 3: "BCC", 9: "Liquid"}  # OVITO's ids (test_conventions)
    assert out.particles["Structure Type"].type_by_id(1).color == pytest.approx((0.4, 1.0, 0.4))
    counts = np.bincount(types, minlength=10)[[0, 1, 3, 9]]
    assert [out.attributes[f"StructureClassifier.counts.{key}"] for key in ("OTHER", "FCC", "BCC", "LIQUID")] \
        == counts.tolist()
    assert np.asarray(out.tables["structures"]["Count"]).tolist() == counts.tolist()
    probs = np.column_stack([out.particles[f"Probability {c}"] for c in CLASSES])
    np.testing.assert_allclose(out.particles["Structure Confidence"], probs.max(axis=1), rtol=1e-6)

    calls = []
    original = FeatureSpec.compute
    monkeypatch.setattr(FeatureSpec, "compute", lambda self, *a, **k: calls.append(1) or original(self, *a, **k))
    modifier.reject_threshold = 0.99
    strict = pipeline.compute()
    assert calls == []  # the posteriors came from the cache
    assert (np.asarray(strict.particles["Structure Type"]) == 0).sum() >= (types == 0).sum()


def test_only_selected_and_unselected_particles(model_file):
    data = crystal("fcc", 3, sigma=0.05, seed=6)
    selection = np.arange(data.particles.count) % 2
    data.particles_.create_property("Selection", data=selection)
    data.apply(StructureClassifierModifier(model=str(model_file), only_selected=True, reject_threshold=0.0))
    types = np.asarray(data.particles["Structure Type"])
    assert (types[selection == 0] == 0).all() and (types[selection == 1] > 0).all()


def test_unknown_names_and_missing_files():
    with pytest.raises(FileNotFoundError, match="Built-in models"):
        StructureModel.load("no-such-model")


def test_corrupt_truncated_and_foreign_files(tmp_path, model_file):
    truncated = tmp_path / "cut.pt"
    truncated.write_bytes(model_file.read_bytes()[:1000])
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"\x00not a model" * 100)
    for path in (truncated, junk):
        with pytest.raises(ModelError, match="not a readable TorchScript"):
            StructureModel.load(path)
    with quiet_torchscript():
        plain = tmp_path / "plain.pt"
        torch.jit.save(torch.jit.script(tiny_net()), str(plain))
    with pytest.raises(ModelError, match="no ovito-mlclass metadata"):
        StructureModel.load(plain)


@pytest.mark.parametrize("changes, message", [
    (dict(format_version=99), "newer than this"),
    (dict(format_version="1"), "format_version"),
    (dict(colors=[[1, 1, 1]]), "3 classes but 1 colours"),
    (dict(colors=[[1, 1, 1], [1, 1, 1], [1, 2, 1]]), r"three numbers in \[0, 1\]"),
    (dict(classes=["FCC", "Other", "Liquid"]), "reserved"),
    (dict(classes=["FCC", "FCC", "Liquid"]), "names a class twice"),
    (dict(classes=[]), "no classes|colours"),
    (dict(reject_threshold="high"), r"'reject_threshold' must be a number in \[0, 1\]"),
    (dict(reject_threshold=-5), r"'reject_threshold' must be a number in \[0, 1\]"),
    (dict(reject_threshold=None), r"'reject_threshold' must be a number"),
    (dict(neighbor_average=-1), "neighbor_average"),
    (dict(features={"blocks": [{"kind": "nonsense"}]}), "invalid feature specification"),
    (dict(bulk_phase=BULK), "needs metadata format 5"),
    (dict(format_version=5, bulk_phase=dict(BULK, **{"class": "Glass"})), "does not have"),
    (dict(format_version=5, bulk_phase=dict(BULK, min_neighbors=13)), "min_neighbors <= neighbors"),
    (dict(format_version=5, bulk_phase=dict(BULK, counting=["ICO"])), "counting must list classes"),
    (dict(format_version=5, bulk_phase=dict(BULK, extra=1)), "exactly the keys"),
])
def test_inconsistent_metadata_are_refused_at_load(tmp_path, changes, message):
    with quiet_torchscript():
        path = tmp_path / "bad.pt"
        torch.jit.save(torch.jit.script(tiny_net()), str(path),
                       _extra_files={METADATA_FILE: json.dumps(metadata(**changes))})
    with pytest.raises(ModelError, match=message):
        StructureModel.load(path)


@pytest.mark.parametrize("changes, message", [
    (dict(classes=["FCC", "BCC"], colors=[[1, 1, 1], [1, 1, 1]]), r"\(3,\) outputs per atom, but the metadata name 2"),
    (dict(features={"blocks": [{"kind": "distances", "neighbors": 6, "normalize": 6}]}), "does not accept the 6 features"),
    (dict(site_classes=["Z12"]), "0 site outputs"),
])
def test_a_network_that_does_not_match_its_metadata_is_refused_when_used(tmp_path, changes, message):
    with quiet_torchscript():
        path = tmp_path / "bad.pt"
        torch.jit.save(torch.jit.script(tiny_net()), str(path),
                       _extra_files={METADATA_FILE: json.dumps(metadata(**changes))})
    model = StructureModel.load(path)
    with pytest.raises(ModelError, match=message):
        model.predict(np.zeros((2, len(model.features.names))))
    with pytest.raises(ModelError, match=message):
        cl.classify(crystal("fcc", 3, sigma=0.02), model)


def test_empty_names_and_folders_are_not_models(tmp_path):
    with pytest.raises(ModelError, match="No model given"):
        StructureModel.load("")
    with pytest.raises(ModelError, match="is a folder"):
        StructureModel.load(tmp_path)


def test_model_for_other_particle_types_says_so(tmp_path):
    with quiet_torchscript():
        scripted = torch.jit.script(tiny_net())
    path = StructureModel(scripted, metadata(features={**SPEC, "types": [2]})).save(tmp_path / "typed.pt")
    with pytest.raises(Exception, match="Particle Type"):
        cl.classify(crystal("fcc", 2), path)
    data = crystal("fcc", 3, sigma=0.03, seed=1)
    types = (np.arange(data.particles.count) % 2)
    typed = make_data(np.asarray(data.particles.positions), np.asarray(data.cell)[:, :3].T, types=types,
                      type_names=["H", "O"])
    result = cl.classify(typed, path, reject_threshold=0.0)
    assert (result.types[types == 0] == 0).all() and (result.types[types == 1] > 0).all()


def test_load_model_reuses_a_loaded_file_until_it_changes(tmp_path, model_file):
    import os

    from ovito_mlclass.model import load_model

    first = load_model(model_file)
    assert load_model(str(model_file)) is first  # every frame of a pipeline would otherwise re-read the file
    stamp = model_file.stat().st_mtime_ns
    os.utime(model_file, ns=(stamp + 10**9, stamp + 10**9))
    assert load_model(model_file) is not first


def k_core_by_enumeration(candidates, counted, neighbors, m):
    """The largest subset S of the candidates in which every atom has >= m neighbours in S or
    counted, by trying every subset (the definition; the union of two such sets is one too)."""
    idx = np.flatnonzero(candidates)
    best = np.zeros(len(candidates), bool)
    for bits in range(1 << len(idx)):
        subset = np.zeros(len(candidates), bool)
        subset[idx[[(bits >> b) & 1 == 1 for b in range(len(idx))]]] = True
        inside = subset | counted
        ok = all((inside[neighbors[i][neighbors[i] >= 0]]).sum() >= m for i in np.flatnonzero(subset))
        if ok and subset.sum() > best.sum():
            best = subset
    return best


@pytest.mark.parametrize("seed", range(40))
def test_bulk_phase_region_is_the_largest_self_supporting_set(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(4, 12))
    k = int(rng.integers(2, min(6, n)))
    neighbors = np.array([rng.choice(np.delete(np.arange(n), i), k, replace=False) for i in range(n)])
    neighbors[rng.random((n, k)) < 0.1] = -1
    kind = rng.integers(0, 3, n)   # 0: neither, 1: candidate, 2: counted
    m = int(rng.integers(1, k + 1))
    expected = k_core_by_enumeration(kind == 1, kind == 2, neighbors, m)
    np.testing.assert_array_equal(cl.bulk_phase_region(kind == 1, kind == 2, neighbors, m), expected)


def test_a_liquid_sheet_in_a_crystal_is_other_a_liquid_slab_stays(tmp_path):
    """fcc with types by construction: one (100) plane of Liquid (4 neighbours in the plane) and
    a slab of five planes (the outer planes: 4 + 4 Liquid neighbours); a lone BCC atom inside the
    slab counts for its neighbours (counting = ["BCC"])."""
    data = crystal("fcc", 6, sigma=0.0)
    positions = np.asarray(data.particles.positions)
    z = np.round(positions[:, 2] / (positions[:, 2].max() / 11)).astype(int)   # (100) planes 0..11
    ids = dict(FCC=1, BCC=3, Liquid=9)
    types = np.where(z == 1, ids["Liquid"], ids["FCC"])
    slab = (z >= 4) & (z <= 8)
    types[slab] = ids["Liquid"]
    lone = np.flatnonzero(slab & (z == 6))[0]
    types[lone] = ids["BCC"]
    with quiet_torchscript():
        scripted = torch.jit.script(tiny_net())
    model = StructureModel(scripted, metadata(format_version=5, bulk_phase=BULK))
    rows = cl.posteriors(data, model).neighbors
    assert rows.shape == (len(types), 12)
    result = cl.bulk_phase_types(types.astype(np.int32), rows, model)
    assert (result[z == 1] == 0).all()                  # the sheet: Other
    np.testing.assert_array_equal(result[slab], types[slab])   # the slab and its BCC atom: unchanged
    assert (result[~slab & (z != 1)] == ids["FCC"]).all()


def test_a_model_with_a_bulk_phase_applies_it_in_the_modifier_and_from_the_cache(tmp_path):
    data = crystal("fcc", 4, sigma=0.05, seed=3)
    with quiet_torchscript():
        scripted = torch.jit.script(tiny_net())
    # every rule-bearing path gives the same types as assign on fresh posteriors
    path = StructureModel(scripted, metadata(format_version=5, bulk_phase=dict(BULK, min_neighbors=12))).save(
        tmp_path / "bulk.pt")
    model = StructureModel.load(path)
    post = cl.posteriors(data, model)
    expected = cl.assign(post, model, 0.0).types
    alone = cl.assign(cl.Posteriors(post.probabilities, post.sites, post.described, post.novelty,
                                    None), StructureModel(scripted, metadata()), 0.0).types
    # with 12 of 12 required, one non-Liquid atom in a connected crystal takes every Liquid label away
    assert (alone == 9).sum() > 200 and (alone != 9).any() and not (expected == 9).any()
    with pytest.raises(ValueError, match="bulk phase"):
        cl.assign(cl.Posteriors(post.probabilities, post.sites, post.described, post.novelty, None), model)
    modifier = StructureClassifierModifier(model=str(path), reject_threshold=0.0)
    pipeline = Pipeline(source=StaticSource(data=data))
    pipeline.modifiers.append(modifier)
    np.testing.assert_array_equal(pipeline.compute().particles["Structure Type"], expected)
    modifier.output_probabilities = True   # recomputed from the cached posteriors and neighbours
    np.testing.assert_array_equal(pipeline.compute().particles["Structure Type"], expected)
