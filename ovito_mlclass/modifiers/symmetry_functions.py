"""OVITO modifier shell around :class:`ovito_mlclass.descriptors.SymmetryFunctions`."""
from __future__ import annotations

from ovito.data import DataCollection
from ovito.pipeline import ModifierInterface
from traits.api import Bool, List, Tuple

from .. import neighbors as nb
from ..descriptors import SymmetryFunctions
from ..descriptors.ranges import POSITIVE
from ..descriptors.symmetry_functions import ROWS
from ._common import Number, output_array, selected_subset, species_of, store


def _rows(name: str, value, label: str):
    """A list of parameter rows of G2, G4 or G5, each number checked against its range when set."""
    return List(Tuple(*(Number(0.0, allowed) for _, allowed in ROWS[name])), value=value, label=label)


class SymmetryFunctionsModifier(ModifierInterface):
    """Behler-Parrinello symmetry functions of every particle, resolved by neighbour species.

    Output: particle property ``Symmetry Functions`` with components ``G2_<species>_<k>``,
    ``G4_<a>_<b>_<k>``, ``G5_<a>_<b>_<k>`` (k indexes the parameter rows, species names come
    from the particle types). ``g2`` rows are ``(eta, r_s)``, ``g4``/``g5`` rows ``(eta, zeta,
    lambda)``, eta in 1/length^2; eta and zeta >= 0, lambda in [-1, 1], all finite, checked when set.
    The defaults suit metals in Angstrom.
    """

    cutoff = Number(6.0, POSITIVE, label="Cutoff distance")
    g2 = _rows("G2", [(1.0, 2.5), (1.0, 3.5), (1.0, 4.5), (0.05, 0.0)], "G2 (eta, r_s)")
    g4 = _rows("G4", [(0.01, 1.0, 1.0), (0.01, 1.0, -1.0), (0.01, 4.0, 1.0), (0.01, 4.0, -1.0)], "G4 (eta, zeta, lambda)")
    g5 = _rows("G5", [], "G5 (eta, zeta, lambda)")
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
