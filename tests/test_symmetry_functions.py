"""Symmetry functions against dscribe's ACSF, closed forms and the numba reference."""
import ase
import numpy as np
import pytest
from dscribe.descriptors import ACSF
from traits.api import TraitError

from conftest import FCC_BASIS, lattice, make_data, transformed_copies
from ovito_mlclass import SymmetryFunctionsModifier, neighbors as nb
from ovito_mlclass.descriptors import SymmetryFunctions, reference

G2 = [(0.5, 0.0), (1.0, 2.5), (0.2, 3.5), (4.0, 2.7)]
G4 = [(0.01, 1, 1), (0.01, 2, -1), (0.05, 4, 1), (0.005, 16, -1)]
G5 = [(0.02, 1, -1), (0.01, 3, 1)]
CUTOFF = 5.0


def binary_alloy(repeat=3, a=3.8, sigma=0.15, seed=1):
    positions, cell = lattice(FCC_BASIS, np.eye(3) * a, repeat, sigma, seed)
    species = np.random.default_rng(seed).integers(0, 2, len(positions))
    return positions, cell, species


def ours(positions, cell, species, names, **params):
    data = make_data(positions, cell, types=species, type_names=names)
    data.apply(SymmetryFunctionsModifier(**params))
    prop = data.particles["Symmetry Functions"]
    return np.asarray(prop), list(prop.component_names)


def dscribe_blocks(positions, cell, numbers, species_numbers):
    """dscribe's ACSF split into named blocks. dscribe's layout (dscribe/ext/acsf.cpp): per
    species [G1, G2...], then per unordered species pair (j >= k) [G4..., G5...]."""
    acsf = ACSF(r_cut=CUTOFF, g2_params=G2, g4_params=G4, g5_params=G5, species=species_numbers, periodic=True)
    values = acsf.create(ase.Atoms(numbers=numbers, positions=positions, cell=cell, pbc=True))
    symbols = [ase.data.chemical_symbols[z] for z in sorted(species_numbers)]
    blocks, column = {}, 0
    for s in symbols:
        blocks[f"G2_{s}"] = values[:, column + 1: column + 1 + len(G2)]
        column += 1 + len(G2)
    for j in range(len(symbols)):
        for k in range(j + 1):
            pair = f"{symbols[k]}_{symbols[j]}"
            blocks[f"G4_{pair}"] = values[:, column: column + len(G4)]
            blocks[f"G5_{pair}"] = values[:, column + len(G4): column + len(G4) + len(G5)]
            column += len(G4) + len(G5)
    assert column == values.shape[1]
    return blocks


@pytest.mark.parametrize("repeat", [3, 1], ids=["supercell", "cell smaller than twice the cutoff"])
def test_equals_dscribe_acsf_for_a_binary(repeat):
    positions, cell, species = binary_alloy(repeat=repeat)
    values, names = ours(positions, cell, species, ["Cu", "Zr"], cutoff=CUTOFF, g2=G2, g4=G4, g5=G5)
    blocks = dscribe_blocks(positions, cell, np.where(species == 0, 29, 40), [29, 40])
    for block, expected in blocks.items():
        mine = values[:, [i for i, name in enumerate(names) if name.startswith(block + "_")]]
        assert mine.shape == expected.shape and np.abs(expected).max() > 0, block
        np.testing.assert_allclose(mine, expected, rtol=1e-8, atol=0, err_msg=block)


def test_single_species_equals_dscribe():
    positions, cell, _ = binary_alloy(repeat=3, seed=4)
    values, names = ours(positions, cell, np.zeros(len(positions), int), ["Cu"], cutoff=CUTOFF, g2=G2, g4=G4, g5=G5)
    blocks = dscribe_blocks(positions, cell, np.full(len(positions), 29), [29])
    np.testing.assert_allclose(values, np.hstack([blocks["G2_Cu"], blocks["G4_Cu_Cu"], blocks["G5_Cu_Cu"]]),
                               rtol=1e-8)


def test_dimer_closed_form():
    """Two atoms at distance d in a large open box: G2 = exp(-eta (d - r_s)^2) fc(d), no angles."""
    d, rc, eta, rs = 2.3, 4.0, 0.7, 1.1
    data = make_data([[5, 5, 5], [5 + d, 5, 5]], np.eye(3) * 20, pbc=(False,) * 3)
    spec = SymmetryFunctions(cutoff=rc, g2=[(eta, rs)], g4=[(0.1, 1, 1)])
    values = spec.compute(nb.cutoff_neighbors(data, rc))
    expected = np.exp(-eta * (d - rs) ** 2) * 0.5 * (np.cos(np.pi * d / rc) + 1)
    np.testing.assert_allclose(values, [[expected, 0.0], [expected, 0.0]], rtol=1e-14)


def test_trimer_angular_closed_form():
    """Equilateral triangle of side d: each atom sees one pair at 60 degrees."""
    d, rc, eta, zeta, lam = 1.9, 4.0, 0.3, 2.0, 1.0
    positions = np.array([[0, 0, 0], [d, 0, 0], [d / 2, d * np.sqrt(3) / 2, 0]]) + 5
    data = make_data(positions, np.eye(3) * 20, pbc=(False,) * 3)
    spec = SymmetryFunctions(cutoff=rc, g4=[(eta, zeta, lam)], g5=[(eta, zeta, lam)])
    values = spec.compute(nb.cutoff_neighbors(data, rc))
    fc = 0.5 * (np.cos(np.pi * d / rc) + 1)
    angular = 2 ** (1 - zeta) * (1 + lam * 0.5) ** zeta
    g4 = angular * np.exp(-eta * 3 * d * d) * fc ** 3
    g5 = angular * np.exp(-eta * 2 * d * d) * fc ** 2
    np.testing.assert_allclose(values, np.tile([g4, g5], (3, 1)), rtol=1e-14)


def test_compiled_kernel_equals_numba_reference():
    positions, cell, species = binary_alloy(repeat=3, seed=2)
    data = make_data(positions, cell)
    neighbor_list = nb.cutoff_neighbors(data, CUTOFF)
    spec = SymmetryFunctions(cutoff=CUTOFF, g2=G2, g4=G4 + [(0.02, 2.5, 1)], g5=G5)
    mine = spec.compute(neighbor_list, species, 2)
    expected = np.empty_like(mine)
    reference.symmetry_functions(neighbor_list.offsets, neighbor_list.neighbors, neighbor_list.vectors, species, 2,
                                 CUTOFF, np.array(spec.g2), np.array(spec.g4), np.array(spec.g5), expected)
    np.testing.assert_allclose(mine, expected, rtol=1e-12, atol=1e-300)


def test_invariances():
    positions, cell, _ = binary_alloy(repeat=2, seed=3)
    data = make_data(positions, cell)
    params = dict(cutoff=CUTOFF, g2=G2, g4=G4, g5=G5)

    def compute(d):
        d = d.clone()
        d.apply(SymmetryFunctionsModifier(**params))
        return np.asarray(d.particles["Symmetry Functions"])

    expected = compute(data)
    for name, copy, index in transformed_copies(data):
        np.testing.assert_allclose(compute(copy), expected[index], rtol=1e-11, err_msg=name)


def angular_closed_form(positions, eta, zeta, lam, rc, with_jk):
    """G4 (with_jk) or G5 of each atom of a trimer, as exp(log 2 + zeta log((1 + lambda cos) / 2) - eta R)
    (finite for any zeta, unlike 2^(1-zeta) times (1 + lambda cos)^zeta)."""
    fc = lambda r: 0.5 * (np.cos(np.pi * r / rc) + 1)  # noqa: E731
    values = []
    for i in range(3):
        j, k = [m for m in range(3) if m != i]
        a, b = positions[j] - positions[i], positions[k] - positions[i]
        rij, rik, rjk = np.linalg.norm(a), np.linalg.norm(b), np.linalg.norm(b - a)
        cos = a @ b / (rij * rik)
        radial = rij**2 + rik**2 + (rjk**2 if with_jk else 0.0)
        cutoffs = fc(rij) * fc(rik) * (fc(rjk) if with_jk else 1.0)
        values.append(np.exp(np.log(2) + zeta * np.log((1 + lam * cos) / 2) - eta * radial) * cutoffs)
    return np.array(values)


@pytest.mark.parametrize("zeta", [1.0, 2.5, 64.0, 1025.0, 3000.0, 2.0**40])
@pytest.mark.parametrize("lam", [1.0, -1.0])
def test_large_zeta_equals_the_closed_form(zeta, lam):
    """A trimer with an angle of 5 degrees at atom 0 (and 87.5 at the others): (1 + lambda cos)^zeta
    alone overflows for zeta > 1023, and 2^(1-zeta) underflows: their product was NaN."""
    d, eta, rc = 1.0, 0.05, 4.0
    angle = np.radians(5.0)
    positions = np.array([[0, 0, 0], [d, 0, 0], [d * np.cos(angle), d * np.sin(angle), 0]]) + 5
    data = make_data(positions, np.eye(3) * 20, pbc=(False,) * 3)
    spec = SymmetryFunctions(cutoff=rc, g4=[(eta, zeta, lam)], g5=[(eta, zeta, lam)])
    neighbor_list = nb.cutoff_neighbors(data, rc)
    expected = np.column_stack([angular_closed_form(positions, eta, zeta, lam, rc, True),
                                angular_closed_form(positions, eta, zeta, lam, rc, False)])
    if lam == 1.0 and zeta <= 3000:
        assert expected[0].min() > 1e-3  # the narrow angle at atom 0 keeps its terms large
    np.testing.assert_allclose(spec.compute(neighbor_list), expected, rtol=1e-9, atol=1e-300)
    reference_values = np.empty((3, 2))
    reference.symmetry_functions(neighbor_list.offsets, neighbor_list.neighbors, neighbor_list.vectors,
                                 np.zeros(3, np.int32), 1, rc, np.zeros((0, 2)), np.array(spec.g4), np.array(spec.g5),
                                 reference_values)
    np.testing.assert_allclose(reference_values, expected, rtol=1e-9, atol=1e-300)


@pytest.mark.parametrize("params,message", [
    (dict(cutoff=-1.0, g2=[(1.0, 0.0)]), r"cutoff must be a finite number > 0, got -1.0"),
    (dict(cutoff=float("nan"), g2=[(1.0, 0.0)]), r"cutoff must be a finite number > 0, got nan"),
    (dict(cutoff=5.0, g2=[], g4=[], g5=[]), "At least one"),
    (dict(cutoff=5.0, g4=[(0.1, -1.0, 1.0)]), r"G4 zeta must be a finite number >= 0, got -1.0"),
    (dict(cutoff=5.0, g5=[(0.1, 1.0, 2.0)]), r"G5 lambda must be a finite number in \[-1, 1\], got 2.0"),
    (dict(cutoff=5.0, g2=[(-0.5, 1.0)]), r"G2 eta must be a finite number >= 0, got -0.5"),
    (dict(cutoff=5.0, g2=[(0.5, float("inf"))]), r"G2 r_s must be a finite number, got inf"),
    (dict(cutoff=5.0, g4=[(0.1, 1.0)]), r"Each G4 parameter set needs 3 numbers \(eta, zeta, lambda\)"),
])
def test_bad_parameters_are_rejected(params, message):
    with pytest.raises(ValueError, match=message):
        SymmetryFunctions(**params)


@pytest.mark.parametrize("name, value, message", [
    ("cutoff", 0.0, "a finite number > 0"),
    ("cutoff", float("nan"), "a finite number > 0"),
    ("g2", [(1.0, float("nan"))], r"\(a finite number >= 0, a finite number\)"),
    ("g4", [(0.1, 1.0, 3.0)], r"\(a finite number >= 0, a finite number >= 0, a finite number in \[-1, 1\]\)"),
    ("g5", [(0.1, 1.0)], r"a finite number in \[-1, 1\]"),
])
def test_modifier_parameters_are_checked_when_set(name, value, message):
    modifier = SymmetryFunctionsModifier()
    with pytest.raises(TraitError, match=message):
        setattr(modifier, name, value)
    with pytest.raises(TraitError, match=message):
        SymmetryFunctionsModifier(**{name: value})
    if name != "cutoff":  # rows added to a list are checked too
        with pytest.raises(TraitError, match=message):
            getattr(modifier, name).append(value[0])


def test_angular_terms_of_more_than_10000_neighbours_are_refused():
    """The angular sums run over the pairs of an atom's neighbours: more than 10,000 of them (one atom
    in a periodic 1 x 1 x 2^-8 cell, cutoff 5: about 130,000 images) are refused."""
    data = make_data([[0.5, 0.5, 0.0]], np.diag([1.0, 1.0, 2.0 ** -8]))
    neighbor_list = nb.cutoff_neighbors(data, 5.0)
    assert neighbor_list.counts[0] > 10_000
    SymmetryFunctions(cutoff=5.0, g2=[(1.0, 0.0)]).compute(neighbor_list)  # radial terms only: fine
    with pytest.raises(nb.InputError, match=rf"at most 10000 neighbours per atom .* particle 0 has "
                                            rf"{neighbor_list.counts[0]} within the cutoff 5"):
        SymmetryFunctions(cutoff=5.0, g4=[(0.1, 1.0, 1.0)]).compute(neighbor_list)
