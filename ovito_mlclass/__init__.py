"""ovito-mlclass: machine-learned per-atom structure identification for OVITO.

Data flow, one module per stage: ``neighbors`` (cell-list search, Voronoi cells -> CSR lists) ->
``descriptors`` (C++ kernel, numba reference) -> ``features`` (a model's recipe of descriptors) ->
``model`` (TorchScript classifier with metadata) -> ``classify`` (posteriors -> structure types) ->
``modifiers`` (OVITO pipeline shells). ``unsupervised`` finds structure types without labels
(autoencoder + Gaussian mixture). ``properties`` predicts properties of whole crystals (crystal graph
networks, CGCNN). ``training`` makes the data and the models.
"""
__version__ = "0.1.0"

from .descriptors import BACKEND, Steinhardt, SymmetryFunctions
from .modifiers import (PropertyPredictorModifier, StructureClassifierModifier, SteinhardtModifier,
                        SymmetryFunctionsModifier, UnsupervisedClassifierModifier)

__all__ = ["BACKEND", "PropertyPredictorModifier", "Steinhardt", "SymmetryFunctions", "SteinhardtModifier",
           "SymmetryFunctionsModifier", "StructureClassifierModifier", "UnsupervisedClassifierModifier"]
