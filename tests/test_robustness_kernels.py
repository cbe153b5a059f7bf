"""Inputs that crashed, hung or gave silently wrong results, each run in a fresh interpreter at 1 and
2 threads (a crash fails the test instead of killing the run), against OVITO's own analyses and
closed forms; results at 1 and 2 threads are bit-identical."""
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

HERE = Path(__file__).parent
THREADS = [1, 2]


def isolated(code: str, threads: int, timeout: float = 300) -> str:
    """Runs ``code`` in a fresh interpreter with ``threads`` OpenMP and OVITO threads (in this
    folder, so that ``conftest``'s builders import); returns its output."""
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), OVITO_THREAD_COUNT=str(threads))
    run = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=HERE, env=env, capture_output=True,
                         text=True, timeout=timeout)
    status = run.returncode if run.returncode >= 0 else f"signal {signal.Signals(-run.returncode).name}"
    assert run.returncode == 0, f"exit status {status}\n{run.stdout[-3000:]}\n{run.stderr[-3000:]}"
    return run.stdout


def identical_at_1_and_2_threads(code: str, folder: Path, stem: str) -> None:
    """Runs ``code`` (which saves a dict ``results`` of arrays to ``RESULTS_FILE`` and prints "ok")
    in fresh interpreters at 1 and 2 threads; the arrays must be bit-identical."""
    for threads in THREADS:
        target = repr(str(folder / f"{stem}-{threads}.npz"))
        assert isolated(code.replace("RESULTS_FILE", target), threads).strip().endswith("ok")
    one, two = np.load(folder / f"{stem}-1.npz"), np.load(folder / f"{stem}-2.npz")
    for key in one.files:
        np.testing.assert_array_equal(two[key], one[key], err_msg=key)


def test_voronoi_cells_of_small_hot_and_degenerate_boxes_equal_ovito(tmp_path):
    """The Voronoi mode crashed at 2 threads (a thread whose first atom built no face): 108 fcc atoms
    displaced by 0.3 A (a = 3.615), fcc with vacancies, 78 of 200 random small boxes."""
    code = f"""
    import numpy as np
    from ovito.modifiers import SteinhardtParametersModifier as OvitoSteinhardt, VoronoiAnalysisModifier
    from conftest import crystal, make_data
    from ovito_mlclass import SteinhardtModifier, StructureClassifierModifier, neighbors as nb

    def volumes(data):
        faces = nb.voronoi_faces(data)
        pyramids = faces.weights * np.linalg.norm(faces.vectors, axis=1) / 6
        ours = np.bincount(np.repeat(np.arange(faces.n_atoms), faces.counts), weights=pyramids,
                           minlength=faces.n_atoms)
        work = data.clone()
        work.apply(VoronoiAnalysisModifier())
        np.testing.assert_allclose(ours, work.particles["Atomic Volume"], rtol=1e-9, atol=0)
        return ours

    hot = crystal("fcc", 3, sigma=0.3 / 3.615, seed=1)
    keep = np.random.default_rng(2).random(hot.particles.count) > 0.1
    vacancies = make_data(np.asarray(hot.particles.positions)[keep], np.asarray(hot.cell)[:, :3].T)
    results = {{}}
    for name, data in (("hot", hot), ("vacancies", vacancies)):
        results[name + " volumes"] = volumes(data)
        work = data.clone()
        work.apply(SteinhardtModifier(neighbor_mode="voronoi", degrees=range(2, 13)))
        ours = np.asarray(work.particles["Steinhardt Descriptors"])
        work.apply(OvitoSteinhardt(max_l=12, compute_averaged=True, neighbor_mode=OvitoSteinhardt.NeighborMode.Voronoi))
        np.testing.assert_allclose(ours[:, :11], work.particles["Steinhardt"], rtol=0, atol=1e-10)
        results[name + " steinhardt"] = ours
    work = hot.clone()
    work.apply(StructureClassifierModifier(model="tcp"))  # Voronoi features of the tcp model
    assert (np.asarray(work.particles["Structure Type"]) >= 0).all()
    rng = np.random.default_rng(5)
    for box in range(200):
        n = int(rng.integers(1, 30))
        edges = rng.uniform(1.0, 6.0, 3)
        results[f"box {{box}}"] = volumes(make_data(rng.random((n, 3)) * edges, np.diag(edges)))
    np.savez(RESULTS_FILE, **results)
    print("ok")
    """
    identical_at_1_and_2_threads(code, tmp_path, "voronoi")


@pytest.mark.parametrize("threads", THREADS)
def test_2d_cells_equal_ovito_in_nearest_and_cutoff_modes(threads):
    """Steinhardt on a 2D cell ran OVITO's finder in a worker thread (SIGSEGV at 2 threads)."""
    isolated("""
    import numpy as np
    from ovito.modifiers import SteinhardtParametersModifier as OvitoSteinhardt
    from conftest import make_data
    from ovito_mlclass import SteinhardtModifier, neighbors as nb
    from ovito_mlclass.descriptors import Steinhardt
    from ovito_mlclass.descriptors.steinhardt import compute_together

    rng = np.random.default_rng(3)
    positions = np.column_stack([rng.uniform(0, 12, (150, 2)), rng.uniform(-0.5, 0.5, 150)])
    for height in (1.0, 0.0):
        data = make_data(positions, np.diag([12.0, 12.0, height]), pbc=(True, True, False))
        data.cell_.is2D = True
        for ours, theirs in ((dict(neighbors=6), dict(neighbor_mode=OvitoSteinhardt.NeighborMode.NearestNeighbors,
                                                       num_neighbors=6)),
                             (dict(cutoff=2.0), dict(neighbor_mode=OvitoSteinhardt.NeighborMode.Cutoff, cutoff=2.0))):
            # every degree 2..8, and the even ones alone (the kernel's recurrence in steps of two)
            for columns in (list(range(7)), [0, 2, 4, 6]):
                work = data.clone()
                work.apply(SteinhardtModifier(degrees=[2 + c for c in columns], wl=False, **ours))
                values = np.asarray(work.particles["Steinhardt Descriptors"])
                work.apply(OvitoSteinhardt(max_l=8, compute_averaged=True, **theirs))
                k = len(columns)
                np.testing.assert_allclose(values[:, :k], np.asarray(work.particles["Steinhardt"])[:, columns],
                                           rtol=0, atol=1e-10)
                np.testing.assert_allclose(values[:, k:], np.asarray(work.particles["Smooth Steinhardt"])[:, columns],
                                           rtol=0, atol=1e-10)
                if "neighbors" in ours:  # the sums in float32, as classification runs them: to float rounding
                    recipe = Steinhardt(degrees=[2 + c for c in columns], wl=False)
                    single, = compute_together(nb.nearest_neighbors(data, 6), [(recipe, None, None)],
                                               single_precision=True)
                    np.testing.assert_allclose(single, values, rtol=1e-5, atol=1e-7)
    """, threads)


@pytest.mark.parametrize("threads", THREADS)
def test_refusals_are_clean_errors(threads):
    """Searches too large for the machine (10,000 atoms, cutoff 1e3 and 1e4 A aborted: bad_alloc
    inside an OpenMP region) or beyond the stencil's limit (a 3 x 3 x 2^-20 cell: silently cut at
    10^6 images), atoms at one position (the nearest-neighbour search skipped them: metals answered
    FCC at 1.0), frames with fewer neighbours than a point cloud (metals-pointnet: BCC at 0.99)."""
    isolated("""
    import numpy as np, pytest
    from conftest import make_data
    from ovito_mlclass import SteinhardtModifier, StructureClassifierModifier, SymmetryFunctionsModifier
    from ovito_mlclass.neighbors import InputError

    def refused(data, modifier, message):
        with pytest.raises(InputError, match=message):
            data.clone().apply(modifier)

    rng = np.random.default_rng(1)
    large = make_data(rng.uniform(0, 48.0, (10_000, 3)), np.eye(3) * 48.0)
    for cutoff in (1e3, 1e4):
        refused(large, SteinhardtModifier(cutoff=cutoff), "GiB of memory, more than this machine has")
        refused(large, SymmetryFunctionsModifier(cutoff=cutoff), "GiB of memory, more than this machine has")
    thin = make_data([[0.5, 0.5, 0.0]], np.diag([3.0, 3.0, 2.0 ** -20]))
    refused(thin, SteinhardtModifier(cutoff=3.0), r"more than the limit of 1e\\+07")
    heap = make_data(np.vstack([np.full((50, 3), 2.0), rng.uniform(0, 10, (30, 3))]), np.eye(3) * 10)
    for modifier in (SteinhardtModifier(neighbors=12), SteinhardtModifier(cutoff=3.0),
                     SteinhardtModifier(neighbor_mode="voronoi"), StructureClassifierModifier(model="metals"),
                     StructureClassifierModifier(model="tcp")):
        refused(heap, modifier, "50 particle.s. have another particle at distance zero .*same position")
    cube = make_data(np.array(list(np.ndindex(2, 2, 2)), dtype=float) * 2.5 + 5, np.eye(3) * 20, pbc=(False,) * 3)
    refused(cube, StructureClassifierModifier(model="metals-pointnet"), r"fewer than 40 neighbours \\(particle 0 has 7\\)")
    """, threads)


@pytest.mark.parametrize("threads", THREADS)
def test_allocation_failure_inside_a_parallel_region_is_a_memory_error(threads):
    """With the address space capped, the neighbour average's rows (allocated inside the OpenMP
    region) cannot be had: a MemoryError naming the size, not std::terminate (SIGABRT)."""
    out = isolated("""
    import resource, numpy as np
    from conftest import crystal
    from ovito_mlclass import neighbors as nb
    from ovito_mlclass._compiled import kernels
    from ovito_mlclass.descriptors.wigner import coupling_table

    neighbor_list = nb.nearest_neighbors(crystal("fcc", 30, sigma=0.05), 12)  # 108,000 atoms
    degrees = np.arange(2, 13, dtype=np.int32)
    args = (neighbor_list.offsets, neighbor_list.neighbors, neighbor_list.vectors, None, None, degrees, True, True,
            *coupling_table(degrees))
    out = np.empty((neighbor_list.n_atoms, 44))
    kernels.steinhardt(*args, 1 << 22, out)  # the threads exist before the cap
    kernels.release_blocks()  # else the call below would get the first one's rows back, no allocation
    used = int(open("/proc/self/statm").read().split()[0]) * resource.getpagesize()
    resource.setrlimit(resource.RLIMIT_AS, (used + (64 << 20), resource.RLIM_INFINITY))
    try:
        kernels.steinhardt(*args, 1 << 40, out)  # without bins: the q_lm of all atoms in one plane, 145 MB
    except MemoryError as exc:
        print(exc)
    """, threads)
    assert out.strip() == "could not allocate 0.142 GiB of memory"


def test_topology_tests_on_small_hot_degenerate_and_2d_boxes(tmp_path):
    """Adaptive CNA and Identify Diamond (the default model's certificates), and the chemical
    ordering of every structure with random species, on boxes of one to a few atoms (every
    neighbour a periodic image), hot and flat cells, open clusters short of neighbours
    and a 2-D cell, in fresh interpreters: OVITO's answers where OVITO gives one, the same at 1 and
    2 threads, and the default model's classification of each without a crash."""
    code = f"""
    import numpy as np
    from ovito.modifiers import CommonNeighborAnalysisModifier, IdentifyDiamondModifier
    from conftest import crystal, make_data
    from ovito_mlclass import topology
    from ovito_mlclass.classify import classify
    from ovito_mlclass.frames import as_frame
    from ovito_mlclass.neighbors import InputError, nearest_neighbors
    from ovito_mlclass.ordering import ordering_types

    rng = np.random.default_rng(11)
    boxes = {{"one atom": make_data(np.zeros((1, 3)), np.eye(3) * 2.5),
              "bcc pair": make_data(np.array([[0, 0, 0], [1.2, 1.2, 1.2]]), np.eye(3) * 2.4),
              "hot fcc": crystal("fcc", 3, sigma=0.12, seed=3),
              "open triangle": make_data(np.array([[0, 0, 0], [1.0, 0, 0], [0, 1.0, 0]]) + 5, np.eye(3) * 10,
                                         pbc=(False,) * 3),
              "flat cell": make_data(rng.random((60, 3)) * [8, 8, 0.05], np.diag([8, 8, 0.05]))}}
    for n in range(200):
        edges = rng.uniform(2.0, 7.0, 3)
        boxes[f"random {{n}}"] = make_data(rng.random((int(rng.integers(1, 40)), 3)) * edges, np.diag(edges))
    flat = make_data(rng.random((50, 3)) * [10, 10, 0], np.diag([10, 10, 1.0]), pbc=(True, True, False))
    flat.cell_.is2D = True
    boxes["2-D"] = flat
    results = {{}}
    for name, data in boxes.items():
        cna, dia = topology.adaptive_cna(data), topology.diamond_topology(data)
        if name != "2-D":   # OVITO's modifiers refuse 2-D cells
            ref = data.clone()
            ref.apply(CommonNeighborAnalysisModifier())
            assert np.array_equal(cna, np.asarray(ref.particles["Structure Type"])), name
            ref = data.clone()
            ref.apply(IdentifyDiamondModifier())
            strict = np.asarray(ref.particles["Structure Type"])
            assert np.array_equal(dia == topology.CUBIC, strict == 1) and np.array_equal(dia == topology.HEXAGONAL, strict == 4), name
        else:
            assert not cna.any() and not dia.any()
        try:
            classify(data)
        except InputError:   # too few neighbours for the model's features: refused, not crashed
            pass
        results[name + " cna"], results[name + " diamond"] = cna, dia
        # the ordering of two species on every structure (the diamonds' and graphene's bond repair)
        frame = as_frame(data)
        k = min(15, frame.count - 1)
        if k >= 1:
            found = nearest_neighbors(frame, k, allow_missing=True)
            species = rng.integers(1, 3, frame.count)
            for structure in (1, 3, 6, 7, 8):
                results[name + " ordering " + str(structure)] = ordering_types(
                    np.full(frame.count, structure), species, found.neighbors.reshape(frame.count, k),
                    found.vectors.reshape(frame.count, k, 3))
    np.savez(RESULTS_FILE, **results)
    print("ok")
    """
    identical_at_1_and_2_threads(code, tmp_path, "topology")


@pytest.mark.parametrize("threads", THREADS)
def test_kept_blocks_at_one_and_two_threads_give_fresh_results(threads):
    """In a fresh interpreter at 1 and 2 threads: the default model on a 157,216-atom hot fcc frame
    and on a 2-D sheet of 160,000 atoms, each classified again on the blocks the kernels kept from the
    first call, gives the first call's types; the blocks stay the same size and WORK.clear() lets go."""
    out = isolated("""
    import numpy as np
    from conftest import crystal, make_data
    from ovito_mlclass import _compiled
    from ovito_mlclass.classify import classify
    from ovito_mlclass.work_arrays import WORK

    side = np.arange(400) * 2.5
    sheet = np.column_stack([np.repeat(side, 400), np.tile(side, 400), np.zeros(400 * 400)])
    sheet += np.random.default_rng(1).normal(0.0, 0.05, sheet.shape) * [1, 1, 0]
    flat = make_data(sheet, np.diag([1000.0, 1000.0, 10.0]), pbc=(True, True, False))
    flat.cell_.is2D = True
    frames = [crystal("fcc", 34, sigma=0.2, seed=7), flat]
    for data in frames:
        first = classify(data).types
        kept = _compiled.kernels.kept_block_bytes()
        again = classify(data).types
        assert np.array_equal(first, again) and _compiled.kernels.kept_block_bytes() == kept
    assert kept > 0
    WORK.clear()
    assert _compiled.kernels.kept_block_bytes() == 0
    print("ok")
    """, threads)
    assert out.strip() == "ok"
