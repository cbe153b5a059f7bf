#!/usr/bin/env python3
"""Fuzzing every modifier with random small structures and parameters (tests/fuzzing.py), many
more cases than the test suite's tests/test_fuzz.py, at one thread count.

    python benchmarks/fuzz.py [--cases 2000] [--seed 1] [--threads 2] [--timeout 120] [--output benchmarks/RESULTS.md]

Each case runs in a child process (many cases per child; a crash or hang is charged to its case and
the others go on in a new child), half the machine's memory at most. Outcomes: a result (finite
values), a clean refusal (InputError, ValueError, MemoryError, TraitError for parameters), or a
failure: crash (signal), hang (no answer within the timeout), non-finite output, another exception.
Writes section ``fuzz`` of RESULTS.md: count, time, outcome classes, and every failure with its case
(a JSON recipe that ``tests/fuzzing.py``'s ``run_cases`` reruns). Needs the ``test`` extra (hypothesis).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

from results_file import replace_section

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE.parent / "tests"))
import fuzzing  # noqa: E402  (the test suite's fuzzing engine)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=1, help="hypothesis seed (the test suite uses 0)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds a case may take")
    parser.add_argument("--output", default=str(HERE / "RESULTS.md"))
    args = parser.parse_args()

    cases = fuzzing.draw_cases(args.cases, args.seed, threads=(args.threads,))
    started = time.perf_counter()
    outcomes = fuzzing.run_cases(cases, args.timeout, progress=lambda done, total: print(
        f"\r{done}/{total}", end="", file=sys.stderr, flush=True))
    seconds = time.perf_counter() - started
    print(file=sys.stderr)

    import ovito
    import torch

    from ovito_mlclass.descriptors import BACKEND

    kinds = fuzzing.summary(outcomes)
    per_modifier = Counter(c["modifier"] for c in cases)
    results = Counter(c["modifier"] for c, o in zip(cases, outcomes) if o["kind"] == "result")
    failures = [(c, o) for c, o in zip(cases, outcomes) if o["kind"] in fuzzing.FAILURES]
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = ["## Fuzzing: random structures and parameters for every modifier", "",
             f"`python benchmarks/fuzz.py --cases {args.cases} --seed {args.seed} --threads {args.threads}` ({when}; "
             f"{platform.processor() or platform.machine()}, {os.cpu_count()} logical CPUs, {args.threads} thread(s) "
             f"(OMP_NUM_THREADS, OVITO_THREAD_COUNT), ovito {ovito.version_string}, torch {torch.__version__}, kernel "
             f"{BACKEND}). Cases drawn by hypothesis (tests/fuzzing.py): small cells (cubic, triclinic, slab, wire, "
             "open, 2D, tiny periodic, thin, flat), random or lattice positions with thermal noise, sometimes "
             "duplicate atoms, a heap of atoms on one point, atoms far outside the cell, NaN or infinite "
             "coordinates, vacancies or a far-away origin; 1 to 3 particle types; random parameters, some out "
             f"of range. A case may take {args.timeout:g} s and half the machine's memory.", "",
             f"{len(cases)} cases in {seconds:.0f} s ({seconds / len(cases):.2f} s per case, imports of the child "
             "processes included).", "",
             "| outcome | cases |", "|---|---|"]
    lines += [f"| {kind} | {count} |" for kind, count in sorted(kinds.items(), key=lambda kv: -kv[1])]
    lines += ["", "Cases per modifier (with a result): " + ", ".join(
        f"{name} {per_modifier[name]} ({results[name]})" for name in fuzzing.MODIFIERS) + ".", ""]
    if failures:
        lines.append(f"Failures ({len(failures)}):")
        lines.append("")
        for case, outcome in failures:
            detail = outcome["detail"].strip().splitlines()
            lines.append(f"- {outcome['kind']}: {fuzzing.describe(case)}: {detail[-1] if detail else ''}")
            lines.append(f"  `{json.dumps(case)}`")
    else:
        lines.append("No failures.")
    print(replace_section(args.output, "fuzz", "\n".join(lines)))
    if failures:
        print(fuzzing.report(*zip(*failures)), file=sys.stderr)


if __name__ == "__main__":
    main()
