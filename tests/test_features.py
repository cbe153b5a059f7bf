"""Feature specifications: each block against an independent reference, scale invariance, round trip."""
import numpy as np
import pytest
from ovito.modifiers import SteinhardtParametersModifier as OvitoSteinhardt

from conftest import crystal, make_data
from ovito_mlclass.descriptors import SymmetryFunctions
from ovito_mlclass.features import FeatureSpec, neighbor_mean
from ovito_mlclass import neighbors as nb

STEINHARDT = {"kind": "steinhardt", "neighbors": 12, "degrees": [4, 6], "averaged": True, "wl": False}


def scaled(data, factor):
    return make_data(np.asarray(data.particles.positions) * factor, np.asarray(data.cell)[:, :3].T * factor)


def test_steinhardt_block_equals_ovito():
    data = crystal("hcp", 4, sigma=0.04, seed=2)
    X = FeatureSpec(blocks=(STEINHARDT,)).compute(data)
    work = data.clone()
    work.apply(OvitoSteinhardt(neighbor_mode=OvitoSteinhardt.NeighborMode.NearestNeighbors, num_neighbors=12,
                               max_l=6, compute_averaged=True))
    q = np.asarray(work.particles["Steinhardt"])[:, [2, 4]]  # components q2..q6 -> q4, q6
    qbar = np.asarray(work.particles["Smooth Steinhardt"])[:, [2, 4]]
    np.testing.assert_allclose(X, np.hstack([q, qbar]), rtol=0, atol=1e-10)


def test_distances_of_ideal_fcc_are_the_shells():
    # 12 neighbours at a/sqrt2, then 6 at a: ratios 1 and sqrt(2) (closed form)
    X = FeatureSpec(blocks=({"kind": "distances", "neighbors": 16, "normalize": 12},)).compute(crystal("fcc", 3))
    np.testing.assert_allclose(X[:, :12], 1.0, atol=1e-12)
    np.testing.assert_allclose(X[:, 12:], np.sqrt(2.0), atol=1e-12)


def test_symmetry_functions_are_in_units_of_the_frame_scale():
    data = crystal("bcc", 3, sigma=0.03, seed=4)
    block = {"kind": "symmetry_functions", "cutoff": 1.7, "g2": [[2.0, 1.0]], "g4": [[0.3, 2.0, -1.0]]}
    X = FeatureSpec(blocks=(block,), scale_neighbors=8).compute(data)
    d = np.linalg.norm(nb.nearest_neighbors(data, 8).vectors, axis=1).reshape(-1, 8)
    s = np.median(d.mean(axis=1))  # the documented frame scale
    expected = SymmetryFunctions(cutoff=1.7 * s, g2=[(2.0 / s**2, 1.0 * s)], g4=[(0.3 / s**2, 2.0, -1.0)]).compute(
        nb.cutoff_neighbors(data, 1.7 * s))
    np.testing.assert_allclose(X, expected, rtol=1e-12)


def test_features_do_not_depend_on_the_length_unit():
    spec = FeatureSpec(blocks=(STEINHARDT, {"kind": "steinhardt", "neighbors": "voronoi", "degrees": [6]},
                               {"kind": "distances", "neighbors": 14, "normalize": 8},
                               {"kind": "symmetry_functions", "cutoff": 1.5, "g2": [[1.0, 1.0]], "g4": [[0.5, 1.0, 1.0]]}))
    data = crystal("bcc", 3, sigma=0.04, seed=9)
    np.testing.assert_allclose(spec.compute(scaled(data, 2.7)), spec.compute(data), rtol=1e-9, atol=1e-12)


def test_types_restrict_the_described_particles():
    data = crystal("fcc", 3, sigma=0.03, seed=1)
    n = data.particles.count
    types = np.where(np.arange(n) % 3 == 0, 2, 1)  # particle type ids
    typed = make_data(np.asarray(data.particles.positions), np.asarray(data.cell)[:, :3].T, types=types - 1,
                      type_names=["A", "B"])
    spec = FeatureSpec(blocks=(STEINHARDT,), types=(1,))
    X = spec.compute(typed)
    alone = make_data(np.asarray(data.particles.positions)[types == 1], np.asarray(data.cell)[:, :3].T)
    np.testing.assert_array_equal(spec.selection(typed), types == 1)
    np.testing.assert_allclose(X, FeatureSpec(blocks=(STEINHARDT,)).compute(alone), atol=1e-14)


def test_round_trip_and_names():
    spec = FeatureSpec.from_dict({"blocks": [STEINHARDT, {"kind": "distances", "neighbors": 3, "normalize": 2}],
                                  "types": [1]})
    assert FeatureSpec.from_dict(spec.to_dict()) == spec
    assert spec.names == ["q4_nn12", "q6_nn12", "qbar4_nn12", "qbar6_nn12", "d1/d2", "d2/d2", "d3/d2"]


@pytest.mark.parametrize("bad, message", [
    ({"blocks": []}, "at least one block"),
    ({"blocks": [{"kind": "magic"}]}, "kind"),
    ({"blocks": [{"kind": "distances", "neighbors": 4, "normalize": 6}]}, "normalize"),
    ({"blocks": [{"kind": "steinhardt", "neighbors": 0}]}, "positive integer"),
    ({"blocks": [{"kind": "steinhardt", "degree": [4]}]}, "Unknown key"),
    ({"blocks": [STEINHARDT], "colour": 1}, "Unknown key"),
])
def test_bad_specifications_are_refused(bad, message):
    with pytest.raises(ValueError, match=message):
        FeatureSpec.from_dict(bad)


def test_missing_types_are_reported():
    with pytest.raises(nb.InputError, match="Particle Type"):
        FeatureSpec(blocks=(STEINHARDT,), types=(1,)).compute(crystal("fcc", 2))


def test_compiled_relative_distances_equal_numpy(monkeypatch):
    from ovito_mlclass import _compiled as _backend
    from ovito_mlclass.features import relative_distances

    nearest = nb.nearest_neighbors(crystal("bcc", 3, sigma=0.05, seed=2), 14)
    compiled = relative_distances(nearest, 14, 8)
    monkeypatch.setattr(_backend, "COMPILED", False)
    d = np.linalg.norm(nearest.vectors.reshape(-1, 14, 3), axis=2)
    np.testing.assert_allclose(compiled, d / d[:, :8].mean(axis=1, keepdims=True), rtol=1e-14)
    np.testing.assert_allclose(relative_distances(nearest, 14, 8), compiled, rtol=1e-14)


@pytest.mark.parametrize("block", [
    STEINHARDT, {"kind": "distances", "neighbors": 12, "normalize": 12},
    {"kind": "point_cloud", "neighbors": 12, "normalize": 12},
    {"kind": "symmetry_functions", "cutoff": 1.5, "g2": [[1.0, 1.0]]}], ids=lambda b: b["kind"])
def test_every_block_refuses_a_frame_with_fewer_neighbours(block):
    """8 atoms on the corners of an open cube have 7 neighbours each, fewer than 12: the same
    InputError for every block (point clouds were padded with copies of the nearest neighbour)."""
    from ovito.data import NearestNeighborFinder

    cube = make_data(np.array(list(np.ndindex(2, 2, 2)), dtype=float) * 2.5 + 5, np.eye(3) * 20, pbc=(False,) * 3)
    assert (NearestNeighborFinder(12, cube).find_all()[0][:, 7:] == -1).all()  # OVITO: 7 found of 12
    with pytest.raises(nb.InputError, match=r"^8 particle\(s\) have fewer than 12 neighbours \(particle 0 has 7\)"):
        FeatureSpec(blocks=(block,)).compute(cube)
    # the extra rows a model averages over may be missing (-1)
    X, rows = FeatureSpec(blocks=({"kind": "distances", "neighbors": 7, "normalize": 7},)).compute(cube, neighbors=12)
    assert X.shape == (8, 7) and (rows[:, 7:] == -1).all() and (rows[:, :7] >= 0).all()


def test_neighbor_mean_averages_every_column_over_the_nearest_neighbours(monkeypatch):
    """The ``_mean<k>`` columns are the block columns averaged over the atom and its k nearest
    neighbours, found here by OVITO's own neighbour finder."""
    from ovito.data import NearestNeighborFinder

    data = crystal("bcc", 3, sigma=0.05, seed=3)
    blocks = (STEINHARDT, {"kind": "distances", "neighbors": 14, "normalize": 8})
    X = FeatureSpec(blocks=blocks, neighbor_mean=8).compute(data)
    base = FeatureSpec(blocks=blocks).compute(data)
    rows, _ = NearestNeighborFinder(8, data).find_all()
    expected = np.array([base[np.r_[i, rows[i]]].mean(axis=0) for i in range(len(base))])
    np.testing.assert_allclose(X, np.hstack([base, expected]), rtol=1e-12, atol=1e-14)
    compiled = neighbor_mean(base, rows.astype(np.int64))
    np.testing.assert_allclose(compiled, expected, rtol=1e-12, atol=1e-14)
    from ovito_mlclass import _compiled
    monkeypatch.setattr(_compiled, "COMPILED", False)  # the NumPy fallback: the same sums in the same order
    np.testing.assert_array_equal(neighbor_mean(base, rows.astype(np.int64), chunk=7), compiled)


def test_neighbor_mean_of_a_perfect_crystal_repeats_the_columns():
    # every atom of ideal fcc is alike: its neighbours' mean is its own value
    X = FeatureSpec(blocks=(STEINHARDT,), neighbor_mean=12).compute(crystal("fcc", 3))
    np.testing.assert_allclose(X[:, 4:], X[:, :4], atol=1e-12)


def test_neighbor_mean_round_trip_and_names():
    spec = FeatureSpec.from_dict({"blocks": [{"kind": "distances", "neighbors": 2, "normalize": 2}],
                                  "neighbor_mean": 6})
    assert FeatureSpec.from_dict(spec.to_dict()) == spec
    assert spec.names == ["d1/d2", "d2/d2", "d1/d2_mean6", "d2/d2_mean6"]
    assert "neighbor_mean" not in FeatureSpec(blocks=spec.blocks).to_dict()  # older specs keep their form
    with pytest.raises(ValueError, match="neighbor_mean"):
        FeatureSpec(blocks=spec.blocks, neighbor_mean=-1)


def test_blocks_written_in_place_equal_their_own_arrays():
    """The kernels write each block straight into its columns of the feature matrix (rows inside a
    wider array): the same values, bit for bit, as each block computed into an array of its own, and
    an output of the wrong type is refused rather than copied and lost."""
    from ovito_mlclass import _compiled
    from ovito_mlclass.descriptors import Steinhardt
    from ovito_mlclass.features import relative_distances

    data = crystal("fcc", 4, sigma=0.1, seed=5)
    spec = FeatureSpec(blocks=({"kind": "steinhardt", "neighbors": 12, "degrees": [4, 6, 8], "averaged": True,
                                "wl": False},
                               {"kind": "steinhardt", "neighbors": 4, "degrees": [3, 4, 6], "averaged": True, "wl": True},
                               {"kind": "distances", "neighbors": 16, "normalize": 12}))
    nearest = nb.nearest_neighbors(data, 16)
    separate = np.hstack([Steinhardt(degrees=(4, 6, 8), averaged=True, wl=False).compute(nearest, first=12),
                          Steinhardt(degrees=(3, 4, 6), averaged=True, wl=True).compute(nearest, first=4),
                          relative_distances(nearest, 16, 12)])
    np.testing.assert_array_equal(spec.compute(data), separate)
    if _compiled.COMPILED:
        with pytest.raises(TypeError):
            Steinhardt(degrees=(4, 6)).compute(nearest, out=np.empty((len(separate), 8), dtype=np.float32))
        with pytest.raises(TypeError):
            relative_distances(nearest, 16, 12, out=np.empty((len(separate), 16), dtype=np.float32))
        with pytest.raises(ValueError, match="rows"):
            relative_distances(nearest, 16, 12, out=np.empty((16, len(separate))).T)
