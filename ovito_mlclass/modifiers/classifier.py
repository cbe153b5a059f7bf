"""OVITO modifier shell around :mod:`ovito_mlclass.classify`."""
from __future__ import annotations

import numpy as np
from ovito.data import DataCollection, DataTable, ElementType
from ovito.pipeline import ModifierInterface
from ovito.traits import FilePath
from traits.api import Bool, Float, Str

from ..classify import Posteriors, assign, posteriors_steps
from ..model import StructureModel, load_model
from ._common import relay_progress, selected_subset


class StructureClassifierModifier(ModifierInterface):
    """Machine-learned structure identification.

    ``model`` is a built-in model name (``ovito-mlclass models`` lists them) or the path of a
    model file; ``model_file`` (the GUI's file picker) overrides it when set. Outputs: typed particle
    property ``Structure Type`` (Other = 0, then the model's classes, with OVITO's colours), ``Structure
    Confidence`` (largest posterior), with ``output_probabilities`` one ``Probability <class>``
    property per class, for models with a site output a typed ``<site property>`` (e.g. ``Frank-Kasper
    Site``), global attributes ``StructureClassifier.counts.<NAME>`` and a bar-chart table of counts.
    Changing ``reject_threshold`` (None = the model's own θ) reuses the cached posteriors.
    ``device``: where the network runs, "auto" (CUDA when available, else CPU), "cpu" or "cuda[:N]".
    """

    model = Str("metals", label="Model (built-in name or file)")
    model_file = FilePath(label="Custom model file")
    reject_threshold = Float(-1.0, label="Reject threshold θ (-1: model's own)", ovito_invalidate_cache=False)
    output_probabilities = Bool(False, label="Output class probabilities", ovito_invalidate_cache=False)
    only_selected = Bool(False, label="Use only selected particles")
    color_particles = Bool(True, label="Colour particles by type", ovito_invalidate_cache=False)
    device = Str("auto", label="Device (auto, cpu, cuda)", ovito_invalidate_cache=False)

    def __init__(self, reject_threshold=None, **params):
        super().__init__(reject_threshold=-1.0 if reject_threshold is None else reject_threshold, **params)

    def _load(self) -> StructureModel:
        return load_model(self.model_file or self.model, self.device)

    def modify(self, data: DataCollection, *, data_cache: DataCollection = None, frame: int = 0, **kwargs):
        work, mask = selected_subset(data, self.only_selected)
        model = self._load()
        key = f"{model.path}|{model.path.stat().st_mtime_ns if model.path else ''}|{self.only_selected}|{frame}"
        cached = getattr(data_cache, "attributes", {}) if data_cache is not None else {}
        if cached.get("StructureClassifier.key") == key:
            post = _restore(data_cache)
        else:
            post = yield from relay_progress(posteriors_steps(work, model), f"Structure classification ({model.name})")
            if data_cache is not None:
                _cache(data_cache, key, post)
        theta = None if self.reject_threshold < 0 else self.reject_threshold
        result = assign(post, model, theta)
        self._write(data, result, mask, model)
        yield 1.0

    def _write(self, data, result, mask, model):
        n = data.particles.count
        analysed = slice(None) if mask is None else mask

        def full(values, dtype):  # a per-particle array: the analysed particles' values, 0 elsewhere
            out = np.zeros(n, dtype=dtype)
            out[analysed] = values
            return out

        types = full(result.types, np.int32)
        confidence = full(result.confidence, np.float32)
        prop = data.particles_.create_property("Structure Type", data=types)
        for type_id, (name, color) in enumerate(zip(result.names, result.colors)):
            t = prop.add_type_id(type_id, data.particles_, name=name)
            t.color = color
        data.particles_.create_property("Structure Confidence", data=confidence)
        if self.output_probabilities:
            for k, name in enumerate(model.classes):
                data.particles_.create_property(f"Probability {name}",
                                                data=full(result.posteriors.probabilities[:, k], np.float32))
        if result.site_types is not None:
            sites = full(result.site_types, np.int32)
            site_name = model.metadata.get("site_property") or "Site Type"
            sprop = data.particles_.create_property(site_name, data=sites)
            for type_id, name in enumerate(result.site_names):
                sprop.add_type_id(type_id, data.particles_, name=name)
        if self.color_particles:
            palette = np.asarray(result.colors, dtype=np.float32)
            data.particles_.create_property("Color", data=palette[types])
        counts = np.bincount(types, minlength=len(result.names))
        for name, count in zip(result.names, counts):
            data.attributes[f"StructureClassifier.counts.{name.replace(' ', '_')}"] = int(count)
        table = data.tables.create(identifier="structures", title="Structure counts", plot_mode=DataTable.PlotMode.BarChart)
        x = table.create_property("Structure type", data=np.arange(len(result.names), dtype=np.int32))
        for type_id, (name, color) in enumerate(zip(result.names, result.colors)):
            x.types.append(ElementType(id=type_id, name=name, color=color))
        table.x = x
        table.y = table.create_property("Count", data=counts.astype(np.int64))


def _cache(cache: DataCollection, key: str, post) -> None:
    cache.attributes["StructureClassifier.key"] = key
    store = cache.tables.create(identifier="mlclass-posteriors")
    store.create_property("p", data=post.probabilities.astype(np.float32))
    store.create_property("described", data=post.described.astype(np.int8))
    if post.sites is not None:
        store.create_property("s", data=post.sites.astype(np.float32))


def _restore(cache: DataCollection) -> Posteriors:
    store = cache.tables["mlclass-posteriors"]
    return Posteriors(np.asarray(store["p"]), np.asarray(store["s"]) if "s" in store else None,
                      np.asarray(store["described"]) != 0)
