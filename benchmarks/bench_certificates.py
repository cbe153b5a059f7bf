#!/usr/bin/env python3
"""The default model's topology certificates (ovito_mlclass/topology.py) on the training split,
which the accuracy tables never score: variants of the rule side by side, so that its choices
rest on data other than the held-out snapshots they are reported on.

    python benchmarks/bench_certificates.py [--output benchmarks/RESULTS.md]

- Diamonds: the hot diamond and Si-surface snapshots (0.75-0.95 T_m) of ``openworld-bulk/train``,
  labelled atoms wrong with no test, with Identify Diamond's own shells only, with the atoms such
  shells list where the network accepted them, also where it rejected them, and with the atoms
  those list in turn where the material surrounds them (Identify Diamond's second neighbours but
  the outermost atoms of a surface: the shipped rule); the outermost atoms of the Si surfaces,
  which must stay Other, counted for each.
- Graphene: the graphene and h-BN snapshots, labelled atoms wrong with no test, with the honeycomb
  test of the atom itself, with the atoms honeycomb atoms list, and with the atoms those list in
  turn where the material surrounds them (the shipped rule).
- Adaptive CNA: every snapshot of ``openworld-defects/train`` but the μ phase's, each criterion
  of ``bench_accuracy.py``'s defect table, without adaptive CNA, with its certificate, and with
  the close-packed shells of the atoms the network cannot place too (the diamond test on in all).

Results go to section ``certificates-train`` of the output file.
"""
from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
from results_file import replace_section  # noqa: E402

HOT = ("T075", "T085", "T090", "T095")


def names_of(types, model):
    lookup = dict(zip(model.structure_types.ids, model.structure_types.names))
    lookup[0] = "Other"
    return np.array([lookup[int(t)] for t in types])


def uncertified(model, snap):
    """A snapshot's labelled atoms, its true class names, its data, the model's posteriors and its
    types without any topology test."""
    from ovito_mlclass.classify import Posteriors, assign, posteriors

    data = snap.to_data_collection()
    post = posteriors(data, model)
    plain = assign(Posteriors(post.probabilities, post.sites, post.described, post.novelty, post.neighbors), model).types
    return snap.labels >= 0, np.array(snap.classes)[np.maximum(snap.labels, 0)], data, post, plain


def diamond_variants(model, snapshots):
    """Labelled atoms and the atoms each variant of the diamond rule gets wrong; the atoms of the
    Si surfaces' outermost layer (no label: Other is right) and those each variant does not call Other."""
    from ovito_mlclass import topology

    ids = np.asarray(model.structure_types.ids)
    diamonds = [(model.classes.index(name), shells) for name, shells in topology.DIAMOND_CLASSES.items()]
    wrong, outermost_wrong, atoms, outermost = defaultdict(int), defaultdict(int), 0, 0
    for snap in snapshots:
        known, truth, data, post, plain = uncertified(model, snap)
        proposed = np.isin(post.probabilities.argmax(axis=1), [index for index, _ in diamonds])
        kinds = topology.diamond_topology(data)
        variants = {"no topology test": plain}
        for label, near_where, second in (
                ("Identify Diamond's own shells", None, False),
                ("and the atoms they list, where the network accepted them", plain != 0, False),
                ("and the atoms they list, also where it rejected them", proposed, False),
                ("and the atoms those list in turn, if surrounded (shipped)", proposed, True)):
            types = plain.copy()
            for index, (own, near, second_near) in diamonds:
                given = proposed & (kinds == own)
                if near_where is not None:
                    given |= proposed & near_where & (kinds == near)
                if second:
                    given |= proposed & (kinds == second_near)
                types[given] = ids[index]
            variants[label] = types
        layer = snap.extra.get("surface_layer")
        top = (layer == 0) if layer is not None else np.zeros(len(known), bool)
        for label, types in variants.items():
            wrong[label] += int((names_of(types, model)[known] != truth[known]).sum())
            outermost_wrong[label] += int((types[top] != 0).sum())
        atoms += int(known.sum())
        outermost += int(top.sum())
    return atoms, wrong, outermost, outermost_wrong


def graphene_variants(model, snapshots):
    """Labelled atoms and the atoms each variant of the graphene rule gets wrong (where the network's
    most probable class is Graphene: the honeycomb test of the atom, also the atoms such atoms
    list, also the atoms those list where the material surrounds them)."""
    from ovito_mlclass import topology

    graphene = model.classes.index("Graphene")
    gid = model.structure_types.ids[graphene]
    wrong, atoms = defaultdict(int), 0
    for snap in snapshots:
        known, truth, data, post, plain = uncertified(model, snap)
        proposed = post.probabilities.argmax(axis=1) == graphene
        kinds = topology.graphene_topology(data, which=proposed)
        variants = {"no topology test": plain}
        for label, given in (("the honeycomb test", (topology.GRAPHENE,)),
                             ("and the atoms honeycomb atoms list", (topology.GRAPHENE, topology.NEAR_GRAPHENE)),
                             ("and the atoms those list in turn, if surrounded (shipped)",
                              (topology.GRAPHENE, topology.NEAR_GRAPHENE, topology.SECOND_GRAPHENE))):
            types = plain.copy()
            types[proposed & np.isin(kinds, given)] = gid
            variants[label] = types
        for label, types in variants.items():
            wrong[label] += int((names_of(types, model)[known] != truth[known]).sum())
        atoms += int(known.sum())
    return atoms, wrong


def cna_variants(model, snapshots):
    """Per defect criterion: atoms, right without adaptive CNA, with its certificate, and with the
    close-packed shells of the atoms the network cannot place too (classify.close_packed_types)."""
    from ovito_mlclass import topology
    from ovito_mlclass.classify import Posteriors, assign, posteriors

    rows = defaultdict(lambda: [0, 0, 0, 0])
    cna = [model.classes.index(name) for name in topology.CNA_CLASSES]
    for snap in snapshots:
        meta, extra, labels = snap.meta, snap.extra, snap.labels
        lattice, kind = meta.get("lattice", "?"), meta.get("kind")
        truth = np.where(labels >= 0, np.array(snap.classes)[np.maximum(labels, 0)], "Other")
        data = snap.to_data_collection()
        post = posteriors(data, model)
        with_shells = names_of(assign(post, model).types, model)
        with_cna = names_of(assign(Posteriors(post.probabilities, post.sites, post.described, post.novelty,
                                              post.neighbors, post.certified), model).types, model)
        certified = post.certified.copy() if post.certified is not None else None
        if certified is not None:   # the diamond certificates only
            certified[np.isin(certified, cna)] = -1
        without = names_of(assign(Posteriors(post.probabilities, post.sites, post.described, post.novelty,
                                             post.neighbors, certified), model).types, model)
        where = {}
        if "surface_layer" in extra and kind in ("surface", "nanoparticle"):
            layer = extra["surface_layer"]
            where["outermost layer: Other"] = (layer == 0, lambda t, m: t[m] == "Other")
            where["third layer inwards: right"] = ((layer >= 2) & (labels >= 0), lambda t, m: t[m] == truth[m])
        elif "defect_distance" in extra:
            allowed = ["Other", lattice] + (["HCP"] if lattice == "FCC" else [])
            where["core: Other or its lattice"] = (labels < 0, lambda t, m: np.isin(t[m], allowed))
            where["≥ 5 Å from the defect: right"] = ((extra["defect_distance"] >= 5.0) & (labels >= 0),
                                                     lambda t, m: t[m] == truth[m])
        for criterion, (mask, rule) in where.items():
            if mask.any():
                row = rows[(f"{kind} {lattice}", criterion)]
                row[0] += int(mask.sum())
                row[1] += int(rule(without, mask).sum())
                row[2] += int(rule(with_cna, mask).sum())
                row[3] += int(rule(with_shells, mask).sum())
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", default=str(HERE / "RESULTS.md"))
    args = parser.parse_args()
    from ovito_mlclass.model import load_model
    from ovito_mlclass.training.snapshots import Snapshot, cache_dir

    model = load_model("openworld")
    bulk = sorted(p for p in (cache_dir() / "openworld-bulk" / "train").glob("*.npz")
                  if any(f"_{phase}_" in p.name for phase in ("CD", "HD", "ZB", "WZ")) or "surface_Si" in p.name)
    bulk = [p for p in bulk if any(t in p.name for t in HOT)]
    defects = sorted(p for p in (cache_dir() / "openworld-defects" / "train").glob("*.npz")
                     if not p.name.startswith("frank-kasper"))  # a crystal with Kasper polyhedra, no defect
    if not bulk or not defects:
        raise SystemExit("no training snapshots of openworld-bulk / openworld-defects: generate them")
    atoms, wrong, outermost, outermost_wrong = diamond_variants(model, (Snapshot.load(p) for p in bulk))
    sheets = sorted(p for p in (cache_dir() / "openworld-bulk" / "train").glob("*.npz")
                    if "_GR_" in p.name or "_BN_" in p.name)
    sheet_atoms, sheet_wrong = graphene_variants(model, (Snapshot.load(p) for p in sheets))
    rows = cna_variants(model, (Snapshot.load(p) for p in defects))
    lines = ["## The topology certificates on the training split", "",
             f"`python benchmarks/bench_certificates.py`, {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC. The default "
             "model on snapshots of its own training split (never scored in the accuracy tables), with variants of the "
             "certificate rule: the rule's choices checked on data other than the held-out snapshots it is reported on.",
             "", f"### Diamonds: {len(bulk)} hot diamond and Si-surface snapshots (0.75–0.95 T_m), {atoms:,} labelled atoms",
             "", f"| rule | labelled atoms wrong | outermost Si surface atoms not Other (of {outermost:,}) |",
             "|---|---|---|"]
    lines += [f"| {label} | {count:,} | {outermost_wrong[label]:,} |" for label, count in wrong.items()]
    lines += ["", f"### Graphene: {len(sheets)} graphene and h-BN snapshots (600–2500 K), {sheet_atoms:,} labelled atoms",
              "", "| rule | labelled atoms wrong |", "|---|---|"]
    lines += [f"| {label} | {count:,} |" for label, count in sheet_wrong.items()]
    lines += ["", f"### Adaptive CNA: {len(defects)} defect snapshots (the diamond test on in every column)", "",
              "| defect | criterion | atoms | without | with its certificate | and the close-packed shells (shipped) |",
              "|---|---|---|---|---|---|"]
    total = [0, 0, 0, 0]
    for (group, criterion), (n, *right) in sorted(rows.items()):
        lines.append(f"| {group} | {criterion} | {n:,} | " + " | ".join(f"{100 * r / n:.2f}%" for r in right) + " |")
        total = [total[0] + n] + [t + n - r for t, r in zip(total[1:], right)]
    lines.append("| all | atom-criteria wrong | " + " | ".join(f"{t:,}" for t in total) + " |")
    print(replace_section(args.output, "certificates-train", "\n".join(lines)))


if __name__ == "__main__":
    main()
