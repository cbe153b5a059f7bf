"""The default model on what users load: every lattice OVITO's PTM knows, with its chemical order,
near melting; free surfaces, grain boundaries and nanoparticles; and structures no class describes.
Held-out MD snapshots (tests/data/openworld*, never trained on: other seeds, boxes and elements)
with labels by construction, lattices built here, and OVITO's PTM as the reference for ordering."""
from pathlib import Path

import numpy as np
import pytest
from ovito.modifiers import PolyhedralTemplateMatchingModifier

from conftest import crystal, make_data
from ovito_mlclass import StructureClassifierModifier
from ovito_mlclass.classify import classify
from ovito_mlclass.model import DEFAULT_MODEL, StructureModel, load_model
from ovito_mlclass.ordering import ordering_of
from md_lattices import mackay_icosahedron
from ovito_mlclass.training.snapshots import Snapshot

BULK = Path(__file__).parent / "data" / "openworld"
DEFECTS = Path(__file__).parent / "data" / "openworld-defects"


def truth(snap):
    return np.where(snap.labels >= 0, np.array(snap.classes)[np.maximum(snap.labels, 0)], "Other")


def test_the_default_model_knows_every_ptm_lattice():
    assert DEFAULT_MODEL == "openworld" and StructureClassifierModifier().model == "openworld"
    model = load_model(DEFAULT_MODEL)
    assert set(model.classes) == {"FCC", "HCP", "BCC", "ICO", "Simple cubic", "Cubic diamond", "Hexagonal diamond",
                                  "Graphene", "Liquid"}
    assert model.has_novelty
    ptm = PolyhedralTemplateMatchingModifier()
    ids = {t.name: t.id for t in ptm.structures}   # OVITO's ids for OVITO's names
    for type_id, name in zip(model.structure_types.ids, model.structure_types.names):
        assert name == "Liquid" or ids[name] == type_id


@pytest.mark.parametrize("name", ["si_cubic_diamond_0.90Tm.npz", "si_hexagonal_diamond_0.90Tm.npz",
                                  "nial_b2_0.85Tm.npz", "ni3al_l12_0.85Tm.npz", "znse_zincblende_0.85Tm.npz"])
def test_crystals_near_melting_with_their_chemical_order(name):
    snap = Snapshot.load(BULK / name)
    data = snap.to_data_collection()
    result = classify(data)
    right = result.type_names == truth(snap)
    assert right.mean() >= 0.98, (name, result.counts)
    if snap.meta["ordering"] != "PURE":  # ordering by construction of each site, as PTM numbers it
        ordering = ordering_of(data, result.types)
        assert (right & (ordering == snap.extra["ordering_site"])).mean() >= 0.98, name


def test_liquid_silicon_and_the_icosahedra_of_a_metallic_glass():
    snap = Snapshot.load(BULK / "si_liquid_1.00Tm.npz")
    result = classify(snap.to_data_collection())
    crystalline = ~np.isin(result.type_names, ["Liquid", "Other"])
    assert crystalline.mean() <= 0.02, result.counts
    glass = Snapshot.load(BULK / "cu50zr50_glass_300K.npz")   # ICO: Voronoi index <0,0,12,0> by construction
    result = classify(glass.to_data_collection())
    labels = truth(glass)
    assert (result.type_names[labels == "ICO"] == "ICO").mean() >= 0.8
    # the other atoms of the glass: amorphous (a few with distorted icosahedral shells come out ICO)
    assert np.isin(result.type_names[labels == "Liquid"], ["Liquid", "Other"]).mean() >= 0.9
    assert not np.isin(result.type_names, ["FCC", "HCP", "BCC", "Simple cubic", "Cubic diamond",
                                           "Hexagonal diamond", "Graphene"]).any()


@pytest.mark.parametrize("kind", ["fcc", "bcc", "hcp"])
def test_a_perfect_lattice_in_any_atom_order_is_all_its_lattice(kind):
    """Atoms exactly on their sites: the equidistant neighbours of a shell tie, and which 4 of an
    fcc atom's 12 the 4-neighbour block takes must not depend on the atom order (rounding would
    choose alike along the lattice; the search orders ties by a hash of the atom pair)."""
    perfect = crystal(kind, 6, sigma=0.0)
    positions = np.asarray(perfect.particles.positions)
    for seed in range(4):
        data = perfect.clone()
        order = np.random.default_rng(seed).permutation(len(positions))
        data.particles_.positions_[:] = positions[order] + np.random.default_rng(seed).random(3) * 3
        assert (classify(data).type_names == kind.upper()).all(), (kind, seed)


@pytest.mark.parametrize("sigma", [0.0, 0.03])   # Gaussian displacements per component, in d_nn
def test_simple_cubic(sigma):
    grid = np.stack(np.meshgrid(*[np.arange(8)] * 3, indexing="ij"), -1).reshape(-1, 3).astype(float)
    rng = np.random.default_rng(5)
    data = make_data((grid + rng.normal(0, sigma, grid.shape)) * 2.7, np.eye(3) * 8 * 2.7)
    assert (classify(data).type_names == "Simple cubic").mean() >= 0.99


def test_mackay_icosahedron_is_never_called_a_crystal_or_liquid():
    """An ideal 147-atom Mackay icosahedron: its surface shell (92 atoms) is Other; its core, whose
    icosahedral neighbourhoods the training data hold only in a few thermal clusters and glasses, is
    ICO or Other, never Liquid nor a crystal, but for the atoms on the twin planes between its fcc
    tetrahedra (the edges of the second shell), whose first shell is hcp: HCP where OVITO's PTM finds
    HCP, else Other."""
    positions = mackay_icosahedron(3, 2.55)
    data = make_data(positions + 30.0, np.eye(3) * 60, pbc=(False,) * 3)
    result = classify(data)
    radius = np.linalg.norm(positions - positions.mean(axis=0), axis=1)
    outer = radius > 2.1 * 2.55                   # the third shell (its faces from 2.27 d, the second up to 1.90 d)
    assert outer.sum() == 92
    assert (result.type_names[outer] == "Other").mean() >= 0.95
    reference = data.clone()
    reference.apply(PolyhedralTemplateMatchingModifier())
    ptm_hcp = np.asarray(reference.particles["Structure Type"]) == PolyhedralTemplateMatchingModifier.Type.HCP
    allowed = np.where(ptm_hcp, np.isin(result.type_names, ["HCP", "Other"]), np.isin(result.type_names, ["ICO", "Other"]))
    assert allowed.all(), result.counts
    assert result.type_names[np.argmin(radius)] == "ICO"


@pytest.mark.parametrize("name", ["defects_surface_ag111_0.50Tm.npz", "defects_surface_ag100_0.50Tm.npz"])
def test_free_surfaces(name):
    snap = Snapshot.load(DEFECTS / name)
    result = classify(snap.to_data_collection())
    layer = snap.extra["surface_layer"]
    assert (result.type_names[layer == 0] == "Other").mean() >= 0.95, result.counts
    inner = (layer >= 2) & (snap.labels >= 0)
    assert (result.type_names[inner] == truth(snap)[inner]).mean() >= 0.99
    assert (result.type_names[layer == 0] != "Liquid").all()


def test_grain_boundary():
    snap = Snapshot.load(DEFECTS / "defects_gb_ag_s5_310_0.50Tm.npz")
    result = classify(snap.to_data_collection())
    core = snap.labels < 0
    assert np.isin(result.type_names[core], ["Other", "FCC", "HCP"]).mean() >= 0.9
    assert (result.type_names[core] != "Liquid").all()
    far = (snap.extra["defect_distance"] >= 5.0) & (snap.labels >= 0)
    assert (result.type_names[far] == truth(snap)[far]).mean() >= 0.99


def without_bulk_phase(model):
    """The same network and thresholds without the bulk-phase rule (the metadata record removed)."""
    meta = {key: value for key, value in model.metadata.items() if key != "bulk_phase"}
    return StructureModel(module=model.module, metadata=meta)


def test_grain_boundary_cores_are_never_liquid_and_liquids_stay_liquid():
    """bcc Fe Σ9(221) at 0.5 T_m (held out): the network alone calls some core atoms Liquid, scattered
    through a sheet; the bulk-phase rule (Liquid needs Liquid or ICO on 6 of 12 neighbours) makes
    them Other. In liquid Si and a Cu-Zr glass it leaves the Liquid label where it was."""
    model = load_model(DEFAULT_MODEL)
    assert model.bulk_phase == {"class": "Liquid", "neighbors": 12, "min_neighbors": 6, "counting": ["ICO"]}
    snap = Snapshot.load(DEFECTS / "defects_gb_fe_s9_221_0.50Tm.npz")
    data = snap.to_data_collection()
    core = snap.labels < 0
    network_alone = classify(data, without_bulk_phase(model)).type_names
    assert (network_alone[core] == "Liquid").sum() >= 50   # what the rule is there for
    result = classify(data)
    assert (result.type_names[core] != "Liquid").all()
    assert np.isin(result.type_names[core], ["Other", "BCC"]).mean() >= 0.9
    far = (snap.extra["defect_distance"] >= 5.0) & (snap.labels >= 0)
    assert (result.type_names[far] == truth(snap)[far]).mean() >= 0.99
    changed = result.type_names != network_alone   # the rule only turns Liquid into Other
    assert (network_alone[changed] == "Liquid").all() and (result.type_names[changed] == "Other").all()
    for name in ("si_liquid_1.00Tm.npz", "cu50zr50_glass_300K.npz"):
        data = Snapshot.load(BULK / name).to_data_collection()
        alone = (classify(data, without_bulk_phase(model)).type_names == "Liquid").sum()
        assert (classify(data).type_names == "Liquid").sum() >= 0.999 * alone, name


def test_nanoparticle():
    snap = Snapshot.load(DEFECTS / "defects_nanoparticle_ag_cuboctahedron_0.50Tm.npz")
    result = classify(snap.to_data_collection())
    layer = snap.extra["surface_layer"]   # neighbour hops from the surface shell
    assert (result.type_names[layer == 0] == "Other").mean() >= 0.9
    below = (layer == 1) & (snap.labels >= 0)   # complete shells, but next to the surface: FCC or Other
    assert np.isin(result.type_names[below], ["FCC", "Other"]).all()
    inner = (layer >= 2) & (snap.labels >= 0)
    assert (result.type_names[inner] == truth(snap)[inner]).mean() >= 0.99


@pytest.mark.parametrize("name, other", [("ood_a15_w_600K.npz", 0.98), ("ood_beta_sn.npz", 0.99),
                                         ("ood_simple_hexagonal.npz", 0.99), ("ood_void_cu.npz", 0.75)])
def test_structures_no_class_describes_are_other(name, other):
    """Held out from training: lattices of no class, and the surface of a void."""
    snap = Snapshot.load(DEFECTS / name)
    result = classify(snap.to_data_collection())
    must = snap.extra["must_be_other"].astype(bool)
    assert (result.type_names[must] == "Other").mean() >= other, result.counts
    if "fk_coordination" in snap.extra:   # Frank-Kasper Z12 sites: an icosahedral first shell
        z12 = snap.extra["fk_coordination"] == 12
        assert z12.any() and not (must & z12).any()
        assert np.isin(result.type_names[z12], ["ICO", "Other"]).all()
    known = snap.labels >= 0
    assert (result.type_names[known] == truth(snap)[known]).mean() >= 0.99 if known.any() else True


def test_novelty_is_what_turns_unknown_lattices_into_other():
    """Softmax confidence alone calls beta-Sn simple cubic; the novelty criterion makes it Other,
    and switching it off (a threshold of infinity) brings the confident wrong answer back."""
    snap = Snapshot.load(DEFECTS / "ood_beta_sn.npz")
    data = snap.to_data_collection()
    without = classify(data, novelty_threshold=np.inf)
    assert (without.type_names != "Other").mean() >= 0.9
    with_novelty = classify(data)
    assert (with_novelty.posteriors.novelty > 1).mean() >= 0.99
    np.testing.assert_array_equal(with_novelty.confidence, without.confidence)  # confidence keeps its meaning


@pytest.mark.parametrize("name", ["si_surface_100_0.75Tm.npz", "cu50zr50_glass_300K.npz"])
def test_the_kernels_most_probable_class_gives_what_the_posteriors_give(name):
    """The compiled network names each atom's most probable class and its posterior; posteriors
    without them (restored from the modifier's cache, or from TorchScript) give the classification
    from numpy's argmax: the same types and confidence at the model's and at other thresholds,
    here on a hot surface (topology tests, Other atoms) and a glass (Liquid, ICO)."""
    from dataclasses import replace

    from ovito_mlclass.classify import assign, posteriors

    model = load_model(DEFAULT_MODEL)
    data = Snapshot.load(BULK / name).to_data_collection()
    post = posteriors(data, model)
    assert post.most_probable is not None
    np.testing.assert_array_equal(post.most_probable, post.probabilities.argmax(axis=1))
    plain = replace(post, most_probable=None, confidence=None)
    for theta in (None, 0.0, 0.9):
        ours, theirs = assign(post, model, theta), assign(plain, model, theta)
        np.testing.assert_array_equal(ours.types, theirs.types)
        np.testing.assert_array_equal(ours.confidence, theirs.confidence)


@pytest.mark.parametrize("snapshot", [DEFECTS / "defects_gb_fe_s9_221_0.50Tm.npz", BULK / "cu50zr50_glass_300K.npz"])
def test_assign_reads_only_the_rows_the_modifier_keeps(snapshot):
    """Of every atom's 12 nearest, the modifier's cache keeps only the rows ``rows_read`` names (the
    atoms whose most probable class is Liquid, and those given a close-packed shell). With every
    other row pointing at random atoms, every threshold, novelty threshold and set of disabled
    classes gives the same types; and the modifier, after a change of threshold (the cached
    posteriors and rows), gives what ``assign`` gives on fresh posteriors."""
    from dataclasses import replace

    from ovito.pipeline import Pipeline, StaticSource

    from ovito_mlclass.classify import assign, posteriors, rows_read

    model = load_model(DEFAULT_MODEL)
    data = Snapshot.load(snapshot).to_data_collection()
    post = posteriors(data, model)
    rng = np.random.default_rng(5)
    n = len(post.described)
    close_packed = post.close_packed.copy()   # a few atoms with a close-packed shell, as if lost
    close_packed[rng.choice(n, 50, replace=False)] = model.classes.index("FCC")
    post = replace(post, close_packed=close_packed)
    read = rows_read(post, model)
    assert 50 <= read.sum() < n
    scrambled = post.neighbors.copy()
    scrambled[~read] = rng.integers(0, n, size=((~read).sum(), scrambled.shape[1]))
    for theta in (None, 0.0, 0.5, 0.95):
        for novelty in (1.0, 3.0):
            for disabled in ((), ("ICO",), ("FCC", "BCC")):
                np.testing.assert_array_equal(assign(post, model, theta, disabled, novelty).types,
                                              assign(replace(post, neighbors=scrambled), model, theta, disabled,
                                                     novelty).types)
    modifier = StructureClassifierModifier(reject_threshold=0.5, use_model_threshold=False)
    pipeline = Pipeline(source=StaticSource(data=data))
    pipeline.modifiers.append(modifier)
    pipeline.compute()
    modifier.reject_threshold = 0.95   # from the cache
    fresh = assign(posteriors(data, model), model, 0.95)
    np.testing.assert_array_equal(pipeline.compute().particles["Structure Type"], fresh.types)
