"""Identify Diamond's topology test (ovito_mlclass.diamond) against OVITO's own
IdentifyDiamondModifier, the compiled kernel against its NumPy reference, and the rule by which the
default model uses it: a complete diamond second shell certifies the network's diamond."""
from pathlib import Path

import numpy as np
import pytest
from ovito.modifiers import IdentifyDiamondModifier

from conftest import crystal, make_data
from md_lattices import PHASES, diamond_slab, lattice
from ovito_mlclass import _compiled, diamond
from ovito_mlclass.classify import Posteriors, assign, classify, posteriors
from ovito_mlclass.frames import as_frame
from ovito_mlclass.model import load_model
from ovito_mlclass.neighbors import nearest_neighbors
from ovito_mlclass.training.snapshots import Snapshot

BULK = Path(__file__).parent / "data" / "openworld"
DEFECTS = Path(__file__).parent / "data" / "openworld-defects"
# OVITO's IdentifyDiamondModifier types -> ours (the first-neighbour kinds; second neighbours: none)
OVITO = {0: diamond.NONE, 1: diamond.CUBIC, 2: diamond.NEAR_CUBIC, 3: diamond.NONE, 4: diamond.HEXAGONAL,
         5: diamond.NEAR_HEXAGONAL, 6: diamond.NONE}


def perfect(phase, reps, sigma=0.0, seed=0, a=5.43):
    positions, box, _, _ = lattice(PHASES[phase], a, reps)
    positions = positions + np.random.default_rng(seed).normal(0.0, sigma, positions.shape)
    return make_data(positions, np.diag(box))


def slab():
    positions, box, _, _ = diamond_slab(5.43, "111", (4, 2, 3), vacuum=12.0)
    positions = positions + np.random.default_rng(1).normal(0.0, 0.05, positions.shape)
    return make_data(positions, np.diag(box), pbc=(True, True, False))


FRAMES = {
    "cubic diamond": lambda: perfect("CD", (3, 3, 3)),
    "hexagonal diamond": lambda: perfect("HD", (4, 3, 3), a=3.84),
    "noisy cubic diamond": lambda: perfect("CD", (4, 4, 4), sigma=0.12, seed=2),
    "noisy hexagonal diamond": lambda: perfect("HD", (5, 3, 3), sigma=0.12, seed=3, a=3.84),
    "one cubic cell (images among the neighbours)": lambda: perfect("CD", (1, 1, 1), sigma=0.02),
    "(111) slab": slab,
    "fcc": lambda: crystal("fcc", 4, sigma=0.02),
    "Si-SW cubic diamond, 0.9 T_m": lambda: Snapshot.load(BULK / "si_cubic_diamond_0.90Tm.npz").to_data_collection(),
    "Si-SW hexagonal diamond, 0.9 T_m": lambda: Snapshot.load(BULK / "si_hexagonal_diamond_0.90Tm.npz").to_data_collection(),
    "ZnSe-SW wurtzite, 0.9 T_m": lambda: Snapshot.load(BULK / "znse_wurtzite_0.90Tm.npz").to_data_collection(),
    "Si-SW (100) surface, 0.75 T_m": lambda: Snapshot.load(BULK / "si_surface_100_0.75Tm.npz").to_data_collection(),
    "liquid Si": lambda: Snapshot.load(BULK / "si_liquid_1.00Tm.npz").to_data_collection(),
    "beta-Sn": lambda: Snapshot.load(DEFECTS / "ood_beta_sn.npz").to_data_collection(),
}


@pytest.mark.parametrize("name", list(FRAMES))
def test_the_topology_is_identify_diamonds(name):
    data = FRAMES[name]()
    reference = data.clone()
    reference.apply(IdentifyDiamondModifier())
    ovito_types = np.asarray(reference.particles["Structure Type"])
    ours = diamond.diamond_topology(data)
    expected = np.array([OVITO[int(t)] for t in ovito_types])
    # OVITO marks an atom listed by diamond atoms of both kinds after whichever comes first; we leave it NONE
    both = np.isin(ovito_types, (2, 5)) & (ours == diamond.NONE)
    np.testing.assert_array_equal(ours[~both], expected[~both])
    if name.startswith(("cubic", "hexagonal", "one cubic")):
        assert (ours == (diamond.CUBIC if "cubic" in name else diamond.HEXAGONAL)).all()
    if name in ("fcc", "liquid Si", "beta-Sn"):
        assert (ours == diamond.NONE).mean() >= 0.99


@pytest.mark.skipif(not _compiled.COMPILED, reason="needs the compiled kernel")
@pytest.mark.parametrize("name", list(FRAMES))
def test_the_compiled_kernel_matches_the_numpy_reference(name):
    frame = as_frame(FRAMES[name]())
    found = nearest_neighbors(frame, 4, allow_missing=True)
    rows, vectors = found.neighbors.reshape(-1, 4), found.vectors.reshape(-1, 4, 3)
    reference = diamond._second_shell_types(rows, vectors, np.arange(frame.count))
    np.testing.assert_array_equal(diamond.second_shell_types(rows, vectors), reference)
    wider = nearest_neighbors(frame, 6, allow_missing=True)   # the first columns of a longer search, read in place
    np.testing.assert_array_equal(diamond.second_shell_types(wider.neighbors.reshape(-1, 6)[:, :5],
                                                             wider.vectors.reshape(-1, 6, 3)[:, :5]), reference)
    rows[::7, 2] = -1   # missing neighbours: NONE, never a crash
    np.testing.assert_array_equal(diamond.second_shell_types(rows, vectors),
                                  diamond._second_shell_types(rows, vectors, np.arange(frame.count)))


def test_the_kernel_refuses_bad_rows():
    with pytest.raises(ValueError, match="lie in"):
        diamond.second_shell_types(np.full((5, 4), 5), np.zeros((5, 4, 3)))


def test_a_complete_diamond_shell_certifies_the_networks_diamond():
    """Every atom's posterior made uninformative (below θ) and its novelty high: only the atoms the
    topology certifies keep a diamond, and only where the network's most probable class is one."""
    model = load_model("openworld")
    data = Snapshot.load(BULK / "si_hexagonal_diamond_0.90Tm.npz").to_data_collection()
    post = posteriors(data, model)
    assert post.diamond is not None
    hexagonal = model.classes.index("Hexagonal diamond")
    flat = np.full_like(post.probabilities, 0.7 / (post.probabilities.shape[1] - 1))
    flat[:, hexagonal] = 0.3                                    # the most probable class, below θ
    assert 0.3 < model.reject_threshold
    doubtful = Posteriors(flat, None, post.described, np.full(len(flat), 10.0, np.float32), post.neighbors,
                          post.diamond)
    names = assign(doubtful, model).type_names
    certified = np.isin(post.diamond, (diamond.HEXAGONAL, diamond.NEAR_HEXAGONAL))
    assert certified.mean() >= 0.99
    assert (names[certified] == "Hexagonal diamond").all() and (names[~certified] == "Other").all()
    # the topology settles which diamond, even against the network
    cubic = model.classes.index("Cubic diamond")
    flat[:, [cubic, hexagonal]] = flat[:, [hexagonal, cubic]]
    assert (assign(doubtful, model).type_names[certified] == "Hexagonal diamond").all()
    # a class the user switched off is never given
    assert not (assign(doubtful, model, disabled=["Hexagonal diamond"]).type_names == "Hexagonal diamond").any()
    # where the network's most probable class is not a diamond, the topology is not asked
    flat[:, [cubic, model.classes.index("Liquid")]] = flat[:, [model.classes.index("Liquid"), cubic]]
    assert (assign(doubtful, model).type_names == "Other").all()


def test_the_surface_of_a_diamond_slab_stays_other():
    """The outermost plane of a hot Si(100) surface has no complete shell and no diamond neighbour
    that lists it: Other; from the third plane inwards, cubic diamond."""
    snap = Snapshot.load(BULK / "si_surface_100_0.75Tm.npz")
    result = classify(snap.to_data_collection())
    layer = snap.extra["surface_layer"]
    assert (result.type_names[layer == 0] == "Other").mean() >= 0.95, result.counts
    inner = (layer >= 2) & (snap.labels >= 0)
    assert (result.type_names[inner] == "Cubic diamond").mean() >= 0.99


def test_no_topology_is_computed_where_no_diamond_is_proposed():
    post = posteriors(crystal("fcc", 4, sigma=0.02), load_model("openworld"))
    assert post.diamond is None
    assert posteriors(crystal("fcc", 3), load_model("metals")).diamond is None  # a model without the diamonds


def test_the_modifier_keeps_the_topology_when_its_thresholds_move():
    """The modifier caches the posteriors and the topology; moving θ reuses them and gives what
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
