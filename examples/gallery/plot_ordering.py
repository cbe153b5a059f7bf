"""
Chemical ordering of an alloy
=============================

An L1\ :sub:`2` crystal (Cu\ :sub:`3`\ Au-like) with thermal displacements: the classifier calls
its atoms FCC, and ``output_ordering`` tells the two sublattices apart exactly as OVITO's PTM
does (L12 A-site: the majority species; L12 B-site: the minority).
"""
import numpy as np

from ovito_mlclass import StructureClassifierModifier
from ovito_mlclass.ovito_adapter import from_arrays

basis = np.array([[0, 0, 0], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]])
grid = np.stack(np.meshgrid(*[np.arange(6)] * 3, indexing="ij"), -1).reshape(-1, 1, 3)
positions = ((grid + basis).reshape(-1, 3) * 3.7) + np.random.default_rng(0).normal(0, 0.05, (len(grid) * 4, 3))
species = np.tile(["Au", "Cu", "Cu", "Cu"], len(grid))
data = from_arrays(positions, np.eye(3) * 3.7 * 6, types=species)
data.apply(StructureClassifierModifier(model="metals", output_ordering=True))
for key in ("PURE", "L12_A", "L12_B", "NONE"):
    print(key, data.attributes[f"StructureClassifier.ordering_counts.{key}"])
