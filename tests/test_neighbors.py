"""The cell-list neighbour search against OVITO's NearestNeighborFinder and CutoffNeighborFinder."""
import numpy as np
import pytest
from ovito.data import CutoffNeighborFinder, NearestNeighborFinder

from conftest import crystal, make_data, triclinic
from ovito_mlclass import neighbors as nb
from ovito_mlclass.descriptors import _backend

SKEWED = np.array([[1.0, 0.0, 0.0], [0.31, 1.07, 0.0], [-0.22, 0.41, 0.93]])


def small_cell(n_atoms, scale, seed=0):
    """n_atoms random atoms in a periodic triclinic cell much smaller than the search radius."""
    cell = SKEWED * scale
    frac = np.random.default_rng(seed).uniform(size=(n_atoms, 3))
    return make_data(frac @ cell, cell)


def open_cloud(seed=1):
    """Non-periodic: atoms scattered well beyond the cell on every side."""
    positions = np.random.default_rng(seed).uniform(-3.0, 13.0, size=(200, 3))
    return make_data(positions, np.eye(3) * 10.0, pbc=(False, False, False))


def slab(seed=2):
    """Periodic along the first two cell vectors only, atoms above and below the cell."""
    cell = np.array([[8.0, 0.0, 0.0], [2.5, 7.5, 0.0], [0.0, 0.0, 6.0]])
    rng = np.random.default_rng(seed)
    positions = np.column_stack([rng.uniform(0, 1, (150, 2)), rng.uniform(-0.4, 1.5, 150)]) @ cell
    return make_data(positions, cell, pbc=(True, True, False))


def clustered_gas(seed=5, box=12.0):
    """Three tight clusters and a sparse background: most bins empty, some crowded."""
    rng = np.random.default_rng(seed)
    centres = rng.uniform(0, box, (3, 3))
    clusters = centres[rng.integers(0, 3, 250)] + rng.normal(0.0, 0.6, (250, 3))
    return make_data(np.vstack([clusters, rng.uniform(0, box, (50, 3))]), np.eye(3) * box)


# name: (structure, values of k, cutoffs)
CASES = {
    "fcc": (lambda: crystal("fcc", 4, sigma=0.06, seed=7), (1, 12, 40), (0.85, 1.6)),
    "bcc": (lambda: crystal("bcc", 5, sigma=0.06, seed=7), (1, 12, 40), (1.05, 1.6)),
    "triclinic": (triclinic, (12, 40), (3.2, 6.5)),  # 6.5: more than half the cell
    "one atom in a small cell": (lambda: small_cell(1, 1.0), (12, 40), (2.5,)),
    "four atoms in a small cell": (lambda: small_cell(4, 1.5, seed=3), (1, 12, 40), (0.9, 4.0)),
    "non-periodic": (open_cloud, (1, 12, 40), (3.0, 6.0)),
    "mixed pbc": (slab, (12, 40), (2.5, 9.0)),
    "clustered gas": (clustered_gas, (1, 12, 40), (1.0, 3.0)),
}
NEAREST = [(name, k) for name, (_, ks, _) in CASES.items() for k in ks]
CUTOFF = [(name, c) for name, (_, _, cs) in CASES.items() for c in cs]


def assert_same_bonds(j_ours, v_ours, j_ref, v_ref):
    """Equal multisets of (neighbour, vector): the same atom can appear with several images."""
    assert len(j_ours) == len(j_ref)
    a = np.lexsort((*np.round(v_ours, 8).T[::-1], j_ours))
    b = np.lexsort((*np.round(v_ref, 8).T[::-1], j_ref))
    np.testing.assert_array_equal(j_ours[a], j_ref[b])
    np.testing.assert_allclose(v_ours[a], v_ref[b], rtol=0, atol=1e-12)


@pytest.mark.parametrize("name, k", NEAREST)
def test_nearest_neighbors_equal_ovito(name, k):
    data = CASES[name][0]()
    ours = nb.nearest_neighbors(data, k)
    j_ref, v_ref = NearestNeighborFinder(k, data).find_all()
    n = data.particles.count
    np.testing.assert_array_equal(ours.offsets, np.arange(0, n * k + 1, k))
    j_ours, v_ours = ours.neighbors.reshape(n, k), ours.vectors.reshape(n, k, 3)
    d_ours, d_ref = np.linalg.norm(v_ours, axis=2), np.linalg.norm(v_ref, axis=2)
    assert (np.diff(d_ours, axis=1) >= -1e-12).all()  # sorted (the norm of +v and -v may differ in the last bit)
    np.testing.assert_allclose(d_ours, d_ref, rtol=0, atol=1e-12)
    for i in range(n):
        # which of several atoms tied at the k-th distance is kept is arbitrary
        inner = d_ref[i] < d_ref[i, -1] - 1e-9
        assert_same_bonds(j_ours[i, inner], v_ours[i, inner], j_ref[i, inner], v_ref[i, inner])
        # where the distances are distinct, the ordered lists are equal
        gaps = np.diff(d_ref[i]) > 1e-9
        distinct = np.concatenate([[True], gaps]) & np.concatenate([gaps, [True]]) & inner
        np.testing.assert_array_equal(j_ours[i, distinct], j_ref[i, distinct])


@pytest.mark.parametrize("name, cutoff", CUTOFF)
def test_cutoff_neighbors_equal_ovito(name, cutoff):
    data = CASES[name][0]()
    ours = nb.cutoff_neighbors(data, cutoff)
    pairs, v_ref = CutoffNeighborFinder(cutoff, data).find_all(sort_by="index")
    n = data.particles.count
    assert ours.offsets[-1] == len(pairs) > 0
    np.testing.assert_array_equal(ours.counts, np.bincount(pairs[:, 0], minlength=n))
    start = 0
    for i in range(n):
        rows = slice(ours.offsets[i], ours.offsets[i + 1])
        ref = slice(start, start + ours.counts[i])
        assert_same_bonds(ours.neighbors[rows], ours.vectors[rows], pairs[ref, 1], v_ref[ref])
        start += ours.counts[i]


def test_small_cells_have_periodic_self_images():
    data = small_cell(1, 1.0)
    assert (nb.nearest_neighbors(data, 12).neighbors == 0).all()
    assert nb.cutoff_neighbors(data, 2.5).counts[0] > 26


def test_atoms_at_the_same_position():
    # OVITO's nearest-neighbour finder skips a partner at distance zero, its cutoff finder does not
    data = make_data([[1.0, 1.0, 1.0], [1.0, 1.0, 1.0], [2.0, 1.0, 1.0], [1.0, 2.5, 1.0]], np.eye(3) * 10,
                     pbc=(False, False, False))
    np.testing.assert_array_equal(nb.nearest_neighbors(data, 2).neighbors.reshape(4, 2)[:2, 0],
                                  NearestNeighborFinder(2, data).find_all()[0][:2, 0])
    pairs, _ = CutoffNeighborFinder(1.2, data).find_all(sort_by="index")
    ours = nb.cutoff_neighbors(data, 1.2)
    assert sorted(zip(np.repeat(np.arange(4), ours.counts), ours.neighbors)) == sorted(map(tuple, pairs.tolist()))


def test_fallback_to_ovito_finders(monkeypatch):
    data = triclinic()
    monkeypatch.setattr(_backend, "COMPILED", False)
    j_ref, v_ref = NearestNeighborFinder(12, data).find_all()
    np.testing.assert_array_equal(nb.nearest_neighbors(data, 12).neighbors, j_ref.reshape(-1))
    assert nb.cutoff_neighbors(data, 3.2).offsets[-1] == len(CutoffNeighborFinder(3.2, data).find_all()[0])


def test_2d_cell_uses_ovito_finders():
    rng = np.random.default_rng(0)
    data = make_data(np.column_stack([rng.uniform(0, 10, (100, 2)), np.zeros(100)]), np.diag([10.0, 10.0, 1.0]),
                     pbc=(True, True, False))
    data.cell_.is2D = True
    j_ref, _ = NearestNeighborFinder(6, data).find_all()
    np.testing.assert_array_equal(nb.nearest_neighbors(data, 6).neighbors, j_ref.reshape(-1))
    assert nb.cutoff_neighbors(data, 2.0).offsets[-1] == len(CutoffNeighborFinder(2.0, data).find_all()[0])


@pytest.mark.parametrize("call, message", [
    (lambda d: nb.nearest_neighbors(d, 0), "at least 1"),
    (lambda d: nb.cutoff_neighbors(d, 0.0), "must be positive"),
    (lambda d: nb.cutoff_neighbors(d, float("nan")), "must be positive"),
    (lambda d: nb.nearest_neighbors(make_data(np.eye(3), np.eye(3) * 5, pbc=(False,) * 3), 3), "fewer than 3"),
])
def test_bad_input_is_a_clear_error(call, message):
    with pytest.raises(nb.InputError, match=message):
        call(triclinic())
