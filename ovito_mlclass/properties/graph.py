"""Crystals and their graphs: the input stage of the property networks (CGCNN).

A :class:`Crystal` is the plain description of one periodic structure (atomic numbers, Cartesian
positions, cell rows, periodic flags). :func:`build_graph` turns it into the crystal graph of Xie &
Grossman (2018): an undirected multigraph in which every atom is joined to each neighbour within
``cutoff`` (at most its ``max_neighbors`` nearest, plus any tied with the last of them), periodic images
of the same atom being separate edges. The neighbours come from the cell-list search of
:func:`ovito_mlclass.neighbors.cutoff_neighbors` in a supercell, so that the several images of one
atom that a cell smaller than the cutoff brings in are distinct atoms.

Readers: :func:`read_extxyz` (multi-frame extended XYZ with targets in each frame's info),
:func:`read_cgcnn_folder` / :func:`write_cgcnn_folder` (CGCNN's own format: a folder of CIFs plus
``id_prop.csv``) and :func:`crystal_from_data` (an OVITO ``DataCollection``, so anything OVITO reads).
"""
from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..frames import Frame
from ..neighbors import InputError, cutoff_neighbors

TIE_TOLERANCE = 1e-4  # Å: neighbours this close to the M-th nearest count as tied with it
# A crystal graph is made from a supercell that holds every neighbour within the cutoff: a cell so
# thin that this needs more copies (or atoms) than these is not a crystal the models know.
MAX_IMAGES = 10_000
MAX_SUPERCELL_ATOMS = 2_000_000


@dataclass
class Crystal:
    """One structure: ``numbers`` (n,) atomic numbers, ``positions`` (n, 3) Å, ``cell`` (3, 3) rows =
    cell vectors, ``pbc`` periodic flags, ``origin`` of the cell, ``targets`` (name -> value), ``name``."""

    numbers: np.ndarray
    positions: np.ndarray
    cell: np.ndarray
    pbc: tuple = (True, True, True)
    origin: np.ndarray = field(default_factory=lambda: np.zeros(3))
    targets: dict = field(default_factory=dict)
    name: str = ""

    def __post_init__(self):
        self.numbers = np.asarray(self.numbers, dtype=np.int64).reshape(-1)
        self.positions = np.asarray(self.positions, dtype=np.float64).reshape(-1, 3)
        self.cell = np.asarray(self.cell, dtype=np.float64).reshape(3, 3)
        self.pbc = tuple(bool(p) for p in self.pbc)
        if len(self.numbers) != len(self.positions):
            raise InputError(f"{self.name or 'crystal'}: {len(self.numbers)} atomic numbers but "
                             f"{len(self.positions)} positions.")


@dataclass
class Graph:
    """The crystal graph: ``numbers`` (n,), directed edge list ``center`` -> ``neighbor`` (both
    directions of every bond are listed, as the convolution of atom i sums over its neighbours j) and
    ``distance`` (E,) Å; edges of each centre are contiguous and sorted by distance."""

    numbers: np.ndarray
    center: np.ndarray
    neighbor: np.ndarray
    distance: np.ndarray

    @property
    def n_atoms(self) -> int:
        return len(self.numbers)


def build_graph(crystal: Crystal, cutoff: float = 8.0, max_neighbors: int = 12) -> Graph:
    """Neighbours within ``cutoff`` (Å), the ``max_neighbors`` nearest of each atom plus any tied with
    the last of them within :data:`TIE_TOLERANCE` (so the graph does not depend on atom order)."""
    n = len(crystal.numbers)
    if n == 0:
        raise InputError(f"{crystal.name or 'structure'}: no atoms; a property needs at least one atom.")
    if any(crystal.pbc) and abs(np.linalg.det(crystal.cell)) < 1e-9:
        raise InputError(f"{crystal.name or 'structure'}: the periodic cell has zero volume.")
    if not np.all(np.isfinite(crystal.positions)):
        raise InputError(f"{crystal.name or 'structure'}: positions are not finite.")
    supercell = _replicated(crystal, cutoff)
    found = cutoff_neighbors(Frame(supercell.positions, np.column_stack([supercell.cell.T, supercell.origin]),
                                   supercell.pbc), cutoff)
    end = found.offsets[n]  # the bonds of the first copy's atoms
    centres = np.repeat(np.arange(n), np.diff(found.offsets[: n + 1]))
    pairs = np.column_stack([centres, found.neighbors[:end] % n])  # copy k of atom j has index k * n + j
    vectors = found.vectors[:end]
    isolated = np.setdiff1d(np.arange(n), pairs[:, 0])
    if len(isolated):
        raise InputError(f"{crystal.name or 'structure'}: {len(isolated)} atom(s) have no neighbour within "
                         f"{cutoff} Å (atom {isolated[0]} first); a crystal graph needs every atom bonded.")
    distance = np.linalg.norm(np.asarray(vectors, dtype=np.float64), axis=1)
    center, neighbor = pairs[:, 0], pairs[:, 1]
    order = np.lexsort((neighbor, distance, center))
    center, neighbor, distance = center[order], neighbor[order], distance[order]
    # rank of each edge among its centre's edges; the M-th nearest distance of each centre
    starts = np.searchsorted(center, np.arange(n))
    counts = np.bincount(center, minlength=n)
    rank = np.arange(len(center)) - starts[center]
    last = np.full(n, np.inf)
    full = counts >= max_neighbors
    last[full] = distance[starts[full] + max_neighbors - 1]
    keep = (rank < max_neighbors) | (distance <= last[center] + TIE_TOLERANCE)
    return Graph(crystal.numbers.copy(), center[keep].astype(np.int64), neighbor[keep].astype(np.int64),
                 distance[keep])


def _replicated(crystal: Crystal, cutoff: float) -> Crystal:
    """The crystal repeated along its periodic axes until each cell width is at least twice the
    cutoff: in the supercell every image within the cutoff of an atom of the first copy is a
    distinct atom that the search lists exactly once."""
    volume = abs(np.linalg.det(crystal.cell))
    widths = np.array([volume / np.linalg.norm(np.cross(crystal.cell[(k + 1) % 3], crystal.cell[(k + 2) % 3]))
                       for k in range(3)])
    repeat = np.where(crystal.pbc, np.ceil(2.0 * cutoff / widths + 1e-9), 1)
    images = float(np.prod(repeat))
    if images > MAX_IMAGES or images * len(crystal.numbers) > MAX_SUPERCELL_ATOMS:
        raise InputError(f"{crystal.name or 'structure'}: the periodic cell is too thin for a crystal graph "
                         f"(cell widths {np.round(widths, 4).tolist()} Å against a {cutoff} Å cutoff would need "
                         f"{images:.3g} periodic copies; at most {MAX_IMAGES} and {MAX_SUPERCELL_ATOMS} atoms).")
    repeat = repeat.astype(int)
    if (repeat == 1).all():
        return crystal
    grid = np.stack(np.meshgrid(*[np.arange(r) for r in repeat], indexing="ij"), -1).reshape(-1, 3)
    shifts = grid @ crystal.cell  # first row is the original cell (no shift)
    positions = (shifts[:, None, :] + crystal.positions[None]).reshape(-1, 3)
    numbers = np.tile(crystal.numbers, len(grid))
    return Crystal(numbers, positions, crystal.cell * repeat[:, None], crystal.pbc, crystal.origin)


# ---- readers and writers ---------------------------------------------------------------------------
def crystal_from_atoms(atoms, name: str = "", targets: dict | None = None) -> Crystal:
    """From an ``ase.Atoms``."""
    return Crystal(atoms.numbers, atoms.positions, np.asarray(atoms.cell), tuple(atoms.pbc),
                   targets=dict(targets or {}), name=name)


def read_extxyz(path, target_keys=None) -> list[Crystal]:
    """Every frame of a (gzipped) multi-frame extended-XYZ file; ``targets`` of each crystal are the
    frame-info entries named in ``target_keys`` (all numeric ones when None)."""
    import ase.io

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file")
    try:
        frames = ase.io.read(str(path), index=":", format="extxyz")
    except Exception as exc:  # ase raises many kinds on corrupt text
        raise InputError(f"{path}: not a readable extended-XYZ file ({type(exc).__name__}: {exc})") from exc
    crystals = []
    for k, atoms in enumerate(frames):
        info = atoms.info
        keys = target_keys if target_keys is not None else [
            key for key, value in info.items() if isinstance(value, (int, float, np.number)) and not isinstance(value, bool)]
        missing = [key for key in keys if key not in info]
        if missing:
            raise InputError(f"{path}: frame {k} lacks the target(s) {missing} in its info line.")
        name = str(info.get("material_id", info.get("name", f"frame{k}")))
        crystals.append(crystal_from_atoms(atoms, name, {key: float(info[key]) for key in keys}))
    return crystals


def read_cgcnn_folder(folder, target_name: str = "target") -> list[Crystal]:
    """CGCNN's data format: ``id_prop.csv`` (rows ``id,value``) and one ``<id>.cif`` per row."""
    import ase.io

    folder = Path(folder)
    table = folder / "id_prop.csv"
    if not table.exists():
        raise FileNotFoundError(f"{folder}: no id_prop.csv (a CGCNN data folder holds id_prop.csv and <id>.cif files)")
    crystals = []
    with open(table, newline="") as handle:
        for line, row in enumerate(csv.reader(handle), start=1):
            if not row:
                continue
            try:
                name, value = row[0].strip(), float(row[1])
            except (IndexError, ValueError) as exc:
                raise InputError(f"{table}:{line}: expected 'id,value', got {row!r}") from exc
            cif = folder / f"{name}.cif"
            if not cif.exists():
                raise FileNotFoundError(f"{table}:{line}: {cif.name} is missing")
            try:
                atoms = ase.io.read(str(cif), format="cif")
            except Exception as exc:
                raise InputError(f"{cif}: not a readable CIF file ({type(exc).__name__}: {exc})") from exc
            crystals.append(crystal_from_atoms(atoms, name, {target_name: value}))
    return crystals


def write_cgcnn_folder(crystals: list[Crystal], folder, target_name: str) -> Path:
    """Writes ``crystals`` as a CGCNN data folder (``<name>.cif`` + ``id_prop.csv``)."""
    import ase
    import ase.io

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "id_prop.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        for k, crystal in enumerate(crystals):
            name = crystal.name or f"crystal{k}"
            atoms = ase.Atoms(numbers=crystal.numbers, positions=crystal.positions, cell=crystal.cell, pbc=crystal.pbc)
            ase.io.write(str(folder / f"{name}.cif"), atoms, format="cif")
            writer.writerow([name, repr(float(crystal.targets[target_name]))])
    return folder


def crystal_from_data(data, name: str = "") -> Crystal:
    """From an OVITO DataCollection: element names of the 'Particle Type' property (or a 'Z'-like
    numeric type name) give the atomic numbers."""
    from ..extras import requires
    from ..neighbors import check_positions

    with requires("properties", "property prediction"):
        from ase.data import atomic_numbers

    check_positions(data)
    if data.particles.count == 0:
        raise InputError("The structure holds no particles; a property needs at least one atom.")
    if "Particle Type" not in data.particles:
        raise InputError("The structure has no 'Particle Type' property: the property models need each atom's element.")
    types = data.particles.particle_types
    lookup = {}
    for t in types.types:
        symbol = (t.name or "").strip()
        symbol = symbol[:1].upper() + symbol[1:].lower()
        if symbol not in atomic_numbers or symbol == "X":
            raise InputError(f"Particle type {t.id} ({t.name!r}) is not a chemical element; name the types "
                             f"by element symbol (e.g. 'Fe').")
        lookup[t.id] = atomic_numbers[symbol]
    ids = np.asarray(types)
    unknown = set(np.unique(ids).tolist()) - set(lookup)
    if unknown:
        raise InputError(f"Particle type id(s) {sorted(unknown)} are used but not defined.")
    numbers = np.vectorize(lookup.get, otypes=[np.int64])(ids)
    cell = data.cell
    if cell is None:
        raise InputError("The structure has no simulation cell; a crystal needs one.")
    matrix = np.asarray(cell)
    return Crystal(numbers, np.asarray(data.particles.positions), matrix[:, :3].T, tuple(cell.pbc),
                   origin=matrix[:, 3].copy(), name=name)
