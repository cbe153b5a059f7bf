"""Open-world data: real MD of surfaces, grain boundaries, vacancies, dislocations, stacking faults and
nanoparticles of fcc, bcc and hcp metals (LAMMPS, the EAM potentials and T_m of ``md_metals.ELEMENTS``),
plus a held-out set of structures no training class describes.

Datasets (each snapshot a :class:`~ovito_mlclass.training.snapshots.Snapshot`)
    ``openworld-defects``  ``cache_dir()/openworld-defects/{train,val}/<name>.npz`` + ``manifest.json``
    ``openworld-ood``      ``cache_dir()/openworld-ood/test/<name>.npz`` + ``manifest.json`` (never trained on)
Every snapshot has the classes ``CLASSES`` (OVITO's PTM names, plus Liquid) and per-atom extras
``defect_distance`` (Å from the nearest defect: surface plane, boundary plane, vacancy site, dislocation
line, fault plane), ``velocity`` (Å/ps) and, where there is a free surface, ``surface_layer``; meta
``kind``, ``lattice``, ``element``, ``T``, ``T_over_Tm``, ``T_m``, ``T_m_source``, ``potential``, ``seed``,
``protocol``, ``split`` and ``defect`` (a description), plus the geometry of the defect.

Labels, by construction (no atom's label comes from a structure analysis of that atom)
    - an atom whose first shell (the PTM template shell of its lattice: 12 neighbours for fcc and hcp,
      8 + 6 for bcc) is complete in the built structure gets its lattice;
    - HCP: the two layers of an intrinsic fault, the two outer layers of an extrinsic fault, the twin
      plane of a coherent Sigma3 (111) twin (one layer) and the twin planes of a decahedron: every (111)
      layer whose two neighbouring layers sit in the same stacking position (ABA), as PTM and CNA report
      them on the built structure (``tests/test_md_defects.py`` checks this);
    - NO_LABEL: atoms with an incomplete first shell (surfaces, neighbours of vacancy sites), atoms within
      ``GB_BAND`` nearest-neighbour distances of a grain-boundary plane (more where a boundary has
      widened: ``_label_bicrystal``), within ``CORE_BAND`` of a dislocation line, and every layer of a
      free surface that has premelted (PTM, no RMSD cutoff, finds less than half of the layer in its
      lattice).
    Atoms are followed by id through the MD: layers, fault planes and surface shells keep their
    construction indices. Moving defects are located again in every snapshot: vacancy sites by a
    Wigner-Seitz assignment to the (affinely scaled) reference lattice, grain-boundary planes and
    dislocation lines in the inherent structure of the snapshot (a copy quenched by energy minimisation,
    boundaries from its PTM profile, lines from OVITO's DXA).

Kinds (``meta["kind"]``)
    surface       slabs with two free surfaces and vacuum: FCC (111) (100) (110), BCC (110) (100) (111),
                  HCP (0001) and (10-10); ``surface_layer`` 0 = outermost atomic layer.
    gb            bicrystals with two boundaries in a periodic box: symmetric tilt (mirror construction),
                  twist, and the coherent Sigma3 (111) twin (built as a stacking sequence); the tilt and
                  twist boundaries keep the lowest-energy of a few rigid-body translations after a CG
                  minimisation (overlapping atoms removed).
    vacancy       0.5-2 % random vacancies (kept apart) and a few divacancies.
    dislocation   periodic edge-dislocation dipoles: fcc a/2<110>{111} (dissociated into Shockley partials
                  with a stacking-fault ribbon, labelled HCP) and bcc a/2<111>{110}.
    stacking      intrinsic and extrinsic stacking faults in fcc.
    nanoparticle  fcc cuboctahedra, truncated octahedra and decahedra, bcc rhombic dodecahedra in vacuum;
                  ``surface_layer`` here counts neighbour hops from the surface shell (0 = incomplete shell).
    frank-kasper  (train only) the mu phase (Fe7Cr6 in the FeCr potential, ``tcp.md_snapshot``): its Z14, Z15
                  and Z16 sites (``extra["icosahedral"]`` = 0) are Kasper polyhedra no class describes, the
                  atoms the model must call Other; the Z12 sites are left unlabelled. Sigma, A15 and the
                  Laves phases stay out of training (sigma, A15 and C15 are held out below).
    held out (``openworld-ood``, split ``test``; ``extra["must_be_other"]`` = 1 where a model should say
    Other: every atom of an ``ood-lattice`` but the Z12 sites of the Frank-Kasper phases
    (``extra["fk_coordination"]`` == 12), whose first shell is an icosahedron: ICO or Other is right
    there; the surface shell (incomplete shells) of the others)
    ood-lattice   lattices no class describes: beta-Sn, simple hexagonal, and triangular and square
                  single layers (no potential: Gaussian displacements), A15 W, sigma (beta-Ta) and C15
                  ZrCu2 (MD with ``tcp.md_snapshot``);
    polycrystal   Voronoi polycrystals with random grain orientations (Cu, Fe);
    gb            a mixed tilt-twist boundary (Sigma5, (101)/(4-35));
    void, crack   a spherical void, an unloaded elliptical crack; ``surface_layer`` in neighbour hops;
    nanoparticle  Mackay icosahedra (Cu 147, Ag 309 atoms): only the centre labelled (ICO).

Splits: train (Cu, Al, Ni / Fe, W / Mg, Zr), val (other seeds, other boundaries, Ag for fcc, for bcc and
hcp the other element than train at the same structure and T where the hcp range of Zr allows), test.

Usage::

    python training_data/md_defects.py [--quick] [--threads N] [--split train|val|ood|all] [--force]
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from ovito_mlclass.training.md import lammps_state, run_plan
from md_metals import ELEMENTS, Element, RunSpec, _BASIS, _cell_lengths, _meta, \
    _periodic_distance, _remove_close, _Run, crystal, element
from ovito_mlclass.training.snapshots import NO_LABEL, Snapshot, cache_dir, write_manifest

DATASET = "openworld-defects"
OOD_DATASET = "openworld-ood"
CLASSES = ("FCC", "HCP", "BCC", "ICO", "Simple cubic", "Cubic diamond", "Hexagonal diamond", "Graphene", "Liquid")
LABEL = {name: i for i, name in enumerate(CLASSES)}
SHELL = {"FCC": 12, "HCP": 12, "BCC": 14}                  # PTM template neighbours
PTM_CODE = {"FCC": 1, "HCP": 2, "BCC": 3, "ICO": 4, "Simple cubic": 5}
GB_BAND = 2.0        # nearest-neighbour distances either side of a boundary plane: NO_LABEL
CORE_BAND = 1.5      # nearest-neighbour distances from a dislocation line: NO_LABEL
PREMELTED = 0.5      # a surface layer less than this fraction its lattice (PTM, no cutoff) loses its label
WIDE_BOUNDARY = 0.98  # a bicrystal or dislocation run whose quenched labelled atoms agree less is dropped


def _dataset(split: str, quick: bool) -> str:
    return (OOD_DATASET if split == "ood" else DATASET) + ("-quick" if quick else "")


# ---------------------------------------------------------------------------------------------- lattices


def shell_cutoff(el: Element) -> float:
    """Radius enclosing the PTM template shell: midway between its last shell and the next one."""
    if el.lattice == "BCC":
        return 0.5 * (2 / math.sqrt(3) + math.sqrt(8 / 3)) * el.d_nn   # 8 at d_nn, 6 at 1.155, next 1.633
    return 0.5 * (1 + math.sqrt(2)) * el.d_nn                           # 12 at d_nn, next at 1.414


def _is_translation(el: Element, v) -> bool:
    """Whether the Cartesian vector ``v`` (orthogonal-cell frame of md_metals) maps the lattice onto itself."""
    basis = _BASIS[el.lattice]
    f = np.asarray(v, float) / _cell_lengths(el)
    moved = (basis + f) % 1.0
    d = np.abs(moved[:, None, :] - basis[None, :, :])
    d = np.minimum(d, 1 - d)
    return bool(np.all(np.any(np.all(d < 1e-6, axis=2), axis=1)))


def direction(el: Element, d) -> np.ndarray:
    """Cartesian vector of the integer direction ``d`` in orthogonal-cell units (Miller indices for cubic
    lattices; units of (a, a sqrt3, c) for hcp), reduced to its shortest lattice translation."""
    d = np.asarray(d, int)
    d = d // math.gcd(*(int(abs(x)) for x in d))
    v = d * _cell_lengths(el)
    return v / 2 if _is_translation(el, v / 2) else v


def orientation(el: Element, dirs) -> tuple[np.ndarray, np.ndarray]:
    """Rotation (rows: the lab x, y, z axes in crystal coordinates) and the periods (Å) along them of a
    crystal whose directions ``dirs`` (three mutually orthogonal, right-handed) point along x, y, z."""
    vs = [direction(el, d) for d in dirs]
    rot = np.array([v / np.linalg.norm(v) for v in vs])
    if not np.allclose(rot @ rot.T, np.eye(3), atol=1e-9) or np.linalg.det(rot) < 0:
        raise ValueError(f"directions {dirs} are not orthogonal and right-handed")
    return rot, np.array([np.linalg.norm(v) for v in vs])


def fill(el: Element, rot, lo, hi, origin=(0, 0, 0)) -> np.ndarray:
    """All sites of the lattice (crystal -> lab: ``lab = rot @ crystal + origin``) with lo <= r < hi."""
    lo, hi, origin = (np.asarray(x, float) for x in (lo, hi, origin))
    rot = np.asarray(rot, float)
    lengths = _cell_lengths(el)
    corners = np.array([[(lo, hi)[i][0], (lo, hi)[j][1], (lo, hi)[k][2]]
                        for i in (0, 1) for j in (0, 1) for k in (0, 1)])
    frac = ((corners - origin) @ rot) / lengths           # crystal coordinates, in cells
    n0, n1 = np.floor(frac.min(0)).astype(int) - 1, np.ceil(frac.max(0)).astype(int) + 1
    grid = np.stack(np.meshgrid(*[np.arange(a, b) for a, b in zip(n0, n1)], indexing="ij"), -1).reshape(-1, 1, 3)
    crys = ((grid + _BASIS[el.lattice][None]).reshape(-1, 3)) * lengths
    lab = crys @ rot.T + origin
    eps = 1e-6   # half-open box, robust to rounding: a site on the upper face belongs to the next image
    keep = np.all((lab >= lo - eps) & (lab < hi - eps), axis=1)
    return np.maximum(lab[keep], lo)


def _atomic_volume(el: Element) -> float:
    return float(np.prod(_cell_lengths(el)) / len(_BASIS[el.lattice]))


def _cell(box, origin=(0, 0, 0)) -> np.ndarray:
    return np.column_stack([np.diag(np.asarray(box, float)), np.asarray(origin, float)])


def neighbor_pairs(positions, cell, pbc, cutoff) -> np.ndarray:
    """Pairs (i, j), both directions, closer than ``cutoff`` (OVITO's cutoff finder)."""
    from ovito.data import CutoffNeighborFinder

    snap = Snapshot(positions, cell, pbc, np.zeros(len(positions)), CLASSES)
    pairs, _ = CutoffNeighborFinder(cutoff, snap.to_data_collection()).find_all()
    return np.asarray(pairs)


def shell_complete(el: Element, positions, cell, pbc, pairs=None) -> np.ndarray:
    """Whether each atom of a built (0 K, unrelaxed) structure has its full PTM template shell."""
    pairs = neighbor_pairs(positions, cell, pbc, shell_cutoff(el)) if pairs is None else pairs
    return np.bincount(pairs[:, 0], minlength=len(positions)) >= SHELL[el.lattice]


def hop_shells(el: Element, positions, cell, pbc) -> np.ndarray:
    """Neighbour hops from the nearest atom with an incomplete shell (0 = that surface shell)."""
    pairs = neighbor_pairs(positions, cell, pbc, shell_cutoff(el))
    shells = np.where(shell_complete(el, positions, cell, pbc, pairs), -1, 0)
    k = 0
    while np.any(shells < 0):
        front = shells[pairs[:, 0]] == k
        new = np.unique(pairs[front, 1])
        new = new[shells[new] < 0]
        if not len(new):
            break
        shells[new] = k + 1
        k += 1
    return shells


# ---------------------------------------------------------------------------------------------- builders


@dataclass
class Built:
    """A structure as constructed (0 K, unrelaxed), with its labels and per-atom construction data."""
    positions: np.ndarray
    box: np.ndarray                     # orthogonal box lengths, lower corner at the origin
    pbc: tuple
    labels: np.ndarray
    extra: dict = field(default_factory=dict)   # per-atom arrays kept by atom id through the MD
    info: dict = field(default_factory=dict)    # JSON description of the defect (goes into meta)
    ref: dict = field(default_factory=dict)     # construction data the labelling needs, not stored

    def snapshot(self) -> Snapshot:
        return Snapshot(self.positions, _cell(self.box), self.pbc, self.labels, CLASSES,
                        extra=dict(self.extra), meta=dict(self.info))


# surface normal along z; directions in orthogonal-cell units (hcp: a, a sqrt3, c)
SURFACES = {
    "FCC": {"111": ((1, -1, 0), (1, 1, -2), (1, 1, 1)), "100": ((1, 0, 0), (0, 1, 0), (0, 0, 1)),
            "110": ((0, 0, 1), (1, -1, 0), (1, 1, 0))},
    "BCC": {"110": ((0, 0, 1), (1, -1, 0), (1, 1, 0)), "100": ((1, 0, 0), (0, 1, 0), (0, 0, 1)),
            "111": ((1, -1, 0), (1, 1, -2), (1, 1, 1))},
    "HCP": {"0001": ((1, 0, 0), (0, 1, 0), (0, 0, 1)), "10-10": ((1, 0, 0), (0, 0, 1), (0, -1, 0))},
}


def _reps(size, periods) -> np.ndarray:
    return np.maximum(1, np.round(np.asarray(size, float) / periods)).astype(int)


def _layers(z, tol=1e-3):
    """Sorted distinct heights and the index of each atom's layer."""
    order = np.argsort(z)
    new = np.diff(z[order]) > tol
    rank = np.empty(len(z), int)
    rank[order] = np.concatenate([[0], np.cumsum(new)])
    heights = np.array([z[rank == k].mean() for k in range(rank.max() + 1)])
    return heights, rank


def slab(el: Element, plane: str, size=(20.0, 20.0, 30.0), vacuum: float | None = None) -> Built:
    """A slab with two free ``plane`` surfaces normal to z, periodic in x and y, about ``size`` Å.

    The slab is cut in the widest gap between layers (hcp (10-10): between the widely spaced pairs).
    ``extra["surface_layer"]``: 0 for the outermost layer on either side, 1, 2, ... inwards."""
    try:
        dirs = SURFACES[el.lattice][plane]
    except KeyError:
        raise ValueError(f"no {plane} surface for {el.lattice}; known: {', '.join(SURFACES[el.lattice])}") from None
    rot, per = orientation(el, dirs)
    box = per * _reps(size, per)
    pos = fill(el, rot, (0, 0, 0), box)
    heights, _ = _layers(pos[:, 2])
    gaps = np.diff(np.append(heights, heights[0] + box[2]))
    start = heights[(np.argmax(gaps) + 1) % len(heights)]       # first layer above the widest gap
    vacuum = 4 * el.a0 + 10.0 if vacuum is None else vacuum     # as md_metals: no interaction across
    pos[:, 2] = (pos[:, 2] - start + 1e-3) % box[2] - 1e-3 + vacuum / 2   # tolerance: one layer stays whole
    heights, layer = _layers(pos[:, 2])
    n = len(heights)
    surface_layer = np.minimum(layer, n - 1 - layer)
    box = box + [0, 0, vacuum]
    complete = shell_complete(el, pos, _cell(box), (True, True, True))
    labels = np.where(complete, LABEL[el.lattice], NO_LABEL).astype(np.int16)
    return Built(pos, box, (True, True, True), labels, {"surface_layer": surface_layer.astype(np.int16)},
                 dict(defect=f"slab with two free {el.lattice} ({plane}) surfaces normal to z, {n} layers",
                      surface=plane, surface_directions_xyz=[list(d) for d in dirs], layers=n,
                      layer_spacing_A=float(np.min(np.diff(heights))),
                      incomplete_shell_layers=sorted({int(k) for k in surface_layer[~complete]})))


@dataclass(frozen=True)
class Boundary:
    """A bicrystal: grain A with the directions ``a`` along x, y (boundary normal), z; grain B either
    the mirror image of A in the boundary plane (``b = None``: a symmetric tilt boundary about z) or a
    crystal with the directions ``b``. Directions in orthogonal-cell units (see ``direction``)."""
    name: str
    lattices: tuple
    a: tuple
    b: tuple | None
    sigma: int
    angle: float          # disorientation (deg), closed form
    axis: str             # rotation axis (Miller / Miller-Bravais)
    plane: str            # boundary plane(s)
    kind: str             # symmetric tilt, twist, mixed tilt-twist


_TILT001 = "[001]"
_TILT110 = "[1-10]"
BOUNDARIES = {b.name: b for b in [
    # ``angle``: the disorientation (smallest angle over the point group), in closed form
    # symmetric tilt about [001]: tilt 2 atan(k/h) for the (h k 0) plane (equivalent: 90 deg - that)
    Boundary("S5_310", ("FCC", "BCC"), ((1, -3, 0), (3, 1, 0), (0, 0, 1)), None, 5,
             math.degrees(2 * math.atan(1 / 3)), _TILT001, "(310)", "symmetric tilt"),
    Boundary("S5_210", ("FCC", "BCC"), ((1, -2, 0), (2, 1, 0), (0, 0, 1)), None, 5,
             90 - math.degrees(2 * math.atan(1 / 2)), _TILT001, "(210)", "symmetric tilt"),
    Boundary("S17_410", ("FCC", "BCC"), ((1, -4, 0), (4, 1, 0), (0, 0, 1)), None, 17,
             math.degrees(2 * math.atan(1 / 4)), _TILT001, "(410)", "symmetric tilt"),
    Boundary("S13_510", ("FCC", "BCC"), ((1, -5, 0), (5, 1, 0), (0, 0, 1)), None, 13,
             math.degrees(2 * math.atan(1 / 5)), _TILT001, "(510)", "symmetric tilt"),
    # symmetric tilt about [1-10]: tilt 2 atan(h sqrt2 / l) for the (h h l) plane (equivalent: 180 deg - that)
    Boundary("S3_112", ("FCC", "BCC"), ((1, 1, -1), (1, 1, 2), (1, -1, 0)), None, 3,
             60.0, _TILT110, "(112)",   # 2 atan(sqrt2/2) = 70.53 deg about <110> = 60 deg about <111>
             "symmetric tilt (fcc: incoherent twin; bcc: coherent twin)"),
    Boundary("S11_113", ("FCC", "BCC"), ((3, 3, -2), (1, 1, 3), (1, -1, 0)), None, 11,
             math.degrees(2 * math.atan(math.sqrt(2) / 3)), _TILT110, "(113)", "symmetric tilt"),
    Boundary("S9_221", ("FCC", "BCC"), ((1, 1, -4), (2, 2, 1), (1, -1, 0)), None, 9,
             180 - math.degrees(2 * math.atan(2 * math.sqrt(2))), _TILT110, "(221)", "symmetric tilt"),
    Boundary("S11_332", ("FCC", "BCC"), ((1, 1, -3), (3, 3, 2), (1, -1, 0)), None, 11,
             180 - math.degrees(2 * math.atan(3 * math.sqrt(2) / 2)), _TILT110, "(332)", "symmetric tilt"),
    Boundary("S19_331", ("FCC", "BCC"), ((1, 1, -6), (3, 3, 1), (1, -1, 0)), None, 19,
             180 - math.degrees(2 * math.atan(3 * math.sqrt(2))), _TILT110, "(331)", "symmetric tilt"),
    # twist about the boundary normal [001]: 2 atan(k/h) for in-plane directions [h +-k 0]
    Boundary("S5_001twist", ("FCC", "BCC"), ((3, 1, 0), (0, 0, 1), (1, -3, 0)), ((3, -1, 0), (0, 0, 1), (-1, -3, 0)),
             5, math.degrees(2 * math.atan(1 / 3)), "[001]", "(001)", "twist"),
    Boundary("S13_001twist", ("FCC", "BCC"), ((5, 1, 0), (0, 0, 1), (1, -5, 0)), ((5, -1, 0), (0, 0, 1), (-1, -5, 0)),
             13, math.degrees(2 * math.atan(1 / 5)), "[001]", "(001)", "twist"),
    # Sigma5 36.87 deg about [001] on the plane (101) of grain A = (4-35) of grain B: neither tilt nor twist
    Boundary("S5_101mixed", ("FCC", "BCC"), ((0, 1, 0), (1, 0, 1), (1, 0, -1)), ((3, 4, 0), (4, -3, 5), (4, -3, -5)),
             5, math.degrees(2 * math.atan(1 / 3)), "[001]", "(101)/(4-35)", "mixed tilt-twist"),
    # hcp, about [0001]: (5 1 0) in orthogonal-cell units is [31-40]-type, |.| = a sqrt7; cos(angle) = 13/14
    Boundary("S7_0001tilt", ("HCP",), ((5, 1, 0), (-3, 5, 0), (0, 0, 1)), None, 7,
             math.degrees(math.acos(13 / 14)), "[0001]", "{1-540}", "symmetric tilt"),
    Boundary("S7_0001twist", ("HCP",), ((5, 1, 0), (0, 0, 1), (3, -5, 0)), ((5, -1, 0), (0, 0, 1), (-3, -5, 0)),
             7, math.degrees(math.acos(13 / 14)), "[0001]", "(0001)", "twist"),
]}
MIRROR = np.diag([1.0, -1.0, 1.0])


def _common_length(p, q, max_ratio: int = 12) -> float:
    """Shortest length that is a whole multiple of both periods p and q."""
    for m in range(1, max_ratio + 1):
        n = m * p / q
        if abs(n - round(n)) < 1e-6 * n:
            return m * p
    raise ValueError(f"periods {p:.4f} and {q:.4f} Å have no common multiple up to {max_ratio}")


def grains(el: Element, gb: Boundary):
    """Rotations of grains A and B (rows: lab axes in crystal coordinates; B may be improper, a mirror)
    and the periods of the bicrystal along x, y (one grain), z."""
    if el.lattice not in gb.lattices:
        raise ValueError(f"boundary {gb.name} is defined for {gb.lattices}, {el.symbol} is {el.lattice}")
    rot_a, per_a = orientation(el, gb.a)
    if gb.b is None:
        return rot_a, MIRROR @ rot_a, per_a
    rot_b, per_b = orientation(el, gb.b)
    return rot_a, rot_b, np.array([_common_length(p, q) for p, q in zip(per_a, per_b)])


def misorientation(el: Element, rot_a, rot_b) -> float:
    """Smallest rotation angle (deg) between two grain orientations over the lattice's point group
    (a mirrored grain is first made proper by the inversion, a symmetry of all three lattices)."""
    rot_b = -rot_b if np.linalg.det(rot_b) < 0 else rot_b
    delta = rot_b.T @ rot_a                       # crystal A -> lab -> crystal B
    best = 180.0
    for op in _point_group(el.lattice):
        c = (np.trace(op @ delta) - 1) / 2
        best = min(best, math.degrees(math.acos(max(-1.0, min(1.0, c)))))
    return best


def _point_group(lattice: str) -> list[np.ndarray]:
    """Proper rotations of the point group: 24 for cubic, 12 for hexagonal (crystal Cartesian frame)."""
    if lattice in ("FCC", "BCC"):
        import itertools
        ops = []
        for perm in itertools.permutations(range(3)):
            for signs in itertools.product((1, -1), repeat=3):
                m = np.zeros((3, 3))
                m[range(3), perm] = signs
                if np.linalg.det(m) > 0:
                    ops.append(m)
        return ops
    ops = []
    for k in range(6):
        c, s = math.cos(k * math.pi / 3), math.sin(k * math.pi / 3)
        rz = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])
        ops += [rz, rz @ np.diag([1, -1, -1])]   # and the two-fold axes in the basal plane
    return ops


def sigma_cubic(rot_a, rot_b) -> int:
    """Sigma of a cubic misorientation: the smallest odd N making N * (misorientation matrix) integer."""
    rot_b = -rot_b if np.linalg.det(rot_b) < 0 else rot_b
    delta = rot_b.T @ rot_a
    for n in range(1, 200):
        if np.allclose(n * delta, np.round(n * delta), atol=1e-6):
            while n % 2 == 0:
                n //= 2
            return n
    raise ValueError("not a coincidence-site misorientation (Sigma > 200)")


def bicrystal(el: Element, gb: Boundary, reps=(1, 1, 1), shift=(0.0, 0.0, 0.0)) -> Built:
    """Two grains, A in 0 <= y < Ly/2 and B in Ly/2 <= y < Ly, periodic (two boundaries, at y = 0 and
    y = Ly/2). ``reps``: periods along x, per grain along y, along z. ``shift``: rigid translation of B
    (Å) along x and z; its y component moves the lattice planes of both grains away from the boundary
    planes (half a layer: no layer on the plane). Atoms closer than 0.6 d_nn to another are removed."""
    rot_a, rot_b, per = grains(el, gb)
    nx, ny, nz = reps
    box = np.array([nx * per[0], 2 * ny * per[1], nz * per[2]])
    ly = box[1]
    dx, dy, dz = shift
    pos_a = fill(el, rot_a, (0, 0, 0), (box[0], ly / 2, box[2]), origin=(0, dy, 0))
    # the mirror image of A in y = Ly/2 (equivalently y = 0) has its lattice origin at Ly - dy
    origin_b = (dx, ly - dy, dz) if gb.b is None else (dx, ly / 2 + dy, dz)
    pos_b = fill(el, rot_b, (0, ly / 2, 0), box, origin=origin_b)
    grain = np.concatenate([np.zeros(len(pos_a), np.int8), np.ones(len(pos_b), np.int8)])
    pos = np.concatenate([pos_a, pos_b])
    keep = _kept_after_removal(pos, box, 0.6 * el.d_nn)
    pos, grain = pos[keep], grain[keep]
    dist = np.minimum(_periodic_distance(pos[:, 1], 0.0, ly), _periodic_distance(pos[:, 1], ly / 2, ly))
    labels = np.where(dist < GB_BAND * el.d_nn, NO_LABEL, LABEL[el.lattice]).astype(np.int16)
    angle = misorientation(el, rot_a, rot_b)
    info = dict(defect=f"two {gb.kind} boundaries Sigma{gb.sigma} {gb.plane}, misorientation {angle:.2f} deg "
                       f"about {gb.axis}, at y = 0 and Ly/2; NO_LABEL within {GB_BAND} d_nn of a boundary plane",
                boundary=gb.name, boundary_kind=gb.kind, sigma=gb.sigma, misorientation_deg=angle,
                misorientation_closed_form_deg=gb.angle, axis=gb.axis, plane=gb.plane,
                grain_a_directions_xyz=[list(d) for d in gb.a],
                grain_b_directions_xyz="mirror of A in the boundary plane" if gb.b is None else [list(d) for d in gb.b],
                rigid_shift_A=[float(x) for x in shift], gb_y=[0.0, float(ly / 2)])
    return Built(pos, box, (True, True, True), labels, {"grain": grain}, info)


def _kept_after_removal(pos, box, rmin) -> np.ndarray:
    """Indices of the atoms md_metals' removal keeps (of two closer than ``rmin``, the later one goes)."""
    kept = _remove_close(pos, box, rmin)
    index = {tuple(row): i for i, row in enumerate(pos)}
    return np.sort([index[tuple(row)] for row in kept])


# stacking steps between consecutive (111) layers: +1 = fcc order (A->B->C), -1 = reversed
FAULTS = {"intrinsic": (-1,), "extrinsic": (-1, -1)}


def fcc_stacking(el: Element, nx: int, ny: int, n_layers: int, fault: str) -> Built:
    """fcc with (111) along z and one fault per periodic box: ``intrinsic``, ``extrinsic`` or ``twin``
    (a Sigma3 (111) coherent twin: two twin planes, at the middle and at the bottom of the box).

    Layer k sits in stacking position sum(steps[:k]) mod 3; it is locally hcp (ABA) exactly where two
    consecutive steps differ in sign, and those layers are labelled HCP, all others FCC. The number of
    layers must make the steps sum to 0 mod 3 (intrinsic: 2 mod 3, extrinsic: 1 mod 3, twin: even)."""
    if el.lattice != "FCC":
        raise ValueError(f"stacking faults are built in FCC, {el.symbol} is {el.lattice}")
    mid = n_layers // 2
    if fault == "twin":
        steps = np.where(np.arange(n_layers) < mid, 1, -1)
        planes = [(mid, mid), (0, 0)]                     # the twin planes: layers, not gaps
    elif fault in FAULTS:
        steps = np.ones(n_layers, int)
        steps[mid:mid + len(FAULTS[fault])] = FAULTS[fault]
        planes = [(mid, mid + len(FAULTS[fault]))]        # from the first to the last layer the fault touches
    else:
        raise ValueError(f"unknown fault {fault!r}; known: {', '.join(FAULTS)}, twin")
    if steps.sum() % 3:
        raise ValueError(f"{n_layers} layers cannot hold one {fault} fault periodically")
    offsets = np.concatenate([[0], np.cumsum(steps)[:-1]]) % 3
    hcp = steps != np.roll(steps, 1)                      # layer k: step into it vs step out of it
    a = el.a0
    bx, by, dz = a / math.sqrt(2), a * math.sqrt(6) / 2, a / math.sqrt(3)   # [1-10], [11-2], [111]
    gx, gy = np.meshgrid(np.arange(nx), np.arange(ny), indexing="ij")
    cell2d = (np.stack([gx, gy], -1).reshape(-1, 1, 2) + np.array([[0, 0], [0.5, 0.5]])[None]).reshape(-1, 2)
    pos, layer = [], []
    for k in range(n_layers):
        y = (cell2d[:, 1] + offsets[k] / 3.0) % ny
        pos.append(np.column_stack([cell2d[:, 0] * bx, y * by, np.full(len(y), (k + 0.5) * dz)]))
        layer.append(np.full(len(y), k))
    pos, layer = np.concatenate(pos), np.concatenate(layer)
    labels = np.where(hcp[layer], LABEL["HCP"], LABEL["FCC"]).astype(np.int16)
    z_planes = [float((p + q + 1) / 2 * dz) for p, q in planes]
    name = {"twin": "Sigma3 (111) coherent twin boundaries", "intrinsic": "intrinsic stacking fault",
            "extrinsic": "extrinsic stacking fault"}[fault]
    return Built(pos, np.array([nx * bx, ny * by, n_layers * dz]), (True, True, True), labels,
                 {"layer": layer.astype(np.int16)},
                 dict(defect=f"{name} on (111) (z); HCP: the layers whose neighbours above and below share a "
                      f"stacking position ({int(hcp.sum())} layers), all others FCC", fault=fault,
                      stacking="".join("ABC"[o] for o in offsets), hcp_layers=np.flatnonzero(hcp).tolist(),
                      fault_layers=[list(p) for p in planes], fault_z=z_planes))


def vacancy_crystal(el: Element, reps, fraction: float, divacancies: int, seed: int) -> Built:
    """A periodic crystal with ``fraction`` of its sites empty: single vacancies at random, no two
    within two shell radii of each other, plus ``divacancies`` nearest-neighbour pairs. Atoms within the
    shell radius of an empty site (an incomplete PTM shell) are NO_LABEL."""
    from scipy.spatial import cKDTree

    sites, box = crystal(el, reps)
    tree = cKDTree(sites, boxsize=box)
    rng = np.random.default_rng(seed)
    n_single = int(round(fraction * len(sites))) - 2 * divacancies
    if n_single < 0:
        raise ValueError("more divacancy sites than the vacancy fraction allows")
    blocked = np.zeros(len(sites), bool)
    empty, pairs = [], []
    for k in rng.permutation(len(sites)):
        if len(empty) >= n_single + 2 * divacancies:
            break
        if blocked[k]:
            continue
        group = [k]
        if len(pairs) < divacancies:         # the first ones picked become divacancies
            d, j = tree.query(sites[k], 2)
            group.append(int(j[1]))
            if blocked[group[1]]:
                continue
            pairs.append(group)
        empty += group
        for g in group:
            blocked[tree.query_ball_point(sites[g], 2 * shell_cutoff(el))] = True
    if len(empty) < n_single + 2 * divacancies:
        raise ValueError(f"box too small for {n_single} vacancies and {divacancies} divacancies kept apart")
    empty = np.array(sorted(empty))
    occupied = np.setdiff1d(np.arange(len(sites)), empty)
    pos = sites[occupied]
    dist, _ = cKDTree(sites[empty], boxsize=box).query(pos)
    labels = np.where(dist < shell_cutoff(el), NO_LABEL, LABEL[el.lattice]).astype(np.int16)
    return Built(pos, box, (True, True, True), labels, {"site": occupied.astype(np.int32)},
                 dict(defect=f"{len(empty)} vacancies ({len(empty) / len(sites):.2%} of {len(sites)} sites; "
                      f"{divacancies} nearest-neighbour divacancies); NO_LABEL within the shell radius "
                      f"{shell_cutoff(el):.2f} Å of an empty site", vacancy_fraction=len(empty) / len(sites),
                      vacancies=int(len(empty)), divacancies=int(divacancies), sites=int(len(sites))),
                 dict(sites=sites, box=box, empty=empty))


# edge dislocation: x = Burgers vector direction, y = glide-plane normal, z = line direction
DISLOCATIONS = {"FCC": ((1, -1, 0), (1, 1, 1), (-1, -1, 2)), "BCC": ((1, 1, 1), (-1, 1, 0), (-1, -1, 2))}


def dislocation_dipole(el: Element, nx: int, ny: int, nz: int, core_width: float = 2.0) -> Built:
    """A periodic dipole of edge dislocations (fcc: a/2[1-10](111), bcc: a/2[111](-110)), line along z.

    The lower half of the box holds nx + 1 lattice planes normal to the Burgers vector, the upper half
    nx; both are fitted to the box length (nx + 1/2) b, the misfit concentrated near x = Lx/2 by an
    arctan profile of width ``core_width`` b, so minimisation localises one dislocation on each of
    the two glide planes between the halves (y = Ly/2, and y = 0 across the periodic boundary), of
    opposite sign. ``extra["glide_layer"]``: 0 / 1 for the two atomic layers next to the glide plane at
    y = Ly/2 / y = 0, else -1."""
    if el.lattice not in DISLOCATIONS:
        raise ValueError(f"edge dislocations are built in FCC and BCC, {el.symbol} is {el.lattice}")
    rot, per = orientation(el, DISLOCATIONS[el.lattice])
    b = per[0]
    probe = fill(el, rot, (0, 0, 0), per)
    spacing = per[1] / len(np.unique(np.round(probe[:, 1], 4)))
    ly, lz, lx = ny * per[1], nz * per[2], (nx + 0.5) * b
    if ny * round(per[1] / spacing) % 2:
        raise ValueError("ny must give an even number of layers (two equal halves)")
    origin = (0, spacing / 2, 0)                         # layers at half spacings: no atom on a cut plane

    parts = []
    for lo_y, n_planes, sign in ((0.0, nx + 1, -1), (ly / 2, nx, 1)):
        length = n_planes * b
        p = fill(el, rot, (0, lo_y, 0), (length, lo_y + ly / 2, lz), origin=origin)
        u = p[:, 0] / length
        w = core_width * b / length
        s = (np.arctan((u - 0.5) / w) + np.arctan(0.5 / w)) / (2 * np.arctan(0.5 / w))   # 0 -> 1 around u = 1/2
        p[:, 0] = p[:, 0] + sign * 0.5 * b * s
        parts.append(p)
    pos = np.concatenate(parts)
    y = pos[:, 1]
    glide = np.full(len(pos), -1, np.int8)
    glide[np.abs(y - ly / 2) < spacing] = 0
    glide[(y < spacing) | (y > ly - spacing)] = 1
    labels = np.full(len(pos), LABEL[el.lattice], np.int16)
    return Built(pos, np.array([lx, ly, lz]), (True, True, True), labels, {"glide_layer": glide},
                 dict(defect=f"periodic dipole of {el.lattice} edge dislocations, b = {b:.3f} Å along x, glide "
                      "planes at y = Ly/2 and y = 0, lines along z", burgers_A=float(b),
                      directions_xyz=[list(d) for d in DISLOCATIONS[el.lattice]], glide_y=[float(ly / 2), 0.0],
                      layer_spacing_A=float(spacing)))


def nanoparticle(el: Element, shape: str, size: tuple) -> Built:
    """A particle in vacuum, centred in a box with 20 Å of vacuum on every side (non-periodic), from ASE:
    ``cuboctahedron`` / ``truncated-octahedron`` (fcc, size = (n,): Octahedron(length, cutoff) with
    length 2n+1 / 3n+1, cutoff n), ``decahedron`` (fcc, size = (p, q, r), Ino-Marks), ``dodecahedron``
    (bcc, size = (n100, n110): {100} and {110} facets), ``icosahedron`` (fcc element, size = (shells,)).

    ``extra["surface_layer"]``: 0 for atoms with an incomplete shell, k for k neighbour hops further in.
    Labels: the lattice for complete shells; in a decahedron the atoms on its five twin planes HCP and
    the atoms on the five-fold axis NO_LABEL; in an icosahedron only the centre is labelled (ICO)."""
    from ase.cluster import BodyCenteredCubic, Decahedron, Icosahedron, Octahedron

    fcc = {"cuboctahedron", "truncated-octahedron", "decahedron", "icosahedron"}
    if (shape in fcc) != (el.lattice == "FCC") and shape != "dodecahedron" or shape == "dodecahedron" and el.lattice != "BCC":
        raise ValueError(f"a {shape} particle of {el.symbol} ({el.lattice}) is not built")
    a = el.a0
    if shape == "cuboctahedron":
        atoms = Octahedron(el.symbol, 2 * size[0] + 1, size[0], latticeconstant=a)
    elif shape == "truncated-octahedron":
        atoms = Octahedron(el.symbol, 3 * size[0] + 1, size[0], latticeconstant=a)
    elif shape == "decahedron":
        atoms = Decahedron(el.symbol, *size, latticeconstant=a)
    elif shape == "icosahedron":
        atoms = Icosahedron(el.symbol, size[0], latticeconstant=a)
    elif shape == "dodecahedron":
        atoms = BodyCenteredCubic(el.symbol, [(1, 0, 0), (1, 1, 0)], list(size), latticeconstant=a)
    else:
        raise ValueError(f"unknown particle shape {shape!r}")
    pos = atoms.get_positions()
    pos -= pos.mean(0)
    margin = 20.0
    box = np.ptp(pos, axis=0) + 2 * margin
    pos = pos - pos.min(0) + margin
    pbc = (False, False, False)
    shells = hop_shells(el, pos, _cell(box), pbc)
    labels = np.where(shells > 0, LABEL[el.lattice], NO_LABEL).astype(np.int16)
    info = dict(defect=f"{el.lattice} {shape} of {len(pos)} atoms in vacuum (ASE cluster, size {list(size)}); "
                       "NO_LABEL: the surface shell (incomplete PTM shells)", shape=shape, size=list(size),
                diameter_A=float(2 * np.max(np.linalg.norm(pos - pos.mean(0), axis=1))))
    r = pos - box / 2 - (pos.mean(0) - box / 2)            # from the centre of the particle
    if shape == "decahedron":
        # ASE: five-fold axis along z through the centre, twin planes through the axis at 90 + 72 k deg
        rho = np.hypot(r[:, 0], r[:, 1])
        phi = np.degrees(np.arctan2(r[:, 1], r[:, 0]))
        off = (phi - 90.0) % 72.0
        on_twin = (np.minimum(off, 72.0 - off) * np.pi / 180 * rho < 0.1) & (rho > 0.1)
        on_axis = rho < 0.1
        labels[on_twin & (shells > 0)] = LABEL["HCP"]
        labels[on_axis] = NO_LABEL
        info["defect"] += "; HCP: atoms on the five twin planes, NO_LABEL: the five-fold axis"
    if shape == "icosahedron":
        labels[:] = NO_LABEL
        labels[np.argmin(np.linalg.norm(r, axis=1))] = LABEL["ICO"]
        info["defect"] += "; only the central atom labelled (ICO)"
    return Built(pos, box, pbc, labels, {"surface_layer": shells.astype(np.int16)}, info)


def _with_surfaces(el: Element, pos, box, pbc, info) -> Built:
    """Labels and ``surface_layer`` (neighbour hops) of a structure whose surfaces are where shells are
    incomplete (voids, cracks)."""
    shells = hop_shells(el, pos, _cell(box), pbc)
    labels = np.where(shells > 0, LABEL[el.lattice], NO_LABEL).astype(np.int16)
    return Built(pos, np.asarray(box, float), pbc, labels, {"surface_layer": shells.astype(np.int16)}, info)


def void_crystal(el: Element, reps, radius: float) -> Built:
    """A periodic crystal with a spherical void of ``radius`` Å at the centre of the box."""
    pos, box = crystal(el, reps)
    keep = np.linalg.norm(pos - box / 2, axis=1) >= radius
    return _with_surfaces(el, pos[keep], box, (True, True, True),
                          dict(defect=f"spherical void of radius {radius:.1f} Å ({int((~keep).sum())} atoms removed) "
                               "in a periodic crystal; NO_LABEL: incomplete shells", void_radius_A=radius))


def crack_crystal(el: Element, reps, half_length: float, half_opening: float) -> Built:
    """A periodic crystal (cube axes) with a through-thickness elliptical crack in the xz plane: atoms
    with (x/c)^2 + (y/h)^2 < 1 around the box centre removed (two crack tips along x, front along z)."""
    pos, box = crystal(el, reps)
    d = pos - box / 2
    keep = (d[:, 0] / half_length) ** 2 + (d[:, 1] / half_opening) ** 2 >= 1
    return _with_surfaces(el, pos[keep], box, (True, True, True),
                          dict(defect=f"unloaded elliptical crack, (100) faces, half-length {half_length:.1f} Å, "
                               f"half-opening {half_opening:.1f} Å, front along [001]; NO_LABEL: incomplete shells",
                               crack_half_length_A=half_length, crack_half_opening_A=half_opening))


def polycrystal(el: Element, length: float, n_grains: int, seed: int) -> Built:
    """A periodic cube of ``n_grains`` randomly oriented grains (Voronoi construction: every site of
    grain g's lattice that lies nearer g's centre than any other, periodic); of two atoms closer than
    0.6 d_nn one is removed. ``extra["grain"]``: grain index."""
    from scipy.spatial import cKDTree

    from tcp import _random_rotation

    rng = np.random.default_rng(seed)
    box = np.full(3, float(length))
    centres = rng.uniform(0, length, (n_grains, 3))
    owner = cKDTree(centres, boxsize=box)
    pos, grain, rotations = [], [], []
    for g in range(n_grains):
        rot = _random_rotation(rng)
        p = fill(el, rot, (0, 0, 0), box, origin=centres[g])
        p = p[owner.query(p)[1] == g]
        pos.append(p)
        grain.append(np.full(len(p), g, np.int16))
        rotations.append(rot.tolist())
    pos, grain = np.concatenate(pos), np.concatenate(grain)
    keep = _kept_after_removal(pos, box, 0.6 * el.d_nn)
    pos, grain = pos[keep], grain[keep]
    labels = np.where(_grain_boundary_distance(pos, box, grain, el.d_nn) < GB_BAND * el.d_nn, NO_LABEL,
                      LABEL[el.lattice]).astype(np.int16)
    return Built(pos, box, (True, True, True), labels, {"grain": grain},
                 dict(defect=f"{n_grains}-grain Voronoi polycrystal, random orientations; NO_LABEL within "
                      f"{GB_BAND} d_nn of a boundary (the distance to the nearest atom of another grain less "
                      "half a nearest-neighbour distance)",
                      grains=n_grains, grain_centres=centres.tolist(), grain_rotations=rotations))


def _grain_boundary_distance(pos, box, grain, d_nn) -> np.ndarray:
    """Distance from each atom to a boundary: to the nearest atom of another grain (periodic box) less
    d_nn / 2, as the boundary lies about half a neighbour distance before the first atom across it."""
    from scipy.spatial import cKDTree

    pos = pos % box
    dist = np.full(len(pos), np.inf)
    for g in np.unique(grain):
        mine = grain == g
        d, _ = cKDTree(pos[~mine], boxsize=box).query(pos[mine])
        dist[mine] = np.maximum(d - d_nn / 2, 0.0)
    return dist


# held-out lattices without a potential in the wheel: Gaussian displacements around the ideal sites
OOD_LATTICES = {
    # beta-Sn (A5, I4_1/amd), a = 5.832, c = 3.182 Å (Wyckoff 4a), 4 neighbours at 3.02 Å + 2 at 3.18 Å
    "beta-Sn": dict(cell=np.diag([5.832, 5.832, 3.182]), d_nn=3.022,
                    basis=[[0, 0, 0], [0.5, 0.5, 0.5], [0, 0.5, 0.25], [0.5, 0, 0.75]]),
    # simple hexagonal, c = a: 6 neighbours in the plane, 2 along c (Si-V-like); scaled to d_nn = 2.6 Å
    "simple hexagonal": dict(cell=np.array([[2.6, 0, 0], [-1.3, 1.3 * math.sqrt(3), 0], [0, 0, 2.6]]), d_nn=2.6,
                             basis=[[0, 0, 0]]),
    # single atomic layers (periodic in the plane, 20 A of cell along z, not periodic): close-packed
    # (a metal's (111) plane) and square; d_nn = 2.6 A
    "triangular monolayer": dict(cell=np.array([[2.6, 0, 0], [1.3, 1.3 * math.sqrt(3), 0], [0, 0, 20.0]]), d_nn=2.6,
                                 basis=[[0, 0, 0.5]], layer=True),
    "square monolayer": dict(cell=np.array([[2.6, 0, 0], [0, 2.6, 0], [0, 0, 20.0]]), d_nn=2.6,
                             basis=[[0, 0, 0.5]], layer=True),
}
MONOLAYERS = ("triangular monolayer", "square monolayer")


def ood_lattice(name: str, amplitude: float, seed: int, target_atoms: int = 2000) -> Snapshot:
    """A supercell of an OOD lattice with Gaussian displacements of 3D rms ``amplitude * d_nn``; every
    atom NO_LABEL and ``must_be_other``."""
    lat = OOD_LATTICES[name]
    rows, basis, layer = lat["cell"], np.asarray(lat["basis"], float), lat.get("layer", False)
    n = max(1, round((target_atoms / len(basis)) ** (1 / 2 if layer else 1 / 3)))
    heights = np.abs(np.linalg.det(rows)) / np.linalg.norm(np.cross(rows[[1, 2, 0]], rows[[2, 0, 1]]), axis=1)
    periodic = slice(0, 2) if layer else slice(0, 3)
    reps = np.maximum(1, np.round(n * heights[periodic].mean() / heights)).astype(int)
    if layer:
        reps[2] = 1
    grid = np.stack(np.meshgrid(*[np.arange(r) for r in reps], indexing="ij"), -1).reshape(-1, 1, 3)
    pos = ((grid + basis[None]).reshape(-1, 3)) @ rows
    rng = np.random.default_rng(seed)
    pos = pos + rng.normal(0.0, amplitude * lat["d_nn"] / math.sqrt(3), pos.shape)
    cell = np.column_stack([(rows * reps[:, None]).T, np.zeros(3)])
    meta = dict(kind="ood-lattice", lattice=name, element=None, T=None, T_over_Tm=None, amplitude_d_nn=amplitude,
                d_nn_A=lat["d_nn"], seed=seed, replicas=reps.tolist(), expected="Other",
                defect=f"ideal {name} with independent Gaussian displacements (3D rms {amplitude} d_nn): no "
                       "potential for it in the lammps wheel", protocol=["no MD: Gaussian displacements"])
    return Snapshot(pos, cell, (True, True, not layer), np.full(len(pos), NO_LABEL), CLASSES,
                    extra={"must_be_other": np.ones(len(pos), np.int8), "defect_distance": np.zeros(len(pos))},
                    meta=meta)


# ---------------------------------------------------------------------------------------------- analysis


def _circular_mean(x, length) -> float:
    angle = 2 * np.pi * np.asarray(x) / length
    return float((np.arctan2(np.sin(angle).mean(), np.cos(angle).mean()) / (2 * np.pi) * length) % length)


def quench(el: Element, positions, cell, pbc, iterations: int = 300) -> np.ndarray:
    """The inherent structure of a snapshot: a copy minimised by CG (fixed box), atoms in the same order."""
    run = _Run(el, positions - cell[:, 3], np.diag(cell[:, :3]), 0, pbc)
    try:
        run.lmp.commands_list(["min_style cg", f"minimize 0 1e-6 {iterations} {10 * iterations}"])
        return lammps_state(run.lmp)[0] + cell[:, 3]
    finally:
        run.close()


def _ptm(positions, cell, pbc, rmsd_cutoff=0.1) -> np.ndarray:
    """OVITO's PTM structure types (as md_metals.ptm_types, with ICO enabled: the icosahedra's centres)."""
    from ovito.modifiers import PolyhedralTemplateMatchingModifier as PTM

    data = Snapshot(positions, cell, pbc, np.zeros(len(positions)), CLASSES).to_data_collection()
    modifier = PTM(rmsd_cutoff=rmsd_cutoff)
    modifier.structures[PTM.Type.ICO].enabled = True
    data.apply(modifier)
    return np.asarray(data.particles["Structure Type"]).copy()


def dislocation_lines(el: Element, positions, cell, pbc, spacing: float = 0.5) -> list[dict]:
    """Dislocation lines found by OVITO's DXA: per segment the true Burgers vector, the points of the
    line (wrapped into the cell, resampled every ``spacing`` Å) and their mean."""
    from ovito.modifiers import DislocationAnalysisModifier as DXA

    data = Snapshot(positions, cell, pbc, np.zeros(len(positions)), CLASSES).to_data_collection()
    data.apply(DXA(input_crystal_structure=DXA.Lattice.FCC if el.lattice == "FCC" else DXA.Lattice.BCC))
    lines = []
    h, origin = cell[:, :3], cell[:, 3]
    for seg in data.dislocations.segments:
        p = np.asarray(seg.points, float)
        dense = [p[:1]]
        for a, b in zip(p[:-1], p[1:]):
            n = max(1, int(np.ceil(np.linalg.norm(b - a) / spacing)))
            dense.append(a + (b - a) * (np.arange(1, n + 1) / n)[:, None])
        dense = np.concatenate(dense)
        frac = np.linalg.solve(h, (dense - origin).T).T
        frac[:, list(pbc)] %= 1.0
        dense = frac @ h.T + origin
        lines.append(dict(burgers=[float(x) for x in seg.true_burgers_vector], points=dense,
                          length=float(seg.length)))
    return lines


def _distance_to_points(positions, points, cell) -> np.ndarray:
    """Distance from each position to the nearest of ``points`` in an orthogonal periodic cell."""
    from scipy.spatial import cKDTree

    box, origin = np.diag(cell[:, :3]), cell[:, 3]
    if not len(points):
        return np.full(len(positions), np.inf)
    tree = cKDTree((points - origin) % box, boxsize=box)
    return tree.query((positions - origin) % box)[0]


def _lattice_fraction(types, labels) -> float:
    """Fraction of the labelled atoms whose PTM type is their label."""
    code = np.array([PTM_CODE.get(c, -1) for c in CLASSES])
    m = labels >= 0
    return float(np.mean(types[m] == code[labels[m]])) if m.any() else float("nan")


def _premelted(labels, layer, types):
    """Labels with every layer (``layer`` index) that PTM finds less than PREMELTED in its labelled
    structure set to NO_LABEL; and the per-layer fractions."""
    labels = labels.copy()
    fractions = {}
    for k in np.unique(layer[labels >= 0]):
        m = (layer == k) & (labels >= 0)
        f = _lattice_fraction(types[m], labels[m])
        fractions[int(k)] = round(f, 4)
        if f < PREMELTED:
            labels[layer == k] = NO_LABEL
    return labels, fractions


# ---------------------------------------------------------------------------------------------- labelling
# Each labeller is made from the built structure and maps one MD snapshot (positions sorted by atom id,
# cell, pbc) to (labels, per-atom extras, meta additions, problem or None); a problem drops the run.

# a run whose labelled atoms PTM (no RMSD cutoff) finds less than this their structure is dropped as melted or
# transformed; a crystal well below it is molten (bulk bcc at 0.9 T_m: 0.92-0.96)
MELTED = 0.7


def _label_slab(el: Element, built: Built):
    layer = built.extra["surface_layer"]
    top = built.positions[:, 2] > built.box[2] / 2
    outer_lo, outer_hi = (layer == 0) & ~top, (layer == 0) & top

    def label(positions, cell, pbc):
        z = positions[:, 2]
        z_lo, z_hi = z[outer_lo].mean(), z[outer_hi].mean()      # the outermost layers, followed by id
        dist = np.clip(np.minimum(z - z_lo, z_hi - z), 0.0, None)
        types = _ptm(positions, cell, pbc, 0.0)
        labels, by_layer = _premelted(built.labels, layer, types)
        deep = layer >= layer.max() // 2
        return labels, {"defect_distance": dist, "surface_layer": layer}, dict(
            surfaces_z=[float(z_lo), float(z_hi)], ptm_no_cutoff_fraction_by_layer=by_layer,
            premelted_layers=sorted(k for k, f in by_layer.items() if f < PREMELTED)), \
            _melted(types[deep], built.labels[deep])
    return label


def _label_shells(el: Element, built: Built):
    """Particles, voids, cracks: distance to the nearest atom of the surface shell."""
    layer = built.extra["surface_layer"]

    def label(positions, cell, pbc):
        dist = _distance_to_points(positions, positions[layer == 0], cell) if any(pbc) else \
            _nearest(positions, positions[layer == 0])
        types = _ptm(positions, cell, pbc, 0.0)
        labels, by_layer = _premelted(built.labels, layer, types)
        deep = layer >= max(1, layer.max() // 2)
        return labels, {"defect_distance": dist, "surface_layer": layer}, dict(
            ptm_no_cutoff_fraction_by_layer=by_layer,
            premelted_layers=sorted(k for k, f in by_layer.items() if f < PREMELTED)), \
            _melted(types[deep], built.labels[deep])
    return label


def _nearest(positions, points) -> np.ndarray:
    from scipy.spatial import cKDTree

    return cKDTree(points).query(positions)[0]


def _melted(types, labels) -> str | None:
    f = _lattice_fraction(types, labels)
    return None if f >= MELTED else f"interior only {f:.3f} its labelled structure by PTM (no RMSD cutoff): " \
                                     "melted or transformed"


def _label_stacking(el: Element, built: Built):
    layer = built.extra["layer"]

    def label(positions, cell, pbc):
        lz, z = cell[2, 2], positions[:, 2] - cell[2, 3]
        planes = [_circular_mean(z[(layer == p) | (layer == q)], lz) for p, q in built.info["fault_layers"]]
        dist = np.min([_periodic_distance(z, zp, lz) for zp in planes], axis=0)
        types = _ptm(positions, cell, pbc, 0.0)
        return built.labels, {"defect_distance": dist, "layer": layer}, dict(fault_z=planes), \
            _melted(types, built.labels)
    return label


def _label_bicrystal(el: Element, built: Built):
    """Boundaries followed from snapshot to snapshot: each is the circular mean (along y) of the atoms
    that are not the lattice by PTM in the quenched snapshot, within Ly/4 of its previous position.
    NO_LABEL within GB_BAND d_nn of a boundary plane or, where the boundary has widened (premelting
    near T_m, an incoherent twin dissociated into a 9R layer), within one d_nn beyond the distance that
    holds 98 % of those quenched non-lattice atoms."""
    state = {"gb_y": list(built.info["gb_y"]), "ly": built.box[1]}
    code = PTM_CODE[el.lattice]

    def label(positions, cell, pbc):
        ly = cell[1, 1]
        quenched = quench(el, positions, cell, pbc)
        types = _ptm(quenched, cell, pbc)
        yq = (quenched[:, 1] - cell[1, 3]) % ly
        found = []
        for y0 in state["gb_y"]:
            y0 = y0 * ly / state["ly"]
            near = (types != code) & (_periodic_distance(yq, y0, ly) < ly / 4)
            found.append(_circular_mean(yq[near], ly) if near.sum() >= 3 else y0)
        state.update(gb_y=found, ly=ly)
        core = np.min([_periodic_distance(yq[types != code], y0, ly) for y0 in found], axis=0)
        band = max(GB_BAND * el.d_nn, float(np.quantile(core, 0.98)) + el.d_nn if len(core) else 0.0)
        y = positions[:, 1] - cell[1, 3]
        dist = np.min([_periodic_distance(y, y0, ly) for y0 in found], axis=0)
        labels = np.where(dist < band, NO_LABEL, LABEL[el.lattice]).astype(np.int16)
        outside = (labels >= 0)
        fraction = float(np.mean(types[outside] == code)) if outside.any() else 0.0
        problem = f"the boundaries fill the grains (band {band:.1f} Å, Ly = {ly:.1f} Å)" if band > ly / 4 - el.d_nn \
            else None if fraction >= WIDE_BOUNDARY else \
            f"only {fraction:.3f} of the labelled atoms are the lattice in the quenched snapshot"
        return labels, {"defect_distance": dist, "grain": built.extra["grain"]}, dict(
            gb_y=found, gb_band_A=band, quenched_lattice_fraction_labelled=fraction,
            quenched_non_lattice_within_band=float(np.mean(~outside[types != code])) if np.any(types != code)
            else 1.0), problem or _melted(_ptm(positions, cell, pbc, 0.0), labels)
    return label


def _label_vacancies(el: Element, built: Built):
    """Vacancies found again in every snapshot: each atom goes to the nearest site of the reference
    lattice (scaled to the current box); sites holding no atom or two are the defects."""
    from scipy.spatial import cKDTree

    sites, ref_box = built.ref["sites"], built.ref["box"]
    tree = cKDTree(sites, boxsize=ref_box)
    built_empty = set(built.ref["empty"].tolist())

    def label(positions, cell, pbc):
        box = np.diag(cell[:, :3])
        ref = ((positions - cell[:, 3]) / box % 1.0) * ref_box
        site = tree.query(ref)[1]
        occupancy = np.bincount(site, minlength=len(sites))
        defects = np.flatnonzero(occupancy != 1)
        scale = float(np.mean(box / ref_box))
        dist = cKDTree(sites[defects], boxsize=ref_box).query(sites[site])[0] * scale
        labels = np.where((dist < shell_cutoff(el) * scale) | (occupancy[site] > 1), NO_LABEL,
                          LABEL[el.lattice]).astype(np.int16)
        empty = set(np.flatnonzero(occupancy == 0).tolist())
        return labels, {"defect_distance": dist}, dict(
            vacancies_found=len(empty), vacancies_moved=len(empty - built_empty),
            doubly_occupied_sites=int(np.sum(occupancy > 1))), _melted(_ptm(positions, cell, pbc, 0.0), labels)
    return label


def _label_dislocations(el: Element, built: Built):
    """Lines from OVITO's DXA on the quenched snapshot. fcc: the two Shockley partials of each glide
    plane bound a stacking-fault ribbon: the atoms of the two layers next to that glide plane between
    them (the shorter way round, along x) are HCP. Atoms within CORE_BAND d_nn of a line: NO_LABEL."""
    glide = built.extra["glide_layer"]
    expected = 2 if el.lattice == "FCC" else 1

    def label(positions, cell, pbc):
        quenched = quench(el, positions, cell, pbc)
        lines = dislocation_lines(el, quenched, cell, pbc)
        lx, ly = cell[0, 0], cell[1, 1]
        labels = np.full(len(positions), LABEL[el.lattice], np.int16)
        x, y = positions[:, 0] - cell[0, 3], positions[:, 1] - cell[1, 3]
        found, ribbons = [], []
        for plane, y0 in enumerate(built.info["glide_y"]):
            y0 = y0 * ly / built.box[1]
            mine = [ln for ln in lines if _periodic_distance(_circular_mean(ln["points"][:, 1] - cell[1, 3], ly),
                                                             y0, ly) < built.info["layer_spacing_A"] * 2]
            found.append(len(mine))
            if len(mine) != expected:
                continue
            if expected == 2:
                x1, x2 = sorted(_circular_mean(ln["points"][:, 0] - cell[0, 3], lx) for ln in mine)
                inside = (x > x1) & (x < x2) if x2 - x1 < lx / 2 else (x < x1) | (x > x2)
                labels[(glide == plane) & inside] = LABEL["HCP"]
                ribbons.append(float(min(x2 - x1, lx - x2 + x1)))
        points = np.concatenate([ln["points"] for ln in lines]) if lines else np.zeros((0, 3))
        dist = _distance_to_points(positions, points, cell)
        labels[dist < CORE_BAND * el.d_nn] = NO_LABEL
        types = _ptm(quenched, cell, pbc)
        agreement = _lattice_fraction(types, labels)
        problem = f"DXA found {found} lines on the two glide planes, expected {expected} each" \
            if found != [expected, expected] else None if agreement >= WIDE_BOUNDARY else \
            f"only {agreement:.3f} of the labelled atoms are their label in the quenched snapshot"
        return labels, {"defect_distance": dist, "glide_layer": glide}, dict(
            dislocation_lines=[dict(burgers=ln["burgers"], length_A=ln["length"], mean_A=[
                round(_circular_mean(ln["points"][:, d] - cell[d, 3], cell[d, d]) + cell[d, 3], 3) for d in range(3)])
                for ln in lines],
            ribbon_widths_A=ribbons, quenched_ptm_agreement_labelled=agreement), problem
    return label


def _label_polycrystal(el: Element, built: Built):
    grain = built.extra["grain"]

    def label(positions, cell, pbc):
        dist = _grain_boundary_distance(positions - cell[:, 3], np.diag(cell[:, :3]), grain, el.d_nn)
        labels = np.where(dist < GB_BAND * el.d_nn, NO_LABEL, LABEL[el.lattice]).astype(np.int16)
        return labels, {"defect_distance": dist, "grain": grain}, {}, None
    return label


# ---------------------------------------------------------------------------------------------- runs

EV_PER_A2_TO_MJ_PER_M2 = 16021.766   # 1 eV/Å^2 in mJ/m^2
MINIMISE = "minimize 0 1e-5 1000 10000"


def _minimised(el: Element, positions, box, seed, pbc=(True, True, True)):
    """(energy eV, positions) after a CG minimisation in the fixed box."""
    run = _Run(el, positions, box, seed, pbc)
    try:
        run.lmp.commands_list(["min_style cg", MINIMISE])
        return float(run.lmp.get_thermo("pe")), lammps_state(run.lmp)[0]
    finally:
        run.close()


def cohesive_energy(el: Element) -> float:
    """Energy per atom (eV) of the perfect crystal at the 0 K lattice constant a0."""
    pos, box = crystal(el, (4, 3, 3) if el.lattice == "HCP" else (4, 4, 4))
    return _minimised(el, pos, box, 0)[0] / len(pos)


def relaxed_bicrystal(el: Element, gb: Boundary, reps, seed: int, search_size: float = 9.0) -> Built:
    """The bicrystal after minimisation, grain B rigidly translated by the best of 0 or half a period
    along x and z (and, for mirror-built tilt boundaries, lattice planes on or half a layer off the
    boundary planes): candidates are compared by boundary energy on a cross-section of about
    ``search_size`` Å (energies per area do not need the full one); the energies go into ``info``."""
    rot_a, per_a = orientation(el, gb.a)
    probe = fill(el, rot_a, (0, 0, 0), per_a)
    spacing = per_a[1] / len(np.unique(np.round(probe[:, 1], 4)))
    per = grains(el, gb)[2]
    small = (int(math.ceil(search_size / per[0])), reps[1], int(math.ceil(search_size / per[2])))
    e0 = cohesive_energy(el)
    tried = []
    for dy in ((0.0, spacing / 2) if gb.b is None else (0.0,)):
        for fx in (0.0, 0.5):
            for fz in (0.0, 0.5):
                shift = (fx * per_a[0], dy, fz * per_a[2])
                b = bicrystal(el, gb, small, shift)
                energy, pos = _minimised(el, b.positions, b.box, seed)
                gamma = (energy - len(pos) * e0) / (2 * b.box[0] * b.box[2]) * EV_PER_A2_TO_MJ_PER_M2
                tried.append(dict(shift_A=[round(x, 4) for x in shift], gb_energy_mJ_m2=round(gamma, 1)))
    best = min(tried, key=lambda t: t["gb_energy_mJ_m2"])
    b = bicrystal(el, gb, reps, best["shift_A"])
    energy, pos = _minimised(el, b.positions, b.box, seed)
    gamma = (energy - len(pos) * e0) / (2 * b.box[0] * b.box[2]) * EV_PER_A2_TO_MJ_PER_M2
    b.info.update(gb_energy_mJ_m2=gamma, translations_tried=tried, search_replicas=list(small),
                  construction="rigid-translation search (lowest boundary energy after CG minimisation), "
                               "then the full bicrystal minimised")
    return replace(b, positions=pos)


def _simulate(spec: RunSpec, el: Element, built: Built, couple: str | None, labeller, minimise: bool = False):
    """The MD of one run (as md_metals: NPT at P = 0 with the box set to its mean, NVT, snapshots
    spec.t_gap apart; ``couple`` None: a particle in vacuum, NVT only) and its labelled snapshots."""
    T = spec.fraction * el.T_m
    run = _Run(el, built.positions, built.box, spec.seed, built.pbc)
    try:
        if minimise:
            run.lmp.commands_list(["min_style cg", MINIMISE])
            run.log.append("CG minimisation (fixed box)")
        if couple:
            run.equilibrate(T, spec, couple)
        else:
            run.lmp.commands_list([f"velocity all create {T} {spec.seed} mom yes rot yes dist gaussian",
                                   "fix mom all momentum 100 linear 1 1 1 angular"])
            run.nvt(T)
            run.run(spec.t_equil + spec.t_nvt, f"NVT {T:.0f} K in vacuum (momentum and angular momentum "
                    "zeroed every 100 steps)")
        snaps = []
        for k in range(spec.n_snap):
            if k:
                run.run(spec.t_gap, f"NVT {T:.0f} K")
            positions, cell, pbc, v = run.state()
            labels, extra, info, problem = labeller(positions, cell, pbc)
            if problem:
                return snaps, f"snapshot {k}: {problem}"
            meta = _meta(spec, el, run, T, snapshot=k)
            meta.update(built.info)
            meta.update(info, dataset=spec.extra.get("dataset", DATASET),
                        T_kinetic=run.kinetic_temperature(v))
            snaps.append(Snapshot(positions, cell, pbc, labels, CLASSES, extra=dict(extra, velocity=v), meta=meta))
        return snaps, None
    finally:
        run.close()


def _run_lattice(spec: RunSpec):
    x = spec.extra
    snap = ood_lattice(x["lattice"], x["amplitude"], spec.seed, x.get("atoms", 2000))
    snap.meta.update(split=spec.split, dataset=x["dataset"])
    return [snap], None


def _run_tcp(spec: RunSpec):
    """A Frank-Kasper phase, metastable in a wheel potential, from tcp.md_snapshot (NPT, one frame)."""
    import tcp

    snap, match = tcp.md_snapshot(spec.extra["system"], spec.extra["T"], spec.seed, spec.extra.get("atoms", 2000))
    if match < tcp.MIN_QUENCHED_MATCH:
        return [], f"the phase did not survive: {match:.3f} of the quenched atoms keep their Voronoi coordination"
    n = len(snap)
    meta = dict(snap.meta, kind=spec.kind, lattice=snap.meta["phase"], element="+".join(
        dict.fromkeys(snap.meta["elements"].values())), T=spec.extra["T"], T_over_Tm=None, split=spec.split,
        dataset=spec.extra["dataset"], expected="Other", defect=f"{snap.meta['phase']} phase ({snap.meta['md_system']}), "
        "a Frank-Kasper structure no class describes")
    # the Z12 sites' first shell is an icosahedron (PTM calls them ICO): ICO or Other is right there;
    # the Z14, Z15 and Z16 sites have no class
    icosahedral = snap.extra["fk_coordination"] == 12
    return [Snapshot(snap.positions, snap.cell, snap.pbc, np.full(n, NO_LABEL), CLASSES, species=snap.species,
                     extra={"must_be_other": (~icosahedral).astype(np.int8), "icosahedral": icosahedral.astype(np.int8),
                            "fk_coordination": snap.extra["fk_coordination"], "defect_distance": np.zeros(n)},
                     meta=meta)], None


def _run(spec: RunSpec):
    """Build, simulate and label one run: (snapshots, None) or (snapshots so far, why it was dropped)."""
    k, x = spec.kind, spec.extra
    if k == "ood-lattice":
        return _run_tcp(spec) if "system" in x else _run_lattice(spec)
    if k == "frank-kasper":
        return _run_tcp(spec)
    el = element(spec.element)
    if k == "surface":
        b = slab(el, x["plane"], x["size"])
        return _simulate(spec, el, b, "xy", _label_slab(el, b))
    if k in ("stacking", "gb") and x.get("fault"):
        b = fcc_stacking(el, *spec.reps, x["fault"])
        if x["fault"] == "twin":
            b.info.update(boundary="S3_111twin", boundary_kind="coherent twin", sigma=3, misorientation_deg=60.0,
                          axis="[111]", plane="(111)")
        return _simulate(spec, el, b, "aniso", _label_stacking(el, b))
    if k == "gb":
        b = relaxed_bicrystal(el, BOUNDARIES[x["boundary"]], spec.reps, spec.seed)
        return _simulate(spec, el, b, "aniso", _label_bicrystal(el, b))
    if k == "vacancy":
        b = vacancy_crystal(el, spec.reps, x["fraction"], x["divacancies"], spec.seed)
        return _simulate(spec, el, b, "aniso" if el.lattice == "HCP" else "iso", _label_vacancies(el, b))
    if k == "dislocation":
        b = dislocation_dipole(el, *spec.reps)
        return _simulate(spec, el, b, "aniso", _label_dislocations(el, b), minimise=True)
    if k == "nanoparticle":
        b = nanoparticle(el, x["shape"], x["size"])
        return _simulate(spec, el, b, None, _label_shells(el, b))
    if k in ("void", "crack"):
        b = void_crystal(el, spec.reps, x["radius"]) if k == "void" else \
            crack_crystal(el, spec.reps, x["half_length"], x["half_opening"])
        return _simulate(spec, el, b, "iso", _label_shells(el, b))
    if k == "polycrystal":
        b = polycrystal(el, x["length"], x["grains"], spec.seed)
        return _simulate(spec, el, b, "iso", _label_polycrystal(el, b), minimise=True)
    raise ValueError(f"unknown kind of run {k!r}")


# ---------------------------------------------------------------------------------------------- plan

SPLITS = ("train", "val", "test")
FRACTIONS = (0.05, 0.25, 0.5, 0.75, 0.9)
GB_FRACTIONS = (0.25, 0.5, 0.75, 0.9)
TRAIN_ELEMENTS = {"FCC": ("Cu", "Al", "Ni"), "BCC": ("Fe", "W"), "HCP": ("Mg", "Zr")}
PROTOCOL = dict(t_equil=3.0, t_nvt=1.0, n_snap=2, t_gap=2.0)   # ps, as md_metals' defect runs


def _tag(frac: float) -> str:
    return f"T{round(frac * 100):03d}"


def _fraction_ok(el: Element, frac: float) -> bool:
    return frac * el.T_m <= el.hcp_max_T


def _slab_size(el: Element, atoms: int) -> tuple:
    """(L, L, 1.5 L) Å holding about ``atoms`` atoms."""
    side = (atoms * _atomic_volume(el) / 1.5) ** (1 / 3)
    return (side, side, 1.5 * side)


def _gb_reps(el: Element, name: str, size=(22.0, 28.0, 22.0)) -> tuple:
    """Periods along x, per grain along y, along z for about ``size`` Å (x, one grain, z)."""
    return tuple(int(r) for r in _reps(size, grains(el, BOUNDARIES[name])[2]))


def plan(split: str, quick: bool = False) -> list[RunSpec]:
    """The runs of one split (train, val or test = the held-out openworld-ood)."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {SPLITS}")
    dataset = _dataset("ood" if split == "test" else split, quick)
    specs: list[RunSpec] = []

    def add(kind, symbol, detail, frac, seed, reps=(1, 1, 1), protocol=None, **extra):
        name = "_".join(str(p) for p in (kind, symbol, detail, _tag(frac) if frac is not None else "") if p)
        specs.append(RunSpec(kind, symbol, split, name, seed, tuple(reps), frac or 0.0,
                             **(protocol or (QUICK if quick else PROTOCOL)), extra=dict(extra, dataset=dataset)))

    if quick:
        _quick_plan(split, add)
        return specs
    base = {"train": 20000, "val": 40000, "test": 60000}[split]
    if split == "test":
        _ood_plan(add, base)
        return specs
    train = split == "train"
    seed = iter(range(base, base + 10000))
    fcc = TRAIN_ELEMENTS["FCC"] if train else ("Ag",)

    def other(lattice, i):           # train cycles through its elements; val takes the other bcc/hcp one
        names = TRAIN_ELEMENTS[lattice]
        return names[i % len(names)] if train else names[(i + 1) % len(names)]

    # free surfaces
    fractions = FRACTIONS if train else GB_FRACTIONS
    for lattice, planes in SURFACES.items():
        for i, plane in enumerate(planes):
            for f in fractions:
                j = FRACTIONS.index(f)            # the same (plane, T) gets the other element in val
                s = fcc[(i + j) % len(fcc)] if lattice == "FCC" else other(lattice, i + j)
                if lattice == "HCP" and not _fraction_ok(ELEMENTS[s], f):
                    s = "Mg"
                add("surface", s, plane, f, next(seed), plane=plane,
                    size=_slab_size(ELEMENTS[s], 2500))
    # grain boundaries
    gbs = {"train": {"FCC": ("S5_310", "S5_210", "S3_112", "S11_113", "S9_221", "S5_001twist", "S13_001twist",
                             "S3_111twin"),
                     "BCC": ("S5_310", "S5_210", "S3_112", "S11_332", "S5_001twist"),
                     "HCP": ("S7_0001tilt", "S7_0001twist")},
           "val": {"FCC": ("S5_310", "S17_410", "S13_510", "S19_331", "S11_332", "S3_111twin"),
                   "BCC": ("S17_410", "S13_510", "S9_221", "S3_112"),
                   "HCP": ("S7_0001tilt", "S7_0001twist")}}[split]
    gb_fractions = {"FCC": GB_FRACTIONS if train else (0.5, 0.75), "BCC": GB_FRACTIONS if train else (0.5, 0.75),
                    "HCP": (0.25, 0.5, 0.75) if train else (0.5,)}
    for lattice, names in gbs.items():
        for i, name in enumerate(names):
            for f in gb_fractions[lattice]:
                j = GB_FRACTIONS.index(f)
                s = fcc[(i + j) % len(fcc)] if lattice == "FCC" else other(lattice, i + j)
                if lattice == "HCP":
                    s = "Mg" if train or not _fraction_ok(ELEMENTS["Zr"], f) else "Zr"
                el = ELEMENTS[s]
                if name == "S3_111twin":
                    add("gb", s, name, f, next(seed), (10, 6, 20), fault="twin", boundary=name)
                else:
                    add("gb", s, name, f, next(seed), _gb_reps(el, name), boundary=name)
    # vacancies: 0.5, 1 or 2 %, two divacancies each
    sizes = {"FCC": (9, 9, 9), "BCC": (11, 11, 11), "HCP": (11, 7, 9)}
    for lattice in ("FCC", "BCC", "HCP"):
        for f in fractions:
            j = FRACTIONS.index(f)
            s = fcc[j % len(fcc)] if lattice == "FCC" else other(lattice, j)
            if not _fraction_ok(ELEMENTS[s], f):
                s = "Mg"
            add("vacancy", s, f"c{(0.005, 0.01, 0.02)[j % 3] * 1000:03.0f}", f, next(seed), sizes[lattice],
                fraction=(0.005, 0.01, 0.02)[j % 3], divacancies=2)
    # edge-dislocation dipoles
    dis = {"train": [("Cu", 0.05), ("Cu", 0.5), ("Al", 0.25), ("Ni", 0.75), ("Fe", 0.25), ("W", 0.5),
                     ("Fe", 0.75), ("W", 0.05)],
           "val": [("Ag", 0.5), ("Ag", 0.25), ("W", 0.25), ("Fe", 0.5)]}[split]
    for s, f in dis:
        reps = (24, 10, 3) if ELEMENTS[s].lattice == "FCC" else (24, 12, 2)
        add("dislocation", s, "edge", f, next(seed), reps)
    # stacking faults
    for fault, layers in (("intrinsic", 20), ("extrinsic", 19)):
        for j, f in enumerate(FRACTIONS if train else (0.5, 0.9)):
            add("stacking", fcc[j % len(fcc)], fault, f, next(seed), (10, 6, layers), fault=fault)
    # nanoparticles (small particles melt below T_m: the larger ones take the higher temperatures)
    parts = {"train": [("Cu", "cuboctahedron", (4,), 0.25), ("Al", "cuboctahedron", (5,), 0.5),
                       ("Ni", "truncated-octahedron", (3,), 0.5), ("Cu", "truncated-octahedron", (4,), 0.75),
                       ("Cu", "decahedron", (4, 3, 2), 0.5), ("Ni", "decahedron", (3, 3, 1), 0.25),
                       ("Fe", "dodecahedron", (7, 6), 0.5), ("W", "dodecahedron", (5, 4), 0.25)],
             "val": [("Ag", "cuboctahedron", (5,), 0.5), ("Ag", "decahedron", (4, 3, 2), 0.25),
                     ("Ag", "truncated-octahedron", (4,), 0.75), ("W", "dodecahedron", (7, 6), 0.5),
                     ("Fe", "dodecahedron", (5, 4), 0.25)]}[split]
    for s, shape, size, f in parts:
        add("nanoparticle", s, shape, f, next(seed), shape=shape, size=size)
    if train:  # Kasper polyhedra (last: the seeds of the runs above stay as they were)
        for T in (300.0, 700.0, 1100.0):
            add("frank-kasper", "", f"Mu-FeCr_{T:.0f}K", None, next(seed), system="Mu-FeCr", T=T)
    return specs


QUICK = dict(t_equil=0.6, t_nvt=0.3, n_snap=1, t_gap=0.2)


def _quick_plan(split, add):
    """Tiny runs of every kind (seconds), for tests."""
    if split == "train":
        add("surface", "Cu", "111", 0.5, 1, plane="111", size=(12, 12, 18))
        add("gb", "Cu", "S5_310", 0.5, 2, (2, 3, 3), boundary="S5_310")
        add("gb", "Cu", "S3_111twin", 0.25, 3, (3, 2, 12), fault="twin", boundary="S3_111twin")
        add("vacancy", "Fe", "c010", 0.5, 4, (6, 6, 6), fraction=0.01, divacancies=1)
        add("dislocation", "Cu", "edge", 0.05, 5, (16, 6, 2))
        add("stacking", "Cu", "extrinsic", 0.25, 6, (3, 2, 13), fault="extrinsic")
        add("nanoparticle", "Cu", "decahedron", 0.25, 7, shape="decahedron", size=(3, 2, 1))
    elif split == "val":
        add("surface", "Ag", "100", 0.5, 11, plane="100", size=(10, 10, 14))
    else:
        add("ood-lattice", "", "beta-Sn", None, 21, lattice="beta-Sn", amplitude=0.05, atoms=500)
        add("void", "Cu", "r6", 0.5, 22, (5, 5, 5), radius=4.0)
        add("nanoparticle", "Cu", "icosahedron147", 0.25, 23, shape="icosahedron", size=(4,))


def _ood_plan(add, base):
    """Held out: lattices no class describes, and defect kinds not in training."""
    seed = iter(range(base, base + 1000))
    for name in (n for n in OOD_LATTICES if n not in MONOLAYERS):
        for u in (0.04, 0.08):
            add("ood-lattice", "", f"{name.replace(' ', '-')}_u{round(u * 100):02d}", None, next(seed),
                lattice=name, amplitude=u)
    for system, T in (("A15-W", 600.0), ("Sigma-Ta", 600.0), ("C15-ZrCu2", 500.0)):
        add("ood-lattice", "", f"{system}_{T:.0f}K", None, next(seed), system=system, T=T)
    add("polycrystal", "Cu", "5grains", 0.5, next(seed), length=48.0, grains=5)
    add("polycrystal", "Fe", "4grains", 0.5, next(seed), length=38.0, grains=4)
    add("gb", "Cu", "S5_101mixed", 0.5, next(seed), _gb_reps(ELEMENTS["Cu"], "S5_101mixed"), boundary="S5_101mixed")
    add("void", "Cu", "r8", 0.5, next(seed), (9, 9, 9), radius=8.0)
    add("void", "Fe", "r7", 0.5, next(seed), (11, 11, 11), radius=7.0)
    add("crack", "Cu", "2c36", 0.25, next(seed), (14, 8, 4), half_length=18.0, half_opening=3.0)
    add("nanoparticle", "Cu", "icosahedron147", 0.25, next(seed), shape="icosahedron", size=(4,))
    add("nanoparticle", "Ag", "icosahedron309", 0.25, next(seed), shape="icosahedron", size=(5,))
    for name in MONOLAYERS:   # after the others: their seeds stay as they were
        for u in (0.04, 0.08, 0.16):
            add("ood-lattice", "", f"{name.replace(' ', '-')}_u{round(u * 100):02d}", None, next(seed),
                lattice=name, amplitude=u)


# ---------------------------------------------------------------------------------------------- driver


def _execute(args):
    spec, root, force = args
    t0 = time.time()
    outdir = root / spec.extra["dataset"] / spec.split
    names = [f"{spec.name}_s{k}" for k in range(spec.n_snap)]
    marker = outdir / f"{spec.name}.dropped.json"
    if not force and (all((outdir / f"{n}.npz").exists() for n in names) or marker.exists()):
        return spec.name, [], None, 0.0, True
    snaps, dropped = _run(spec)
    wall = time.time() - t0
    outdir.mkdir(parents=True, exist_ok=True)
    if dropped:
        marker.write_text(json.dumps({"run": asdict(spec), "dropped": dropped, "wall_s": wall}, indent=1))
        return spec.name, [], dropped, wall, False
    marker.unlink(missing_ok=True)
    written = [str(_finish(spec, snap, wall).save(outdir / f"{spec.name}_s{snap.meta.get('snapshot', 0)}.npz"))
               for snap in snaps]
    return spec.name, written, None, wall, False


def _finish(spec: RunSpec, snap: Snapshot, wall: float) -> Snapshot:
    if spec.split == "test" and "must_be_other" not in snap.extra:
        # held out: an incomplete shell (a free surface) must come out Other
        layer = snap.extra.get("surface_layer")
        snap.extra["must_be_other"] = (np.zeros(len(snap)) if layer is None else layer == 0).astype(np.int8)
    snap.meta.update(run=spec.name, run_wall_s=round(wall, 1))
    return snap


def fixtures(folder) -> list[Path]:
    """Small held-out snapshots (1,000-3,000 atoms, one per run) for model tests:
    ``folder/defects_<what>.npz`` (``tests/data/openworld``)."""
    cu, fe = ELEMENTS["Cu"], ELEMENTS["Fe"]
    protocol = dict(t_equil=3.0, t_nvt=1.0, n_snap=1, t_gap=2.0)

    def spec(kind, symbol, seed, reps=(1, 1, 1), fraction=0.5, **extra):
        return RunSpec(kind, symbol, "test", "fixture", seed, reps, fraction, **protocol,
                       extra=dict(extra, dataset="openworld-fixtures"))

    specs = {f"defects_cu_slab{p}_0.5Tm": spec("surface", "Cu", 70000 + i, plane=p, size=_slab_size(cu, 1500))
             for i, p in enumerate(("111", "100", "110"))}
    specs.update({
        "defects_cu_gb_s5_310_0.5Tm": spec("gb", "Cu", 70010, _gb_reps(cu, "S5_310", (17.0, 24.0, 17.0)),
                                           boundary="S5_310"),
        "defects_fe_vacancies_0.5Tm": spec("vacancy", "Fe", 70011, (10, 10, 10), fraction=0.01, divacancies=2),
        "defects_cu_decahedron_0.5Tm": spec("nanoparticle", "Cu", 70012, shape="decahedron", size=(4, 3, 2)),
        "defects_ood_beta_sn_u05": spec("ood-lattice", "", 70013, fraction=0.0, lattice="beta-Sn", amplitude=0.05,
                                        atoms=1000),
        "defects_ood_a15_w_600K": spec("ood-lattice", "", 70014, fraction=0.0, system="A15-W", T=600.0, atoms=1000),
    })
    folder = Path(folder)
    paths = []
    for name, s in specs.items():
        t0 = time.time()
        snaps, dropped = _run(s)
        if dropped:
            raise RuntimeError(f"fixture {name}: {dropped}")
        paths.append(_finish(s, snaps[0], time.time() - t0).save(folder / f"{name}.npz"))
        print(f"{name}: {len(snaps[0])} atoms in {time.time() - t0:.0f} s", flush=True)
    return paths


def summarize(folder) -> str:
    """Runs, snapshots and atoms (labelled by class, NO_LABEL) per split, kind, element and T/T_m."""
    manifest = json.loads((Path(folder) / "manifest.json").read_text())
    rows = {}
    for f in manifest["files"]:
        m = f["meta"]
        t = m.get("T_over_Tm")
        key = (m["split"], m["kind"], m.get("element") or m.get("lattice", ""), "" if t is None else f"{t:.2f}")
        r = rows.setdefault(key, {"runs": set(), "snapshots": 0, "atoms": 0, "labels": {}, "wall": {}})
        r["runs"].add(m.get("run", f["path"]))
        r["snapshots"] += 1
        r["atoms"] += f["atoms"]
        r["wall"][m.get("run")] = m.get("run_wall_s", 0.0)
        for c, n in f["label_counts"].items():
            r["labels"][c] = r["labels"].get(c, 0) + n
    lines = [f"{'split':5} {'kind':12} {'el':12} {'T/Tm':>5} {'runs':>4} {'snaps':>5} {'atoms':>7} {'wall_s':>6}  labels"]
    for key in sorted(rows):
        r = rows[key]
        labels = ", ".join(f"{c} {n}" for c, n in r["labels"].items() if n)
        lines.append(f"{key[0]:5} {key[1]:12} {key[2]:12} {key[3]:>5} {len(r['runs']):4d} {r['snapshots']:5d} "
                     f"{r['atoms']:7d} {sum(r['wall'].values()):6.0f}  {labels}")
    for d in manifest["dropped"]:
        lines.append(f"DROPPED {d['run']['split']} {d['run']['name']}: {d['dropped']}")
    return "\n".join(lines)


def generate(split: str = "all", quick: bool = False, threads: int = 1, force: bool = False, root=None) -> list[Path]:
    """Run the MD of ``split`` (train, val, ood or all) and return the snapshot files (existing ones are
    kept unless ``force``). ``root``: folder holding the dataset folders (default ``cache_dir()``);
    ``threads``: single-threaded LAMMPS runs at once."""
    splits = {"train": ("train",), "val": ("val",), "ood": ("test",), "all": SPLITS}.get(split)
    if splits is None:
        raise ValueError(f"unknown split {split!r}; expected train, val, ood or all")
    if int(threads) < 1:
        raise ValueError(f"threads must be >= 1, got {threads}")
    root = Path(root) if root is not None else cache_dir()
    specs = sorted((s for sp in splits for s in plan(sp, quick)), key=lambda s: -s.cost)
    t0 = time.time()
    run_plan(_execute, specs, root, force, threads)
    folders = sorted({root / s.extra["dataset"] for s in specs})
    for folder in folders:
        write_manifest(folder, CLASSES)
    print(f"{len(specs)} runs in {time.time() - t0:.0f} s -> {', '.join(map(str, folders))}", flush=True)
    return sorted(p for s in specs for p in (root / s.extra["dataset"] / s.split).glob(f"{s.name}_s*.npz"))


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python training_data/md_defects.py",
                                 description="Generate the 'openworld-defects' (train, val) and 'openworld-ood' "
                                             "(held-out test) MD snapshots.")
    ap.add_argument("--quick", action="store_true", help="tiny boxes and short runs (seconds; for tests)")
    ap.add_argument("--threads", type=int, default=1, help="LAMMPS runs at once (each single-threaded)")
    ap.add_argument("--split", default="all", choices=("train", "val", "ood", "all"))
    ap.add_argument("--force", action="store_true", help="rerun even if the snapshot files exist")
    ap.add_argument("--out", default=None, help="folder holding the dataset folders (default: cache_dir())")
    ap.add_argument("--summary", action="store_true", help="only print tables of the generated datasets")
    ap.add_argument("--fixtures", metavar="DIR", help="only write the small test fixtures (defects_*.npz) to DIR")
    args = ap.parse_args(argv)
    if args.fixtures:
        fixtures(args.fixtures)
        return 0
    root = Path(args.out) if args.out else cache_dir()
    if not args.summary:
        generate(args.split, args.quick, args.threads, args.force, root)
    for split in ({"ood": ("ood",), "all": ("train", "ood")}.get(args.split, (args.split,))):
        folder = root / _dataset(split, args.quick)
        if (folder / "manifest.json").exists():
            print(summarize(folder))
    return 0


if __name__ == "__main__":
    sys.exit(main())
