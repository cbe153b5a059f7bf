"""One labelled atomic configuration: the unit of training and validation data.

A snapshot is stored as a compressed ``.npz`` file holding plain arrays plus a JSON
string of provenance (``meta``), so it can be read without this package.
"""
from __future__ import annotations

import json
import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

NO_LABEL = -1  # atoms whose class is unknown (e.g. at an interface): excluded from training and scoring


def cache_dir() -> Path:
    """Where generated data live: ``$OVITO_MLCLASS_CACHE`` or ``~/.cache/ovito-mlclass``."""
    root = os.environ.get("OVITO_MLCLASS_CACHE") or Path.home() / ".cache" / "ovito-mlclass"
    path = Path(root)
    path.mkdir(parents=True, exist_ok=True)
    return path


@dataclass
class Snapshot:
    positions: np.ndarray            # (n, 3) Cartesian, Å
    cell: np.ndarray                 # (3, 4) OVITO cell matrix: three cell vectors as columns, then the origin
    pbc: tuple                       # periodicity along the three cell vectors
    labels: np.ndarray               # (n,) index into ``classes``, or NO_LABEL
    classes: tuple                   # class names, e.g. ("FCC", "BCC", "HCP", "Liquid")
    species: np.ndarray | None = None        # (n,) particle type ids (1-based, as in LAMMPS); None = one species
    extra: dict = field(default_factory=dict)  # further per-atom arrays, e.g. {"fk_coordination": ...}
    meta: dict = field(default_factory=dict)   # JSON-serialisable provenance: system, T, potential, seed, ...

    def __post_init__(self):
        self.positions = np.ascontiguousarray(self.positions, dtype=np.float64)
        n = len(self.positions)
        if self.positions.shape != (n, 3):
            raise ValueError(f"positions must have shape (n, 3), got {self.positions.shape}")
        self.cell = np.asarray(self.cell, dtype=np.float64)
        if self.cell.shape != (3, 4):
            raise ValueError(f"cell must be a (3, 4) OVITO cell matrix, got shape {self.cell.shape}")
        self.pbc = tuple(bool(p) for p in self.pbc)
        self.classes = tuple(str(c) for c in self.classes)
        self.labels = np.asarray(self.labels, dtype=np.int16)
        if self.labels.shape != (n,):
            raise ValueError(f"labels must have shape ({n},), got {self.labels.shape}")
        if n and (self.labels.min() < NO_LABEL or self.labels.max() >= len(self.classes)):
            raise ValueError(f"labels must lie in [{NO_LABEL}, {len(self.classes) - 1}]")
        if self.species is not None:
            self.species = np.asarray(self.species, dtype=np.int32)
            if self.species.shape != (n,):
                raise ValueError(f"species must have shape ({n},), got {self.species.shape}")
        for name, values in self.extra.items():
            if len(values) != n:
                raise ValueError(f"extra array {name!r} has {len(values)} rows, expected {n}")
        json.dumps(self.meta)  # fail now, not when saving

    def __len__(self) -> int:
        return len(self.positions)

    def save(self, path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        arrays = {f"extra.{k}": np.asarray(v) for k, v in self.extra.items()}
        if self.species is not None:
            arrays["species"] = self.species
        tmp = path.with_name(path.name + ".part")
        with open(tmp, "wb") as f:  # a crash mid-write never leaves a truncated file under the real name
            np.savez_compressed(f, positions=self.positions, cell=self.cell, pbc=np.array(self.pbc),
                                labels=self.labels, classes=np.array(self.classes),
                                meta=np.array(json.dumps(self.meta)), **arrays)
        tmp.replace(path)
        return path

    @classmethod
    def load(cls, path) -> "Snapshot":
        try:
            # open the file ourselves: np.load leaks the handle when the zip is corrupt
            with open(path, "rb") as f, np.load(f, allow_pickle=False) as z:
                extra = {k[len("extra."):]: z[k] for k in z.files if k.startswith("extra.")}
                return cls(positions=z["positions"], cell=z["cell"], pbc=tuple(z["pbc"]), labels=z["labels"],
                           classes=tuple(z["classes"]), species=z["species"] if "species" in z.files else None,
                           extra=extra, meta=json.loads(str(z["meta"])))
        except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError) as exc:
            raise ValueError(f"{path}: not a readable snapshot file ({exc})") from exc

    def frame(self):
        """The positions, cell and types as a :class:`~ovito_mlclass.frames.Frame`, what the features read."""
        from ..frames import Frame

        return Frame(self.positions, self.cell, self.pbc, types=self.species)

    def to_data_collection(self):
        """An ``ovito.data.DataCollection`` with the positions, cell, types and a ``Label`` property."""
        from ..ovito_adapter import data_collection

        data = data_collection(self.frame())
        data.particles_.create_property("Label", data=self.labels.astype(np.int32))
        return data


def write_manifest(root, classes, dataset: str | None = None, dropped=()) -> Path:
    """Write ``root/manifest.json``, the index of a generated dataset: every snapshot ``root/<split>/*.npz``
    (path, split, atoms, label counts, extra arrays, meta) and every dropped run, read from the
    ``root/<split>/*.dropped.json`` markers the generators leave, plus ``dropped`` (entries
    ``{"run": {...}, "dropped": reason}``). ``dataset`` defaults to the folder's name."""
    root = Path(root)
    files = []
    for path in sorted(root.glob("*/*.npz")):
        snap = Snapshot.load(path)
        counts = {c: int(np.sum(snap.labels == i)) for i, c in enumerate(snap.classes)}
        counts["NO_LABEL"] = int(np.sum(snap.labels == NO_LABEL))
        files.append({"path": str(path.relative_to(root)), "split": path.parent.name, "atoms": len(snap),
                      "label_counts": counts, "extra": sorted(snap.extra), "meta": snap.meta})
    markers = [json.loads(p.read_text()) for p in sorted(root.glob("*/*.dropped.json"))]
    manifest = {"dataset": dataset or root.name, "classes": list(classes), "no_label": NO_LABEL,
                "files": files, "dropped": markers + list(dropped)}
    out = root / "manifest.json"
    tmp = out.with_name(out.name + ".part")
    tmp.write_text(json.dumps(manifest, indent=1))
    tmp.replace(out)        # readers never see a half-written manifest
    return out
