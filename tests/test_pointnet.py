"""PointNet models (DeFever et al., Chem. Sci. 10, 7503 (2019)): the point-cloud input, exact
permutation and learnt rotation invariance, the built-in models on lattices and MD snapshots,
clear errors for mismatched inputs, and training end to end."""

import numpy as np
import pytest
import torch

from conftest import TOY_CONFIG_HEAD, crystal, icosahedron, make_data, random_rotation, write_toy_dataset
from ovito_mlclass.classify import classify
from ovito_mlclass.features import FeatureSpec
from ovito_mlclass.model import FORMAT_VERSION, ModelError, StructureModel, quiet_torchscript
from ovito_mlclass.neighbors import InputError
import md_water
from ovito_mlclass.training import train as tr
from ovito_mlclass.training.network import PointNet, StructureNet

CLOUD = {"kind": "point_cloud", "neighbors": 40, "normalize": 12}


def cloud_of(data, neighbors=40, normalize=12):
    spec = FeatureSpec.from_dict({"blocks": [{"kind": "point_cloud", "neighbors": neighbors, "normalize": normalize}]})
    return spec.compute(data).reshape(-1, neighbors, 3)


def model_input(model, data):
    """A shipped model's input: the clouds (n, N, 3) and every atom's nearest neighbours to average over."""
    X, neighbors = model.features.compute(data, neighbors=model.neighbor_average)
    return X.reshape(len(X), -1, 3).astype(np.float32), neighbors


def perturbed(positions, cell_rows, sigma, seed):
    rng = np.random.default_rng(seed)
    return make_data(positions + rng.normal(0.0, sigma, positions.shape), cell_rows)


# ---- the input ---------------------------------------------------------------------------------


def test_point_cloud_of_fcc_is_its_neighbour_shells():
    # fcc with lattice constant 1: 12 neighbours at a/sqrt2, 6 at a, 24 at a sqrt(3/2); in units of
    # the nearest distance the cloud is exactly the lattice vectors times sqrt2
    cloud = cloud_of(crystal("fcc", 4))
    np.testing.assert_allclose(np.linalg.norm(cloud, axis=2),
                               np.tile(np.r_[np.ones(12), np.full(6, 2 ** 0.5), np.full(22, 3 ** 0.5)], (256, 1)),
                               atol=1e-12)
    first = np.round(cloud[0, :12] * 2 ** 0.5).astype(int)  # in units of a/2: the 12 permutations of (±1, ±1, 0)
    expected = [v for v in np.ndindex(3, 3, 3) if sorted(abs(c - 1) for c in v) == [0, 1, 1]]
    assert sorted(map(tuple, first)) == sorted(tuple(c - 1 for c in v) for v in expected)


def test_point_cloud_unit_is_the_mean_of_the_first_neighbours():
    data = crystal("bcc", 4, sigma=0.05, seed=2)
    raw = cloud_of(data, 40, 40)  # unit: mean over all 40
    d = np.linalg.norm(raw, axis=2)
    for normalize in (1, 8, 14):
        np.testing.assert_allclose(cloud_of(data, 40, normalize), raw / d[:, :normalize].mean(axis=1)[:, None, None],
                                   rtol=1e-12)


def test_small_systems_are_refused():
    # 13 atoms, not periodic: each has 12 neighbours, not 40 (test_features: the same for every block)
    with pytest.raises(InputError, match=r"13 particle\(s\) have fewer than 40 neighbours \(particle 0 has 12\)"):
        cloud_of(icosahedron())
    np.testing.assert_allclose(np.linalg.norm(cloud_of(icosahedron(), 12)[0], axis=1), 1.0, rtol=1e-12)


def test_compiled_point_cloud_equals_the_numpy_reference():
    from ovito_mlclass._compiled import COMPILED
    from ovito_mlclass.features import _point_cloud_numpy, point_cloud
    from ovito_mlclass.neighbors import nearest_neighbors

    assert COMPILED
    nearest = nearest_neighbors(crystal("hcp", 4, sigma=0.05, seed=2), 40)
    n = nearest.n_atoms
    expected = _point_cloud_numpy(nearest, 40, 30, 12, np.empty((n, 90)))
    np.testing.assert_allclose(point_cloud(nearest, 40, 30, 12), expected, rtol=1e-14, atol=1e-14)
    wide = np.full((n, 100), 7.0)            # written into a slice of a wider array: rows are strided
    point_cloud(nearest, 40, 30, 12, out=wide[:, 5:95])
    np.testing.assert_allclose(wide[:, 5:95], expected, rtol=1e-14, atol=1e-14)
    assert (wide[:, :5] == 7.0).all() and (wide[:, 95:] == 7.0).all()


def test_point_cloud_block_is_validated():
    with pytest.raises(ValueError, match="normalize <= neighbors"):
        FeatureSpec.from_dict({"blocks": [{"kind": "point_cloud", "neighbors": 8, "normalize": 12}]})
    with pytest.raises(ValueError, match="Unknown key"):
        FeatureSpec.from_dict({"blocks": [{"kind": "point_cloud", "neighbors": 40, "cutoff": 3.0}]})


# ---- invariances -------------------------------------------------------------------------------


def test_permutation_of_the_neighbours_changes_nothing():
    model = StructureModel.load("metals-pointnet")
    X, neighbors = model_input(model, crystal("hcp", 4, sigma=0.04, seed=1))
    rng = np.random.default_rng(0)
    shuffled = np.stack([x[rng.permutation(40)] for x in X]).reshape(len(X), -1)
    np.testing.assert_array_equal(model.predict(shuffled, neighbors)[0], model.predict(X.reshape(len(X), -1), neighbors)[0])


def test_alignment_folded_into_the_first_layer_equals_rotating_the_points():
    # embed multiplies each atom's frame into the first layer's weights instead of rotating its 40
    # points; the reference rotates the points into the frame and applies the layer as written
    net = PointNet(40, 3, [8, 16], [8], align_radius=1.25).eval()
    x = torch.tensor(cloud_of(crystal("bcc", 3, sigma=0.05, seed=9)).reshape(54, -1), dtype=torch.float32)
    with torch.no_grad():
        points = x.reshape(54, 40, 3)
        length = torch.linalg.norm(points, dim=2)
        frames = net.frame(points, length)
        np.testing.assert_allclose(frames.transpose(1, 2) @ frames, np.tile(np.eye(3), (54, 1, 1)), atol=1e-5)
        aligned = torch.einsum("npk,nkj->npj", points, frames)
        expected = net.points(net.first(torch.cat([aligned, length.unsqueeze(2)], dim=2))).amax(dim=1)
        torch.testing.assert_close(net.embed(x), expected, rtol=1e-5, atol=1e-5)


# Rotation invariance comes from the fixed input alignment (and random rotations in training): a
# rotation leaves the aligned cloud alone up to rounding, unless it flips a near-tie in the choice
# of the alignment's points (ideal lattices: ties everywhere; changes up to 8e-4 measured there).
# Largest change of any posterior allowed; measured on these thermal structures: <= 1.2e-7.
ROTATION_TOLERANCE = 1e-3
ROTATION_CASES = [("metals-pointnet", lambda kind=kind: crystal(kind, 4, sigma=0.03, seed=4), label)
                  for kind, label in (("fcc", "FCC"), ("bcc", "BCC"), ("hcp", "HCP"))]
ROTATION_CASES += [("ice-pointnet", lambda phase=phase: perturbed(*md_water.build_structure(phase, (3, 2, 2)), 0.1, 5),
                    label) for phase, label in (("ih", "Hexagonal ice"), ("ic", "Cubic ice"))]


@pytest.mark.parametrize("name, build, label", ROTATION_CASES, ids=[c[2] for c in ROTATION_CASES])
def test_rotated_structures_get_the_same_labels(name, build, label):
    # rotation invariance is learnt (random rotations in training), so it holds within a tolerance
    data = build()
    positions, rows = np.asarray(data.particles.positions), np.asarray(data.cell)[:, :3].T
    reference = classify(data, name)
    assert reference.counts[label] == data.particles.count, reference.counts
    for seed in range(5):
        rotation = random_rotation(seed)
        turned = classify(make_data(positions @ rotation.T, rows @ rotation.T), name)
        np.testing.assert_array_equal(turned.types, reference.types)
        p, q = turned.posteriors.probabilities, reference.posteriors.probabilities
        assert np.abs(p - q).max() < ROTATION_TOLERANCE, (seed, np.abs(p - q).max())


def test_random_rotations_of_single_clouds():
    model = StructureModel.load("metals-pointnet")
    X, neighbors = model_input(model, crystal("bcc", 4, sigma=0.04, seed=8))
    reference = model.predict(X.reshape(len(X), -1), neighbors)[0]
    rotations = np.stack([random_rotation(s) for s in range(len(X))])  # one per atom
    turned = np.einsum("nij,npj->npi", rotations, X).astype(np.float32)
    p = model.predict(turned.reshape(len(X), -1), neighbors)[0]
    np.testing.assert_array_equal(p.argmax(1), reference.argmax(1))
    assert np.abs(p - reference).max() < ROTATION_TOLERANCE


# ---- the built-in models -----------------------------------------------------------------------


def test_pointnet_models_are_installed_and_described():
    for name, dataset in (("metals-pointnet", "metals"), ("ice-pointnet", "ice")):
        model = StructureModel.load(name)
        meta = model.metadata
        assert meta["format_version"] == 3 and model.neighbor_average == (12 if dataset == "metals" else 4)
        assert meta["features"]["blocks"] == [
            {"kind": "point_cloud", "neighbors": 40, "normalize": 12 if dataset == "metals" else 4}]
        assert meta["training"]["command"] == f"ovito-mlclass train {name}"
        assert meta["training"]["config"]["network"]["kind"] == "pointnet"
        assert meta["training"]["config"]["data"]["datasets"] == [dataset]
        assert len(meta["training"]["data_hash"]) == 64 and meta["validation"]["balanced_accuracy"] > 0.9
        assert "randomly rotated" in meta["validation"]["orientation"]


# Accuracy on lattices and MD snapshots: test_builtin_models runs the PointNets through the same
# tests, with the same thresholds, as the descriptor models.


def test_metals_pointnet_in_the_modifier_refuses_a_small_open_cluster():
    # fewer than 40 neighbours everywhere: refused (padded clouds gave BCC at 0.99 on 8 atoms)
    from ovito.pipeline import Pipeline, StaticSource

    from ovito_mlclass.modifiers import StructureClassifierModifier

    for cluster in (icosahedron(), make_data(np.array(list(np.ndindex(2, 2, 2)), dtype=float) * 2.5 + 5,
                                             np.eye(3) * 20, pbc=(False,) * 3)):
        pipeline = Pipeline(source=StaticSource(data=cluster))
        pipeline.modifiers.append(StructureClassifierModifier(model="metals-pointnet", output_probabilities=True))
        with pytest.raises(InputError, match="fewer than 40 neighbours"):
            pipeline.compute()


# ---- mismatched inputs -------------------------------------------------------------------------


def pointnet_model(features, n_points=40, tmp_path=None):
    torch.manual_seed(0)
    with quiet_torchscript():
        module = torch.jit.script(PointNet(n_points, 2, [8, 16], [8]).eval())
    meta = {"format_version": 2, "name": "toy", "classes": ["FCC", "BCC"], "colors": [[0.4, 1.0, 0.4], [0.4, 0.4, 1.0]],
            "features": {"blocks": features}, "reject_threshold": 0.5}
    return StructureModel(module, meta)


def used(model):
    """The model asked to classify two atoms (a network is first run on data, never at load)."""
    return model.predict(np.zeros((2, len(model.features.names))))


def test_wrong_number_of_points_in_the_metadata():
    used(pointnet_model([CLOUD]))  # consistent: fine
    with pytest.raises(ModelError, match=r"does not accept the 90 features.*40 neighbours.*\(n, 120\)"):
        used(pointnet_model([{"kind": "point_cloud", "neighbors": 30, "normalize": 12}]))


def test_wrong_feature_kind_in_the_metadata():
    steinhardt = {"kind": "steinhardt", "neighbors": 12, "degrees": [4, 6], "averaged": True, "wl": False}
    with pytest.raises(ModelError, match=r"does not accept the 4 features.*point clouds of 40 neighbours"):
        used(pointnet_model([steinhardt]))
    # and a descriptor network whose metadata ask for point clouds
    with quiet_torchscript():
        module = torch.jit.script(StructureNet(4, 2, [8]).eval())
    meta = pointnet_model([CLOUD]).metadata
    with pytest.raises(ModelError, match="does not accept the 120 features"):
        used(StructureModel(module, meta))


def test_wrong_input_width_at_prediction():
    model = pointnet_model([CLOUD])
    with pytest.raises(ModelError, match=r"shape \(n, 120\), got \(5, 36\)"):
        model.predict(np.zeros((5, 36)))


def test_newer_format_is_refused_by_name():
    meta = dict(pointnet_model([CLOUD]).metadata, format_version=FORMAT_VERSION + 1)
    with pytest.raises(ModelError, match="upgrade ovito-mlclass"):
        StructureModel(pointnet_model([CLOUD]).module, meta)


def test_batches_do_not_change_the_posteriors():
    model = StructureModel.load("ice-pointnet")
    model._embed = None  # batches are what the TorchScript path (GPUs, no compiled kernel) runs in
    positions, cell = md_water.build_structure("sI", (1, 1, 1))
    X, neighbors = model_input(model, perturbed(positions, cell, 0.1, 2))
    X = X.reshape(len(X), -1)
    np.testing.assert_allclose(model.predict(X, neighbors, batch=7)[0], model.predict(X, neighbors)[0],
                               rtol=1e-5, atol=1e-6)


# ---- the compiled PointNet kernel (the CPU path): the TorchScript module is the reference --------


def scripted_pointnet(n_points, widths, align_radius, seed=0):
    torch.manual_seed(seed)
    with quiet_torchscript():
        return torch.jit.script(PointNet(n_points, 3, widths, [8], align_radius=align_radius).eval())


def torchscript_embed(module, X):
    with torch.no_grad():
        return module.embed(torch.tensor(X, dtype=torch.float32))


@pytest.mark.parametrize("name, build", [
    ("metals-pointnet", lambda: crystal("hcp", 4, sigma=0.08, seed=3)),
    ("ice-pointnet", lambda: perturbed(*md_water.build_structure("ih", (3, 2, 2)), 0.15, 8))], ids=["metals", "ice"])
def test_compiled_embedding_of_the_shipped_models_equals_torchscript(name, build):
    model = StructureModel.load(name)
    X, neighbors = model.features.compute(build(), neighbors=model.neighbor_average)
    model.predict(X, neighbors)
    assert model._embed  # the kernel is what classification on the CPU runs
    torch.testing.assert_close(model._embed(X), torchscript_embed(model.module, X), rtol=1e-5, atol=1e-5)


# widths the kernel has vector code for (8, 16, 32, 64, 128) and others; clouds whose size is not a
# multiple of its blocks of 4 points; without the alignment; a first layer straight into the maximum
@pytest.mark.parametrize("n_points, widths, align_radius", [(40, [16, 32, 64], 1.25), (13, [12, 20], 0.0),
                                                            (16, [8], 1.25), (7, [24, 128, 40], 1.25)])
def test_compiled_embedding_of_other_networks_equals_torchscript(n_points, widths, align_radius):
    from ovito_mlclass.model import compiled_embedding

    module = scripted_pointnet(n_points, widths, align_radius)
    X = cloud_of(crystal("bcc", 3, sigma=0.06, seed=9), n_points, min(n_points, 8)).reshape(54, -1)
    torch.testing.assert_close(compiled_embedding(module)(X), torchscript_embed(module, X), rtol=1e-5, atol=1e-5)


class PointNetVariant(PointNet):
    """The shipped network's name and layers, another function: mean instead of max pooling."""

    @torch.jit.export
    def embed(self, x: torch.Tensor) -> torch.Tensor:
        points = x.reshape(x.shape[0], self.n_points, 3)
        length = torch.sqrt((points * points).sum(dim=2, keepdim=True))
        return self.points(self.first(torch.cat([points, length], dim=2))).mean(dim=1)


PointNetVariant.__name__ = "PointNet"  # the name the kernel checks first


def test_a_network_the_kernel_does_not_reproduce_runs_in_torchscript():
    from ovito_mlclass.model import compiled_embedding

    with quiet_torchscript():
        module = torch.jit.script(PointNetVariant(16, 3, [8, 16], [8]).eval())
    with pytest.warns(RuntimeWarning, match="does not reproduce this network's embed; running it in TorchScript"):
        assert compiled_embedding(module) is None
    with quiet_torchscript():  # not a PointNet at all
        assert compiled_embedding(torch.jit.script(StructureNet(4, 2, [8]))) is None


def test_compiled_kernel_checks_its_input():
    from ovito_mlclass._compiled import kernels

    module = scripted_pointnet(16, [8, 16], 1.25)
    layer = module.points[1]
    first = (module.first.weight.detach().numpy(), module.first.bias.detach().numpy())
    with pytest.raises(ValueError, match=r"clouds must have shape \(n, 3 \* n_points\)"):
        kernels.pointnet_embed(np.zeros((5, 47)), 16, *first, [layer.weight.detach().numpy()],
                               [layer.bias.detach().numpy()], 1.25)
    with pytest.raises(ValueError, match=r"layer 1: weight \(out, 8\)"):
        kernels.pointnet_embed(np.zeros((5, 48)), 16, *first, [layer.weight.detach().numpy().T],
                               [layer.bias.detach().numpy()], 1.25)
    with pytest.raises(ValueError, match=r"must lie in \[-1, n - 1\]"):
        kernels.neighbor_mean(np.zeros((3, 4), dtype=np.float32), np.array([[0, 3], [1, 2], [0, -1]]))


def test_compiled_neighbour_mean_equals_embedding_bag_and_the_mean_by_hand():
    from ovito_mlclass.model import neighbor_mean

    rng = np.random.default_rng(4)
    h = torch.tensor(rng.normal(size=(60, 12)), dtype=torch.float32)
    neighbors = torch.tensor(rng.integers(-1, 60, size=(60, 5)))
    fast = neighbor_mean(h, neighbors)                                      # the compiled kernel
    with torch.enable_grad():
        slow = neighbor_mean(h.clone().requires_grad_(), neighbors).detach()  # embedding_bag (autograd)
    torch.testing.assert_close(fast, slow, rtol=1e-6, atol=1e-6)
    for i in (0, 17, 59):
        rows = [i] + [j for j in neighbors[i].tolist() if j >= 0]
        torch.testing.assert_close(fast[i], h[rows].mean(dim=0), rtol=1e-6, atol=1e-6)


# ---- averaging over neighbours -------------------------------------------------------------------


def averaging_model(k, n_points=16, format_version=3):
    torch.manual_seed(1)
    with quiet_torchscript():
        module = torch.jit.script(PointNet(n_points, 3, [8, 16], [8], align_radius=1.25).eval())
    meta = {"format_version": format_version, "name": "toy-avg", "classes": ["FCC", "BCC", "HCP"],
            "colors": [[0.4, 1.0, 0.4], [0.4, 0.4, 1.0], [1.0, 0.4, 0.4]], "neighbor_average": k,
            "features": {"blocks": [{"kind": "point_cloud", "neighbors": n_points, "normalize": 12}]},
            "reject_threshold": 0.5}
    return StructureModel(module, meta)


def brute_force_averaged_posteriors(model, data, k):
    """The averaging by hand: OVITO's own nearest-neighbour finder (not ours), a Python loop."""
    from ovito.data import NearestNeighborFinder

    X = FeatureSpec.from_dict(model.metadata["features"]).compute(data)
    with torch.no_grad():
        h = model.module.embed(torch.tensor(X, dtype=torch.float32)).double().numpy()
        finder = NearestNeighborFinder(k, data)
        mean = np.stack([h[[i] + [nb.index for nb in finder.find(i)]].mean(axis=0) for i in range(len(h))])
        return torch.softmax(model.module.classify(torch.tensor(mean, dtype=torch.float32)), 1).numpy()


@pytest.mark.parametrize("build", [lambda: crystal("bcc", 4, sigma=0.04, seed=3), lambda: icosahedron()],
                         ids=["thermal bcc", "13-atom cluster"])
def test_neighbor_average_equals_the_average_by_hand(build):
    # the cluster's atoms have 12 neighbours (clouds of 12 points), fewer than the 16 averaged over:
    # the missing ones are left out of the mean
    data = build()
    k = 16 if data.particles.count == 13 else 12
    model = averaging_model(k, n_points=12)
    result = classify(data, model)
    np.testing.assert_allclose(result.posteriors.probabilities, brute_force_averaged_posteriors(model, data, k),
                               rtol=1e-5, atol=1e-6)


def test_neighbor_average_follows_the_atoms_when_they_are_reordered():
    data = crystal("fcc", 4, sigma=0.05, seed=6)
    order = np.random.default_rng(2).permutation(data.particles.count)
    shuffled = make_data(np.asarray(data.particles.positions)[order], np.asarray(data.cell)[:, :3].T)
    model = averaging_model(12)
    np.testing.assert_allclose(classify(shuffled, model).posteriors.probabilities,
                               classify(data, model).posteriors.probabilities[order], rtol=1e-5, atol=1e-6)


def test_neighbor_average_errors():
    model = averaging_model(12)
    X = cloud_of(crystal("fcc", 3), 16).reshape(108, -1)
    with pytest.raises(ModelError, match="averages over each atom's 12 nearest neighbours: pass their indices"):
        model.predict(X)
    with pytest.raises(ModelError, match=r"shape \(108, 12\)"):
        model.predict(X, np.zeros((108, 4), dtype=np.int64))
    with pytest.raises(ModelError, match=r"must lie in \[-1, 107\]"):
        model.predict(X, np.full((108, 12), 108))
    with pytest.raises(ModelError, match="needs metadata format 3"):
        averaging_model(12, format_version=2)
    with quiet_torchscript():  # a network without embed / classify (a descriptor network)
        module = torch.jit.script(StructureNet(48, 3, [8]).eval())
    with pytest.raises(ModelError, match="no 'embed' and 'classify' methods"):
        StructureModel(module, averaging_model(12).metadata)


# ---- training ----------------------------------------------------------------------------------


@pytest.mark.parametrize("average", [0, 8])
def test_train_pointnet_end_to_end(tmp_path, monkeypatch, average):
    monkeypatch.setenv("OVITO_MLCLASS_CACHE", str(tmp_path))
    write_toy_dataset(tmp_path, "toy")
    config = tmp_path / "toy.toml"
    config.write_text('name = "toy-pointnet"\n' + TOY_CONFIG_HEAD + '''[[features.blocks]]
kind = "point_cloud"
neighbors = 16
normalize = 8
[network]
kind = "pointnet"
point_widths = [16, 32]
head = [16]
align_radius = 1.25
neighbor_average = {average}
[training]
epochs = 20
head_epochs = 10
batch_size = 64
learning_rate = 0.01
cosine_schedule = true
threads = 1
'''.format(average=average))
    path = tr.train(config, output=tmp_path / "toy.pt", progress=False)
    model = StructureModel.load(path)
    meta = model.metadata
    assert meta["format_version"] == (3 if average else 2) and model.neighbor_average == average
    assert meta["training"]["training_atoms"] == {"FCC": 768, "BCC": 354}
    assert ("head_epochs_run" in meta["training"]) == bool(average)
    assert np.asarray(meta["validation"]["confusion"]).sum() == 256 + 128 - 10
    assert meta["validation"]["recall"]["FCC"] > 0.95 and meta["validation"]["recall"]["BCC"] > 0.95
    # the same seed and data give the same network
    again = StructureModel.load(tr.train(config, output=tmp_path / "again.pt", progress=False))
    X = np.random.default_rng(0).normal(size=(10, 48))
    neighbors = np.roll(np.arange(10), 1)[:, None] + np.zeros((1, average), dtype=np.int64) if average else None
    np.testing.assert_array_equal(again.predict(X, neighbors)[0], model.predict(X, neighbors)[0])
    # and it labels thermal lattices it has not seen
    for kind, label in (("fcc", "FCC"), ("bcc", "BCC")):
        counts = classify(crystal(kind, 4, sigma=0.04, seed=40), model).counts
        assert counts[label] >= 0.95 * sum(counts.values()), counts


def test_pointnet_configs_are_checked(tmp_path):
    spec = FeatureSpec.from_dict({"blocks": [{"kind": "distances", "neighbors": 12, "normalize": 12}]})
    with pytest.raises(ValueError, match="exactly one feature block, of kind 'point_cloud'"):
        tr.make_network({"network": {"kind": "pointnet"}}, spec, 12, 2, 0)
    with pytest.raises(ValueError, match="Unknown network kind"):
        tr.make_network({"network": {"kind": "transformer"}}, spec, 12, 2, 0)
    with pytest.raises(ValueError, match="neighbor_average needs a PointNet"):
        tr.make_network({"network": {"neighbor_average": 12}}, spec, 12, 2, 0)
