"""Random structures and parameters for every modifier, run in child processes (tests/test_fuzz.py,
benchmarks/fuzz.py).

A case is a JSON-able recipe drawn by hypothesis: a small cell (cubic, triclinic, slab, wire, open,
2D, tiny periodic, thin along one axis, flat), random or lattice positions, defects (duplicate
atoms, a heap of atoms on one point, atoms far outside the cell, NaN or infinite coordinates,
vacancies, a far-away origin), particle types, a modifier with random parameters, and a thread
count. Children run many cases each, announcing every case before running it, so that a crash
(a signal) or a hang (no answer within the timeout) is charged to its case and the remaining
cases go on in a new child.

Outcomes: ``result`` (finite outputs), ``refused`` (an InputError, ValueError, MemoryError or, for
parameters, TraitError with a message, possibly wrapped by the modifier) or a failure: ``crash``,
``hang``, ``non-finite`` (a NaN or infinite output) or ``unexpected`` (any other exception). A
child may use half the machine's memory (its address space is capped there): more is a
MemoryError, so that no case brings the machine to its knees.

    python tests/fuzzing.py --child < cases.json     # what the parent runs
"""
from __future__ import annotations

import json
import os
import selectors
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from ovito_mlclass.model import builtin_models
from ovito_mlclass.properties.model import builtin_property_models

HERE = Path(__file__).parent
FAILURES = ("crash", "hang", "non-finite", "unexpected")
SHAPES = ("cube", "triclinic", "slab", "wire", "open", "2d", "tiny", "thin", "flat")
DEFECTS = ("duplicate", "heap", "far", "nan", "inf", "vacancy", "far origin")
MODELS = tuple(builtin_models())  # every shipped model: the fuzzer must not miss a new one
PROPERTY_MODELS = tuple(builtin_property_models())
# each modifier's share of the cases: the unsupervised fit (seconds per case) and CGCNN get less
MODIFIERS = {"steinhardt-nearest": 2, "steinhardt-cutoff": 2, "steinhardt-voronoi": 2, "symmetry-functions": 2,
             **{f"classifier:{m}": 1 for m in MODELS}, "unsupervised": 0.5, "property": 0.5}


# ---- drawing cases ---------------------------------------------------------------------------------

def case_strategy(modifier: str, threads=(1, 2)):
    """Hypothesis strategy of one case (a dict) of ``modifier`` (a key of MODIFIERS)."""
    from hypothesis import strategies as st

    def numbers(*values):  # hypothesis favours the first value: put a usual one first
        return st.sampled_from(values)

    def mostly(usual, *unusual):  # the usual eight times in nine
        return st.sampled_from([True] * 8 + [False]).flatmap(lambda yes: usual if yes else st.one_of(*unusual))

    structure = st.fixed_dictionaries({
        "seed": st.integers(0, 2**31 - 1),
        "shape": mostly(st.sampled_from(SHAPES[:5]), st.sampled_from(SHAPES[5:])),
        "arrangement": st.sampled_from(("random", "random", "fcc", "bcc")),
        "atoms": mostly(st.integers(2, 64), numbers(0, 1)),
        "repeats": st.integers(1, 3),
        "spacing": mostly(st.just(2.5), numbers(0.01, 1000.0)),
        "noise": numbers(0.0, 0.02, 0.1, 0.3),
        "defects": mostly(st.just([]), st.lists(st.sampled_from(DEFECTS), min_size=1, max_size=2, unique=True)),
        "types": st.integers(1, 3),
    })
    degrees = mostly(st.lists(st.integers(0, 16), min_size=1, max_size=4, unique=True),
                     numbers([17], [-1], [4.5], [4, 4], "2-12", "6 x"))
    cutoff = mostly(st.floats(0.05, 4.0), numbers(1e3, 1e-6, 0.0, -1.0, float("nan"), float("inf")))
    angular = st.tuples(numbers(0.0, 0.01, 1.0, 50.0), numbers(0.0, 1.0, 2.5, 16.0, 1025.0, 3000.0, 1e6),
                        numbers(1.0, -1.0, 1.0, -1.0, 0.5, 2.0))
    steinhardt = {"degrees": degrees, "averaged": st.booleans(), "wl": st.booleans(),
                  "same_species_only": st.booleans(), "only_selected": st.booleans()}
    params = {
        "steinhardt-nearest": st.fixed_dictionaries(
            {**steinhardt, "neighbors": mostly(st.integers(1, 24), numbers(0, 200, 10**7))}),
        "steinhardt-cutoff": st.fixed_dictionaries({**steinhardt, "cutoff": cutoff}),
        "steinhardt-voronoi": st.fixed_dictionaries(steinhardt),
        "symmetry-functions": st.fixed_dictionaries({
            "cutoff": cutoff, "only_selected": st.booleans(),
            "g2": st.lists(st.tuples(numbers(0.0, 0.1, 1.0, 1e3, -1.0), numbers(0.0, 1.0, 3.0)), max_size=3),
            "g4": st.lists(angular, max_size=3), "g5": st.lists(angular, max_size=2)}),
        "unsupervised": st.fixed_dictionaries({
            "neighbors": numbers(12, 4, 0), "degrees": numbers("2 4 6", "4 6", "1-8"), "wbar": st.booleans(),
            "clusters": numbers(1, 2), "dims": numbers(1, 2)}),
        "property": st.fixed_dictionaries({"model": st.sampled_from(PROPERTY_MODELS)}),
    }
    classifier = st.fixed_dictionaries({"reject_threshold": numbers(0.5, 0.0, 0.99, -1.0),
                                        "output_probabilities": st.booleans(), "only_selected": st.booleans(),
                                        "output_ordering": st.booleans()})
    return st.fixed_dictionaries({"structure": structure, "modifier": st.just(modifier),
                                  "params": params.get(modifier, classifier), "threads": st.sampled_from(threads)})


def draw_cases(count: int, seed: int, threads=(1, 2)) -> list[dict]:
    """About ``count`` distinct cases, every modifier its share (MODIFIERS), drawn by hypothesis from
    ``seed`` (the same seed, the same cases)."""
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis import seed as with_seed

    cases: list[dict] = []
    for k, (modifier, share) in enumerate(MODIFIERS.items()):
        wanted = max(1, round(count * share / sum(MODIFIERS.values())))
        drawn: dict[str, dict] = {}

        @with_seed(seed * len(MODIFIERS) + k)
        @settings(max_examples=2 * wanted, database=None, deadline=None, phases=[Phase.generate],
                  suppress_health_check=list(HealthCheck))
        @given(case_strategy(modifier, tuple(threads)))
        def collect(case):
            drawn.setdefault(json.dumps(case, sort_keys=True), case)  # hypothesis repeats some

        collect()
        cases += list(drawn.values())[:wanted]
    return cases


def describe(case: dict) -> str:
    s = case["structure"]
    defects = "+".join(s["defects"]) or "no defects"
    return (f"{case['modifier']} {case['params']} on {s['arrangement']} {s['shape']} (atoms {s['atoms']}, "
            f"repeats {s['repeats']}, spacing {s['spacing']}, noise {s['noise']}, {defects}, "
            f"{s['types']} type(s), seed {s['seed']}) at {case['threads']} thread(s)")


# ---- running cases (parent) ------------------------------------------------------------------------

def run_cases(cases: list[dict], timeout: float = 120.0, progress=None) -> list[dict]:
    """The outcome of every case (dicts with ``kind`` and ``detail``), in the order given; the cases
    of each thread count run in children of their own."""
    outcomes: list[dict | None] = [None] * len(cases)
    for threads in sorted({c["threads"] for c in cases}):
        indices = [i for i, c in enumerate(cases) if c["threads"] == threads]
        _run_group(cases, indices, threads, timeout, outcomes, progress)
    return outcomes


def _run_group(cases, indices, threads, timeout, outcomes, progress):
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), OVITO_THREAD_COUNT=str(threads), PYTHONWARNINGS="ignore")
    pending = list(indices)
    while pending:
        with tempfile.TemporaryFile("w+") as errors, tempfile.TemporaryFile("w+") as given:
            json.dump([cases[i] for i in pending], given)
            given.seek(0)
            current, done, killed = None, set(), []
            with subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "--child"], cwd=HERE, env=env,
                                  stdin=given, stdout=subprocess.PIPE, stderr=errors) as child:
                for line in _lines(child, timeout, killed):
                    word, number, *rest = line.split(" ", 2)
                    current = int(number)
                    if word == "done":
                        done.add(current)
                        outcomes[pending[current]] = json.loads(rest[0])
                        if progress:
                            progress(sum(o is not None for o in outcomes), len(outcomes))
            status = child.returncode
            if current is not None and current not in done:
                errors.seek(0)
                outcomes[pending[current]] = (
                    {"kind": "hang", "detail": f"no answer within {timeout:g} s"} if killed else
                    {"kind": "crash", "detail": f"exit status {status} ({_signal_name(status)})\n{errors.read()[-2000:]}"})
        # on in a new child after the case that crashed or hung
        if current is None:  # a child that died before its first case: nothing can go on
            for i in pending:
                outcomes[i] = {"kind": "crash", "detail": "the child died before its first case"}
        pending = [i for i in pending if outcomes[i] is None]


def _lines(child, timeout, killed: list):
    """The lines a child writes, until it ends, or is killed (noted in ``killed``) for writing none
    within ``timeout`` (the first within ``timeout`` plus a minute of imports)."""
    selector = selectors.DefaultSelector()
    selector.register(child.stdout, selectors.EVENT_READ)
    buffer, limit = b"", timeout + 60
    while True:
        if not selector.select(limit):
            child.kill()
            killed.append(True)
            break
        chunk = os.read(child.stdout.fileno(), 65536)
        if not chunk:
            break
        buffer += chunk
        *lines, buffer = buffer.split(b"\n")
        for line in lines:
            limit = timeout
            yield line.decode()
    selector.close()


def _signal_name(status: int) -> str:
    import signal

    return signal.Signals(-status).name if status < 0 else "exited"


def summary(outcomes: list[dict]) -> Counter:
    """How many cases had each outcome; refusals by exception type (``refused: InputError``)."""
    return Counter(o["kind"] + (f": {o['type']}" if o["kind"] == "refused" else "") for o in outcomes)


def report(cases, outcomes) -> str:
    """The failures, each with its case and detail (traceback, signal)."""
    lines = []
    for case, outcome in zip(cases, outcomes):
        if outcome["kind"] in FAILURES:
            lines += [f"{outcome['kind'].upper()}: {describe(case)}", json.dumps(case), outcome["detail"], ""]
    return "\n".join(lines)


# ---- running cases (child) -------------------------------------------------------------------------

def build(structure: dict):
    """The DataCollection of a case's structure."""
    import numpy as np
    from ovito.data import DataCollection, ParticleType

    rng = np.random.default_rng(structure["seed"])
    s, shape = structure["spacing"], structure["shape"]
    if structure["arrangement"] == "random":
        n = structure["atoms"]
        rows = np.eye(3) * s * max(n, 1) ** (1 / 3)
        fractions = rng.random((n, 3))
    else:
        basis = {"fcc": [[0, 0, 0], [.5, .5, 0], [.5, 0, .5], [0, .5, .5]], "bcc": [[0, 0, 0], [.5, .5, .5]]}
        basis = np.array(basis[structure["arrangement"]])
        r = structure["repeats"]
        grid = np.stack(np.meshgrid(*[np.arange(r)] * 3, indexing="ij"), -1).reshape(-1, 3)
        fractions = ((grid[:, None] + basis[None]).reshape(-1, 3)) / r
        rows = np.eye(3) * s * r * len(basis) ** (1 / 3)
    pbc, is2d = (True, True, True), False
    if shape == "triclinic":
        rows = rows + np.tril(rng.uniform(-0.5, 0.5, (3, 3)), -1) @ rows
    elif shape == "slab":
        pbc = (True, True, False)
    elif shape == "wire":
        pbc = (True, False, False)
    elif shape == "open":
        pbc = (False, False, False)
    elif shape == "2d":
        pbc, is2d = (True, True, False), True
        fractions[:, 2] *= rng.choice([0.0, 0.1])
        rows[2] *= rng.choice([1.0, 0.0])
    elif shape == "tiny":  # a periodic cell smaller than the spacing of its atoms
        rows = rows / max(len(fractions), 1) ** (1 / 3) * rng.uniform(0.2, 1.0)
    elif shape == "thin":
        rows[2] *= 10.0 ** -rng.integers(2, 7)
    elif shape == "flat":
        rows[2] = 0.0
    positions = fractions @ rows + rng.normal(0.0, structure["noise"] * s, fractions.shape)
    origin = np.zeros(3)
    n = len(positions)
    for defect in structure["defects"]:
        if n == 0:
            break
        i = rng.integers(n)
        if defect == "duplicate" and n > 1:
            positions[(i + 1) % n] = positions[i]
        elif defect == "heap":
            positions[rng.choice(n, size=rng.integers(1, n + 1), replace=False)] = positions[i]
        elif defect == "far":
            positions[i] += rng.integers(-1000, 1001, 3) @ rows + rng.normal(0.0, s, 3)
        elif defect in ("nan", "inf"):
            positions[i, rng.integers(3)] = np.nan if defect == "nan" else np.inf
        elif defect == "vacancy":
            positions = positions[rng.random(n) > 0.3]
            n = len(positions)
        elif defect == "far origin":  # cell and atoms 1e8 away: distances lose 8 digits
            origin += 1e8
            positions += 1e8
    data = DataCollection()
    data.create_cell(np.column_stack([rows.T, origin]), pbc=pbc)
    data.cell_.is2D = is2d
    particles = data.create_particles(count=n)
    particles.create_property("Position", data=positions)
    names = ["Cu", "Zr", "Fe"][:structure["types"]]
    types = particles.create_property("Particle Type", data=rng.integers(1, len(names) + 1, n))
    for k, name in enumerate(names):
        types.types.append(ParticleType(id=k + 1, name=name))
    particles.create_property("Selection", data=rng.integers(0, 2, n))
    return data


def make_modifier(case: dict, spacing: float):
    from ovito_mlclass.modifiers import (PropertyPredictorModifier, SteinhardtModifier, StructureClassifierModifier,
                                         SymmetryFunctionsModifier, UnsupervisedClassifierModifier)

    name, params = case["modifier"], dict(case["params"])
    if "cutoff" in params and 0.05 <= params["cutoff"] <= 4.0:
        params["cutoff"] *= spacing  # in units of the spacing; the extremes as they are
    if name.startswith("steinhardt"):
        mode = name.split("-")[1]
        return SteinhardtModifier(neighbor_mode=mode, **params)
    if name == "symmetry-functions":
        for key in ("g2", "g4", "g5"):
            params[key] = [tuple(row) for row in params[key]]
        return SymmetryFunctionsModifier(**params)
    if name.startswith("classifier:"):
        return StructureClassifierModifier(model=name.split(":")[1], **params)
    if name == "unsupervised":
        return UnsupervisedClassifierModifier(max_clusters=3, **params)
    return PropertyPredictorModifier(**params)


def run_case(case: dict) -> dict:
    import traceback

    import numpy as np
    from traits.api import TraitError

    from ovito_mlclass.neighbors import InputError

    accepted = (InputError, ValueError, MemoryError, TraitError)
    data = build(case["structure"])
    try:
        data.apply(make_modifier(case, case["structure"]["spacing"]))
    except Exception as exc:
        chain, link = [], exc
        while link is not None and len(chain) < 8:
            chain.append(link)
            link = link.__cause__ or link.__context__
        clean = next((e for e in chain if isinstance(e, accepted) and str(e).strip()), None)
        if clean is None:
            return {"kind": "unexpected", "type": type(exc).__name__, "detail": traceback.format_exc()[-3000:]}
        return {"kind": "refused", "type": type(clean).__name__, "detail": str(clean)[:300]}
    for key in set(data.particles.keys()) - {"Position"}:  # the input may hold NaN
        values = np.asarray(data.particles[key])
        if values.dtype.kind == "f" and not np.isfinite(values).all():
            return {"kind": "non-finite", "detail": f"property {key!r}: {int((~np.isfinite(values)).sum())} values"}
    for key, value in data.attributes.items():
        if isinstance(value, float) and not np.isfinite(value):
            return {"kind": "non-finite", "detail": f"attribute {key!r} = {value}"}
    return {"kind": "result", "detail": ""}


def child() -> None:
    import resource
    import warnings

    # half the machine's memory: more is a MemoryError here, not the whole machine's swap or OOM killer
    half = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") // 2
    resource.setrlimit(resource.RLIMIT_AS, (half, resource.getrlimit(resource.RLIMIT_AS)[1]))
    warnings.simplefilter("ignore")
    protocol = os.fdopen(os.dup(1), "w")  # the parent reads this; anything else printed goes to stderr
    os.dup2(2, 1)
    cases = json.loads(sys.stdin.read())
    for k, case in enumerate(cases):
        protocol.write(f"start {k}\n")
        protocol.flush()
        outcome = run_case(case)
        protocol.write(f"done {k} {json.dumps(outcome)}\n")
        protocol.flush()


if __name__ == "__main__" and sys.argv[1:] == ["--child"]:
    child()
