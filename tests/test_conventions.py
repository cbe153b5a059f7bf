"""Behaving like OVITO's own identification modifiers: OVITO's type ids, names, colours and count
attributes (the reference: OVITO's PTM, CNA and Chill+ in the same process), the structures list,
parameters checked when set, sessions saved and reloaded, and trajectories whose particle count
or order changes between frames, evaluated in any order."""

import numpy as np
import pytest
from ovito.io import import_file
from ovito.modifiers import (ChillPlusModifier, CommonNeighborAnalysisModifier, ExpressionSelectionModifier,
                             PolyhedralTemplateMatchingModifier)
from ovito.pipeline import Pipeline, StaticSource
from traits.api import TraitError

from conftest import crystal, run_python
from ovito_mlclass import StructureClassifierModifier, SteinhardtModifier, UnsupervisedClassifierModifier
from ovito_mlclass.classify import classify
from ovito_mlclass.cli import example_file
from ovito_mlclass.model import load_model
from ovito_mlclass.structure_types import ALIASES

EXAMPLES = [str(example_file().with_name("cu_fcc_hot.dump.gz")), str(example_file())]  # 4,000 and 16,128 atoms


def ovito_types(modifier):
    """name -> (id, colour) of an OVITO identification modifier's structure types."""
    return {s.name: (s.id, tuple(round(c, 3) for c in s.color)) for s in modifier.structures}


@pytest.mark.parametrize("model, reference", [
    ("metals", PolyhedralTemplateMatchingModifier), ("metals", CommonNeighborAnalysisModifier),
    ("tcp", PolyhedralTemplateMatchingModifier), ("ice", ChillPlusModifier), ("ice-pointnet", ChillPlusModifier)])
def test_classes_ovito_identifies_get_ovitos_id_name_and_colour(model, reference):
    theirs = ovito_types(reference())
    kinds = load_model(model).structure_types
    shared = 0
    for cls, type_id, name, color in zip(load_model(model).classes, kinds.ids, kinds.names, kinds.colors):
        if ALIASES.get(cls, cls) in theirs:
            assert (type_id, tuple(round(c, 3) for c in color)) == theirs[name], cls
            shared += 1
        else:
            assert type_id > max(i for i, _ in theirs.values()), cls  # other classes after OVITO's ids
    assert shared >= 3


def test_count_attributes_are_named_as_ptm_names_them():
    """On the same frame, every type both modifiers know has the same count-attribute suffix."""
    data = crystal("fcc", 4, sigma=0.02)
    ptm = PolyhedralTemplateMatchingModifier()
    for s in ptm.structures:
        s.enabled = True
    theirs, ours = data.clone(), data.clone()
    theirs.apply(ptm)
    ours.apply(StructureClassifierModifier(model="tcp"))
    theirs_keys = {k.split(".")[-1] for k in theirs.attributes if k.startswith("PolyhedralTemplateMatching.counts.")}
    ours_keys = {k.split(".")[-1] for k in ours.attributes if k.startswith("StructureClassifier.counts.")}
    assert {"OTHER", "FCC", "HCP", "BCC"} <= theirs_keys & ours_keys
    assert ours.attributes["StructureClassifier.counts.FCC"] == theirs.attributes["PolyhedralTemplateMatching.counts.FCC"]


def test_a_script_selecting_by_type_id_selects_the_same_structure_as_with_ptm():
    for kind, type_id in (("hcp", 2), ("bcc", 3)):  # OVITO: HCP = 2, BCC = 3
        selected = {}
        for name, modifier in (("ptm", PolyhedralTemplateMatchingModifier()),
                               ("ours", StructureClassifierModifier(model="metals"))):
            pipeline = Pipeline(source=StaticSource(data=crystal(kind, 4, sigma=0.02)))
            pipeline.modifiers.append(modifier)
            pipeline.modifiers.append(ExpressionSelectionModifier(expression=f"StructureType=={type_id}"))
            selected[name] = np.asarray(pipeline.compute().particles["Selection"])
        assert selected["ptm"].all() and (selected["ours"] == selected["ptm"]).all(), kind


def test_switching_a_structure_off_or_recolouring_it_re_evaluates():
    pipeline = Pipeline(source=StaticSource(data=crystal("fcc", 4, sigma=0.02)))
    modifier = StructureClassifierModifier(model="metals")
    pipeline.modifiers.append(modifier)
    assert [(s.id, s.name) for s in modifier.structures] == [(1, "FCC"), (3, "BCC"), (2, "HCP"), (9, "Liquid")]
    assert (np.asarray(pipeline.compute().particles["Structure Type"]) == 1).all()
    fcc = next(s for s in modifier.structures if s.name == "FCC")
    fcc.color = (1.0, 0.0, 0.5)
    colors = np.asarray(pipeline.compute().particles["Color"])
    np.testing.assert_allclose(colors, np.tile([1.0, 0.0, 0.5], (len(colors), 1)))
    fcc.enabled = False
    data = pipeline.compute()
    assert (np.asarray(data.particles["Structure Type"]) == 0).all()  # not identified: Other, as in PTM
    assert data.attributes["StructureClassifier.counts.OTHER"] == data.particles.count


def test_parameters_are_checked_when_set():
    modifier = StructureClassifierModifier()
    for bad in (-5, 1.5, "high"):
        with pytest.raises(TraitError):
            modifier.reject_threshold = bad
    with pytest.raises(TraitError):
        modifier.device = "tpu"
    with pytest.raises(TraitError):
        modifier.model = "no-such-model"
    assert modifier.use_model_threshold
    modifier.reject_threshold = 0.7  # setting θ means using it
    assert not modifier.use_model_threshold
    assert StructureClassifierModifier(reject_threshold=None).use_model_threshold
    assert StructureClassifierModifier(model=str(load_model("ice").path)).model_file  # a path: a model file


def test_a_saved_session_restores_the_modifier(tmp_path):
    """OVITO's .ovito session file keeps every parameter, the structures list included."""
    session = tmp_path / "session.ovito"
    script = f"""
import ovito, numpy as np
from ovito.io import import_file
from ovito_mlclass import StructureClassifierModifier
if {{mode!r}} == "save":
    pipeline = import_file({EXAMPLES[0]!r})
    modifier = StructureClassifierModifier(model="metals", reject_threshold=0.6, only_selected=False)
    modifier.structures[0].color = (0.1, 0.2, 0.3)
    modifier.structures[2].enabled = False
    pipeline.modifiers.append(modifier)
    pipeline.add_to_scene()
    ovito.scene.save({str(session)!r})
else:
    ovito.scene.load({str(session)!r})
    modifier = ovito.scene.pipelines[0].modifiers[0].delegate
    print(modifier.reject_threshold, modifier.use_model_threshold,
          [(s.name, tuple(s.color), s.enabled) for s in modifier.structures])
    print(ovito.scene.pipelines[0].compute().attributes["StructureClassifier.counts.FCC"])
"""
    for mode in ("save", "load"):
        done = run_python(script.replace("{mode!r}", repr(mode)))
        assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert lines[0].startswith("0.6 False [('FCC', (0.1, 0.2, 0.3), True), ('BCC', (0.4, 0.4, 1.0), True), "
                               "('HCP', (1.0, 0.4, 0.4), False)")
    assert int(lines[1]) > 3000


@pytest.mark.parametrize("make, output", [
    (lambda: StructureClassifierModifier(model="metals"), "Structure Type"),
    (lambda: StructureClassifierModifier(model="metals-pointnet"), "Structure Type"),
    (lambda: SteinhardtModifier(degrees="4 6"), "Steinhardt Descriptors"),
    (lambda: UnsupervisedClassifierModifier(clusters=2, dims=2, reference_frame=-1), "Cluster Type")],
    ids=["metals", "pointnet", "steinhardt", "unsupervised"])
def test_frames_of_changing_size_in_any_order(make, output):
    """A trajectory of 4,000 then 16,128 atoms, its frames evaluated 1, 0, 1, 0 as the GUI's time
    slider does: every evaluation equals the modifier applied to that frame on its own."""
    pipeline = import_file(EXAMPLES)
    pipeline.modifiers.append(make())
    alone = []
    for path in EXAMPLES:
        reference = Pipeline(source=StaticSource(data=import_file(path).compute()))
        reference.modifiers.append(make())
        alone.append(np.asarray(reference.compute().particles[output]))
    for frame in (1, 0, 1, 0):
        values = np.asarray(pipeline.compute(frame).particles[output])
        np.testing.assert_array_equal(values, alone[frame])


def test_reordered_particles_get_their_own_types():
    """Two frames with the same atoms in another order: the cached posteriors of one are not reused
    for the other."""
    data = import_file(EXAMPLES[1]).compute()
    order = np.random.default_rng(0).permutation(data.particles.count)
    shuffled = data.clone()
    shuffled.particles_.positions_[:] = np.asarray(data.particles.positions)[order]
    expected = classify(data, "metals").types
    modifier = StructureClassifierModifier(model="metals")
    pipeline = Pipeline(source=StaticSource(data=data))
    pipeline.modifiers.append(modifier)
    np.testing.assert_array_equal(pipeline.compute().particles["Structure Type"], expected)
    pipeline.source.data = shuffled
    np.testing.assert_array_equal(pipeline.compute().particles["Structure Type"], expected[order])


# ---- inputs OVITO handles -----------------------------------------------------------------------
def test_a_file_without_a_cell_is_classified_like_ptm_does_it(tmp_path):
    """A plain XYZ file has no simulation cell: OVITO's PTM analyses it in a non-periodic box, and
    so do we. An fcc cluster: its core (two lattice constants from the surface) is FCC for both."""
    data = crystal("fcc", 8, sigma=0.0)
    positions = np.asarray(data.particles.positions) * 3.6
    path = tmp_path / "cluster.xyz"
    path.write_text(f"{len(positions)}\nplain xyz, no cell\n" + "".join(f"Cu {x} {y} {z}\n" for x, y, z in positions))
    pipeline = import_file(str(path))
    assert pipeline.compute().cell is None
    ptm = pipeline.compute()
    ptm.apply(PolyhedralTemplateMatchingModifier())
    pipeline.modifiers.append(StructureClassifierModifier(model="metals"))
    ours = pipeline.compute()
    depth = np.minimum(positions - positions.min(axis=0), positions.max(axis=0) - positions).min(axis=1)
    core = depth > 2 * 3.6
    assert core.sum() > 100
    assert (np.asarray(ptm.particles["Structure Type"])[core] == 1).all()
    assert (np.asarray(ours.particles["Structure Type"])[core] == 1).all()


def test_ase_atoms_and_plain_arrays_are_classified_as_the_same_data_collection():
    ase = pytest.importorskip("ase")
    data = crystal("bcc", 4, sigma=0.03, seed=2)
    positions, rows = np.asarray(data.particles.positions) * 3.0, np.asarray(data.cell)[:, :3].T * 3.0
    expected = classify({"positions": positions, "cell": rows, "pbc": (True,) * 3}, "metals").types
    atoms = ase.Atoms("Fe" * len(positions), positions=positions, cell=rows, pbc=True)
    np.testing.assert_array_equal(classify(atoms, "metals").types, expected)
    assert (expected == 3).mean() > 0.99  # BCC, OVITO's id 3
    # positions alone: an open cluster in a box around it, like a cell-less file
    assert len(classify(positions, "metals").types) == len(positions)
    with pytest.raises(TypeError, match="Cannot read a structure"):
        classify("not a structure", "metals")


def test_a_one_species_model_warns_on_a_frame_of_several_species():
    from ovito_mlclass.classify import MixedSpeciesWarning
    from ovito_mlclass.frames import from_arrays

    data = crystal("fcc", 3, sigma=0.02)
    positions, rows = np.asarray(data.particles.positions) * 4, np.asarray(data.cell)[:, :3].T * 4
    water_like = from_arrays(positions, rows, types=np.where(np.arange(len(positions)) % 3, "H", "O"))
    with pytest.warns(MixedSpeciesWarning, match="oxygen atoms of water.*2 types \\(H, O\\)"):
        classify(water_like, "ice")
    with pytest.warns(MixedSpeciesWarning):
        water_like.apply(StructureClassifierModifier(model="ice"))


def test_select_classifies_only_the_named_species(tmp_path, capsys):
    """--select O on a two-species dump: the other species is Other, the oxygens get the classes
    they get when classified alone (the reference: the oxygens written to a file of their own)."""
    from ovito.io import export_file

    from ovito_mlclass.cli import main
    from ovito_mlclass.frames import from_arrays
    from ovito_mlclass.training.snapshots import Snapshot

    snap = Snapshot.load(__import__("pathlib").Path(__file__).parent / "data" / "mw_ice_water_interface.npz")
    rng = np.random.default_rng(0)
    extra = snap.positions + rng.normal(0.0, 0.5, snap.positions.shape)  # a second species among the oxygens
    both = from_arrays(np.vstack([snap.positions, extra]), snap.cell[:, :3].T,
                       types=["O"] * len(snap) + ["H"] * len(snap))
    both.particles_.create_property("Particle Identifier", data=np.arange(1, 2 * len(snap) + 1))
    mixed, out = tmp_path / "mixed.xyz", tmp_path / "labelled.dump"
    export_file(both, str(mixed), "xyz",  # extended XYZ: the cell, and the types by name
                columns=["Particle Identifier", "Particle Type", "Position.X", "Position.Y", "Position.Z"])
    oxygen = import_file(str(mixed)).compute().particles.particle_types.type_by_name("O").id
    for select in ("O", f"ParticleType=={oxygen}"):  # type names, and an OVITO expression
        assert main(["classify", str(mixed), "-m", "ice", "--select", select, "-o", str(out)]) == 0
        labelled = import_file(str(out), columns=["Particle Identifier", "Particle Type", "Position.X",
                                                  "Position.Y", "Position.Z", "Structure Type",
                                                  "Structure Confidence"]).compute()
        types = np.asarray(labelled.particles["Structure Type"])
        alone = classify(snap.to_data_collection(), "ice").types
        np.testing.assert_array_equal(types[:len(snap)], alone)
        assert (types[len(snap):] == 0).all()
    capsys.readouterr()
    assert main(["classify", str(mixed), "--select", "Xe"]) == 2
    assert "Type 'Xe' does not exist" in capsys.readouterr().err.strip().splitlines()[-1]


@pytest.mark.parametrize("suffix", [".data", ".poscar", ".gsd"])
def test_formats_that_cannot_hold_the_types_are_refused_before_any_work(tmp_path, suffix, capsys):
    from ovito_mlclass.cli import main

    assert main(["classify", EXAMPLES[0], "-o", str(tmp_path / f"out{suffix}")]) == 2
    assert "Cannot tell the output format" in capsys.readouterr().err
    assert main(["classify", EXAMPLES[0], "-o", str(tmp_path / "out.x"), "--format", "lammps/data"]) == 2
    assert "cannot hold the structure types" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())
