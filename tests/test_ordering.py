"""Chemical ordering of two-species crystals against OVITO's PTM (output_ordering=True) on the
same atoms: ordered L1_2, L1_0, B2, zincblende, wurtzite and hexagonal boron nitride, thermally
disordered, near melting, and a random solid solution."""
from pathlib import Path

import numpy as np
import pytest
from ovito.modifiers import PolyhedralTemplateMatchingModifier

from ovito_mlclass import StructureClassifierModifier
from ovito_mlclass.frames import from_arrays
from ovito_mlclass.ordering import ORDERING_TYPES, ordering_of
from ovito_mlclass.training.snapshots import Snapshot

S3 = np.sqrt(3)
FCC = [[0, 0, 0], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]]
LATTICES = {  # basis (fractional), species, cell rows (Å), repeats
    "L12": (FCC, [2, 1, 1, 1], np.eye(3) * 3.7, (6, 6, 6)),
    "L10": (FCC, [1, 1, 2, 2], np.eye(3) * 3.7, (6, 6, 6)),
    "B2": ([[0, 0, 0], [0.5, 0.5, 0.5]], [1, 2], np.eye(3) * 2.9, (7, 7, 7)),
    "zincblende": (FCC + [[0.25, 0.25, 0.25], [0.75, 0.75, 0.25], [0.75, 0.25, 0.75], [0.25, 0.75, 0.75]],
                   [1, 1, 1, 1, 2, 2, 2, 2], np.eye(3) * 5.4, (5, 5, 5)),
    "wurtzite": ([[1 / 3, 2 / 3, 0], [2 / 3, 1 / 3, 0.5], [1 / 3, 2 / 3, 0.375], [2 / 3, 1 / 3, 0.875]], [1, 1, 2, 2],
                 np.array([[3.2, 0, 0], [-1.6, 1.6 * S3, 0], [0, 0, 3.2 * np.sqrt(8 / 3)]]), (6, 6, 4)),
    "h-BN": ([[0, 0, 0.5], [1 / 3, 2 / 3, 0.5]], [1, 2], np.array([[2.5, 0, 0], [-1.25, 1.25 * S3, 0], [0, 0, 12.0]]),
             (10, 10, 1)),
}


def lattice(name, sigma=0.0, seed=0, shuffle=False):
    basis, species, cell, reps = LATTICES[name]
    grid = np.stack(np.meshgrid(*[np.arange(r) for r in reps], indexing="ij"), -1).reshape(-1, 1, 3)
    frac = (grid + np.asarray(basis, dtype=float)).reshape(-1, 3)
    types = np.tile(species, len(grid))
    rng = np.random.default_rng(seed)
    if shuffle:  # a random solid solution on the same sites
        types = rng.permutation(types)
    positions = frac @ cell
    noise = rng.normal(0.0, sigma, positions.shape)
    if name == "h-BN":
        noise[:, 2] *= 0.3  # a sheet: mostly in-plane motion
    return from_arrays(positions + noise, cell * np.asarray(reps)[:, None], types=types)


def ptm(data):
    modifier = PolyhedralTemplateMatchingModifier(output_ordering=True)
    for s in modifier.structures:
        s.enabled = True
    result = data.clone()
    result.apply(modifier)
    return np.asarray(result.particles["Structure Type"]), np.asarray(result.particles["Ordering Type"])


@pytest.mark.parametrize("name", LATTICES)
@pytest.mark.parametrize("sigma", [0.0, 0.08])  # Å; 0.08 Å is about 3% of the nearest-neighbour distance
def test_orderings_equal_ptms_on_the_atoms_ptm_identifies(name, sigma):
    """Given PTM's structure types, our ordering equals PTM's atom by atom: the rule, separate
    from the classification."""
    data = lattice(name, sigma, seed=1)
    types, expected = ptm(data)
    identified = types > 0
    assert identified.mean() > 0.95
    ours = ordering_of(data, types)
    np.testing.assert_array_equal(ours[identified], expected[identified])
    assert len(np.unique(expected[identified])) <= 2  # one ordering per site kind (L12: A and B)


def test_a_random_solid_solution_agrees_with_ptm():
    data = lattice("L12", 0.03, seed=2, shuffle=True)
    types, expected = ptm(data)
    identified = types > 0
    assert (ordering_of(data, types)[identified] == expected[identified]).mean() > 0.99


@pytest.mark.parametrize("name, ordered", [("L12", {3, 4}), ("L10", {2}), ("B2", {5})])
def test_the_modifier_reports_the_ordering_as_ptm_does(name, ordered):
    data = lattice(name, 0.05, seed=3)
    _, expected = ptm(data)
    data.apply(StructureClassifierModifier(model="metals", output_ordering=True))
    ours = np.asarray(data.particles["Ordering Type"])
    assert set(np.unique(ours)) == ordered and (ours == expected).all()
    prop = data.particles["Ordering Type"]
    assert {t.id: t.name for t in prop.types} == {i: v[0] for i, v in ORDERING_TYPES.items()}
    for type_id, (_, _, key) in ORDERING_TYPES.items():
        assert data.attributes[f"StructureClassifier.ordering_counts.{key}"] == int((ours == type_id).sum())


def test_ordering_ids_and_names_are_ptms():
    data = lattice("L12")
    data.apply(PolyhedralTemplateMatchingModifier(output_ordering=True))
    theirs = {t.id: (t.name, tuple(round(c, 3) for c in t.color)) for t in data.particles["Ordering Type"].types}
    assert theirs == {i: (name, color) for i, (name, color, _) in ORDERING_TYPES.items()}
    keys = {k.rsplit(".", 1)[1] for k in data.attributes if k.startswith("PolyhedralTemplateMatching.ordering_counts.")}
    assert keys == {key for _, _, key in ORDERING_TYPES.values()}


@pytest.mark.parametrize("name", ["ni3al_l12_0.85Tm.npz", "nial_b2_0.85Tm.npz"])
def test_near_melting_an_intruder_from_the_next_shell_does_not_hide_the_ordering(name):
    """Held-out MD at 0.85 T_m (sites by construction), with PTM's own structure types: an atom of
    the second shell now and then comes nearer than one of the first; the ordering stays right on
    99% of the atoms (L1₂: 98.3% from the 12 nearest alone) and agrees with PTM's on 99.5%."""
    snap = Snapshot.load(Path(__file__).parent / "data" / "openworld" / name)
    data = snap.to_data_collection()
    modifier = PolyhedralTemplateMatchingModifier(rmsd_cutoff=0.0, output_ordering=True)
    result = data.clone()
    result.apply(modifier)
    types, theirs = np.asarray(result.particles["Structure Type"]), np.asarray(result.particles["Ordering Type"])
    ours = ordering_of(data, types)
    assert (ours != snap.extra["ordering_site"]).mean() <= 0.01
    assert (ours == theirs).mean() >= 0.995


@pytest.mark.parametrize("seed", range(5))
def test_the_next_shells_intruder_is_the_one_left_out(seed):
    """By construction: the 12 fcc (or 14 bcc) neighbour directions, slightly disordered, and one
    atom of the next shell pushed in among them; the k of the k + 1 that best form opposite pairs
    are the shell's."""
    from itertools import product

    from ovito_mlclass.ordering import _most_centrosymmetric
    rng = np.random.default_rng(seed)
    fcc = [v for v in product((-1, 0, 1), repeat=3) if sum(map(abs, v)) == 2]
    bcc = [v for v in product((-1, 1), repeat=3)] + [v for v in product((-2, 0, 2), repeat=3) if sum(map(abs, v)) == 2]
    for shell, intruder in ((fcc, (1.6, 0.1, 0.0)), (bcc, (1.9, 1.9, 0.2))):
        vectors = np.array(shell, dtype=float) + rng.normal(0, 0.05, (len(shell), 3))
        at = rng.integers(len(shell) + 1)
        candidates = np.insert(vectors, at, intruder, axis=0)
        kept = _most_centrosymmetric(candidates[None])[0]
        np.testing.assert_array_equal(kept, [i for i in range(len(shell) + 1) if i != at])


@pytest.mark.parametrize("seed", range(5))
def test_a_stretched_graphene_bond_is_found_among_the_next_nearest(seed):
    """By construction: the three bond directions of a graphene atom, slightly disordered, and one
    atom of the second shell (30° from the bonds) nearer than one stretched bond; the 3 of the 4
    nearest that best form the triangle are the bonds."""
    from ovito_mlclass.ordering import _bonds_by_angles

    rng = np.random.default_rng(seed)
    bonds = np.array([[1, 0, 0], [-0.5, S3 / 2, 0], [-0.5, -S3 / 2, 0]]) * 1.42
    second = (bonds[0] - bonds[1]) / np.linalg.norm(bonds[0] - bonds[1]) * 1.1 * 1.42
    vectors = bonds + rng.normal(0, 0.05, bonds.shape)
    vectors[rng.integers(3)] *= 1.3                        # now beyond the second neighbour
    everything = np.vstack([vectors, second])
    order = np.argsort(np.linalg.norm(everything, axis=1))
    repaired = _bonds_by_angles(3, np.array([0]), order[None], everything[order][None])
    assert sorted(repaired[0]) == [0, 1, 2]


def diamond_shells(a=1.0):
    """A cubic diamond atom's 4 bonds and 12 second neighbours (lattice constant ``a``)."""
    from itertools import product

    bonds = np.array([[1, 1, 1], [1, -1, -1], [-1, 1, -1], [-1, -1, 1]]) * a / 4
    second = [v for v in product((-1, 0, 1), repeat=3) if sum(map(abs, v)) == 2]
    return np.vstack([bonds, np.array(second) * a / 2])


@pytest.mark.parametrize("seed", range(10))
def test_a_stretched_diamond_bond_keeps_its_voronoi_face(seed):
    """By construction: a cubic diamond atom moved 0.4 bond lengths away from one of its 4 bonded
    neighbours (that bond 1.4 long, three second neighbours now nearer), all 16 neighbours slightly
    disordered, sorted by distance: the 4 with the largest Voronoi faces are the bonds, as PTM picks
    them, where the 4 nearest are not."""
    from ovito_mlclass.ordering import _bonds_by_faces

    rng = np.random.default_rng(seed)
    vectors = diamond_shells(4 / np.sqrt(3))                 # bond length 1
    stretched = rng.integers(4)
    vectors = vectors + 0.4 * vectors[stretched] + rng.normal(0, 0.02, (16, 3))
    order = np.argsort(np.linalg.norm(vectors, axis=1))
    assert stretched not in order[:4]
    bonds = _bonds_by_faces(4, np.array([0]), order[None], vectors[order][None])
    assert sorted(bonds[0]) == [0, 1, 2, 3]


def test_an_antisite_and_its_shells_are_not_zincblende():
    """Zincblende with three antisites (species swapped), thermally disordered: by construction the
    antisite, its four bonded neighbours and its twelve second neighbours have an unlike atom where
    a like one belongs (or the reverse); none of them is ZINCBLENDE_WURTZITE, every other atom is."""
    from ovito_mlclass.frames import as_frame
    from ovito_mlclass.neighbors import nearest_neighbors

    perfect = as_frame(lattice("zincblende"))
    n = perfect.count
    rows = nearest_neighbors(perfect, 4).neighbors.reshape(n, 4)      # bonds by construction
    rng = np.random.default_rng(3)
    antisites = rng.choice(n, 3, replace=False)
    types = perfect.types.copy()
    types[antisites] = 3 - types[antisites]
    touched = np.zeros(n, bool)
    touched[antisites] = True
    touched[rows[antisites].ravel()] = True
    touched[rows[rows[antisites]].ravel()] = True
    hot = as_frame(lattice("zincblende", sigma=0.12, seed=4))
    data = from_arrays(hot.positions, hot.cell[:, :3].T, types=types)
    ordering = ordering_of(data, np.full(n, 6))                       # cubic diamond everywhere
    assert not (ordering[touched] == 6).any()
    assert (ordering[~touched] == 6).mean() >= 0.99


@pytest.mark.parametrize("seed", range(3))
def test_a_hot_zincblende_slab_orders_as_ptm_does(seed):
    """Outside the bulk: a zincblende (001) slab in vacuum, strongly disordered (0.2 Å), whose
    surface atoms have open Voronoi cells and whose stretched bonds send atoms through the retry
    by Voronoi faces. Given PTM's structure types, our ordering agrees with PTM's on its cubic
    diamond atoms (PTM picks its neighbours by Voronoi solid angles), surface and inside alike."""
    from ovito_mlclass.frames import as_frame

    bulk = as_frame(lattice("zincblende", sigma=0.2, seed=seed))
    cell = bulk.cell[:, :3].T.copy()
    cell[2] *= 2.0                                          # vacuum above and below the slab
    data = from_arrays(bulk.positions + cell[2] / 4, cell, pbc=(True, True, False), types=bulk.types)
    types, theirs = ptm(data)
    diamond = types == int(PolyhedralTemplateMatchingModifier.Type.CUBIC_DIAMOND)   # OVITO's id 6, ours too
    assert diamond.sum() > 0.5 * len(types)
    ours = ordering_of(data, np.where(diamond, 6, 0))
    assert (ours[diamond] == theirs[diamond]).mean() >= 0.99
