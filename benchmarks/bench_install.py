#!/usr/bin/env python
"""What an install costs: for the core install and each extra, the number of distributions and
their installed size; and the wall time of ``import ovito_mlclass`` and of ``ovito-mlclass
classify`` on the bundled examples in a fresh process (median of ``--repeats``). The same for an
earlier commit (``--before``, default 6be80a4: before the lean install), for comparison.

Method. Distributions: pip resolves the requirements of ``pyproject.toml`` (core, or core + one
extra) with ``pip install --dry-run --ignore-installed --report``, torch pinned to the CPU build
(``torch==2.13.0+cpu``, as the docs advise; unpinned, the index offers a CUDA build and its
``nvidia-*`` libraries); the package itself counts as one more. Installed size: the files of each
resolved distribution (name and version) as installed in this environment, or, where it has
another version or none, as ``pip install --no-deps --target`` installs it into a scratch folder;
the package itself: its files in git plus the compiled module. Timings: each revision is built
and installed (``pip install --no-deps --no-build-isolation``) into a scratch virtual environment
that sees this environment's packages, so that both revisions run on the same dependencies; the
revisions take turns run by run.

    python benchmarks/bench_install.py [--before 6be80a4] [--repeats 5] [--threads 2]

Writes section ``install`` of benchmarks/RESULTS.md.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import tomllib
from importlib import metadata
from pathlib import Path

from results_file import replace_section

ROOT = Path(__file__).resolve().parent.parent
EXTRAS = ("plots", "unsupervised", "dask", "properties", "parquet", "md", "mpi")
TORCH_CPU = "torch==2.13.0+cpu"
SCRATCH = Path(tempfile.gettempdir()) / "ovito-mlclass-bench-install"


def git(*args, text=True):
    return subprocess.run(["git", "-C", str(ROOT), *args], check=True, capture_output=True, text=text).stdout


def requirements(rev: str, extra: str | None) -> list[str]:
    project = tomllib.loads(git("show", f"{rev}:pyproject.toml"))["project"]
    reqs = list(project["dependencies"]) + (project["optional-dependencies"][extra] if extra else [])
    return reqs + [TORCH_CPU]


def resolve(reqs: list[str]) -> list[tuple[str, str]]:
    """(name, version) of every distribution pip would install for ``reqs`` into an empty environment."""
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "report.json"
        subprocess.run([sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet",
                        "--report", str(report), *reqs], check=True, capture_output=True, text=True)
        install = json.loads(report.read_text())["install"]
    return sorted((item["metadata"]["name"], item["metadata"]["version"]) for item in install)


def _files_size(files, base: Path) -> int:
    total = 0
    for f in files or ():
        path = Path(base, f) if base else Path(f.locate())
        if path.is_file():
            total += path.stat().st_size
    return total


_sizes: dict = {}


def installed_size(name: str, version: str) -> int:
    """Bytes on disk of one distribution as installed (here, or into a scratch folder)."""
    key = (name.lower(), version)
    if key in _sizes:
        return _sizes[key]
    try:
        dist = metadata.distribution(name)
        if dist.version == version:
            _sizes[key] = _files_size([f for f in dist.files if not str(f).startswith("..")], None)
            return _sizes[key]
    except metadata.PackageNotFoundError:
        pass
    target = SCRATCH / "dists" / f"{name}-{version}"
    if not target.exists():
        subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--quiet", "--target", str(target),
                        f"{name}=={version}"], check=True, capture_output=True, text=True)
    _sizes[key] = sum(p.stat().st_size for p in target.rglob("*") if p.is_file())
    return _sizes[key]


def package_size(rev: str) -> int:
    """The package's own files (git blobs under ovito_mlclass/) plus the compiled module."""
    total = 0
    for line in git("ls-tree", "-r", "-l", rev, "--", "ovito_mlclass").splitlines():
        size = line.split()[3]
        total += int(size) if size.isdigit() else 0
    kernels = sorted(ROOT.glob("build/*/_kernels*.so"))
    return total + (kernels[0].stat().st_size if kernels else 0)


def scratch_env(rev: str) -> Path:
    """A virtual environment with revision ``rev`` (a commit hash) built and installed, over this
    environment's packages."""
    env = SCRATCH / f"venv-{rev}"
    python = env / "bin" / "python"
    if (env / "installed").exists():
        return python
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(env)], check=True)
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               check=True, capture_output=True, text=True).stdout.strip())
    here = [p for p in sys.path if p.endswith("site-packages")]
    (site / "dependencies.pth").write_text("\n".join(here) + "\n")  # this environment's packages, not its .pth hooks
    source = SCRATCH / f"src-{rev}"
    source.mkdir(parents=True, exist_ok=True)
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", rev], check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(source)], input=archive, check=True)
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation", str(source)],
                   check=True, env={**os.environ, "CMAKE_BUILD_PARALLEL_LEVEL": "2"})
    (env / "installed").write_text(rev)
    return python


def seconds(command: list[str], cwd: Path, env: dict) -> float:
    started = time.perf_counter()
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{done.stderr[-2000:]}")
    return time.perf_counter() - started


def timings(revs: dict, repeats: int, threads: int) -> dict:
    """label -> {"import": (median, runs), "classify": {snapshot: (median, runs)}} of revisions
    ``revs`` (label -> commit hash). The revisions take turns run by run, so that a change in the
    load of a shared machine falls on both alike."""
    cwd = Path(tempfile.mkdtemp(prefix="bench-install-"))  # not the repository: its source tree would be imported
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "OVITO_THREAD_COUNT": str(threads),
           "NUMBA_NUM_THREADS": str(threads)}
    pythons = {label: str(scratch_env(rev)) for label, rev in revs.items()}
    probe = ("from ovito.io import import_file; from ovito_mlclass.cli import example_file\n"
             "for path in sorted(example_file().parent.glob('*.dump.gz'), key=lambda p: p != example_file()):\n"
             "    print(path.name, import_file(str(path)).compute().particles.count)")
    examples = [line.split() for line in subprocess.run([next(iter(pythons.values())), "-c", probe], cwd=cwd, env=env,
                                                        check=True, capture_output=True, text=True).stdout.splitlines()]
    example_dir = subprocess.run([next(iter(pythons.values())), "-c", "from ovito_mlclass.cli import example_file; "
                                  "print(example_file().parent)"], cwd=cwd, env=env, check=True, capture_output=True,
                                 text=True).stdout.strip()
    commands = {"import": lambda python: [python, "-c", "import ovito_mlclass"]}
    for name, atoms in examples:  # both bundled snapshots, the default example first
        path = str(Path(example_dir, name))
        commands[f"{name} ({int(atoms):,} atoms)"] = (
            lambda python, path=path: [str(Path(python).parent / "ovito-mlclass"), "classify", path, "--device", "cpu"])
    runs = {label: {what: [] for what in commands} for label in revs}
    for _ in range(repeats):
        for what, command in commands.items():
            for label, python in pythons.items():
                runs[label][what].append(seconds(command(python), cwd, env))
    return {label: {"import": (statistics.median(r["import"]), r["import"]),
                    "classify": {what: (statistics.median(t), t) for what, t in r.items() if what != "import"}}
            for label, r in runs.items()}


def install_rows(rev: str, extras) -> list[dict]:
    rows = []
    for extra in extras:
        dists = resolve(requirements(rev, extra))
        size = sum(installed_size(n, v) for n, v in dists) + package_size(rev)
        torch = next((installed_size(n, v) for n, v in dists if n.lower() == "torch"), 0)
        largest = sorted(((installed_size(n, v), n) for n, v in dists), reverse=True)[:5]
        rows.append({"extra": extra, "distributions": len(dists) + 1, "bytes": size, "torch_bytes": torch,
                     "names": [n for n, _ in dists], "largest": largest})
        print(f"{rev} {extra or 'core'}: {len(dists) + 1} distributions, {size / 1e6:.0f} MB", flush=True)
    return rows


def report(rows: dict, times: dict, args) -> str:
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    lines = ["## Install: distributions, size, start-up", "",
             f"Measured {now} on {cpu} ({os.cpu_count()} cores, shared; load average "
             f"{os.getloadavg()[0]:.1f}), Python {platform.python_version()}, {args.threads} thread(s) "
             f"(`OMP_NUM_THREADS`, `OVITO_THREAD_COUNT`, `NUMBA_NUM_THREADS`). `benchmarks/bench_install.py`.", "",
             "Distributions pip installs into an empty environment (the package included; torch pinned to the "
             "CPU build), and their installed size (torch alone in brackets):", "",
             "| revision | install | distributions | installed size | added to the core |", "|---|---|---:|---:|---|"]
    for rev, table in rows.items():
        core = set(table[0]["names"])
        for row in table:
            added = ", ".join(sorted(set(row["names"]) - core)) if row["extra"] else ""
            label = f"`ovito-mlclass[{row['extra']}]`" if row["extra"] else "`ovito-mlclass`"
            lines.append(f"| {rev} | {label} | {row['distributions']} | {row['bytes'] / 1e9:.2f} GB "
                         f"({row['torch_bytes'] / 1e9:.2f}) | {added} |")
    core = list(rows.values())[-1][0]
    lines += ["", "Largest distributions of the core install: " + ", ".join(
        f"{name} {size / 1e9:.2f} GB" for size, name in core["largest"]) + "."]
    examples = list(next(iter(times.values()))["classify"])
    lines += ["", f"Start-up in a fresh process, median of {args.repeats} (seconds; every run in brackets); "
              f"`classify`: `ovito-mlclass classify <snapshot> --device cpu` on each bundled snapshot (reads it, "
              f"classifies it with `metals`, prints the counts; the first is the default example):", "",
              "| revision | `import ovito_mlclass` | " + " | ".join(f"`classify` {e}" for e in examples) + " |",
              "|---|---:|" + "---:|" * len(examples)]
    fmt = lambda m: f"{m[0]:.2f} ({', '.join(f'{x:.2f}' for x in m[1])})"  # noqa: E731
    for rev, t in times.items():
        lines.append(f"| {rev} | {fmt(t['import'])} | " + " | ".join(fmt(t["classify"][e]) for e in examples) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", default="6be80a4", help="the earlier revision to compare with ('' for none)")
    parser.add_argument("--after", default="HEAD", help="the revision measured (default HEAD: commit first)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--output", default=str(ROOT / "benchmarks" / "RESULTS.md"))
    args = parser.parse_args()
    revs = [r for r in (args.before, args.after) if r]
    names = {r: git("rev-parse", "--short", r).strip() for r in revs}  # HEAD moves: scratch files by hash
    rows = {f"{names[args.before]} (before)": install_rows(args.before, [None])} if args.before else {}
    rows[names[args.after]] = install_rows(args.after, [None, *EXTRAS])
    labels = {f"{names[rev]} (before)" if rev == args.before else names[rev]: names[rev] for rev in revs}
    times = timings(labels, args.repeats, args.threads)
    print(json.dumps(times), flush=True)
    print(replace_section(args.output, "install", report(rows, times, args)))


if __name__ == "__main__":
    main()
