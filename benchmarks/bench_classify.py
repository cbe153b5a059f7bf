#!/usr/bin/env python3
"""End-to-end classification speed: a million-atom frame through StructureClassifierModifier
(neighbours + descriptors + network), next to OVITO's PTM and adaptive CNA on the same frame and
thread count, with the share of our time spent in each stage. ``--lattice diamond``: thermally
disordered cubic-diamond Si instead of fcc Cu, next to PTM and OVITO's Identify Diamond.

    python benchmarks/bench_classify.py [--models metals] [--threads 1 2] [--cells 63]
    python benchmarks/bench_classify.py --models metals metals-pointnet --section classify-pointnet
    python benchmarks/bench_classify.py --models openworld --lattice diamond --cells 50 --section classify-diamond

Each thread count runs in a fresh process (thread pools are sized at start-up); every model named
is timed in it, next to the peers. The peak memory of one classification (resident set above the
input frame) is measured in a fresh process per model. Results go to the classification section
(``--section``) of ``benchmarks/RESULTS.md``.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path


from results_file import replace_section

HERE = Path(__file__).parent


def timed(step):
    """The wall time and the CPU time (user + system, all threads of the process) of one run."""
    t, c = time.perf_counter(), os.times()
    step()
    c2 = os.times()
    return time.perf_counter() - t, c2.user + c2.system - c.user - c.system


def best_of(reps, steps):
    """For each of ``steps`` (name -> callable), the shortest wall time and the smallest CPU time
    (CPU time leaves out what a virtual machine's host takes away, steal) of ``reps`` runs, and the
    wall time of its first run (ours: before the work arrays of a frame this size were kept). The
    steps take turns, one run each per round, so that a slow spell of a shared machine falls on
    ours and the peer alike rather than on whichever ran during it."""
    runs = {name: [] for name in steps}
    for _ in range(reps):
        for name, step in steps.items():
            runs[name].append(timed(step))
    return {name: (min(w for w, _ in r), min(c for _, c in r), r[0][0]) for name, r in runs.items()}


def steal_jiffies():
    """The machine's total and stolen CPU time so far (/proc/stat; zeros where there is none)."""
    try:
        with open("/proc/stat") as f:
            values = [int(v) for v in f.readline().split()[1:]]
        return sum(values[:8]), values[7]
    except (OSError, IndexError, ValueError):
        return 0, 0


SI_LATTICE, SI_SIGMA = 5.431, 0.1  # Å: the diamond frame, Si with thermal-like displacements


def frame(lattice, cells):
    """The benchmark's frame and its atom count: disordered fcc Cu (bench_descriptors) or cubic-diamond Si."""
    sys.path.insert(0, str(HERE))
    from bench_descriptors import SEED, make_ovito_data

    if lattice == "fcc":
        return make_ovito_data(cells)
    import numpy as np
    from ovito.data import DataCollection

    sys.path.insert(0, str(HERE.parent / "training_data"))
    from md_lattices import PHASES, lattice as build

    positions, box, _, _ = build(PHASES["CD"], SI_LATTICE, (cells,) * 3)
    positions += np.random.default_rng(SEED).normal(0.0, SI_SIGMA, positions.shape)
    data = DataCollection()
    data.create_cell(np.column_stack([np.diag(box), np.zeros(3)]), pbc=(True, True, True))
    data.create_particles(count=len(positions)).create_property("Position", data=np.mod(positions, box))
    return data, len(positions)


def peers(lattice):
    """OVITO's methods timed next to ours: PTM and the one made for the lattice."""
    from ovito.modifiers import CommonNeighborAnalysisModifier, IdentifyDiamondModifier, PolyhedralTemplateMatchingModifier

    return {"PTM": PolyhedralTemplateMatchingModifier,
            **({"a-CNA": CommonNeighborAnalysisModifier} if lattice == "fcc" else {"Identify Diamond": IdentifyDiamondModifier})}


def child(model_names, cells, reps, lattice):
    from ovito_mlclass import topology
    from ovito_mlclass.classify import certifies
    from ovito_mlclass.model import StructureModel
    from ovito_mlclass.modifiers import StructureClassifierModifier

    data, n = frame(lattice, cells)
    small, _ = frame(lattice, 3)
    result = {"atoms": n, "models": {}}
    models = {name: StructureModel.load(name) for name in model_names}
    for name in model_names:
        small.clone().apply(StructureClassifierModifier(model=name))  # warm-up: imports, JIT, plugin loading
    # ours and the peer made for the lattice take turns; PTM (ten times slower) runs after them, as
    # with it in between our work arrays would be let go (30 s after their last use) before each run
    steps = {name: (lambda name=name: data.clone().apply(StructureClassifierModifier(model=name))) for name in model_names}
    own_peer, ptm = {k: v for k, v in peers(lattice).items() if k != "PTM"}, peers(lattice)["PTM"]
    steps.update({name: (lambda peer=peer: data.clone().apply(peer())) for name, peer in own_peer.items()})
    best = best_of(reps, steps)
    for model_name, model in models.items():
        seconds, cpu, first = best[model_name]
        # stages: the times between FeatureSpec.compute's progress reports (neighbours, then each block)
        marks = []
        k = max(model.neighbor_average, topology.SURROUNDING if certifies(model) else 0)
        features = model.features.compute(data, progress=lambda fraction, text: marks.append((time.perf_counter(), text)),
                                          neighbors=k, vectors=True, single_precision=True)
        features, neighbors, vectors = features if k else (features, None, None)
        stages = {}
        for (t0, text), (t1, _) in zip(marks, marks[1:]):
            name = text.replace("features: ", "descriptors: ")
            stages[name] = stages.get(name, 0.0) + t1 - t0
        t = time.perf_counter()
        prediction = model.predict(features, neighbors[:, :model.neighbor_average] if model.neighbor_average else None)
        stages["network"] = time.perf_counter() - t
        if certifies(model):
            t = time.perf_counter()
            topology.certified_classes(model.classes, prediction.probabilities.argmax(axis=1), data, neighbors, vectors)
            stages["topology"] = time.perf_counter() - t
        del features, neighbors, vectors, prediction
        result["models"][model_name] = {"seconds": seconds, "cpu": cpu, "first": first, "stages": stages}
    best.update(best_of(reps, {"PTM": lambda: data.clone().apply(ptm())}))   # after our stages: see above
    for name in peers(lattice):
        result[name], result[name + " cpu"], _ = best[name]
    print(json.dumps(result))


def memory_child(model_name, cells, lattice):
    """Peak resident memory of one classification, above the process with the frame loaded."""
    import resource

    from ovito_mlclass.modifiers import StructureClassifierModifier

    small, _ = frame(lattice, 3)
    small.clone().apply(StructureClassifierModifier(model=model_name))  # imports and model loaded
    data, n = frame(lattice, cells)
    work = data.clone()
    with open("/proc/self/status") as f:
        before = next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))
    work.apply(StructureClassifierModifier(model=model_name))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # kB on Linux
    del work
    with open("/proc/self/status") as f:
        after = next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))
    print(json.dumps({"peak_mib": (peak - before) / 1024, "kept_mib": (after - before) / 1024}))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["metals"])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--cells", type=int, default=63, help="unit cells per edge (fcc 63: 1,000,188 atoms; "
                                                                   "diamond 50: 1,000,000)")
    parser.add_argument("--lattice", choices=["fcc", "diamond"], default="fcc")
    parser.add_argument("--reps", type=int, default=2)
    parser.add_argument("--output", default=str(HERE / "RESULTS.md"))
    parser.add_argument("--section", default="classify", help="marked section of the output file to (re)write")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--memory", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args.models, args.cells, args.reps, args.lattice)
    if args.memory:
        return memory_child(args.models[0], args.cells, args.lattice)

    def run(threads, *extra):
        env = dict(os.environ, OMP_NUM_THREADS=str(threads), OVITO_THREAD_COUNT=str(threads),
                   NUMBA_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads), OPENBLAS_NUM_THREADS=str(threads))
        total, stolen = steal_jiffies()
        out = subprocess.run([sys.executable, __file__, *extra, "--cells", str(args.cells), "--reps", str(args.reps),
                              "--lattice", args.lattice],
                             env=env, capture_output=True, text=True, check=True)
        result = json.loads(out.stdout.strip().splitlines()[-1])
        total2, stolen2 = steal_jiffies()
        result["steal"] = (stolen2 - stolen) / max(total2 - total, 1)
        return result

    rows = []
    for threads in args.threads:
        rows.append((threads, run(threads, "--child", "--models", *args.models)))
        print(f"{threads} thread(s): {rows[-1][1]}", file=sys.stderr)
    memory = {name: run(1, "--memory", "--models", name) for name in args.models}
    print(f"peak memory: {memory}", file=sys.stderr)
    import ovito
    import torch

    first = args.models[0]
    lines = ["## Classification speed (end to end)" + (f": {', '.join(args.models)}" if len(args.models) > 1 else "")
             + (" on cubic diamond" if args.lattice == "diamond" else ""), "",
             f"`python benchmarks/bench_classify.py {' '.join(sys.argv[1:])}`".replace(" `", "`") +
             f", {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, "
             f"{platform.processor() or platform.machine()}, {os.cpu_count()} logical CPUs, ovito {ovito.version_string}, "
             f"torch {torch.__version__}; thermally disordered "
             + ("fcc Cu (σ = 0.1 Å)" if args.lattice == "fcc" else f"cubic-diamond Si (a = {SI_LATTICE} Å, σ = {SI_SIGMA} Å)")
             + f", {rows[0][1]['atoms']:,} atoms; best of {args.reps}, ours and "
             + ("adaptive CNA" if args.lattice == "fcc" else "Identify Diamond") + " taking turns, then PTM. Ours = `StructureClassifierModifier` applied to the "
             "frame (neighbours, descriptors or point clouds, network, output properties); peers = OVITO's "
             + (" and ".join(f"`{p.__name__}()`" for p in peers(args.lattice).values()))
             + (" (adaptive)" if args.lattice == "fcc" else "") + " on the same frame "
             f"in the same process; \"/ {first}\" = time over the first model's in the same process. Peak memory: "
             "resident set above the loaded frame during one classification (1 thread, a process of its own), and "
             "after it, kept for the next frame (work arrays: let go 30 s after their last use). "
             "First = our first run on the frame, before the work arrays of a frame of its size were kept (the "
             "first frame of a trajectory; the best of the others is what every further frame takes). "
             "CPU = user + system time of the process, all threads (what a virtual machine's host takes away, "
             "'steal', is not in it; 'steal' = its share of the machine's CPU time during the run).",
             "", f"| threads | model | ours [s] | first [s] | µs/atom | / {first} | "
             + " | ".join(f"{p} [s] | {p} / ours" for p in peers(args.lattice))
             + " | ours CPU [s] | " + " | ".join(f"{p} CPU / ours" for p in peers(args.lattice))
             + " | steal | peak memory | kept after | stages of ours |",
             "|---" * (11 + 3 * len(peers(args.lattice))) + "|"]
    for threads, r in rows:
        for name, m in r["models"].items():
            total = sum(m["stages"].values())
            stages = ", ".join(f"{k} {100 * v / total:.0f}%" for k, v in m["stages"].items())
            ratio = m["seconds"] / r["models"][first]["seconds"]
            lines.append(f"| {threads} | `{name}` | {m['seconds']:.3f} | {m['first']:.3f} | "
                         f"{1e6 * m['seconds'] / r['atoms']:.2f} | "
                         f"{ratio:.2f}× | " + " | ".join(f"{r[p]:.3f} | {r[p] / m['seconds']:.2f}×" for p in peers(args.lattice))
                         + f" | {m['cpu']:.3f} | " + " | ".join(f"{r[p + ' cpu'] / m['cpu']:.2f}×" for p in peers(args.lattice))
                         + f" | {100 * r['steal']:.0f}% | {memory[name]['peak_mib']:,.0f} MiB | {memory[name]['kept_mib']:,.0f} MiB | {stages} |")
    print(replace_section(args.output, args.section, "\n".join(lines)))


if __name__ == "__main__":
    main()
