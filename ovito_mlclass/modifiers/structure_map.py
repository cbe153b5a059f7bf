"""The structure map as an OVITO data table: a thin shell over ``maps.structure_map``."""
import numpy as np
from ovito.data import DataCollection, DataTable
from ovito.pipeline import ModifierInterface
from traits.api import Int, Str

from ..maps import structure_map


class StructureMapModifier(ModifierInterface):
    """The structure map as a data table (identifier ``structure-map``) that OVITO plots as a
    scatter plot: one point per particle, x and y two bond-order parameters (default q̄4, q̄6 over
    12 nearest neighbours, Lechner & Dellago 2008). Colour the points by adding it after
    ``StructureClassifierModifier``: the table carries each particle's ``Structure Type``."""

    x = Str("qbar4", label="x axis (q<l>, qbar<l>, w<l>, wbar<l>)", desc="the bond-order parameter on the x axis")
    y = Str("qbar6", label="y axis", desc="the bond-order parameter on the y axis")
    neighbors = Int(12, label="Nearest neighbours", desc="the neighbours the parameters are computed over")

    def modify(self, data: DataCollection, **kwargs):
        yield "Structure map: bond-order parameters"
        values = structure_map(data, self.x, self.y, self.neighbors)
        table = data.tables.create(identifier="structure-map", title=f"Structure map ({self.x}, {self.y})",
                                   plot_mode=DataTable.PlotMode.Scatter)
        table.x = table.create_property(self.x, data=values[:, 0])
        table.y = table.create_property(self.y, data=values[:, 1])
        if "Structure Type" in data.particles:
            table.create_property("Structure Type", data=np.asarray(data.particles["Structure Type"]))
        yield 1.0
