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


# ---- open world: every PTM lattice, chemical order, defects, and what no class describes --------------

PTM_NAMES = {1: "FCC", 2: "HCP", 3: "BCC", 4: "ICO", 5: "Simple cubic", 6: "Cubic diamond", 7: "Hexagonal diamond",
             8: "Graphene"}
DIAMOND_NAMES = {1: "Cubic diamond", 2: "Cubic diamond", 3: "Cubic diamond", 4: "Hexagonal diamond",
                 5: "Hexagonal diamond", 6: "Hexagonal diamond"}  # Identify Diamond: atoms and their neighbours


def ovito_anchors(data):
    """OVITO's own answers: {method: structure names}, {method: ordering ids} (PTM with every type on)."""
    from ovito.modifiers import IdentifyDiamondModifier, PolyhedralTemplateMatchingModifier as PTM

    work = data.clone()
    species = data.particles.particle_types is not None  # PTM's ordering needs them
    ptm = PTM(rmsd_cutoff=0.0, output_rmsd=True, output_ordering=species)
    for t in ptm.structures:
        t.enabled = True
    work.apply(ptm)
    types, rmsd = np.asarray(work.particles["Structure Type"]), np.asarray(work.particles["RMSD"])
    ordering = np.asarray(work.particles["Ordering Type"]) if species else np.zeros(len(types), int)
    names = lambda ids, table=PTM_NAMES: np.array([table.get(int(i), "Other") for i in ids])
    cut = np.where(rmsd < 0.1, types, 0)
    diamond = data.clone()
    diamond.apply(IdentifyDiamondModifier())
    structures = {"PTM (0.1)": names(cut), "PTM (no cutoff)": names(types), "a-CNA": names(adaptive_cna(data)),
                  "Identify Diamond": names(np.asarray(diamond.particles["Structure Type"]), DIAMOND_NAMES)}
    return structures, {"PTM (0.1)": np.where(cut > 0, ordering, 0), "PTM (no cutoff)": ordering}


def classified(data, name):
    """Our structure names, ordering ids and confidence for every atom."""
    from ovito_mlclass.classify import classify
    from ovito_mlclass.ordering import ordering_of

    result = classify(data, name)
    return result.type_names, ordering_of(data, result.types), result.confidence


def percent(ok):
    return f"{100 * np.mean(ok):.2f}%" if len(ok) else "–"


def openworld_bulk(model_names):
    """Every class on the held-out bulk MD (other seeds, boxes and partly other elements), our
    structure type and, for two-species crystals, type and ordering both right, next to OVITO's."""
    rows = {}
    for path, snap in snapshots("openworld-bulk"):
        known = snap.labels >= 0
        if not known.any():
            continue
        data = snap.to_data_collection()
        truth = np.array(snap.classes)[snap.labels[known]]
        ordered = "ordering_site" in snap.extra and snap.meta.get("ordering") not in (None, "PURE", "NONE")
        site = snap.extra["ordering_site"][known] if ordered else None
        structures, orderings = ovito_anchors(data)
        results = {}
        for name in model_names:
            types, ordering, _ = classified(data, name)
            ok = is_right(truth, types[known])
            results[name] = ok & (ordering[known] == site) if ordered else ok
            results[f"{name} (structure)"] = ok   # what Identify Diamond and a-CNA, giving no ordering, are scored on
        for method, predicted in structures.items():
            ok = is_right(truth, predicted[known])
            results[method] = ok & (orderings[method][known] == site) if ordered and method in orderings else ok
        meta = snap.meta
        what = f"{meta.get('kind')} {meta.get('system', '')} {meta.get('phase', '')}".strip()
        t = meta.get("T_over_Tm")
        if isinstance(t, (int, float)):
            t = round(float(t), 2)
        elif meta.get("sigma_per_component_d_nn") is not None:   # no potential: Gaussian displacements
            t = f"σ {meta['sigma_per_component_d_nn']} d_nn"
        else:                                                    # sheets: no melting point, a temperature
            t = f"{meta.get('T', 0):.0f} K"
        for cls in np.unique(truth):
            entry = rows.setdefault((what, str(t), cls), defaultdict(list))
            for method, ok in results.items():
                entry[method].append(ok[truth == cls])
    ours = [column for name in model_names for column in (name, f"{name} (structure)")]
    methods = ours + ["PTM (0.1)", "PTM (no cutoff)", "a-CNA", "Identify Diamond"]
    lines = ["| run | T/T_m | class | atoms | " + " | ".join(methods) + " | best OVITO |",
             "|---|---|---|---|" + "---|" * (len(methods) + 1)]
    for (what, t, cls), entry in sorted(rows.items()):
        scores = {m: np.concatenate(entry[m]) for m in methods}
        best = max(np.mean(scores[m]) for m in methods[len(ours):])
        lines.append(f"| {what} | {t} | {cls} | {len(scores[methods[0]])} | "
                     + " | ".join(percent(scores[m]) for m in methods) + f" | {100 * best:.2f}% |")
    return "\n".join(lines)


def honest(lattice, predicted):
    """A defect-core atom answered honestly: Other, or its grain's lattice (HCP too in an fcc crystal:
    twin and fault layers)."""
    allowed = {"Other", lattice} | ({"HCP"} if lattice == "FCC" else set())
    return np.isin(predicted, list(allowed))


def openworld_defects(model_names):
    """Free surfaces, grain boundaries and other defects of the held-out defect MD."""
    rows = {}
    for path, snap in snapshots("openworld-defects"):
        data = snap.to_data_collection()
        meta, extra = snap.meta, snap.extra
        lattice = meta.get("lattice", "?")
        labels = snap.labels
        truth = np.where(labels >= 0, np.array(snap.classes)[np.maximum(labels, 0)], "Other")
        predictions = {name: classified(data, name)[0] for name in model_names}
        predictions["PTM (0.1)"] = ovito_anchors(data)[0]["PTM (0.1)"]
        kind = meta.get("kind")
        where = {}
        if "surface_layer" in extra and kind == "surface":
            layer = extra["surface_layer"]
            where["outermost layer: Other"] = (layer == 0, lambda p, m: p[m] == "Other")
            where["second layer: right or Other"] = (layer == 1, lambda p, m: (p[m] == truth[m]) | (p[m] == "Other"))
            where["third layer inwards: right"] = ((layer >= 2) & (labels >= 0), lambda p, m: p[m] == truth[m])
        elif kind == "nanoparticle":  # shells of neighbour hops from the surface shell, as the layers of a slab
            layer = extra["surface_layer"]
            where["surface shell: Other"] = (layer == 0, lambda p, m: p[m] == "Other")
            where["second shell: right or Other"] = ((layer == 1) & (labels >= 0),
                                                     lambda p, m: (p[m] == truth[m]) | (p[m] == "Other"))
            where["third shell inwards: right"] = ((layer >= 2) & (labels >= 0), lambda p, m: p[m] == truth[m])
        else:
            distance = extra["defect_distance"]
            core = labels < 0
            where["core: Other or its lattice"] = (core, lambda p, m: honest(lattice, p[m]))
            where["core: not Liquid"] = (core, lambda p, m: p[m] != "Liquid")
            where["≥ 5 Å from the defect: right"] = ((distance >= 5.0) & (labels >= 0), lambda p, m: p[m] == truth[m])
        t = meta.get("T_over_Tm")
        group = f"{kind} {lattice}" + (f" ({meta['plane']})" if kind == "surface" and "plane" in meta else "")
        for criterion, (mask, rule) in where.items():
            if not mask.any():
                continue
            entry = rows.setdefault((group, round(float(t), 2), criterion), defaultdict(list))
            for method, p in predictions.items():
                entry[method].append(rule(p, mask))
    methods = list(model_names) + ["PTM (0.1)"]
    lines = ["| defect | T/T_m | atoms | " + " | ".join(methods) + " |", "|---|---|---|" + "---|" * len(methods)]
    for (group, t, criterion), entry in sorted(rows.items()):
        scores = {m: np.concatenate(entry[m]) for m in methods}
        lines.append(f"| {group}: {criterion} | {t} | {len(scores[methods[0]])} | "
                     + " | ".join(percent(scores[m]) for m in methods) + " |")
    return "\n".join(lines)


def openworld_ood(model_names, confident=0.9):
    """Structures no class describes (held-out lattices, the surfaces of voids, cracks and polycrystals,
    never trained on): the share of atoms that must be Other and are, and of those called a class
    with confidence ≥ 0.9; the labelled grain interiors: right."""
    rows, icosahedral_rows = {}, {}
    for path, snap in snapshots_of("openworld-ood", "test"):
        data = snap.to_data_collection()
        must = snap.extra["must_be_other"].astype(bool) if "must_be_other" in snap.extra else np.zeros(len(snap), bool)
        icosahedral = snap.extra.get("fk_coordination", np.zeros(len(snap))) == 12  # Frank-Kasper Z12 sites
        labels = snap.labels
        truth = np.where(labels >= 0, np.array(snap.classes)[np.maximum(labels, 0)], "Other")
        name = path.stem.rsplit("_s", 1)[0]
        ptm = ovito_anchors(data)[0]["PTM (0.1)"]
        for model in model_names:
            types, _, confidence = classified(data, model)
            entry = rows.setdefault(name, {})
            entry[f"{model}: Other"] = types[must] == "Other"
            entry[f"{model}: confident class"] = (types[must] != "Other") & (confidence[must] >= confident)
            entry[f"{model}: labelled right"] = types[labels >= 0] == truth[labels >= 0]
            if icosahedral.any():
                icosahedral_rows.setdefault(name, {})[model] = np.isin(types[icosahedral], ("ICO", "Other"))
        rows[name]["PTM (0.1): Other"] = ptm[must] == "Other"
        rows[name]["PTM (0.1): labelled right"] = ptm[labels >= 0] == truth[labels >= 0]
        if icosahedral.any():
            icosahedral_rows[name]["PTM (0.1)"] = np.isin(ptm[icosahedral], ("ICO", "Other"))
    columns = list(next(iter(rows.values())))
    lines = ["| structure | must be Other | labelled | " + " | ".join(columns) + " |",
             "|---|---|---|" + "---|" * len(columns)]
    for name, entry in sorted(rows.items()):
        must_n = len(entry[columns[0]])
        labelled_n = len(entry[f"{model_names[0]}: labelled right"])
        lines.append(f"| {name} | {must_n} | {labelled_n} | " + " | ".join(percent(entry[c]) for c in columns) + " |")
    if icosahedral_rows:
        methods = list(next(iter(icosahedral_rows.values())))
        lines += ["", "The Z12 sites of the Frank–Kasper phases (above, not among the atoms that must be Other): their "
                  "first shell is an icosahedron by construction, so ICO or Other is right; share of them that get one "
                  "of the two:", "", "| structure | Z12 sites | " + " | ".join(methods) + " |", "|---|---|" + "---|" * len(methods)]
        for name, entry in sorted(icosahedral_rows.items()):
            lines.append(f"| {name} | {len(entry[methods[0]])} | " + " | ".join(percent(entry[m]) for m in methods) + " |")
    return "\n".join(lines)


def snapshots_of(dataset, split):
    from ovito_mlclass.training.snapshots import Snapshot, cache_dir

    files = sorted((cache_dir() / dataset / split).glob("*.npz"))
    if not files:
        raise SystemExit(f"no {split} snapshots of {dataset!r} in {cache_dir() / dataset / split}: generate them")
    for path in files:
        yield path, Snapshot.load(path)


def openworld(model_names=("openworld",)):
    names = list(model_names) + (["metals"] if "metals" not in model_names else [])
    parts = ["#### Bulk: every class (two-species crystals: structure and chemical ordering both right; "
             "'(structure)': the structure type alone, as a-CNA and Identify Diamond are scored)", "",
             openworld_bulk(model_names), "",
             "#### Defects (labels by construction; cores have no label)", "", openworld_defects(model_names), "",
             "#### Out of distribution (held out: never trained on, no class describes them)", "",
             openworld_ood(names)]
    return "\n".join(parts), ("The OVITO methods run with every structure type on; PTM's ordering is compared with the "
                              "ordering by construction. 'best OVITO' is the best OVITO method on that row.")


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
        text, note = {"metals": metals, "ice": ice, "tcp": tcp, "openworld": openworld}[family](names)
        parts += [f"### {family}", "", text, ""] + ([note, ""] if note else [])
    parts += [f"(harness wall time {time.time() - started:.0f} s)"]
    print(replace_section(args.output, args.section, "\n".join(parts)))


if __name__ == "__main__":
    main()
