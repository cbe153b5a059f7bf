"""Stage 5 of the data flow: posteriors -> structure types, the plain-NumPy classification API.

    result = classify(frame, "metals")   # a Frame, an OVITO DataCollection, an ase.Atoms or arrays (frames.py)
    result.types, result.confidence, result.counts

Structure type ids are OVITO's (:mod:`ovito_mlclass.structure_types`): 0 = Other (rejected, or not
a particle the model describes), FCC = 1, HCP = 2, BCC = 3 ... as OVITO's polyhedral template
matching numbers them (hexagonal ice = 1 ... as Chill+ does), other classes after them.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from . import topology
from .frames import Frame, as_frame
from .model import DEFAULT_MODEL, StructureModel, load_model
from .structure_types import OTHER, OTHER_COLOR, StructureTypes  # noqa: F401 (re-exported)
from .work_arrays import WORK


@dataclass
class Posteriors:
    """What the model says about every particle, before the reject threshold is applied (this is
    what the modifier caches, so moving the threshold costs nothing)."""

    probabilities: np.ndarray      # (n, C) float32; rows of undescribed particles are 0
    sites: np.ndarray | None       # (n, S) float32 site posteriors, or None
    described: np.ndarray          # (n,) bool: particles the model describes (its particle types)
    novelty: np.ndarray | None = None  # (n,) float32: above 1, unlike every training class; None: no score
    neighbors: np.ndarray | None = None  # (n, k) int32 rows of the k nearest described particles (-1: none),
                                         # for a model with a bulk phase (its rule looks at them); else None
    certified: np.ndarray | None = None  # (n,) int16 the class (index) the topology tests certify for the
                                         # network's most probable one, -1 none (topology.py); None: no test
    close_packed: np.ndarray | None = None  # (n,) int16 FCC or HCP (index) where the network cannot place
                                            # the atom and adaptive CNA finds that shell, -1 none; None: no test
    most_probable: np.ndarray | None = None  # (n,) the most probable class (index) and its posterior, as the
    confidence: np.ndarray | None = None     # compiled network gives them (0 for undescribed); None: from probabilities


@dataclass
class Classification:
    types: np.ndarray              # (n,) int32 structure type ids (OVITO's; 0 = Other)
    confidence: np.ndarray         # (n,) float32: largest posterior (0 for undescribed particles)
    posteriors: Posteriors
    structure_types: StructureTypes  # id, name, colour of each class of the model
    site_types: np.ndarray | None = None  # (n,) int32: 0 = none, k + 1 = site class k
    site_names: list | None = None

    @property
    def ids(self) -> list:
        """The structure type ids, Other first, then by increasing id."""
        return sorted(self.structure_types.all_ids)

    @property
    def names(self) -> list:
        """The type names, in the order of :attr:`ids`."""
        by_id = self.structure_types.name_of()
        return [by_id[i] for i in self.ids]

    @property
    def colors(self) -> list:
        """The type colours, in the order of :attr:`ids`."""
        by_id = dict(zip(self.structure_types.all_ids, self.structure_types.all_colors))
        return [by_id[i] for i in self.ids]

    @property
    def type_names(self) -> np.ndarray:
        """(n,) the name of every particle's type."""
        lookup = np.empty(max(self.ids) + 1, dtype=object)
        lookup[self.ids] = self.names
        return lookup[self.types]

    @property
    def counts(self) -> dict:
        """name -> particles, in the order of :attr:`ids`."""
        counts = np.bincount(self.types, minlength=max(self.ids) + 1)
        return {name: int(counts[i]) for i, name in zip(self.ids, self.names)}


def as_model(model, device: str | None = "auto") -> StructureModel:
    """A loaded model as is; a name or file loaded (once) with its network on ``device``."""
    return model if isinstance(model, StructureModel) else load_model(model, device)


def posteriors_steps(data, model):
    """:func:`posteriors` as a generator that yields progress ``(fraction, text)`` between stages
    and returns the :class:`Posteriors` (``post = yield from posteriors_steps(...)``)."""
    model = as_model(model)
    frame = as_frame(data)
    described = model.features.selection(frame)
    warn_if_mixed_species(frame, model, described)
    n = len(described)
    probs = np.zeros((n, len(model.classes)), dtype=np.float32)
    sites = np.zeros((n, len(model.site_classes)), dtype=np.float32) if model.site_classes else None
    novelty = np.zeros(n, dtype=np.float32) if model.has_novelty else None
    bulk = model.bulk_phase
    rows = certified = close_packed = most_probable = confidence = None
    if described.any():
        yield 0.0, "neighbours and descriptors"
        k = max(model.neighbor_average, bulk["neighbors"] if bulk else 0,
                topology.SURROUNDING if certifies(model) else 0)
        # the network takes float32: descriptors summed in float32 serve it as well, faster
        features, neighbors, vectors = model.features.compute(frame, neighbors=k, vectors=True, single_precision=True) \
            if k else (model.features.compute(frame, single_precision=True), None, None)
        yield 0.8, "network"
        prediction = model.predict(features, neighbors[:, :model.neighbor_average] if model.neighbor_average else None)
        best, largest = prediction.most_probable, prediction.confidence
        if best is None:
            best = prediction.probabilities.argmax(axis=1)
            largest = np.take_along_axis(prediction.probabilities, best[:, None], axis=1)[:, 0]
        if described.all():  # the network's arrays as they are (no copies of a frame's size)
            probs, sites, novelty = prediction.probabilities, prediction.sites, prediction.novelty
            most_probable, confidence = best, largest
        else:
            probs[described] = prediction.probabilities
            most_probable, confidence = np.zeros(n, dtype=best.dtype), np.zeros(n, dtype=np.float32)
            most_probable[described], confidence[described] = best, largest
        if certifies(model):
            seen = frame if described.all() else frame.subset(described)
            found = topology.certified_classes(model.classes, best, seen, neighbors, vectors, prediction.probabilities)
            if found is not None:
                certified = np.full(n, -1, dtype=np.int16)
                certified[described] = found
            shells = topology.close_packed_shells(model.classes, largest, seen, neighbors, vectors)
            if shells is not None:
                close_packed = np.full(n, -1, dtype=np.int16)
                close_packed[described] = shells
        if sites is not None and not described.all():
            sites[described] = prediction.sites
        if novelty is not None and not described.all():
            novelty[described] = prediction.novelty
        if bulk:  # rows of the described subset -> rows of the frame (a copy: the search's arrays are reused)
            near = neighbors[:, :bulk["neighbors"]]
            if described.all():  # into an array kept for the next frame: no fresh memory to map
                rows = WORK.empty("bulk-phase rows", near.shape, np.int32)
                np.copyto(rows, near, casting="unsafe")  # row indices fit in int32
            else:
                rows = np.full((n, bulk["neighbors"]), -1, dtype=np.int32)
                rows[described] = np.where(near >= 0, np.flatnonzero(described)[near], -1)
    elif bulk:  # nothing described: no neighbours
        rows = np.full((n, bulk["neighbors"]), -1, dtype=np.int32)
    return Posteriors(probs, sites, described, novelty, rows, certified, close_packed, most_probable, confidence)


def certifies(model) -> bool:
    """Whether the topology tests certify the model's classes (:mod:`ovito_mlclass.topology`): the
    models with a novelty score, whose rejections they check."""
    return bool(getattr(model, "has_novelty", False))


class MixedSpeciesWarning(UserWarning):
    """A model of one species is applied to a frame that holds several."""


def warn_if_mixed_species(frame: Frame, model: StructureModel, described: np.ndarray) -> None:
    """Warns when a model that describes one species (its ``single_species`` metadata, e.g. the
    oxygens of water) sees particles of several types: they would all be taken for that species."""
    import warnings

    what = model.metadata.get("single_species")
    if not what or frame.types is None or model.features.types is not None:
        return
    present = np.unique(frame.types[described])
    if len(present) > 1:
        names = ", ".join(frame.type_names.get(int(t)) or str(t) for t in present)
        warnings.warn(f"Model '{model.name}' describes {what}, but the particles it is given are of "
                      f"{len(present)} types ({names}): select those it describes (only_selected, or "
                      f"--select on the command line).", MixedSpeciesWarning, stacklevel=3)


def posteriors(data, model) -> Posteriors:
    """Features and posteriors of every particle of ``data`` (see :func:`classify`, :class:`Posteriors`)."""
    steps = posteriors_steps(data, model)
    while True:
        try:
            next(steps)
        except StopIteration as done:
            return done.value


def assign(post: Posteriors, model, reject_threshold: float | None = None, disabled=(),
           novelty_threshold: float = 1.0) -> Classification:
    """Structure types from posteriors: the most probable class, or Other where its posterior is
    below the reject threshold (the model's own θ unless given) or the atom is unlike every
    training class (novelty above ``novelty_threshold``; 1 = the model's own, from validation data),
    unless OVITO's topology tests prove that class (models with a novelty score:
    :mod:`ovito_mlclass.topology`), and where it is one of the ``disabled`` classes (names or OVITO
    type ids); inside a close-packed crystal, an atom left Other that the network cannot place gets
    the class of its first shell where adaptive CNA finds it fcc or hcp (:func:`close_packed_types`);
    then, for a model with a bulk phase, Other where that phase does not fill space
    (:func:`bulk_phase_types`)."""
    model = as_model(model)
    types, confidence, best = network_types(post, model, reject_threshold, disabled, novelty_threshold)
    kinds = model.structure_types
    if post.close_packed is not None and post.neighbors is not None:
        types = close_packed_types(types, post.close_packed, post.neighbors, model, disabled)
    if model.bulk_phase:
        if post.neighbors is None:
            raise ValueError(f"Model {model.name!r} names a bulk phase ({model.bulk_phase['class']}), whose rule needs "
                             "every particle's nearest neighbours: Posteriors.neighbors is missing.")
        types = bulk_phase_types(types, post.neighbors, model)
    site_types = None
    if post.sites is not None:  # a site only where the atom is of a class that has sites
        site_types = (post.sites.argmax(axis=1) + 1).astype(np.int32)
        has_sites = np.isin(best, [k for k, c in enumerate(model.classes) if c in model.classes_with_sites])
        site_types[~post.described | (types == 0) | ~has_sites] = 0
    return Classification(types=types, confidence=np.asarray(confidence, dtype=np.float32), posteriors=post,
                          structure_types=kinds, site_types=site_types,
                          site_names=["None"] + model.site_classes if post.sites is not None else None)


def rows_read(post: Posteriors, model) -> np.ndarray:
    """The particles whose rows of ``post.neighbors`` :func:`assign` may read, whatever its
    thresholds and disabled classes: those whose most probable class is the model's bulk phase
    (only they can be of it, and :func:`bulk_phase_region` reads the rows of its members), and those
    adaptive CNA gives a close-packed shell (:func:`close_packed_types`). What the modifier keeps of
    the rows for the next threshold: usually few particles of a crystal."""
    model = as_model(model)
    read = np.zeros(len(post.described), dtype=bool)
    if post.close_packed is not None:
        read |= post.close_packed >= 0
    if model.bulk_phase:
        best = post.most_probable if post.most_probable is not None else post.probabilities.argmax(axis=1)
        read |= (best == model.classes.index(model.bulk_phase["class"])) & post.described
    return read


def network_types(post: Posteriors, model, reject_threshold: float | None = None, disabled=(),
                  novelty_threshold: float = 1.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`assign`'s types before the bulk-phase rule, the confidence and the most probable
    class index of every particle."""
    theta = model.reject_threshold if reject_threshold is None else float(reject_threshold)
    if not 0.0 <= theta <= 1.0:
        raise ValueError(f"The reject threshold must lie in [0, 1], got {theta}.")
    if not novelty_threshold > 0:
        raise ValueError(f"The novelty threshold must be positive (1: the model's own), got {novelty_threshold}.")
    kinds = model.structure_types
    if post.most_probable is not None:
        best, confidence = post.most_probable, post.confidence
    elif post.probabilities.shape[1]:
        best = post.probabilities.argmax(axis=1)
        confidence = np.take_along_axis(post.probabilities, best[:, None], axis=1)[:, 0]
    else:
        best, confidence = np.zeros(len(post.described), int), np.zeros(len(post.described))
    types = np.asarray(kinds.ids, dtype=np.int32)[best] if kinds.ids else np.zeros(len(best), np.int32)
    off = [i for i, name in zip(kinds.ids, kinds.names) if name in disabled or i in disabled]
    rejected = (confidence < theta) | ~post.described
    if off:
        rejected |= np.isin(types, off)
    if post.novelty is not None:
        rejected |= post.novelty > novelty_threshold
    types[rejected] = 0
    if post.certified is not None:  # a class the topology proves is given back, unless switched off
        sure = post.certified >= 0
        given = np.asarray(kinds.ids, dtype=np.int32)[np.maximum(post.certified, 0)] if kinds.ids else types
        sure &= post.described
        if off:
            sure &= ~np.isin(given, off)
        types[sure] = given[sure]
    return types, confidence, best


CLOSE_PACKED_REGION = (12, 6)   # close_packed_types: of the 12 nearest, at least 6 FCC or HCP


def close_packed_types(types, close_packed, neighbors, model, disabled=(), counted=None) -> np.ndarray:
    """``types`` with the atoms left Other whose first shell is close-packed (``close_packed``:
    the class index adaptive CNA finds where the network cannot place the atom, -1 none;
    :func:`ovito_mlclass.topology.close_packed_shells`) given that class where they lie inside a
    close-packed crystal: at least 6 of their 12 nearest (rows of ``neighbors``, -1: none) are FCC
    or HCP. Around the five-fold axis of a decahedral particle the averaged neighbourhoods span
    two twin segments and the network cannot place the atoms, while their first shells are fcc or
    hcp as PTM and adaptive CNA report them. ``counted`` (rows' range,): which atoms the rows point
    to are FCC or HCP, where that is not ``types`` (the ghosts of a domain); a class in
    ``disabled`` (names or ids) is never given."""
    kinds = model.structure_types
    type_of = dict(zip(kinds.names, kinds.ids))
    close = [type_of[name] for name in ("FCC", "HCP") if name in type_of]
    atoms = np.flatnonzero((types == 0) & (np.asarray(close_packed) >= 0))   # few: look at these only
    given = np.asarray(kinds.ids, dtype=np.int32)[close_packed[atoms]]
    keep = ~np.isin(given, [type_of.get(d, d) for d in disabled])
    atoms, given = atoms[keep], given[keep]
    if counted is None:
        counted = np.isin(types, close)
    near = np.asarray(neighbors)[atoms, :CLOSE_PACKED_REGION[0]]
    inside = (counted[near] & (near >= 0)).sum(axis=1) >= CLOSE_PACKED_REGION[1]
    out = types.copy()
    out[atoms[inside]] = given[inside]
    return out


def bulk_phase_region(candidates: np.ndarray, counted: np.ndarray, neighbors: np.ndarray,
                      min_neighbors: int) -> np.ndarray:
    """The candidates that form a bulk region: the largest subset S of ``candidates`` in which
    every atom has at least ``min_neighbors`` of its neighbours (rows of ``neighbors``, -1: none) in
    S or among the ``counted`` atoms (the k-core of the candidates' neighbour graph). Found by
    removing the atoms short of neighbours until none is; the order of removal does not matter.

    A liquid fills space, so inside it every atom is surrounded by liquid; a grain-boundary core, a
    surface layer or a defect core is a sheet or a line, in which an atom has at most a few
    neighbours of its own kind: these atoms leave the region."""
    keep = np.asarray(candidates, dtype=bool).copy()
    counted = np.asarray(counted, dtype=bool)
    rows = np.flatnonzero(keep)
    while len(rows):
        near = neighbors[rows]
        inside = keep | counted
        short = (inside[near] & (near >= 0)).sum(axis=1) < min_neighbors
        if not short.any():
            break
        keep[rows[short]] = False
        rows = rows[~short]
    return keep


def bulk_phase_types(types: np.ndarray, neighbors: np.ndarray, model) -> np.ndarray:
    """``types`` with the model's bulk phase (its metadata 'bulk_phase', e.g. Liquid) kept only
    where its atoms form a bulk region (:func:`bulk_phase_region`: at least ``min_neighbors`` of the
    ``neighbors`` nearest are of that phase or of a ``counting`` class, e.g. the icosahedral
    centres of a metallic liquid); elsewhere Other."""
    phase, counted = bulk_phase_members(types, model)
    rule = model.bulk_phase
    keep = bulk_phase_region(phase, counted, neighbors[:, :rule["neighbors"]], rule["min_neighbors"])
    return np.where(phase & ~keep, 0, types).astype(types.dtype)  # 0: Other


def bulk_phase_members(types: np.ndarray, model) -> tuple[np.ndarray, np.ndarray]:
    """Which particles are of the model's bulk phase, and which count for it (its ``counting`` classes)."""
    rule, kinds = model.bulk_phase, model.structure_types
    type_of = dict(zip(kinds.names, kinds.ids))
    return (types == type_of[rule["class"]],
            np.isin(types, [type_of[c] for c in rule["counting"] if c != rule["class"]]))


def classify(data, model=DEFAULT_MODEL, reject_threshold: float | None = None,
             device: str | None = "auto", novelty_threshold: float = 1.0) -> Classification:
    """Label every particle of ``data`` (a :class:`~ovito_mlclass.frames.Frame`, an OVITO
    DataCollection, an ase.Atoms or arrays: see :func:`ovito_mlclass.frames.as_frame`) with
    ``model`` (built-in name, file path or a loaded model); the network runs on ``device``
    ("auto": CUDA when available, else CPU)."""
    model = as_model(model, device)
    return assign(posteriors(data, model), model, reject_threshold, novelty_threshold=novelty_threshold)
