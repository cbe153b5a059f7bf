"""
Classify a snapshot and render it
=================================

A copper crystal slab in coexistence with its melt at the melting point (real MD, EAM
potential; it ships with the package). The built-in ``metals`` model labels every atom; OVITO's
polyhedral template matching (PTM) is run on the same atoms for comparison, and the pipeline is
rendered with a legend of the structure types and their counts.
"""
import matplotlib.pyplot as plt
from ovito.io import import_file
from ovito.modifiers import PolyhedralTemplateMatchingModifier

from ovito_mlclass import StructureClassifierModifier
from ovito_mlclass.cli import example_file
from ovito_mlclass.render import render_png
from ovito_mlclass.trajectory import type_counts

pipeline = import_file(str(example_file()))
pipeline.modifiers.append(StructureClassifierModifier(model="metals"))
data = pipeline.compute()

ptm = data.clone()
ptm.apply(PolyhedralTemplateMatchingModifier())
print(f"{'type':<8} {'ours':>7} {'PTM':>7}")
theirs = type_counts(ptm.particles["Structure Type"])
for name, count in type_counts(data.particles["Structure Type"]).items():
    print(f"{name:<8} {count:7d} {theirs.get(name, 0):7d}")

# %%
# The rendered frame: FCC green, Liquid grey, Other white, HCP red (OVITO's colours).
png = render_png(pipeline, "classified.png", size=(800, 600))
plt.figure(figsize=(8, 6))
plt.imshow(plt.imread(png))
plt.axis("off")
