"""In-situ classification inside a running LAMMPS simulation (the ``lammps`` Python module).

    from mpi4py import MPI                       # optional: under mpirun, one classifier per rank
    from lammps import lammps
    from ovito_mlclass.lammps import InSituClassifier

    lmp = lammps(comm=MPI.COMM_WORLD)
    lmp.commands_string(setup)                   # box, atoms, potential, fixes
    insitu = InSituClassifier(lmp, "metals", every=100)   # name="mlclass"
    lmp.command("dump d all custom 100 run.dump id type x y z i_mlclass d_mlclass_conf")
    insitu.run(10000)                            # lmp.command("run 10000"), then errors are raised

Every ``every`` steps, each MPI rank classifies its own atoms and stores the structure type id
(0 = Other, k = the model's class k, as OVITO's ``Structure Type``) in the per-atom integer
``i_<name>`` and the confidence in ``d_<name>_conf`` of a ``fix property/atom``: they appear in
dumps (``i_mlclass``) and drive later commands, e.g. ``variable liq atom i_mlclass==9`` (Liquid in the ``metals`` model) +
``group liquid variable liq``.

How: a ``fix external`` in ``pf/callback`` mode calls :meth:`InSituClassifier._callback` in the
force stage of every ``every``-th step (and at the setup of a run), on every rank. That is the
robust choice: the positions are those of the step the dumps of that step write (so a dump of
step N holds the classes of step N), ghost atoms are fresh, no run is split into chunks (chunks
would write a dump before the classes of its step exist), and the PyPI wheel has no ``fix
python/invoke`` (no PYTHON package). The callback takes the rank's local *and ghost* atoms
(``extract_atom``: local rows first; ghosts are already shifted across periodic boundaries),
puts them in a non-periodic OVITO DataCollection and computes the same features as the OVITO
modifier; the network then sees the local atoms only (and, for a model that pools over
neighbours, the rows it pools).

A model with a bulk phase (``openworld``: Liquid only where it fills space,
:func:`~ovito_mlclass.classify.bulk_phase_region`) applies its rule across the whole box: the
removal of atoms short of neighbours runs in rounds, and after each round every rank learns from
the others (an MPI allgather of atom ids) which of its ghosts are still in the phase, until no rank
removes any; the result is the offline one.

Correctness needs the ghost shell to hold every atom the local atoms' features see: the k-th
nearest neighbour at distance d_k(i), and for neighbour-averaged Steinhardt parameters the
neighbours of those neighbours, so reach(i) = d_k(i) + max_j d_k(j). The driver sets ``comm_modify
cutoff`` from the density of the particle types the model describes (:func:`default_ghost_cutoff`)
unless given one, and checks reach(i) <=
cutoff on every atom at every classification; a shell too small is an error that names the
cutoff to use (never silently wrong classes). Models with frame-global quantities (symmetry
functions scaled by the frame's median bond length) or Voronoi neighbours cannot be split
across ranks and are refused.

Errors inside the callback cannot propagate through LAMMPS; they are printed at once and raised
by :meth:`run` (or :meth:`check`) after the run command returns.
"""
from __future__ import annotations

import sys
import time

import numpy as np

from .classify import Posteriors, as_model, bulk_phase_members, certifies, close_packed_types, network_types
from .topology import SURROUNDING, certified_classes, close_packed_shells
from .frames import Frame
from .model import DEFAULT_MODEL, Prediction, StructureModel


class InSituError(RuntimeError):
    """The in-situ classification failed (the message says on which rank and step and why)."""


def _averaged_reach(block: dict) -> bool:
    return block["kind"] == "steinhardt" and bool(block["averaged"])


def supported(model: StructureModel) -> None:
    """Raises InSituError for models whose features cannot be computed rank by rank."""
    for block in model.features.blocks:
        if block["kind"] == "symmetry_functions":
            raise InSituError(f"Model {model.name!r}: symmetry-function features are scaled by the whole frame's "
                              f"median bond length, which no single MPI rank sees; classify its dumps offline.")
        if block.get("neighbors") == "voronoi":
            raise InSituError(f"Model {model.name!r}: Voronoi neighbours are not supported in situ; classify its "
                              f"dumps offline.")


def neighbor_reach(model: StructureModel, positions: np.ndarray, nearest: np.ndarray) -> np.ndarray:
    """Per atom, how far from it the classification looks: the distance to its k-th nearest
    neighbour (largest k of any block), plus, for neighbour-averaged Steinhardt blocks, the largest
    such distance among those neighbours (their own neighbours enter the average); for a model
    that averages its learnt features over k_a neighbours (``neighbor_average``), the same again
    over those k_a neighbours' reaches. ``positions``: of a non-periodic system (no images);
    ``nearest``: ``(n, k_max)`` rows of every atom's nearest neighbours, -1 = missing (infinitely far)."""
    found = nearest >= 0

    def at_neighbors(values, k):  # values (per atom, any shape) of each atom's k nearest neighbours, inf where missing
        mask = found[:, :k].reshape(found[:, :k].shape + (1,) * (values.ndim - 1))
        return np.where(mask, values[np.where(found[:, :k], nearest[:, :k], 0)], np.inf)

    distance = np.linalg.norm(at_neighbors(positions, nearest.shape[1]) - positions[:, None], axis=2)
    reach = np.zeros(len(positions))
    for block in model.features.blocks:
        k = block["neighbors"]
        d_k = distance[:, k - 1]
        if _averaged_reach(block):
            d_k = d_k + at_neighbors(d_k, k).max(axis=1)
        reach = np.maximum(reach, d_k)
    k_a = getattr(model, "neighbor_average", 0)
    if k_a:
        reach = np.maximum(reach, distance[:, k_a - 1] + at_neighbors(reach, k_a).max(axis=1))
    k_b = _bulk_neighbors(model)  # the bulk-phase rule: the k_b nearest present (their types come from their owners)
    return np.maximum(reach, distance[:, k_b - 1]) if k_b else reach


def _no_atoms():
    """What a rank without atoms to classify contributes: types, confidences, neighbour rows, ids,
    which local atoms are described, their close-packed shells (classify.close_packed_types)."""
    return (np.zeros(0, np.int32), np.zeros(0, np.float32), np.zeros((0, 1), np.int64), np.zeros(0, np.int64),
            np.zeros(0, bool), np.zeros(0, np.int16))


def _bulk_neighbors(model) -> int:
    rule = getattr(model, "bulk_phase", None)
    return rule["neighbors"] if rule else 0


def default_ghost_cutoff(model: StructureModel, atoms: int, volume: float, margin: float = 1.5) -> float:
    """A ghost cutoff from the number density: the k-th neighbour of an ideal gas of that density
    lies at r_k = (3k / 4 pi rho)^(1/3) (fcc: 1.27 times its true 12th-neighbour distance), times
    2 for averaged Steinhardt blocks, times ``margin`` for hot and liquid neighbourhoods."""
    rho = atoms / volume

    def r(k):
        return (3 * k / (4 * np.pi * rho)) ** (1 / 3)

    reach = max(r(b["neighbors"]) * (2 if _averaged_reach(b) else 1) for b in model.features.blocks)
    reach = max(reach, r(_bulk_neighbors(model)) if _bulk_neighbors(model) else 0.0)
    k_a = getattr(model, "neighbor_average", 0)
    return float(margin * (reach + (r(k_a) if k_a else 0.0)))


class InSituClassifier:
    """Classifies the atoms of a LAMMPS instance every ``every`` steps (see the module docstring).

    ``model``: built-in name, model file or loaded model; ``name``: prefix of the per-atom
    properties (``i_<name>``, ``d_<name>_conf``) and of the fixes; ``ghost_cutoff``: the ghost
    shell (``comm_modify cutoff``, in LAMMPS length units; default :func:`default_ghost_cutoff`),
    checked at every classification; ``device``: where the network runs.
    """

    def __init__(self, lmp, model=DEFAULT_MODEL, every: int = 100, name: str = "mlclass",
                 reject_threshold: float | None = None, ghost_cutoff: float | None = None, device: str = "auto"):
        if int(every) < 1:
            raise ValueError(f"every must be a positive number of steps, got {every}.")
        if lmp.extract_setting("dimension") != 3:
            raise InSituError("In-situ classification needs a 3D simulation.")
        if lmp.get_natoms() == 0:
            raise InSituError("The simulation has no atoms yet: create them before the InSituClassifier.")
        self.lmp, self.every, self.name = lmp, int(every), name
        self.model = as_model(model, device)
        supported(self.model)
        self.reject_threshold = reject_threshold
        self.k_max = max([b["neighbors"] for b in self.model.features.blocks]
                         + [getattr(self.model, "neighbor_average", 0), _bulk_neighbors(self.model),
                            SURROUNDING if certifies(self.model) else 0])   # the topology tests' neighbours
        boxlo, boxhi, xy, yz, xz, _, _ = lmp.extract_box()
        volume = float(np.prod(np.subtract(boxhi, boxlo)))
        self.ghost_cutoff = float(ghost_cutoff or default_ghost_cutoff(self.model, self._described_atoms(), volume))
        self.rank = lmp.extract_setting("world_rank")
        self.errors: list[str] = []
        self.classifications = 0
        self.seconds = 0.0  # time spent classifying on this rank
        lmp.command(f"comm_modify cutoff {self.ghost_cutoff:.6g}")
        lmp.command(f"fix {name}_store all property/atom i_{name} d_{name}_conf ghost no")
        lmp.command(f"fix {name} all external pf/callback {self.every} 1")
        lmp.set_fix_external_callback(name, self._callback, lmp)

    def _described_atoms(self) -> int:
        """How many atoms of the simulation the model describes (its particle types; all without):
        a one-species model's neighbours are as far apart as that species' density says."""
        if self.model.features.types is None:
            return self.lmp.get_natoms()
        nlocal = self.lmp.extract_setting("nlocal")
        count = int(self.model.features.describes(self.lmp.numpy.extract_atom("type", nelem=nlocal)[:nlocal]).sum())
        comm = _world()
        if comm is not None and comm.Get_size() > 1:
            count = comm.allreduce(count)
        return max(count, 1)

    # ---- the callback ------------------------------------------------------------------------
    def _callback(self, lmp, step, nlocal, ids, x, fext):
        fext[:] = 0.0  # we add no forces
        if self.errors:  # stop at the first error (run() raises it), but take part in the others' rounds
            types, _, nearest, ids, _, shells = _no_atoms()
            if certifies(self.model):
                self._close_packed_across_ranks(types, shells, nearest, ids)
            if self.model.bulk_phase:
                self._bulk_phase_across_ranks(types, nearest, ids, 0)
            return
        started = time.perf_counter()
        try:
            self.classify_now(int(nlocal))
            self.classifications += 1
        except Exception as exc:  # a callback cannot raise into LAMMPS: remember, tell, raise later
            message = f"rank {self.rank}, step {step}: {type(exc).__name__}: {exc}"
            self.errors.append(message)
            print(f"ovito-mlclass in-situ classification failed on {message}", file=sys.stderr, flush=True)
        self.seconds += time.perf_counter() - started

    def classify_now(self, nlocal: int | None = None) -> None:
        """Classify the local atoms from the current local + ghost positions and store their types
        and confidences (``i_<name>``, ``d_<name>_conf``)."""
        lmp, model = self.lmp, self.model
        nlocal = lmp.extract_setting("nlocal") if nlocal is None else nlocal
        mine, conf, nearest, ids, where, shells = _no_atoms()
        failure = None
        try:
            if nlocal > 0:  # a rank whose domain is empty (a vacuum region) has nothing to classify
                mine, conf, nearest, ids, where, shells = self._network_types(nlocal)
        except Exception as exc:  # the other ranks wait for this one in the rounds below: join them first
            failure = exc
            mine, conf, nearest, ids, where, shells = _no_atoms()
        if certifies(model):
            mine = self._close_packed_across_ranks(mine, shells, nearest, ids)
        if model.bulk_phase:
            mine = self._bulk_phase_across_ranks(mine, nearest, ids, len(mine))
        if failure is not None:
            raise failure
        if nlocal > 0:
            types = np.zeros(nlocal, dtype=np.int32)
            confidence = np.zeros(nlocal, dtype=np.float32)
            types[where], confidence[where] = mine, conf
            lmp.numpy.extract_atom(f"i_{self.name}", nelem=nlocal)[:nlocal] = types
            lmp.numpy.extract_atom(f"d_{self.name}_conf", nelem=nlocal)[:nlocal] = confidence

    def _network_types(self, nlocal):
        """Types (before the bulk-phase rule) and confidences of the described local atoms, their
        rows of the nearest-neighbour search (local + ghost rows), the atom ids of those rows, and
        which local atoms are described."""
        lmp, model = self.lmp, self.model
        nall = nlocal + lmp.extract_setting("nghost")
        positions = np.array(lmp.numpy.extract_atom("x", nelem=nall, dim=3)[:nall], dtype=np.float64)
        types = np.array(lmp.numpy.extract_atom("type", nelem=nall)[:nall], dtype=np.int32)
        # a non-periodic box around local + ghost atoms: the ghosts are the periodic images
        lo, hi = positions.min(axis=0), positions.max(axis=0)
        data = Frame(positions, np.column_stack([np.diag(hi - lo + 1.0), lo - 0.5]), (False, False, False),
                     types=types, type_names={t: f"Type{t}" for t in range(1, lmp.extract_setting("ntypes") + 1)})
        # the features see only the particle types the model describes; the described local atoms
        # come first among them
        described = model.features.selection(data)
        local = int(described[:nlocal].sum())
        if local == 0:
            empty = _no_atoms()
            return empty[:4] + (described[:nlocal],) + empty[5:]
        # one search serves the features and the check of their reach
        features, nearest, vectors = model.features.compute(data, neighbors=self.k_max, vectors=True,
                                                            single_precision=True)  # as classify does
        reach = neighbor_reach(model, positions[described], nearest)[:local].max()
        if reach > self.ghost_cutoff:
            raise InSituError(f"the ghost shell ({self.ghost_cutoff:.3g}) is thinner than the model's features "
                              f"reach ({reach:.3g}: k-th neighbours and their neighbours); pass "
                              f"ghost_cutoff >= {1.1 * reach:.3g}")
        prediction = self._predict_local(features, nearest, local)
        certified = shells = None
        if certifies(model):  # the topology tests; the ghosts give the local atoms' shells
            best = np.full(len(nearest), -1, dtype=np.int64)  # ghosts: not asked, but their shells are read
            best[:local] = prediction.probabilities.argmax(axis=1)
            seen = data.subset(described)
            found = certified_classes(model.classes, best, seen, nearest, vectors,
                                      prediction.probabilities)  # rows of the local atoms, the only ones asked
            certified = None if found is None else found[:local]
            placed = np.ones(len(nearest), dtype=np.float32)  # ghosts: not asked
            placed[:local] = prediction.probabilities.max(axis=1)
            shells = close_packed_shells(model.classes, placed, seen, nearest, vectors)
            shells = None if shells is None else shells[:local]
        post = Posteriors(prediction.probabilities, prediction.sites, np.ones(local, bool), prediction.novelty,
                          certified=certified)
        mine, conf, _ = network_types(post, model, self.reject_threshold)
        ids = np.array(lmp.numpy.extract_atom("id", nelem=nall)[:nall], dtype=np.int64)[described]
        return mine, conf, nearest, ids, described[:nlocal], np.full(local, -1, np.int16) if shells is None else shells


    def _predict_local(self, features, nearest, local):
        """Posteriors of the first ``local`` rows: the network sees those rows only (ghosts can
        outnumber the local atoms several times in small domains), and, for a model that pools
        over its k_a nearest neighbours, the rows it pools."""
        k_a = self.model.neighbor_average
        if not k_a:
            return self.model.predict(features[:local])
        pool = nearest[:local, :k_a]
        rows = np.union1d(np.arange(local), pool[pool >= 0])  # sorted: the local rows first
        neighbors = np.full((len(rows), k_a), -1, dtype=np.int64)  # the others' pools are not needed
        neighbors[:local] = np.where(pool >= 0, np.searchsorted(rows, pool), -1)
        prediction = self.model.predict(features[rows], neighbors)
        return Prediction(*(None if values is None else values[:local] for values in prediction))

    def _close_packed_across_ranks(self, types, shells, nearest, ids):
        """The local atoms' ``types`` after :func:`~ovito_mlclass.classify.close_packed_types`, where
        a ghost (another rank's atom or a periodic image) counts as FCC or HCP as its owner does:
        every rank hears which atoms (by id) are."""
        kinds = self.model.structure_types
        close = [i for i, name in zip(kinds.ids, kinds.names) if name in ("FCC", "HCP")]
        local = len(types)
        members = ids[:local][np.isin(types, close)]
        comm = _world()
        if comm is not None and comm.Get_size() > 1:
            members = np.concatenate(comm.allgather(members))
        if not local:
            return types
        return close_packed_types(types, shells, nearest[:local], self.model, counted=np.isin(ids, members))

    def _bulk_phase_across_ranks(self, types, nearest, ids, local):
        """The local atoms' ``types`` after the model's bulk-phase rule over the whole box: the
        removal of :func:`~ovito_mlclass.classify.bulk_phase_region` in rounds; before each round,
        every rank hears which atoms (by id) are still in the phase or counted for it, so a ghost
        (another rank's atom or a periodic image) counts as its owner does. Removing every atom
        short of neighbours at once, round by round, ends at the same set as one at a time."""
        rule, comm = self.model.bulk_phase, _world()
        phase, counted = bulk_phase_members(types, self.model)
        near = nearest[:local, :rule["neighbors"]]
        keep = phase.copy()
        while True:
            members = ids[:local][keep | counted]
            if comm is not None and comm.Get_size() > 1:
                members = np.concatenate(comm.allgather(members))
            inside = np.isin(ids, members)
            short = keep & ((inside[near] & (near >= 0)).sum(axis=1) < rule["min_neighbors"])
            keep &= ~short
            removed = int(short.sum())
            if comm is not None and comm.Get_size() > 1:
                removed = comm.allreduce(removed)
            if not removed:
                return np.where(phase & ~keep, 0, types).astype(types.dtype)  # 0: Other

    # ---- running -----------------------------------------------------------------------------
    def check(self) -> None:
        """Raise the first error any callback met on this rank (collective under MPI: all ranks
        raise if one failed, so none waits for the others)."""
        failed = len(self.errors)
        comm = _world()
        if comm is not None and comm.Get_size() > 1:
            failed = comm.allreduce(failed)
        if failed:
            mine = self.errors[0] if self.errors else "another rank failed"
            raise InSituError(f"In-situ classification failed ({mine}).")

    def run(self, steps: int, *extra: str) -> None:
        """``run steps`` (``extra``: further keywords of LAMMPS's run command), then :meth:`check`."""
        self.lmp.command(" ".join(["run", str(int(steps)), *extra]))
        self.check()

    def remove(self) -> None:
        """Unfix the callback and the per-atom properties."""
        self.lmp.command(f"unfix {self.name}")
        self.lmp.command(f"unfix {self.name}_store")


def _world():
    """MPI.COMM_WORLD if mpi4py is loaded (LAMMPS runs under MPI), else None."""
    mpi = sys.modules.get("mpi4py.MPI")
    return mpi.COMM_WORLD if mpi is not None else None
