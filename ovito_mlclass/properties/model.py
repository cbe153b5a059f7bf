"""A trained property model: a TorchScript CGCNN plus its metadata record, and prediction with it.

The metadata (JSON, stored in the file as :data:`ovito_mlclass.model.METADATA_FILE`, as for the
structure classifiers) hold the quantity and its unit, the transform of the target (``log10`` for the
moduli), the graph settings, the elements seen in training, how the model was trained (command,
config, seeds, split sizes, time) and how it scored (validation and test MAE, uncertainty calibration).
"""
from __future__ import annotations

import functools
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..model import ModelError, load_model_file, resolve_model_path, save_model_file
from ..neighbors import InputError
from .graph import Crystal, Graph, build_graph

BUILTIN_DIR = Path(__file__).resolve().parent.parent / "models" / "properties"
KIND = "property"


class UnseenElementWarning(UserWarning):
    """The structure holds elements that were absent from the model's training data."""


def builtin_property_models() -> dict[str, Path]:
    """Names and files of the shipped property models (``models/properties/``, apart from the
    structure classifiers)."""
    return {path.stem: path for path in sorted(BUILTIN_DIR.glob("*.pt"))}


@dataclass
class Prediction:
    """One structure's prediction: ``value`` and its calibrated 1σ ``uncertainty`` (in the model's
    unit, e.g. log10 GPa), each atom's ``contributions`` (their mean is ``value``), the ``unseen``
    elements (symbols absent from the training data)."""

    value: float
    uncertainty: float
    contributions: np.ndarray
    unseen: list


@dataclass
class PropertyModel:
    module: object
    metadata: dict
    path: Path | None = None

    def __post_init__(self):
        if not isinstance(self.metadata, dict):
            raise ModelError(f"{self.path or 'model'}: the ovito-mlclass metadata are not a JSON object.")
        for key in ("kind", "quantity", "unit", "graph", "elements"):
            if key not in self.metadata:
                raise ModelError(f"{self.path or 'model'}: the property-model metadata lack '{key}'.")
        if self.metadata["kind"] != KIND:
            raise ModelError(f"{self.path or 'model'}: a {self.metadata['kind']!r} model, not a property model.")

    @property
    def name(self) -> str:
        return self.metadata.get("name") or (self.path.stem if self.path else "model")

    @property
    def quantity(self) -> str:
        return self.metadata["quantity"]

    @property
    def unit(self) -> str:
        return self.metadata["unit"]

    @property
    def elements(self) -> set[int]:
        return set(int(z) for z in self.metadata["elements"])

    def graph(self, crystal: Crystal) -> Graph:
        g = self.metadata["graph"]
        return build_graph(crystal, g["cutoff"], g["max_neighbors"])

    def unseen(self, numbers) -> list[str]:
        from ..extras import requires

        with requires("properties", "property prediction"):
            from ase.data import chemical_symbols

        return [chemical_symbols[z] for z in sorted(set(np.asarray(numbers).tolist()) - self.elements)]

    def predict_graphs(self, graphs: list[Graph], batch: int = 128):
        """(values, uncertainties, list of per-atom contributions) for many graphs."""
        import torch

        from .cgcnn import Batch

        top = max(int(g.numbers.max()) for g in graphs)
        table = int(self.metadata.get("max_z", 100))
        if top > table or min(int(g.numbers.min()) for g in graphs) < 1:
            raise InputError(f"Atomic numbers must lie in 1..{table} for this model (found {top}).")
        values, sigmas, contributions = [], [], []
        with torch.no_grad():
            for start in range(0, len(graphs), batch):
                chunk = graphs[start:start + batch]
                value, sigma, contrib = Batch(chunk).run(self.module)
                values.append(value.numpy())
                sigmas.append(sigma.numpy())
                contributions += np.split(contrib.numpy(), np.cumsum([g.n_atoms for g in chunk])[:-1])
        return np.concatenate(values).astype(float), np.concatenate(sigmas).astype(float), contributions

    def predict(self, crystal: Crystal) -> Prediction:
        """Prediction for one structure; warns (:class:`UnseenElementWarning`) when it holds elements
        the model never saw in training (the prediction is then an extrapolation)."""
        unseen = self.unseen(crystal.numbers)
        if unseen:
            warnings.warn(f"{crystal.name or 'The structure'} contains {', '.join(unseen)}, absent from the training "
                          f"data of model '{self.name}': its {self.quantity} prediction is an extrapolation.",
                          UnseenElementWarning, stacklevel=2)
        values, sigmas, contributions = self.predict_graphs([self.graph(crystal)])
        return Prediction(float(values[0]), float(sigmas[0]), contributions[0], unseen)

    # ---- files -------------------------------------------------------------------------------
    def save(self, path) -> Path:
        return save_model_file(self.module, self.metadata, path)

    @classmethod
    def load(cls, name_or_path) -> "PropertyModel":
        """A built-in property model by name or a TorchScript model file (checked before it is read:
        :func:`ovito_mlclass.model.check_model_archive`)."""
        module, metadata, path = load_model_file(resolve_model_path(name_or_path, builtin_property_models()))
        return cls(module, metadata, path)


def load_property_model(name_or_path) -> PropertyModel:
    """:meth:`PropertyModel.load`, remembered per file and modification time (a pipeline calls the
    modifier on every frame)."""
    path = resolve_model_path(name_or_path, builtin_property_models())
    return _cached(str(path), path.stat().st_mtime_ns)


@functools.lru_cache(maxsize=8)
def _cached(path: str, mtime: int) -> PropertyModel:
    return PropertyModel.load(Path(path))
