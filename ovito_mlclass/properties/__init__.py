"""Property prediction, by two kinds of model.

From structure (crystal graph convolutional networks, CGCNN, Xie & Grossman 2018): ``graph``
(crystals from extended XYZ, CGCNN folders or OVITO data -> crystal graphs via OVITO's neighbour
finder) -> ``graph_features`` (atom features of the graph, from mendeleev) -> ``cgcnn`` (the
network) -> ``model`` (TorchScript file with metadata; prediction, uncertainty, per-atom
contributions) -> ``modifiers.PropertyPredictorModifier`` (the OVITO shell). ``train`` fits a model
from a config.

From composition: ``perovskites`` (band gaps by kernel ridge regression) and ``adsorption``
(adsorption energies from electronic fingerprints), both on the elemental properties of
``composition_features``.
"""
from .graph import (Crystal, Graph, build_graph, crystal_from_atoms, crystal_from_data, read_cgcnn_folder,
                    read_extxyz, write_cgcnn_folder)
from .model import (Prediction, PropertyModel, UnseenElementWarning, builtin_property_models,
                    load_property_model)

__all__ = ["Crystal", "Graph", "Prediction", "PropertyModel", "UnseenElementWarning", "build_graph",
           "builtin_property_models", "crystal_from_atoms", "crystal_from_data", "load_property_model",
           "read_cgcnn_folder", "read_extxyz", "write_cgcnn_folder"]
