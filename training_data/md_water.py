"""Training and validation data for the ``ice`` model: mW water and ice from LAMMPS.

Dataset ``ice`` (classes :data:`CLASSES`): oxygen (mW particle) positions only, labelled
``Hexagonal ice``, ``Cubic ice``, ``Clathrate`` or ``Liquid water``; atoms near an ice/water
interface are :data:`~ovito_mlclass.training.snapshots.NO_LABEL`.

Model
    mW water (Molinero & Moore, "Water modeled as an intermediate element between carbon and
    silicon", J. Phys. Chem. B 113, 4008 (2009), doi:10.1021/jp806654z): a Stillinger-Weber
    potential with eps = 6.189 kcal/mol, sigma = 2.3925 A, lambda = 23.15, a = 1.8, gamma = 1.2,
    cos(theta0) = -1/3, A = 7.049556277, B = 0.6022245584, p = 4, q = 0, mass 18.015 g/mol.
    Run with LAMMPS ``units real`` / ``pair_style sw`` and a generated ``mW.sw`` file.
    Melting point of ice Ih in mW: T_m = 274.6 K (Molinero & Moore 2009, Table 1, from
    ice/liquid coexistence); every temperature below is given as a fraction of it.

Structures (O positions; proton order is irrelevant for mW)
    * ice Ih: O on the 4f sites (1/3, 2/3, z), z = 1/16, of P6_3/mmc with ideal tetrahedral
      geometry, c/a = sqrt(8/3), O-O = 2.76 A (Petrenko & Whitworth, *Physics of Ice*, OUP 1999,
      ch. 2; Peterson & Levy, Acta Cryst. 10, 70 (1957)); built in the orthohexagonal cell
      (a, sqrt(3) a, c) with 8 molecules, c along z.
    * ice Ic: diamond-cubic O sites (Fd-3m 8a), a = 4 d / sqrt(3), 8 molecules per cell.
    * clathrate sI: Pm-3n, 46 molecules per cell, O on 6c (1/4, 0, 1/2), 16i (x, x, x) with
      x = 0.18295 and 24k (0, y, z) with y = 0.30971, z = 0.11629: the regularised sI water
      network of Kosyakov & Polyanskaya, J. Struct. Chem. 40, 239 (1999), as tabulated in
      GenIce (lattice ``CS1``, a = 12.2388 A); scaled here to a = 11.88 A, which gives O-O
      distances of 2.759-2.763 A, as in ice Ih.
    * clathrate sII: Fd-3m (origin choice 2), 136 molecules per cell, O on 8a, 32e (x, x, x)
      with x = -0.217562 and 96g (x, x, z) with x = -0.182699, z = -0.369759: neutron
      refinement of CO sII hydrate at 25 K, Zhu et al., Nat. Commun. 5, 4128 (2014), Table 1
      (a = 17.0344 A, O-O 2.73-2.78 A), used as published.
    Guest-free (empty) clathrate frameworks are metastable in mW at low and moderate
    temperature (Jacobson & Molinero, J. Phys. Chem. B 114, 7302 (2010)); every clathrate
    snapshot is checked with OVITO's Chill+ and the run fails if the framework broke.

Runs (``units real``, timestep 10 fs, Nose-Hoover, tdamp 1 ps, pdamp 10 ps, P = 1 atm)
    * crystals: seeded velocities at T; NPT (aniso for Ih, iso otherwise) for ``npt_ps``,
      box set to the mean of its second half; NVT ``nvt_ps``; then ``n_snap`` snapshots
      ``interval_ps`` apart (NVT continues).
    * liquid: random positions at 1 g/cm^3 (minimum separation 2.2 A), energy minimised,
      melted by NVT at 400 K, quenched to T, then as a crystal.  Supercooled liquids are
      sampled only while Chill+ finds < 1 % hexagonal + cubic ice (stops before crystallising).
    * interface: ice Ih (basal plane normal to z) equilibrated by NPT at T_m; the outer half
      melted at 700 K (Langevin, box fixed; the ice slab held at T_m by its own Langevin
      thermostat), cooled to T_m, then NPT along z (x, y fixed at the ice lattice) at T_m.
      In each snapshot the two interfaces are located from the profile along z of the
      per-atom potential energy (bins of ~3 A; crossing of the midpoint between the ice and
      liquid levels).  ``extra["interface_distance"]`` is the signed
      distance to the nearest interface (> 0 in the ice); atoms within ``INTERFACE_BAND`` of it
      are NO_LABEL, the others Hexagonal ice or Liquid water by their side.
      ``extra["initial_region"]`` is 1 for molecules that started in the ice slab, 0 otherwise.

Validation runs use other seeds, other box sizes and other temperatures (0.5, 0.75, 0.9,
0.95 T_m for the ices; 1.05, 1.15 T_m and 230/250 K for liquids) than the training runs.

Layout: ``<cache>/ice/<split>/<run>_<k>.npz`` (``ice-quick`` for ``--quick``), and
``<cache>/ice/manifest.json`` listing every file with its ``meta``.  Each snapshot also
carries ``extra["velocity"]`` (A/fs), its kinetic temperature ``meta["T_kinetic"]`` (K; files
written before it was named so have ``meta["kinetic_temperature_K"]``) and its
Chill+/IdentifyDiamond fractions in ``meta["checks"]``.

Usage: ``python training_data/md_water.py [--quick] [--threads N] [--split both]
[--force] [--out DIR]``.  The training split has 21 runs, 84 snapshots, 2,240-3,672 molecules
each; the validation split 17 runs, 68 snapshots; ``--quick`` makes tiny ones.  A crystal that breaks is reported and the
remaining runs go on; ``generate`` raises at the end, listing the failed runs.
"""
from __future__ import annotations

import argparse
import itertools
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ovito_mlclass.training.md import LammpsRun, by_id
from ovito_mlclass.training.snapshots import NO_LABEL, Snapshot, cache_dir, write_manifest

DATASET = "ice"
CLASSES = ("Hexagonal ice", "Cubic ice", "Clathrate", "Liquid water")
HEXAGONAL, CUBIC, CLATHRATE, LIQUID = range(4)

MW = dict(epsilon=6.189, sigma=2.3925, a=1.8, lambda_=23.15, gamma=1.2, costheta0=-1.0 / 3.0,
          A=7.049556277, B=0.6022245584, p=4.0, q=0.0, tol=0.0)
MASS = 18.015                      # g/mol
T_MELT = 274.6                     # K, ice Ih in mW
MW_SOURCE = ("Molinero & Moore, J. Phys. Chem. B 113, 4008 (2009), doi:10.1021/jp806654z; "
             "T_m = 274.6 K of ice Ih from the same paper (Table 1)")
D_OO = 2.76                        # A, O-O distance of ice Ih (Petrenko & Whitworth 1999)
TIMESTEP = 10.0                    # fs
TDAMP, PDAMP = 1000.0, 10000.0     # fs
PRESSURE = 1.0                     # atm
T_HOT = 400.0                      # K, melting the random liquid (fixed box, 1 g/cm^3)
T_MELT_SLAB = 700.0                # K, melting the outer half of the interface box (fixed box)
INTERFACE_BAND = 5.0               # A, half-width of the unlabelled band around an interface

# --- crystallography ---------------------------------------------------------------------

IH_SOURCE = ("ice Ih O sites: P6_3/mmc 4f (1/3,2/3,1/16), ideal c/a = sqrt(8/3); Petrenko & "
             "Whitworth, Physics of Ice (1999); Peterson & Levy, Acta Cryst. 10, 70 (1957)")
IC_SOURCE = "ice Ic O sites: diamond cubic (Fd-3m 8a), a = 4 d_OO / sqrt(3)"
SI_SOURCE = ("sI Pm-3n: 6c (1/4,0,1/2); 16i x = 0.18295; 24k (0, 0.30971, 0.11629): Kosyakov & "
             "Polyanskaya, J. Struct. Chem. 40, 239 (1999), via GenIce lattice CS1")
SII_SOURCE = ("sII Fd-3m (origin 2): 8a (-1/8,-1/8,-1/8); 32e x = -0.217562; 96g (x,x,z) "
              "x = -0.182699, z = -0.369759: Zhu et al., Nat. Commun. 5, 4128 (2014), Table 1")
SI_A, SII_A = 11.88, 17.0344       # A, starting lattice constants (NPT relaxes them)

# orthohexagonal ice Ih cell (a, sqrt(3) a, c): fractional O positions
_IH_BASIS = np.array([[0.0, 1 / 3, 1 / 16], [0.5, 5 / 6, 1 / 16], [0.0, 1 / 3, 7 / 16], [0.5, 5 / 6, 7 / 16],
                      [0.5, 1 / 6, 9 / 16], [0.0, 2 / 3, 9 / 16], [0.5, 1 / 6, 15 / 16], [0.0, 2 / 3, 15 / 16]])
_DIAMOND_BASIS = np.array([[0, 0, 0], [0, .5, .5], [.5, 0, .5], [.5, .5, 0],
                           [.25, .25, .25], [.25, .75, .75], [.75, .25, .75], [.75, .75, .25]])


def _op(rows, shift=(0, 0, 0)):
    """A symmetry operation x -> R x + t from signed axis permutations, e.g. ('-x', 'z', 'y')."""
    rot = np.zeros((3, 3))
    for i, term in enumerate(rows):
        rot[i, "xyz".index(term[-1])] = -1.0 if term.startswith("-") else 1.0
    return rot, np.asarray(shift, dtype=float)


def _close_group(generators):
    """All operations generated by ``generators`` (translations taken mod 1)."""
    ops = [(np.eye(3), np.zeros(3))]
    key = lambda op: (tuple(op[0].ravel().astype(int)), tuple(np.round(op[1] % 1.0 * 48).astype(int) % 48))
    seen = {key(ops[0])}
    frontier = list(ops)
    while frontier:
        new = []
        for r1, t1 in frontier:
            for r2, t2 in generators:
                op = (r2 @ r1, (r2 @ t1 + t2) % 1.0)
                if key(op) not in seen:
                    seen.add(key(op))
                    new.append(op)
        ops += new
        frontier = new
    return ops


def _orbit(ops, site):
    """Distinct images of a fractional position under ``ops``, in [0, 1)."""
    pts = np.array([(r @ site + t) % 1.0 for r, t in ops])
    pts[np.isclose(pts, 1.0, atol=1e-8)] = 0.0
    keep = []
    for p in pts:
        if not any(np.all(np.abs((p - q + 0.5) % 1.0 - 0.5) < 1e-6) for q in keep):
            keep.append(p)
    return np.array(keep)


# Pm-3n (No. 223, Hall -P 4n 2 3); Fd-3m (No. 227, origin choice 2, Hall -F 4vw 2vw 3):
# generators as listed in International Tables for Crystallography, Vol. A
_PM3N = _close_group([_op(("-x", "-y", "z")), _op(("z", "x", "y")),
                      _op(("y", "x", "-z"), (.5, .5, .5)), _op(("-x", "-y", "-z"))])
_FD3M = _close_group([_op(("-x", "-y", "z"), (.75, .25, .5)), _op(("-x", "y", "-z"), (.25, .5, .75)),
                      _op(("z", "x", "y")), _op(("y", "x", "-z"), (.75, .25, .5)), _op(("-x", "-y", "-z")),
                      _op(("x", "y", "z"), (0, .5, .5)), _op(("x", "y", "z"), (.5, 0, .5))])
SI_SITES = {"6c": (0.25, 0.0, 0.5), "16i": (0.18295, 0.18295, 0.18295), "24k": (0.0, 0.30971, 0.11629)}
SII_SITES = {"8a": (-1 / 8, -1 / 8, -1 / 8), "32e": (-0.217562, -0.217562, -0.217562),
             "96g": (-0.182699, -0.182699, -0.369759)}


def clathrate_basis(kind: str) -> np.ndarray:
    """Fractional O positions of one cubic cell of the sI (46) or sII (136) framework."""
    if kind == "sI":
        ops, sites = _PM3N, SI_SITES
    elif kind == "sII":
        ops, sites = _FD3M, SII_SITES
    else:
        raise ValueError(f"unknown clathrate {kind!r}; expected 'sI' or 'sII'")
    return np.vstack([_orbit(ops, np.array(s, dtype=float)) for s in sites.values()])


def _replicate(basis, cell_lengths, reps):
    reps = tuple(int(r) for r in reps)
    if len(reps) != 3 or min(reps) < 1:
        raise ValueError(f"replications must be three positive integers, got {reps}")
    grid = np.array(list(itertools.product(*[range(r) for r in reps])), dtype=float)
    frac = (grid[:, None, :] + basis[None]).reshape(-1, 3)
    lengths = np.asarray(cell_lengths, dtype=float)
    return frac * lengths, np.diag(lengths * reps)


def build_structure(phase: str, reps, d_oo: float = D_OO):
    """(positions (n, 3), orthogonal cell (3x3, rows)) of an ideal ``phase`` crystal.

    ``phase`` is ``"ih"``, ``"ic"``, ``"sI"`` or ``"sII"``; ``d_oo`` (A) fixes the O-O distance of
    the ices; the clathrates use their published lattice constants scaled by d_oo / 2.76.
    """
    if not d_oo > 0:
        raise ValueError(f"d_oo must be positive, got {d_oo}")
    if phase == "ih":
        a = d_oo * np.sqrt(8 / 3)
        return _replicate(_IH_BASIS, (a, a * np.sqrt(3), a * np.sqrt(8 / 3)), reps)
    if phase == "ic":
        a = 4 * d_oo / np.sqrt(3)
        return _replicate(_DIAMOND_BASIS, (a, a, a), reps)
    if phase in ("sI", "sII"):
        a = (SI_A if phase == "sI" else SII_A) * d_oo / D_OO
        return _replicate(clathrate_basis(phase), (a, a, a), reps)
    raise ValueError(f"unknown phase {phase!r}; expected 'ih', 'ic', 'sI' or 'sII'")


# --- run specifications --------------------------------------------------------------------

@dataclass(frozen=True)
class RunSpec:
    name: str                 # file stem; snapshots are <name>_<k>.npz
    split: str                # "train" or "val"
    phase: str                # ih, ic, sI, sII, liquid, interface
    temperature: float        # K
    reps: tuple               # unit-cell replications (crystals) or (n_molecules,) (liquid)
    seed: int
    npt_ps: float = 30.0
    nvt_ps: float = 5.0
    n_snap: int = 4
    interval_ps: float = 4.0
    melt_ps: float = 6.0      # liquid / interface only

    @property
    def label(self) -> int:
        return {"ih": HEXAGONAL, "ic": CUBIC, "sI": CLATHRATE, "sII": CLATHRATE,
                "liquid": LIQUID, "interface": NO_LABEL}[self.phase]


def _t(frac):
    return round(frac * T_MELT, 2)


def run_specs(split: str = "both", quick: bool = False) -> list[RunSpec]:
    """The runs that make up the dataset (or its tiny ``quick`` version)."""
    if split not in ("train", "val", "both"):
        raise ValueError(f"split must be 'train', 'val' or 'both', got {split!r}")
    specs = []
    if quick:
        short = dict(npt_ps=10.0, nvt_ps=3.0, n_snap=2, interval_ps=2.0, melt_ps=6.0)
        train = [("ih", 0.5, (4, 2, 3)), ("ic", 0.5, (3, 3, 3)), ("sI", 0.5, (2, 2, 2)),
                 ("sII", 0.5, (1, 1, 1)), ("liquid", 1.1, (216,)), ("liquid", 240 / T_MELT, (216,)),
                 ("interface", 1.0, (4, 2, 8))]
        val = [("ih", 0.75, (4, 2, 4)), ("liquid", 1.05, (250,))]
        for sp, runs, base in (("train", train, 100), ("val", val, 200)):
            for k, (phase, frac, reps) in enumerate(runs):
                specs.append(RunSpec(f"{phase}_T{_t(frac):.0f}_q", sp, phase, _t(frac), reps, base + k, **short))
    else:
        train = [(p, f, r) for p, r in (("ih", (8, 5, 7)), ("ic", (7, 7, 7)))
                 for f in (0.25, 0.5, 0.75, 0.9, 0.95)]
        train += [("sI", f, (4, 4, 4)) for f in (0.25, 0.5, 0.75)]
        train += [("sII", f, (3, 3, 3)) for f in (0.25, 0.5, 0.75)]
        train += [("liquid", f, (3000,)) for f in (1.0, 1.1, 1.2, 240 / T_MELT)]
        train += [("interface", 1.0, (7, 4, 14))]
        val = [(p, f, r) for p, r in (("ih", (9, 5, 6)), ("ic", (6, 6, 8))) for f in (0.5, 0.75, 0.9, 0.95)]
        val += [("sI", f, (3, 4, 4)) for f in (0.4, 0.6)]
        val += [("sII", f, (2, 3, 3)) for f in (0.4, 0.6)]
        val += [("liquid", f, (2500,)) for f in (1.05, 1.15, 230 / T_MELT, 250 / T_MELT)]
        val += [("interface", 1.0, (8, 4, 12))]
        for sp, runs, base in (("train", train, 1000), ("val", val, 2000)):
            for k, (phase, frac, reps) in enumerate(runs):
                specs.append(RunSpec(f"{phase}_T{_t(frac):.0f}", sp, phase, _t(frac), reps, base + 7 * k))
    return [s for s in specs if split in ("both", s.split)]


# --- LAMMPS --------------------------------------------------------------------------------

def sw_file_text() -> str:
    """The mW parameters as a LAMMPS ``pair_style sw`` file."""
    p = MW
    return ("# mW water: Molinero & Moore, J. Phys. Chem. B 113, 4008 (2009); units real\n"
            "# elem1 elem2 elem3 epsilon sigma a lambda gamma costheta0 A B p q tol\n"
            f"mW mW mW {p['epsilon']} {p['sigma']} {p['a']} {p['lambda_']} {p['gamma']} "
            f"{p['costheta0']:.12f} {p['A']} {p['B']} {p['p']} {p['q']} {p['tol']}\n")


def _lammps(positions, box, sw_path, seed: int, threads: int = 1) -> LammpsRun:
    """A LAMMPS run of mW particles in an orthogonal ``box`` (lengths); ``positions`` None: an empty box."""
    run = LammpsRun(positions, box, None if positions is None else np.ones(len(positions), np.int32), [MASS],
                    "sw", f"* * {sw_path} mW", TIMESTEP, seed, threads=threads, units="real", pressure=PRESSURE,
                    tdamp=TDAMP, pdamp=PDAMP, skin=2.0)
    run.lmp.command("compute peatom all pe/atom")
    return run


# --- independent checks with OVITO ---------------------------------------------------------

def structure_fractions(snapshot: Snapshot) -> dict:
    """Fractions of OVITO's Chill+ and IdentifyDiamond types in a snapshot."""
    from ovito.modifiers import ChillPlusModifier, IdentifyDiamondModifier
    from ovito.pipeline import Pipeline, StaticSource

    out = {}
    for prefix, modifier in (("chill+", ChillPlusModifier()), ("diamond", IdentifyDiamondModifier())):
        pipeline = Pipeline(source=StaticSource(data=snapshot.to_data_collection()))
        pipeline.modifiers.append(modifier)
        types = np.asarray(pipeline.compute().particles["Structure Type"])
        counts = np.bincount(types, minlength=len(type(modifier).Type.__members__))
        for name, t in type(modifier).Type.__members__.items():
            out[f"{prefix}.{name}"] = round(float(counts[int(t)]) / max(1, len(types)), 5)
    return out


def _ice_fraction(fr):
    return fr["chill+.HEXAGONAL_ICE"] + fr["chill+.CUBIC_ICE"]


def _check_intact(spec, fr):
    """Fail loudly if a crystal has not stayed what its label says (Chill+)."""
    if spec.phase == "ih":
        ok = fr["chill+.HEXAGONAL_ICE"] + fr["chill+.INTERFACIAL_ICE"] >= 0.5
    elif spec.phase == "ic":
        ok = fr["chill+.CUBIC_ICE"] + fr["chill+.INTERFACIAL_ICE"] >= 0.5
    elif spec.phase in ("sI", "sII"):
        ok = fr["chill+.HYDRATE"] + fr["chill+.INTERFACIAL_HYDRATE"] >= 0.5
    else:
        return
    if not ok:
        raise RuntimeError(f"{spec.name}: the {spec.phase} crystal did not stay intact at "
                           f"{spec.temperature} K (Chill+ fractions {fr})")


# --- interface labels ---------------------------------------------------------------------

def locate_interfaces(z, values, lz, bin_width=3.0):
    """Positions (z_up, z_down) of the two interfaces of a slab from a per-atom order value.

    ``values`` is low in the solid (e.g. potential energy).  The profile is binned along the
    periodic z axis, smoothed over three bins, and cut at the midpoint of its lowest and highest
    quartiles.  Going along +z, the solid begins at ``z_up`` and ends at ``z_down``.
    """
    z = np.asarray(z, dtype=float) % lz
    nbins = max(8, int(round(lz / bin_width)))
    idx = np.minimum((z / lz * nbins).astype(int), nbins - 1)
    counts = np.bincount(idx, minlength=nbins)
    if np.any(counts == 0):
        raise ValueError("empty bins in the order profile: the box is too thin for the bin width")
    prof = np.bincount(idx, weights=values, minlength=nbins) / counts
    prof = (np.roll(prof, 1) + prof + np.roll(prof, -1)) / 3.0
    order = np.sort(prof)
    q = max(1, nbins // 4)
    low, high = order[:q].mean(), order[-q:].mean()
    mean_sq = np.bincount(idx, weights=np.asarray(values, dtype=float) ** 2, minlength=nbins) / counts
    raw = np.bincount(idx, weights=values, minlength=nbins) / counts
    noise = np.sqrt(np.mean(np.maximum(mean_sq - raw ** 2, 0.0) / counts))   # standard error of a bin
    if high - low < 8 * noise:
        raise ValueError(f"no solid/liquid contrast in the order profile ({high - low:.3g} vs noise {noise:.3g})")
    thr = 0.5 * (low + high)
    centres = (np.arange(nbins) + 0.5) * lz / nbins
    ups, downs = [], []
    for i in range(nbins):
        j = (i + 1) % nbins
        a, b = prof[i] - thr, prof[j] - thr
        if (a > 0) != (b > 0):
            zc = centres[i] + (lz / nbins) * a / (a - b)
            (ups if a > 0 else downs).append(zc % lz)
    if len(ups) != 1 or len(downs) != 1:
        raise ValueError(f"expected one slab with two interfaces, found crossings up={ups} down={downs}")
    return ups[0], downs[0], thr


def interface_labels(z, values, lz, band=INTERFACE_BAND):
    """(labels, signed distance to the nearest interface (> 0 in the ice), interface positions)."""
    z_up, z_down, _ = locate_interfaces(z, values, lz)
    z = np.asarray(z, dtype=float) % lz
    inside = (z - z_up) % lz < (z_down - z_up) % lz
    dist = np.minimum.reduce([np.abs((z - zi + lz / 2) % lz - lz / 2) for zi in (z_up, z_down)])
    signed = np.where(inside, dist, -dist)
    labels = np.where(inside, HEXAGONAL, LIQUID).astype(np.int16)
    labels[dist < band] = NO_LABEL
    return labels, signed, (z_up, z_down)


# --- simulation ---------------------------------------------------------------------------

def _base_meta(spec, lmp):
    return {
        "dataset": DATASET, "split": spec.split, "run": spec.name, "phase": spec.phase,
        "temperature_K": spec.temperature, "T_over_Tm": round(spec.temperature / T_MELT, 4),
        "T_m_K": T_MELT, "T_m_source": MW_SOURCE, "pressure_atm": PRESSURE,
        "potential": "mW (Stillinger-Weber form), pair_style sw, generated mW.sw",
        "potential_file": sw_file_text(), "potential_source": MW_SOURCE,
        "structure_source": {"ih": IH_SOURCE, "ic": IC_SOURCE, "sI": SI_SOURCE, "sII": SII_SOURCE,
                             "interface": IH_SOURCE}.get(spec.phase, "random liquid, see docstring"),
        "seed": spec.seed, "reps": list(spec.reps), "timestep_fs": TIMESTEP,
        "thermostat": f"Nose-Hoover tdamp {TDAMP} fs, pdamp {PDAMP} fs",
        "lammps_version": int(lmp.version()), "generator": "training_data/md_water.py",
        "spec": asdict(spec),
    }


def simulate(spec: RunSpec, threads: int = 1) -> list[Snapshot]:
    """Run one MD simulation and return its labelled snapshots."""
    if threads < 1:
        raise ValueError(f"threads must be >= 1, got {threads}")
    if spec.phase not in ("ih", "ic", "sI", "sII", "liquid", "interface"):
        raise ValueError(f"unknown phase {spec.phase!r}")
    if not spec.temperature > 0:
        raise ValueError(f"temperature must be positive, got {spec.temperature}")
    with tempfile.TemporaryDirectory() as tmp:
        sw = Path(tmp) / "mW.sw"
        sw.write_text(sw_file_text())
        if spec.phase == "liquid":
            length = (spec.reps[0] * MASS / 0.6022140760 / 1.0) ** (1 / 3)   # A, at 1 g/cm^3
            run = _lammps(None, [length] * 3, sw, spec.seed, threads)
        else:
            positions, cell = build_structure("ih" if spec.phase == "interface" else spec.phase, spec.reps)
            run = _lammps(positions, np.diag(cell), sw, spec.seed, threads)
        try:
            return _simulate(run, spec)
        finally:
            run.close()


def _simulate(run, spec):
    lmp = run.lmp
    meta = _base_meta(spec, lmp)
    stages = {}
    group = None
    temp = spec.temperature
    if spec.phase == "liquid":
        lmp.commands_list([f"create_atoms 1 random {spec.reps[0]} {spec.seed} NULL overlap 2.2 maxtry 200",
                           "minimize 1e-4 1e-6 200 2000"])
        run.velocities(T_HOT, seed_offset=1)
        run.nvt(T_HOT)
        stages["melt_nvt_400K_steps"] = run.ps(spec.melt_ps)
        run.run(spec.melt_ps, f"NVT melt at {T_HOT:.0f} K")
        lmp.commands_list(["unfix ens", f"velocity all scale {temp}", "reset_timestep 0"])  # time from the NPT on
    else:
        run.velocities(temp)
    steps = run.steps
    run.npt_mean_box(temp, spec.npt_ps, "aniso" if spec.phase in ("ih", "interface") else "iso")
    stages["npt_steps"] = run.steps - steps
    if spec.phase == "interface":
        group = _melt_half(run, spec, stages)
        lmp.command(f"fix ens all npt temp {temp} {temp} {TDAMP} z {PRESSURE} {PRESSURE} {PDAMP}")
        meta["ensemble_sampling"] = "NPT along z (x, y fixed at the ice lattice)"
    else:
        run.nvt(temp)
        meta["ensemble_sampling"] = "NVT at the mean NPT box"
    stages["equilibration_steps"] = run.ps(spec.nvt_ps)
    run.run(spec.nvt_ps, "equilibration")
    stages["sample_interval_steps"] = run.ps(spec.interval_ps)
    meta["stages"] = stages
    snaps = []
    for k in range(spec.n_snap):
        if k:
            run.run(spec.interval_ps, "sampling")
        positions, cell, pbc, velocity = run.state()
        n = len(positions)
        extra = {"velocity": velocity}
        t_ps = round(lmp.extract_global("ntimestep") * TIMESTEP / 1000.0, 3)
        snap_meta = dict(meta, snapshot=k, time_ps_since_npt=t_ps, n_atoms=n,
                         T_kinetic=run.kinetic_temperature(velocity))
        if spec.phase == "interface":
            pe = by_id(lmp, lmp.numpy.extract_compute("peatom", 1, 1))
            lz = cell[2, 2]
            labels, signed, (z_up, z_down) = interface_labels(positions[:, 2] - cell[2, 3], pe, lz)
            extra["interface_distance"] = signed
            extra["initial_region"] = group
            snap_meta.update(interfaces_z=[round(z_up + cell[2, 3], 3), round(z_down + cell[2, 3], 3)],
                             interface_band_A=INTERFACE_BAND,
                             interface_order="per-atom potential energy (LAMMPS compute pe/atom), 3 A bins")
        else:
            labels = np.full(n, spec.label, dtype=np.int16)
        snap = Snapshot(positions=positions, cell=cell, pbc=pbc, labels=labels, classes=CLASSES,
                        extra=extra, meta=snap_meta)
        fr = structure_fractions(snap)
        snap.meta["checks"] = fr
        if spec.phase == "interface":
            snap.meta["checks"].update(_interface_checks(snap))
        _check_intact(spec, fr)
        if spec.phase == "liquid" and _ice_fraction(fr) >= 0.01:
            if not snaps:
                raise RuntimeError(f"{spec.name}: liquid at {temp} K already {100 * _ice_fraction(fr):.1f} % "
                                   "Chill+ ice at its first snapshot")
            print(f"  {spec.name}: Chill+ ice {100 * _ice_fraction(fr):.1f} % at snapshot {k}; "
                  "stopping before it crystallises", flush=True)
            break
        snaps.append(snap)
    return snaps


def _melt_half(run, spec, stages):
    """Melt the outer half (along z) of an equilibrated ice box; return the initial region per atom."""
    lmp, temp = run.lmp, spec.temperature
    lz = lmp.get_thermo("lz")
    positions, cell, _, _ = run.state()
    zf = (positions[:, 2] - cell[2, 3]) / lz
    region = ((zf >= 0.25) & (zf <= 0.75)).astype(np.int8)   # 1 = started in the ice slab, 0 = melted
    lmp.commands_list([
        f"region slab block INF INF INF INF {0.25 * lz} {0.75 * lz} units box",
        "group crystal region slab", "group liquid subtract all crystal", "fix nve all nve",
        f"fix lgv_s crystal langevin {temp} {temp} {TDAMP / 10} {spec.seed + 11} zero yes",
        f"fix lgv_l liquid langevin {T_MELT_SLAB} {T_MELT_SLAB} {TDAMP / 10} {spec.seed + 12} zero yes",
    ])
    stages[f"melt_langevin_{T_MELT_SLAB:.0f}K_fixed_box_steps"] = run.ps(spec.melt_ps)
    run.run(spec.melt_ps, f"melt outer half at {T_MELT_SLAB:.0f} K")
    lmp.commands_list(["unfix lgv_l",
                       f"fix lgv_l liquid langevin {temp} {temp} {TDAMP / 10} {spec.seed + 13} zero yes"])
    stages["cool_liquid_langevin_steps"] = run.ps(spec.melt_ps / 2)
    run.run(spec.melt_ps / 2, "cool liquid")
    lmp.commands_list(["unfix lgv_l", "unfix lgv_s", "unfix nve"])
    stages["coexistence_npt_z_steps"] = run.ps(spec.npt_ps)
    lmp.command(f"fix coex all npt temp {temp} {temp} {TDAMP} z {PRESSURE} {PRESSURE} {PDAMP}")
    run.run(spec.npt_ps, "coexistence NPT along z")
    lmp.command("unfix coex")
    return region


def _interface_checks(snap):
    """Chill+ ice fraction among atoms labelled ice / liquid in an interface snapshot."""
    from ovito.modifiers import ChillPlusModifier
    from ovito.pipeline import Pipeline, StaticSource

    pipeline = Pipeline(source=StaticSource(data=snap.to_data_collection()))
    pipeline.modifiers.append(ChillPlusModifier())
    types = np.asarray(pipeline.compute().particles["Structure Type"])
    ice = np.isin(types, [int(ChillPlusModifier.Type.HEXAGONAL_ICE), int(ChillPlusModifier.Type.CUBIC_ICE),
                          int(ChillPlusModifier.Type.INTERFACIAL_ICE)])
    out = {}
    for name, cls in (("ice", HEXAGONAL), ("liquid", LIQUID)):
        sel = snap.labels == cls
        out[f"interface.{name}_labelled"] = int(sel.sum())
        out[f"interface.{name}_chill+_ice_fraction"] = round(float(ice[sel].mean()) if sel.any() else 0.0, 5)
    out["interface.unlabelled"] = int((snap.labels == NO_LABEL).sum())
    return out


# --- dataset -------------------------------------------------------------------------------

def _paths(spec, root):
    return [root / spec.split / f"{spec.name}_{k}.npz" for k in range(spec.n_snap)]


def _progress(items):
    try:
        from tqdm import tqdm
        return tqdm(items, desc="mW runs")
    except ImportError:
        return items


def generate(split: str = "both", quick: bool = False, threads: int = 1, force: bool = False,
             out=None) -> list[Path]:
    """Generate (or reuse from the cache) the ``ice`` dataset; return the snapshot paths.

    Files go to ``<out or cache_dir()>/ice/<split>/`` (``ice-quick`` with ``quick``).  A run whose
    snapshot files all exist is skipped unless ``force``.
    """
    specs = run_specs(split, quick)          # validates split
    if not isinstance(threads, int) or threads < 1:
        raise ValueError(f"threads must be a positive integer, got {threads!r}")
    root = Path(out) if out is not None else cache_dir()
    root = root / (DATASET + ("-quick" if quick else ""))
    written, failed = [], []
    t_all = time.time()
    for i, spec in enumerate(_progress(specs)):
        paths = _paths(spec, root)
        existing = [p for p in paths if p.exists()]
        if existing and not force and (len(existing) == len(paths) or _stopped_early(existing)):
            written += existing
            continue
        t0 = time.time()
        try:
            snaps = simulate(spec, threads)
        except RuntimeError as exc:          # a crystal that broke: report, go on, fail at the end
            print(f"[{i + 1}/{len(specs)}] {spec.split}/{spec.name}: FAILED: {exc}", flush=True)
            failed.append(f"{spec.split}/{spec.name}: {exc}")
            continue
        for p in paths:                      # drop stale files of a previous, longer run
            p.unlink(missing_ok=True)
        for snap, p in zip(snaps, paths):
            if len(snaps) < len(paths):
                snap.meta["stopped_early"] = True
            written.append(snap.save(p))
        fr = snaps[-1].meta["checks"]
        print(f"[{i + 1}/{len(specs)}] {spec.split}/{spec.name}: {len(snaps)} snapshots of {len(snaps[-1])} "
              f"molecules in {time.time() - t0:.1f} s; Chill+ hex {fr['chill+.HEXAGONAL_ICE']:.3f} "
              f"cubic {fr['chill+.CUBIC_ICE']:.3f} hydrate {fr['chill+.HYDRATE']:.3f} "
              f"T_kin {snaps[-1].meta['T_kinetic']:.1f} K", flush=True)
    write_manifest(root, CLASSES)
    print(f"{len(written)} snapshots in {root} ({time.time() - t_all:.0f} s)", flush=True)
    if failed:
        raise RuntimeError(f"{len(failed)} run(s) failed:\n" + "\n".join(failed))
    return written


def _stopped_early(existing):
    return bool(Snapshot.load(existing[-1]).meta.get("stopped_early"))


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python training_data/md_water.py",
                                 description="mW water/ice training and validation data (LAMMPS).")
    ap.add_argument("--quick", action="store_true", help="tiny boxes and short runs (seconds; for tests)")
    ap.add_argument("--threads", type=int, default=1, help="OpenMP threads for LAMMPS (default 1)")
    ap.add_argument("--split", choices=("train", "val", "both"), default="both")
    ap.add_argument("--force", action="store_true", help="rerun even if the files exist")
    ap.add_argument("--out", help="root folder instead of the cache (default: $OVITO_MLCLASS_CACHE)")
    args = ap.parse_args(argv)
    if args.threads < 1:
        ap.error("--threads must be >= 1")
    generate(args.split, args.quick, args.threads, args.force, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
