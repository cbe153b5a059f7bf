"""Lattice orientations (ovito_mlclass.orientation) against OVITO's PTM, closed forms and brute force."""
import itertools
import os
import subprocess
import sys

import numpy as np
import pytest
from ovito.modifiers import PolyhedralTemplateMatchingModifier
from scipy.spatial.transform import Rotation

from conftest import make_data
from ovito_mlclass.neighbors import InputError
from ovito_mlclass.orientation import disorientation, orientations, symmetry_group

FCC_BASIS = np.array([[0, 0, 0], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]])
# one cell of each lattice with OVITO's reference orientation (cube axes; hexagonal: a1 along x, c along z)
HCP_BASIS = np.array([[0, 0, 0], [0.5, 0.5, 0], [0.5, 5 / 6, 0.5], [0, 1 / 3, 0.5]])
HEX_CELL = np.array([1.0, np.sqrt(3), np.sqrt(8 / 3)])
LATTICES = {  # name: (OVITO structure type id, basis in fractions of the orthogonal cell, cell edges)
    "FCC": (1, FCC_BASIS, np.ones(3)),
    "HCP": (2, HCP_BASIS, HEX_CELL),
    "BCC": (3, np.array([[0, 0, 0], [0.5, 0.5, 0.5]]), np.ones(3)),
    "SC": (5, np.zeros((1, 3)), np.ones(3)),
    "Cubic diamond": (6, np.vstack([FCC_BASIS, FCC_BASIS + 0.25]), np.ones(3)),
    "Hexagonal diamond": (7, np.vstack([HCP_BASIS, HCP_BASIS + [0, 0, 3 / 8]]), HEX_CELL),
}


def build(name, reps=4, scale=3.3, sigma=0.0, rotation=np.eye(3), seed=0):
    """The lattice (``sigma``: Gaussian displacements in units of the lattice constant), turned by
    ``rotation`` with its cell, as a DataCollection."""
    _, basis, edges = LATTICES[name]
    grid = np.stack(np.meshgrid(*[np.arange(reps)] * 3, indexing="ij"), -1).reshape(-1, 1, 3)
    positions = (grid + basis[None]).reshape(-1, 3) * edges * scale
    positions += np.random.default_rng(seed).normal(0.0, sigma * scale, positions.shape)
    cell_rows = np.diag(edges * reps * scale)
    return make_data(positions @ rotation.T + [1.7, -0.4, 2.2], cell_rows @ rotation.T)


def ptm(data):
    """OVITO's PTM types and orientations, every structure enabled."""
    modifier = PolyhedralTemplateMatchingModifier(output_orientation=True)
    for structure in modifier.structures:
        structure.enabled = True
    work = data.clone()
    work.apply(modifier)
    return np.asarray(work.particles["Structure Type"]), np.asarray(work.particles["Orientation"], dtype=np.float64)


def ptm_truth(name, rotation):
    """OVITO's orientation of the perfect lattice turned by ``rotation``."""
    types, q = ptm(build(name, rotation=rotation))
    assert (types == LATTICES[name][0]).all()
    return q[0]


def group(lattice):
    """The lattice's proper rotations, built here independently of the module."""
    if lattice == "cubic":
        mats = [np.eye(3)[list(p)] * s for p in itertools.permutations(range(3))
                for s in itertools.product((1, -1), repeat=3)]
        return Rotation.from_matrix([m for m in mats if np.linalg.det(m) > 0])
    about_c = [Rotation.from_rotvec([0, 0, k * np.pi / 3]) for k in range(6)]
    in_plane = [Rotation.from_rotvec(np.pi * np.array([np.cos(k * np.pi / 6), np.sin(k * np.pi / 6), 0]))
                for k in range(6)]
    return Rotation.concatenate(about_c + in_plane)


def brute_force_disorientation(q1, q2, lattice):
    """min over both symmetry groups of the angle of (q1 g1)^-1 (q2 g2)."""
    g = group(lattice)
    a, b = (Rotation.from_quat(q1) * g).as_quat(), (Rotation.from_quat(q2) * g).as_quat()
    every_pair = Rotation.from_quat(np.repeat(a, len(g), axis=0)).inv() * Rotation.from_quat(np.tile(b, (len(g), 1)))
    return every_pair.magnitude().min()


@pytest.mark.parametrize("name", list(LATTICES))
def test_components_equal_ptm_on_rotated_perfect_crystals(name):
    for seed in (1, 2):
        data = build(name, rotation=Rotation.random(random_state=seed).as_matrix())
        types, expected = ptm(data)
        assert (types == LATTICES[name][0]).all()
        for average in (True, False):
            q = orientations(data, types, average=average)
            np.testing.assert_allclose(q, expected, rtol=0, atol=1e-6)


def test_perfect_crystal_in_reference_frame_is_identity():
    for name in LATTICES:
        types, expected = ptm(build(name))
        q = orientations(build(name), types)
        np.testing.assert_allclose(q, expected, atol=1e-6)
        np.testing.assert_allclose(expected, np.tile([0, 0, 0, 1], (len(q), 1)), atol=1e-6)  # OVITO: identity


@pytest.mark.parametrize("name", ["FCC", "HCP", "BCC"])
def test_error_to_truth_invariant_under_rotation_of_a_perturbed_crystal(name):
    errors, ptm_errors = [], []
    for seed in (3, 4, 5):
        rotation = Rotation.random(random_state=seed).as_matrix()
        data = build(name, sigma=0.04, rotation=rotation, seed=11)  # the same displacements, turned
        truth = ptm_truth(name, rotation)
        types = np.full(data.particles.count, LATTICES[name][0])
        errors.append(disorientation(orientations(data, types), truth, name))
        ptm_types, ptm_q = ptm(data)
        ptm_errors.append(disorientation(ptm_q[ptm_types == LATTICES[name][0]], truth, name))
    np.testing.assert_allclose(errors[1], errors[0], atol=1e-6)
    np.testing.assert_allclose(errors[2], errors[0], atol=1e-6)
    # each atom's own fit scatters like PTM's; the neighbour average is closer to the truth
    assert np.median(errors[0]) < np.median(ptm_errors[0])


def test_grain_boundary_stays_sharp():
    """Two fcc grains in an open box: the neighbour average must not mix them."""
    rotations = [Rotation.random(random_state=s).as_matrix() for s in (21, 22)]
    side = 40.0
    grid = np.stack(np.meshgrid(*[np.arange(-9, 10)] * 3, indexing="ij"), -1).reshape(-1, 1, 3)
    lattice = (grid + FCC_BASIS[None]).reshape(-1, 3) * 3.6
    parts, grain = [], []
    for k, rotation in enumerate(rotations):
        points = lattice @ rotation.T + side / 2
        keep = (np.abs(points - side / 2).max(axis=1) < 15) & ((points[:, 0] < side / 2) == (k == 0))
        parts.append(points[keep])
        grain.append(np.full(keep.sum(), k))
    positions, grain = np.vstack(parts), np.concatenate(grain)
    close = np.linalg.norm(positions[:, None] - positions[None], axis=2) < 1.5  # atoms too close across the plane
    close = np.triu(close, 1).any(axis=0)
    positions, grain = positions[~close], grain[~close]
    positions += np.random.default_rng(0).normal(0.0, 0.08, positions.shape)
    data = make_data(positions, np.eye(3) * side, pbc=(False,) * 3)
    types, ptm_q = ptm(data)
    truth = np.array([ptm_truth("FCC", rotation) for rotation in rotations])[grain]
    fcc = types == 1
    error = disorientation(orientations(data, types), truth, "FCC")
    ptm_error = disorientation(ptm_q, truth, "FCC")
    to_boundary = np.minimum(np.abs(positions[:, 0] - side / 2), 15 - np.abs(positions - side / 2).max(axis=1))
    near, inside = fcc & (to_boundary < 4), fcc & (to_boundary > 6)
    assert near.sum() > 100 and inside.sum() > 100
    assert np.median(error[near]) < np.median(ptm_error[near])
    assert np.degrees(error[inside]).max() < np.degrees(ptm_error[inside]).max()


def test_single_atom_fit_close_to_ptm_on_a_perturbed_crystal():
    for name in ("FCC", "HCP", "BCC", "Cubic diamond"):
        data = build(name, sigma=0.02, rotation=Rotation.random(random_state=8).as_matrix())
        types, expected = ptm(data)
        mine = types == LATTICES[name][0]
        q = orientations(data, types, average=False)
        # not equal: PTM fits positions, we fit directions (and PTM's diamond shells at their distances)
        difference = np.degrees(disorientation(q[mine], expected[mine], name))
        assert np.median(difference) < 0.5 and difference.max() < 2.0


def test_disorientation_closed_forms():
    identity = [0, 0, 0, 1]
    sigma3 = Rotation.from_rotvec(np.radians(60) * np.ones(3) / np.sqrt(3))
    sigma5 = Rotation.from_rotvec([2 * np.arctan(1 / 3), 0, 0])  # 36.87 degrees about [100]
    assert disorientation(identity, sigma3.as_quat(), "cubic") == pytest.approx(np.pi / 3, abs=1e-6)
    assert disorientation(identity, sigma5.as_quat(), "FCC") == pytest.approx(2 * np.arctan(1 / 3), abs=1e-6)
    for seed in range(3):  # the same relations seen from any orientation
        r = Rotation.random(random_state=seed)
        assert disorientation(r.as_quat(), (r * sigma3).as_quat(), 3) == pytest.approx(np.pi / 3, abs=1e-6)
        assert disorientation(r.as_quat(), (r * sigma5).as_quat(), "BCC") == pytest.approx(2 * np.arctan(1 / 3),
                                                                                           abs=1e-6)
    for lattice in ("cubic", "hexagonal"):  # a symmetry operation is no rotation at all
        r = Rotation.random(random_state=7)
        angles = disorientation(r.as_quat(), (r * group(lattice)).as_quat(), lattice)
        np.testing.assert_allclose(angles, 0.0, atol=1e-6)
    # hexagonal: 90 degrees about c is 30 degrees away from the 60-degree symmetry; 180 about a1 is one
    assert disorientation(identity, Rotation.from_rotvec([0, 0, np.pi / 2]).as_quat(), "HCP") == pytest.approx(
        np.pi / 6, abs=1e-6)
    assert disorientation(identity, Rotation.from_rotvec([np.pi, 0, 0]).as_quat(), "hexagonal") == pytest.approx(
        0.0, abs=1e-6)
    assert np.isnan(disorientation([0, 0, 0, 0], identity, "cubic"))


@pytest.mark.parametrize("lattice", ["cubic", "hexagonal"])
def test_disorientation_equals_brute_force(lattice):
    a = Rotation.random(40, random_state=1).as_quat()
    b = Rotation.random(40, random_state=2).as_quat()
    angles = disorientation(a, b, lattice)
    expected = [brute_force_disorientation(x, y, lattice) for x, y in zip(a, b)]
    np.testing.assert_allclose(angles, expected, rtol=0, atol=1e-6)
    assert angles.max() <= np.radians(62.8 if lattice == "cubic" else 93.9)  # Mackenzie's largest angles
    # float32 and unnormalised input, as OVITO stores it
    np.testing.assert_allclose(disorientation(3 * a.astype(np.float32), b, lattice), expected, atol=1e-6)


def test_symmetry_group_is_the_lattice_group():
    for lattice in ("cubic", "hexagonal"):
        mine = symmetry_group(lattice)
        reference = group(lattice).as_quat()
        assert len(mine) == len(reference)
        # the same set of rotations (q and -q are one rotation)
        assert np.abs(mine @ reference.T).max(axis=1) == pytest.approx(np.ones(len(mine)), abs=1e-12)


def test_zeros_for_atoms_without_a_supported_lattice():
    data = build("FCC", sigma=0.02, rotation=Rotation.random(random_state=3).as_matrix())
    n = data.particles.count
    types = np.random.default_rng(0).choice([0, 1, 4, 8, 9, 12], size=n)  # Other, FCC, ICO, graphene, others
    q = orientations(data, types)
    assert (q[types != 1] == 0).all()
    np.testing.assert_allclose(np.linalg.norm(q[types == 1], axis=1), 1.0, atol=1e-12)
    # as PTM leaves atoms that match no template at zero (without RMSD cutoff: its Other atoms)
    gas = make_data(np.random.default_rng(1).uniform(0, 9, (200, 3)), np.eye(3) * 9)
    work = gas.clone()
    work.apply(PolyhedralTemplateMatchingModifier(output_orientation=True, rmsd_cutoff=0.0))
    ptm_types, ptm_q = np.asarray(work.particles["Structure Type"]), np.asarray(work.particles["Orientation"])
    assert (ptm_types == 0).any() and (ptm_q[ptm_types == 0] == 0).all()
    assert (orientations(data, np.zeros(n, int)) == 0).all()


def test_one_and_two_threads_bit_identical(tmp_path):
    script = (
        "import sys, numpy as np\n"
        "sys.path.insert(0, %r)\n"
        "from test_orientation import build\n"
        "from scipy.spatial.transform import Rotation\n"
        "from ovito_mlclass.orientation import orientations\n"
        "import numba\n"
        "q = []\n"
        "for name, t in (('FCC', 1), ('HCP', 2), ('BCC', 3)):\n"
        "    d = build(name, reps=6, sigma=0.07, rotation=Rotation.random(random_state=t).as_matrix(), seed=t)\n"
        "    q.append(orientations(d, np.full(d.particles.count, t)))\n"
        "np.save(sys.argv[1], np.concatenate(q))\n"
        "print(numba.get_num_threads())\n" % os.path.dirname(__file__))
    results = []
    for threads in ("1", "2"):
        env = dict(os.environ, NUMBA_NUM_THREADS=threads, OMP_NUM_THREADS=threads)
        out = tmp_path / f"q{threads}.npy"
        done = subprocess.run([sys.executable, "-c", script, str(out)], env=env, capture_output=True, text=True,
                              cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        assert done.stdout.split()[-1] == threads
        results.append(np.load(out))
    assert results[0].tobytes() == results[1].tobytes()
    assert (np.abs(results[0]).sum(axis=1) > 0).all()


def test_hot_crystal_gives_unit_quaternions():
    for name in ("FCC", "HCP", "BCC"):
        data = build(name, sigma=0.12, rotation=Rotation.random(random_state=2).as_matrix())
        q = orientations(data, np.full(data.particles.count, LATTICES[name][0]))
        assert np.isfinite(q).all()
        np.testing.assert_allclose(np.linalg.norm(q, axis=1), 1.0, atol=1e-12)
        assert (q[:, 3] >= 0).all()


def test_small_and_degenerate_inputs():
    # a few atoms: too few neighbours for any shell -> no orientation, no error
    few = make_data(np.array([[0.0, 0, 0], [1.5, 0, 0], [0, 1.5, 0]]), np.eye(3) * 10, pbc=(False,) * 3)
    assert (orientations(few, [1, 1, 3]) == 0).all()
    # an open fcc cluster: atoms with a full shell get the cluster's orientation (OVITO: PTM's)
    rotation = Rotation.random(random_state=4).as_matrix()
    grid = np.stack(np.meshgrid(*[np.arange(-2, 3)] * 3, indexing="ij"), -1).reshape(-1, 1, 3)
    points = (grid + FCC_BASIS[None]).reshape(-1, 3) * 3.6
    points = points[np.linalg.norm(points, axis=1) < 6.0] @ rotation.T
    cluster = make_data(points + 20, np.eye(3) * 40, pbc=(False,) * 3)
    types, expected = ptm(cluster)
    q = orientations(cluster, np.where(types == 1, 1, 0))
    inner = types == 1
    assert inner.sum() > 5
    np.testing.assert_allclose(q[inner], expected[inner], atol=1e-6)
    # surface atoms called FCC (as a classifier might) get some orientation or none, never garbage
    q = orientations(cluster, np.ones(len(points), int))
    norms = np.linalg.norm(q, axis=1)
    assert np.isfinite(q).all() and np.all((np.abs(norms - 1) < 1e-9) | (norms == 0))
    # a 2-D slab: two (001) layers of fcc, non-periodic along z
    slab_points = build("FCC", reps=6, scale=3.6).particles.positions
    slab_points = np.asarray(slab_points)[np.asarray(slab_points)[:, 2] < 2.5 + 3.6 / 2]
    slab = make_data(slab_points, np.diag([21.6, 21.6, 30.0]), pbc=(True, True, False))
    q = orientations(slab, np.ones(len(slab_points), int))
    norms = np.linalg.norm(q, axis=1)
    assert np.isfinite(q).all() and np.all((np.abs(norms - 1) < 1e-9) | (norms == 0))
    # a 2-D cell (one triangular layer; OVITO's neighbour finder serves it)
    grid = np.stack(np.meshgrid(np.arange(8), np.arange(8), indexing="ij"), -1).reshape(-1, 2)
    layer = np.column_stack([grid[:, 0] + 0.5 * grid[:, 1], grid[:, 1] * np.sqrt(3) / 2, np.zeros(len(grid))]) * 2.5
    flat = make_data(layer, [[20.0, 0, 0], [10.0, 10 * np.sqrt(3), 0], [0, 0, 1.0]], pbc=(True, True, False))
    flat.cell_.is2D = True
    q = orientations(flat, np.full(len(layer), 2))
    norms = np.linalg.norm(q, axis=1)
    assert np.isfinite(q).all() and np.all((np.abs(norms - 1) < 1e-9) | (norms == 0))
    # two atoms on one spot: refused like every other neighbour search, no crash
    doubled = np.asarray(build("FCC", reps=3).particles.positions)
    doubled = np.vstack([doubled, doubled[:1]])
    with pytest.raises(InputError, match="distance zero"):
        orientations(make_data(doubled, np.eye(3) * 9.9), np.ones(len(doubled), int))
    # nothing at all, or arrays and the classification object as inputs
    assert orientations(np.zeros((0, 3)), np.zeros(0, int)).shape == (0, 4)
    with pytest.raises(ValueError, match="one structure type id per particle"):
        orientations(build("FCC"), [1, 1])
    bad = np.asarray(build("FCC").particles.positions).copy()
    bad[3] = np.nan
    with pytest.raises(InputError, match="non-finite"):
        orientations(make_data(bad, np.eye(3) * 13.2), np.ones(len(bad), int))
    with pytest.raises(ValueError, match="Unknown lattice"):
        disorientation([0, 0, 0, 1], [0, 0, 0, 1], "tetragonal")


def test_modifier_writes_ptm_orientation_property():
    from ovito.modifiers import GrainSegmentationModifier

    from ovito_mlclass.modifiers import StructureClassifierModifier

    rotation = Rotation.random(random_state=12).as_matrix()
    data = build("FCC", reps=5, scale=3.61, rotation=rotation)
    _, expected = ptm(data)
    work = data.clone()
    work.apply(StructureClassifierModifier(output_orientation=True))
    reference = data.clone()
    reference.apply(PolyhedralTemplateMatchingModifier(output_orientation=True))
    assert work.particles["Orientation"].component_names == reference.particles["Orientation"].component_names
    assert (np.asarray(work.particles["Structure Type"]) == 1).all()
    np.testing.assert_allclose(np.asarray(work.particles["Orientation"]), expected, atol=1e-6)
    plain = data.clone()
    plain.apply(StructureClassifierModifier())
    assert "Orientation" not in plain.particles

    # only selected particles: the others get zeros
    selected = data.clone()
    selected.particles_.create_property("Selection", data=(np.arange(data.particles.count) % 2).astype(np.int32))
    selected.apply(StructureClassifierModifier(output_orientation=True, only_selected=True))
    assert (np.asarray(selected.particles["Orientation"])[::2] == 0).all()

    # grain segmentation needs PTM's Correspondences: refused without PTM, works with PTM before us
    hot = build("FCC", reps=6, scale=3.61, sigma=0.05, rotation=rotation, seed=3)
    alone = hot.clone()
    alone.apply(StructureClassifierModifier(output_orientation=True))
    with pytest.raises(RuntimeError, match="Correspondences"):
        alone.apply(GrainSegmentationModifier())
    piped = hot.clone()
    piped.apply(PolyhedralTemplateMatchingModifier(rmsd_cutoff=0.0, output_orientation=True))
    piped.apply(StructureClassifierModifier(output_orientation=True))
    piped.apply(GrainSegmentationModifier())
    grains = piped.tables["grains"]
    assert len(np.asarray(grains["Grain Size"])) == 1
    assert np.degrees(disorientation(np.asarray(grains["Orientation"])[0], expected[0], "FCC")) < 1.0
    ptm_only = hot.clone()  # the grain's orientation is the mean of ours, not of PTM's
    ptm_only.apply(PolyhedralTemplateMatchingModifier(rmsd_cutoff=0.0, output_orientation=True))
    ptm_only.apply(GrainSegmentationModifier())
    assert disorientation(np.asarray(grains["Orientation"])[0], np.asarray(ptm_only.tables["grains"]["Orientation"])[0],
                          "FCC") > 1e-4
