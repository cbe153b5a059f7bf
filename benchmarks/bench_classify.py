#!/usr/bin/env python3
"""End-to-end classification speed: a million-atom frame through StructureClassifierModifier
(neighbours + descriptors + network), next to OVITO's PTM and adaptive CNA on the same frame and
thread count, with the share of our time spent in each stage.

    python benchmarks/bench_classify.py [--model metals] [--threads 1 2] [--cells 63]

Each thread count runs in a fresh process (thread pools are sized at start-up). Results go to the
classification section of ``benchmarks/RESULTS.md``.
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

import numpy as np

from results_file import replace_section

HERE = Path(__file__).parent


def best_of(reps, step):
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        step()
        times.append(time.perf_counter() - t)
    return min(times)


def child(model_name, cells, reps):
    sys.path.insert(0, str(HERE))
    from bench_descriptors import make_ovito_data
    from ovito.modifiers import CommonNeighborAnalysisModifier, PolyhedralTemplateMatchingModifier

    from ovito_mlclass.model import StructureModel
    from ovito_mlclass.modifiers import StructureClassifierModifier

    data, n = make_ovito_data(cells)
    model = StructureModel.load(model_name)
    small, _ = make_ovito_data(3)
    small.clone().apply(StructureClassifierModifier(model=model_name))  # warm-up: imports, JIT, plugin loading
    result = {"atoms": n}
    result["ours"] = best_of(reps, lambda: data.clone().apply(StructureClassifierModifier(model=model_name)))
    result["PTM"] = best_of(reps, lambda: data.clone().apply(PolyhedralTemplateMatchingModifier()))
    result["a-CNA"] = best_of(reps, lambda: data.clone().apply(CommonNeighborAnalysisModifier()))
    # stages: the times between FeatureSpec.compute's progress reports (neighbours, then each block)
    marks = []
    features = model.features.compute(data, progress=lambda fraction, text: marks.append((time.perf_counter(), text)))
    stages = {}
    for (t0, text), (t1, _) in zip(marks, marks[1:]):
        name = text.replace("features: ", "descriptors: ")
        stages[name] = stages.get(name, 0.0) + t1 - t0
    t = time.perf_counter()
    model.predict(features)
    stages["network"] = time.perf_counter() - t
    result["stages"] = stages
    print(json.dumps(result))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="metals")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--cells", type=int, default=63, help="fcc unit cells per edge (63: 1,000,188 atoms)")
    parser.add_argument("--reps", type=int, default=2)
    parser.add_argument("--output", default=str(HERE / "RESULTS.md"))
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args.model, args.cells, args.reps)
    rows = []
    for threads in args.threads:
        env = dict(os.environ, OMP_NUM_THREADS=str(threads), OVITO_THREAD_COUNT=str(threads),
                   NUMBA_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads), OPENBLAS_NUM_THREADS=str(threads))
        out = subprocess.run([sys.executable, __file__, "--child", "--model", args.model, "--cells", str(args.cells),
                              "--reps", str(args.reps)], env=env, capture_output=True, text=True, check=True)
        rows.append((threads, json.loads(out.stdout.strip().splitlines()[-1])))
        print(f"{threads} thread(s): {rows[-1][1]}", file=sys.stderr)
    import ovito
    import torch

    lines = ["## Classification speed (end to end)", "",
             f"`python benchmarks/bench_classify.py`, {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, "
             f"{platform.processor() or platform.machine()}, {os.cpu_count()} logical CPUs, ovito {ovito.version_string}, "
             f"torch {torch.__version__}; model `{args.model}`; thermally disordered fcc Cu (σ = 0.1 Å), "
             f"{rows[0][1]['atoms']:,} atoms; best of {args.reps}. Ours = `StructureClassifierModifier` applied to the "
             "frame (neighbours, descriptors, network, output properties); peers = OVITO's "
             "`PolyhedralTemplateMatchingModifier()` and `CommonNeighborAnalysisModifier()` (adaptive) on the same frame.",
             "", "| threads | ours [s] | µs/atom | PTM [s] | PTM / ours | a-CNA [s] | a-CNA / ours | stages of ours |",
             "|---|---|---|---|---|---|---|---|"]
    for threads, r in rows:
        total = sum(r["stages"].values())
        stages = ", ".join(f"{k} {100 * v / total:.0f}%" for k, v in r["stages"].items())
        lines.append(f"| {threads} | {r['ours']:.3f} | {1e6 * r['ours'] / r['atoms']:.2f} | {r['PTM']:.3f} | "
                     f"{r['PTM'] / r['ours']:.2f}× | {r['a-CNA']:.3f} | {r['a-CNA'] / r['ours']:.2f}× | {stages} |")
    print(replace_section(args.output, "classify", "\n".join(lines)))


if __name__ == "__main__":
    main()
