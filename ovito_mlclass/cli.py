"""The ``ovito-mlclass`` command line."""
from __future__ import annotations

import argparse
import glob
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


FORMATS = {".dump": "lammps/dump", ".lammpstrj": "lammps/dump", ".xyz": "xyz", ".extxyz": "xyz"}


def parse_frames(text: str | None, count: int) -> list[int]:
    """Frames as "all", "5", "0,3,7" or a Python slice "start:stop:step" (negative indices allowed)."""
    if text is None or text == "all":
        return list(range(count))
    try:
        if ":" in text:
            return list(range(count))[slice(*[int(p) if p else None for p in text.split(":")])]
        frames = [int(p) for p in text.split(",")]
    except ValueError:
        raise SystemExit(f"ovito-mlclass: --frames {text!r}: use all, N, N,M,... or start:stop:step") from None
    bad = [f for f in frames if not -count <= f < count]
    if bad:
        raise SystemExit(f"ovito-mlclass: frame(s) {bad} out of range: the input has {count} frame(s)")
    return [f % count for f in frames]


def classify_files(args) -> int:
    """Classify every chosen frame, print a counts table per frame, write the labelled frames."""
    from ovito.io import export_file, import_file

    from .modifiers import StructureClassifierModifier

    output = Path(args.output) if args.output else None
    if output is not None and output.suffix not in FORMATS:
        raise SystemExit(f"ovito-mlclass: cannot tell the output format from {output.name!r}; use one of "
                         f"{', '.join(FORMATS)}")
    missing = [p for p in args.inputs if not glob.glob(p)]
    if missing:
        raise SystemExit(f"ovito-mlclass: no such input file(s): {', '.join(missing)}")
    pipeline = import_file(args.inputs if len(args.inputs) > 1 else args.inputs[0])
    modifier = StructureClassifierModifier(model=args.model, reject_threshold=args.threshold)
    pipeline.modifiers.append(modifier)
    frames = parse_frames(args.frames, pipeline.num_frames)
    iterator = frames
    try:
        from tqdm import tqdm
        iterator = tqdm(frames, desc="classifying", unit="frame", file=sys.stderr, disable=len(frames) < 2)
    except ImportError:
        pass
    header = None
    for frame in iterator:
        data = pipeline.compute(frame)
        names = [t.name for t in data.particles["Structure Type"].types]
        counts = [data.attributes[f"StructureClassifier.counts.{n.replace(' ', '_')}"] for n in names]
        if header is None:
            header = "frame  " + "  ".join(f"{n:>12s}" for n in names)
            print(header)
        print(f"{frame:5d}  " + "  ".join(f"{c:12d}" for c in counts), flush=True)
    if output is not None:
        columns = ["Particle Identifier", "Particle Type", "Position.X", "Position.Y", "Position.Z",
                   "Structure Type", "Structure Confidence"]
        available = [c for c in columns if c.split(".")[0] in data.particles]
        fmt = FORMATS[output.suffix]
        kwargs = {"columns": available} if fmt in ("lammps/dump", "xyz") else {}
        export_file(pipeline, str(output), fmt, frame=frames[0], **kwargs) if len(frames) == 1 else \
            export_file(pipeline, str(output), fmt, multiple_frames=True, start_frame=frames[0], end_frame=frames[-1],
                        every_nth_frame=max(1, frames[1] - frames[0]) if len(frames) > 1 else 1, **kwargs)
        print(f"wrote {output}")
    if args.render:
        from .render import render_png

        png = render_png(pipeline, args.render)
        print(f"rendered {png}")
    return 0


def list_models(args) -> int:
    """The built-in models: classes, reject threshold, validation scores, provenance."""
    from .model import StructureModel, builtin_models

    models = builtin_models()
    if not models:
        print("no built-in models installed")
        return 0
    for name, path in models.items():
        m = StructureModel.load(path)
        v, t = m.metadata.get("validation", {}), m.metadata.get("training", {})
        print(f"{name}: {m.metadata.get('description', '')}")
        print(f"  classes: {', '.join(m.classes)}" + (f"; sites: {', '.join(m.site_classes)}" if m.site_classes else ""))
        print(f"  features: {len(m.features.names)} ({', '.join(b['kind'] for b in m.features.blocks)}); "
              f"reject threshold θ = {m.reject_threshold:.2f}")
        if v:
            recall = ", ".join(f"{k} {r:.3f}" for k, r in v.get("recall", {}).items() if r is not None)
            print(f"  validation ({v.get('atoms', 0)} atoms): balanced accuracy {v.get('balanced_accuracy', 0):.4f}; "
                  f"recall: {recall}")
        if t:
            print(f"  trained by: {t.get('command')} (seed {t.get('seed')}, {t.get('threads')} threads, "
                  f"{t.get('seconds')} s); data sha256 {str(t.get('data_hash', ''))[:16]}…")
    return 0


def train_model(args) -> int:
    from .training.train import train

    train(args.config, output=args.output, threads=args.threads)
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="ovito-mlclass", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    run_demo = commands.add_parser("demo", help="descriptors of the bundled example snapshot, a table and a PNG")
    run_demo.add_argument("-o", "--output", default="demo_output", help="folder for the PNG (default: demo_output)")
    run_demo.set_defaults(handler=demo)
    run_classify = commands.add_parser("classify", help="label every particle of one or more files")
    run_classify.add_argument("inputs", nargs="+", help="input file(s) in any format OVITO reads (wildcards allowed)")
    run_classify.add_argument("-m", "--model", default="metals", help="built-in model name or model file")
    run_classify.add_argument("-o", "--output", help="output file (.dump, .lammpstrj, .xyz) with the structure types")
    run_classify.add_argument("--frames", help="all (default), N, N,M,... or start:stop:step")
    run_classify.add_argument("--threshold", type=float, default=None, help="reject threshold θ (default: the model's)")
    run_classify.add_argument("--render", metavar="PNG", help="render the first frame coloured by structure type")
    run_classify.set_defaults(handler=classify_files)
    run_models = commands.add_parser("models", help="list the built-in models")
    run_models.set_defaults(handler=list_models)
    run_train = commands.add_parser("train", help="train a model from a config (built-in: metals, ice, tcp)")
    run_train.add_argument("config", help="config name or TOML file")
    run_train.add_argument("-o", "--output", help="model file to write (default: <name>.pt)")
    run_train.add_argument("--threads", type=int, default=None, help="torch threads (default: the config's)")
    run_train.set_defaults(handler=train_model)
    args = parser.parse_args(argv)
    return args.handler(args)


if __name__ == "__main__":
    sys.exit(main())
