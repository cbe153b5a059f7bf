#!/usr/bin/env python
"""Descriptor benchmark: ovito_mlclass vs. OVITO, freud and dscribe.

Usage::

    python benchmarks/bench_descriptors.py [--threads 1 2] [--quick] [--only PATTERN ...]

Every measurement runs in its own fresh subprocess (``--child``), with the
thread count enforced through environment variables set by the parent
(``OVITO_THREAD_COUNT``, ``OMP_NUM_THREADS``, ``NUMBA_NUM_THREADS``, BLAS
variables) and, for freud, ``freud.parallel.set_num_threads``; dscribe gets
``n_jobs=threads`` (it spawns processes, not threads).  The child prints one
JSON line prefixed with ``@@RESULT@@``; the parent collects them and writes
``benchmarks/RESULTS.md``.  A failing or timed-out child is reported in the
table and never aborts the run.
"""
from __future__ import annotations

import argparse
import datetime as _dt
import fnmatch
import json
import os
import platform
import signal
import subprocess
import sys
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
MARK = "@@RESULT@@"

LATTICE = 3.615          # Cu fcc lattice constant (Angstrom)
SIGMA = 0.1              # Gaussian displacement per Cartesian component (Angstrom)
SEED = 12345
WARM_CELLS = 4           # warm-up system: 4x4x4 fcc cells = 256 atoms, box 14.46 A > 2 * 6 A

DEGREES = list(range(2, 13))
NN = 12
CUTOFF_B = 3.0
SF_CUTOFF = 6.0
# G2: r_s = 0, eta geometric in 1/A^2 so that exp(-eta r^2) spans the 1st shell (2.56 A) .. cutoff (6 A)
G2 = [(eta, 0.0) for eta in (0.005, 0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64)]
# G4: (eta [1/A^2], zeta, lambda)
G4 = [(eta, zeta, lam) for eta in (0.005, 0.05) for zeta in (1.0, 4.0) for lam in (1.0, -1.0)]

DSCRIBE_MAX_S = 600.0    # if dscribe's estimated single run at full size exceeds this, keep the 20k result


# --------------------------------------------------------------------------------------
# Benchmark definitions
# --------------------------------------------------------------------------------------
def cells_for(n_atoms: int) -> int:
    """Number of fcc unit cells per box edge giving ~n_atoms atoms (4 atoms per cell)."""
    return max(3, int(round((n_atoms / 4.0) ** (1.0 / 3.0))))


def make_specs(quick: bool):
    f = 20 if quick else 1
    nA, nC1, nC2, nD = 1_000_000 // f, 32_000 // f, 500_000 // f, 100_000 // f
    S = []

    def add(row, tool, kind, n, peer_of=None, label=None, **params):
        S.append(dict(id=f"{row}-{tool}" + (f"-{n}" if row == "C" else ""), row=row, tool=tool,
                      kind=kind, cells=cells_for(n), params=params, label=label or tool))

    add("A", "ovito", "ovito_steinhardt", nA, mode="nn", label="OVITO SteinhardtParametersModifier (12 NN)")
    add("A", "freud", "freud_steinhardt", nA, mode="nn", label="freud Steinhardt (12 NN)")
    add("A", "ours", "ours_steinhardt", nA, mode="nn", label="ovito_mlclass SteinhardtModifier (12 NN, wl)")
    add("A", "ours-q", "ours_steinhardt", nA, mode="nn", wl=False,
        label="ovito_mlclass SteinhardtModifier (12 NN, q and qbar only, like OVITO)")
    add("A", "finder", "ovito_nnfinder", nA, label="OVITO NearestNeighborFinder(12).find_all()")
    add("A", "finder-ours", "ours_nnfinder", nA, label="ovito_mlclass.neighbors.nearest_neighbors(data, 12)")
    add("B", "ovito", "ovito_steinhardt", nA, mode="cutoff", label="OVITO SteinhardtParametersModifier (r<3.0)")
    add("B", "freud", "freud_steinhardt", nA, mode="cutoff", label="freud Steinhardt (r_max=3.0)")
    add("B", "ours", "ours_steinhardt", nA, mode="cutoff", label="ovito_mlclass SteinhardtModifier (r<3.0, wl)")
    add("B", "ours-q", "ours_steinhardt", nA, mode="cutoff", wl=False,
        label="ovito_mlclass SteinhardtModifier (r<3.0, q and qbar only, like OVITO)")
    add("B", "finder", "ovito_cutfinder", nA, label="OVITO CutoffNeighborFinder(3.0).find_all()")
    add("B", "finder-ours", "ours_cutfinder", nA, label="ovito_mlclass.neighbors.cutoff_neighbors(data, 3.0)")
    for n in (nC1, nC2):
        add("C", "ovito", "ovito_steinhardt", n, mode="voronoi", label="OVITO SteinhardtParametersModifier (Voronoi)")
        add("C", "ours", "ours_steinhardt", n, mode="voronoi", label="ovito_mlclass SteinhardtModifier (Voronoi, wl)")
        add("C", "voro", "ovito_voronoi", n, label="OVITO VoronoiAnalysisModifier(generate_bonds=True)")
    add("D", "dscribe", "dscribe_acsf", nD, label="dscribe ACSF (8 G2 + 8 G4)")
    add("D", "ours", "ours_sf", nD, label="ovito_mlclass SymmetryFunctionsModifier (8 G2 + 8 G4)")
    return S


# --------------------------------------------------------------------------------------
# Child side
# --------------------------------------------------------------------------------------
def _rss_kib() -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return -1


def make_positions(ncell: int, seed: int = SEED):
    """Thermally disordered fcc crystal in an orthogonal periodic box [0, L)^3."""
    import numpy as np
    basis = np.array([[0, 0, 0], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]])
    i = np.arange(ncell, dtype=np.float64)
    grid = np.stack(np.meshgrid(i, i, i, indexing="ij"), axis=-1).reshape(-1, 1, 3)
    pos = ((grid + basis[None]) * LATTICE).reshape(-1, 3)
    del grid
    rng = np.random.default_rng(seed)
    pos += rng.normal(0.0, SIGMA, size=pos.shape)
    L = ncell * LATTICE
    np.mod(pos, L, out=pos)
    pos[pos >= L] = 0.0  # guard against round-up of tiny negatives
    return pos, L


def make_ovito_data(ncell: int):
    import numpy as np
    from ovito.data import DataCollection
    pos, L = make_positions(ncell)
    data = DataCollection()
    data.create_cell(np.array([[L, 0, 0, 0], [0, L, 0, 0], [0, 0, L, 0]], dtype=float), pbc=(True, True, True))
    parts = data.create_particles(count=len(pos))
    parts.create_property("Position", data=pos)
    return data, len(pos)


def _ovito_steinhardt_modifier(mode):
    from ovito.modifiers import SteinhardtParametersModifier as S
    m = S(max_l=12, compute_averaged=True)
    if mode == "nn":
        m.neighbor_mode = S.NeighborMode.NearestNeighbors
        m.num_neighbors = NN
    elif mode == "cutoff":
        m.neighbor_mode = S.NeighborMode.Cutoff
        m.cutoff = CUTOFF_B
    else:
        m.neighbor_mode = S.NeighborMode.Voronoi
    return m


def _q6_check(arr, names=None):
    import numpy as np
    a = np.asarray(arr)
    col = DEGREES.index(6)
    if names is not None and "q6" in names:
        col = list(names).index("q6")
    return f"<q̄6>={a[:, col].mean():.4f}"


def setup_and_step(kind, ncell, params, threads):
    """Returns (n_atoms, step) where step() performs one timed repetition and returns a check string.

    Everything outside step() (data generation, building input objects) is not timed."""
    import numpy as np

    if kind == "ovito_steinhardt":
        from ovito.pipeline import Pipeline, StaticSource
        data, n = make_ovito_data(ncell)

        def step():
            pl = Pipeline(source=StaticSource(data=data))
            pl.modifiers.append(_ovito_steinhardt_modifier(params["mode"]))
            out = pl.compute()
            p = out.particles["Smooth Steinhardt"]
            return _q6_check(p, p.component_names)
        return n, step

    if kind == "ovito_voronoi":
        from ovito.pipeline import Pipeline, StaticSource
        from ovito.modifiers import VoronoiAnalysisModifier
        data, n = make_ovito_data(ncell)

        def step():
            pl = Pipeline(source=StaticSource(data=data))
            pl.modifiers.append(VoronoiAnalysisModifier(generate_bonds=True))
            out = pl.compute()
            return f"bonds/atom={out.particles.bonds.count / out.particles.count:.2f}"
        return n, step

    if kind == "ovito_nnfinder":
        from ovito.data import NearestNeighborFinder
        data, n = make_ovito_data(ncell)

        def step():
            idx, vec = NearestNeighborFinder(NN, data).find_all()
            return f"idx{tuple(idx.shape)}"
        return n, step

    if kind == "ovito_cutfinder":
        from ovito.data import CutoffNeighborFinder
        data, n = make_ovito_data(ncell)

        def step():
            pairs, vec = CutoffNeighborFinder(CUTOFF_B, data).find_all()
            return f"pairs/atom={len(pairs) / n:.2f}"
        return n, step

    if kind in ("ours_nnfinder", "ours_cutfinder"):
        neighbors = import_ours().neighbors
        data, n = make_ovito_data(ncell)

        def step():
            if kind == "ours_nnfinder":
                return f"bonds/atom={neighbors.nearest_neighbors(data, NN).counts.mean():.2f}"
            return f"pairs/atom={neighbors.cutoff_neighbors(data, CUTOFF_B).offsets[-1] / n:.2f}"
        return n, step

    if kind == "freud_steinhardt":
        import freud
        freud.parallel.set_num_threads(threads)
        pos, L = make_positions(ncell)
        pos -= 0.5 * L                      # freud boxes are centred at the origin
        pos = np.ascontiguousarray(pos, dtype=np.float32)
        box = freud.box.Box.cube(L)
        neigh = {"num_neighbors": NN} if params["mode"] == "nn" else {"r_max": CUTOFF_B}

        def step():
            st = freud.order.Steinhardt(l=DEGREES, average=True)
            st.compute(system=(box, pos), neighbors=neigh)  # builds freud's AABB query internally
            return _q6_check(st.particle_order)
        return len(pos), step

    if kind == "dscribe_acsf":
        import ase
        from dscribe.descriptors import ACSF
        pos, L = make_positions(ncell)
        atoms = ase.Atoms(numbers=np.full(len(pos), 29), positions=pos, cell=[L, L, L], pbc=True)

        def step():
            acsf = ACSF(r_cut=SF_CUTOFF, g2_params=[list(p) for p in G2],
                        g4_params=[list(p) for p in G4], species=["Cu"], periodic=True)
            if threads == 1:
                out = acsf.create(atoms, n_jobs=1)
                return f"shape{tuple(out.shape)}"
            # dscribe parallelises over *systems* only (one job per system), so a single Atoms object
            # would run serially: split the centres into `threads` chunks of the same system instead.
            chunks = [c.tolist() for c in np.array_split(np.arange(len(atoms)), threads)]
            out = acsf.create([atoms] * threads, centers=chunks, n_jobs=threads)
            rows = sum(len(o) for o in out)
            return f"{rows} x {out[0].shape[-1]} (centres split in {threads} chunks)"
        return len(pos), step

    if kind in ("ours_steinhardt", "ours_sf"):
        ovito_mlclass = import_ours()
        data, n = make_ovito_data(ncell)
        if kind == "ours_steinhardt":
            mode = params["mode"]
            if mode == "nn":
                kw = dict(neighbors=NN)
            elif mode == "cutoff":
                kw = dict(cutoff=CUTOFF_B)
            else:
                kw = dict(neighbor_mode="voronoi")
            wl = params.get("wl", True)
            make = lambda: ovito_mlclass.SteinhardtModifier(degrees=range(2, 13), averaged=True, wl=wl, **kw)
            prop = "Steinhardt Descriptors"
        else:
            make = lambda: ovito_mlclass.SymmetryFunctionsModifier(cutoff=SF_CUTOFF, g2=list(G2), g4=list(G4))
            prop = "Symmetry Functions"

        def step():
            d = data.clone()        # data.apply() works in place; cloning is copy-on-write (cheap)
            d.apply(make())
            arr = np.asarray(d.particles[prop])
            return f"'{prop}' shape{tuple(arr.shape)}"
        return n, step

    raise ValueError(f"unknown kind {kind!r}")


class NotAvailable(Exception):
    pass


def import_ours():
    """Import ovito_mlclass; an empty namespace package (directory being written) counts as not available."""
    try:
        import ovito_mlclass
    except Exception as exc:  # noqa: BLE001
        raise NotAvailable(f"import ovito_mlclass failed: {type(exc).__name__}: {exc}")
    if getattr(ovito_mlclass, "__file__", None) is None:
        raise NotAvailable("ovito_mlclass is only an empty namespace package (no __init__.py yet)")
    return ovito_mlclass


def _os_threads():
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("Threads:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def _busy_cpu_seconds():
    """System-wide busy CPU seconds from /proc/stat (all processes)."""
    try:
        with open("/proc/stat") as fh:
            v = [int(x) for x in fh.readline().split()[1:]]
        idle = v[3] + (v[4] if len(v) > 4 else 0)
        return (sum(v[:8]) - idle) / os.sysconf("SC_CLK_TCK")
    except Exception:  # noqa: BLE001
        return None


def child_main(spec_json: str):
    spec = json.loads(spec_json)
    res = dict(id=spec["id"], status="error")
    try:
        import resource
        threads = int(spec["threads"])
        # Warm-up on a tiny system (imports, numba JIT, OVITO plugin loading, first-touch allocations).
        _, wstep = setup_and_step(spec["kind"], WARM_CELLS, spec["params"], threads)
        wstep()
        del wstep
        n, step = setup_and_step(spec["kind"], spec["cells"], spec["params"], threads)
        import gc
        gc.collect()
        base_rss = _rss_kib()
        peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        ch_before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        times, cpus, others, check = [], [], [], ""
        for _ in range(int(spec["reps"])):
            r0s, r0c = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
            b0 = _busy_cpu_seconds()
            t0 = time.perf_counter()
            check = step()
            dt = time.perf_counter() - t0
            b1 = _busy_cpu_seconds()
            r1s, r1c = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
            cpu = sum(getattr(b, f) - getattr(a, f) for a, b in ((r0s, r1s), (r0c, r1c))
                      for f in ("ru_utime", "ru_stime"))
            times.append(dt)
            cpus.append(cpu)
            # CPU used by *other* processes on the machine during the step (in cores); for dscribe with
            # n_jobs>1 the (unreaped) worker processes show up here too.
            others.append(None if b0 is None else max(0.0, (b1 - b0 - cpu) / dt))
            gc.collect()
        os_threads = _os_threads()  # thread pools are still alive right after the step
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        ch_peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        best = min(range(len(times)), key=times.__getitem__)
        res.update(status="ok", n_atoms=n, times=times, best=times[best], cpu_util=cpus[best] / times[best],
                   other_load=others[best], os_threads=os_threads,
                   base_rss_kib=base_rss, peak_before_kib=peak_before, peak_kib=peak,
                   child_peak_kib=ch_peak if ch_peak > ch_before else None, check=check)
    except NotAvailable as exc:
        res.update(status="n/a", error=str(exc))
    except BaseException as exc:  # noqa: BLE001
        tb = traceback.format_exc(limit=4)
        res.update(status="error", error=f"{type(exc).__name__}: {exc}", traceback=tb)
    sys.stdout.flush()
    print(MARK + json.dumps(res), flush=True)


# --------------------------------------------------------------------------------------
# Parent side
# --------------------------------------------------------------------------------------
def thread_env(threads: int):
    env = dict(os.environ)
    t = str(threads)
    env.update(OVITO_THREAD_COUNT=t, OMP_NUM_THREADS=t, NUMBA_NUM_THREADS=t, OPENBLAS_NUM_THREADS=t,
               MKL_NUM_THREADS=t, VECLIB_MAXIMUM_THREADS=t, NUMEXPR_NUM_THREADS=t)
    env.setdefault("PYTHONUNBUFFERED", "1")
    if EXTRA_PYTHONPATH:
        env["PYTHONPATH"] = EXTRA_PYTHONPATH + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


SMALL_ATOMS = 50_000
SMALL_REPS = 5
# Steps of a few seconds (all but freud, dscribe and OVITO's Voronoi mode) get at least FAST_REPS:
# single runs of the 1M-atom steps vary by up to 0.5 s on this VM (first touches of fresh memory,
# e.g. the kernel's direct compaction for huge pages), as much as a 2x ratio can bear.
FAST_REPS = 4
SLOW_KINDS = ("freud_steinhardt", "dscribe_acsf")


def reps_for(spec, reps):
    """Small systems (under a second per step) get at least SMALL_REPS repetitions: a fraction of
    a second is where the shared machine's noise weighs most, and five more cost little; steps of
    a few seconds at least FAST_REPS."""
    if 4 * spec["cells"] ** 3 < SMALL_ATOMS:
        return max(reps, SMALL_REPS)
    slow = spec["kind"] in SLOW_KINDS or (spec["kind"] == "ovito_steinhardt" and spec["params"].get("mode") == "voronoi")
    return reps if slow else max(reps, FAST_REPS)


def run_child(spec, threads, reps, timeout):
    spec = dict(spec, threads=threads, reps=reps)
    cmd = [sys.executable, os.path.abspath(__file__), "--child", json.dumps(spec)]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=thread_env(threads), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)   # kills the child and any worker processes it spawned
        except ProcessLookupError:
            pass
        proc.communicate()
        return dict(id=spec["id"], status="timeout", error=f"> {timeout:.0f} s (child killed)",
                    threads=threads, elapsed=time.perf_counter() - t0)
    res = None
    for line in out.splitlines():
        if line.startswith(MARK):
            res = json.loads(line[len(MARK):])
    if res is None:
        tail = (err or out or "").strip().splitlines()[-3:]
        res = dict(id=spec["id"], status="error",
                   error=f"child exited with code {proc.returncode} without result: " + " | ".join(tail))
    res["threads"] = threads
    res["elapsed"] = time.perf_counter() - t0
    if res.get("status") == "error" and res.get("traceback"):
        sys.stderr.write(f"--- {spec['id']} (threads={threads}) failed:\n{res['traceback']}\n")
    return res


def pkg_version(name):
    try:
        from importlib.metadata import version
        return version(name)
    except Exception:  # noqa: BLE001
        return "not installed"


EXTRA_PYTHONPATH = None  # set by ours_status() if ovito_mlclass is only importable from the source tree


def ours_status():
    """Check importability in a subprocess with exactly the children's sys.path / cwd.

    First as installed (venv); if that fails, with the repository root prepended to PYTHONPATH
    (in-tree build). Children then get the same PYTHONPATH."""
    global EXTRA_PYTHONPATH
    first = None
    for extra in (None, os.path.dirname(HERE)):
        env = dict(os.environ)
        if extra:
            env["PYTHONPATH"] = extra + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        r = subprocess.run([sys.executable, os.path.abspath(__file__), "--probe-ours"],
                           capture_output=True, text=True, timeout=300, env=env)
        lines = r.stdout.strip().splitlines()
        if r.returncode == 0 and lines:
            EXTRA_PYTHONPATH = extra
            return True, lines[-1] + (f" [via PYTHONPATH={extra}]" if extra else "")
        if first is None:
            first = (lines or (r.stderr.strip().splitlines() or ["?"]))[-1]
    return False, first


def probe_ours_main():
    try:
        m = import_ours()
    except NotAvailable as exc:
        print(exc)
        sys.exit(1)
    print(f"{getattr(m, '__version__', '?')} ({os.path.dirname(m.__file__)})")


def machine_info():
    model, cores = "unknown", os.cpu_count()
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    ram = "unknown"
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemTotal:"):
                    ram = f"{int(line.split()[1]) / 1024**2:.1f} GiB"
    except OSError:
        pass
    try:
        aff = len(os.sched_getaffinity(0))
    except AttributeError:
        aff = cores
    try:
        with open("/proc/loadavg") as fh:
            load = " ".join(fh.read().split()[:3])
    except OSError:
        load = "unknown"
    return dict(cpu=model, logical_cpus=cores, usable_cpus=aff, ram=ram, loadavg_at_start=load,
                os=f"{platform.system()} {platform.release()}", python=platform.python_version())


def mib(kib):
    return None if kib is None else kib / 1024.0


def fmt(x, spec=".2f", none="–"):
    return none if x is None else format(x, spec)


def ratio_note(r, results):
    """Human-readable comparison of one result against the peers of its row (same threads, same N)."""
    if r.get("status") != "ok":
        return ""
    same = {x["id"]: x for x in results if x["threads"] == r["threads"] and x.get("status") == "ok"
            and x.get("n_atoms") == r.get("n_atoms")}
    row = r["id"].split("-")[0]
    suffix = r["id"][len(row) + 1:]
    tool, tail = (suffix.rsplit("-", 1)[0], "-" + suffix.rsplit("-", 1)[1]) if row == "C" else (suffix, "")

    def peer(t):
        return same.get(f"{row}-{t}{tail}")
    notes = []
    if tool.startswith("ours"):
        for t, name in (("ovito", "OVITO"), ("freud", "freud"), ("dscribe", "dscribe")):
            p = peer(t)
            if p:
                notes.append(f"{r['best'] / p['best']:.2f}× {name} time")
    elif tool == "freud":
        p = peer("ovito")
        if p:
            notes.append(f"{r['best'] / p['best']:.2f}× OVITO time")
    elif tool == "finder-ours":
        p = peer("finder")
        if p:
            notes.append(f"{r['best'] / p['best']:.2f}× OVITO finder time")
        p = peer("ovito")
        if p:
            notes.append(f"{100 * r['best'] / p['best']:.0f}% of OVITO Steinhardt time")
    elif tool in ("finder", "voro"):
        p = peer("ovito")
        if p:
            notes.append(f"{100 * r['best'] / p['best']:.0f}% of OVITO Steinhardt time")
    return "; ".join(notes)


def write_results(path, args, results, specs, minfo, versions, ours_ok, ours_msg, wall_total):
    by_id = {s["id"]: s for s in specs}
    L = []
    L.append("# Descriptor benchmark results\n")
    L.append(f"Generated by `python benchmarks/bench_descriptors.py {' '.join(sys.argv[1:])}` on "
             f"{_dt.datetime.now().astimezone().strftime('%Y-%m-%d %H:%M %Z')} "
             f"(total harness wall time {wall_total / 60:.1f} min).\n")
    if args.quick:
        L.append("**`--quick` smoke test: every system is ~20× smaller than the nominal size. "
                 "Numbers are not representative.**\n")
    if args.only:
        L.append(f"**Subset run: only rows matching {args.only}.**\n")
    L.append("## Machine\n")
    L.append(f"- CPU: {minfo['cpu']}; {minfo['logical_cpus']} logical CPUs "
             f"({minfo['usable_cpus']} usable by this process)")
    L.append(f"- RAM: {minfo['ram']}; load average (1/5/15 min) when the run started: {minfo['loadavg_at_start']}")
    L.append(f"- OS: {minfo['os']}; Python {minfo['python']}\n")
    L.append("## Package versions\n")
    for k, v in versions.items():
        L.append(f"- {k}: {v}")
    L.append(f"- ovito_mlclass: {'importable, version ' + ours_msg if ours_ok else 'NOT importable (' + ours_msg + ')'}\n")

    L.append("## Method\n")
    L.append(f"- Input: fcc Cu, a = {LATTICE} Å, n×n×n unit cells (4 atoms each), Gaussian displacements "
             f"σ = {SIGMA} Å per component (numpy seed {SEED}), periodic orthogonal box; generated in the child "
             "process and handed to OVITO as an `ovito.data.DataCollection`, to freud as `(Box.cube(L), points)` "
             "(shifted to the origin-centred box, float32), to dscribe as `ase.Atoms`.")
    L.append("- Each table entry is a fresh subprocess. In it: warm-up of the same step on a 256-atom system "
             f"(imports, JIT, plugin loading), input generation (not timed), then {args.reps} timed repetitions of the "
             f"step ({SMALL_REPS} for every tool on systems under {SMALL_ATOMS:,} atoms, except dscribe's probe; at "
             f"least {FAST_REPS} for the steps of a few seconds, i.e. all but freud, dscribe and OVITO's Voronoi mode); the "
             "best wall time is reported (`reps` lists all).")
    L.append("- Timed step: OVITO modifiers — new `Pipeline(source=StaticSource(data))` + `pipeline.compute()` "
             "(includes OVITO's neighbour search); freud — new `Steinhardt` + `compute(system, neighbors=...)` "
             "(includes freud's AABB query); dscribe — new `ACSF` + `create(atoms, n_jobs=threads)`; "
             "ovito_mlclass — `data.clone().apply(modifier)`; OVITO finders — constructor + `find_all()`; "
             "our finders (`finder-ours`) — `ovito_mlclass.neighbors.nearest_neighbors` / `cutoff_neighbors` "
             "(CSR result).")
    L.append("- Threads: every child gets `OVITO_THREAD_COUNT`, `OMP_NUM_THREADS`, `NUMBA_NUM_THREADS` and the BLAS "
             "variables set to the thread count; freud additionally `freud.parallel.set_num_threads(n)`; dscribe "
             "`n_jobs=n` (worker *processes*). `CPU/wall` = (user+sys CPU time of the child and its reaped children) / "
             "wall time of the best repetition; `CPU µs/atom` = that CPU time per atom, less sensitive than wall time "
             "to other processes competing for the cores (dscribe n_jobs>1: workers not included) — it shows how many cores were actually busy, i.e. checks that the "
             "thread limit is honoured (≤ threads). `other load` = CPU cores busy with *other* processes on the machine "
             "during that repetition (system-wide /proc/stat busy time minus the child's own CPU time, per wall "
             "second); if it is not ≈ 0 the machine was shared and the timing is pessimistic (for dscribe with "
             "n_jobs>1 the unreaped worker processes are counted here). `OS threads` = threads of the child process "
             "right after the step (main thread + live pool workers; dscribe workers are separate processes).")
    L.append("- Memory: `baseline` = VmRSS of the child right before the first timed repetition (input data already "
             "built); `peak` = `ru_maxrss` (RUSAGE_SELF) after the repetitions; `Δ` = peak − baseline ≈ the extra "
             "memory the step needs. If the pre-step maximum already exceeded the step's peak, Δ is marked `≤`. "
             "For dscribe with n_jobs>1 the worker processes' memory is not included in RUSAGE_SELF.")
    L.append("- `vs peers`: ratio of best wall times at the same thread count and system size "
             "(ovito_mlclass rows: < 1 means ovito_mlclass is faster).\n")

    L.append("## Peer parameters\n")
    L.append(f"- **A** (nearest neighbours): OVITO `SteinhardtParametersModifier(neighbor_mode=NearestNeighbors, "
             f"num_neighbors={NN}, max_l=12, compute_averaged=True)` (computes q_l and q̄_l, l = 2..12); "
             f"freud `Steinhardt(l=range(2,13), average=True)` with `neighbors={{'num_neighbors': {NN}}}` (q̄_l only); "
             f"ours `SteinhardtModifier(degrees=range(2,13), neighbors={NN}, averaged=True, wl=True)` (also w_l); "
             f"`NearestNeighborFinder({NN}, data).find_all()`.")
    L.append(f"- **B** (cutoff {CUTOFF_B} Å, between the 1st (2.556 Å) and 2nd (3.615 Å) shells): OVITO "
             f"`neighbor_mode=Cutoff, cutoff={CUTOFF_B}`; freud `neighbors={{'r_max': {CUTOFF_B}}}`; ours "
             f"`SteinhardtModifier(degrees=range(2,13), cutoff={CUTOFF_B}, averaged=True, wl=True)`; "
             f"`CutoffNeighborFinder({CUTOFF_B}, data).find_all()`.")
    L.append("- **C** (Voronoi-weighted): OVITO `SteinhardtParametersModifier(neighbor_mode=Voronoi, max_l=12, "
             "compute_averaged=True)`; ours `SteinhardtModifier(degrees=range(2,13), neighbor_mode='voronoi', "
             "averaged=True, wl=True)`; OVITO `VoronoiAnalysisModifier(generate_bonds=True)` alone.")
    L.append(f"- **D** (symmetry functions, cutoff {SF_CUTOFF} Å, 8 G2 + 8 G4, r_s = 0): "
             f"G2 (eta [Å⁻²], r_s) = {G2}; G4 (eta [Å⁻²], zeta, lambda) = {G4}. dscribe "
             f"`ACSF(r_cut={SF_CUTOFF}, g2_params=G2, g4_params=G4, species=['Cu'], periodic=True).create(atoms, "
             f"n_jobs=threads)` (dscribe parallelises over systems only, so for n_jobs > 1 the centres are split into n chunks: "
             "`create([atoms]*n, centers=chunks, n_jobs=n)`; dscribe always prepends G1, hence 17 columns); "
             f"ours `SymmetryFunctionsModifier(cutoff={SF_CUTOFF}, g2=G2, g4=G4)`. "
             f"If dscribe's estimated single run at the nominal size exceeds {DSCRIBE_MAX_S:.0f} s "
             "(extrapolated linearly from a ~20,000-atom probe), only the probe is measured and µs/atom should be "
             "compared instead of wall time.")
    L.append(f"- Child timeout: {args.timeout:.0f} s (reported as `> timeout`).\n")

    titles = {"A": "A. Steinhardt l = 2..12, 12 nearest neighbours, averaged",
              "B": f"B. Steinhardt l = 2..12, cutoff {CUTOFF_B} Å, averaged",
              "C": "C. Voronoi-weighted Steinhardt l = 2..12, averaged",
              "D": f"D. Symmetry functions (8 G2 + 8 G4), cutoff {SF_CUTOFF} Å"}
    hdr = ("| entry | tool | atoms | threads | best wall [s] | reps [s] | µs/atom | CPU µs/atom | CPU/wall | OS threads | other load | baseline [MiB] | "
           "peak [MiB] | Δ [MiB] | vs peers | check / notes |")
    sep = "|" + "---|" * 16
    for row in "ABCD":
        rr = [r for r in results if r["id"].split("-")[0] == row]
        if not rr:
            continue
        L.append(f"## {titles[row]}\n")
        L.append(hdr)
        L.append(sep)
        order = {s["id"]: i for i, s in enumerate(specs)}
        rr.sort(key=lambda r: (r.get("n_atoms_nominal", 0), r["threads"], order.get(r["spec_id"], 99), r["id"]))
        for r in rr:
            s = by_id.get(r["spec_id"], {})
            label = r.get("label") or s.get("label", r["id"])
            if r.get("status") == "ok":
                n = r["n_atoms"]
                delta = mib(r["peak_kib"] - r["base_rss_kib"])
                dpre = "≤ " if r["peak_before_kib"] >= r["peak_kib"] else ""
                notes = [r.get("check", "")] + ([r["note"]] if r.get("note") else [])
                if r.get("child_peak_kib"):
                    notes.append(f"worker peak {mib(r['child_peak_kib']):.0f} MiB")
                L.append(f"| {r['id']} | {label} | {n:,} | {r['threads']} | {r['best']:.3f} | "
                         f"{', '.join(f'{t:.3f}' for t in r['times'])} | {1e6 * r['best'] / n:.2f} | "
                         f"{1e6 * r['best'] * r['cpu_util'] / n:.2f} | {r['cpu_util']:.2f} | {fmt(r.get('os_threads'), 'd')} | {fmt(r.get('other_load'))} | {mib(r['base_rss_kib']):.0f} | {mib(r['peak_kib']):.0f} | "
                         f"{dpre}{delta:.0f} | {ratio_note(r, results)} | {'; '.join(x for x in notes if x)} |")
            else:
                what = {"n/a": "not available", "timeout": "> timeout", "error": "FAILED"}.get(r["status"], r["status"])
                err = (r.get("error") or "").replace("|", "\\|").replace("\n", " ")
                if len(err) > 300:
                    err = err[:300] + "…"
                n = r.get("n_atoms_nominal")
                L.append(f"| {r['id']} | {label} | {n:,} | {r['threads']} | {what} | | | | | | | | | | | {err} |"
                         if n else f"| {r['id']} | {label} | | {r['threads']} | {what} | | | | | | | | | | | {err} |")
        L.append("")
    # the sections other benchmarks own (bench_accuracy.py, bench_classify.py) stay as they are
    from results_file import SECTIONS, section

    old = open(path).read() if os.path.exists(path) else ""
    L += [kept + "\n" for kept in (section(old, name) for name in SECTIONS) if kept]
    with open(path, "w") as fh:
        fh.write("\n".join(L) + "\n")
    with open(os.path.splitext(path)[0] + ".json", "w") as fh:
        json.dump(dict(machine=minfo, versions=versions, argv=sys.argv[1:], results=results), fh, indent=1)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--quick", action="store_true", help="shrink every system ~20x (smoke test)")
    ap.add_argument("--only", nargs="+", metavar="PATTERN",
                    help="run only entries whose id matches one of these fnmatch patterns, "
                         "e.g. 'A-*' 'D-dscribe' 'C-ovito-32000'")
    ap.add_argument("--reps", type=int, default=2, help="timed repetitions per child (best is reported)")
    ap.add_argument("--timeout", type=float, default=900.0, help="per-child timeout in seconds")
    ap.add_argument("--output", default=os.path.join(HERE, "RESULTS.md"))
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--probe-ours", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.probe_ours:
        probe_ours_main()
        return
    if args.child:
        child_main(args.child)
        return

    t_start = time.perf_counter()
    specs = make_specs(args.quick)
    if args.only:
        specs = [s for s in specs if any(fnmatch.fnmatchcase(s["id"], p) for p in args.only)]
    minfo = machine_info()
    versions = {k: pkg_version(k) for k in ("ovito", "freud-analysis", "dscribe", "ase", "numpy", "numba")}
    ours_ok, ours_msg = ours_status()
    print(f"machine: {minfo}\nversions: {versions}\novito_mlclass importable: {ours_ok} ({ours_msg})", flush=True)

    results = []

    def record(spec, res, threads, **extra):
        res.update(spec_id=spec["id"], n_atoms_nominal=4 * spec["cells"] ** 3, label=spec["label"], **extra)
        res.setdefault("threads", threads)
        results.append(res)
        if res.get("status") == "ok":
            print(f"  {res['id']:<22} t={threads} N={res['n_atoms']:>9,} best={res['best']:9.3f} s "
                  f"({1e6 * res['best'] / res['n_atoms']:8.2f} us/atom) cpu/wall={res['cpu_util']:.2f} "
                  f"other={fmt(res.get('other_load'))} "
                  f"peak={mib(res['peak_kib']):.0f} MiB (base {mib(res['base_rss_kib']):.0f}) {res.get('check', '')}",
                  flush=True)
        else:
            print(f"  {res['id']:<22} t={threads} {res['status']}: {res.get('error', '')}", flush=True)
        # write intermediate results so a long run can be inspected / survives interruption
        write_results(args.output, args, results, specs, minfo, versions, ours_ok, ours_msg,
                      time.perf_counter() - t_start)

    dscribe_probe_est = {}
    for threads in args.threads:
        print(f"== threads = {threads}", flush=True)
        for spec in specs:
            if spec["kind"] == "dscribe_acsf" and not args.quick:
                # Probe on ~20,000 atoms first; skip the nominal size if it would take too long.
                probe = dict(spec, id=spec["id"] + "-20k", cells=cells_for(20_000))
                pr = run_child(probe, threads, args.reps, args.timeout)
                record(probe, pr, threads)
                n_full = 4 * spec["cells"] ** 3
                if pr.get("status") == "ok":
                    est = pr["best"] * n_full / pr["n_atoms"]
                    if threads == args.threads[0] or threads not in dscribe_probe_est:
                        dscribe_probe_est[threads] = est
                    if est > DSCRIBE_MAX_S:
                        print(f"  dscribe at {n_full:,} atoms estimated {est:.0f} s > {DSCRIBE_MAX_S:.0f} s: "
                              f"reporting the {pr['n_atoms']:,}-atom probe only", flush=True)
                        record(spec, dict(id=spec["id"], status="skipped",
                                          error=f"estimated {est:.0f} s per run (> {DSCRIBE_MAX_S:.0f} s) from the "
                                                f"{pr['n_atoms']:,}-atom probe; compare µs/atom of "
                                                f"{spec['id']}-20k"), threads)
                        continue
                    timeout = max(args.timeout, 3 * est + 120)
                else:
                    timeout = args.timeout
                res = run_child(spec, threads, args.reps, timeout)
                record(spec, res, threads)
                continue
            if spec["kind"].startswith("ours_") and not ours_ok:
                record(spec, dict(id=spec["id"], status="n/a", error=ours_msg), threads)
                continue
            res = run_child(spec, threads, reps_for(spec, args.reps), args.timeout)
            record(spec, res, threads)

    wall = time.perf_counter() - t_start
    write_results(args.output, args, results, specs, minfo, versions, ours_ok, ours_msg, wall)
    print(f"wrote {args.output} ({wall / 60:.1f} min)", flush=True)


if __name__ == "__main__":
    main()
