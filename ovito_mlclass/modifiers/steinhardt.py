"""OVITO modifier shell around :class:`ovito_mlclass.descriptors.Steinhardt`."""
from __future__ import annotations

from ovito.data import DataCollection
from ovito.pipeline import ModifierInterface
from traits.api import BaseStr, Bool, Enum

from .. import neighbors as nb
from ..descriptors import Steinhardt
from ..frames import Frame
from ..descriptors.ranges import POSITIVE
from ..descriptors.steinhardt import MAX_DEGREE
from ._common import Count, Number, alongside, output_array, selected_subset, species_of, store


class DegreeList(BaseStr):
    """Degrees l as text ("4 6", "2-12", "4,6,8") so the GUI shows a text field; scripts may
    also assign any sequence of integers, e.g. ``range(2, 13)``."""

    def validate(self, obj, name, value):
        if not isinstance(value, str):
            try:
                value = " ".join(map(str, Steinhardt(degrees=tuple(value)).degrees))
            except (TypeError, ValueError):
                self.error(obj, name, value)
        try:
            parse_degrees(value)
        except ValueError:
            self.error(obj, name, value)
        return value

    def info(self):
        return (f'degrees l, integers in 0..{MAX_DEGREE} without repeats, as text such as "4 6" or "2-12", or a '
                f'sequence of integers')


def parse_degrees(text: str) -> tuple[int, ...]:
    degrees: list[int] = []
    for token in text.replace(",", " ").split():
        if "-" in token[1:]:
            first, last = token.split("-", 1)
            degrees.extend(range(int(first), int(last) + 1))
        else:
            degrees.append(int(token))
    return Steinhardt(degrees=tuple(degrees)).degrees


class SteinhardtModifier(ModifierInterface):
    """Steinhardt bond-order descriptors of every particle, as one vector property.

    Output: particle property ``Steinhardt Descriptors`` (``Steinhardt Descriptors (same
    species)`` with ``same_species_only``) with components ``q<l>``, ``w<l>`` (normalised
    w^_l), ``qbar<l>``, ``wbar<l>`` for the chosen options. Neighbours: the ``neighbors``
    nearest, all within ``cutoff``, or Voronoi neighbours weighted by face area
    (``neighbor_mode="voronoi"``). ``cutoff=...`` alone selects the cutoff mode; giving both
    ``neighbors`` and ``cutoff`` is an error.
    """

    degrees = DegreeList("4 6", label="Degrees l")
    neighbor_mode = Enum("nearest", "cutoff", "voronoi", label="Neighbours")
    neighbors = Count(12, 1, nb.MAX_NEIGHBORS, label="Number of neighbours")
    cutoff = Number(3.2, POSITIVE, label="Cutoff distance")
    averaged = Bool(True, label="Neighbour-averaged (qbar, wbar)")
    wl = Bool(True, label="Third-order invariants (w, wbar)")
    same_species_only = Bool(False, label="Same-species neighbours only")
    only_selected = Bool(False, label="Use only selected particles")

    def __init__(self, **params):
        has_cutoff = params.get("cutoff") is not None
        has_neighbors = params.get("neighbors") is not None
        if has_cutoff and has_neighbors:
            raise ValueError("Give either neighbors= (N nearest) or cutoff= (all within a distance), not both.")
        if params.get("cutoff", 0) is None:
            del params["cutoff"]
        if params.get("neighbors", 0) is None:
            del params["neighbors"]
        if has_cutoff:
            params.setdefault("neighbor_mode", "cutoff")
        super().__init__(**params)

    @property
    def descriptor(self) -> Steinhardt:
        return Steinhardt(degrees=parse_degrees(self.degrees), averaged=self.averaged, wl=self.wl,
                          same_species_only=self.same_species_only)

    def _neighbor_list(self, work: Frame) -> nb.NeighborList:
        if self.neighbor_mode == "nearest":
            return nb.nearest_neighbors(work, self.neighbors)
        if self.neighbor_mode == "cutoff":
            return nb.cutoff_neighbors(work, self.cutoff)
        return nb.voronoi_neighbors(work)

    def modify(self, data: DataCollection, **kwargs):
        descriptor = self.descriptor
        work, mask = selected_subset(data, self.only_selected)
        name = "Steinhardt Descriptors" + (" (same species)" if self.same_species_only else "")
        yield "Steinhardt: finding neighbours"
        output = lambda: output_array(data, name, descriptor.feature_names, mask)  # noqa: E731
        if self.neighbor_mode == "voronoi":
            # not beside the output: building the cells needs about as much memory again as the faces,
            # and keeps every thread busy
            neighbor_list, values = self._neighbor_list(work), output()
        else:
            # the search reads the frame's own arrays (OVITO's API works in this thread only), while
            # this thread adds the output property to `data`
            neighbor_list, values = alongside(lambda: self._neighbor_list(work), output)
        yield 0.4
        species = species_of(data, mask)[0] if self.same_species_only else None
        yield "Steinhardt: computing descriptors"
        descriptor.compute(neighbor_list, species, out=values)
        store(data, name, values, mask)
        yield 1.0
