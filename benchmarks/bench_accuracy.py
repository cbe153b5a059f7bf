#!/usr/bin/env python3
"""Accuracy of the built-in models on held-out MD validation snapshots, next to OVITO's own
structure identification, all measured in the same run.

    python benchmarks/bench_accuracy.py [--models metals ice tcp] [--output benchmarks/RESULTS.md]
    python benchmarks/bench_accuracy.py --models metals metals-pointnet ice ice-pointnet --section accuracy-pointnet

Models of one family (the name before the first '-': ``metals``, ``metals-pointnet``) share one
table, a column each, next to OVITO's methods. A point-cloud model (PointNet) is also run on every
snapshot turned by a random rotation (column "(rotated)"): its rotation invariance is learnt, not
exact, and the MD boxes all have their crystal axes along x, y, z.

For every validation snapshot (``cache_dir()/<dataset>/val``, made by the generators with other
seeds, sizes, temperatures and partly other elements than the training runs), each method's label
of every labelled atom is compared with the label by construction:

- metals: ours, PTM at its default RMSD cutoff 0.1, PTM at the cutoff tuned on these validation
  data (the cutoff maximising the mean accuracy over crystals and liquid, as DC3 did; found from
  one PTM run with RMSD output), adaptive CNA. A crystal atom is right if it gets its lattice; a
  liquid atom is right if it is not called crystalline (PTM/CNA have no liquid class: Other).
- ice: ours, Chill+ (hexagonal / cubic ice, hydrate = clathrate), Identify Diamond (hexagonal /
  cubic diamond incl. first and second neighbours = hexagonal / cubic ice). Liquid water is right
  if not called ice or clathrate.
- tcp: ours only (OVITO has no Frank-Kasper phase identification); per phase and the site output.

Results are grouped by kind of run and temperature (T/T_m) and written to the accuracy section
(``--section``) of ``benchmarks/RESULTS.md`` (the descriptor benchmark owns the rest of the file).
"""
from __future__ import annotations

import argparse
import platform
import sys
import time
from collections import defaultdict
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from results_file import replace_section

HERE = Path(__file__).parent


def snapshots(dataset):
    from ovito_mlclass.training.snapshots import Snapshot, cache_dir

    files = sorted((cache_dir() / dataset / "val").glob("*.npz"))
    if not files:
        raise SystemExit(f"no validation snapshots of {dataset!r} in {cache_dir() / dataset / 'val'}: generate them")
    for path in files:
        yield path, Snapshot.load(path)


def group_of(meta):
    phase = meta.get("phase", "?")
    kind = meta.get("kind") or ("crystal" if phase in ("ih", "ic", "sI", "sII") else phase)
    t = meta.get("T_over_Tm")
    return kind, (round(float(t), 2) if isinstance(t, (int, float)) else None)


def ptm_rmsd(data):
    """PTM structure (0 Other, 1 FCC, 2 HCP, 3 BCC, ...) without cutoff, and its RMSD."""
    from ovito.modifiers import PolyhedralTemplateMatchingModifier as PTM

    work = data.clone()
    work.apply(PTM(rmsd_cutoff=0.0, output_rmsd=True))
    return np.asarray(work.particles["Structure Type"]), np.asarray(work.particles["RMSD"])


def adaptive_cna(data):
    from ovito.modifiers import CommonNeighborAnalysisModifier as CNA

    work = data.clone()
    work.apply(CNA(mode=CNA.Mode.AdaptiveCutoff))
    return np.asarray(work.particles["Structure Type"])


def rotated(data, seed):
    """The structure turned by a random rotation (positions, cell vectors and origin)."""
    from scipy.spatial.transform import Rotation

    from ovito.data import DataCollection

    rotation = Rotation.random(random_state=seed).as_matrix()
    turned = DataCollection()
    turned.create_cell(rotation @ np.asarray(data.cell), pbc=data.cell.pbc)
    particles = turned.create_particles(count=data.particles.count)
    particles.create_property("Position", data=np.asarray(data.particles.positions) @ rotation.T)
    if data.particles.particle_types is not None:
        particles.create_property("Particle Type", data=np.asarray(data.particles.particle_types))
    return turned


def ours(data, known, model_names, seed):
    """{column: predicted names of the known atoms} for every model (and rotated, for point clouds)."""
    from ovito_mlclass.classify import classify
    from ovito_mlclass.model import load_model

    out = {}
    for name in model_names:
        result = classify(data, name)
        out[name] = result.type_names[known]
        if any(b["kind"] == "point_cloud" for b in load_model(name).features.blocks):
            result = classify(rotated(data, seed), name)
            out[f"{name} (rotated)"] = result.type_names[known]
    return out


def metals(model_names=("metals",)):
    ovito_name = {1: "FCC", 2: "HCP", 3: "BCC"}  # PTM and CNA type ids
    rows = []  # (group, true class, {method: predicted name array})
    for i, (path, snap) in enumerate(snapshots("metals")):
        data = snap.to_data_collection()
        known = snap.labels >= 0
        if not known.any():
            continue
        truth = np.array(snap.classes)[snap.labels[known]]
        ptm, rmsd = ptm_rmsd(data)
        cna = adaptive_cna(data)
        names = lambda ids: np.array([ovito_name.get(int(i), "Other") for i in ids])
        predictions = {**ours(data, known, model_names, seed=i), "PTM type": names(ptm[known]),
                       "PTM rmsd": rmsd[known], "a-CNA": names(cna[known])}
        rows.append((group_of(snap.meta), truth, predictions))
    # PTM's cutoff tuned on these data: maximise the mean accuracy over crystal classes and liquid
    cutoffs = np.round(np.arange(0.05, 0.301, 0.01), 3)
    def ptm_at(c, p):
        return np.where(p["PTM rmsd"] < c, p["PTM type"], "Other")
    scores = []
    for c in cutoffs:
        correct, total = defaultdict(int), defaultdict(int)
        for _, truth, p in rows:
            ok = is_right(truth, ptm_at(c, p))
            for cls in np.unique(truth):
                correct[cls] += int(ok[truth == cls].sum())
                total[cls] += int((truth == cls).sum())
        scores.append(np.mean([correct[k] / total[k] for k in total]))
    tuned = float(cutoffs[int(np.argmax(scores))])
    columns = [k for k in rows[0][2] if k not in ("PTM type", "PTM rmsd", "a-CNA")]
    methods = {**{k: (lambda p, k=k: p[k]) for k in columns}, "PTM (0.1)": lambda p: ptm_at(0.1, p),
               f"PTM (tuned {tuned:.2f})": lambda p: ptm_at(tuned, p), "a-CNA": lambda p: p["a-CNA"]}
    return table(rows, methods), f"PTM's RMSD cutoff tuned on these data: {tuned:.2f} (mean accuracy {max(scores):.4f})"


def is_right(truth, predicted):
    """A crystal atom needs its lattice; a liquid atom must not be called crystalline."""
    liquid = np.char.startswith(truth.astype(str), "Liquid")
    crystalline = ~np.isin(predicted, ["Other", "Liquid", "Liquid water"])
    return np.where(liquid, ~crystalline, predicted == truth)


def ice(model_names=("ice",)):
    from ovito.modifiers import ChillPlusModifier, IdentifyDiamondModifier

    chill = {1: "Hexagonal ice", 2: "Cubic ice", 4: "Clathrate"}
    diamond = {1: "Cubic ice", 2: "Cubic ice", 3: "Cubic ice", 4: "Hexagonal ice", 5: "Hexagonal ice", 6: "Hexagonal ice"}
    rows = []
    for i, (path, snap) in enumerate(snapshots("ice")):
        data = snap.to_data_collection()
        known = snap.labels >= 0
        truth = np.array(snap.classes)[snap.labels[known]]
        work = data.clone()
        work.apply(ChillPlusModifier(cutoff=3.5))
        c = np.asarray(work.particles["Structure Type"])[known]
        work = data.clone()
        work.apply(IdentifyDiamondModifier())
        d = np.asarray(work.particles["Structure Type"])[known]
        predictions = {**ours(data, known, model_names, seed=i),
                       "Chill+": np.array([chill.get(int(i), "Other") for i in c]),
                       "Identify Diamond": np.array([diamond.get(int(i), "Other") for i in d])}
        rows.append((group_of(snap.meta), truth, predictions))
    return table(rows, {k: (lambda p, k=k: p[k]) for k in rows[0][2]}), ""


def tcp(model_names=("tcp",)):
    from ovito_mlclass.classify import classify

    model_name, = model_names
    rows, site_ok, site_n = [], 0, 0
    for path, snap in snapshots("tcp"):
        result = classify(snap.to_data_collection(), model_name)
        truth = np.array(snap.classes)[snap.labels]
        amplitude = snap.meta.get("amplitude_d_nn") or snap.meta.get("lindemann_ratio")
        group = (snap.meta.get("kind", "?"), round(float(amplitude), 2) if amplitude else None)
        rows.append((group, truth, {model_name: result.type_names}))
        if result.site_types is not None and "fk_coordination" in snap.extra:
            names = np.array(result.site_names)[result.site_types]
            site_ok += int((names == np.char.add("Z", snap.extra["fk_coordination"].astype(str))).sum())
            site_n += len(snap)
    note = f"Frank-Kasper site output: {site_ok / max(site_n, 1):.4f} of {site_n} atoms right." if site_n else ""
    return table(rows, {model_name: lambda p: p[model_name]}, group_label="amplitude / d_nn"), note


def table(rows, methods, group_label="T/T_m"):
    acc = defaultdict(lambda: defaultdict(lambda: [0, 0]))
    for (kind, t), truth, p in rows:
        for method, pick in methods.items():
            ok = is_right(truth, pick(p))
            for cls in np.unique(truth):
                key = (kind, t, cls)
                acc[key][method][0] += int(ok[truth == cls].sum())
                acc[key][method][1] += int((truth == cls).sum())
    lines = [f"| run | {group_label} | class | atoms | " + " | ".join(methods) + " |",
             "|---|---|---|---|" + "---|" * len(methods)]
    for key in sorted(acc, key=lambda k: (str(k[0]), k[1] if k[1] is not None else -1, k[2])):
        kind, t, cls = key
        n = next(iter(acc[key].values()))[1]
        cells = [f"{100 * acc[key][m][0] / acc[key][m][1]:.2f}%" for m in methods]
        lines.append(f"| {kind} | {'' if t is None else t} | {cls} | {n} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["metals", "ice", "tcp"])
    parser.add_argument("--output", default=str(HERE / "RESULTS.md"))
    parser.add_argument("--section", default="accuracy", help="marked section of the output file to (re)write")
    args = parser.parse_args()
    import ovito
    import torch

    started = time.time()
    parts = ["## Accuracy of the built-in models on held-out MD snapshots", "",
             f"`python benchmarks/bench_accuracy.py {' '.join(sys.argv[1:])}`".replace(" `", "`") + f", {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, "
             f"{platform.processor() or platform.machine()}, ovito {ovito.version_string}, torch {torch.__version__}. "
             "Accuracy = share of labelled atoms (labels by construction) that a method gets right; a liquid atom "
             "is right if it is not called crystalline. Every method runs on the same snapshots in this run.", ""]
    families = {}  # metals: [metals, metals-pointnet], ... in the order given
    for name in args.models:
        families.setdefault(name.split("-")[0], []).append(name)
    for family, names in families.items():
        print(f"[{', '.join(names)}]", file=sys.stderr, flush=True)
        text, note = {"metals": metals, "ice": ice, "tcp": tcp}[family](names)
        parts += [f"### {family}", "", text, ""] + ([note, ""] if note else [])
    parts += [f"(harness wall time {time.time() - started:.0f} s)"]
    print(replace_section(args.output, args.section, "\n".join(parts)))


if __name__ == "__main__":
    main()
