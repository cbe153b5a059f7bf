"""Trajectories: classify many frames, in this process or frame-parallel on Dask.

    result = classify_trajectory("run.dump", "metals", workers=2)     # a LocalCluster of 2 processes
    result = classify_trajectory("run.dump", "metals", scheduler="tcp://host:8786")  # an existing cluster
    result = classify_trajectory("run.dump", "metals")                # serial, in this process
    result.write_table("counts.csv"); result.plot("fractions.png"); result.failed

Every frame is one task, :func:`classify_frame`, which is exactly the serial path: the frame is
read by OVITO's ``import_file`` *on the worker* (nothing but the file name travels through the
scheduler) and labelled by :class:`~ovito_mlclass.modifiers.StructureClassifierModifier`. A
worker keeps one pipeline per input and one loaded model (both remembered per process), so the
model is read once per worker, not once per frame. OVITO's Python API works only in the thread
that imported it (elsewhere it crashes), while Dask runs tasks in a thread pool: each worker
therefore runs its frames in one persistent child process (:class:`OvitoProcess`). At most ``frames_per_worker`` frames per
worker are in flight, so memory stays at a few frames per worker whatever the trajectory length;
what comes back is the per-frame counts, while the labelled frames are written by the workers
with OVITO's ``export_file``. A frame that cannot be read or classified comes back as an error
with its index; the other frames are processed. A file whose frames OVITO cannot all find (a
truncated or garbled frame stops OVITO's scan of the file) is reported the same way: the first
frame that could not be read, and why.
"""
from __future__ import annotations

import functools
import glob
import itertools
import os
import re
import shutil
import sys
import tempfile
import time
from contextlib import contextmanager
from concurrent.futures import Executor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .extras import requires
from .model import DEFAULT_MODEL

try:
    from distributed import WorkerPlugin
except ImportError:  # the serial path needs no Dask
    WorkerPlugin = object

# OVITO's output formats that, written frame by frame and concatenated, are OVITO's own
# multi-frame file (one self-contained block per frame)
CONCATENABLE = ("lammps/dump", "xyz")
OUTPUT_COLUMNS = ["Particle Identifier", "Particle Type", "Position.X", "Position.Y", "Position.Z",
                  "Structure Type", "Structure Confidence", "Structure Novelty", "Ordering Type"]
# OVITO's output formats that hold the structure types (each takes a column list)
TYPE_FORMATS = ("lammps/dump", "xyz", "imd", "netcdf/amber")
EXECUTOR = "ovito"  # the Dask worker executor that runs the frames (see OvitoProcess)


@dataclass(frozen=True)
class FrameJob:
    """Everything a worker needs for one frame: small, picklable, no arrays."""

    inputs: tuple
    frame: int
    model: str
    reject_threshold: float | None = None
    device: str = "auto"
    output: str | None = None       # this frame's output file (None: none)
    output_format: str | None = None
    select: str | None = None       # which particles to classify (selection_modifier); None: all
    novelty_threshold: float = 1.0  # atoms more novel than this are Other (1: the model's own threshold)
    ordering: bool = False          # also the chemical ordering (the modifier's output_ordering)


@dataclass
class FrameResult:
    frame: int
    counts: dict | None = None      # structure type name -> atoms
    ordering: dict | None = None    # with FrameJob.ordering: ordering type name -> atoms
    timestep: int | None = None     # the simulation step (LAMMPS dumps), if the file has one
    output: str | None = None
    error: str | None = None        # why the frame failed (None: it did not)
    seconds: float = 0.0
    peak_mib: float = 0.0           # peak resident memory of the process that classified it, so far
    cpu_seconds: float = 0.0        # CPU time of that process on this frame (wall time counts other jobs too)


@dataclass
class TrajectoryResult:
    frames: list                    # FrameResult per requested frame, in frame order
    names: list = field(default_factory=list)  # structure type names ("Other" first)
    seconds: float = 0.0            # wall time of the whole run
    colors: dict = field(default_factory=dict)  # structure type name -> colour
    ordering_names: list = field(default_factory=list)  # ordering type names, if asked for ("Other" first)

    @property
    def failed(self) -> list:
        return [f for f in self.frames if f.error is not None]

    @property
    def done(self) -> list:
        return [f for f in self.frames if f.error is None]

    def table(self) -> dict:
        """Columns: frame, timestep, then atoms and fraction per structure type (successful frames),
        and with the ordering the same per ordering type ("ordering <name>")."""
        rows = self.done
        columns = {"frame": [f.frame for f in rows], "timestep": [f.timestep for f in rows]}
        totals = [max(1, sum(f.counts.values())) for f in rows]
        for kind, names, counts in (("", self.names, lambda f: f.counts),
                                    ("ordering ", self.ordering_names, lambda f: f.ordering)):
            for name in names:
                columns[kind + name] = [counts(f).get(name, 0) for f in rows]
            for name in names:
                columns[f"fraction {kind}{name}"] = [counts(f).get(name, 0) / t for f, t in zip(rows, totals)]
        return columns

    def write_table(self, path) -> Path:
        """The per-frame counts as CSV, or Parquet for a ``.parquet`` name (needs pyarrow)."""
        path = Path(path)
        columns = self.table()
        if path.suffix == ".parquet":
            with requires("parquet", "writing a Parquet table (use a .csv name instead)"):
                import pyarrow as pa
                import pyarrow.parquet as pq
            pq.write_table(pa.Table.from_pydict(columns), str(path))
            return path
        import csv

        with open(path, "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(columns)
            writer.writerows(zip(*columns.values()))
        return path

    def plot(self, path) -> Path:
        """A PNG of the fraction of every structure type versus simulation step (or frame)."""
        from .plots import pyplot

        plt = pyplot()
        columns = self.table()
        use_steps = all(t is not None for t in columns["timestep"]) and columns["timestep"]
        x = columns["timestep"] if use_steps else columns["frame"]
        fig, ax = plt.subplots(figsize=(6, 3.8), dpi=120)
        markers = "os^vD<>ph*"
        for k, name in enumerate(self.names):
            color = self.colors.get(name)
            color = (0.55, 0.55, 0.55) if name == "Other" or color is None else color  # OVITO's Other is near-white
            ax.plot(x, columns[f"fraction {name}"], "-", marker=markers[k % len(markers)], markersize=4,
                    label=name, color=color)
        ax.set_xlabel("timestep" if use_steps else "frame")
        ax.set_ylabel("fraction of atoms")
        ax.set_ylim(-0.02, 1.02)
        ax.legend(fontsize=8, ncol=min(4, len(self.names)))
        fig.tight_layout()
        fig.savefig(path)
        plt.close(fig)
        return Path(path)


# ---- reading: which frames a trajectory holds -------------------------------------------------
class TrajectoryError(ValueError):
    """A trajectory that cannot be read at all: no such file, a folder, an empty file, a format
    OVITO does not recognise."""


SCAN_ABORTED = re.compile(r'Scanning of the trajectory file "(?P<file>[^"]*)" aborted prematurely after '
                          r'(?P<frames>\d+) frames? due to an error: "(?P<why>.*)"')


def input_files(inputs) -> list[Path]:
    """The files named by ``inputs`` (a path, a wildcard pattern or a list of them), after checking
    that each exists and is a non-empty file."""
    inputs = [str(p) for p in ([inputs] if isinstance(inputs, (str, os.PathLike)) else inputs)]
    found = {pattern: sorted(glob.glob(pattern)) or ([pattern] if os.path.exists(pattern) else []) for pattern in inputs}
    missing = [pattern for pattern, files in found.items() if not files]
    if missing:
        raise FileNotFoundError(f"No such input file(s): {', '.join(missing)}")
    files = [Path(f) for matches in found.values() for f in matches]
    for path in files:
        if path.is_dir():
            raise TrajectoryError(f"{path}: is a folder; name the trajectory file(s) in it, e.g. '{path}/*.dump'")
        if path.stat().st_size == 0:
            raise TrajectoryError(f"{path}: the file is empty")
    return files


@contextmanager
def _stderr_copied():
    """Yields a list that receives everything written to this process's standard error (file
    descriptor 2) meanwhile, which still reaches the real standard error afterwards. OVITO's C++
    readers report problems there, not through Python."""
    sys.stderr.flush()
    saved = os.dup(2)
    captured = []
    with tempfile.TemporaryFile() as copy:
        os.dup2(copy.fileno(), 2)
        try:
            yield captured
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            copy.seek(0)
            text = copy.read()
            os.write(2, text)
            captured.append(text.decode(errors="replace"))


def scan_trajectory(inputs):
    """OVITO's pipeline over all frames of ``inputs`` (a file, a pattern or a list of files), and
    why OVITO's scan of the frames stopped early (``None`` if it read them all). OVITO stops at a
    frame it cannot parse (truncated, garbled, a wrong atom count) and offers the frames before it
    only; it says so on standard error, which is read here so that the lost frames are reported.
    Asks for the frames scan explicitly: with OVITO 3.17, a file imported after the process has
    rendered an image otherwise reports one frame until a later frame is computed."""
    from ovito.io import import_file

    files = [str(f) for f in input_files(inputs)]
    location = files if len(files) > 1 else files[0]
    with _stderr_copied() as stderr:
        try:
            try:
                pipeline = import_file(location, multiple_frames=True)
            except TypeError:  # a reader without that option; the plain import raises any real error
                pipeline = import_file(location)
            count = pipeline.num_frames
        except RuntimeError as exc:
            reason = " ".join(str(exc).split())
            raise TrajectoryError(f"{files[0] if len(files) == 1 else ', '.join(files)}: OVITO cannot read it "
                                  f"({reason})") from None
    aborted = SCAN_ABORTED.search("".join(stderr))
    problem = None
    if aborted:
        problem = (f"{Path(aborted['file']).name}: OVITO's scan of the file stopped here ({aborted['why']}); this "
                   f"frame and any after it could not be read")
    if count == 0:
        raise TrajectoryError(f"{location}: OVITO finds no frame in it" + (f" ({aborted['why']})" if aborted else ""))
    return pipeline, problem


def open_trajectory(inputs):
    """OVITO's pipeline over all frames of ``inputs`` (see :func:`scan_trajectory`)."""
    return scan_trajectory(inputs)[0]


def parse_frames(spec, count: int) -> list[int]:
    """Frame indices from a list of ints or a text: "all", "5", "0,3,7" or a Python slice
    "start:stop:step" (negative indices allowed). ``ValueError`` naming the accepted forms."""
    if spec is None or (isinstance(spec, str) and spec.strip() == "all"):
        return list(range(count))
    if isinstance(spec, str):
        text = spec.strip()
        try:
            if ":" in text:
                parts = text.split(":")
                if len(parts) > 3:
                    raise ValueError
                step = int(parts[2]) if len(parts) == 3 and parts[2] else None
                if step == 0:
                    raise ValueError
                return list(range(count))[slice(*[int(p) if p else None for p in parts])]
            frames = [int(p) for p in text.split(",")]
        except ValueError:
            raise ValueError(f"frames {spec!r}: use all, N, N,M,... or start:stop:step (step not 0)") from None
    else:
        frames = [int(f) for f in spec]
    bad = [f for f in frames if not -count <= f < count]
    if bad:
        raise ValueError(f"frame(s) {bad} out of range: the input has {count} frame(s)")
    return [f % count for f in frames]


# ---- one frame: the task every path runs --------------------------------------------------
@functools.lru_cache(maxsize=2)
def selection_modifier(select: str):
    """The OVITO modifier that selects the particles ``select`` names: particle type names or ids
    separated by commas ("O", "1,2"), or an OVITO expression ("ParticleType==1 && Position.Z > 10")."""
    from ovito.modifiers import ExpressionSelectionModifier, SelectTypeModifier

    if not select.strip():
        raise ValueError("--select: name particle types (e.g. O or 1,2) or give an OVITO expression")
    names = [t.strip() for t in select.split(",")]
    if all(re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*|\d+", n) for n in names):  # no operator: type names or ids
        types = {int(n) if n.isdigit() else n for n in names}
        return SelectTypeModifier(operate_on="particles", property="Particle Type", types=types)
    return ExpressionSelectionModifier(expression=select)


def _pipeline(inputs: tuple, stamps: tuple, model: str, reject_threshold, device: str, select: str | None = None,
              novelty_threshold: float = 1.0, ordering: bool = False):
    """The pipeline of a trajectory, built once per process (OVITO scans the file once)."""
    from .modifiers import StructureClassifierModifier

    pipeline = open_trajectory(inputs)
    if select:
        pipeline.modifiers.append(selection_modifier(select))
    pipeline.modifiers.append(StructureClassifierModifier(model=model, reject_threshold=reject_threshold,
                                                          device=device, only_selected=bool(select),
                                                          novelty_threshold=novelty_threshold,
                                                          output_ordering=ordering))
    return pipeline


def _stamps(inputs) -> tuple:
    """Modification times of the input files: a changed file is a new pipeline."""
    return tuple(os.stat(p).st_mtime_ns for pattern in inputs for p in sorted(glob.glob(pattern)))


def _peak_mib() -> float:
    try:
        import resource
    except ImportError:  # not on Windows
        return 0.0
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux


def _reason(exc: BaseException) -> str:
    """The exception on one line (OVITO's parse errors say where on the first line, what on the next)."""
    text = " ".join(line.strip() for line in str(exc).strip().splitlines() if line.strip())
    return f"{type(exc).__name__}: {text[:500]}".rstrip(": ")


def type_counts(prop) -> dict:
    """name -> particles of a typed property, in the order of its types."""
    counts = np.bincount(np.asarray(prop), minlength=max(t.id for t in prop.types) + 1)
    return {t.name: int(counts[t.id]) for t in prop.types}


def ptm_counts(data) -> dict:
    """name -> particles of OVITO's PTM (default settings) on a copy of ``data``: the reference
    printed next to a classifier's counts."""
    from ovito.modifiers import PolyhedralTemplateMatchingModifier

    reference = data.clone()
    reference.apply(PolyhedralTemplateMatchingModifier())
    return type_counts(reference.particles["Structure Type"])


def export_frames(pipeline, output: Path, fmt: str, frames: list[int], columns: list[str]) -> None:
    """Write ``frames`` of ``pipeline`` (one, or evenly spaced ones) to ``output`` in OVITO's file
    format ``fmt``, with those of ``columns`` the last computed frame has."""
    from ovito.io import export_file

    particles = pipeline.compute(frames[-1]).particles
    available = [c for c in columns if c.split(".")[0] in particles]
    if len(frames) == 1:
        export_file(pipeline, str(output), fmt, frame=frames[0], columns=available)
    else:
        export_file(pipeline, str(output), fmt, multiple_frames=True, start_frame=frames[0], end_frame=frames[-1],
                    every_nth_frame=max(1, frames[1] - frames[0]), columns=available)


def classify_frame(job: FrameJob) -> FrameResult:
    """Classify one frame and write it if asked; never raises for a bad frame (the error is returned)."""
    started, cpu = time.perf_counter(), time.process_time()
    try:
        from ovito.io import export_file

        pipeline = _pipeline(job.inputs, _stamps(job.inputs), job.model, job.reject_threshold, job.device, job.select,
                             job.novelty_threshold, job.ordering)
        data = pipeline.compute(job.frame)
        counts = type_counts(data.particles["Structure Type"])
        ordering = type_counts(data.particles["Ordering Type"]) if job.ordering else None
        if job.output:
            kwargs = {}
            if job.output_format in TYPE_FORMATS:
                kwargs["columns"] = [c for c in OUTPUT_COLUMNS if c.split(".")[0] in data.particles]
            export_file(data, job.output, job.output_format, **kwargs)
        step = data.attributes.get("Timestep")
        return FrameResult(job.frame, counts, ordering, None if step is None else int(step), job.output,
                           seconds=time.perf_counter() - started, peak_mib=_peak_mib(),
                           cpu_seconds=time.process_time() - cpu)
    except Exception as exc:  # a corrupt frame must not take the others with it
        return FrameResult(job.frame, error=_reason(exc), seconds=time.perf_counter() - started)


# ---- many frames ----------------------------------------------------------------------------
def frame_output(pattern: str, frame: int) -> str:
    """The file of one frame: OVITO's convention, '*' in the name stands for the frame number."""
    return pattern.replace("*", str(frame))


def _progress(total: int, show: bool):
    from tqdm import tqdm

    return tqdm(total=total, desc="classifying", unit="frame", file=sys.stderr, disable=not show or total < 1)


def _run_serial(jobs, show):
    results = []
    with _progress(len(jobs), show) as bar:
        for job in jobs:
            results.append(classify_frame(job))
            bar.update()
    return results


def _run_dask(jobs, client, frames_per_worker, show):
    """Submit the frames with at most ``frames_per_worker`` per worker in flight; gather in
    completion order (as_completed), replacing every finished frame by the next one."""
    with requires("dask", "classifying on Dask (--workers, --scheduler)"):
        import dask
        from distributed import as_completed

    client.register_plugin(OvitoProcess())
    workers = max(1, len(client.nthreads()))
    queue = iter(jobs)
    frame_of = {}

    def submit(job):
        with dask.annotate(executor=EXECUTOR):
            future = client.submit(classify_frame, job, pure=False, key=f"mlclass-frame-{job.frame}-{id(jobs)}")
        frame_of[future.key] = job.frame
        return future

    pending = as_completed([submit(job) for job in itertools.islice(queue, workers * frames_per_worker)])
    results = []
    with _progress(len(jobs), show) as bar:
        for future in pending:
            try:
                results.append(future.result())
            except Exception as exc:  # the task itself died (e.g. a worker killed while reading the frame)
                results.append(FrameResult(frame_of[future.key], error=_reason(exc)))
            future.release()
            bar.update()
            job = next(queue, None)
            if job is not None:
                pending.add(submit(job))
    return results


class _Respawning(Executor):
    """A one-process pool that starts a new process if the last one died (a crash in a frame
    must cost that frame only)."""

    def __init__(self):
        self._pool = None

    def submit(self, fn, /, *args, **kwargs):
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        if self._pool is None or getattr(self._pool, "_broken", False):
            # spawn: a fresh interpreter whose main thread imports OVITO
            self._pool = ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"))
        return self._pool.submit(fn, *args, **kwargs)

    def shutdown(self, wait=True, **kwargs):
        if self._pool is not None:
            self._pool.shutdown(wait=wait, **kwargs)


class OvitoProcess(WorkerPlugin):
    """Gives every Dask worker an executor named ``ovito``: one persistent child process in whose
    main thread OVITO runs, keeping the pipeline and the model between frames. Workers must be
    allowed children: ``distributed.worker.daemon: False`` (set for the LocalCluster; for a
    cluster of your own, start the workers with ``DASK_DISTRIBUTED__WORKER__DAEMON=False``)."""

    name = "ovito-mlclass-process"

    def setup(self, worker):
        worker.executors[EXECUTOR] = _Respawning()


def _client(workers: int, scheduler: str | None):
    """A Dask client: to ``scheduler`` if given, else to a new LocalCluster of ``workers``
    single-threaded processes (the classifier is not limited by the GIL, but OVITO and torch each
    keep their own thread pools: one thread per process avoids oversubscription). The local
    cluster listens on the loopback interface only, on free ports (its scheduler always serves
    HTTP: on port 8787 unless told otherwise, which another program may hold)."""
    with requires("dask", "classifying on Dask (--workers, --scheduler)"):
        import dask
        from distributed import Client, LocalCluster

    if scheduler:
        return Client(scheduler), None
    with dask.config.set({"distributed.worker.daemon": False}):  # workers start their OVITO process
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                               dashboard_address="127.0.0.1:0")
    return Client(cluster), cluster


def _join(parts: list, output: Path, fmt: str) -> None:
    """One multi-frame file from per-frame files of the same format."""
    if fmt in CONCATENABLE:
        with open(output, "wb") as target:
            for part in parts:
                with open(part, "rb") as source:
                    shutil.copyfileobj(source, target)
        return
    from ovito.io import export_file

    export_file(open_trajectory(parts), str(output), fmt, multiple_frames=True)


def classify_trajectory(inputs, model: str = DEFAULT_MODEL, *, frames=None, reject_threshold: float | None = None,
                        device: str = "auto", output=None, output_format: str | None = None, workers: int = 0,
                        scheduler: str | None = None, frames_per_worker: int = 2, select: str | None = None,
                        novelty_threshold: float = 1.0, ordering: bool = False, progress: bool = True
                        ) -> TrajectoryResult:
    """Classify the ``frames`` (default all; a list or a text as :func:`parse_frames` reads it) of
    the trajectory ``inputs`` (a file, a wildcard
    pattern or a list of files, as OVITO's ``import_file`` takes them) with ``model`` (a built-in
    name or a model file; loaded models do not travel to workers).

    ``workers = 0`` and no ``scheduler``: serial, in this process. ``workers = N``: a Dask
    LocalCluster of N processes; ``scheduler``: the address of a running Dask scheduler (whose
    workers must reach the input and output paths). ``output``: a name with '*' writes one file per
    frame ('*' = frame number); any other name one multi-frame file (for several frames), both in
    ``output_format`` (one that holds the structure types; default from the suffix). ``select``:
    classify only these particles (type names or ids, or an OVITO expression:
    :func:`selection_modifier`); the others are Other. ``ordering``: also the chemical ordering of
    two-species crystals (``Ordering Type``, PTM's ids; counted per frame, written to the output).
    Failed frames are in
    :attr:`TrajectoryResult.failed`, with their index and the reason.
    """

    started = time.perf_counter()
    inputs = tuple(str(p) for p in ([inputs] if isinstance(inputs, (str, os.PathLike)) else inputs))
    input_files(inputs)
    if not isinstance(model, (str, os.PathLike)):
        raise TypeError("classify_trajectory takes a model name or file (workers load it themselves).")
    if not isinstance(workers, int) or isinstance(workers, bool) or workers < 0:
        raise ValueError(f"workers must be a number of processes >= 0 (0: serial), got {workers!r}")
    if frames_per_worker < 1:
        raise ValueError(f"frames_per_worker must be at least 1, got {frames_per_worker!r}")
    if reject_threshold is not None and not 0.0 <= float(reject_threshold) <= 1.0:
        raise ValueError(f"The reject threshold must lie in [0, 1], got {reject_threshold}.")
    if not float(novelty_threshold) > 0:
        raise ValueError(f"The novelty threshold must be positive (1: the model's own), got {novelty_threshold}.")
    model = str(model)
    from .model import load_model, resolve_device

    resolve_device(device)  # a bad device is an error here, not one per frame
    load_model(model, "cpu")  # likewise a missing or broken model file
    pipeline, unreadable = scan_trajectory(inputs)
    count = pipeline.num_frames
    frames = parse_frames(frames, count)
    output = None if output is None else Path(output)
    per_frame = output is not None and ("*" in output.name or len(frames) == 1)
    if output is not None:
        output_format = output_format or output_format_of(output)
        check_output_format(output_format)
        check_output_folder(output)
        output.parent.mkdir(parents=True, exist_ok=True)
        parts_dir = None if per_frame else output.parent / f".{output.name}.parts"
        if parts_dir is not None:
            parts_dir.mkdir(exist_ok=True)

    def target(frame):
        if output is None:
            return None
        if per_frame:
            return str(output) if len(frames) == 1 and "*" not in output.name else frame_output(str(output), frame)
        return str(parts_dir / f"frame{frame:08d}{output.suffix}")

    if select:  # checked on the first frame, before the work
        probe = open_trajectory(inputs)
        probe.modifiers.append(selection_modifier(select))
        chosen = probe.compute(frames[0] if frames else 0).particles["Selection"]
        if not np.asarray(chosen).any():
            raise ValueError(f"--select {select!r} selects no particle in frame {frames[0] if frames else 0}.")
    jobs = [FrameJob(inputs, f, model, reject_threshold, device, target(f), output_format, select, novelty_threshold,
                     bool(ordering)) for f in frames]
    if workers or scheduler:
        client, cluster = _client(workers, scheduler)
        try:
            results = _run_dask(jobs, client, frames_per_worker, progress)
        finally:
            client.close()
            if cluster is not None:
                cluster.close()
    else:
        results = _run_serial(jobs, progress)
    results.sort(key=lambda r: r.frame)
    if output is not None and not per_frame:
        parts = [r.output for r in results if r.error is None]
        if parts:
            _join(parts, output, output_format)
        shutil.rmtree(parts_dir, ignore_errors=True)
        for r in results:
            r.output = str(output) if r.error is None else None
    if unreadable:  # the frames OVITO's scan could not reach: one failed entry, after the frames it found
        results.append(FrameResult(count, error=unreadable))
    names = next((list(r.counts) for r in results if r.counts), [])
    ordering_names = next((list(r.ordering) for r in results if r.ordering), [])
    kinds = load_model(model, "cpu").structure_types
    colors = dict(zip(kinds.all_names, kinds.all_colors))
    return TrajectoryResult(results, names, time.perf_counter() - started, colors, ordering_names)


SUFFIX_FORMATS = {".dump": "lammps/dump", ".lammpstrj": "lammps/dump", ".xyz": "xyz", ".extxyz": "xyz",
                  ".imd": "imd", ".nc": "netcdf/amber"}


def check_output_format(fmt: str) -> None:
    """``ValueError`` unless OVITO's output format ``fmt`` can hold the structure types."""
    if fmt not in TYPE_FORMATS:
        raise ValueError(f"The {fmt} format cannot hold the structure types; write one of "
                         f"{', '.join(TYPE_FORMATS)} ({', '.join(SUFFIX_FORMATS)}).")


def check_output_folder(output: Path) -> None:
    """``ValueError`` if ``output`` cannot be written because a file stands where a folder must be."""
    for parent in output.parents:
        if parent.exists():
            if not parent.is_dir():
                raise ValueError(f"{output}: cannot write there, {parent} is a file, not a folder")
            break


def output_format_of(path) -> str:
    """OVITO's export format name for an output file name."""
    suffix = Path(path).suffix.lower()
    if suffix not in SUFFIX_FORMATS:
        raise ValueError(f"Cannot tell the output format from {Path(path).name!r}: use a suffix among "
                         f"{', '.join(SUFFIX_FORMATS)} (the formats that hold the structure types), or name the "
                         f"OVITO format (e.g. 'lammps/dump').")
    return SUFFIX_FORMATS[suffix]
