"""Structure maps: every atom as a point in the plane of two bond-order parameters, by default the
neighbour-averaged q̄4 and q̄6 of Lechner & Dellago (J. Chem. Phys. 129, 114707 (2008)), coloured
by the structure type a model gives it or drawn as a 2-D histogram, with the ideal lattices marked.

    values = structure_map(data)                        # (n, 2): q̄4, q̄6 over 12 nearest neighbours
    plot_structure_map(data, "map.png", model="metals")  # coloured by class, ideal lattices marked

``StructureMapModifier`` puts the same points into an OVITO data table, which the desktop
application plots as a scatter plot.
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from .features import FeatureSpec
from .frames import Frame, as_frame

AXIS = re.compile(r"(q|qbar|w|wbar)(\d+)")
LABELS = {"q": "q_{%s}", "qbar": r"\bar{q}_{%s}", "w": r"\hat{w}_{%s}", "wbar": r"\bar{w}_{%s}"}


def _spec(x: str, y: str, neighbors: int) -> tuple[FeatureSpec, list[str]]:
    parsed = [AXIS.fullmatch(a) for a in (x, y)]
    if not all(parsed):
        raise ValueError(f"Map axes are q<l>, qbar<l>, w<l> or wbar<l> (l = 0..16), got {x!r} and {y!r}.")
    degrees = sorted({int(m[2]) for m in parsed})
    wl = any(m[1] in ("w", "wbar") for m in parsed)
    spec = FeatureSpec.from_dict({"blocks": [{"kind": "steinhardt", "neighbors": int(neighbors), "degrees": degrees,
                                              "averaged": True, "wl": wl}]})
    return spec, [f"{a}_nn{neighbors}" for a in (x, y)]


def structure_map(system, x: str = "qbar4", y: str = "qbar6", neighbors: int = 12) -> np.ndarray:
    """(n, 2): the bond-order parameters ``x`` and ``y`` (``q<l>``, ``qbar<l>``, ``w<l>``,
    ``wbar<l>``) of every particle over its ``neighbors`` nearest neighbours."""
    spec, columns = _spec(x, y, neighbors)
    values = spec.compute(as_frame(system))
    return values[:, [spec.names.index(c) for c in columns]]


def ideal_lattices(x: str = "qbar4", y: str = "qbar6", neighbors: int = 12) -> dict:
    """name -> (x, y) of the perfect lattices whose ``neighbors`` nearest neighbours are complete
    shells (FCC and HCP for 12; BCC for 8 and 14): elsewhere the choice among equidistant
    neighbours, hence the point, would be arbitrary."""
    shells = {"FCC": (12,), "HCP": (12,), "BCC": (8, 14)}
    lattices = {"FCC": ([[0, 0, 0], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]], np.eye(3)),
                "BCC": ([[0, 0, 0], [0.5, 0.5, 0.5]], np.eye(3)),
                "HCP": ([[0, 0, 0], [0.5, 0.5, 0], [0.5, 5 / 6, 0.5], [0, 1 / 3, 0.5]],
                        np.diag([1, np.sqrt(3), np.sqrt(8 / 3)]))}
    points = {}
    for name, (basis, cell) in lattices.items():
        if neighbors not in shells[name]:
            continue
        grid = np.stack(np.meshgrid(*[np.arange(4)] * 3, indexing="ij"), -1).reshape(-1, 1, 3)
        frac = (grid + np.asarray(basis)).reshape(-1, 3)
        points[name] = tuple(structure_map(Frame.from_arrays(frac @ cell, cell * 4), x, y, neighbors)[0])
    return points


def plot_structure_map(system, filename, model=None, x: str = "qbar4", y: str = "qbar6", neighbors: int = 12,
                       histogram: bool = False) -> Path:
    """A PNG of :func:`structure_map`: points coloured by the structure type ``model`` assigns
    (a name, file or loaded model), or a 2-D histogram (``histogram``, or no model)."""
    from .plots import pyplot

    plt = pyplot()
    data = as_frame(system)
    values = structure_map(data, x, y, neighbors)
    fig, ax = plt.subplots(figsize=(5.5, 4.6), dpi=130)
    if histogram or model is None:
        counts, xe, ye, image = ax.hist2d(values[:, 0], values[:, 1], bins=120, cmap="viridis", cmin=1)
        fig.colorbar(image, ax=ax, label="atoms per bin")
    else:
        from .classify import classify

        result = classify(data, model)
        for type_id, name, color in list(zip(result.ids, result.names, result.colors))[1:] + [(0, "Other", None)]:
            mine = result.types == type_id  # Other last and dark: OVITO's near-white would not show
            if mine.any():
                ax.scatter(values[mine, 0], values[mine, 1], s=3, color=color or (0.15, 0.15, 0.15), alpha=0.5,
                           lw=0, label=f"{name} ({mine.sum():,})")
        ax.legend(markerscale=4, fontsize=8, loc="best", framealpha=0.8)
    for name, (px, py) in ideal_lattices(x, y, neighbors).items():
        ax.plot(px, py, "k+", ms=10, mew=1.5)
        ax.annotate(f"ideal {name}", (px, py), textcoords="offset points", xytext=(5, 4), fontsize=8)
    label = lambda a: "$" + LABELS[AXIS.fullmatch(a)[1]] % AXIS.fullmatch(a)[2] + "$"  # noqa: E731
    ax.set_xlabel(f"{label(x)} ({neighbors} nearest neighbours)")
    ax.set_ylabel(label(y))
    fig.tight_layout()
    filename = Path(filename)
    filename.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(filename)
    plt.close(fig)
    return filename
