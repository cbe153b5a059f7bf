"""Stage 3 of the data flow: thin OVITO pipeline shells over the NumPy API."""
from .classifier import StructureClassifierModifier
from .property import PropertyPredictorModifier
from .steinhardt import SteinhardtModifier
from .structure_map import StructureMapModifier
from .symmetry_functions import SymmetryFunctionsModifier
from .unsupervised import UnsupervisedClassifierModifier

__all__ = ["PropertyPredictorModifier", "StructureClassifierModifier", "SteinhardtModifier", "StructureMapModifier",
           "SymmetryFunctionsModifier",
           "UnsupervisedClassifierModifier"]
