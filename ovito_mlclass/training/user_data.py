"""Training data from your own structures, for ``ovito-mlclass train my.toml``.

Two ways to give them, in the config's ``[data]`` (any file format OVITO reads):

``[[data.structures]]`` — one perfect structure per class (a unit cell or a crystal), which the
tool turns into training data: it repeats the cell to at least ``atoms`` atoms and displaces every
atom by Gaussian noise of each of the ``displacements`` (root mean square per Cartesian component,
in nearest-neighbour distances), several seeds each; the validation snapshots use other seeds
and amplitudes between those of training. With ``md = {...}`` it runs short molecular dynamics
with a LAMMPS potential at each of its ``temperatures`` instead (the ``md`` extra)::

    [[data.structures]]
    class = "A15"
    file = "a15.cif"
    displacements = [0.02, 0.04, 0.06, 0.08]

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

from pathlib import Path

import numpy as np

from .snapshots import NO_LABEL, Snapshot, cache_dir

DEFAULT_DISPLACEMENTS = (0.01, 0.03, 0.05, 0.07, 0.09)
SEEDS_PER_AMPLITUDE = 3


def prepare(config: dict, config_path: Path) -> str:
    """Writes the snapshots of a config's ``[[data.structures]]`` and ``[[data.frames]]`` and
    returns the dataset name to train on."""
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
        written += _from_structure(entry, classes, base, root, k, config.get("seed", 0))
    for k, entry in enumerate(data.get("frames", [])):
        written += _from_frames(entry, classes, base, root, k)
    if not written:
        raise ValueError(f"{config_path}: [data] gives no structures or frames to train on.")
    for split in ("train", "val"):
        if not list((root / split).glob("*.npz")):
            raise ValueError(f"{config_path}: no {split} snapshots could be made; give more frames or structures.")
    return name


def _read(path: Path, frame: int = 0):
    from ovito.io import import_file

    from ..frames import with_cell

    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file")
    pipeline = import_file(str(path), multiple_frames=True)
    return pipeline, with_cell(pipeline.compute(frame))


def _species(data):
    types = data.particles.particle_types
    return None if types is None else np.asarray(types, dtype=np.int32)


def _nearest_distance(positions, cell, pbc) -> float:
    from ..frames import Frame
    from ..neighbors import nearest_neighbors

    found = nearest_neighbors(Frame(positions, cell, pbc), 1)
    return float(np.median(np.linalg.norm(found.vectors, axis=1)))


def _from_structure(entry: dict, classes: list, base: Path, root: Path, k: int, seed: int) -> int:
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
    if "md" in entry:
        raise NotImplementedError("MD of user structures: not yet; use displacements.")
    d_nn = _nearest_distance(positions, cell, pbc)
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
