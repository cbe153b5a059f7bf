"""Stage 5 of the data flow: posteriors -> structure types, the plain-NumPy classification API.

    result = classify(data, "metals")          # data: an ovito DataCollection
    result.types, result.confidence, result.counts

Structure type ids follow OVITO's convention: 0 = Other (rejected, or not a particle the model
describes), then 1..C for the model's classes in order.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from ovito.data import DataCollection

from .model import StructureModel, load_model

OTHER = "Other"
OTHER_COLOR = (0.95, 0.95, 0.95)


@dataclass
class Posteriors:
    """What the model says about every particle, before the reject threshold is applied (this is
    what the modifier caches, so moving the threshold costs nothing)."""

    probabilities: np.ndarray      # (n, C) float32; rows of undescribed particles are 0
    sites: np.ndarray | None       # (n, S) float32 site posteriors, or None
    described: np.ndarray          # (n,) bool: particles the model describes (its particle types)


@dataclass
class Classification:
    types: np.ndarray              # (n,) int32: 0 = Other, k + 1 = class k
    confidence: np.ndarray         # (n,) float32: largest posterior (0 for undescribed particles)
    posteriors: Posteriors
    names: list                    # type names by id: ["Other", class 0, class 1, ...]
    colors: list                   # RGB by id
    site_types: np.ndarray | None = None  # (n,) int32: 0 = none, k + 1 = site class k
    site_names: list | None = None

    @property
    def counts(self) -> dict:
        return dict(zip(self.names, np.bincount(self.types, minlength=len(self.names)).tolist()))


def as_model(model, device: str | None = "auto") -> StructureModel:
    """A loaded model as is; a name or file loaded (once) with its network on ``device``."""
    return model if isinstance(model, StructureModel) else load_model(model, device)


def posteriors_steps(data: DataCollection, model):
    """:func:`posteriors` as a generator that yields progress ``(fraction, text)`` between stages
    and returns the :class:`Posteriors` (``post = yield from posteriors_steps(...)``)."""
    model = as_model(model)
    described = model.features.selection(data)
    n = len(described)
    probs = np.zeros((n, len(model.classes)), dtype=np.float32)
    sites = np.zeros((n, len(model.site_classes)), dtype=np.float32) if model.site_classes else None
    if described.any():
        yield 0.0, "neighbours and descriptors"
        features, neighbors = (model.features.compute(data, neighbors=model.neighbor_average)
                               if model.neighbor_average else (model.features.compute(data), None))
        yield 0.8, "network"
        p, s = model.predict(features, neighbors)
        probs[described] = p
        if sites is not None:
            sites[described] = s
    return Posteriors(probs, sites, described)


def posteriors(data: DataCollection, model) -> Posteriors:
    """Features and posteriors of every particle (see :class:`Posteriors`)."""
    steps = posteriors_steps(data, model)
    while True:
        try:
            next(steps)
        except StopIteration as done:
            return done.value


def assign(post: Posteriors, model, reject_threshold: float | None = None) -> Classification:
    """Structure types from posteriors: the most probable class, or Other where its posterior is
    below the reject threshold (the model's own θ unless given)."""
    model = as_model(model)
    theta = model.reject_threshold if reject_threshold is None else float(reject_threshold)
    if not 0.0 <= theta <= 1.0:
        raise ValueError(f"The reject threshold must lie in [0, 1], got {theta}.")
    confidence = post.probabilities.max(axis=1) if post.probabilities.shape[1] else np.zeros(len(post.described))
    types = (post.probabilities.argmax(axis=1) + 1).astype(np.int32)
    types[(confidence < theta) | ~post.described] = 0
    site_types = None
    if post.sites is not None:
        site_types = (post.sites.argmax(axis=1) + 1).astype(np.int32)
        site_types[~post.described] = 0
    return Classification(types=types, confidence=confidence.astype(np.float32), posteriors=post,
                          names=[OTHER] + model.classes, colors=[OTHER_COLOR] + model.colors,
                          site_types=site_types, site_names=["None"] + model.site_classes if post.sites is not None
                          else None)


def classify(data: DataCollection, model="metals", reject_threshold: float | None = None,
             device: str | None = "auto") -> Classification:
    """Label every particle of ``data`` with ``model`` (built-in name, file path or a loaded model);
    the network runs on ``device`` ("auto": CUDA when available, else CPU)."""
    model = as_model(model, device)
    return assign(posteriors(data, model), model, reject_threshold)
