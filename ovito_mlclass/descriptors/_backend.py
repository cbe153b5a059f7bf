"""Selects the compiled kernel, or the numba reference (with a warning) if it cannot be imported."""
import warnings

try:
    from .. import _kernels as kernels

    BACKEND = "c++"
    COMPILED = True  # the compiled module also holds the neighbour search (neighbors.py)
except ImportError as error:  # e.g. a source checkout that was never built
    from . import reference as kernels

    BACKEND = "numba"
    COMPILED = False
    warnings.warn(
        f"ovito_mlclass: compiled descriptor kernel unavailable ({error}); using the slow numba reference. "
        "Reinstall with `pip install .` to build it.",
        RuntimeWarning,
        stacklevel=2,
    )

__all__ = ["kernels", "BACKEND", "COMPILED"]
