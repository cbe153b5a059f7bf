"""OVITO modifier shell around :mod:`ovito_mlclass.properties` (CGCNN property prediction)."""
from __future__ import annotations

import warnings

import numpy as np
from ovito.data import DataCollection
from ovito.pipeline import ModifierInterface
from ovito.traits import FilePath
from traits.api import Enum

from ..neighbors import InputError
from ..properties.graph import crystal_from_data
from ..properties.model import UnseenElementWarning, builtin_property_models, load_property_model

CONTRIBUTION = "Property Contribution"


class PropertyPredictorModifier(ModifierInterface):
    """Predicts a property of the whole crystal with a crystal graph network (CGCNN).

    ``model``: a built-in property model (``formation-energy`` in eV/atom, ``bulk-modulus`` and
    ``shear-modulus`` in log10 GPa, ``poisson-ratio`` (dimensionless), ``band-gap`` in eV) or a model
    file; ``model_file`` (the GUI's file picker) overrides it. The particles need element names as their types and the cell its periodicity.

    Outputs: global attributes ``PropertyPredictor.<quantity>`` and ``PropertyPredictor.<quantity>.uncertainty``
    (calibrated 1σ), ``PropertyPredictor.unseen_elements`` (comma-separated symbols absent from the
    training data, empty if none; a warning is also issued then), and the particle property
    ``Property Contribution``: each atom's value y_i of the network's additive readout, in the quantity's
    unit; the prediction is exactly the mean of the contributions over the atoms, so colouring by it shows
    which atoms raise or lower the prediction.
    """

    model = Enum("formation-energy", *[m for m in builtin_property_models() if m != "formation-energy"], label="Model",
                 ovito_group="Model", desc="a built-in property model; a path given here sets model_file")
    model_file = FilePath(label="Model file (instead)", ovito_group="Model",
                          desc="a property model file of your own, used instead of model")

    def __init__(self, model=None, **params):
        if model is not None and str(model) not in builtin_property_models():
            params.setdefault("model_file", str(model))  # a path given as the model
        elif model is not None:
            params["model"] = model
        super().__init__(**params)

    def modify(self, data: DataCollection, *, frame: int = 0, **kwargs):
        model = load_property_model(self.model_file or self.model)
        yield f"Property prediction ({model.name}): building the crystal graph"
        try:
            crystal = crystal_from_data(data)
        except InputError as exc:
            raise RuntimeError(f"Property prediction ({model.name}): {exc}") from None
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", UnseenElementWarning)
            prediction = model.predict(crystal)
        yield 0.9
        key = f"PropertyPredictor.{model.quantity}"
        data.attributes[key] = prediction.value
        data.attributes[key + ".uncertainty"] = prediction.uncertainty
        data.attributes["PropertyPredictor.unseen_elements"] = ",".join(prediction.unseen)
        data.particles_.create_property(CONTRIBUTION, data=prediction.contributions.astype(np.float64))
        for w in caught:  # passed on once the outputs are written, so the pipeline still has them
            warnings.warn(str(w.message), UnseenElementWarning, stacklevel=2)
        yield 1.0
