"""The core without OVITO: neighbours, descriptors, features, model and classification import and
run on a Frame made from arrays in an interpreter where ``import ovito`` fails, and label every
atom as the classification of the same structure read by OVITO does."""
import numpy as np
import pytest
from ovito.io import import_file

from conftest import run_python
from ovito_mlclass.classify import classify
from ovito_mlclass.cli import example_file
from ovito_mlclass.frames import Frame, as_frame


def test_the_core_classifies_without_ovito(tmp_path):
    data = import_file(str(example_file())).compute()  # Cu crystal slab in its melt (real MD)
    arrays = tmp_path / "frame.npz"
    np.savez(arrays, positions=np.asarray(data.particles.positions), cell=np.asarray(data.cell),
             pbc=np.asarray(data.cell.pbc))
    labels = tmp_path / "types.npy"
    done = run_python(f"""
import sys
sys.modules["ovito"] = None  # import ovito fails
import numpy as np
from ovito_mlclass import neighbors, descriptors, features, model
from ovito_mlclass.classify import classify
from ovito_mlclass.frames import Frame

z = np.load({str(arrays)!r})
frame = Frame(z["positions"], z["cell"], tuple(z["pbc"]))  # cell: vectors as columns, then the origin
np.save({str(labels)!r}, classify(frame, "metals").types)
print(sorted(m for m in sys.modules if m.split(".")[0] == "ovito" and sys.modules[m] is not None))
""")
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "[]"
    through_ovito = classify(data, "metals").types
    assert len(np.unique(through_ovito)) > 1  # crystal and liquid: a comparison that can fail
    np.testing.assert_array_equal(np.load(labels), through_ovito)


def test_only_the_edges_import_ovito():
    """Everything but the modifiers, trajectory, render and the OVITO adapter imports without OVITO:
    the command line, training, properties and in-situ modules included."""
    done = run_python("""
import sys
sys.modules["ovito"] = None  # import ovito fails
from ovito_mlclass import (classify, cli, descriptors, features, frames, lammps, maps, model, neighbors, ordering,
                           orientation, structure_types, unsupervised)
from ovito_mlclass.training import md, network, snapshots, train, user_data
from ovito_mlclass.properties import composition_features, graph, graph_features
print("imported")
""")
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "imported"


def test_a_frame_of_a_data_collection_keeps_cell_types_and_names():
    data = import_file(str(example_file())).compute()
    frame = as_frame(data)
    np.testing.assert_array_equal(frame.positions, data.particles.positions)
    np.testing.assert_array_equal(frame.cell, data.cell)
    assert frame.pbc == tuple(data.cell.pbc) and frame.is2D == data.cell.is2D
    types = data.particles.particle_types
    np.testing.assert_array_equal(frame.types, types)
    assert frame.type_names == {t.id: t.name for t in types.types}


def test_a_frame_refuses_malformed_arrays():
    with pytest.raises(ValueError, match="positions"):
        Frame(np.zeros((4, 2)), np.eye(3, 4))
    with pytest.raises(ValueError, match="cell"):
        Frame(np.zeros((4, 3)), np.eye(3))
    with pytest.raises(ValueError, match="types"):
        Frame(np.zeros((4, 3)), np.eye(3, 4), types=[1, 2])
