"""Stage 2 of the data flow: neighbour lists -> per-atom descriptor vectors."""
from .._compiled import BACKEND
from .steinhardt import Steinhardt
from .symmetry_functions import SymmetryFunctions

__all__ = ["BACKEND", "Steinhardt", "SymmetryFunctions"]
