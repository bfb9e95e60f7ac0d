"""The counts of a board's energy ledger: joules per kind of event and the events counted.

One record shared by the emulator's ledger (``rramsim.energy.EnergyLedger``, which prices each event:
docs/emulator.md, "Board time and energy") and the chip API's ``BoardCost`` (``rramctl.transport.base``),
so the two never disagree on what is counted.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from typing_extensions import Self


@dataclass
class EnergyCounts:
    """Joules per kind of event and the events counted (since power-up, or between two readings)."""

    array_read_j: float = 0.0
    adc_j: float = 0.0
    pulse_j: float = 0.0
    adc_conversions: int = 0
    pulses: int = 0
    dac_updates: int = 0

    @property
    def total_j(self) -> float:
        """The priced kinds added up (DAC updates are counted, not priced)."""
        return self.array_read_j + self.adc_j + self.pulse_j

    def combined(self, other: EnergyCounts, sign: int) -> Self:
        """Field by field ``self + sign * other`` (``other`` may be the base record)."""
        own = {f.name for f in fields(other)}
        return replace(self, **{f.name: getattr(self, f.name) + sign * getattr(other, f.name)
                                for f in fields(self) if f.name in own})  # fmt: skip

    def since(self, before: EnergyCounts) -> Self:
        """What was added after ``before`` (a copy taken earlier): the cost of the work between."""
        return self.combined(before, -1)

    def copy(self) -> Self:
        return replace(self)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def counts(self) -> dict[str, Any]:
        """Only the energy counts (a subclass's own fields left out)."""
        return {f.name: getattr(self, f.name) for f in fields(EnergyCounts)}


__all__ = ["EnergyCounts"]
