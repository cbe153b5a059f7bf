"""The compiled module (``_kernels``: neighbour searches, Voronoi cells, descriptor kernels), or the
numba reference of the descriptor kernels (with a warning) where it cannot be imported."""
import warnings

try:
    from . import _kernels as kernels

    BACKEND = "c++"
    COMPILED = True
except ImportError as error:  # e.g. a source checkout that was never built
    BACKEND = "numba"
    COMPILED = False  # set before the import below, which reads this module's BACKEND
    from .descriptors import reference as kernels

    warnings.warn(
        f"ovito_mlclass: compiled descriptor kernel unavailable ({error}); using the slow numba reference. "
        "Reinstall with `pip install .` to build it.",
        RuntimeWarning,
        stacklevel=2,
    )

__all__ = ["kernels", "BACKEND", "COMPILED"]
