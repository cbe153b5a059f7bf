"""Steinhardt invariants against OVITO, exact 3j sums, published values and the numba reference."""
import numpy as np
import pytest
from ovito.modifiers import SteinhardtParametersModifier as OvitoSteinhardt
from scipy.special import sph_harm_y
from sympy.physics.wigner import wigner_3j
from traits.api import TraitError

from conftest import crystal, icosahedron, make_data, lattice, transformed_copies, triclinic, BCC_BASIS
from ovito_mlclass import SteinhardtModifier, neighbors as nb
from ovito_mlclass.descriptors import Steinhardt, reference
from ovito_mlclass._compiled import kernels
from ovito_mlclass.descriptors.wigner import coupling_table

DEGREES = tuple(range(2, 13))
MODES = {
    # our modifier keywords, OVITO's keywords, neighbour list builder
    "nearest": (dict(neighbors=12), dict(neighbor_mode=OvitoSteinhardt.NeighborMode.NearestNeighbors, num_neighbors=12),
                lambda d: nb.nearest_neighbors(d, 12)),
    "cutoff": (dict(cutoff=0.85), dict(neighbor_mode=OvitoSteinhardt.NeighborMode.Cutoff, cutoff=0.85),
               lambda d: nb.cutoff_neighbors(d, 0.85)),
    "voronoi": (dict(neighbor_mode="voronoi"), dict(neighbor_mode=OvitoSteinhardt.NeighborMode.Voronoi),
                nb.voronoi_neighbors),
}


def ours(data, **params):
    data = data.clone()
    data.apply(SteinhardtModifier(degrees=DEGREES, **params))
    prop = data.particles["Steinhardt Descriptors"]
    return np.asarray(prop), list(prop.component_names)


def ovito(data, **params):
    data = data.clone()
    data.apply(OvitoSteinhardt(max_l=12, compute_averaged=True, **params))
    return np.asarray(data.particles["Steinhardt"]), np.asarray(data.particles["Smooth Steinhardt"])


def columns(names, prefix):
    return [names.index(f"{prefix}{l}") for l in DEGREES]


@pytest.mark.parametrize("mode", MODES)
def test_ql_and_qbar_equal_ovito(hot_crystal, mode):
    mine, names = ours(hot_crystal, **MODES[mode][0])
    q, qbar = ovito(hot_crystal, **MODES[mode][1])
    np.testing.assert_allclose(mine[:, columns(names, "q")], q, rtol=0, atol=1e-10)
    np.testing.assert_allclose(mine[:, columns(names, "qbar")], qbar, rtol=0, atol=1e-10)


@pytest.mark.parametrize("mode", MODES)
def test_triclinic_cell_equals_ovito(mode):
    data = triclinic()
    params, ovito_params = MODES[mode][0], MODES[mode][1]
    if mode == "cutoff":  # the sheared cell has its first shell near 2.8-3.1
        params, ovito_params = dict(cutoff=3.2), dict(ovito_params, cutoff=3.2)
        assert nb.cutoff_neighbors(data, 3.2).counts.min() >= 6
    mine, names = ours(data, **params)
    q, qbar = ovito(data, **ovito_params)
    assert q.min() > 0
    np.testing.assert_allclose(mine[:, columns(names, "q")], q, rtol=0, atol=1e-10)
    np.testing.assert_allclose(mine[:, columns(names, "qbar")], qbar, rtol=0, atol=1e-10)


def test_cell_smaller_than_cutoff_uses_periodic_images():
    """A 2x2x2 fcc cell (edge 2) with cutoff 1.2 > half the edge: images are neighbours, as in OVITO."""
    data = crystal("fcc", repeat=2, sigma=0.03, seed=1)
    assert nb.cutoff_neighbors(data, 1.2).counts.min() >= 18  # 12 + 6 second neighbours, images included
    mine, names = ours(data, cutoff=1.2)
    q, qbar = ovito(data, neighbor_mode=OvitoSteinhardt.NeighborMode.Cutoff, cutoff=1.2)
    np.testing.assert_allclose(mine[:, columns(names, "q")], q, rtol=0, atol=1e-10)
    np.testing.assert_allclose(mine[:, columns(names, "qbar")], qbar, rtol=0, atol=1e-10)


def test_only_selected_equals_ovito():
    data = crystal("bcc", repeat=4, sigma=0.05, seed=2)
    selection = np.random.default_rng(0).random(data.particles.count) < 0.6
    data.particles_.create_property("Selection", data=selection.astype(int))
    mine, names = ours(data, neighbors=8, only_selected=True)
    q, qbar = ovito(data, neighbor_mode=OvitoSteinhardt.NeighborMode.NearestNeighbors, num_neighbors=8,
                    only_selected=True)
    np.testing.assert_allclose(mine[:, columns(names, "q")], q, rtol=0, atol=1e-10)
    np.testing.assert_allclose(mine[:, columns(names, "qbar")], qbar, rtol=0, atol=1e-10)
    assert (mine[~selection] == 0).all()


def independent_wl(neighbor_list, l):
    """w^_l in plain double precision: scipy's Y_lm and sympy's exact 3j symbols, full double sum."""
    n = neighbor_list.n_atoms
    v = neighbor_list.vectors
    r = np.linalg.norm(v, axis=1)
    theta, phi = np.arccos(v[:, 2] / r), np.arctan2(v[:, 1], v[:, 0])
    centers = np.repeat(np.arange(n), neighbor_list.counts)
    qlm = np.zeros((n, 2 * l + 1), dtype=complex)
    for m in range(-l, l + 1):
        np.add.at(qlm[:, m + l], centers, sph_harm_y(l, m, theta, phi))
    qlm /= neighbor_list.counts[:, None]
    total = np.zeros(n)
    for m1 in range(-l, l + 1):
        for m2 in range(-l, l + 1):
            m3 = -m1 - m2
            if abs(m3) <= l:
                total += float(wigner_3j(l, l, l, m1, m2, m3)) * (qlm[:, m1 + l] * qlm[:, m2 + l] * qlm[:, m3 + l]).real
    return total / (np.abs(qlm) ** 2).sum(axis=1) ** 1.5


@pytest.mark.parametrize("l", [4, 6, 8, 10])
def test_wl_equals_independent_double_precision_sum(hot_crystal, l):
    neighbor_list = nb.nearest_neighbors(hot_crystal, 12)
    values = Steinhardt(degrees=(l,), averaged=False, wl=True).compute(neighbor_list)
    np.testing.assert_allclose(values[:, 1], independent_wl(neighbor_list, l), rtol=0, atol=1e-10)


def test_wl_agrees_with_freud_single_precision():
    freud = pytest.importorskip("freud")
    data = crystal("fcc", repeat=4, sigma=0.05, seed=4)
    values = Steinhardt(degrees=(4, 6), averaged=False, wl=True).compute(nb.nearest_neighbors(data, 12))
    box = freud.box.Box.from_matrix(np.asarray(data.cell)[:, :3])
    points = np.asarray(data.particles.positions) - np.asarray(data.cell)[:, :3].sum(axis=1) / 2
    for column, l in [(2, 4), (3, 6)]:
        st = freud.order.Steinhardt(l, wl=True, wl_normalize=True)
        st.compute((box, points), neighbors={"num_neighbors": 12, "exclude_ii": True})
        np.testing.assert_allclose(values[:, column], st.particle_order, atol=2e-4)


# Steinhardt, Nelson & Ronchetti, Phys. Rev. B 28, 784 (1983), Table I (q_l, w^_l); bcc with
# Voronoi weights: Mickel et al., J. Chem. Phys. 138, 044501 (2013).
PUBLISHED = [
    ("fcc", 12, (0.19094, 0.57452, -0.159317, -0.013161)),
    ("hcp", 12, (0.09722, 0.48476, 0.134097, -0.012442)),
    ("bcc", 8, (0.50918, 0.62854, -0.159317, 0.013161)),
    ("bcc", 14, (0.03637, 0.51069, 0.159317, 0.013161)),
]


@pytest.mark.parametrize("kind,neighbors,expected", PUBLISHED)
def test_ideal_lattices_give_published_values(kind, neighbors, expected):
    data = crystal(kind, repeat=3)
    values = Steinhardt(degrees=(4, 6), averaged=True, wl=True).compute(nb.nearest_neighbors(data, neighbors))
    for block in (values[:, :4], values[:, 4:]):  # averaging leaves a perfect crystal unchanged
        np.testing.assert_allclose(block, np.broadcast_to(expected, block.shape), atol=6e-6)


def test_bcc_voronoi_weighted_published_values():
    values = Steinhardt(degrees=(4, 6), averaged=False, wl=False).compute(nb.voronoi_neighbors(crystal("bcc", 3)))
    np.testing.assert_allclose(values, np.broadcast_to((0.22403, 0.56694), values.shape), atol=6e-6)


def test_icosahedron_published_values():
    values = Steinhardt(degrees=(4, 6), averaged=False, wl=True).compute(nb.nearest_neighbors(icosahedron(), 12))
    q4, q6, _, w6 = values[0]
    assert abs(q4) < 1e-12
    assert q6 == pytest.approx(0.66332, abs=6e-6)
    assert w6 == pytest.approx(-0.169754, abs=6e-7)


@pytest.mark.parametrize("mode", MODES)
def test_invariant_under_rotation_translation_permutation_and_image(mode):
    data = crystal("hcp", repeat=4, sigma=0.05, seed=5)
    reference_values, _ = ours(data, **MODES[mode][0])
    for name, copy, index in transformed_copies(data):
        values, _ = ours(copy, **MODES[mode][0])
        np.testing.assert_allclose(values, reference_values[index], atol=1e-10, err_msg=name)


@pytest.mark.parametrize("mode", MODES)
def test_compiled_kernel_equals_numba_reference(mode, hot_crystal):
    neighbor_list = MODES[mode][2](hot_crystal)
    spec = Steinhardt(degrees=(2, 3, 4, 6, 8, 10, 12, 16), averaged=True, wl=True)
    start, m, coeff = coupling_table(spec.degrees)
    expected = np.empty((neighbor_list.n_atoms, len(spec.feature_names)))
    reference.steinhardt(neighbor_list.offsets, neighbor_list.neighbors, neighbor_list.vectors, neighbor_list.weights,
                         None, np.array(spec.degrees), True, True, start, m, coeff, 0, expected)
    np.testing.assert_allclose(spec.compute(neighbor_list), expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize("mode", MODES)
def test_even_degrees_alone_equal_the_numba_reference(mode, hot_crystal):
    # even degrees alone take the kernel's recurrence in steps of two (in z^2); the reference steps by one
    neighbor_list = MODES[mode][2](hot_crystal)
    spec = Steinhardt(degrees=(0, 2, 4, 6, 8, 10, 12, 14, 16), averaged=True, wl=True)
    start, m, coeff = coupling_table(spec.degrees)
    expected = np.empty((neighbor_list.n_atoms, len(spec.feature_names)))
    reference.steinhardt(neighbor_list.offsets, neighbor_list.neighbors, neighbor_list.vectors, neighbor_list.weights,
                         None, np.array(spec.degrees), True, True, start, m, coeff, 0, expected)
    np.testing.assert_allclose(spec.compute(neighbor_list), expected, rtol=0, atol=1e-12)


def test_even_degrees_alone_at_the_poles_and_the_equator():
    # bonds along z (sin theta = 0) and in the xy plane (z = 0, where the odd columns' factor z vanishes)
    vectors = np.array([[0, 0, 1], [0, 0, -1], [1, 0, 0], [0, 1, 0], [-1, 0, 0], [0.6, -0.8, 0], [0, 0, 2.5]], float)
    neighbor_list = nb.NeighborList(np.array([0, len(vectors)]), np.zeros(len(vectors), np.int64), vectors, None)
    degrees = (2, 4, 6, 8, 10, 12, 14, 16)
    even = Steinhardt(degrees=degrees, averaged=False, wl=True).compute(neighbor_list)[0]
    q_lm = {l: sph_harm_y(l, np.arange(-l, l + 1)[:, None], np.arccos(vectors[:, 2] / np.linalg.norm(vectors, axis=1)),
                          np.arctan2(vectors[:, 1], vectors[:, 0])).mean(axis=1) for l in degrees}
    expected_q = [np.sqrt(4 * np.pi / (2 * l + 1) * np.sum(np.abs(q_lm[l]) ** 2)) for l in degrees]
    np.testing.assert_allclose(even[:len(degrees)], expected_q, rtol=0, atol=1e-13)


@pytest.mark.parametrize("structure", ["fcc", "cluster"])
@pytest.mark.parametrize("k", [1, 4, 12])
def test_the_first_k_bonds_of_a_longer_list_equal_the_k_nearest(structure, k):
    """``first = k`` on a 16-nearest list (rows sorted by distance) equals a list of the k nearest
    of its own, bit for bit (compiled) and against the numba reference. The cluster is the 14
    atoms of an fcc cube with its face centres: every 16-nearest row ends in 3 missing
    neighbours (-1), beyond the first k, and taking all 16 is refused."""
    if structure == "fcc":
        data = _structures()["fcc"]
    else:
        corners = np.array([[x, y, z] for x in (0, 1) for y in (0, 1) for z in (0, 1)], float)
        faces = np.array([[0.5, 0.5, 0], [0.5, 0.5, 1], [0.5, 0, 0.5], [0.5, 1, 0.5], [0, 0.5, 0.5], [1, 0.5, 0.5]])
        positions = np.vstack([corners, faces]) * 3.6 + np.random.default_rng(3).normal(0, 0.05, (14, 3)) + 10
        data = make_data(positions, np.eye(3) * 30, pbc=(False,) * 3)
    longer = nb.nearest_neighbors(data, 16, allow_missing=True)
    rows = longer.neighbors.reshape(-1, 16)
    assert (rows[:, :k] >= 0).all() and ((rows < 0).sum() == 3 * 14 if structure == "cluster" else True)
    own = nb.nearest_neighbors(data, k)
    np.testing.assert_array_equal(own.neighbors.reshape(-1, k), rows[:, :k])
    spec = Steinhardt(degrees=(2, 3, 4, 6, 12), averaged=True, wl=True)
    np.testing.assert_array_equal(spec.compute(longer, first=k), spec.compute(own))
    start, m, coeff = coupling_table(spec.degrees)
    expected = np.empty((own.n_atoms, len(spec.feature_names)))
    reference.steinhardt(longer.offsets, longer.neighbors, longer.vectors, None, None, np.array(spec.degrees), True,
                         True, start, m, coeff, 0, expected, k)
    np.testing.assert_allclose(spec.compute(own), expected, rtol=0, atol=1e-12)
    if structure == "cluster":
        with pytest.raises(ValueError, match="neighbour index out of range"):
            spec.compute(longer, first=16)


@pytest.mark.parametrize("structure", ["fcc", "slab", "cluster"])
@pytest.mark.parametrize("averaged", [False, True])
@pytest.mark.parametrize("cache_bytes", [1, 10**9])
def test_shells_together_equal_each_on_its_own(structure, averaged, cache_bytes):
    """Several shells of one 16-nearest list in one pass of the kernel (the 12 nearest with l up to
    12, the 4 nearest with w_l, all 16 with weights of their own degrees) equal each shell computed
    alone, bit for bit, and the numba reference; the open cluster's rows end in missing neighbours,
    so a shell may count fewer bonds than it names."""
    from ovito_mlclass.descriptors.steinhardt import compute_together

    longer = _sixteen_nearest(structure)
    shells = [(Steinhardt(degrees=(4, 6, 8, 10, 12), averaged=averaged, wl=False), 12),
              (Steinhardt(degrees=(3, 4, 6), averaged=averaged, wl=True), 4),
              (Steinhardt(degrees=(2, 6), averaged=averaged, wl=True), None)]
    import ovito_mlclass.descriptors.steinhardt as module
    saved, module.CACHE_BYTES = module.CACHE_BYTES, cache_bytes
    try:
        together = compute_together(longer, [(recipe, first, None) for recipe, first in shells])
        alone = [recipe.compute(longer, first=first) for recipe, first in shells]
    finally:
        module.CACHE_BYTES = saved
    for (recipe, first), mine, own in zip(shells, together, alone):
        np.testing.assert_array_equal(mine, own)
        start, m, coeff = coupling_table(recipe.degrees)
        expected = np.empty_like(own)
        reference.steinhardt(longer.offsets, longer.neighbors, longer.vectors, None, None, np.array(recipe.degrees),
                             recipe.wl, averaged, start, m, coeff, 0, expected, -1 if first is None else first)
        np.testing.assert_allclose(mine, expected, rtol=0, atol=1e-12)
    with pytest.raises(ValueError, match="averaged or none"):
        compute_together(longer, [(shells[0][0], 12, None), (Steinhardt(degrees=(4,), averaged=not averaged), 4, None)])


@pytest.mark.parametrize("structure", ["fcc", "triclinic", "slab", "cluster"])
@pytest.mark.parametrize("averaged", [False, True])
@pytest.mark.parametrize("cache_bytes", [1, 10**9])
def test_single_precision_equals_the_numba_reference_to_float_rounding(structure, averaged, cache_bytes):
    """The sums and averages in float32 (what the classifier's network takes) for shells of odd
    and even degrees up to 16, with w_l, in every tiling: the numba reference (double) to float
    rounding: q_l to 1e-5 relative, w^_l (a sum with cancellations, |w^_l| <= 0.2 here) to 1e-5."""
    from ovito_mlclass.descriptors.steinhardt import compute_together

    longer = _sixteen_nearest(structure)
    shells = [(Steinhardt(degrees=(4, 6, 8, 10, 12), averaged=averaged, wl=False), 12),
              (Steinhardt(degrees=(3, 4, 6), averaged=averaged, wl=True), 4),
              (Steinhardt(degrees=(2, 5, 9, 16), averaged=averaged, wl=True), None)]
    import ovito_mlclass.descriptors.steinhardt as module
    saved, module.CACHE_BYTES = module.CACHE_BYTES, cache_bytes
    try:
        single = compute_together(longer, [(recipe, first, None) for recipe, first in shells], single_precision=True)
    finally:
        module.CACHE_BYTES = saved
    for (recipe, first), mine in zip(shells, single):
        start, m, coeff = coupling_table(recipe.degrees)
        expected = np.empty_like(mine)
        reference.steinhardt(longer.offsets, longer.neighbors, longer.vectors, None, None, np.array(recipe.degrees),
                             recipe.wl, averaged, start, m, coeff, 0, expected, -1 if first is None else first)
        names = recipe.feature_names
        is_w = np.array([name.startswith(("w", "wbar")) for name in names])
        assert mine.dtype == np.float64 and not np.array_equal(mine, expected)  # float rounding, not the double path
        np.testing.assert_allclose(mine[:, ~is_w], expected[:, ~is_w], rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(mine[:, is_w], expected[:, is_w], rtol=0, atol=1e-5)


def test_single_precision_on_two_threads_equals_one_thread():
    """Each atom's row is summed by one thread in a fixed order: the same bits at 1 and 2 threads
    (fresh interpreters, so that a crash fails the test)."""
    code = """if True:
        import hashlib, numpy as np, sys
        sys.path.insert(0, {tests!r})
        from conftest import crystal
        from ovito_mlclass import neighbors as nb
        from ovito_mlclass.descriptors import Steinhardt
        from ovito_mlclass.descriptors.steinhardt import compute_together
        data = crystal("bcc", 9, 0.08)
        longer = nb.nearest_neighbors(data, 16)
        out = compute_together(longer, [(Steinhardt(degrees=(4, 6, 8, 10, 12), wl=False), 12, None),
                                        (Steinhardt(degrees=(3, 4, 6), wl=True), 4, None)], single_precision=True)
        sys.stdout.write(hashlib.sha256(b"".join(o.tobytes() for o in out)).hexdigest())"""
    import os
    from pathlib import Path
    from conftest import run_python

    code = code.format(tests=str(Path(__file__).parent))
    runs = [run_python(code, env={**os.environ, "OMP_NUM_THREADS": str(t)}) for t in (1, 2)]
    for done in runs:
        assert done.returncode == 0, done.stderr
    assert runs[0].stdout == runs[1].stdout and len(runs[0].stdout) == 64


def _sixteen_nearest(structure):
    """The 16 nearest of every atom of one of :func:`_structures`; the open cluster's rows keep only
    the neighbours present (a CSR list of their own, shorter than 16)."""
    longer = nb.nearest_neighbors(_structures()[structure], 16, allow_missing=True)
    if structure != "cluster":
        return longer
    keep = longer.neighbors >= 0
    counts = keep.reshape(-1, 16).sum(axis=1)
    return nb.NeighborList(np.concatenate([[0], np.cumsum(counts)]).astype(np.int64), longer.neighbors[keep],
                           longer.vectors[keep], bins=longer.bins)


def _structures():
    """Periodic fcc, a sheared cell, a slab (periodic in x and y) and an open cluster, each with
    thermal disorder."""
    fcc = crystal("fcc", 5, 0.05)
    slab = crystal("fcc", 4, 0.05)
    slab.cell_.pbc = (True, True, False)
    cluster = crystal("fcc", 3, 0.05)
    cluster.cell_.pbc = (False, False, False)
    return {"fcc": fcc, "triclinic": triclinic(), "slab": slab, "cluster": cluster}


@pytest.mark.parametrize("structure", ["fcc", "triclinic", "slab", "cluster"])
@pytest.mark.parametrize("bins", ["none", "search", "fine", "coarse", "shuffled"])
@pytest.mark.parametrize("cache_bytes", [1, 10**9])
def test_bins_and_cache_size_change_nothing(structure, bins, cache_bytes):
    """The neighbour average sweeps pencils of bins, keeps q_lm of the planes in reach and
    recomputes neighbours out of reach: bins of any width (fine ones put neighbours beyond the
    adjacent bins), bins that do not match the positions at all, tiles of one bin (cache_bytes=1)
    or of the whole cell, all give the numba reference."""
    data = _structures()[structure]
    neighbor_list = nb.nearest_neighbors(data, 12)
    search_bins = neighbor_list.bins.as_tuple()
    shuffled = (np.random.default_rng(7).permutation(neighbor_list.n_atoms),) + search_bins[1:]
    chosen = {"none": None, "search": search_bins,
              "fine": nb.spatial_bins(data, 0.0).as_tuple(), "coarse": nb.spatial_bins(data, 6.0).as_tuple(),
              "shuffled": shuffled}[bins]
    degrees = np.arange(2, 13, dtype=np.int32)
    start, m, coeff = coupling_table(degrees)
    expected = np.empty((neighbor_list.n_atoms, 44))
    reference.steinhardt(neighbor_list.offsets, neighbor_list.neighbors, neighbor_list.vectors, None, None, degrees,
                         True, True, start, m, coeff, 0, expected)
    out = np.empty_like(expected)
    kernels.steinhardt(neighbor_list.offsets, neighbor_list.neighbors, neighbor_list.vectors, None, chosen,
                       degrees, True, True, start, m, coeff, cache_bytes, out)
    np.testing.assert_allclose(out, expected, rtol=0, atol=1e-12)


def test_bins_must_hold_every_atom_once():
    neighbor_list = nb.nearest_neighbors(crystal("fcc", 2, 0.05), 12)
    degrees = np.array([4, 6], dtype=np.int32)
    start, m, coeff = coupling_table(degrees)
    out = np.empty((neighbor_list.n_atoms, 8))
    order, first, shape, periodic = neighbor_list.bins.as_tuple()
    bad = {"permutation": (np.zeros_like(order), first, shape, periodic),
           "start": (order, first[:-1], shape, periodic),
           "positive": (order, first, (0, 1, 1), periodic)}
    for message, bins in bad.items():
        with pytest.raises(ValueError, match=message):
            kernels.steinhardt(neighbor_list.offsets, neighbor_list.neighbors, neighbor_list.vectors, None, bins,
                               degrees, True, True, start, m, coeff, 10**6, out)


def test_same_species_only_gives_simple_cubic_sublattice():
    """In CsCl (B2) the same-species neighbours within 1.1 a form a simple cubic lattice:
    q4 = 0.76376, q6 = 0.35355 (Steinhardt et al. 1983), for both species."""
    positions, cell = lattice(BCC_BASIS, np.eye(3), 4)
    species = np.tile([0, 1], len(positions) // 2)
    data = make_data(positions, cell, types=species, type_names=["Cs", "Cl"])
    data.apply(SteinhardtModifier(degrees=(4, 6), cutoff=1.1, same_species_only=True, wl=False))
    values = np.asarray(data.particles["Steinhardt Descriptors (same species)"])
    np.testing.assert_allclose(values, np.broadcast_to((0.76376, 0.35355, 0.76376, 0.35355), values.shape),
                               atol=6e-6)


def test_atoms_without_neighbours_get_zero_like_ovito():
    data = make_data([[1, 1, 1], [1.5, 1, 1], [8, 8, 8]], np.eye(3) * 10, pbc=(False,) * 3)
    mine, _ = ours(data, cutoff=1.0)
    q, qbar = ovito(data, neighbor_mode=OvitoSteinhardt.NeighborMode.Cutoff, cutoff=1.0)
    assert (mine[2] == 0).all() and (q[2] == 0).all()
    assert (mine[:2, 0] > 0).all()


@pytest.mark.parametrize("averaged", [False, True])
def test_zero_length_bonds_are_counted_once(averaged):
    """Bonds of zero length (two atoms at one position) are an error that names how many there
    are, whatever the kernel recomputed along the way (halo rows, neighbours out of reach)."""
    neighbor_list = nb.nearest_neighbors(crystal("fcc", 4, 0.05), 12)
    vectors = neighbor_list.vectors.copy()
    vectors[[5, 700]] = 0.0
    broken = nb.NeighborList(neighbor_list.offsets, neighbor_list.neighbors, vectors, bins=neighbor_list.bins)
    degrees = np.array([4, 6], dtype=np.int32)
    start, m, coeff = coupling_table(degrees)
    out = np.empty((neighbor_list.n_atoms, 8 if averaged else 4))
    with pytest.raises(ValueError, match=r"^2 neighbour vector\(s\) of zero length"):
        kernels.steinhardt(broken.offsets, broken.neighbors, broken.vectors, None, broken.bins.as_tuple(), degrees,
                           True, averaged, start, m, coeff, 1, out)


@pytest.mark.parametrize("value", [(4.7,), (40,), (-1,), (4, 4), "4.7", "4 17", "six"])
def test_degrees_are_integers_in_0_to_16_checked_when_set(value):
    modifier = SteinhardtModifier(degrees=(4, 6))
    with pytest.raises(TraitError, match=r"integers in 0\.\.16 without repeats"):
        modifier.degrees = value
    assert modifier.degrees == "4 6"  # nothing coerced
    if not isinstance(value, str):
        with pytest.raises(ValueError, match=r"integers in 0\.\.16|must not repeat"):
            Steinhardt(degrees=value)


@pytest.mark.parametrize("name, value, message", [
    ("neighbors", 0, "an integer in 1..10000"), ("neighbors", 10_001, "an integer in 1..10000"),
    ("neighbors", 2.5, "an integer in 1..10000"),
    ("cutoff", 0.0, "a finite number > 0"), ("cutoff", -1.0, "a finite number > 0"),
    ("cutoff", float("nan"), "a finite number > 0"), ("cutoff", float("inf"), "a finite number > 0"),
])
def test_neighbour_counts_and_cutoffs_are_checked_when_set(name, value, message):
    with pytest.raises(TraitError, match=f"'{name}' trait .* must be {message}"):
        SteinhardtModifier(**{name: value})
    modifier = SteinhardtModifier(neighbors=8)
    with pytest.raises(TraitError, match=message):
        setattr(modifier, name, value)


def test_same_species_only_equals_ovito_on_each_species_alone():
    """Same-species bonds only: each species as OVITO sees it with the others deselected; the last
    atom, far above a slab, has no bonds at all (q = 0)."""
    data = crystal("fcc", 3, sigma=0.04, seed=6)
    n = data.particles.count
    positions = np.asarray(data.particles.positions).copy()
    positions[-1, 2] += 10.0
    species = np.where(np.arange(n) % 3 == 0, 1, 0)
    typed = make_data(positions, np.asarray(data.cell)[:, :3].T, pbc=(True, True, False), types=species,
                      type_names=["A", "B"])
    work = typed.clone()
    work.apply(SteinhardtModifier(degrees=DEGREES, cutoff=0.75, same_species_only=True))
    prop = work.particles["Steinhardt Descriptors (same species)"]
    mine, names = np.asarray(prop), list(prop.component_names)
    for s in (0, 1):
        alone = typed.clone()
        alone.particles_.create_property("Selection", data=(species == s).astype(int))
        q, qbar = ovito(alone, neighbor_mode=OvitoSteinhardt.NeighborMode.Cutoff, cutoff=0.75, only_selected=True)
        np.testing.assert_allclose(mine[species == s][:, columns(names, "q")], q[species == s], rtol=0, atol=1e-10)
        np.testing.assert_allclose(mine[species == s][:, columns(names, "qbar")], qbar[species == s], rtol=0, atol=1e-10)
    assert (mine[-1] == 0).all()
