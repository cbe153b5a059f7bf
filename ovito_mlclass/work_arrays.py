"""Frame-sized work arrays kept from one frame to the next.

Classifying a million atoms takes about 0.8 GB of work arrays (the nearest-neighbour search's rows
and vectors, the descriptors). Memory fresh from the operating system costs time to map and zero,
at times as much as the whole classification. So the arrays of one frame are kept and handed out
again for the next frame of the same size, and a trajectory pays for them once. An array is handed
out again only when nothing refers to it any more (a view of it, a result the caller kept: then a
new one is made), so a result is never overwritten. Kept arrays are let go a short while after their
last use, and never kept where they would take more than an eighth of the machine's memory. The
compiled kernels keep their own large blocks (a search's bins and sorted positions) the same way,
up to a sixteenth of the memory, and let go of them together with these.
"""
from __future__ import annotations

import os
import sys
import threading

import numpy as np

__all__ = ["WorkArrays", "WORK"]


def _physical_memory() -> int:
    """Bytes of main memory, 0 where the platform does not say."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return 0


class WorkArrays:
    """Named arrays kept between calls: :meth:`empty` hands out the array kept under a name when
    its shape and type match and nothing else refers to it, else a new one (kept in its place)."""

    def __init__(self, keep_seconds: float = 30.0, max_bytes: int | None = None):
        self.keep_seconds = keep_seconds
        self.max_bytes = _physical_memory() // 8 if max_bytes is None else max_bytes
        self._kept: dict[str, np.ndarray] = {}
        self._lock = threading.Lock()
        self._timer: threading.Timer | None = None

    def empty(self, name: str, shape, dtype=np.float64) -> np.ndarray:
        """An uninitialised C-contiguous array like ``np.empty(shape, dtype)``."""
        shape, dtype = tuple(int(s) for s in np.atleast_1d(shape)), np.dtype(dtype)
        with self._lock:
            array = self._kept.pop(name, None)
            # 2 references: `array` and getrefcount's argument; a caller's result or a view adds one
            if array is None or array.shape != shape or array.dtype != dtype or sys.getrefcount(array) > 2:
                array = np.empty(shape, dtype)
            if self.kept_bytes + array.nbytes <= self.max_bytes:
                self._kept[name] = array
                self._let_go_later()
            return array

    @property
    def kept_bytes(self) -> int:
        return sum(a.nbytes for a in self._kept.values())

    def clear(self) -> None:
        """Lets go of every kept array (arrays still in use stay with their users), and of the
        blocks of memory the compiled kernels keep for their next call of the same size."""
        with self._lock:
            self._kept.clear()
        from . import _compiled

        if _compiled.COMPILED:
            _compiled.kernels.release_blocks()

    def touch(self) -> None:
        """Restarts the wait before everything kept is let go (:meth:`clear`): after a compiled
        kernel has run, which keeps blocks of its own."""
        with self._lock:
            self._let_go_later()

    def _let_go_later(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = threading.Timer(self.keep_seconds, self.clear)
        self._timer.daemon = True  # never keeps the interpreter from exiting
        self._timer.start()


# The arrays of the descriptor computation (FeatureSpec.compute), shared by every caller.
WORK = WorkArrays()
