"""Voronoi cells of the compiled kernel (neighbours, face areas, volumes) against OVITO's Voronoi analysis."""
import numpy as np
import pytest
from ovito.modifiers import SteinhardtParametersModifier as OvitoSteinhardt
from ovito.modifiers import VoronoiAnalysisModifier

from conftest import crystal, lattice, make_data, triclinic, FCC_BASIS
from ovito_mlclass import neighbors as nb
from ovito_mlclass.descriptors import reference
from ovito_mlclass import _compiled as _backend
from ovito_mlclass._compiled import kernels
from test_steinhardt import columns, ours, ovito

STRUCTURES = {
    "hot fcc": lambda: crystal("fcc", 4, sigma=0.06, seed=7),
    "hot bcc": lambda: crystal("bcc", 4, sigma=0.06, seed=7),
    "ideal bcc": lambda: crystal("bcc", 3),
    "ideal fcc": lambda: crystal("fcc", 3),  # second-shell planes touch the cell at its vertices only
    "triclinic": triclinic,
    # very irregular cells, sheared box: many atoms redone with a wider search, 48 of them because
    # their assembled cell reached beyond the first radius (faces towards atoms nobody searched for)
    "random points": lambda: random_points(400),
}


def random_points(n, seed=5):
    rng = np.random.default_rng(seed)
    cell = np.array([[7.0, 0.0, 0.0], [1.5, 7.7, 0.0], [0.7, -1.0, 6.3]])
    return make_data(rng.random((n, 3)) @ cell, cell)
# Cells so small that atoms are Voronoi neighbours of their own periodic images (OVITO cannot
# build the polyhedra mesh here, but computes volumes and Steinhardt parameters).
SMALL = {
    "fcc 1x1x1": lambda: crystal("fcc", 1, sigma=0.03, seed=1),
    "fcc 2x2x2": lambda: crystal("fcc", 2, sigma=0.03, seed=1),
    "bcc 1x1x1": lambda: crystal("bcc", 1, sigma=0.03, seed=1),
}


def our_faces(data):
    """(centre, neighbour, image) of every face of our Voronoi cells, its area, and the faces."""
    faces = nb.voronoi_faces(data)
    return face_keys(data, faces), faces.weights, faces


def face_keys(data, faces):
    centers = np.repeat(np.arange(faces.n_atoms), faces.counts)
    positions = np.asarray(data.particles.positions)
    cell = np.asarray(data.cell)[:, :3]
    shift = faces.vectors - (positions[faces.neighbors] - positions[centers])
    image = np.rint(np.linalg.solve(cell, shift.T).T).astype(np.int64)
    return np.column_stack([centers, faces.neighbors, image])


def ovito_faces(data):
    """(centre, neighbour, image) and area of every face of OVITO's Voronoi polyhedra."""
    work = data.clone()
    work.apply(VoronoiAnalysisModifier(generate_polyhedra=True, generate_bonds=True))
    mesh = work.surfaces["voronoi-polyhedra"]
    centers = np.asarray(mesh.regions["Particle"])[np.asarray(mesh.faces["Region"])]
    bond = np.asarray(mesh.faces["Bond Index"])
    assert (bond >= 0).all()
    topology = np.asarray(work.particles.bonds.topology)[bond]
    image = np.asarray(work.particles.bonds.pbc_vectors)[bond]
    forward = topology[:, 0] == centers
    other = np.where(forward, topology[:, 1], topology[:, 0])
    image = np.where(forward[:, None], image, -image)
    return np.column_stack([centers, other, image]), np.asarray(mesh.faces["Area"])


def sorted_by_key(keys, values):
    order = np.lexsort(keys.T[::-1])
    return keys[order], values[order]


@pytest.mark.parametrize("name", STRUCTURES)
def test_face_areas_equal_ovito_polyhedra(name):
    data = STRUCTURES[name]()
    our_keys, our_areas, _ = our_faces(data)
    ovito_keys, ovito_areas = ovito_faces(data)
    our_keys, our_areas = sorted_by_key(our_keys, our_areas)
    ovito_keys, ovito_areas = sorted_by_key(ovito_keys, ovito_areas)
    np.testing.assert_array_equal(our_keys, ovito_keys)  # the same faces ...
    np.testing.assert_allclose(our_areas, ovito_areas, rtol=1e-10, atol=0)  # ... with the same areas


@pytest.mark.parametrize("name", [*STRUCTURES, *SMALL])
def test_cell_volumes_equal_ovito(name):
    data = {**STRUCTURES, **SMALL}[name]()
    _, areas, faces = our_faces(data)
    pyramids = areas * np.linalg.norm(faces.vectors, axis=1) / 6  # height |v| / 2
    volumes = np.bincount(np.repeat(np.arange(faces.n_atoms), faces.counts), weights=pyramids)
    work = data.clone()
    work.apply(VoronoiAnalysisModifier())
    np.testing.assert_allclose(volumes, work.particles["Atomic Volume"], rtol=1e-10, atol=0)


@pytest.mark.parametrize("name", SMALL)
def test_steinhardt_in_small_cells_equals_ovito(name):
    data = SMALL[name]()
    mine, names = ours(data, neighbor_mode="voronoi")
    q, qbar = ovito(data, neighbor_mode=OvitoSteinhardt.NeighborMode.Voronoi)
    np.testing.assert_allclose(mine[:, columns(names, "q")], q, rtol=0, atol=1e-10)
    np.testing.assert_allclose(mine[:, columns(names, "qbar")], qbar, rtol=0, atol=1e-10)


@pytest.mark.parametrize("name", ["hot fcc", "ideal bcc", "triclinic", "random points"])
def test_compiled_cells_equal_numba_areas_of_ovito_bonds(name):
    """The fallback without the compiled kernel: OVITO's bonds, face areas from the numba reference."""
    data = STRUCTURES[name]()
    keys, areas = sorted_by_key(*our_faces(data)[:2])
    fallback = nb._ovito_voronoi_faces(data)
    fallback_keys, fallback_areas = sorted_by_key(face_keys(data, fallback), fallback.weights)
    np.testing.assert_array_equal(keys, fallback_keys)
    np.testing.assert_allclose(areas, fallback_areas, rtol=1e-10, atol=0)


def test_fallback_without_compiled_kernel(monkeypatch):
    data = STRUCTURES["hot fcc"]()
    expected = nb.voronoi_neighbors(data)
    monkeypatch.setattr(_backend, "COMPILED", False)
    fallback = nb.voronoi_neighbors(data)
    np.testing.assert_array_equal(fallback.offsets, expected.offsets)


def test_non_periodic_cell_is_refused():
    positions, cell = lattice(FCC_BASIS, np.eye(3), 3, sigma=0.05, seed=1)
    data = make_data(positions + [0, 0, 1], cell + np.diag([0, 0, 2]), pbc=(True, True, False))
    with pytest.raises(nb.InputError, match="periodic in all three directions"):
        nb.voronoi_neighbors(data)
    with pytest.raises(ValueError, match="periodic in all three directions"):
        kernels.voronoi_cells(positions, np.asarray(data.cell), (True, True, False))


def test_atoms_at_the_same_position_are_refused():
    positions, cell = lattice(FCC_BASIS, np.eye(3), 2, sigma=0.05, seed=1)
    positions[3] = positions[7]
    with pytest.raises(nb.InputError, match="same position"):
        nb.voronoi_neighbors(make_data(positions, cell))


def test_bad_neighbour_lists_are_refused_by_the_reference():
    with pytest.raises(ValueError, match="not closed"):  # one bond cannot close a cell
        reference.voronoi_face_areas(np.array([0, 1]), np.array([[1.0, 0.0, 0.0]]))
    with pytest.raises(ValueError, match="zero length"):
        reference.voronoi_face_areas(np.array([0, 2]), np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 0.0]]))


@pytest.mark.timeout(60)  # the kernel's face-by-face cells took minutes here (candidates^2 per surface atom)
def test_slab_in_vacuum_equals_ovito():
    """Cells bordering a large empty region need thousands of candidates: the kernel hands them to
    OVITO's Voronoi analysis (voro++), with face areas from the numba reference."""
    positions, cell = lattice(FCC_BASIS, np.eye(3), 6, sigma=0.05, seed=1)
    data = make_data(positions, cell * [[1], [1], [2]])  # as much vacuum as crystal along z
    with pytest.raises(kernels.CellsTooLarge, match="needs more than 1024 candidate neighbours"):
        kernels.voronoi_cells(positions, np.asarray(data.cell), (True, True, True))
    _, areas, faces = our_faces(data)
    pyramids = areas * np.linalg.norm(faces.vectors, axis=1) / 6
    volumes = np.bincount(np.repeat(np.arange(faces.n_atoms), faces.counts), weights=pyramids)
    work = data.clone()
    work.apply(VoronoiAnalysisModifier())
    np.testing.assert_allclose(volumes, work.particles["Atomic Volume"], rtol=1e-10, atol=0)
