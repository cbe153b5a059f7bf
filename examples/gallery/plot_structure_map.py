"""
The q̄4–q̄6 structure map
=========================

Every atom as a point in the plane of the neighbour-averaged bond-order parameters q̄4 and q̄6
(Lechner & Dellago), coloured by the structure type the ``metals`` model gives it, with the
ideal fcc and hcp lattices marked. The crystal and the liquid of the coexistence snapshot form
two clouds; the atoms of the interfaces lie between them.
"""
import matplotlib.pyplot as plt
from ovito.io import import_file

from ovito_mlclass.cli import example_file
from ovito_mlclass.maps import plot_structure_map

data = import_file(str(example_file())).compute()
png = plot_structure_map(data, "structure_map.png", model="metals")
plt.figure(figsize=(6, 5))
plt.imshow(plt.imread(png))
plt.axis("off")
