"""The ``ovito-mlclass`` command line."""
from __future__ import annotations

import argparse
import sys
import time
from importlib import resources
from pathlib import Path

import numpy as np

EXAMPLE = "cu_solid_liquid.dump.gz"


def example_file() -> Path:
    """The bundled example snapshot (Cu crystal slab in its melt near T_m, real MD)."""
    return Path(str(resources.files("ovito_mlclass") / "example_data" / EXAMPLE))


def demo(args) -> int:
    """Descriptors of the bundled snapshot, a summary table and a PNG coloured by qbar6."""
    from ovito.io import import_file
    from ovito.modifiers import ColorCodingModifier
    from ovito.vis import ColorLegendOverlay

    from . import BACKEND, SteinhardtModifier
    from .render import render_png

    output = Path(args.output)
    output.mkdir(parents=True, exist_ok=True)
    print(f"[1/3] reading {example_file().name}")
    pipeline = import_file(str(example_file()))
    pipeline.modifiers.append(SteinhardtModifier(degrees=(4, 6), neighbors=12, averaged=True, wl=True))
    started = time.perf_counter()
    data = pipeline.compute()
    elapsed = time.perf_counter() - started
    values = data.particles["Steinhardt Descriptors"]
    qbar6 = np.asarray(values)[:, list(values.component_names).index("qbar6")]
    print(f"[2/3] Steinhardt descriptors of {data.particles.count} atoms in {elapsed:.2f} s ({BACKEND} kernel)")
    print(summary(qbar6))
    coloring = ColorCodingModifier(property="Steinhardt Descriptors.qbar6", start_value=0.15, end_value=0.50,
                                   gradient=ColorCodingModifier.Viridis())
    pipeline.modifiers.append(coloring)
    legend = ColorLegendOverlay(modifier=coloring, title="q̄₆", alignment=0x0001 | 0x0040,
                                orientation=0x2, offset_x=0.02, offset_y=0.04, font_size=0.1, legend_size=0.4,
                                format_string="%.2f")  # left, bottom, vertical
    png = render_png(pipeline, output / "demo_qbar6.png", overlays=[legend])
    print(f"[3/3] rendered {png}")
    return 0


def summary(qbar6: np.ndarray) -> str:
    """Histogram of qbar6. Near melting, liquid atoms have qbar6 below ~0.3 and fcc atoms above
    ~0.4 (Lechner & Dellago 2008); the gap between the two peaks is what the figure shows."""
    edges = np.array([0.0, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 1.0])
    counts, _ = np.histogram(qbar6, edges)
    lines = ["  qbar6 range     atoms   share"]
    for low, high, count in zip(edges[:-1], edges[1:], counts):
        lines.append(f"  {low:4.2f} - {high:4.2f}  {count:8d}  {count / len(qbar6):6.1%}  {'#' * int(40 * count / len(qbar6))}")
    lines.append(f"  mean {qbar6.mean():.4f}, median {np.median(qbar6):.4f}")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="ovito-mlclass", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    run_demo = commands.add_parser("demo", help="descriptors of the bundled example snapshot, a table and a PNG")
    run_demo.add_argument("-o", "--output", default="demo_output", help="folder for the PNG (default: demo_output)")
    run_demo.set_defaults(handler=demo)
    args = parser.parse_args(argv)
    return args.handler(args)


if __name__ == "__main__":
    sys.exit(main())
