"""Allowed values of the descriptors' numeric parameters, shared by the descriptor classes (checked
on construction) and the OVITO modifiers' traits (checked when set), so both name the same range."""
from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Range:
    """Finite numbers from ``low`` (excluded if ``open_low``) to ``high``; None: unbounded."""

    low: float | None = None
    high: float | None = None
    open_low: bool = False

    def __contains__(self, value) -> bool:
        try:
            value = float(value)
        except (TypeError, ValueError):
            return False
        if not math.isfinite(value):
            return False
        if self.low is not None and (value < self.low or (self.open_low and value == self.low)):
            return False
        return self.high is None or value <= self.high

    def __str__(self) -> str:
        if self.low is not None and self.high is not None:
            return f"a finite number in [{self.low:g}, {self.high:g}]"
        if self.low is not None:
            return f"a finite number {'>' if self.open_low else '>='} {self.low:g}"
        return "a finite number" + (f" <= {self.high:g}" if self.high is not None else "")


ANY = Range()
POSITIVE = Range(0.0, open_low=True)
NON_NEGATIVE = Range(0.0)
