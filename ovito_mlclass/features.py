"""Stage 3 of the data flow: a structure -> the feature vector a classifier was trained on.

A :class:`FeatureSpec` is a plain, JSON-serialisable recipe stored inside every model file, so a
model rebuilds exactly its own descriptors and a user never matches settings by hand. All
features are scale-free, so one model serves every element of a lattice:

- ``steinhardt`` blocks (q_l, ŵ_l, q̄_l, w̄_l) over the N nearest neighbours or Voronoi
  neighbours are angular, hence scale-free by construction;
- ``distances``: the distances to the N nearest neighbours divided by the atom's own mean
  distance to its ``normalize`` nearest neighbours (the shell structure: fcc 12 at 1 and 6 at
  √2, bcc 8 at 1 and 6 at 1.15 ...);
- ``symmetry_functions`` (Behler G2/G4) take lengths in units of the frame's length scale, the
  median over atoms of the mean distance to the ``scale_neighbors`` nearest neighbours;
- ``point_cloud`` (the input of a PointNet, DeFever et al., Chem. Sci. 10, 7503 (2019)): the
  vectors x_j - x_i to the N nearest neighbours, by increasing distance, divided by the atom's own
  mean distance to its ``normalize`` nearest neighbours (``normalize = 1``: the nearest neighbour
  at distance 1, as in the paper; a mean over a shell is less noisy in hot crystals), flattened
  to 3N columns x1, y1, z1, x2, ...

``neighbor_mean = k`` (off by default) reaches one shell farther: every column of the blocks is
repeated, averaged over the atom and its k nearest neighbours (of a q̄_l, an average of averages;
names ending ``_mean<k>``). Structures that differ only beyond the blocks' reach, such as the
stacking variants of a layered phase, differ in these averages.

Every block needs all the neighbours it names: a frame in which some atom has fewer (a small
non-periodic system) is refused with an :class:`~ovito_mlclass.neighbors.InputError`, whatever the
block (a model trained on full neighbourhoods has no answer for a partial one).

Example::

    spec = FeatureSpec.from_dict({"blocks": [
        {"kind": "steinhardt", "neighbors": 12, "degrees": [4, 6, 8, 10, 12], "averaged": True, "wl": True},
        {"kind": "distances", "neighbors": 16, "normalize": 12}]})
    X = spec.compute(data)          # (n_atoms, len(spec.names)), float64

``data``: a :class:`~ovito_mlclass.frames.Frame`, or anything :func:`~ovito_mlclass.frames.as_frame`
reads (an OVITO DataCollection, an ase.Atoms, arrays).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np
from . import _compiled
from . import neighbors as nb
from .descriptors import Steinhardt, SymmetryFunctions
from .descriptors.steinhardt import compute_together
from .frames import Frame, as_frame
from .work_arrays import WORK

KINDS = ("steinhardt", "distances", "symmetry_functions", "point_cloud")
NEAREST_KINDS = ("steinhardt", "distances", "point_cloud")  # blocks served by the nearest-neighbour search


def _check_keys(block: dict, allowed: set[str]) -> None:
    unknown = set(block) - allowed - {"kind"}
    if unknown:
        raise ValueError(f"Unknown key(s) {sorted(unknown)} in a {block['kind']!r} feature block; "
                         f"allowed: {sorted(allowed)}.")


def _normalise_block(block: dict) -> dict:
    if not isinstance(block, dict) or block.get("kind") not in KINDS:
        raise ValueError(f"A feature block must be a dict with 'kind' one of {KINDS}, got {block!r}.")
    kind = block["kind"]
    if kind == "steinhardt":
        _check_keys(block, {"neighbors", "degrees", "averaged", "wl"})
        neighbors = block.get("neighbors", 12)
        if neighbors != "voronoi" and not (isinstance(neighbors, int) and neighbors >= 1):
            raise ValueError(f"Steinhardt 'neighbors' must be a positive integer or 'voronoi', got {neighbors!r}.")
        recipe = Steinhardt(degrees=tuple(block.get("degrees", (4, 6))), averaged=bool(block.get("averaged", True)),
                            wl=bool(block.get("wl", True)))
        return {"kind": kind, "neighbors": neighbors, "degrees": list(recipe.degrees),
                "averaged": recipe.averaged, "wl": recipe.wl}
    if kind in ("distances", "point_cloud"):
        _check_keys(block, {"neighbors", "normalize"})
        n, norm = int(block.get("neighbors", 16 if kind == "distances" else 40)), int(block.get("normalize", 12))
        if not (1 <= norm <= n):
            raise ValueError(f"{kind!r} needs 1 <= normalize <= neighbors, got normalize={norm}, neighbors={n}.")
        return {"kind": kind, "neighbors": n, "normalize": norm}
    _check_keys(block, {"cutoff", "g2", "g4", "g5"})
    recipe = SymmetryFunctions(cutoff=block.get("cutoff", 2.0), g2=block.get("g2", ()), g4=block.get("g4", ()),
                               g5=block.get("g5", ()))
    return {"kind": kind, "cutoff": recipe.cutoff, "g2": [list(r) for r in recipe.g2],
            "g4": [list(r) for r in recipe.g4], "g5": [list(r) for r in recipe.g5]}


@dataclass(frozen=True)
class FeatureSpec:
    """Recipe of a feature vector. ``blocks``: see the module docstring. ``scale_neighbors``: the
    frame's length unit is the median over atoms of the mean distance to this many nearest
    neighbours. ``types``: particle type ids to describe (the others are left out entirely, as if
    absent — e.g. the hydrogens of water); ``None`` = all. ``neighbor_mean = k > 0``: every
    column is also given averaged over the atom and its k nearest neighbours (names ending
    ``_mean<k>``); 0 = off."""

    blocks: tuple = ()
    scale_neighbors: int = 12
    types: tuple | None = None
    neighbor_mean: int = 0
    _names: tuple = field(default=(), init=False, repr=False, compare=False)

    def __post_init__(self):
        if not self.blocks:
            raise ValueError("A feature specification needs at least one block.")
        blocks = tuple(_normalise_block(dict(b)) for b in self.blocks)
        object.__setattr__(self, "blocks", blocks)
        if int(self.scale_neighbors) < 1:
            raise ValueError("scale_neighbors must be at least 1.")
        object.__setattr__(self, "scale_neighbors", int(self.scale_neighbors))
        if self.types is not None:
            object.__setattr__(self, "types", tuple(int(t) for t in self.types))
        if not (isinstance(self.neighbor_mean, int) and self.neighbor_mean >= 0):
            raise ValueError(f"neighbor_mean must be 0 (off) or a number of nearest neighbours, got {self.neighbor_mean!r}.")
        object.__setattr__(self, "_names", tuple(self._make_names()))

    # ---- serialisation ---------------------------------------------------------------------
    @classmethod
    def from_dict(cls, d: dict) -> "FeatureSpec":
        unknown = set(d) - {"blocks", "scale_neighbors", "types", "neighbor_mean"}
        if unknown:
            raise ValueError(f"Unknown key(s) {sorted(unknown)} in a feature specification.")
        return cls(blocks=tuple(d.get("blocks", ())), scale_neighbors=d.get("scale_neighbors", 12),
                   types=d.get("types"), neighbor_mean=d.get("neighbor_mean", 0))

    def to_dict(self) -> dict:
        d = {"blocks": [dict(b) for b in self.blocks], "scale_neighbors": self.scale_neighbors,
             "types": None if self.types is None else list(self.types)}
        return {**d, "neighbor_mean": self.neighbor_mean} if self.neighbor_mean else d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    # ---- names -----------------------------------------------------------------------------
    @property
    def names(self) -> list[str]:
        return list(self._names)

    def _make_names(self):
        names = [name for block in self._names_per_block() for name in block]
        yield from names
        if self.neighbor_mean:
            yield from (f"{name}_mean{self.neighbor_mean}" for name in names)

    def _names_per_block(self) -> list[list[str]]:
        return [list(self._names_of(b)) for b in self.blocks]

    def _names_of(self, b):
        if b["kind"] == "steinhardt":
            tag = "vor" if b["neighbors"] == "voronoi" else f"nn{b['neighbors']}"
            yield from (f"{name}_{tag}" for name in _recipe(b).feature_names)
        elif b["kind"] == "distances":
            yield from (f"d{k + 1}/d{b['normalize']}" for k in range(b["neighbors"]))
        elif b["kind"] == "point_cloud":
            yield from (f"{axis}{k + 1}/d{b['normalize']}" for k in range(b["neighbors"]) for axis in "xyz")
        else:
            yield from (f"{name}_scaled" for name in self._symmetry_functions(b, 1.0).feature_names(["all"]))

    @staticmethod
    def _symmetry_functions(block: dict, scale: float) -> SymmetryFunctions:
        """The block's symmetry functions for a frame whose length unit is ``scale``."""
        return SymmetryFunctions(cutoff=block["cutoff"] * scale,
                                 g2=[(eta / scale**2, rs * scale) for eta, rs in block["g2"]],
                                 g4=[(eta / scale**2, zeta, lam) for eta, zeta, lam in block["g4"]],
                                 g5=[(eta / scale**2, zeta, lam) for eta, zeta, lam in block["g5"]])

    # ---- computation -----------------------------------------------------------------------
    def describes(self, type_ids) -> np.ndarray:
        """Boolean mask of the particle type ids (an array) this spec describes (its ``types``)."""
        type_ids = np.asarray(type_ids)
        return np.ones(type_ids.shape, dtype=bool) if self.types is None else np.isin(type_ids, self.types)

    def selection(self, data) -> np.ndarray:
        """Boolean mask of the particles of ``data`` this spec describes (its ``types``)."""
        frame = as_frame(data)
        if self.types is None:
            return np.ones(frame.count, dtype=bool)
        if frame.types is None:
            raise nb.InputError(f"This model describes particle types {list(self.types)} only, but the input "
                                f"has no 'Particle Type' property.")
        return self.describes(frame.types)

    def described_particles(self, data) -> tuple[np.ndarray, Frame]:
        """(:meth:`selection`, the frame of ``data`` reduced to those particles, in their order)."""
        frame = as_frame(data)
        mask = self.selection(frame)
        return mask, (frame if mask.all() else frame.subset(mask))

    def compute(self, data, progress=None, neighbors: int = 0, vectors: bool = False, single_precision: bool = False):
        """Features of the selected particles (:meth:`selection`), shape ``(n_selected, len(names))``.
        ``progress(fraction, text)`` is called between stages if given. With ``neighbors = k > 0``,
        returns ``(features, indices)``: also the rows of every atom's k nearest selected neighbours,
        ``(n_selected, k)`` int64, nearest first, -1 where an atom has fewer (what a model with
        ``neighbor_average`` needs; the same search as the features'). With ``vectors`` too, returns
        ``(features, indices, vectors)``: the vectors to those neighbours, ``(n_selected, k, 3)``.
        ``single_precision``: the Steinhardt blocks over nearest neighbours summed in float32 (about
        1e-7 relative, and faster): the precision of a classifier's network, which takes float32."""
        _, work = self.described_particles(data)
        nb.check_positions(work)
        n = work.count
        # frame-sized arrays kept for the next frame (work_arrays.py): a trajectory maps them once
        out = WORK.empty("features", (n, len(self._names)))
        # one nearest-neighbour search serves every block that needs one (the largest k)
        needs = [b["neighbors"] for b in self.blocks if b["kind"] in NEAREST_KINDS and b["neighbors"] != "voronoi"]
        needs += [self.scale_neighbors] if any(b["kind"] == "symmetry_functions" for b in self.blocks) else []
        needs += [self.neighbor_mean]
        k_max = max(needs + [neighbors], default=0)
        report = progress or (lambda fraction, text: None)
        report(0.0, "neighbours")
        # missing neighbours only for the rows returned beyond what the blocks need; each block checks its own
        nearest = nb.nearest_neighbors(work, k_max, allow_missing=True,
                                       out=(WORK.empty("neighbour rows", (n, k_max), np.int64),
                                            WORK.empty("neighbour vectors", (n, k_max, 3)))) if k_max else None
        # missing neighbours come last: where the last column has none, every block has all it needs
        all_found = nearest is None or not (nearest.neighbors.reshape(n, k_max)[:, -1] < 0).any()

        def require(k):  # InputError unless every atom has its first k neighbours
            if not all_found:
                nb.require_neighbors(work, nearest.neighbors.reshape(n, k_max), k)

        def complete(k):  # the first k neighbours of every atom, all present
            require(k)
            return _first_k(nearest, k_max, k)

        scale = None
        starts = np.cumsum([0] + [len(names) for names in self._names_per_block()])
        # Every block is written in place, into its columns: no array of its own to fill and copy.
        # The Steinhardt blocks over the search's nearest neighbours (the first k bonds of each row)
        # alike in averaging take one pass of the kernel together.
        together = {}
        for i, b in enumerate(self.blocks):
            if b["kind"] == "steinhardt" and b["neighbors"] != "voronoi":
                together.setdefault(b["averaged"], []).append(i)
        for i, b in enumerate(self.blocks):
            report(i / len(self.blocks), f"features: {b['kind']}")
            block = out[:, starts[i]:starts[i + 1]]
            if b["kind"] == "steinhardt" and b["neighbors"] != "voronoi":
                group = together.pop(b["averaged"], [])  # empty: done with an earlier block
                if group:
                    require(max(self.blocks[j]["neighbors"] for j in group))
                    compute_together(nearest, [(_recipe(self.blocks[j]), self.blocks[j]["neighbors"],
                                                out[:, starts[j]:starts[j + 1]]) for j in group], single_precision)
            elif b["kind"] == "steinhardt":
                _recipe(b).compute(nb.voronoi_neighbors(work), out=block)
            elif b["kind"] == "distances":
                relative_distances(complete(b["neighbors"]), b["neighbors"], b["normalize"], out=block)
            elif b["kind"] == "point_cloud":  # 3N columns per atom: the bulk of the memory
                require(b["neighbors"])
                point_cloud(nearest, k_max, b["neighbors"], b["normalize"], out=block)
            else:
                if scale is None:
                    require(self.scale_neighbors)
                    scale = length_scale(nearest, k_max, self.scale_neighbors)
                recipe = self._symmetry_functions(b, scale)
                block[:] = recipe.compute(nb.cutoff_neighbors(work, recipe.cutoff))
        column = starts[-1]
        if self.neighbor_mean:
            report(1.0, "features: neighbour mean")
            require(self.neighbor_mean)
            neighbor_mean(out[:, :column], nearest.neighbors.reshape(n, k_max)[:, :self.neighbor_mean],
                          out=out[:, column:])
        report(1.0, "features done")
        if neighbors:  # views of the search's rows: no copy of n x k indices
            rows = nearest.neighbors.reshape(n, k_max)[:, :neighbors]
            return (out, rows, nearest.vectors.reshape(n, k_max, 3)[:, :neighbors]) if vectors else (out, rows)
        return out


def _recipe(block: dict) -> Steinhardt:
    """The Steinhardt invariants a ``steinhardt`` block names."""
    return Steinhardt(degrees=tuple(block["degrees"]), averaged=block["averaged"], wl=block["wl"])


def neighbor_mean(values: np.ndarray, neighbors: np.ndarray, out: np.ndarray | None = None,
                  chunk: int = 4096) -> np.ndarray:
    """Every row of ``values`` (n, m) averaged over the atom and its neighbours, the rows
    ``neighbors`` (n, k) (all present), into ``out`` if given. The compiled kernel (threaded; the
    one that averages a PointNet's embeddings) where there is one, else NumPy in chunks of atoms
    small enough that a chunk's running sum stays in the CPU cache; same sums in the same order."""
    out = np.empty_like(values) if out is None else out
    if _compiled.COMPILED:
        out[:] = _compiled.kernels.neighbor_mean(np.ascontiguousarray(values, dtype=np.float64),
                                                 np.ascontiguousarray(neighbors, dtype=np.int64))
        return out
    for start in range(0, len(values), chunk):
        rows = slice(start, start + chunk)
        total = values[rows].copy()
        for j in range(neighbors.shape[1]):
            total += values[neighbors[rows, j]]
        out[rows] = total / (neighbors.shape[1] + 1)
    return out


def _first_k(nearest: nb.NeighborList, k_max: int, k: int) -> nb.NeighborList:
    """The k nearest of a k_max-nearest list (rows are sorted by distance)."""
    if k == k_max:
        return nearest
    n = nearest.n_atoms
    return nb.NeighborList(np.arange(0, n * k + 1, k, dtype=np.int64),
                           np.ascontiguousarray(nearest.neighbors.reshape(n, k_max)[:, :k]).reshape(-1),
                           np.ascontiguousarray(nearest.vectors.reshape(n, k_max, 3)[:, :k]).reshape(-1, 3),
                           bins=nearest.bins)


def relative_distances(nearest: nb.NeighborList, k: int, normalize: int, out: np.ndarray | None = None
                       ) -> np.ndarray:
    """Distances to the k nearest neighbours over the mean distance to the first ``normalize``,
    ``(n, k)``, into ``out`` if given (float64; rows may lie inside a wider array)."""
    out = np.empty((nearest.n_atoms, k)) if out is None else out
    if _compiled.COMPILED:
        _compiled.kernels.relative_distances(nearest.vectors, k, normalize, out)
        return out
    d = _distances(nearest, k)
    out[:] = d * (normalize / d[:, :normalize].sum(axis=1))[:, None]
    return out


def point_cloud(nearest: nb.NeighborList, k_max: int, k: int, normalize: int, out: np.ndarray | None = None,
                chunk: int = 65536) -> np.ndarray:
    """The ``point_cloud`` block (module docstring) from a k_max-nearest list whose first k
    neighbours are all present: ``(n, 3k)`` vectors to the k nearest neighbours in units of the
    atom's mean distance to its ``normalize`` nearest. Computed in chunks of atoms, into ``out`` if
    given, so that the temporaries stay small (NumPy; the compiled kernel where available: one
    pass, no temporaries)."""
    n = nearest.n_atoms
    out = np.empty((n, 3 * k)) if out is None else out
    if _compiled.COMPILED and n:
        _compiled.kernels.point_cloud(nearest.vectors, k_max, k, normalize, out)
        return out
    return _point_cloud_numpy(nearest, k_max, k, normalize, out, chunk)


def _point_cloud_numpy(nearest: nb.NeighborList, k_max: int, k: int, normalize: int, out: np.ndarray,
                       chunk: int = 65536) -> np.ndarray:
    n = nearest.n_atoms
    vectors = nearest.vectors.reshape(n, k_max, 3)
    for start in range(0, n, chunk):
        rows = slice(start, min(start + chunk, n))
        v = vectors[rows, :k]
        d = np.sqrt(np.einsum("ijk,ijk->ij", v[:, :normalize], v[:, :normalize]))
        out[rows] = (v / d.mean(axis=1)[:, None, None]).reshape(-1, 3 * k)
    return out


def _distances(nearest: nb.NeighborList, k_max: int, k: int | None = None) -> np.ndarray:
    """|x_j - x_i| of the first k (default all k_max) neighbours of every atom, shape (n, k)."""
    v = nearest.vectors.reshape(-1, k_max, 3)[:, :k]
    return np.sqrt(np.einsum("ijk,ijk->ij", v, v))  # far leaner than np.linalg.norm's temporaries


def length_scale(nearest: nb.NeighborList, k_max: int, k: int) -> float:
    """The frame's length unit: median over atoms of the mean distance to the k nearest neighbours."""
    return float(np.median(_distances(nearest, k_max, k).mean(axis=1)))
