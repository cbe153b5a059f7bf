#!/usr/bin/env python3
"""Scaling out: frames per second of a 100-frame, 100,000-atom trajectory, serial versus Dask
(LocalCluster of 2 single-threaded worker processes), and the overhead of in-situ classification
inside LAMMPS every 100 steps as a fraction of the run time. Writes the section ``scale`` of
benchmarks/RESULTS.md.

    python benchmarks/bench_scale.py            # about 10 minutes on 2 cores

The trajectory is made once into ~/.cache/ovito-mlclass/scale/ (LAMMPS text dump, ~0.5 GB): an
fcc Cu crystal of 25 x 25 x 40 unit cells (100,000 atoms) whose Gaussian disorder grows from
0.05 Å to 0.5 Å over the 100 frames, so that the classes change from FCC to Liquid/Other along
the run. Each mode runs in a process of its own with a fixed thread count.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from ovito_mlclass.training.snapshots import cache_dir

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from results_file import replace_section  # noqa: E402

CACHE = cache_dir() / "scale"  # generated data stay outside the repository, where the training data go


def make_trajectory(path: Path, frames: int, cells=(25, 25, 40)) -> Path:
    if path.exists():
        return path
    from ovito.data import DataCollection
    from ovito.io import export_file
    from tqdm import tqdm

    a = 3.615
    basis = np.array([[0, 0, 0], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]])
    grid = np.stack(np.meshgrid(*[np.arange(c) for c in cells], indexing="ij"), -1).reshape(-1, 3)
    lattice = ((grid[:, None, :] + basis[None]).reshape(-1, 3)) * a
    rng = np.random.default_rng(2026)
    path.parent.mkdir(parents=True, exist_ok=True)
    part = path.with_suffix(".part")
    with open(path.with_suffix(".tmp"), "w") as target:
        for frame in tqdm(range(frames), desc="writing the trajectory", unit="frame"):
            sigma = 0.05 + 0.45 * frame / max(1, frames - 1)
            data = DataCollection()
            data.create_cell(np.column_stack([np.diag(np.array(cells) * a), np.zeros(3)]), pbc=(True, True, True))
            particles = data.create_particles(count=len(lattice))
            particles.create_property("Particle Identifier", data=np.arange(1, len(lattice) + 1))
            particles.create_property("Particle Type", data=np.ones(len(lattice), dtype=np.int32))
            particles.create_property("Position", data=lattice + rng.normal(0.0, sigma, lattice.shape))
            data.attributes["Timestep"] = 1000 * frame
            export_file(data, str(part), "lammps/dump",
                        columns=["Particle Identifier", "Particle Type", "Position.X", "Position.Y", "Position.Z"])
            target.write(part.read_text())
    part.unlink()
    path.with_suffix(".tmp").rename(path)
    return path


def child(trajectory: str, workers: int) -> None:
    """One run of classify_trajectory, its numbers as JSON on the last line."""
    from ovito_mlclass.trajectory import classify_trajectory

    started = time.perf_counter()
    result = classify_trajectory(trajectory, "metals", workers=workers, progress=False)
    wall = time.perf_counter() - started
    frames = result.frames
    print(json.dumps({"wall": wall, "frames": len(frames), "failed": len(result.failed),
                      "task_mean": float(np.mean([f.seconds for f in frames])),
                      "task_cpu_mean": float(np.mean([f.cpu_seconds for f in frames])),
                      "peak_mib_first10": max(f.peak_mib for f in frames[:10]),
                      "peak_mib_all": max(f.peak_mib for f in frames),
                      "counts": [f.counts for f in frames]}))


def run_child(trajectory, workers, threads):
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), OVITO_THREAD_COUNT=str(threads),
               MKL_NUM_THREADS=str(threads), OPENBLAS_NUM_THREADS=str(threads))
    out = subprocess.run([sys.executable, __file__, "--child", str(trajectory), "--workers", str(workers)],
                         env=env, capture_output=True, text=True)
    if out.returncode:
        raise RuntimeError(out.stderr[-3000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def insitu(cells: int, steps: int, every: int, ranks: int, classify: bool) -> dict:
    """The example heating run (examples/insitu_lammps.py) under mpiexec, with or without classification."""
    venv_bin = Path(sys.executable).parent
    env = dict(os.environ, OMP_NUM_THREADS="1",
               LD_LIBRARY_PATH=os.pathsep.join([str(Path(sys.prefix) / "lib"), os.environ.get("LD_LIBRARY_PATH", "")]))
    command = [str(venv_bin / "mpiexec"), "-n", str(ranks), sys.executable, str(HERE.parent / "examples" / "insitu_lammps.py"),
               "--cells", str(cells), "--steps", str(steps), "--every", str(every), "--t-end", "1000",
               "-o", str(CACHE / "insitu_bench.dump")] + ([] if classify else ["--no-classify"])
    out = subprocess.run(command, env=env, capture_output=True, text=True)
    if out.returncode:
        raise RuntimeError(out.stdout[-2000:] + out.stderr[-3000:])
    text = out.stdout
    if classify:
        m = re.search(r"classification ([\d.]+) s of ([\d.]+) s run time", text)
        return {"classify": float(m.group(1)), "run": float(m.group(2)), "text": text.strip()}
    return {"run": float(re.search(r"run time ([\d.]+) s", text).group(1)), "text": text.strip()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=100)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--insitu-cells", type=int, default=20, help="fcc cells per side of the LAMMPS run (4 atoms each)")
    parser.add_argument("--insitu-steps", type=int, default=1000)
    parser.add_argument("--output", default=str(HERE / "RESULTS.md"))
    parser.add_argument("--parts", nargs="+", default=["trajectory", "insitu"],
                        help="parts to measure; the others are taken from their last run (saved in the cache)")
    parser.add_argument("--child", metavar="TRAJECTORY", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args.child, args.workers)

    started = time.perf_counter()
    trajectory = make_trajectory(CACHE / f"cu_disorder_{args.frames}x100k.dump", args.frames)
    saved = CACHE / "bench_scale.json"
    measured = json.loads(saved.read_text()) if saved.exists() else {}
    if "trajectory" in args.parts:
        load_before = os.getloadavg()[0]
        runs = {}
        for label, workers, threads in [("serial, 1 thread", 0, 1), ("serial, 2 threads", 0, 2),
                                        (f"Dask, {args.workers} workers x 1 thread", args.workers, 1)]:
            runs[label] = run_child(trajectory, workers, threads)
            print(label, {k: v for k, v in runs[label].items() if k != "counts"}, file=sys.stderr)
        measured["trajectory"] = {"runs": runs, "load": [load_before, os.getloadavg()[0]],
                                  "when": f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC"}
    if "insitu" in args.parts:
        load_before = os.getloadavg()[0]
        with_ml = insitu(args.insitu_cells, args.insitu_steps, 100, 2, True)
        without = insitu(args.insitu_cells, args.insitu_steps, 100, 2, False)
        print(with_ml, without, file=sys.stderr)
        measured["insitu"] = {"with": with_ml, "without": without, "load": [load_before, os.getloadavg()[0]],
                              "cells": args.insitu_cells, "steps": args.insitu_steps,
                              "when": f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC"}
    saved.write_text(json.dumps(measured))
    runs = measured["trajectory"]["runs"]
    serial = runs["serial, 1 thread"]
    identical = all(r["counts"] == serial["counts"] for r in runs.values())
    with_ml, without = measured["insitu"]["with"], measured["insitu"]["without"]
    args.insitu_cells, args.insitu_steps = measured["insitu"]["cells"], measured["insitu"]["steps"]

    import dask
    import ovito
    import torch

    n_atoms = 4 * args.insitu_cells ** 3
    dask_run = runs[f"Dask, {args.workers} workers x 1 thread"]
    lines = ["## Scaling out: trajectories on Dask, in situ in LAMMPS", "",
             f"`python benchmarks/bench_scale.py {' '.join(sys.argv[1:])}`".replace(" `", "`") +
             f", {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, {platform.processor() or platform.machine()}, "
             f"{os.cpu_count()} logical CPUs, ovito {ovito.version_string}, torch {torch.__version__}, dask "
             f"{dask.__version__}. The 1-minute load averages before and after each part are given below: on a "
             "loaded machine wall times are upper bounds; CPU time per frame is what each frame cost its process.", "",
             f"### Trajectory: {serial['frames']} frames x 100,000 atoms, model `metals`", "",
             f"{trajectory.name}: LAMMPS text dump ({trajectory.stat().st_size / 2**20:,.0f} MiB), fcc Cu with Gaussian "
             "disorder growing from 0.05 to 0.5 Å. `classify_trajectory(path, 'metals', workers=N)` in a process of "
             "its own per mode (what `ovito-mlclass classify PATH --workers N` runs); wall time includes reading the "
             "file (OVITO scans it once per process) and, for Dask, starting the LocalCluster and its processes. "
             "Task = one frame: read, classify, count (mean over frames; wall and CPU time of the process that ran it). "
             "Peak memory: resident set of the process that classified the frames (for Dask: of a worker's OVITO "
             f"process), after 10 frames and after all of them. Measured {measured['trajectory']['when']}, load average "
             f"{measured['trajectory']['load'][0]:.1f} before, {measured['trajectory']['load'][1]:.1f} after.", "",
             "| mode | wall [s] | frames/s | / serial 1 thread | mean task: wall / CPU [s] | peak memory after 10 / all frames |",
             "|---|---|---|---|---|---|"]
    for label, r in runs.items():
        rate = r["frames"] / r["wall"]
        cpu = f"{r['task_cpu_mean']:.2f}" if "task_cpu_mean" in r else "–"
        lines.append(f"| {label} | {r['wall']:.1f} | {rate:.2f} | {rate / (serial['frames'] / serial['wall']):.2f}× | "
                     f"{r['task_mean']:.2f} / {cpu} | {r['peak_mib_first10']:,.0f} / {r['peak_mib_all']:,.0f} MiB |")
    lines += ["", f"Dask result identical to serial (per-frame counts of all frames): {'yes' if identical else 'NO'}; "
              f"failed frames: {sum(r['failed'] for r in runs.values())}. Dask / serial (1 thread) = "
              f"{(serial['wall'] / dask_run['wall']):.2f}× in frames per second.", "",
              f"### In situ: LAMMPS, {n_atoms:,} Cu atoms (EAM), {args.insitu_steps} steps, classification every 100 "
              "steps, `mpiexec -n 2`", "",
              f"`examples/insitu_lammps.py --cells {args.insitu_cells} --steps {args.insitu_steps} --every 100 --t-end 1000` "
              "(hot fcc, NPT), with and without `--no-classify`; run time = the LAMMPS `run` command; classification "
              "time = inside the callbacks on the slowest rank (local + ghost atoms, features, network, writing "
              "`i_mlclass`); the run with classification also carries the wider ghost shell (`comm_modify cutoff`) "
              f"every step. Measured {measured['insitu']['when']}, load average {measured['insitu']['load'][0]:.1f} "
              f"before, {measured['insitu']['load'][1]:.1f} after.", "",
              "| run | run time [s] | classification [s] | overhead |", "|---|---|---|---|",
              f"| MD only | {without['run']:.1f} | – | – |",
              f"| MD + classification every 100 steps | {with_ml['run']:.1f} | {with_ml['classify']:.1f} | "
              f"{(with_ml['run'] - without['run']) / without['run']:+.1%} of the MD-only run time "
              f"({with_ml['classify'] / with_ml['run']:.1%} of the run inside the classifier) |", "",
              "GPU inference (`device='cuda'`): not measured; this project's machines have no GPU, so the CUDA path is "
              "unverified here (tests/test_scale.py::test_gpu_posteriors_equal_cpu_posteriors runs where torch sees one).",
              "", f"(harness wall time {time.perf_counter() - started:.0f} s)"]
    print(replace_section(args.output, "scale", "\n".join(lines)))


if __name__ == "__main__":
    main()
