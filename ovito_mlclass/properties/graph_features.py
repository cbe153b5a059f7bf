"""Atom features of the crystal graph, from the element database ``mendeleev``.

The properties are those of CGCNN (Xie & Grossman 2018, Table S2): group, period, Pauling
electronegativity, covalent radius (Pyykkö), valence electrons, first ionisation energy, electron
affinity, block and atomic volume. Group, period and block are one-hot; each continuous property is
given twice: standardised over the elements 1-100, and one-hot in 8 bins between its quantiles over
those elements (CGCNN's binning, which lets the first layer respond non-linearly). A missing value
(e.g. the electron affinity of N, the electronegativity of He) is 0 standardised with no bin set.

The table ships with the package (``element_features.npy``, made by ``python -m
ovito_mlclass.properties.graph_features``: querying mendeleev for 100 elements takes about a minute) and is
stored inside every trained model, so neither training nor prediction queries mendeleev.
"""
from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np

MAX_Z = 100
CONTINUOUS = ("electronegativity", "covalent_radius", "valence_electrons", "first_ionisation_energy",
              "electron_affinity", "log_atomic_volume")
BLOCKS = ("s", "p", "d", "f")
N_BINS = 8
TABLE_FILE = Path(__file__).resolve().parent / "element_features.npy"


def raw_properties(numbers=range(1, MAX_Z + 1)) -> dict[str, np.ndarray]:
    """The element properties from mendeleev, arrays indexed by atomic number (row 0 unused; NaN where
    mendeleev has no value). f-block elements have no group number in mendeleev; they get group 3 (the
    column the lanthanides and actinides sit under) and are told apart by their block."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from mendeleev import element

        elements = element(list(numbers))
        elements = elements if isinstance(elements, list) else [elements]
        raw = {key: np.full(MAX_Z + 1, np.nan) for key in ("group", "period", "block") + CONTINUOUS}
        for e in elements:
            z = e.atomic_number
            raw["group"][z] = e.group_id if e.group_id is not None else 3
            raw["period"][z] = e.period
            raw["block"][z] = BLOCKS.index(e.block)
            raw["electronegativity"][z] = _number(e.en_pauling)
            raw["covalent_radius"][z] = _number(e.covalent_radius_pyykko)
            raw["valence_electrons"][z] = _number(e.nvalence())
            raw["first_ionisation_energy"][z] = _number((e.ionenergies or {}).get(1))
            raw["electron_affinity"][z] = _number(e.electron_affinity)
            # mendeleev's atomic volume (cm^3/mol) uses the gas density for gaseous elements, so it
            # spans four decades: its logarithm is the feature
            volume = _number(e.atomic_volume)
            raw["log_atomic_volume"][z] = math.log10(volume) if volume and volume > 0 else np.nan
    return raw


def _number(value) -> float:
    try:
        value = float(value)
    except (TypeError, ValueError):
        return np.nan
    return value if math.isfinite(value) else np.nan


def encode(raw: dict[str, np.ndarray]) -> np.ndarray:
    """The feature table (MAX_Z + 1, n_features), float32; row 0 (no element) is all zeros."""
    z = np.arange(1, MAX_Z + 1)
    columns = [_one_hot(raw["group"][z], 1, 18), _one_hot(raw["period"][z], 1, 7), _one_hot(raw["block"][z], 0, 3)]
    for key in CONTINUOUS:
        values = raw[key][z]
        known = np.isfinite(values)
        mean, std = values[known].mean(), values[known].std()
        columns.append(np.where(known, (values - mean) / std, 0.0)[:, None])
        edges = np.quantile(values[known], np.linspace(0, 1, N_BINS + 1)[1:-1])
        bins = np.where(known, np.searchsorted(edges, np.where(known, values, 0.0), side="right"), -1)
        columns.append(_one_hot(bins, 0, N_BINS - 1))
    table = np.zeros((MAX_Z + 1, sum(c.shape[1] for c in columns)), dtype=np.float32)
    table[1:] = np.hstack(columns)
    return table


def _one_hot(values: np.ndarray, low: int, high: int) -> np.ndarray:
    out = np.zeros((len(values), high - low + 1))
    valid = np.isfinite(values) & (values >= low)
    out[np.flatnonzero(valid), values[valid].astype(int) - low] = 1.0
    return out


def element_table() -> np.ndarray:
    """The packaged feature table (MAX_Z + 1, n_features)."""
    return np.load(TABLE_FILE)


if __name__ == "__main__":
    np.save(TABLE_FILE, encode(raw_properties()))
    print(f"wrote {TABLE_FILE}")
