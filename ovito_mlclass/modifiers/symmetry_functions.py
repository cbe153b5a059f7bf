"""OVITO modifier shell around :class:`ovito_mlclass.descriptors.SymmetryFunctions`."""
from __future__ import annotations

from ovito.data import DataCollection
from ovito.pipeline import ModifierInterface
from traits.api import Bool, Float, List, Tuple

from .. import neighbors as nb
from ..descriptors import SymmetryFunctions
from ._common import output_array, selected_subset, species_of, store


class SymmetryFunctionsModifier(ModifierInterface):
    """Behler-Parrinello symmetry functions of every particle, resolved by neighbour species.

    Output: particle property ``Symmetry Functions`` with components ``G2_<species>_<k>``,
    ``G4_<a>_<b>_<k>``, ``G5_<a>_<b>_<k>`` (k indexes the parameter rows, species names come
    from the particle types). ``g2`` rows are ``(eta, r_s)``, ``g4``/``g5`` rows ``(eta, zeta,
    lambda)``, eta in 1/length^2. The defaults suit metals in Angstrom.
    """

    cutoff = Float(6.0, label="Cutoff distance")
    g2 = List(Tuple(Float, Float), value=[(1.0, 2.5), (1.0, 3.5), (1.0, 4.5), (0.05, 0.0)], label="G2 (eta, r_s)")
    g4 = List(Tuple(Float, Float, Float), value=[(0.01, 1.0, 1.0), (0.01, 1.0, -1.0), (0.01, 4.0, 1.0),
                                                 (0.01, 4.0, -1.0)], label="G4 (eta, zeta, lambda)")
    g5 = List(Tuple(Float, Float, Float), value=[], label="G5 (eta, zeta, lambda)")
    only_selected = Bool(False, label="Use only selected particles")

    @property
    def descriptor(self) -> SymmetryFunctions:
        return SymmetryFunctions(cutoff=self.cutoff, g2=self.g2, g4=self.g4, g5=self.g5)

    def modify(self, data: DataCollection, **kwargs):
        descriptor = self.descriptor
        work, mask = selected_subset(data, self.only_selected)
        yield "Symmetry functions: finding neighbours"
        neighbor_list = nb.cutoff_neighbors(work, descriptor.cutoff)
        yield 0.3
        species, names = species_of(data, mask)
        yield "Symmetry functions: computing"
        values = output_array(data, "Symmetry Functions", descriptor.feature_names(names), mask)
        descriptor.compute(neighbor_list, species, len(names), out=values)
        store(data, "Symmetry Functions", values, mask)
        yield 1.0
