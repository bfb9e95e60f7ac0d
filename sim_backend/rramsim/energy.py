"""Energy ledger of the emulated board: every read, conversion, pulse and DAC update, priced.

``EmulatedOverlay.ledger`` accumulates it (saved in the state file beside ``board_time_s``).  Each
figure and its source (docs/emulator.md, "Board time and energy"):

- array read: a cell conducts while its column is sampled (the column multiplexer connects one
  source line to the TIA at a time; the others float: seed 000 Methods, "column currents read one
  after another"), for one ADC conversion time, at the row voltage: E = V^2 * G * t_conv summed over
  the driven cells of every sampled column, i.e. V * I * t_conv per sample (a 0-bit grounds its row
  and draws nothing: seed 000 Methods); ``array_read_energy_j`` is the same sum in closed form.  The
  paper's "RM energy" (seed 000 Fig. 3g/4g, right panels) is, as far as its main text says, this
  V^2 G t sum; the TO/WO ratio of two networks does not depend on t_conv (docs/emulator.md, "TO / WO
  energy ratio": why ours is 0.47-0.52 and the paper's 0.69-0.74);
- ADC conversion: ADS8324 at 50 kSPS "consuming less than 3.0 mW" (datasheet SBAS172A, Theory of
  Operation) -> t_conv = 20 us and at most 3.0 mW * 20 us = 60 nJ per conversion;
- pulse: V^2 * G * t_pulse of each pulsed cell, with the pulse amplitude V across the cell and G
  the cell's conductance after the operation (ours: an estimate that ignores the access transistor's
  drop and the change of G during the pulse);
- DAC80508 frames: counted, not priced (no per-update energy figure in the sources at hand).

Units: the drive sums of rramsim (DAC code x nS) and microvolts come in, joules go out.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np
from numpy.typing import ArrayLike
from rramctl.hw import dac80508
from rramctl.hw.energy import EnergyCounts
from rramctl.protocol import ADC_MIN_CYCLES, PL_CLOCK_HZ

# the board's conversion rate: one CS fall every ADC_MIN_CYCLES PL clocks, 50 kSPS, the ADS8324's most
# (datasheet SBAS172A; the bound protocol.toml [clock.ADC_MIN_CYCLES] is held to)
ADC_RATE_SPS = PL_CLOCK_HZ // ADC_MIN_CYCLES
ADC_POWER_W = 3.0e-3  # ADS8324: less than 3.0 mW at 50 kSPS (datasheet SBAS172A, Theory of Operation)
T_CONV_S = 1.0 / ADC_RATE_SPS
ADC_ENERGY_J = ADC_POWER_W * T_CONV_S  # 60 nJ per conversion (an upper bound)
NS = 1e-9  # siemens per nS
UV = 1e-6  # volts per uV
# pulse widths are PL clock cycles (PL_CLOCK_HZ, docs/protocol.md)
BOARD_LSB_UV = float(dac80508.FULL_SCALE_V) * 1e6 / dac80508.FULL_SCALE_CODES  # one board DAC code: 5 V / 2**16


def array_read_energy_j(ones_per_row: ArrayLike, g_s: ArrayLike, v_read_v: float, t_read_s: float) -> float:
    """The array read energy the ledger counts, in closed form: V^2 t sum_rows ones(row) x sum_cols G(row, col).

    ``ones_per_row`` (rows,): how many bit-planes drove each row at ``v_read_v`` (a 0-bit grounds the row and
    draws nothing: seed 000 Methods), ``g_s`` (rows, cols): the conductance in siemens of every cell read on
    those rows (both halves of a pair), each read for ``t_read_s``.  Two networks read at one V and t compare
    by ``sum ones x G`` alone (docs/emulator.md, "TO / WO energy ratio")."""
    ones = np.asarray(ones_per_row, dtype=np.float64)
    g = np.asarray(g_s, dtype=np.float64)
    return float(v_read_v**2 * t_read_s * (ones @ g.reshape(len(ones), -1)).sum())


@dataclass
class EnergyLedger(EnergyCounts):
    """Joules per kind of event and the events counted since power-up (or since ``reset``); the record
    (fields, ``total_j``, ``since``, ``copy``) is ``rramctl.hw.energy.EnergyCounts``, priced here."""

    def read(self, v_uv: int, drive_sum_total: float, samples: int) -> None:
        """``samples`` ADC samples of columns driven at ``v_uv`` whose drive sums (board DAC code x nS)
        add up to ``drive_sum_total``: V * I * t_conv each, plus the conversions."""
        current_sum_a = drive_sum_total * BOARD_LSB_UV * UV * NS
        self.array_read_j += v_uv * UV * current_sum_a * T_CONV_S
        self.adc_j += samples * ADC_ENERGY_J
        self.adc_conversions += samples

    def pulse(self, v_uv: int, g_total_ns: float, width_cycles: int, count: int) -> None:
        """``count`` pulses of amplitude ``v_uv`` and ``width_cycles`` PL cycles on cells whose
        conductances add up to ``g_total_ns``: V^2 G t each."""
        self.pulse_j += (v_uv * UV) ** 2 * g_total_ns * NS * width_cycles / PL_CLOCK_HZ
        self.pulses += count

    @classmethod
    def from_dict(cls, data: dict[str, float | int]) -> EnergyLedger:
        names = {f.name for f in fields(cls)}
        unknown = set(data) - names
        if unknown:
            raise ValueError(f"energy ledger: unknown fields {sorted(unknown)}")
        ledger = cls()
        for f in fields(cls):
            if f.name in data:
                value = data[f.name]
                if not isinstance(value, (int, float)) or value < 0:
                    raise ValueError(f"energy ledger: {f.name} is {value!r}, expected a number >= 0")
                setattr(ledger, f.name, type(getattr(ledger, f.name))(value))
        return ledger
