"""Elemental properties for the composition models (double-perovskite band gaps, adsorption
energies), from the element database of `mendeleev <https://mendeleev.readthedocs.io>`_.

Where the papers used a quantity mendeleev does not tabulate, the nearest well-defined
substitute is used, and named as such:

- ``homo`` — the highest occupied Kohn–Sham level of the free atom (Pilania et al. 2016) is
  replaced by minus the Mulliken electronegativity, −(IE₁ + EA)/2: in the local-density
  approximation the HOMO of an atom lies near the midpoint of −IE and −EA, not at −IE.
- ``r_s``, ``r_p``, ``r_d`` — Zunger's pseudopotential s/p/d orbital radii are replaced by the
  radius of maximum radial density of Slater-type orbitals, r = n*² a₀ / Z_eff, with Z_eff from
  Slater's screening rules (mendeleev's ``slater_screening``). The s and p shells are the
  outermost shell n of the ground state; the d shell is n − 1 (n ≥ 4) or 3 (n ≤ 3), occupied
  or not.
- ``electron_affinity`` — elements without a bound anion (mendeleev: none) count as 0 eV.
- ``d_electrons`` — electrons in the valence d shell (as ``r_d``): the filling of the d band of a
  metal, to the free-atom approximation.

The Kohn–Sham LUMO of the free atom (Pilania et al.) is not in mendeleev: it comes from a table
given by the caller (:func:`read_lumo_table`).
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np

BOHR = 0.529177210903                                   # Å
SLATER_N_EFF = {1: 1.0, 2: 2.0, 3: 3.0, 4: 3.7, 5: 4.0, 6: 4.2, 7: 4.3}   # Slater's effective n*

PROPERTIES = {
    "electronegativity": "Pauling electronegativity",
    "ionization_energy": "first ionisation energy (eV)",
    "electron_affinity": "electron affinity (eV; 0 where no anion is bound)",
    "homo": "highest occupied level, substitute: −(IE₁ + EA)/2 (eV)",
    "r_s": "valence s orbital radius, substitute: Slater-orbital radius n*² a₀/Z_eff (Å)",
    "r_p": "valence p orbital radius, substitute: Slater-orbital radius (Å)",
    "r_d": "valence d orbital radius, substitute: Slater-orbital radius (Å)",
    "atomic_radius": "atomic radius (Å; mendeleev's atomic_radius, Slater's empirical radii)",
    "d_electrons": "electrons in the valence d shell",
    "group": "group of the periodic table",
    "period": "period of the periodic table",
}


class UnknownElementError(ValueError):
    """An element symbol that the element database (or a given table) does not cover."""


@lru_cache(maxsize=1)
def _tables():
    from mendeleev.fetch import fetch_table

    elements = fetch_table("elements").set_index("symbol")
    ionization = fetch_table("ionizationenergies")
    first = ionization[ionization.ion_charge == 0].set_index("atomic_number")["ionization_energy"]
    return elements, first


def _valence_shells(configuration) -> tuple[int, int]:
    """Principal quantum numbers of the valence s/p shell and of the valence d shell."""
    n = configuration.max_n()
    return n, (n - 1 if n >= 4 else 3)


def _slater_radius(atomic_number: int, configuration, n: int, orbital: str) -> float:
    z_eff = atomic_number - configuration.slater_screening(n, orbital)
    return SLATER_N_EFF[n] ** 2 / z_eff * BOHR


@lru_cache(maxsize=None)
def element_properties(symbol: str) -> dict[str, float]:
    """All of :data:`PROPERTIES` for one element (raises :class:`UnknownElementError`)."""
    from mendeleev.econf import ElectronicConfiguration

    elements, first_ionization = _tables()
    if symbol not in elements.index:
        raise UnknownElementError(f"unknown element symbol {symbol!r}")
    row = elements.loc[symbol]
    z = int(row.atomic_number)
    configuration = ElectronicConfiguration(row.electronic_configuration)
    n_sp, n_d = _valence_shells(configuration)
    affinity = row.electron_affinity if np.isfinite(row.electron_affinity) else 0.0
    ionization = float(first_ionization.get(z, np.nan))
    values = {
        "electronegativity": float(row.en_pauling),
        "ionization_energy": ionization,
        "electron_affinity": float(affinity),
        "homo": -(ionization + affinity) / 2,
        "r_s": _slater_radius(z, configuration, n_sp, "s"),
        "r_p": _slater_radius(z, configuration, n_sp, "p"),
        "r_d": _slater_radius(z, configuration, n_d, "d"),
        "atomic_radius": float(row.atomic_radius) / 100.0,
        "d_electrons": float(configuration.conf.get((n_d, "d"), 0)),
        "group": float(row.group_id),
        "period": float(row.period),
    }
    missing = [name for name, value in values.items() if not np.isfinite(value)]
    if missing:
        raise UnknownElementError(f"the element database has no {', '.join(missing)} for {symbol}")
    return values


def property_matrix(symbols, names) -> np.ndarray:
    """(len(symbols), len(names)) array of the named properties of each element."""
    unknown = [name for name in names if name not in PROPERTIES]
    if unknown:
        raise ValueError(f"unknown element properties {unknown}; available: {', '.join(PROPERTIES)}")
    return np.array([[element_properties(s)[name] for name in names] for s in symbols], dtype=float)


def read_csv_table(path, what: str):
    """A CSV file as a pandas DataFrame; a missing or unreadable file is a clear error naming ``what``."""
    import pandas as pd

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} not found: {path}")
    try:
        return pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        raise ValueError(f"{path}: not a readable CSV ({error})") from None


def read_lumo_table(path) -> dict[str, float]:
    """Kohn–Sham LUMO energies of free atoms (eV) from a CSV with columns ``atom`` and ``lumo``
    (matminer's ``double_perovskites_gap_lumo`` layout; an unnamed index column is ignored)."""
    import pandas as pd

    table = read_csv_table(path, "LUMO table")
    if not {"atom", "lumo"} <= set(table.columns):
        raise ValueError(f"{path}: a LUMO table needs columns 'atom' and 'lumo' (found {list(table.columns)})")
    lumo = pd.to_numeric(table["lumo"], errors="coerce")
    if lumo.isna().any() or table["atom"].duplicated().any():
        raise ValueError(f"{path}: the 'lumo' column must hold one number per element")
    return dict(zip(table["atom"].astype(str).str.strip(), lumo.astype(float)))
