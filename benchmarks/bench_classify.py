#!/usr/bin/env python3
"""End-to-end classification speed: a million-atom frame through StructureClassifierModifier
(neighbours + descriptors + network), next to OVITO's PTM and adaptive CNA on the same frame and
thread count, with the share of our time spent in each stage.

    python benchmarks/bench_classify.py [--models metals] [--threads 1 2] [--cells 63]
    python benchmarks/bench_classify.py --models metals metals-pointnet --section classify-pointnet

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


def best_of(reps, step):
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        step()
        times.append(time.perf_counter() - t)
    return min(times)


def child(model_names, cells, reps):
    sys.path.insert(0, str(HERE))
    from bench_descriptors import make_ovito_data
    from ovito.modifiers import CommonNeighborAnalysisModifier, PolyhedralTemplateMatchingModifier

    from ovito_mlclass.model import StructureModel
    from ovito_mlclass.modifiers import StructureClassifierModifier

    data, n = make_ovito_data(cells)
    small, _ = make_ovito_data(3)
    result = {"atoms": n, "models": {}}
    for model_name in model_names:
        model = StructureModel.load(model_name)
        small.clone().apply(StructureClassifierModifier(model=model_name))  # warm-up: imports, JIT, plugin loading
        seconds = best_of(reps, lambda: data.clone().apply(StructureClassifierModifier(model=model_name)))
        # stages: the times between FeatureSpec.compute's progress reports (neighbours, then each block)
        marks = []
        features = model.features.compute(data, progress=lambda fraction, text: marks.append((time.perf_counter(), text)),
                                          neighbors=model.neighbor_average)
        features, neighbors = features if model.neighbor_average else (features, None)
        stages = {}
        for (t0, text), (t1, _) in zip(marks, marks[1:]):
            name = text.replace("features: ", "descriptors: ")
            stages[name] = stages.get(name, 0.0) + t1 - t0
        t = time.perf_counter()
        model.predict(features, neighbors)
        stages["network"] = time.perf_counter() - t
        del features, neighbors
        result["models"][model_name] = {"seconds": seconds, "stages": stages}
    result["PTM"] = best_of(reps, lambda: data.clone().apply(PolyhedralTemplateMatchingModifier()))
    result["a-CNA"] = best_of(reps, lambda: data.clone().apply(CommonNeighborAnalysisModifier()))
    print(json.dumps(result))


def memory_child(model_name, cells):
    """Peak resident memory of one classification, above the process with the frame loaded."""
    import resource

    sys.path.insert(0, str(HERE))
    from bench_descriptors import make_ovito_data

    from ovito_mlclass.modifiers import StructureClassifierModifier

    small, _ = make_ovito_data(3)
    small.clone().apply(StructureClassifierModifier(model=model_name))  # imports and model loaded
    data, n = make_ovito_data(cells)
    work = data.clone()
    with open("/proc/self/status") as f:
        before = next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))
    work.apply(StructureClassifierModifier(model=model_name))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # kB on Linux
    print(json.dumps({"peak_mib": (peak - before) / 1024}))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["metals"])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--cells", type=int, default=63, help="fcc unit cells per edge (63: 1,000,188 atoms)")
    parser.add_argument("--reps", type=int, default=2)
    parser.add_argument("--output", default=str(HERE / "RESULTS.md"))
    parser.add_argument("--section", default="classify", help="marked section of the output file to (re)write")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--memory", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args.models, args.cells, args.reps)
    if args.memory:
        return memory_child(args.models[0], args.cells)

    def run(threads, *extra):
        env = dict(os.environ, OMP_NUM_THREADS=str(threads), OVITO_THREAD_COUNT=str(threads),
                   NUMBA_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads), OPENBLAS_NUM_THREADS=str(threads))
        out = subprocess.run([sys.executable, __file__, *extra, "--cells", str(args.cells), "--reps", str(args.reps)],
                             env=env, capture_output=True, text=True, check=True)
        return json.loads(out.stdout.strip().splitlines()[-1])

    rows = []
    for threads in args.threads:
        rows.append((threads, run(threads, "--child", "--models", *args.models)))
        print(f"{threads} thread(s): {rows[-1][1]}", file=sys.stderr)
    memory = {name: run(1, "--memory", "--models", name)["peak_mib"] for name in args.models}
    print(f"peak memory: {memory}", file=sys.stderr)
    import ovito
    import torch

    first = args.models[0]
    lines = ["## Classification speed (end to end)" + (f": {', '.join(args.models)}" if len(args.models) > 1 else ""), "",
             f"`python benchmarks/bench_classify.py {' '.join(sys.argv[1:])}`".replace(" `", "`") +
             f", {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, "
             f"{platform.processor() or platform.machine()}, {os.cpu_count()} logical CPUs, ovito {ovito.version_string}, "
             f"torch {torch.__version__}; thermally disordered fcc Cu (σ = 0.1 Å), "
             f"{rows[0][1]['atoms']:,} atoms; best of {args.reps}. Ours = `StructureClassifierModifier` applied to the "
             "frame (neighbours, descriptors or point clouds, network, output properties); peers = OVITO's "
             "`PolyhedralTemplateMatchingModifier()` and `CommonNeighborAnalysisModifier()` (adaptive) on the same frame "
             f"in the same process; \"/ {first}\" = time over the first model's in the same process. Peak memory: "
             "resident set above the loaded frame during one classification (1 thread, a process of its own).",
             "", f"| threads | model | ours [s] | µs/atom | / {first} | PTM [s] | PTM / ours | a-CNA [s] | a-CNA / ours | "
             "peak memory | stages of ours |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for threads, r in rows:
        for name, m in r["models"].items():
            total = sum(m["stages"].values())
            stages = ", ".join(f"{k} {100 * v / total:.0f}%" for k, v in m["stages"].items())
            ratio = m["seconds"] / r["models"][first]["seconds"]
            lines.append(f"| {threads} | `{name}` | {m['seconds']:.3f} | {1e6 * m['seconds'] / r['atoms']:.2f} | "
                         f"{ratio:.2f}× | {r['PTM']:.3f} | {r['PTM'] / m['seconds']:.2f}× | {r['a-CNA']:.3f} | "
                         f"{r['a-CNA'] / m['seconds']:.2f}× | {memory[name]:,.0f} MiB | {stages} |")
    print(replace_section(args.output, args.section, "\n".join(lines)))


if __name__ == "__main__":
    main()
