"""What the descriptor modifiers share: parameter types, input checks, the only_selected subset,
species, output."""
from __future__ import annotations

import numpy as np
from ovito.data import DataCollection
from traits.api import BaseFloat, BaseInt

from ..descriptors.ranges import Range
from ..frames import Frame
from ..neighbors import InputError, check_positions
from ..ovito_adapter import frame_of


class Number(BaseFloat):
    """A float parameter within a :class:`~ovito_mlclass.descriptors.ranges.Range`, checked when
    set (a TraitError naming the range)."""

    def __init__(self, default_value: float, allowed: Range, **metadata):
        self.allowed = allowed
        super().__init__(default_value, **metadata)

    def validate(self, obj, name, value):
        value = super().validate(obj, name, value)
        if value not in self.allowed:
            self.error(obj, name, value)
        return value

    def info(self) -> str:
        return str(self.allowed)


class Count(BaseInt):
    """An integer parameter in ``low..high``, checked when set (a TraitError naming the range)."""

    def __init__(self, default_value: int, low: int, high: int, **metadata):
        self.low, self.high = low, high
        super().__init__(default_value, **metadata)

    def validate(self, obj, name, value):
        value = super().validate(obj, name, value)
        if not self.low <= value <= self.high:
            self.error(obj, name, value)
        return value

    def info(self) -> str:
        return f"an integer in {self.low}..{self.high}"


def selected_subset(data: DataCollection, only_selected: bool) -> tuple[Frame, np.ndarray | None]:
    """The frame to analyse (positions, cell, particle types of ``data``) and the mask of analysed
    particles (None: all of them). With ``only_selected``, unselected particles are treated as if
    they did not exist, as in OVITO."""
    frame = frame_of(data)
    check_positions(frame)
    if not only_selected:
        return frame, None
    if "Selection" not in data.particles:
        raise InputError("'Only selected' is on, but the input has no particle selection.")
    mask = np.asarray(data.particles["Selection"]) != 0
    if not mask.any():
        raise InputError("'Only selected' is on, but no particle is selected.")
    return frame.subset(mask), mask


def species_of(data: DataCollection, mask: np.ndarray | None) -> tuple[np.ndarray, list[str]]:
    """0-based species index of every analysed particle and the species names (from the
    'Particle Type' property; a single species 'X' without it)."""
    if "Particle Type" not in data.particles:
        count = data.particles.count if mask is None else int(mask.sum())
        return np.zeros(count, dtype=np.int32), ["X"]
    types = data.particles.particle_types
    ids = np.asarray(types)
    known = [t.id for t in types.types]
    unknown = np.setdiff1d(np.unique(ids), known)
    if len(unknown):
        raise InputError(f"Particle type id(s) {unknown.tolist()} are used but not defined.")
    lookup = np.zeros(max(known) + 1, dtype=np.int32)
    lookup[known] = np.arange(len(known), dtype=np.int32)
    names = [t.name or f"Type{t.id}" for t in types.types]
    species = lookup[ids]
    return (species if mask is None else species[mask]), names


def output_array(data: DataCollection, name: str, components: list[str], mask: np.ndarray | None) -> np.ndarray:
    """A writable (n_analysed, n_components) float64 array for the results. Without a mask it is
    the new property's own memory, so the kernel writes into OVITO's buffer without a copy."""
    data.particles_.create_property(name, dtype=float, components=components)
    target = np.asarray(data.particles_[name + "_"])
    if mask is None:
        return target
    target[...] = 0.0  # excluded particles get 0, as in OVITO
    return np.empty((int(mask.sum()), len(components)))


def alongside(work, here):
    """``(work(), here())``, with ``work`` in a worker thread while ``here`` runs in this one, if more
    than one thread is allowed. For a compiled search (which releases the GIL) next to OVITO's
    creation of the output property, which fills it with zeros in one thread. ``work`` must not
    touch OVITO's Python API, which works in this thread only: give it arrays
    (a :class:`~ovito_mlclass.frames.Frame`). Without the compiled kernel (whose absence
    means OVITO's finders) it runs here, one thread being allowed."""
    from .._compiled import kernels

    if kernels.max_threads() < 2:
        return work(), here()
    import threading

    result, started = {}, threading.Event()

    def run():
        started.set()
        try:
            result["value"] = work()
        except BaseException as exc:  # re-raised in the caller's thread
            result["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    started.wait()  # so that the worker reaches the GIL-free search before `here` may hold the GIL
    try:
        mine = here()
    finally:
        thread.join()
    if "error" in result:
        raise result["error"]
    return result["value"], mine


def store(data: DataCollection, name: str, values: np.ndarray, mask: np.ndarray | None) -> None:
    if mask is not None:
        np.asarray(data.particles_[name + "_"])[mask] = values


def relay_progress(steps, label: str, share: float = 0.9):
    """Runs a generator of (fraction, text) steps, passing its progress on to OVITO (as ``label:
    text`` and ``share`` of the modifier's progress bar); returns the generator's result."""
    while True:
        try:
            fraction, text = next(steps)
        except StopIteration as done:
            return done.value
        yield f"{label}: {text}"
        yield share * fraction
