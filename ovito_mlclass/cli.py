"""The ovito-mlclass command line (exit statuses: see EXIT_STATUS)."""
from __future__ import annotations

import argparse
import functools
import sys
import time
from importlib import resources
from pathlib import Path

import numpy as np

from .extras import requires

EXAMPLE = "cu_solid_liquid.dump.gz"
DESCRIPTION = "Machine-learned per-atom structure identification for OVITO."
EXIT_STATUS = """exit status:
  0  everything asked for was done
  1  some frames of a trajectory could not be read or classified (each is reported with
     its index and the reason; the other frames were done)
  2  nothing could be done: a bad argument, an unreadable input or an unusable model
     (one line on standard error says which; --traceback shows where it failed)"""


def example_file() -> Path:
    """The bundled example snapshot (Cu crystal slab in its melt near T_m, real MD)."""
    return Path(str(resources.files("ovito_mlclass") / "example_data" / EXAMPLE))


def demo(args) -> int:
    """The main job on the bundled snapshot: classify it with the built-in metals model, print the
    counts (next to OVITO's PTM on the same atoms) and render a PNG coloured by structure type."""
    from . import BACKEND
    from .modifiers import StructureClassifierModifier
    from .render import render_png
    from .trajectory import open_trajectory, ptm_counts, type_counts

    output = Path(args.output)
    output.mkdir(parents=True, exist_ok=True)
    print(f"[1/3] reading {example_file().name}: a Cu crystal slab in its melt at T_m (real MD, EAM)")
    pipeline = open_trajectory(example_file())
    pipeline.modifiers.append(StructureClassifierModifier(model="metals"))
    started = time.perf_counter()
    data = pipeline.compute()
    elapsed = time.perf_counter() - started
    ours = type_counts(data.particles["Structure Type"])
    ptm = ptm_counts(data)
    print(f"[2/3] {data.particles.count} atoms classified in {elapsed:.2f} s ({BACKEND} kernel, model 'metals')")
    print(f"  {'structure':<10s} {'atoms':>8s} {'share':>7s}   OVITO PTM (default)")
    for name, count in ours.items():
        share = count / data.particles.count
        print(f"  {name:<10s} {count:8d} {share:7.1%}   {ptm.get(name, ''):>8}  {'#' * int(30 * share)}")
    png = render_png(pipeline, output / "demo_structures.png")
    print(f"[3/3] rendered {png} (FCC green, Liquid grey, Other white; OVITO's colours)")
    return 0


FORMATS = {".dump": "lammps/dump", ".lammpstrj": "lammps/dump", ".xyz": "xyz", ".extxyz": "xyz"}


class UsageError(ValueError):
    """A command-line argument that cannot work; reported as one line (exit status 2)."""


def fraction(text: str) -> float:
    """argparse type: a number in [0, 1]."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{text} is not in [0, 1]")
    return value


def positive(text: str) -> float:
    """argparse type: a number > 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text} is not positive")
    return value


def count(minimum: int):
    """argparse type: an integer >= ``minimum``."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{value} is less than {minimum}")
        return value
    return parse


def classify_files(args) -> int:
    """``classify``: the chosen frames, serially or on Dask (``--workers``/``--scheduler``), through
    :func:`trajectory.classify_trajectory`; per-frame counts, failed frames reported with their
    index (exit status 1), the labelled frames written, optionally a table, a plot and a PNG."""
    from .trajectory import classify_trajectory, output_format_of

    fmt = args.format or (output_format_of(args.output) if args.output else None)
    result = classify_trajectory(args.inputs, args.model, frames=args.frames, reject_threshold=args.threshold,
                                 device=args.device, output=args.output, output_format=fmt,
                                 workers=args.workers or 0, scheduler=args.scheduler, select=args.select,
                                 novelty_threshold=args.novelty_threshold, ordering=args.ordering)
    print("frame  " + "  ".join(f"{n:>12s}" for n in result.names))
    for frame in result.frames:
        if frame.error is None:
            print(f"{frame.frame:5d}  " + "  ".join(f"{frame.counts[n]:12d}" for n in result.names))
    if result.ordering_names:
        print("chemical ordering:")
        print("frame  " + "  ".join(f"{n:>19s}" for n in result.ordering_names))
        for frame in result.done:
            print(f"{frame.frame:5d}  " + "  ".join(f"{frame.ordering[n]:19d}" for n in result.ordering_names))
    for frame in result.failed:
        print(f"frame {frame.frame} failed: {frame.error}", file=sys.stderr)
    done = len(result.done)
    print(f"{done} of {len(result.frames)} frames classified in {result.seconds:.1f} s "
          f"({done / max(result.seconds, 1e-9):.2f} frames/s)")
    if args.output and done:
        print(f"wrote {args.output}")
    if args.table:
        print(f"wrote {result.write_table(args.table)}")
    if args.plot:
        print(f"wrote {result.plot(args.plot)}")
    if args.render and done:
        from .modifiers import StructureClassifierModifier
        from .render import render_png
        from .trajectory import open_trajectory, selection_modifier

        pipeline = open_trajectory(args.inputs)
        if args.select:
            pipeline.modifiers.append(selection_modifier(args.select))
        pipeline.modifiers.append(StructureClassifierModifier(model=args.model, reject_threshold=args.threshold,
                                                              device=args.device, only_selected=bool(args.select)))
        print(f"rendering {args.render} ...", file=sys.stderr, flush=True)
        print(f"rendered {render_png(pipeline, args.render)}")
    return 1 if result.failed else 0


def cluster_files(args) -> int:
    """Unsupervised structure discovery: fit on one frame, label the chosen frames, write the
    labelled file, PNG plots of both elbow curves and of the latent space, optionally a model."""
    from .modifiers import UnsupervisedClassifierModifier
    from .trajectory import check_output_folder, export_frames, parse_frames, scan_trajectory, selection_modifier

    if args.neighbors == "voronoi":
        neighbors = {"neighbor_mode": "voronoi"}
    else:
        try:
            neighbors = {"neighbors": int(args.neighbors)}
        except ValueError:
            raise UsageError(f"--neighbors {args.neighbors!r}: a number of nearest neighbours (e.g. 12) or "
                             f"'voronoi'") from None
        if neighbors["neighbors"] < 1:
            raise UsageError(f"--neighbors {neighbors['neighbors']}: at least 1 (or 'voronoi')")
    names = [n.strip() for n in args.names.split(",")] if args.names else None
    if names is not None and (not all(names) or len(set(names)) != len(names)):
        raise UsageError(f"--names {args.names!r}: give distinct, non-empty names separated by commas")
    if names is not None and not args.save_model:
        raise UsageError("--names names the classes of --save-model; give --save-model too")
    output = Path(args.output) if args.output else None
    if output is not None:
        if output.suffix not in FORMATS:
            raise UsageError(f"cannot tell the output format from {output.name!r}; use one of {', '.join(FORMATS)}")
        check_output_folder(output)
    pipeline, unreadable = scan_trajectory(args.inputs)
    frames = parse_frames(args.frames, pipeline.num_frames)
    reference = parse_frames(str(args.fit_frame), pipeline.num_frames)[0]
    modifier = UnsupervisedClassifierModifier(degrees=args.degrees, **neighbors, wbar=args.wbar,
                                              dims=args.dims or 0, clusters=args.clusters or 0,
                                              max_clusters=args.max_clusters, seed=args.seed,
                                              reference_frame=reference, only_selected=bool(args.select))
    if args.select:
        pipeline.modifiers.append(selection_modifier(args.select))
    pipeline.modifiers.append(modifier)
    header = None
    print(f"fitting on frame {reference} (descriptors, autoencoder, mixtures) ...", file=sys.stderr, flush=True)
    for frame in frames:
        data = pipeline.compute(frame)
        result = modifier.last_fit
        class_names = result.class_names
        if header is None:
            dims = "given" if args.dims else "FVE elbow"
            clusters = "given" if args.clusters else "entropy elbow"
            print(f"fitted on frame {reference}: {data.particles.count} atoms, latent dimensions "
                  f"{result.dims} ({dims}), clusters {result.n_clusters} ({clusters}), seed {args.seed}")
            if names is not None and len(names) != result.n_clusters:
                raise UsageError(f"--names gives {len(names)} names, but the fit found {result.n_clusters} clusters; "
                                 f"rerun with {result.n_clusters} names (or --clusters {len(names)})")
            print("frame  " + "  ".join(f"{n:>10s}" for n in class_names))
            header = True
        counts = [data.attributes[f"UnsupervisedClassifier.counts.{n.replace(' ', '_')}"] for n in class_names]
        print(f"{frame:5d}  " + "  ".join(f"{c:10d}" for c in counts), flush=True)
    if output is not None:
        export_frames(pipeline, output, FORMATS[output.suffix], frames,
                      ["Particle Identifier", "Particle Type", "Position.X", "Position.Y", "Position.Z",
                       "Cluster Type", "Cluster Probability"])
        print(f"wrote {output}")
    if args.plots:
        for png in plot_fit(modifier.last_fit, pipeline.compute(reference), Path(args.plots)):
            print(f"wrote {png}")
    if args.save_model:
        path = modifier.save_model(args.save_model, names)
        print(f"wrote model {path} (apply it with: ovito-mlclass classify FILE -m {path})")
    if unreadable:
        print(f"frame {pipeline.num_frames} failed: {unreadable}", file=sys.stderr)
        return 1
    return 0


def plot_fit(result, data, folder: Path) -> list[Path]:
    """PNGs of the FVE and entropy elbow curves and of the latent space coloured by cluster."""
    from .plots import pyplot
    from .unsupervised import CLUSTER_COLORS

    plt = pyplot()

    folder.mkdir(parents=True, exist_ok=True)
    written = []
    curves = [("elbow_fve.png", result.fve_curve, "latent dimensions c", "fraction of variance explained"),
              ("elbow_entropy.png", result.entropy_curve, "clusters K", "mixture entropy per atom S_K")]
    for name, curve, xlabel, ylabel in curves:
        fig, ax = plt.subplots(figsize=(4.5, 3.5), dpi=120)
        ax.plot(curve.x, curve.y, "o-", color="0.3")
        chosen = curve.x == curve.chosen
        ax.plot(curve.x[chosen], curve.y[chosen], "o", color="tab:red", ms=10, mfc="none", mew=2,
                label=f"elbow: {curve.chosen}")
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.legend()
        fig.tight_layout()
        fig.savefig(folder / name)
        plt.close(fig)
        written.append(folder / name)
    latent = np.asarray(data.particles["Latent Coordinates"])
    types = np.asarray(data.particles["Cluster Type"])
    fig, ax = plt.subplots(figsize=(5, 4.5), dpi=120)
    for k, name in enumerate(result.class_names):
        mine = types == k + 1
        y = latent[mine, 1] if latent.shape[1] > 1 else np.zeros(mine.sum())
        ax.scatter(latent[mine, 0], y, s=2, color=CLUSTER_COLORS[k % len(CLUSTER_COLORS)], label=f"{name} ({mine.sum()})")
    ax.set_xlabel("z1")
    ax.set_ylabel("z2" if latent.shape[1] > 1 else "")
    ax.legend(markerscale=5)
    fig.tight_layout()
    fig.savefig(folder / "latent.png")
    plt.close(fig)
    written.append(folder / "latent.png")
    return written


def list_models(args) -> int:
    """The built-in models: classes, reject threshold, validation scores, provenance (and, with
    --plot, each model's validation confusion matrix as a PNG)."""
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
        if args.plot and v:
            from .plots import plot_confusion

            print(f"  wrote {plot_confusion(m, Path(args.plot) / f'{name}_confusion.png')}")
    return 0


def structure_map(args) -> int:
    """The q̄4-q̄6 (or any two bond-order parameters) map of one frame as a PNG: points coloured by
    the class a model gives them, or a 2-D histogram; optionally the values as a CSV table."""
    from .maps import plot_structure_map, structure_map as compute_map
    from .trajectory import parse_frames, scan_trajectory

    pipeline, _ = scan_trajectory(args.inputs)
    frame = parse_frames(str(args.frame), pipeline.num_frames)[0]
    data = pipeline.compute(frame)
    model = None if args.histogram else args.model
    print(f"frame {frame}: {data.particles.count:,} atoms; bond-order parameters"
          + ("" if model is None else f" and classes ({model})") + " ...", file=sys.stderr, flush=True)
    png = plot_structure_map(data, args.output, model=model, x=args.x, y=args.y, neighbors=args.neighbors,
                             histogram=args.histogram)
    print(f"wrote {png} ({data.particles.count:,} atoms, frame {frame})")
    if args.table:
        values = compute_map(data, args.x, args.y, args.neighbors)
        np.savetxt(args.table, values, delimiter=",", header=f"{args.x},{args.y}", comments="", fmt="%.6f")
        print(f"wrote {args.table}")
    return 0


def train_model(args) -> int:
    """Trains a model from a config and writes it, with a picture of its validation confusion matrix."""
    from .model import StructureModel
    from .plots import pyplot
    from .training.train import train

    path = train(args.config, output=args.output, threads=args.threads)
    try:
        pyplot()
    except ImportError:
        return 0  # the picture needs the plots extra; the model is written
    from .plots import plot_confusion

    print(f"wrote {path} and {plot_confusion(StructureModel.load(path, 'cpu'), path.with_suffix('.validation.png'))}")
    return 0


def predict_property(args) -> int:
    """Predicts a crystal property for every structure of the input: a CGCNN folder (CIFs +
    id_prop.csv), an extended-XYZ file (targets in the frame info are printed alongside), or any file
    OVITO reads (every frame)."""
    import warnings

    from .neighbors import InputError
    from .properties import PropertyModel, UnseenElementWarning, crystal_from_data, read_cgcnn_folder, read_extxyz

    model = PropertyModel.load(args.model)
    path = Path(args.input)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file or folder")
    target = model.metadata.get("target")
    transform = np.log10 if model.metadata.get("transform") == "log10" else (lambda v: v)
    if path.is_dir():
        crystals = read_cgcnn_folder(path, target)
    elif path.name.endswith((".extxyz", ".extxyz.gz")):
        crystals = read_extxyz(path)
    else:
        from .trajectory import scan_trajectory

        pipeline, unreadable = scan_trajectory(path)
        if unreadable:
            raise InputError(f"frame {pipeline.num_frames}: {unreadable}")
        crystals = [crystal_from_data(pipeline.compute(f), name=f"{path.name}:{f}") for f in range(pipeline.num_frames)]
    unit = model.unit
    print(f"model {model.name}: {model.quantity} ({unit}); {len(crystals)} structure(s)")
    print(f"{'structure':<24s} {'prediction':>11s} {'± 1σ':>8s} {'target':>9s}  unseen elements")
    errors = []
    rows = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnseenElementWarning)
        for crystal in crystals:
            try:
                p = model.predict(crystal)
            except InputError as exc:
                raise InputError(f"{crystal.name}: {exc}") from None
            truth = crystal.targets.get(target)
            shown = None if truth is None or (model.metadata.get("transform") == "log10" and truth <= 0) else transform(truth)
            if shown is not None:
                errors.append(abs(p.value - shown))
            rows.append((crystal.name, p.value, p.uncertainty, shown, ",".join(p.unseen)))
            print(f"{crystal.name:<24s} {p.value:11.4f} {p.uncertainty:8.4f} "
                  f"{'' if shown is None else f'{shown:9.4f}':>9s}  {','.join(p.unseen)}", flush=True)
    if errors:
        print(f"MAE against the targets in the input: {np.mean(errors):.4f} {unit} ({len(errors)} structures)")
    if any(r[4] for r in rows):
        print("warning: elements absent from the model's training data (last column): those predictions are "
              "extrapolations", file=sys.stderr)
    if args.output:
        import csv

        with open(args.output, "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["structure", model.quantity, "uncertainty", "target", "unseen_elements"])
            writer.writerows(rows)
        print(f"wrote {args.output}")
    if args.plot:
        known = [r for r in rows if r[3] is not None]
        if not known:
            print("no targets in the input: no parity plot", file=sys.stderr)
        else:
            from .plots import plot_parity

            png = plot_parity([r[1] for r in known], [r[3] for r in known], [r[2] for r in known], model.quantity,
                              unit, args.plot)
            print(f"wrote {png}")
    return 0


def train_property(args) -> int:
    with requires("properties", "training a property model"):
        from .properties.train import train

    train(args.config, output=args.output, threads=args.threads, epochs=args.epochs, limit=args.limit)
    return 0


def perovskite_gap(args) -> int:
    """Double-perovskite band gaps: nested cross-validation of Pearson filter + Gaussian KRR, then
    predictions for the given formulas from the model fitted on the whole table."""
    with requires("properties", "the double-perovskite band gap model"):
        from .properties import perovskites as P
        from .properties.composition_features import read_lumo_table

    lumo = read_lumo_table(args.lumo)
    table = P.read_gap_table(args.table)
    features = P.perovskite_features(table.sites, lumo)
    wanted = [P.parse_formula(f) for f in args.predict]
    new = P.perovskite_features(wanted, lumo) if wanted else None
    print(f"{len(table.gaps)} compounds, 28 elemental features; {args.folds}-fold nested cross-validation (seed {args.seed})",
          flush=True)
    started = time.perf_counter()
    result = P.fit_band_gap_model(features, table.gaps, seed=args.seed, folds=args.folds, progress=True)
    print(f"  CV RMSE {result.cv_rmse:.3f} eV   MAE {result.cv_mae:.3f} eV   "
          f"(mean predictor: RMSE {result.mean_predictor_rmse:.3f} eV)   {time.perf_counter() - started:.1f} s")
    print(f"  fitted on all: alpha = {result.best_params['alpha']:.3g}, gamma = {result.best_params['gamma']:.3g}; "
          f"{len(result.selected_features)} features: {', '.join(result.selected_features)}")
    for formula, gap in zip(args.predict, result.predict(new) if wanted else []):
        print(f"  {formula}: predicted band gap {gap:.2f} eV")
    return 0


def adsorption_energy(args) -> int:
    """Adsorption energies from electronic fingerprints: the network against the linear
    d-band-centre model on the same cross-validation folds."""
    with requires("properties", "the adsorption energy model"):
        from .properties import adsorption as A

    data = A.load_adsorption_set(args.folder)
    print(f"{len(data.energies)} entries, {len(set(data.site_elements))} site elements; fingerprints: "
          f"{', '.join(A.FINGERPRINTS)}", flush=True)
    started = time.perf_counter()
    cv = A.cross_validate(data, folds=args.folds, seed=args.seed, progress=True)
    print(f"{args.folds}-fold cross-validation (seed {args.seed}), {time.perf_counter() - started:.1f} s:")
    print(f"  network              RMSE {cv.network_rmse:.3f} eV   MAE {cv.network_mae:.3f} eV")
    print(f"  linear d-band centre RMSE {cv.linear_rmse:.3f} eV   MAE {cv.linear_mae:.3f} eV")
    print(f"  mean predictor       RMSE {cv.mean_rmse:.3f} eV")
    return 0


# Failures a user can cause and mend: reported as one line, exit status 2 (OVITO's readers raise
# RuntimeError for a file they cannot parse).
USER_ERRORS = (ValueError, OSError, RuntimeError, ImportError, MemoryError)


def main(argv=None) -> int:
    from . import __version__

    parser = argparse.ArgumentParser(prog="ovito-mlclass", description=DESCRIPTION,
                                     epilog=EXIT_STATUS, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"ovito-mlclass {__version__}")
    parser.add_argument("--traceback", action="store_true", help="on an error, show the full Python traceback")
    common = argparse.ArgumentParser(add_help=False)  # --traceback after the command name, too
    common.add_argument("--traceback", action="store_true", default=argparse.SUPPRESS,
                        help="on an error, show the full Python traceback")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser = functools.partial(commands.add_parser, parents=[common])
    run_demo = commands.add_parser("demo", help="classify the bundled example snapshot: counts and a PNG")
    run_demo.add_argument("-o", "--output", default="demo_output", help="folder for the PNG (default: demo_output)")
    run_demo.set_defaults(handler=demo)
    run_classify = commands.add_parser("classify", help="label every particle of one or more files")
    run_classify.add_argument("inputs", nargs="+", help="input file(s) in any format OVITO reads (wildcards allowed)")
    from .model import DEFAULT_MODEL, builtin_models

    models = ", ".join(builtin_models())
    run_classify.add_argument("-m", "--model", default=DEFAULT_MODEL,
                              help=f"built-in model ({models}; default: {DEFAULT_MODEL}) or a model file (.pt)")
    run_classify.add_argument("-o", "--output", help="output file (.dump, .lammpstrj, .xyz) with the structure types")
    run_classify.add_argument("--frames", help="all (default), N, N,M,... or start:stop:step")
    run_classify.add_argument("--select", metavar="TYPES|EXPR", help="classify only these particles: type names or "
                              "ids (O or 1,2) or an OVITO expression ('ParticleType==1 && Position.Z>10'); the "
                              "others are Other")
    run_classify.add_argument("--threshold", type=fraction, default=None, help="reject threshold θ (default: the model's)")
    run_classify.add_argument("--novelty-threshold", type=positive, default=1.0, metavar="X",
                              help="atoms more novel than X are Other (1: the model's own threshold; models with a "
                                   "novelty score)")
    run_classify.add_argument("--ordering", action="store_true",
                              help="also the chemical ordering of two-species crystals (Ordering Type, with the ids "
                                   "of OVITO's PTM: L12, B2, ...): counted per frame and written to the output")
    run_classify.add_argument("--render", metavar="PNG", help="render the first frame coloured by structure type")
    run_classify.add_argument("--device", default="auto", help="where the network runs: auto (CUDA if available, "
                                                               "default), cpu, cuda or cuda:N")
    run_classify.add_argument("--workers", type=count(0), default=None, metavar="N",
                              help="classify frames in parallel on a Dask LocalCluster of N processes (0: serial)")
    run_classify.add_argument("--scheduler", metavar="ADDRESS", help="use a running Dask scheduler instead")
    run_classify.add_argument("--table", metavar="CSV", help="per-frame counts and fractions (.csv, or .parquet "
                                                             "with pyarrow)")
    run_classify.add_argument("--plot", metavar="PNG", help="plot of the structure fractions versus time")
    run_classify.add_argument("--format", help="OVITO output format of -o (lammps/dump, xyz, imd, netcdf/amber; "
                                               "default from the suffix); '*' in -o writes one file per frame")
    run_classify.set_defaults(handler=classify_files)
    run_cluster = commands.add_parser("cluster", help="find structure types without labels (autoencoder + Gaussian "
                                                      "mixture, Boattini et al. 2019)")
    run_cluster.add_argument("inputs", nargs="+", help="input file(s) in any format OVITO reads (wildcards allowed)")
    run_cluster.add_argument("-o", "--output", help="output file (.dump, .lammpstrj, .xyz) with the cluster types")
    run_cluster.add_argument("--plots", metavar="DIR", help="write elbow_fve.png, elbow_entropy.png and latent.png here")
    run_cluster.add_argument("--frames", help="frames to label: all (default), N, N,M,... or start:stop:step")
    run_cluster.add_argument("--select", metavar="TYPES|EXPR", help="cluster only these particles: type names or ids "
                             "(O or 1,2) or an OVITO expression")
    run_cluster.add_argument("--fit-frame", type=count(0), default=0, help="frame the fit is made on (default 0)")
    run_cluster.add_argument("--degrees", default="1-8", help="degrees l of the averaged q̄_l (default 1-8)")
    run_cluster.add_argument("--neighbors", default="12", help="nearest neighbours (default 12) or 'voronoi'")
    run_cluster.add_argument("--wbar", action="store_true", help="also the averaged w̄_l")
    run_cluster.add_argument("--dims", type=count(1), default=None, help="latent dimensions (default: elbow of the FVE)")
    run_cluster.add_argument("--clusters", type=count(1), default=None, help="clusters (default: elbow of the entropy)")
    run_cluster.add_argument("--max-clusters", type=count(2), default=8, help="most clusters tried (default 8)")
    run_cluster.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    run_cluster.add_argument("--save-model", metavar="PT", help="write the fit as a classifier file (.pt)")
    run_cluster.add_argument("--names", help="class names for --save-model, comma-separated (default Cluster 1..K)")
    run_cluster.set_defaults(handler=cluster_files)
    run_models = commands.add_parser("models", help="list the built-in models")
    run_models.add_argument("--plot", metavar="DIR", help="also write each model's validation confusion matrix "
                                                          "(DIR/<model>_confusion.png)")
    run_models.set_defaults(handler=list_models)
    run_map = commands.add_parser("map", help="structure map of one frame: q̄4-q̄6 (or other bond-order parameters), "
                                              "coloured by class or as a 2-D histogram")
    run_map.add_argument("inputs", nargs="+", help="input file(s) in any format OVITO reads")
    run_map.add_argument("-o", "--output", default="structure_map.png", help="PNG to write (default structure_map.png)")
    run_map.add_argument("--frame", type=int, default=0, help="frame (default 0; negative counts from the end)")
    run_map.add_argument("-m", "--model", default=DEFAULT_MODEL, help="model whose classes colour the points "
                                                                     f"(default {DEFAULT_MODEL})")
    run_map.add_argument("--histogram", action="store_true", help="a 2-D histogram instead of coloured points")
    run_map.add_argument("--x", default="qbar4", help="x axis: q<l>, qbar<l>, w<l> or wbar<l> (default qbar4)")
    run_map.add_argument("--y", default="qbar6", help="y axis (default qbar6)")
    run_map.add_argument("--neighbors", type=count(1), default=12, help="nearest neighbours (default 12)")
    run_map.add_argument("--table", metavar="CSV", help="also write the values, one row per atom")
    run_map.set_defaults(handler=structure_map)
    run_train = commands.add_parser("train", help="train a model from a config: a built-in one (metals, ice, tcp, "
                                    "metals-pointnet, ice-pointnet) or your own, from your structures (perturbed "
                                    "or by MD) or labelled frames")
    run_train.add_argument("config", help="config name or TOML file")
    run_train.add_argument("-o", "--output", help="model file to write (default: <name>.pt)")
    run_train.add_argument("--threads", type=count(1), default=None, help="torch threads (default: the config's)")
    run_train.set_defaults(handler=train_model)
    run_predict = commands.add_parser("predict-property", help="predict a crystal property (CGCNN) for every "
                                      "structure of a file or CGCNN folder")
    run_predict.add_argument("input", help="CGCNN folder (CIFs + id_prop.csv), extended XYZ, or any file OVITO reads")
    run_predict.add_argument("-m", "--model", default="formation-energy",
                             help="formation-energy (default), bulk-modulus, shear-modulus, poisson-ratio, band-gap, "
                                  "or a model file")
    run_predict.add_argument("-o", "--output", help="CSV file for the predictions")
    run_predict.add_argument("--plot", metavar="PNG", help="parity plot and residual histogram (when the input holds "
                                                           "targets)")
    run_predict.set_defaults(handler=predict_property)
    run_train_property = commands.add_parser("train-property", help="train a property model (CGCNN) from a config "
                                             "(built-in: formation-energy, bulk-modulus, shear-modulus, poisson-ratio, band-gap)")
    run_train_property.add_argument("config", help="config name or TOML file")
    run_train_property.add_argument("-o", "--output", help="model file to write (default: <name>.pt)")
    run_train_property.add_argument("--threads", type=count(1), default=None, help="torch threads (default: the config's)")
    run_train_property.add_argument("--epochs", type=count(1), default=None, help="override the config's epochs (tests)")
    run_train_property.add_argument("--limit", type=count(1), default=None, help="only the first N crystals (tests)")
    run_train_property.set_defaults(handler=train_property)
    run_gap = commands.add_parser("perovskite-gap", help="double-perovskite band gaps by kernel ridge regression "
                                                         "(Pilania et al. 2016): cross-validated error, predictions")
    run_gap.add_argument("table", help="CSV with columns a_1, b_1, a_2, b_2, 'gap gllbsc' (matminer's double_perovskites_gap)")
    run_gap.add_argument("--lumo", required=True, help="CSV of atomic Kohn-Sham LUMO energies, columns atom, lumo")
    run_gap.add_argument("--predict", nargs="*", default=[], metavar="FORMULA",
                         help="compounds to predict, as A1B1A2B2O6 (BaTiSrZrO6) or A1,B1,A2,B2")
    run_gap.add_argument("--folds", type=count(2), default=5, help="outer and inner cross-validation folds (default 5)")
    run_gap.add_argument("--seed", type=int, default=0, help="seed of the fold shuffling (default 0)")
    run_gap.set_defaults(handler=perovskite_gap)
    run_ads = commands.add_parser("adsorption-energy", help="adsorption energies from electronic fingerprints: network "
                                                            "vs. linear d-band-centre model (cross-validated)")
    run_ads.add_argument("folder", help="folder with ead.txt, d_cen.txt, half_width.txt, vad2.txt and the two .traj files")
    run_ads.add_argument("--folds", type=count(2), default=5, help="cross-validation folds (default 5)")
    run_ads.add_argument("--seed", type=int, default=0, help="seed of folds and network initialisation (default 0)")
    run_ads.set_defaults(handler=adsorption_energy)
    args = parser.parse_args(argv)
    try:
        return args.handler(args)
    except KeyboardInterrupt:
        print("ovito-mlclass: interrupted", file=sys.stderr)
        return 130
    except USER_ERRORS as exc:
        if args.traceback:
            raise
        print(f"ovito-mlclass: {one_line(exc)}", file=sys.stderr)
        return 2
    except Exception as exc:  # a bug of ours: still one line, and how to see more
        if args.traceback:
            raise
        print(f"ovito-mlclass: unexpected {type(exc).__name__}: {one_line(exc)} (rerun with --traceback to see "
              f"where; please report it)", file=sys.stderr)
        return 2


def one_line(exc: BaseException) -> str:
    """An exception's message on one line (a missing file's message names the file)."""
    if isinstance(exc, FileNotFoundError) and exc.filename and not exc.args[1:] == ():
        return f"{exc.filename}: {exc.strerror}"
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


if __name__ == "__main__":
    sys.exit(main())
