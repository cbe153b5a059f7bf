"""ovito-mlclass: machine-learned per-atom structure identification for OVITO.

Data flow, one module per stage, on a :class:`~ovito_mlclass.frames.Frame` (positions, cell,
periodicity, particle types): ``neighbors`` (cell-list search, Voronoi cells -> CSR lists) ->
``descriptors`` (C++ kernel, numba reference) -> ``features`` (a model's recipe of descriptors) ->
``model`` (TorchScript classifier with metadata) -> ``classify`` (posteriors -> structure types).
This core needs no OVITO: ``frames`` reads arrays and ASE ``Atoms``, ``ovito_adapter`` converts
OVITO ``DataCollection`` objects (and is used by the core only for OVITO's own analyses where
those are the fallback). ``modifiers`` are the OVITO pipeline shells. ``unsupervised`` finds
structure types without labels (autoencoder + Gaussian mixture). ``properties`` predicts
properties of whole crystals (crystal graph networks, CGCNN). ``training`` makes the data and the
models.
"""
__version__ = "0.1.0"

from ._compiled import BACKEND
from .descriptors import Steinhardt, SymmetryFunctions

_MODIFIERS = ("PropertyPredictorModifier", "StructureClassifierModifier", "SteinhardtModifier",
              "SymmetryFunctionsModifier", "UnsupervisedClassifierModifier")

__all__ = ["BACKEND", "Steinhardt", "SymmetryFunctions", *_MODIFIERS]


def __getattr__(name):
    # the OVITO modifiers on first use, so that importing the core does not import OVITO
    if name in _MODIFIERS:
        from . import modifiers

        return getattr(modifiers, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
