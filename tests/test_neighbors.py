"""The cell-list neighbour search against OVITO's NearestNeighborFinder and CutoffNeighborFinder."""
import numpy as np
import pytest
from ovito.data import CutoffNeighborFinder, NearestNeighborFinder

from conftest import crystal, make_data, triclinic
from ovito_mlclass import neighbors as nb
from ovito_mlclass import _compiled as _backend

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


def coincident_cases():
    """(name, data, index of the first atom at distance zero from another): a pair in an open box,
    50 atoms on one point of a periodic cell, and an atom on the periodic image of another."""
    pair = make_data([[1.0, 1.0, 1.0], [1.0, 1.0, 1.0], [2.0, 1.0, 1.0], [1.0, 2.5, 1.0]], np.eye(3) * 10,
                     pbc=(False, False, False))
    heap = make_data(np.vstack([np.random.default_rng(0).uniform(0, 10, (30, 3)), np.full((50, 3), 2.0)]),
                     np.eye(3) * 10)
    image = make_data([[5.0, 5.0, 5.0], [1.0, 2.0, 3.0], [9.0, 2.0, 3.0]], np.eye(3) * 8)  # 9 = 1 + 8
    return {"pair": (pair, 0), "50 on one point": (heap, 30), "periodic image": (image, 1)}


@pytest.mark.parametrize("compiled", [True, False], ids=["compiled", "OVITO's finders"])
@pytest.mark.parametrize("name", ["pair", "50 on one point", "periodic image"])
def test_atoms_at_the_same_position_are_refused_by_every_search(name, compiled, monkeypatch):
    data, first = coincident_cases()[name]
    pairs, vectors = CutoffNeighborFinder(1.0, data).find_all()  # OVITO: a pair at distance zero exists ...
    assert (np.linalg.norm(vectors, axis=1) < 1e-12).any()
    monkeypatch.setattr(_backend, "COMPILED", compiled)
    message = rf"particle\(s\) have another particle at distance zero \(the first: particle {first} .*same position"
    for search in (lambda d: nb.nearest_neighbors(d, 2), lambda d: nb.cutoff_neighbors(d, 1.5)):  # ... and is refused
        with pytest.raises(nb.InputError, match=message):
            search(data)
    if all(data.cell.pbc):
        with pytest.raises(nb.InputError, match=message):
            nb.voronoi_neighbors(data)


def test_fallback_to_ovito_finders(monkeypatch):
    data = triclinic()
    monkeypatch.setattr(_backend, "COMPILED", False)
    j_ref, v_ref = NearestNeighborFinder(12, data).find_all()
    np.testing.assert_array_equal(nb.nearest_neighbors(data, 12).neighbors, j_ref.reshape(-1))
    assert nb.cutoff_neighbors(data, 3.2).offsets[-1] == len(CutoffNeighborFinder(3.2, data).find_all()[0])


def test_2d_cells_equal_ovito_finders():
    """A 2D cell is not periodic along its third vector, which may span nothing; OVITO's finders
    use the full 3D vectors (atoms at several heights)."""
    rng = np.random.default_rng(0)
    positions = np.column_stack([rng.uniform(0, 10, (100, 2)), rng.uniform(-1.0, 1.0, 100)])
    for height in (1.0, 0.0):
        data = make_data(positions, np.diag([10.0, 10.0, height]), pbc=(True, True, True))
        data.cell_.is2D = True
        ours = nb.nearest_neighbors(data, 6)
        j_ref, v_ref = NearestNeighborFinder(6, data).find_all()
        np.testing.assert_allclose(np.linalg.norm(ours.vectors, axis=1), np.linalg.norm(v_ref, axis=2).ravel(),
                                   rtol=0, atol=1e-12)
        ours = nb.cutoff_neighbors(data, 2.0)
        pairs, v_ref = CutoffNeighborFinder(2.0, data).find_all(sort_by="index")
        centers = np.repeat(np.arange(100), ours.counts)
        assert_same_bonds(centers * 1000 + ours.neighbors, ours.vectors, pairs[:, 0] * 1000 + pairs[:, 1], v_ref)


def thin_cell(height):
    """One atom in a periodic 3 x 3 x height cell (height a power of 2, so that image distances are
    exact): its bonds within 3 are the 2 floor(3 / height) images along the thin axis and the 4 at
    distance 3 in the plane (OVITO's CutoffNeighborFinder refuses such a cell)."""
    return make_data([[0.5, 0.5, 0.0]], np.diag([3.0, 3.0, height]))


def test_thin_periodic_axes_give_every_image_or_a_clear_refusal():
    height = 2.0 ** -10
    ours = nb.cutoff_neighbors(thin_cell(height), 3.0)
    assert ours.offsets[-1] == 2 * 3072 + 4
    np.testing.assert_array_equal(np.sort(np.abs(ours.vectors[:, 2])),
                                  np.r_[np.zeros(4), np.repeat(np.arange(1, 3073), 2) * height])
    # the 12 nearest: the images at 1, 1, 2, 2, ... 6 heights
    np.testing.assert_array_equal(np.linalg.norm(nb.nearest_neighbors(thin_cell(2.0 ** -20), 12).vectors, axis=1),
                                  np.repeat(np.arange(1, 7), 2) * 2.0 ** -20)
    # 3 x 3 x 6,291,457 bins and images from the atom's bin: refused, the limit named (it was cut off at 10^6 images)
    with pytest.raises(nb.InputError, match=r"3.15e\+06 periodic images .* cell vector 3: 5.66e\+07 bins .* limit of 1e\+07"):
        nb.cutoff_neighbors(thin_cell(2.0 ** -20), 3.0)


def test_searches_beyond_the_memory_are_refused_before_they_start():
    positions = np.random.default_rng(1).uniform(0, 48.0, (10_000, 3))
    data = make_data(positions, np.eye(3) * 48.0)
    for cutoff in (1e3, 1e4):  # 3.8e12 bonds and more at the mean density: 1e5 GiB
        expected = 10_000 ** 2 / 48.0 ** 3 * 4 / 3 * np.pi * cutoff ** 3
        with pytest.raises(nb.InputError, match=rf"\(about {int(expected) // 1000}\d{{3}} bonds\) would need about "
                                                r".* GiB of memory, more than this machine has"):
            nb.cutoff_neighbors(data, cutoff)
    with pytest.raises(nb.InputError, match=r"\(10000 neighbours of 10000000 atoms\) would need about .* GiB of "
                                            r"memory, more than this machine has"):
        nb.nearest_neighbors(nb.Structure(np.zeros((10**7, 3)), np.eye(3, 4), (True,) * 3), 10_000)  # 3 TB


@pytest.mark.parametrize("call, message", [
    (lambda d: nb.nearest_neighbors(d, 0), r"must be in 1\.\.10000, got 0"),
    (lambda d: nb.nearest_neighbors(d, 10**7), r"must be in 1\.\.10000, got 10000000"),
    (lambda d: nb.cutoff_neighbors(d, 0.0), "must be positive"),
    (lambda d: nb.cutoff_neighbors(d, float("nan")), "must be positive"),
    (lambda d: nb.nearest_neighbors(make_data(np.eye(3), np.eye(3) * 5, pbc=(False,) * 3), 3), "fewer than 3"),
])
def test_bad_input_is_a_clear_error(call, message):
    with pytest.raises(nb.InputError, match=message):
        call(triclinic())


def test_ovito_fallbacks_refuse_to_run_in_a_worker_thread(monkeypatch):
    """OVITO's Python API crashes outside the thread that imported it: the searches that use OVITO's
    finders (no compiled kernel) say so instead."""
    import threading

    monkeypatch.setattr(_backend, "COMPILED", False)
    structure = nb.Structure.of(triclinic())
    caught = []
    worker = threading.Thread(target=lambda: caught.append(pytest.raises(RuntimeError, nb.nearest_neighbors,
                                                                         structure, 12)))
    worker.start()
    worker.join()
    assert "thread that imported it" in str(caught[0].value)
    assert nb.nearest_neighbors(structure, 12).n_atoms == structure.count  # here: fine
