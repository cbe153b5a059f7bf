"""OVITO modifier shell around :mod:`ovito_mlclass.classify`."""
from __future__ import annotations

import hashlib

import numpy as np
from ovito.data import DataCollection, DataTable, ElementType
from ovito.pipeline import ModifierInterface
from ovito.traits import Color, FilePath
from traits.api import BaseStr, Bool, Enum, HasTraits, Instance, Int, List, Range, Str, observe

from ..classify import Posteriors, assign, posteriors_steps, rows_read
from ..frames import Frame
from ..model import DEFAULT_MODEL, StructureModel, builtin_models, load_model, resolve_device
from ..ordering import ORDERING_TYPES, ordering_of
from ._common import relay_progress, selected_subset

BUILTIN_MODELS = tuple(builtin_models())


class StructureType(HasTraits):
    """One entry of :attr:`StructureClassifierModifier.structures`: a structure type the model can
    assign, as OVITO's identification modifiers list them (``id``, ``name``; ``color`` and
    ``enabled`` may be changed)."""

    id = Int()
    name = Str()
    color = Color(default=(0.95, 0.95, 0.95))
    enabled = Bool(True)

    def __repr__(self):
        return f"StructureType(id={self.id}, name={self.name!r}, color={self.color}, enabled={self.enabled})"


class DeviceName(BaseStr):
    """Where the network runs: ``auto``, ``cpu``, ``cuda`` or ``cuda:N`` (checked when set; whether
    the device exists is checked when the network runs)."""

    def validate(self, obj, name, value):
        value = super().validate(obj, name, value).strip().lower()
        if value in ("auto", "cpu", "cuda") or (value.startswith("cuda:") and value[5:].isdigit()):
            return value
        self.error(obj, name, value)

    def info(self):
        return "'auto', 'cpu', 'cuda' or 'cuda:N'"


class StructureClassifierModifier(ModifierInterface):
    """Machine-learned structure identification.

    ``model``: a built-in model (``ovito-mlclass models`` lists them); ``model_file``: a model file
    of your own, which then takes precedence (``model="path/to/model.pt"`` sets it too).

    Outputs, as OVITO's structure identification modifiers give them: the typed particle property
    ``Structure Type`` with OVITO's ids, names and colours (FCC = 1, HCP = 2, BCC = 3 ...; see
    :mod:`ovito_mlclass.structure_types`), ``Structure Confidence`` (largest class posterior), the
    attributes ``StructureClassifier.counts.<TYPE>`` (OVITO's names: ``FCC``, ``CUBIC_DIAMOND``,
    ``OTHER``, ...), a bar-chart table ``structures`` and, with ``color_by_type``, the ``Color``
    property. With ``output_probabilities``, one ``Probability <class>`` property per class;
    models with a site output (``tcp``) add a typed ``Frank-Kasper Site`` property. With
    ``output_ordering``, the chemical ordering of two-species crystals as PTM reports it: the typed
    ``Ordering Type`` property (PTM's ids: Pure 1, L10 2, L12 A/B 3/4, B2 5, zincblende/wurtzite 6,
    boron nitride 7), attributes ``StructureClassifier.ordering_counts.<TYPE>`` and a table
    (:mod:`ovito_mlclass.ordering`).

    With ``output_orientation``, the lattice orientation of every atom of a cubic or hexagonal
    class as PTM's ``Orientation`` property (quaternion X, Y, Z, W in PTM's convention; zero for
    other atoms; see :mod:`ovito_mlclass.orientation`), so colouring by orientation and texture
    tools read it unchanged. OVITO's ``GrainSegmentationModifier`` also needs PTM's
    ``Correspondences`` property and refuses a pipeline without PTM: put
    ``PolyhedralTemplateMatchingModifier(rmsd_cutoff=0, output_orientation=True)`` before this
    modifier; grain segmentation then uses PTM's neighbour correspondences with this modifier's
    types and orientations, which replace PTM's.

    ``structures`` lists the types the model assigns: switch one off (``enabled = False``) and its
    atoms become Other; change its ``color``. Atoms whose largest posterior is below the reject
    threshold θ are Other: the model's own θ (``reject_threshold=None``, the default) or the given
    one. Models with a novelty score (how unlike every class of its training data an atom is: the
    Mahalanobis distance of its descriptors to the nearest class; 1 = the model's own threshold) also
    output ``Structure Novelty`` and call atoms above ``novelty_threshold`` Other, except where
    OVITO's topology tests (adaptive CNA, Identify Diamond) prove the atom's most probable class
    (:mod:`ovito_mlclass.topology`). Changing θ, colours or enabled types reuses the posteriors of
    the last evaluation.
    ``device``: where the network runs (``auto``: CUDA when available, else the CPU).
    """

    model = Enum(DEFAULT_MODEL, *[m for m in BUILTIN_MODELS if m != DEFAULT_MODEL], label="Model",
                 ovito_group="Model", desc="a built-in model; a path given here sets model_file")
    model_file = FilePath(label="Model file (instead)", ovito_group="Model",
                          desc="a model file of your own (TorchScript .pt), used instead of model")
    device = DeviceName("auto", label="Device (auto, cpu, cuda)", ovito_group="Model", ovito_invalidate_cache=False,
                        desc="where the network runs: auto (CUDA when torch sees a GPU), cpu, cuda or cuda:N")
    use_model_threshold = Bool(True, label="Use the model's reject threshold", ovito_group="Classification",
                               ovito_invalidate_cache=False, desc="use the θ stored in the model (chosen on "
                               "validation data); setting reject_threshold turns this off")
    reject_threshold = Range(0.0, 1.0, 0.9, label="Reject threshold θ", ovito_group="Classification",
                             ovito_invalidate_cache=False, desc="atoms whose largest posterior is below θ are "
                             "Other (unless a topology test proves it); None in scripts: the model's own")
    novelty_threshold = Range(0.0, 1e6, 1.0, exclude_low=True, label="Novelty threshold (1: the model's own)",
                              ovito_group="Classification", ovito_invalidate_cache=False,
                              desc="models with a novelty score: atoms more novel than this are Other (unless a "
                              "topology test proves their most probable class)")
    only_selected = Bool(False, label="Use only selected particles", ovito_group="Classification",
                         desc="the unselected particles are treated as absent and get Other")
    color_by_type = Bool(True, label="Color particles by type", ovito_group="Output", ovito_invalidate_cache=False,
                         desc="write the Color property, so viewports and images show the types")
    output_probabilities = Bool(False, label="Output class probabilities", ovito_group="Output",
                                ovito_invalidate_cache=False, desc="one Probability <class> property per class")
    output_ordering = Bool(False, label="Output chemical ordering", ovito_group="Output", ovito_invalidate_cache=False,
                           desc="Ordering Type of two-species crystals, as OVITO's PTM reports it")
    output_orientation = Bool(False, label="Output lattice orientation", ovito_group="Output",
                              ovito_invalidate_cache=False,
                              desc="Orientation (quaternion X, Y, Z, W) of atoms of cubic and hexagonal lattices, "
                                   "as OVITO's PTM writes it")
    structures = List(Instance(StructureType), ovito_invalidate_cache=False,
                      desc="one entry per type (id, name, color, enabled): switch a type off, recolour it")
    # bumped when an entry of `structures` changes (OVITO re-evaluates a modifier when its traits change)
    structures_revision = Int(0, ovito_invalidate_cache=False, visible=False)

    def __init__(self, model=None, reject_threshold=None, **params):
        if model is not None and str(model) not in BUILTIN_MODELS:
            params.setdefault("model_file", str(model))  # a path given as the model
        elif model is not None:
            params["model"] = model
        if reject_threshold is not None:
            params.update(reject_threshold=reject_threshold, use_model_threshold=False)
        super().__init__(**params)
        self._sync_structures()

    # ---- parameters -------------------------------------------------------------------------
    @observe("reject_threshold", post_init=True)
    def _threshold_set(self, event):
        self.use_model_threshold = False

    @observe("model, model_file", post_init=True)
    def _model_changed(self, event):
        self._sync_structures()

    @observe("structures:items:[enabled,color]")
    def _structure_changed(self, event):
        self.structures_revision += 1

    def _load(self, device="cpu") -> StructureModel:
        return load_model(self.model_file or self.model, device)

    def _sync_structures(self, model: StructureModel | None = None) -> None:
        """Makes ``structures`` the model's types, keeping the settings of the types it had."""
        try:
            model = model or self._load()
        except (OSError, ValueError):  # a missing or broken file: modify() reports it
            return
        kinds = model.structure_types
        if [(s.id, s.name) for s in self.structures] == list(zip(kinds.ids, kinds.names)):
            return
        old = {s.name: s for s in self.structures}
        self.structures = [StructureType(id=i, name=n, color=old[n].color if n in old else c,
                                         enabled=old[n].enabled if n in old else True)
                           for i, n, c in zip(kinds.ids, kinds.names, kinds.colors)]

    # ---- pipeline ---------------------------------------------------------------------------
    def modify(self, data: DataCollection, *, data_cache: DataCollection = None, frame: int = 0, **kwargs):
        work, mask = selected_subset(data, self.only_selected)
        model = self._load(resolve_device(self.device))
        self._sync_structures(model)
        key = _input_key(model, work, mask)
        if data_cache is not None and data_cache.attributes.get("StructureClassifier.key") == key:
            post = _restore(data_cache)
        else:
            post = yield from relay_progress(posteriors_steps(work, model), f"Structure classification ({model.name})")
            if data_cache is not None:
                _cache(data_cache, key, post, model)
        theta = None if self.use_model_threshold else self.reject_threshold
        disabled = [s.id for s in self.structures if not s.enabled]
        result = assign(post, model, theta, disabled, self.novelty_threshold)
        self._write(data, work, result, mask, model)
        if self.output_ordering:
            yield "Structure classification: chemical ordering"
            self._write_ordering(data, work, result, mask)
        yield 1.0

    def _write_ordering(self, data, work, result, mask):
        """``Ordering Type`` as OVITO's PTM writes it (:mod:`ovito_mlclass.ordering`)."""
        ordering = np.zeros(data.particles.count, dtype=np.int32)
        ordering[slice(None) if mask is None else mask] = ordering_of(work, result.types)
        prop = data.particles_.create_property("Ordering Type", data=ordering)
        for type_id, (name, color, _) in ORDERING_TYPES.items():
            prop.add_type_id(type_id, data.particles_, name=name).color = color
        counts = np.bincount(ordering, minlength=len(ORDERING_TYPES))
        for type_id, (_, _, key) in ORDERING_TYPES.items():
            data.attributes[f"StructureClassifier.ordering_counts.{key}"] = int(counts[type_id])
        table = data.tables.create(identifier="chemical-ordering", title="Chemical ordering counts",
                                   plot_mode=DataTable.PlotMode.BarChart)
        x = table.create_property("Ordering Type", data=np.arange(len(ORDERING_TYPES), dtype=np.int32))
        for type_id, (name, color, _) in ORDERING_TYPES.items():
            x.types.append(ElementType(id=type_id, name=name, color=color))
        table.x = x
        table.y = table.create_property("Count", data=counts.astype(np.int64))

    def _write(self, data, work, result, mask, model):
        n = data.particles.count
        analysed = slice(None) if mask is None else mask
        colors = {0: result.structure_types.all_colors[0], **{s.id: tuple(s.color) for s in self.structures}}

        def full(values, dtype):  # a per-particle array: the analysed particles' values, 0 elsewhere
            if mask is None:      # create_property copies it: no copy here
                return np.asarray(values, dtype=dtype)
            out = np.zeros(n, dtype=dtype)
            out[analysed] = values
            return out

        types = full(result.types, np.int32)
        ids, names = result.ids, result.names
        prop = data.particles_.create_property("Structure Type", data=types)
        for type_id, name in zip(ids, names):
            prop.add_type_id(type_id, data.particles_, name=name).color = colors.get(type_id, (0.95, 0.95, 0.95))
        data.particles_.create_property("Structure Confidence", data=full(result.confidence, np.float32))
        if result.posteriors.novelty is not None:
            data.particles_.create_property("Structure Novelty", data=full(result.posteriors.novelty, np.float32))
        if self.output_probabilities:
            for k, name in enumerate(result.structure_types.names):
                data.particles_.create_property(f"Probability {name}",
                                                data=full(result.posteriors.probabilities[:, k], np.float32))
        if self.output_orientation:
            from ..orientation import orientations  # numba (and with it scipy) only where asked for

            orientation = np.zeros((n, 4))
            orientation[analysed] = orientations(work, result.types)
            data.particles_.create_property("Orientation", data=orientation)
        if result.site_types is not None:
            site_name = model.metadata.get("site_property") or "Site Type"
            sprop = data.particles_.create_property(site_name, data=full(result.site_types, np.int32))
            for type_id, name in enumerate(result.site_names):
                sprop.add_type_id(type_id, data.particles_, name=name)
        if self.color_by_type:
            palette = np.zeros((max(ids) + 1, 3), dtype=np.float32)
            for type_id in ids:
                palette[type_id] = colors.get(type_id, (0.95, 0.95, 0.95))
            data.particles_.create_property("Color", data=palette[types])
        counts = np.bincount(types, minlength=max(ids) + 1)[ids]
        keys = dict(zip(result.structure_types.all_ids, result.structure_types.all_keys))
        for type_id, count in zip(ids, counts):
            data.attributes[f"StructureClassifier.counts.{keys[type_id]}"] = int(count)
        if "structures" in data.tables:  # e.g. PTM's, upstream: create() would keep its rows
            del data.tables["structures"]
        table = data.tables.create(identifier="structures", title="Structure counts",
                                   plot_mode=DataTable.PlotMode.BarChart)
        x = table.create_property("Structure type", data=np.asarray(ids, dtype=np.int32))
        for type_id, name in zip(ids, names):
            x.types.append(ElementType(id=type_id, name=name, color=colors.get(type_id, (0.95, 0.95, 0.95))))
        table.x = x
        table.y = table.create_property("Count", data=counts.astype(np.int64))


def _input_key(model: StructureModel, work: Frame, mask) -> str:
    """A digest of everything the posteriors depend on: the model file, the positions, cell and
    particle types the model sees, and which particles were analysed. Frames of one trajectory
    differ in it, also when their particle count or order changes."""
    # SHA-1 for its speed (processors hash it in hardware: 3x blake2b here), not for security: the
    # key tells the user's own frames apart, no one gains by making two of them collide
    digest = hashlib.sha1(usedforsecurity=False)
    digest.update(f"{model.path}|{model.path.stat().st_mtime_ns if model.path else ''}".encode())
    digest.update(np.ascontiguousarray(work.positions))  # the buffer itself: no copy
    digest.update(work.cell.tobytes() + np.asarray(work.pbc).tobytes())
    if model.features.types is not None and work.types is not None:
        digest.update(work.types.tobytes())
    if mask is not None:
        digest.update(np.packbits(mask).tobytes())
    return digest.hexdigest()


def _cache(cache: DataCollection, key: str, post, model) -> None:
    """Keeps the posteriors of the last evaluation (one frame) in OVITO's modifier cache."""
    for table in ("mlclass-posteriors", "mlclass-rows"):
        if table in cache.tables:
            del cache.tables[table]
    cache.attributes["StructureClassifier.key"] = key
    store = cache.tables.create(identifier="mlclass-posteriors")
    # np.asarray: no copy of arrays already of the type (create_property copies them once)
    store.create_property("p", data=np.asarray(post.probabilities, dtype=np.float32))
    store.create_property("described", data=post.described.astype(np.int8))
    if post.sites is not None:
        store.create_property("s", data=np.asarray(post.sites, dtype=np.float32))
    if post.novelty is not None:
        store.create_property("novelty", data=np.asarray(post.novelty, dtype=np.float32))
    index = np.int8 if len(model.classes) < 128 else np.int32   # class indices, -1 none: a byte is enough
    if post.certified is not None:
        store.create_property("certified", data=post.certified.astype(index))
    if post.close_packed is not None:
        store.create_property("close_packed", data=post.close_packed.astype(index))
    if post.neighbors is not None:  # only the rows a new threshold can make assign() read
        read = np.flatnonzero(rows_read(post, model))
        rows = cache.tables.create(identifier="mlclass-rows")
        rows.create_property("particle", data=read.astype(np.int32))
        rows.create_property("neighbors", data=np.asarray(post.neighbors[read], dtype=np.int32))


def _restore(cache: DataCollection) -> Posteriors:
    store = cache.tables["mlclass-posteriors"]
    neighbors = None
    if "mlclass-rows" in cache.tables:  # the rows kept, -1 (no neighbour) in the others, never read
        kept = cache.tables["mlclass-rows"]
        rows = np.asarray(kept["neighbors"])
        neighbors = np.full((len(store["p"]), rows.shape[1]), -1, dtype=np.int32)
        neighbors[np.asarray(kept["particle"])] = rows
    return Posteriors(np.asarray(store["p"]), np.asarray(store["s"]) if "s" in store else None,
                      np.asarray(store["described"]) != 0,
                      np.asarray(store["novelty"]) if "novelty" in store else None,
                      neighbors,
                      np.asarray(store["certified"]) if "certified" in store else None,
                      np.asarray(store["close_packed"]) if "close_packed" in store else None)
