"""Stage 3 of the data flow: thin OVITO pipeline shells over the NumPy API."""
from .steinhardt import SteinhardtModifier
from .symmetry_functions import SymmetryFunctionsModifier

__all__ = ["SteinhardtModifier", "SymmetryFunctionsModifier"]
