"""The command line: the README's main job (demo: classify the bundled snapshot, render it), classify, models."""
from pathlib import Path

import numpy as np
import pytest
from ovito.io import import_file
from PIL import Image

from ovito_mlclass import BACKEND
from ovito_mlclass.cli import example_file, main


def test_the_compiled_kernel_is_what_the_suite_tests():
    assert BACKEND == "c++"


def test_demo_prints_counts_and_renders_the_structure_colours(tmp_path, capsys):
    assert main(["demo", "-o", str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    assert "16128 atoms classified" in printed
    rows = {line.split()[0]: int(line.split()[1]) for line in printed.splitlines()
            if line.strip() and line.split()[0] in ("Other", "FCC", "BCC", "HCP", "Liquid")}
    assert sum(rows.values()) == 16128
    rgb = np.asarray(Image.open(tmp_path / "demo_structures.png").convert("RGB")).astype(int)
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    # OVITO's FCC green (0.4, 1.0, 0.4) for the crystal slab, our Liquid grey (0.7, 0.7, 0.75) for the
    # melt around it (both shaded by the renderer); both must cover a visible part of the image
    green = (g > r + 60) & (g > b + 60)
    grey = (abs(r - g) < 12) & (b >= r) & (b - r < 40) & (r > 60) & (r < 215)
    assert green.mean() > 0.05, green.mean()
    assert grey.mean() > 0.05, grey.mean()


def write_dump(tmp_path, frames=2):
    """A small mW water trajectory (committed validation snapshot) as a LAMMPS text dump."""
    from ovito.io import export_file
    from ovito.pipeline import Pipeline, StaticSource

    from ovito_mlclass.training.snapshots import Snapshot

    snap = Snapshot.load(Path(__file__).parent / "data" / "mw_ice_water_interface.npz")
    single, path = tmp_path / "water_frame.dump", tmp_path / "water.dump"
    data = snap.to_data_collection()
    data.particles_.create_property("Particle Identifier", data=np.arange(1, len(snap) + 1))
    export_file(Pipeline(source=StaticSource(data=data)), str(single), "lammps/dump",
                columns=["Particle Identifier", "Position.X", "Position.Y", "Position.Z"])
    # the same frame repeated, written to another file: OVITO may still hold the one it exported
    path.write_text(single.read_text() * frames)
    return path, snap


def test_classify_writes_exactly_the_chosen_frames(tmp_path):
    # frames 0, 1 and 3 of four (timesteps 0, 10, 20, 30; unevenly spaced): the file holds 0, 10, 30
    from ovito.io import import_file

    path, _ = write_dump(tmp_path, frames=1)
    frame = path.read_text()
    step = frame.split("ITEM: TIMESTEP\n")[1].split("\n")[0]
    path.write_text("".join(frame.replace(f"ITEM: TIMESTEP\n{step}\n", f"ITEM: TIMESTEP\n{10 * k}\n", 1)
                            for k in range(4)))
    out = tmp_path / "chosen.dump"
    assert main(["classify", str(path), "-m", "ice", "-o", str(out), "--frames", "0,1,3"]) == 0
    written = import_file(str(out), multiple_frames=True)
    assert [written.compute(k).attributes["Timestep"] for k in range(written.num_frames)] == [0, 10, 30]


def test_classify_round_trip(tmp_path, capsys):
    from ovito.io import import_file

    from ovito_mlclass.classify import classify

    source, snap = write_dump(tmp_path)
    out = tmp_path / "labelled.dump"
    assert main(["classify", str(source), "-m", "ice", "-o", str(out), "--frames", "1"]) == 0
    printed = capsys.readouterr().out
    assert "Hexagonal ice" in printed and printed.count("\n") == 4  # header, one frame, summary, "wrote"
    back = import_file(str(out), columns=["Particle Identifier", "Position.X", "Position.Y", "Position.Z",
                                          "Structure Type", "Structure Confidence"]).compute()
    expected = classify(import_file(str(source)).compute(1), "ice")
    np.testing.assert_array_equal(np.asarray(back.particles["Structure Type"]), expected.types)
    np.testing.assert_allclose(np.asarray(back.particles["Structure Confidence"]), expected.confidence, rtol=1e-6)
    counts = [int(c) for c in printed.splitlines()[1].split()[1:]]
    assert counts == list(expected.counts.values())


def test_classify_reports_and_writes_the_chemical_ordering(tmp_path, capsys):
    """--ordering: per-frame counts of every ordering type, the table's columns and the output's
    Ordering Type column equal the array API's ordering of the same atoms (held-out L1_2 Ni3Al at
    0.85 T_m, written as a LAMMPS dump with its two species)."""
    import csv

    from ovito.io import export_file
    from ovito.pipeline import Pipeline, StaticSource

    from ovito_mlclass.classify import classify
    from ovito_mlclass.ordering import ORDERING_TYPES, ordering_of
    from ovito_mlclass.training.snapshots import Snapshot

    snap = Snapshot.load(Path(__file__).parent / "data" / "openworld" / "ni3al_l12_0.85Tm.npz")
    data = snap.to_data_collection()
    data.particles_.create_property("Particle Identifier", data=np.arange(1, len(snap) + 1))
    source, out, table = tmp_path / "ni3al.dump", tmp_path / "labelled.dump", tmp_path / "counts.csv"
    export_file(Pipeline(source=StaticSource(data=data)), str(source), "lammps/dump",
                columns=["Particle Identifier", "Particle Type", "Position.X", "Position.Y", "Position.Z"])
    assert main(["classify", str(source), "--ordering", "-o", str(out), "--table", str(table)]) == 0
    printed = capsys.readouterr().out.splitlines()
    reread = import_file(str(source)).compute()
    expected = ordering_of(reread, classify(reread).types)
    names = [name for name, _, _ in ORDERING_TYPES.values()]
    header = printed.index("chemical ordering:")
    counts = [int(c) for c in printed[header + 2].split()[1:]]
    assert counts == [int((expected == i).sum()) for i in ORDERING_TYPES]
    assert counts[3] > 2000 and counts[4] > 600        # the L1_2 A and B sites
    back = import_file(str(out), columns=["Particle Identifier", "Particle Type", "Position.X", "Position.Y",
                                          "Position.Z", "Structure Type", "Structure Confidence",
                                          "Structure Novelty", "Ordering Type"]).compute()
    np.testing.assert_array_equal(np.asarray(back.particles["Ordering Type"]), expected)
    with open(table) as f:
        row = next(csv.DictReader(f))
    assert [int(row[f"ordering {name}"]) for name in names] == counts


@pytest.mark.parametrize("args, message", [
    (["classify", "no-such-file.dump"], "No such input file"),
    (["classify", "{src}", "-o", "out.unknown"], "output format"),
    (["classify", "{src}", "--frames", "7"], "out of range"),
    (["classify", "{src}", "--frames", "x"], "frames 'x': use all"),
    (["classify", "{src}", "--frames", "1:2:3:4"], "start:stop:step"),
    (["classify", "{src}", "--frames", "::0"], "step not 0"),
    (["classify", "{dir}"], "is a folder"),
    (["classify", "{empty}"], "is empty"),
    (["classify", "{binary}"], "OVITO cannot read it"),
    (["classify", "{src}", "-o", "{src}/labelled.dump"], "is a file, not a folder"),
    (["classify", "{src}", "-m", ""], "No model given"),
    (["classify", "{src}", "-m", "{dir}"], "is a folder, not a model file"),
    (["classify", "{src}", "--device", "tpu"], "Unknown device"),
    (["cluster", "{src}", "--neighbors", "abc"], "--neighbors 'abc'"),
    (["cluster", "{src}", "--names", "a,a", "--save-model", "m.pt"], "distinct, non-empty names"),
    (["predict-property", "{dir}"], "no id_prop.csv"),
    (["predict-property", "{src}", "-m", "no-such-model"], "No model named"),
])
def test_anticipated_failures_are_one_line_naming_what_to_mend(tmp_path, capsys, args, message):
    source, _ = write_dump(tmp_path, frames=1)
    (tmp_path / "folder").mkdir()
    (tmp_path / "empty.dump").write_bytes(b"")
    (tmp_path / "binary.dump").write_bytes(bytes(range(256)) * 64)
    names = {"{src}": str(source), "{dir}": str(tmp_path / "folder"), "{empty}": str(tmp_path / "empty.dump"),
             "{binary}": str(tmp_path / "binary.dump")}
    argv = []
    for arg in args:
        for key, value in names.items():
            arg = arg.replace(key, value)
        argv.append(arg)
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("ovito-mlclass: ") and message in err[0], err
    with pytest.raises(Exception):  # --traceback: the exception itself
        main(argv + ["--traceback"])


@pytest.mark.parametrize("args", [["classify", "f.dump", "--threshold", "2"], ["classify", "f.dump", "--workers", "-1"],
                                  ["classify", "f.dump", "--threshold", "high"], ["cluster", "f.dump", "--dims", "0"]])
def test_bad_numbers_are_refused_before_any_work(args, capsys):
    with pytest.raises(SystemExit) as stop:
        main(args)
    assert stop.value.code == 2 and args[-2] in capsys.readouterr().err


def test_version(capsys):
    from ovito_mlclass import __version__

    with pytest.raises(SystemExit):
        main(["--version"])
    assert capsys.readouterr().out.strip() == f"ovito-mlclass {__version__}"


def test_models_lists_the_builtin_models(capsys):
    assert main(["models"]) == 0
    printed = capsys.readouterr().out
    assert "ice:" in printed and "trained by: ovito-mlclass train ice" in printed


# ---- pictures ----------------------------------------------------------------------------------
def test_structure_map_against_ovitos_averaged_steinhardt_and_published_lattice_values(tmp_path):
    """The map's q̄4, q̄6 equal OVITO's own neighbour-averaged Steinhardt parameters (12 nearest
    neighbours) atom by atom; the ideal-lattice markers are the published values."""
    from ovito.modifiers import SteinhardtParametersModifier as OvitoSteinhardt

    from ovito_mlclass.maps import ideal_lattices
    from ovito_mlclass.modifiers import StructureMapModifier
    from ovito_mlclass.modifiers import StructureClassifierModifier

    data = import_file(str(example_file())).compute()
    reference = data.clone()
    reference.apply(OvitoSteinhardt(neighbor_mode=OvitoSteinhardt.NeighborMode.NearestNeighbors, num_neighbors=12, max_l=6,
                                    compute_averaged=True))
    smooth = np.asarray(reference.particles["Smooth Steinhardt"])  # components q2 .. q6
    data.apply(StructureClassifierModifier(model="metals"))
    data.apply(StructureMapModifier())
    table = data.tables["structure-map"]
    np.testing.assert_allclose(np.asarray(table["qbar4"]), smooth[:, 2], atol=1e-7)
    np.testing.assert_allclose(np.asarray(table["qbar6"]), smooth[:, 4], atol=1e-7)
    np.testing.assert_array_equal(np.asarray(table["Structure Type"]), np.asarray(data.particles["Structure Type"]))
    ideal = ideal_lattices()
    # Lechner & Dellago (2008) / freud's test constants: fcc q4 0.19094, q6 0.57452; hcp q4 0.09722, q6 0.48476
    np.testing.assert_allclose(ideal["FCC"], (0.19094065, 0.57452416), atol=1e-7)
    np.testing.assert_allclose(ideal["HCP"], (0.09722222, 0.48476169), atol=1e-7)
    assert "BCC" not in ideal  # 12 nearest neighbours of bcc are no complete shell


def test_picture_commands_write_images(tmp_path, capsys):
    assert main(["map", str(example_file()), "-o", str(tmp_path / "map.png"), "--table", str(tmp_path / "map.csv")]) == 0
    assert main(["map", str(example_file()), "--histogram", "-o", str(tmp_path / "hist.png")]) == 0
    assert main(["models", "--plot", str(tmp_path)]) == 0
    capsys.readouterr()
    for name in ("map.png", "hist.png", "metals_confusion.png", "tcp_confusion.png", "ice_confusion.png"):
        image = np.asarray(Image.open(tmp_path / name).convert("L"))
        assert image.shape[0] > 200 and image.std() > 10, name  # drawn, not blank
    values = np.loadtxt(tmp_path / "map.csv", delimiter=",", skiprows=1)
    assert values.shape == (16128, 2)


def test_the_legend_counts_what_ptm_counts():
    from ovito.modifiers import PolyhedralTemplateMatchingModifier

    from ovito_mlclass.render import legend_lines

    data = import_file(str(example_file())).compute()
    data.apply(PolyhedralTemplateMatchingModifier())
    lines = {name: count for name, _, count, _ in legend_lines(data.particles["Structure Type"])}
    for key, name in (("OTHER", "Other"), ("FCC", "FCC"), ("HCP", "HCP"), ("BCC", "BCC")):
        expected = data.attributes[f"PolyhedralTemplateMatching.counts.{key}"]
        assert lines.get(name, 0) == expected, name
