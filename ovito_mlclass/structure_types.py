"""Structure type ids, names and colours as OVITO's own identification modifiers give them.

Scripts select atoms by id (``ExpressionSelectionModifier(expression="StructureType==2")``), so a
class that OVITO's polyhedral template matching (PTM), common neighbour analysis or Chill+ also
identify gets OVITO's id, name and colour for it. Other classes follow the ids of the table the
model draws from, in the model's order; ``Other`` (0) is every atom a model rejects.

====================  ====  ==========================================
class                 id    as in OVITO
====================  ====  ==========================================
Other                 0     all of them
FCC                   1     PTM, CNA
HCP                   2     PTM, CNA
BCC                   3     PTM, CNA
ICO                   4     PTM, CNA
Simple cubic          5     PTM (SC)
Cubic diamond         6     PTM
Hexagonal diamond     7     PTM
Graphene              8     PTM
(other classes)       9...  e.g. Liquid, A15, ... in model order
Hexagonal ice         1     Chill+
Cubic ice             2     Chill+
Interfacial ice       3     Chill+
Hydrate               4     Chill+ (a model's "Clathrate" class)
Interfacial hydrate   5     Chill+
(other classes)       6...  e.g. Liquid water
====================  ====  ==========================================

A model draws from the Chill+ table if one of its classes is an ice or hydrate type, else from
PTM's.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

OTHER = "Other"
OTHER_COLOR = (0.95, 0.95, 0.95)

# OVITO 3.17: PolyhedralTemplateMatchingModifier.Type (CommonNeighborAnalysisModifier.Type: the first
# five) and ChillPlusModifier.Type: name -> (id, colour, the enum name OVITO's count attributes use)
PTM_TYPES = {
    "FCC": (1, (0.4, 1.0, 0.4), "FCC"), "HCP": (2, (1.0, 0.4, 0.4), "HCP"), "BCC": (3, (0.4, 0.4, 1.0), "BCC"),
    "ICO": (4, (0.95, 0.8, 0.2), "ICO"), "Simple cubic": (5, (0.627, 0.078, 0.996), "SC"),
    "Cubic diamond": (6, (0.075, 0.627, 0.996), "CUBIC_DIAMOND"),
    "Hexagonal diamond": (7, (0.996, 0.537, 0.0), "HEX_DIAMOND"), "Graphene": (8, (0.627, 0.471, 0.996), "GRAPHENE"),
}
CHILL_PLUS_TYPES = {
    "Hexagonal ice": (1, (0.0, 0.9, 0.9), "HEXAGONAL_ICE"), "Cubic ice": (2, (1.0, 0.757, 0.02), "CUBIC_ICE"),
    "Interfacial ice": (3, (0.5, 0.12, 0.4), "INTERFACIAL_ICE"), "Hydrate": (4, (1.0, 0.3, 0.1), "HYDRATE"),
    "Interfacial hydrate": (5, (0.1, 1.0, 0.1), "INTERFACIAL_HYDRATE"),
}
# our class names for structures OVITO names otherwise
ALIASES = {"Clathrate": "Hydrate", "SC": "Simple cubic"}
# colours of our classes that OVITO does not know, and for the rest a palette (matplotlib's tab10)
OUR_COLORS = {"Liquid": (0.7, 0.7, 0.75), "Liquid water": (0.55, 0.7, 1.0)}
PALETTE = [(0.12, 0.47, 0.71), (1.0, 0.5, 0.05), (0.17, 0.63, 0.17), (0.84, 0.15, 0.16), (0.58, 0.4, 0.74),
           (0.55, 0.34, 0.29), (0.89, 0.47, 0.76), (0.5, 0.5, 0.5), (0.74, 0.74, 0.13), (0.09, 0.75, 0.81)]


def standard_color(name: str):
    """OVITO's colour of a structure type (a class name or one of its aliases), ours for Liquid and
    Liquid water, or None."""
    name = ALIASES.get(name, name)
    entry = PTM_TYPES.get(name) or CHILL_PLUS_TYPES.get(name)
    return entry[1] if entry else OUR_COLORS.get(name)


@dataclass(frozen=True)
class StructureTypes:
    """The structure types of one model: ``ids[k]``, ``names[k]`` (OVITO's name where OVITO has the
    type), ``colors[k]`` (the model's own colour where OVITO has none) and ``keys[k]`` (the name in
    count attributes: OVITO's enum name, e.g. ``CUBIC_DIAMOND``, else the name in capitals) of its
    class k."""

    ids: tuple
    names: tuple
    colors: tuple
    keys: tuple

    @property
    def all_ids(self) -> tuple:
        """Other's id, then the classes'."""
        return (0,) + self.ids

    @property
    def all_names(self) -> tuple:
        return (OTHER,) + self.names

    @property
    def all_colors(self) -> tuple:
        return (OTHER_COLOR,) + self.colors

    @property
    def all_keys(self) -> tuple:
        return ("OTHER",) + self.keys

    def name_of(self) -> dict:
        """id -> name, Other included."""
        return dict(zip(self.all_ids, self.all_names))


def structure_types(classes, colors) -> StructureTypes:
    """The ids, names and colours of a model's classes (module docstring); ``colors``: the model's
    own colour of each class, used where OVITO has none."""
    names = [ALIASES.get(c, c) for c in classes]
    table = CHILL_PLUS_TYPES if any(n in CHILL_PLUS_TYPES for n in names) else PTM_TYPES
    next_id = max(entry[0] for entry in table.values()) + 1
    ids, out_colors, keys = [], [], []
    for name, own in zip(names, colors):
        if name in table:
            type_id, color, key = table[name]
        else:
            type_id, color, key, next_id = next_id, tuple(own), re.sub(r"\W+", "_", name).upper(), next_id + 1
        ids.append(type_id)
        out_colors.append(tuple(float(c) for c in color))
        keys.append(key)
    if len(set(ids)) != len(ids) or len(set(keys)) != len(keys):
        raise ValueError(f"Classes {list(classes)} name one OVITO structure type twice.")
    return StructureTypes(tuple(ids), tuple(names), tuple(out_colors), tuple(keys))
