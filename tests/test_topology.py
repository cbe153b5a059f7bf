"""The topology tests (ovito_mlclass.topology) against OVITO's own modifiers atom by atom (adaptive
CNA, Identify Diamond), the compiled kernels against their pure-Python references, and the rule by
which the default model uses them: a topology that proves the network's most probable class
certifies it."""
from pathlib import Path

import numpy as np
import pytest
from ovito.modifiers import CommonNeighborAnalysisModifier, IdentifyDiamondModifier

from conftest import crystal, make_data
from md_lattices import PHASES, diamond_slab, lattice, mackay_icosahedron
from ovito_mlclass import _compiled, topology
from ovito_mlclass.classify import Posteriors, assign, classify, posteriors
from ovito_mlclass.descriptors import reference
from ovito_mlclass.frames import as_frame
from ovito_mlclass.model import load_model
from ovito_mlclass.neighbors import nearest_neighbors
from ovito_mlclass.training.snapshots import Snapshot

S3 = np.sqrt(3)
BULK = Path(__file__).parent / "data" / "openworld"
DEFECTS = Path(__file__).parent / "data" / "openworld-defects"
# OVITO's IdentifyDiamondModifier types -> ours
OVITO_DIAMOND = {0: topology.NONE, 1: topology.CUBIC, 2: topology.NEAR_CUBIC, 3: topology.SECOND_CUBIC,
                 4: topology.HEXAGONAL, 5: topology.NEAR_HEXAGONAL, 6: topology.SECOND_HEXAGONAL}


def perfect(phase, reps, sigma=0.0, seed=0, a=5.43):
    positions, box, _, _ = lattice(PHASES[phase], a, reps)
    positions = positions + np.random.default_rng(seed).normal(0.0, sigma, positions.shape)
    return make_data(positions, np.diag(box))


def slab():
    positions, box, _, _ = diamond_slab(5.43, "111", (4, 2, 3), vacuum=12.0)
    positions = positions + np.random.default_rng(1).normal(0.0, 0.05, positions.shape)
    return make_data(positions, np.diag(box), pbc=(True, True, False))


def snapshot(folder, name):
    return lambda: Snapshot.load(folder / name).to_data_collection()


def icosahedron():
    positions = mackay_icosahedron(3, 2.55)
    return make_data(positions + 20.0, np.eye(3) * 40.0, pbc=(False, False, False))


DIAMOND_FRAMES = {
    "cubic diamond": lambda: perfect("CD", (3, 3, 3)),
    "hexagonal diamond": lambda: perfect("HD", (4, 3, 3), a=3.84),
    "noisy cubic diamond": lambda: perfect("CD", (4, 4, 4), sigma=0.12, seed=2),
    "noisy hexagonal diamond": lambda: perfect("HD", (5, 3, 3), sigma=0.12, seed=3, a=3.84),
    "one cubic cell (images among the neighbours)": lambda: perfect("CD", (1, 1, 1), sigma=0.02),
    "(111) slab": slab,
    "fcc": lambda: crystal("fcc", 4, sigma=0.02),
    "Si-SW cubic diamond, 0.9 T_m": snapshot(BULK, "si_cubic_diamond_0.90Tm.npz"),
    "Si-SW hexagonal diamond, 0.9 T_m": snapshot(BULK, "si_hexagonal_diamond_0.90Tm.npz"),
    "ZnSe-SW wurtzite, 0.9 T_m": snapshot(BULK, "znse_wurtzite_0.90Tm.npz"),
    "Si-SW (100) surface, 0.75 T_m": snapshot(BULK, "si_surface_100_0.75Tm.npz"),
    "liquid Si": snapshot(BULK, "si_liquid_1.00Tm.npz"),
    "beta-Sn": snapshot(DEFECTS, "ood_beta_sn.npz"),
}
CNA_FRAMES = {
    "fcc": lambda: crystal("fcc", 4),
    "hcp": lambda: crystal("hcp", 4),
    "bcc": lambda: crystal("bcc", 4),
    "hot fcc": lambda: crystal("fcc", 5, sigma=0.05, seed=1),
    "hot bcc": lambda: crystal("bcc", 5, sigma=0.06, seed=2),
    "hot hcp": lambda: crystal("hcp", 5, sigma=0.05, seed=3),
    "one fcc cell (images among the neighbours)": lambda: crystal("fcc", 1, sigma=0.01),
    "Mackay icosahedron": icosahedron,
    "NiAl B2, 0.85 T_m": snapshot(BULK, "nial_b2_0.85Tm.npz"),
    "Ni3Al L12, 0.85 T_m": snapshot(BULK, "ni3al_l12_0.85Tm.npz"),
    "Cu-Zr glass": snapshot(BULK, "cu50zr50_glass_300K.npz"),
    "Ag (111) surface, 0.5 T_m": snapshot(DEFECTS, "defects_surface_ag111_0.50Tm.npz"),
    "Fe grain boundary, 0.5 T_m": snapshot(DEFECTS, "defects_gb_fe_s9_221_0.50Tm.npz"),
    "A15 W": snapshot(DEFECTS, "ood_a15_w_600K.npz"),
    "void in Cu": snapshot(DEFECTS, "ood_void_cu.npz"),
    "liquid Si": snapshot(BULK, "si_liquid_1.00Tm.npz"),
}


@pytest.mark.parametrize("name", list(CNA_FRAMES))
def test_adaptive_cna_is_ovitos(name):
    data = CNA_FRAMES[name]()
    reference_data = data.clone()
    reference_data.apply(CommonNeighborAnalysisModifier())   # adaptive
    expected = np.asarray(reference_data.particles["Structure Type"])
    ours = topology.adaptive_cna(data)
    np.testing.assert_array_equal(ours, expected)
    if name in ("fcc", "hcp", "bcc"):
        assert (ours == {"fcc": topology.CNA_FCC, "hcp": topology.CNA_HCP, "bcc": topology.CNA_BCC}[name]).all()
    if name == "Mackay icosahedron":
        positions = np.asarray(data.particles.positions)
        centre = np.argmin(np.linalg.norm(positions - positions.mean(axis=0), axis=1))
        assert ours[centre] == topology.CNA_ICO


def test_adaptive_cna_only_where_asked():
    data = crystal("fcc", 3, sigma=0.02)
    which = np.zeros(data.particles.count, bool)
    which[::3] = True
    ours = topology.adaptive_cna(data, which=which)
    assert (ours[which] == topology.CNA_FCC).all() and (ours[~which] == topology.CNA_OTHER).all()


@pytest.mark.parametrize("name", list(DIAMOND_FRAMES))
def test_the_diamond_topology_is_identify_diamonds(name):
    data = DIAMOND_FRAMES[name]()
    reference_data = data.clone()
    reference_data.apply(IdentifyDiamondModifier())
    ovito_types = np.asarray(reference_data.particles["Structure Type"])
    ours = topology.diamond_topology(data)
    expected = np.array([OVITO_DIAMOND[int(t)] for t in ovito_types])
    # second neighbours that the material does not surround (a free surface's outermost atoms): NONE
    outside = np.isin(ovito_types, (3, 6)) & ~topology.surrounded(*neighbour_rows(data, topology.SURROUNDING))
    assert (ours[outside] == topology.NONE).all()
    # OVITO marks an atom listed by atoms of both kinds after whichever comes first; we leave it NONE,
    # and with it the atoms only it would have listed
    both = np.isin(ovito_types, (2, 3, 5, 6)) & (ours == topology.NONE) & ~outside
    assert both.mean() <= 0.01
    np.testing.assert_array_equal(ours[~both & ~outside], expected[~both & ~outside])
    if name == "(111) slab":  # OVITO's second neighbours are its outermost atoms
        assert outside.sum() == (ovito_types == 3).sum() > 0
    if name == "Si-SW (100) surface, 0.75 T_m":  # those of the outermost layer are outside
        outermost = Snapshot.load(BULK / "si_surface_100_0.75Tm.npz").extra["surface_layer"] == 0
        assert outside[outermost].sum() == (ovito_types[outermost] == 3).sum() > 0
    if name == "ZnSe-SW wurtzite, 0.9 T_m":  # inside a hot crystal, a broken bond's second neighbours
        assert (ours == topology.SECOND_HEXAGONAL).sum() == (ovito_types == 6).sum() > 0
    if name.startswith(("cubic", "hexagonal", "one cubic")):
        assert (ours == (topology.CUBIC if "cubic" in name else topology.HEXAGONAL)).all()
    if name in ("fcc", "liquid Si", "beta-Sn"):
        assert (ours == topology.NONE).mean() >= 0.99


def sheet(phase="GR", a=2.46, reps=(6, 6, 1), sigma=0.0, seed=0, drop=None):
    """A honeycomb sheet (graphene, or h-BN with phase 'BN') in a periodic cell with 20 Å along z,
    thermally disordered by ``sigma`` (Å), without the atom ``drop`` (a vacancy)."""
    positions, box, _, _ = lattice(PHASES[phase], a, reps)
    cell = np.diag(box).copy()
    cell[2, 2] = 20.0
    positions = positions + np.random.default_rng(seed).normal(0.0, sigma, positions.shape)
    if drop is not None:
        positions = np.delete(positions, drop, axis=0)
    return make_data(np.mod(positions, np.diag(cell)), cell)


def monolayer(kind, a=2.5, reps=8, sigma=0.05):
    """A triangular or square monolayer (no class of the default model), periodic in x and y."""
    i, j = np.meshgrid(np.arange(reps), np.arange(reps), indexing="ij")
    if kind == "triangular":
        xy = np.column_stack([(i + 0.5 * j).ravel(), (S3 / 2 * j).ravel()]) * a
        cell = [[reps * a, 0, 0], [reps * a / 2, reps * a * S3 / 2, 0]]
    else:
        xy = np.column_stack([i.ravel(), j.ravel()]) * a
        cell = [[reps * a, 0, 0], [0, reps * a, 0]]
    positions = np.column_stack([xy, np.full(len(xy), 10.0)])
    positions += np.random.default_rng(1).normal(0.0, sigma, positions.shape)
    return make_data(positions, np.array(cell + [[0, 0, 20.0]]))


@pytest.mark.parametrize("name, data, expected", [
    ("graphene", lambda: sheet(), topology.GRAPHENE),
    ("hot graphene", lambda: sheet(sigma=0.12, seed=3), topology.GRAPHENE),
    ("h-BN", lambda: sheet("BN", 2.50), topology.GRAPHENE),
    ("cubic diamond", lambda: perfect("CD", (3, 3, 3), sigma=0.05), topology.NONE),
    ("hexagonal diamond", lambda: perfect("HD", (4, 3, 3), a=3.84), topology.NONE),
    ("simple cubic", lambda: perfect("SC", (5, 5, 5), a=2.5, sigma=0.05), topology.NONE),
    ("fcc", lambda: crystal("fcc", 3, sigma=0.02), topology.NONE),
    ("bcc", lambda: crystal("bcc", 3, sigma=0.02), topology.NONE),
    ("triangular monolayer", lambda: monolayer("triangular"), topology.NONE),
    ("square monolayer", lambda: monolayer("square"), topology.NONE),
])
def test_the_graphene_topology_finds_honeycombs_only(name, data, expected):
    """Labels by construction: every atom of a (hot) honeycomb sheet passes, none of a 3-D lattice
    or of a monolayer without honeycomb."""
    assert (topology.graphene_topology(data()) == expected).all()


def test_a_vacancy_in_graphene_leaves_its_neighbours_listed():
    """By construction: the three atoms around a vacancy have two bonds, not three; they fail the
    test of their own, and so do their neighbours, whose second shells they spoil, but these list
    them, and honeycomb atoms list those. Every atom is certified."""
    data = sheet(drop=0)
    kinds = topology.graphene_topology(data)
    perfect_rows = neighbour_rows(sheet(), 3)[0]
    around = perfect_rows[0] - 1                      # the vacancy's neighbours, indices after the drop
    assert (kinds[around] == topology.SECOND_GRAPHENE).all()
    assert (kinds[neighbour_rows(data, 3)[0][around, :2]] == topology.NEAR_GRAPHENE).all()
    assert (kinds != topology.NONE).all() and (kinds == topology.GRAPHENE).mean() >= 0.8
    # only the atoms asked for are typed
    which = np.zeros(len(kinds), bool)
    which[around] = True
    np.testing.assert_array_equal(topology.graphene_topology(data, which=which), np.where(which, kinds, topology.NONE))


def test_a_honeycomb_certifies_the_networks_graphene():
    """Every atom rejected, the network's favourite Graphene: a hot sheet comes back Graphene, a
    triangular monolayer stays Other; with another favourite nothing is given back."""
    model = load_model("openworld")
    hot = sheet(sigma=0.1, seed=2)
    assert (assign(doubtful(hot, model, "Graphene"), model).type_names == "Graphene").all()
    assert (assign(doubtful(hot, model, "Liquid"), model).type_names == "Other").all()
    assert (assign(doubtful(monolayer("triangular"), model, "Graphene"), model).type_names == "Other").all()


def neighbour_rows(data, k):
    frame = as_frame(data)
    found = nearest_neighbors(frame, k, allow_missing=True)
    return found.neighbors.reshape(frame.count, -1), found.vectors.reshape(frame.count, -1, 3)


@pytest.mark.skipif(not _compiled.COMPILED, reason="needs the compiled kernels")
@pytest.mark.parametrize("name", list(DIAMOND_FRAMES) + [f"cna: {n}" for n in CNA_FRAMES])
def test_the_compiled_kernels_match_the_references(name):
    data = CNA_FRAMES[name[5:]]() if name.startswith("cna: ") else DIAMOND_FRAMES[name]()
    rows, vectors = neighbour_rows(data, 16)   # the kernels read the first columns of a wider search in place
    for kernel, width in (("diamond_second_shells", 4), ("adaptive_cna", 14)):
        expected = getattr(reference, kernel)(np.ascontiguousarray(rows[:, :width]), np.ascontiguousarray(vectors[:, :width]))
        np.testing.assert_array_equal(getattr(_compiled.kernels, kernel)(rows[:, :width], vectors[:, :width]), expected)
        damaged = rows.copy()
        damaged[::7, 2] = -1   # missing neighbours: Other, never a crash
        np.testing.assert_array_equal(getattr(_compiled.kernels, kernel)(damaged[:, :width], vectors[:, :width]),
                                      getattr(reference, kernel)(damaged[:, :width], vectors[:, :width]))


@pytest.mark.skipif(not _compiled.COMPILED, reason="needs the compiled kernels")
def test_the_kernels_refuse_bad_rows():
    with pytest.raises(ValueError, match="lie in"):
        _compiled.kernels.diamond_second_shells(np.full((5, 4), 5), np.zeros((5, 4, 3)))
    with pytest.raises(ValueError, match="k >= 12"):
        _compiled.kernels.adaptive_cna(np.zeros((5, 6), np.int64), np.zeros((5, 6, 3)))
    with pytest.raises(ValueError, match="which"):
        _compiled.kernels.adaptive_cna(np.zeros((20, 14), np.int64), np.zeros((20, 14, 3)), np.ones(3, np.uint8))


def doubtful(data, model, favourite, runner_up=None):
    """The default model's posteriors of ``data`` with every atom's most probable class
    ``favourite`` at 0.3 (below θ) and its novelty high: every atom rejected by both criteria
    (with ``runner_up`` second at 0.25, the others below); the certificates those posteriors get."""
    post = posteriors(data, model)
    flat = np.full_like(post.probabilities, 0.7 / (post.probabilities.shape[1] - 1))
    if runner_up:
        flat[:] = 0.45 / (post.probabilities.shape[1] - 2)
        flat[:, model.classes.index(runner_up)] = 0.25
    flat[:, model.classes.index(favourite)] = 0.3
    certified = topology.certified_classes(model.classes, flat.argmax(axis=1), data, *neighbour_rows(data, 16),
                                           probabilities=flat)
    return Posteriors(flat, None, post.described, np.full(len(flat), 10.0, np.float32), post.neighbors, certified)


def test_a_complete_diamond_shell_certifies_the_networks_diamond():
    model = load_model("openworld")
    assert 0.3 < model.reject_threshold
    data = Snapshot.load(BULK / "si_hexagonal_diamond_0.90Tm.npz").to_data_collection()
    reference = data.clone()   # OVITO's Identify Diamond: hexagonal, or a first neighbour of hexagonal atoms
    reference.apply(IdentifyDiamondModifier())
    ovito_types = np.asarray(reference.particles["Structure Type"])
    certified = np.isin(ovito_types, (4, 5)) | ((ovito_types == 6) & topology.surrounded(*neighbour_rows(data, 16)))
    assert certified.mean() >= 0.99
    names = assign(doubtful(data, model, "Hexagonal diamond"), model).type_names
    assert (names[certified] == "Hexagonal diamond").all() and (names[~certified] == "Other").all()
    # the topology settles which diamond, even against the network
    names = assign(doubtful(data, model, "Cubic diamond"), model).type_names
    assert (names[certified] == "Hexagonal diamond").all()
    # a class the user switched off is never given
    names = assign(doubtful(data, model, "Hexagonal diamond"), model, disabled=["Hexagonal diamond"]).type_names
    assert not (names == "Hexagonal diamond").any()
    # posteriors computed by the classification carry the same certificates
    post = posteriors(data, model)
    expected = topology.certified_classes(model.classes, post.probabilities.argmax(axis=1), data,
                                          *neighbour_rows(data, 16), probabilities=post.probabilities)
    np.testing.assert_array_equal(post.certified, expected)


def test_adaptive_cna_decides_between_fcc_and_hcp_when_they_are_the_networks_two_best():
    """Hot fcc, every atom rejected, the network's favourite HCP: with FCC second, the atoms OVITO's
    adaptive CNA calls FCC come back FCC (a twin plane's neighbours: their averaged descriptors see
    the plane's hcp atoms); with BCC second, or FCC second but adaptive CNA finding something else,
    nothing is given back; with FCC first, HCP second and CNA FCC, FCC as before."""
    model = load_model("openworld")
    data = crystal("fcc", 5, sigma=0.04, seed=5)
    reference = data.clone()
    reference.apply(CommonNeighborAnalysisModifier())
    fcc = np.asarray(reference.particles["Structure Type"]) == CommonNeighborAnalysisModifier.Type.FCC
    assert 0.3 <= fcc.mean() and not fcc.all()
    for favourite, runner_up, expected in (("HCP", "FCC", np.where(fcc, "FCC", "Other")), ("HCP", "BCC", "Other"),
                                           ("FCC", "HCP", np.where(fcc, "FCC", "Other"))):
        names = assign(doubtful(data, model, favourite, runner_up), model).type_names
        np.testing.assert_array_equal(names, np.broadcast_to(expected, names.shape), err_msg=f"{favourite}, {runner_up}")


def test_adaptive_cna_certifies_only_the_class_it_finds():
    """Hot bcc: rejected atoms whose most probable class adaptive CNA confirms come back BCC; where
    the network's favourite is FCC (which CNA does not find) or Liquid (no test) they stay Other."""
    model = load_model("openworld")
    data = crystal("bcc", 5, sigma=0.05, seed=4)
    reference = data.clone()
    reference.apply(CommonNeighborAnalysisModifier())   # OVITO's adaptive CNA
    bcc = np.asarray(reference.particles["Structure Type"]) == CommonNeighborAnalysisModifier.Type.BCC
    assert bcc.mean() >= 0.5 and not bcc.all()
    for favourite, expected in (("BCC", np.where(bcc, "BCC", "Other")),
                                ("FCC", "Other"), ("Liquid", "Other")):
        names = assign(doubtful(data, model, favourite), model).type_names
        np.testing.assert_array_equal(names, np.broadcast_to(expected, names.shape))


def test_inside_a_close_packed_crystal_adaptive_cna_places_what_the_network_cannot():
    """Hot fcc, every third atom one the network cannot place (its posteriors uniform), the others
    FCC: the first come back FCC where OVITO's adaptive CNA finds an fcc first shell, else Other;
    with the others BCC (no close-packed crystal around) or with FCC switched off, they stay Other."""
    model = load_model("openworld")
    data = crystal("fcc", 5, sigma=0.05, seed=6)
    reference = data.clone()
    reference.apply(CommonNeighborAnalysisModifier())
    fcc = np.asarray(reference.particles["Structure Type"]) == CommonNeighborAnalysisModifier.Type.FCC
    post = posteriors(data, model)
    n, classes = post.probabilities.shape
    lost = np.arange(n) % 3 == 0
    assert 0.3 <= fcc[lost].mean() < 1.0
    for around, expected in (("FCC", np.where(fcc, "FCC", "Other")), ("BCC", "Other")):
        probabilities = np.zeros((n, classes), dtype=np.float32)
        probabilities[~lost, model.classes.index(around)] = 1.0
        probabilities[lost] = 1.0 / classes
        shells = topology.close_packed_shells(model.classes, probabilities.max(axis=1), data, *neighbour_rows(data, 16))
        assert (shells[~lost] == -1).all()
        forged = Posteriors(probabilities, None, post.described, np.zeros(n, np.float32), post.neighbors, None, shells)
        names = assign(forged, model).type_names
        assert (names[~lost] == around).all()
        np.testing.assert_array_equal(names[lost], np.broadcast_to(expected, n)[lost], err_msg=around)
        if around == "FCC":   # FCC switched off: the lost atoms stay Other
            assert (assign(forged, model, disabled=["FCC"]).type_names[lost] == "Other").all()


def test_models_without_a_novelty_score_are_not_certified():
    for name in ("metals", "tcp", "ice"):
        assert posteriors(crystal("fcc", 3, sigma=0.05), load_model(name)).certified is None


def test_the_surface_of_a_diamond_slab_stays_other():
    """The outermost plane of a hot Si(100) surface has no complete shell and no diamond neighbour
    that lists it: Other; from the third plane inwards, cubic diamond."""
    snap = Snapshot.load(BULK / "si_surface_100_0.75Tm.npz")
    result = classify(snap.to_data_collection())
    layer = snap.extra["surface_layer"]
    assert (result.type_names[layer == 0] == "Other").mean() >= 0.95, result.counts
    inner = (layer >= 2) & (snap.labels >= 0)
    assert (result.type_names[inner] == "Cubic diamond").mean() >= 0.99


def test_the_modifier_keeps_the_certificates_when_its_thresholds_move():
    """The modifier caches the posteriors and the certificates; moving θ reuses them and gives what
    classify gives at that θ."""
    from ovito.pipeline import Pipeline, StaticSource

    from ovito_mlclass import StructureClassifierModifier

    data = Snapshot.load(BULK / "znse_wurtzite_0.90Tm.npz").to_data_collection()
    modifier = StructureClassifierModifier()
    pipeline = Pipeline(source=StaticSource(data=data))
    pipeline.modifiers.append(modifier)
    pipeline.compute()
    modifier.use_model_threshold = False
    modifier.reject_threshold = 0.999
    types = np.asarray(pipeline.compute().particles["Structure Type"])
    np.testing.assert_array_equal(types, classify(data, reject_threshold=0.999).types)
    assert (types == 7).mean() >= 0.95   # hexagonal diamond: the certificate keeps it at θ = 0.999
