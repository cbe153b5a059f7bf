"""The OVITO modifiers: pipeline use, registration, parameters and clear errors for bad input."""
from importlib.metadata import entry_points

import numpy as np
import pytest
from ovito.pipeline import Pipeline, StaticSource
from traits.api import TraitError

from conftest import crystal, make_data, run_python
from ovito_mlclass import (PropertyPredictorModifier, StructureClassifierModifier, SteinhardtModifier,
                           SymmetryFunctionsModifier, UnsupervisedClassifierModifier)
from ovito_mlclass.modifiers import StructureMapModifier
from ovito_mlclass.render import StructureLegendOverlay
from ovito_mlclass.neighbors import InputError


def run(data, modifier):
    pipeline = Pipeline(source=StaticSource(data=data))
    pipeline.modifiers.append(modifier)
    return pipeline.compute()


def test_registered_as_ovito_modifiers():
    registered = {e.name: e.load() for e in entry_points(group="OVITO.Modifier") if e.value.startswith("ovito_mlclass")}
    assert set(registered.values()) == {SteinhardtModifier, SymmetryFunctionsModifier, StructureClassifierModifier,
                                        UnsupervisedClassifierModifier, PropertyPredictorModifier, StructureMapModifier}
    assert all("ML" in name for name in registered)
    overlays = {e.load() for e in entry_points(group="OVITO.ViewportOverlay") if e.value.startswith("ovito_mlclass")}
    assert overlays == {StructureLegendOverlay}


def test_steinhardt_output_components_follow_the_options():
    out = run(crystal("fcc", 3, 0.02), SteinhardtModifier(degrees=(4, 6), averaged=True, wl=True))
    assert out.particles["Steinhardt Descriptors"].component_names == (
        "q4", "q6", "w4", "w6", "qbar4", "qbar6", "wbar4", "wbar6")
    out = run(crystal("fcc", 3, 0.02), SteinhardtModifier(degrees=(6,), averaged=False, wl=False))
    assert out.particles["Steinhardt Descriptors"].component_names == ("q6",)


def test_symmetry_function_components_are_named_by_species():
    data = crystal("fcc", 3, 0.02)
    types = np.arange(data.particles.count) % 2
    data = make_data(np.asarray(data.particles.positions), np.asarray(data.cell)[:, :3].T, types=types,
                     type_names=["Ni", "Al"])
    out = run(data, SymmetryFunctionsModifier(cutoff=1.2, g2=[(1.0, 0.7)], g4=[(0.1, 1.0, -1.0)], g5=[]))
    assert out.particles["Symmetry Functions"].component_names == (
        "G2_Ni_0", "G2_Al_0", "G4_Ni_Ni_0", "G4_Ni_Al_0", "G4_Al_Al_0")


def test_neighbour_mode_follows_keywords():
    assert SteinhardtModifier().neighbor_mode == "nearest"
    assert SteinhardtModifier(cutoff=3.0).neighbor_mode == "cutoff"
    assert SteinhardtModifier(neighbors=None, cutoff=3.0).neighbor_mode == "cutoff"
    assert SteinhardtModifier(neighbors=8, cutoff=None).neighbor_mode == "nearest"
    with pytest.raises(ValueError, match="not both"):
        SteinhardtModifier(neighbors=12, cutoff=3.0)


def test_degrees_accept_text_and_sequences():
    assert SteinhardtModifier(degrees="2-4, 6").descriptor.degrees == (2, 3, 4, 6)
    assert SteinhardtModifier(degrees=range(2, 13)).descriptor.degrees == tuple(range(2, 13))
    for bad in ("4 4", "17", "four", (4, -1)):
        with pytest.raises(TraitError):
            SteinhardtModifier(degrees=bad)


def test_no_particles_is_an_error():
    data = make_data(np.zeros((0, 3)), np.eye(3) * 5)
    with pytest.raises(Exception, match="no particles"):
        run(data, SteinhardtModifier())


@pytest.mark.parametrize("modifier", [SteinhardtModifier(), SymmetryFunctionsModifier()])
def test_nan_positions_name_the_particle(modifier):
    data = crystal("fcc", 3)
    positions = np.asarray(data.particles.positions).copy()
    positions[17, 1] = np.nan
    data = make_data(positions, np.asarray(data.cell)[:, :3].T)
    with pytest.raises(Exception, match="non-finite.*index 17"):
        run(data, modifier)


def test_too_few_neighbours_in_an_open_cell_is_an_error():
    data = make_data(np.random.default_rng(0).random((6, 3)) * 5, np.eye(3) * 10, pbc=(False,) * 3)
    with pytest.raises(Exception, match="fewer than 12 neighbours.*6 particle"):
        run(data, SteinhardtModifier(neighbors=12))


def test_coincident_atoms_are_an_error_in_every_mode():
    data = crystal("fcc", 3, sigma=0.03, seed=1)
    positions = np.asarray(data.particles.positions).copy()
    positions[5] = positions[4]
    data = make_data(positions, np.asarray(data.cell)[:, :3].T)
    message = r"2 particle\(s\) have another particle at distance zero \(the first: particle 4 .*same position"
    for modifier in (SteinhardtModifier(cutoff=0.8), SteinhardtModifier(neighbors=12),
                     SteinhardtModifier(neighbor_mode="voronoi"), SymmetryFunctionsModifier(cutoff=0.9)):
        with pytest.raises(InputError, match=message):
            run(data, modifier)


def test_only_selected_without_selection_is_an_error():
    with pytest.raises(Exception, match="no particle selection"):
        run(crystal("fcc", 3), SteinhardtModifier(only_selected=True))


def test_symmetry_functions_only_selected_treats_others_as_absent():
    data = crystal("fcc", 3, 0.03)
    selection = np.arange(data.particles.count) % 3 != 0
    positions = np.asarray(data.particles.positions)
    data.particles_.create_property("Selection", data=selection.astype(int))
    modifier = dict(cutoff=1.3, g2=[(2.0, 0.7)], g4=[(0.5, 2.0, 1.0)])
    full = np.asarray(run(data, SymmetryFunctionsModifier(only_selected=True, **modifier)).particles["Symmetry Functions"])
    alone = make_data(positions[selection], np.asarray(data.cell)[:, :3].T)
    expected = np.asarray(run(alone, SymmetryFunctionsModifier(**modifier)).particles["Symmetry Functions"])
    np.testing.assert_array_equal(full[selection], expected)
    assert (full[~selection] == 0).all()


def test_falls_back_to_numba_with_a_warning_when_the_extension_is_missing():
    script = """
import sys, warnings, importlib.abc
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name == "ovito_mlclass._kernels":
            raise ImportError("blocked for the test")
sys.meta_path.insert(0, Block())
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    import ovito_mlclass
assert ovito_mlclass.BACKEND == "numba", ovito_mlclass.BACKEND
assert any("numba reference" in str(w.message) for w in caught)
# the default model end to end on the reference kernels (its two Steinhardt shells included)
import numpy as np
from ovito_mlclass.classify import classify
from ovito_mlclass.frames import from_arrays
cell = np.eye(3) * 3.6
grid = np.stack(np.meshgrid(*[np.arange(4)] * 3, indexing="ij"), -1).reshape(-1, 1, 3)
basis = np.array([[0, 0, 0], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]])
positions = ((grid + basis).reshape(-1, 3) @ cell) + np.random.default_rng(0).normal(0, 0.05, (256, 3))
assert (classify(from_arrays(positions, cell * 4)).type_names == "FCC").mean() > 0.95
print("fallback ok")
"""
    result = run_python(script)
    assert result.returncode == 0, result.stderr
    assert "fallback ok" in result.stdout


def test_alongside_returns_both_results_and_raises_the_workers_error():
    from ovito_mlclass.modifiers._common import alongside

    assert alongside(lambda: "work", lambda: "here") == ("work", "here")
    with pytest.raises(ZeroDivisionError):
        alongside(lambda: 1 / 0, lambda: "here")
