"""OVITO modifier shell around :mod:`ovito_mlclass.unsupervised` (autoencoder + Gaussian mixture)."""
from __future__ import annotations

import hashlib

import numpy as np
from ovito.data import DataCollection, DataTable, ElementType
from ovito.pipeline import ModifierInterface
from ovito.traits import FilePath, action_handler
from traits.api import Bool, Button, Enum, Int, Range, Str

from ..frames import Frame
from ..neighbors import InputError
from ..structure_types import OTHER, OTHER_COLOR
from ._common import relay_progress, selected_subset
from .steinhardt import DegreeList, parse_degrees


class UnsupervisedClassifierModifier(ModifierInterface):
    """Structure types found without labels (Boattini et al., J. Chem. Phys. 151, 154901 (2019)).

    Every particle is described by its neighbour-averaged bond-order parameters q̄_l
    (``degrees``, default 1-8; with ``wbar`` also w̄_l) over its ``neighbors`` nearest neighbours
    (or its Voronoi neighbours: ``neighbor_mode="voronoi"``, as in ``SteinhardtModifier``), compressed by an autoencoder and clustered by a Gaussian mixture. The
    latent dimension and the number of clusters are chosen at the elbows of the fraction of
    variance explained and of the mixture entropy, unless ``dims`` / ``clusters`` fix them (0 =
    automatic). The fit is made on ``reference_frame`` and applied unchanged to every frame, so
    cluster numbers and colours are stable along a trajectory (``reference_frame=-1``: each frame
    is fitted on its own). Clusters are numbered by decreasing mean q̄6 (Cluster 1 = most ordered).

    Outputs: typed property ``Cluster Type`` (``Cluster 1..K``, distinct colours; OVITO's own
    ``Cluster`` property is its cluster analysis's untyped int64), ``Cluster
    Probability`` (posterior of the assigned cluster), ``Latent Coordinates`` (a vector property
    for OVITO's scatter plot), ``Color`` (with ``color_by_type``), tables of both elbow curves
    (``cluster-fve``, ``cluster-entropy``, with the BIC) and of the counts (``clusters``), and the
    attributes ``UnsupervisedClassifier.dims``, ``.clusters`` and ``.counts.Cluster_<k>``.
    ``save_model(path, names)`` (or the GUI's button) writes the fit as a classifier file that
    ``StructureClassifierModifier(model=path)`` applies to other simulations.
    """

    degrees = DegreeList("1-8", label="Degrees l of q̄_l", ovito_group="Descriptors",
                         desc='the degrees l of the averaged bond-order parameters q̄_l, e.g. "1-8" or "4 6"')
    neighbor_mode = Enum("nearest", "voronoi", label="Neighbours", ovito_group="Descriptors",
                         desc="the nearest neighbours, or Voronoi neighbours weighted by face area")
    neighbors = Range(1, 64, 12, label="Number of neighbours", ovito_group="Descriptors",
                      desc="nearest neighbours of the bond-order parameters (neighbour mode 'nearest')")
    wbar = Bool(False, label="Also w̄_l", ovito_group="Descriptors",
                desc="also the averaged third-order invariants w̄_l")
    only_selected = Bool(False, label="Use only selected particles", ovito_group="Descriptors",
                         desc="the unselected particles are treated as absent (cluster type Other)")
    dims = Range(0, 64, 0, label="Latent dimensions (0: elbow of FVE)", ovito_group="Fit",
                 desc="bottleneck width of the autoencoder; 0: the elbow of the fraction of variance explained")
    clusters = Range(0, 32, 0, label="Clusters (0: elbow of mixture entropy)", ovito_group="Fit",
                     desc="number of clusters; 0: the elbow of the mixture entropy")
    max_clusters = Range(2, 32, 8, label="Most clusters tried", ovito_group="Fit",
                         desc="the largest number of clusters tried for the elbow")
    seed = Int(0, label="Random seed", ovito_group="Fit", desc="fixes the networks and the mixtures")
    reference_frame = Int(0, label="Fit on frame (-1: every frame)", ovito_group="Fit",
                          desc="the frame the fit is made on and applied from; -1: every frame fitted on its own")
    color_by_type = Bool(True, label="Color particles by cluster", ovito_group="Output", ovito_invalidate_cache=False,
                         desc="write the Color property of the clusters")
    model_file = FilePath(label="Save fitted model as (.pt)", ovito_group="Save as a classifier",
                          desc="where the save button writes the fit as a classifier file")
    cluster_names = Str("", label="Class names for the saved model (comma-separated)",
                        ovito_group="Save as a classifier", ovito_invalidate_cache=False,
                        desc="names of the clusters in the saved classifier (default Cluster 1..K)")
    save_button = Button(ovito_label="Save fitted model", ovito_group="Save as a classifier")

    def __init__(self, **params):
        if params.get("neighbors") == 0:  # how Voronoi neighbours were asked for before neighbor_mode
            del params["neighbors"]
            params["neighbor_mode"] = "voronoi"
        super().__init__(**params)
        self._fits = {}    # fit key -> UnsupervisedFit; the last fits, reused for every frame
        self.last_fit = None

    # ---- fitting ----------------------------------------------------------------------------
    def recipe(self):
        from ..unsupervised import BondOrderRecipe

        neighbors = "voronoi" if self.neighbor_mode == "voronoi" else self.neighbors
        return BondOrderRecipe(degrees=parse_degrees(self.degrees), neighbors=neighbors, wbar=self.wbar)

    def _options(self) -> dict:
        for name in ("dims", "clusters"):
            if getattr(self, name) < 0:
                raise InputError(f"{name} must be 0 (automatic) or positive, got {getattr(self, name)}.")
        return {"seed": self.seed, "dims": self.dims or None, "clusters": self.clusters or None,
                "max_clusters": self.max_clusters}

    def _fit_steps(self, reference: Frame):
        from ..unsupervised import fit_structure_steps

        recipe, options = self.recipe(), self._options()
        digest = hashlib.sha1(reference.positions.tobytes() + reference.cell.tobytes()).hexdigest()
        key = (recipe, tuple(sorted(options.items())), digest)
        if key not in self._fits:
            result = yield from fit_structure_steps(reference, recipe, **options)
            self._fits = {key: result}  # keep one fit: a parameter change makes the old one stale
        return self._fits[key]

    def modify(self, data: DataCollection, *, frame: int = 0, input_slots=None, **kwargs):
        reference_frame = frame if self.reference_frame < 0 else self.reference_frame
        if reference_frame == frame or input_slots is None:
            reference = data
        else:
            upstream = input_slots["upstream"]
            if not 0 <= reference_frame < upstream.num_frames:
                raise InputError(f"Reference frame {reference_frame} is out of range: the input has "
                                 f"{upstream.num_frames} frame(s).")
            reference = upstream.compute(reference_frame)
        reference = selected_subset(reference, self.only_selected)[0]
        work, mask = selected_subset(data, self.only_selected)
        result = yield from relay_progress(self._fit_steps(reference),
                                           f"Unsupervised classification (fit on frame {reference_frame})")
        self.last_fit = result
        yield "Unsupervised classification: applying the fit"
        from ..unsupervised import predict_structure

        self._write(data, result, predict_structure(result, work), mask)
        yield 1.0

    def input_caching_hints(self, frame: int, **kwargs):
        return [frame] if self.reference_frame < 0 else sorted({frame, self.reference_frame})

    # ---- output -----------------------------------------------------------------------------
    def _write(self, data: DataCollection, result, prediction, mask=None):
        from ..unsupervised import CLUSTER_COLORS

        names = result.class_names
        colors = [CLUSTER_COLORS[k % len(CLUSTER_COLORS)] for k in range(len(names))]
        analysed = slice(None) if mask is None else mask

        def full(values, dtype):  # a per-particle array: the analysed particles' values, 0 elsewhere
            out = np.zeros((data.particles.count,) + values.shape[1:], dtype=dtype)
            out[analysed] = values
            return out

        types = full(prediction.labels + 1, np.int32)
        # "Cluster" is OVITO's standard (int64) property of its cluster analysis, which cannot carry types
        prop = data.particles_.create_property("Cluster Type", dtype=np.int32, data=types)
        for k, (name, color) in enumerate(zip(names, colors)):
            prop.add_type_id(k + 1, data.particles_, name=name).color = color
        if mask is not None:  # the particles left out
            prop.add_type_id(0, data.particles_, name=OTHER).color = OTHER_COLOR
        data.particles_.create_property("Cluster Probability", data=full(prediction.confidence, np.float32))
        data.particles_.create_property("Latent Coordinates", data=full(prediction.latent, np.float32),
                                        components=[f"z{k + 1}" for k in range(prediction.latent.shape[1])])
        if self.color_by_type:
            palette = np.asarray([OTHER_COLOR] + colors, dtype=np.float32)
            data.particles_.create_property("Color", data=palette[types])
        counts = np.bincount(types, minlength=len(names) + 1)[1:]
        data.attributes["UnsupervisedClassifier.dims"] = result.dims
        data.attributes["UnsupervisedClassifier.clusters"] = result.n_clusters
        for name, count in zip(names, counts):
            data.attributes[f"UnsupervisedClassifier.counts.{name.replace(' ', '_')}"] = int(count)
        table = data.tables.create(identifier="clusters", title="Cluster counts", plot_mode=DataTable.PlotMode.BarChart)
        x = table.create_property("Cluster", data=np.arange(1, len(names) + 1, dtype=np.int32))
        for k, (name, color) in enumerate(zip(names, colors)):
            x.types.append(ElementType(id=k + 1, name=name, color=color))
        table.x = x
        table.y = table.create_property("Count", data=counts.astype(np.int64))
        curves = [("cluster-fve", "Elbow: fraction of variance explained", "Latent dimensions", result.fve_curve),
                  ("cluster-entropy", "Elbow: mixture entropy", "Clusters", result.entropy_curve)]
        for identifier, title, xlabel, curve in curves:
            t = data.tables.create(identifier=identifier, title=title, plot_mode=DataTable.PlotMode.Line)
            t.x = t.create_property(xlabel, data=curve.x.astype(np.int32))
            t.y = t.create_property(curve.label, data=curve.y.astype(np.float64))
            t.create_property("Chosen", data=(curve.x == curve.chosen).astype(np.int8))
            if identifier == "cluster-entropy":
                t.create_property(result.bic_curve.label, data=result.bic_curve.y.astype(np.float64))

    # ---- export -----------------------------------------------------------------------------
    def save_model(self, path=None, class_names=None):
        """Write the last fit as a classifier file (``StructureClassifierModifier(model=path)``);
        ``class_names`` renames the clusters (default: the ``cluster_names`` text, else Cluster k)."""
        if self.last_fit is None:
            raise RuntimeError("Nothing fitted yet: evaluate the pipeline first.")
        path = path or self.model_file
        if not path:
            raise ValueError("No model file given.")
        if class_names is None and self.cluster_names.strip():
            class_names = [n.strip() for n in self.cluster_names.split(",")]
        return self.last_fit.save_model(path, class_names=class_names)

    @action_handler("save_button")
    def _save_clicked(self, *args, **kwargs):
        self.save_model()
