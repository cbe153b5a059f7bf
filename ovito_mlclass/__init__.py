"""ovito-mlclass: machine-learned per-atom structure identification for OVITO.

Data flow, one module per stage: ``neighbors`` (cell-list search -> CSR lists) ->
``descriptors`` (C++ kernel, numba reference) -> ``modifiers`` (OVITO pipeline shells).
"""
from .descriptors import BACKEND, Steinhardt, SymmetryFunctions
from .modifiers import SteinhardtModifier, SymmetryFunctionsModifier

__version__ = "0.1.0"
__all__ = ["BACKEND", "Steinhardt", "SymmetryFunctions", "SteinhardtModifier", "SymmetryFunctionsModifier"]
