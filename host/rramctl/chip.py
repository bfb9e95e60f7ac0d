"""The chip API: the operations a researcher asks for, in volts, seconds and microsiemens.

Every request is checked against the BoardConfig ratings and the array geometry before a
register is written; the driver then turns it into register and stream sequences.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from rramctl.config import BoardConfig, ConfigError, Pulse
from rramctl.driver import TIA_MULTIPLY, TIA_READ, Driver
from rramctl.geometry import COLS, PAIR_OFFSET, ROWS, Region, check_cells
from rramctl.hw import adc, dac80508

FORMED_THRESHOLD_US = 1e6 / 300e3  # seed 000 / hardware-facts: formed = below 300 kOhm (3.33 uS)


@dataclass(frozen=True)
class FormReport:
    region: Region
    voltage_v: float
    width_s: float
    formed_fraction: float
    mean_formed_us: float
    conductance_us: NDArray[np.float64] = field(repr=False)


@dataclass(frozen=True)
class PairFormReport:
    """Complementary forming of differential pairs: G+ formed at random, G- formed where G+ is not."""

    region: Region  # the G+ half (pair columns); G- lies at the same columns + 256
    plus_formed_fraction: float
    complemented: int  # G- cells that were to be formed
    complement_formed: int  # ... and did form within the ratings
    max_voltage_v: float  # highest G- forming amplitude needed
    form_pulses: int  # forming pulses on G- cells (one per cell per ramp step)
    weights_us: NDArray[np.float64] = field(repr=False)  # G+ - G- after forming

    @property
    def complete(self) -> bool:
        return self.complement_formed == self.complemented


def row_runs(cells: NDArray[np.int64]) -> list[Region]:
    """Cells (N, 2) grouped into 1-row regions of consecutive columns (each region holds only listed cells)."""
    if len(cells) == 0:
        return []
    cells = cells[np.lexsort((cells[:, 1], cells[:, 0]))]
    r, c = cells[:, 0], cells[:, 1]
    breaks = np.flatnonzero((np.diff(r) != 0) | (np.diff(c) != 1)) + 1
    starts = np.concatenate(([0], breaks))
    ends = np.concatenate((breaks, [len(cells)]))
    return [Region(int(r[a]), 1, int(c[a]), int(e - a)) for a, e in zip(starts, ends, strict=True)]


@dataclass(frozen=True)
class ProgramReport:
    final_us: NDArray[np.float64]
    pulses: NDArray[np.int64]
    converged: NDArray[np.bool_]

    @property
    def total_pulses(self) -> int:
        return int(self.pulses.sum())


@dataclass(frozen=True)
class MultiplyResult:
    codes: NDArray[np.int64]  # (B, n_cols) shift-and-added ADC codes
    products: NDArray[np.float64]  # (B, n_cols) calibrated sum_i x_i * G_ij in uS


class Chip:
    """One 512x512 RRAM array behind a driver."""

    rows = ROWS
    cols = COLS

    def __init__(self, driver: Driver, config: BoardConfig | None = None) -> None:
        self.driver = driver
        self.config = config or BoardConfig()
        self.v_read_code = dac80508.volts_to_code(self.config.read_voltage_v)
        # conductance per read-range code and per multiply-range code at the read voltage
        self._ns_per_read_code = 1 / (adc.code_gain(TIA_READ) * self.v_read_code)
        self._ns_per_mult_code = 1 / (adc.code_gain(TIA_MULTIPLY) * self.v_read_code)

    # ---- construction ------------------------------------------------------------------
    @classmethod
    def open(
        cls,
        backend: str = "emulator",
        *,
        config: BoardConfig | None = None,
        state: str | Path | None = None,
        seed: int = 0,
        bitfile: str | Path | None = None,
    ) -> Chip:
        """Open a chip on a backend: ``emulator``, ``pynq``, ``serial:PORT[@BAUD]`` or ``auto``."""
        from rramctl.backends import open_transport

        config = config or BoardConfig()
        transport = open_transport(backend, state=state, seed=seed, bitfile=bitfile, config=config)
        driver = Driver(transport, poll_timeout_s=config.poll_timeout_s, settle_cycles=config.settle_cycles)
        driver.identify()
        return cls(driver, config)

    def close(self) -> None:
        self.driver.transport.close()

    def __enter__(self) -> Chip:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- conversions -------------------------------------------------------------------
    def _code(self, volts: float, what: str) -> int:
        try:
            return dac80508.volts_to_code(volts)
        except dac80508.DacFrameError as e:
            raise ConfigError(f"{what}: {e}") from e

    def _pulse(self, pulse: Pulse) -> tuple[int, int, int]:
        """(cycles, amplitude code, gate code) of a pulse already validated by BoardConfig."""
        return (
            self.config.pulse_cycles(pulse.width_s),
            self._code(pulse.voltage_v, "amplitude"),
            self._code(pulse.gate_v, "gate"),
        )

    def codes_to_us(self, codes: NDArray[np.integer]) -> NDArray[np.float64]:
        return np.asarray(codes, dtype=np.float64) * float(self._ns_per_read_code) / 1000.0

    def us_to_codes(self, conductance_us: NDArray[np.floating]) -> NDArray[np.int64]:
        return np.rint(np.asarray(conductance_us, dtype=np.float64) * 1000.0 / float(self._ns_per_read_code)).astype(
            np.int64
        )

    @property
    def read_range_us(self) -> float:
        """Largest conductance a single-cell read can report (ADC full scale)."""
        return float(self.codes_to_us(np.array(adc.CODE_MAX)))

    # ---- operations ----------------------------------------------------------------------
    def electroform(self, region: Region | None = None, pulse: Pulse | None = None) -> FormReport:
        """Form a region (all its SLs at the forming voltage, WL-limited compliance), then read it back."""
        region = region or Region()
        pulse = pulse or self.config.form
        self.config.with_changes(form=pulse.model_dump())  # re-validate against the ratings
        cycles, v_sl, v_wl = self._pulse(pulse)
        self.driver.form(region, cycles, v_sl, v_wl)
        g = self.read(region)
        formed = g > FORMED_THRESHOLD_US
        return FormReport(
            region=region,
            voltage_v=pulse.voltage_v,
            width_s=pulse.width_s,
            formed_fraction=float(formed.mean()),
            mean_formed_us=float(g[formed].mean()) if formed.any() else 0.0,
            conductance_us=g,
        )

    def electroform_pairs(self, region: Region, pulse: Pulse | None = None, step_v: float = 0.05) -> PairFormReport:
        """Form differential pairs as seed 000 (Results, "random weight generation"): the G+ half (``region``,
        pair columns 0..255) is formed at random, then each G- cell (column + 256) is electroformed to the
        state complementary to its G+ cell: G- cells whose G+ did not form get forming pulses on their own
        (1-row regions of consecutive cells), read back, and the ones still unformed get the next pulse
        ``step_v`` higher (form-verify ramp, ours), up to the SL rating. Every pair then holds one conducting
        cell: weights are +-G, about half of each sign."""
        pulse = pulse or self.config.form
        if region.col + region.n_cols > PAIR_OFFSET:
            raise ValueError(f"pair region {region} must lie in columns 0..{PAIR_OFFSET - 1} (G- at +{PAIR_OFFSET})")
        if step_v <= 0:
            raise ValueError(f"step_v must be positive, got {step_v}")
        minus = Region(region.row, region.n_rows, region.col + PAIR_OFFSET, region.n_cols)
        plus_report = self.electroform(region, pulse)
        want = plus_report.conductance_us <= FORMED_THRESHOLD_US  # G- must form where G+ did not
        pending = np.argwhere(want & (self.read(minus) <= FORMED_THRESHOLD_US))
        v, v_max, pulses, v_used = pulse.voltage_v, self.config.ratings.max_sl_voltage_v, 0, pulse.voltage_v
        with self.driver.transport.batch():
            while len(pending) and v <= v_max + 1e-9:
                step = pulse.model_copy(update={"voltage_v": round(v, 6)})
                cycles, v_sl, v_wl = self._pulse(step)
                for run in row_runs(pending + [minus.row, minus.col]):
                    self.driver.form(run, cycles, v_sl, v_wl)
                pulses += len(pending)
                v_used = v
                g = self.read(minus)
                pending = pending[g[pending[:, 0], pending[:, 1]] <= FORMED_THRESHOLD_US]
                v += step_v
        g_minus = self.read(minus)
        formed_minus = g_minus > FORMED_THRESHOLD_US
        return PairFormReport(
            region=region,
            plus_formed_fraction=plus_report.formed_fraction,
            complemented=int(want.sum()),
            complement_formed=int((want & formed_minus).sum()),
            max_voltage_v=float(v_used),
            form_pulses=pulses,
            weights_us=plus_report.conductance_us - g_minus,
        )

    def reset(self, cells: NDArray[np.integer]) -> int:
        """Prune: one reset pulse per cell (batched); returns the pulses applied."""
        cells = check_cells(cells)
        cycles, v_sl, v_wl = self._pulse(self.config.reset)
        return self.driver.reset_cells(cells, cycles, v_sl, v_wl) if len(cells) else 0

    def set(self, cells: NDArray[np.integer]) -> int:
        """Reinstate: one set pulse per cell (batched); returns the pulses applied."""
        cells = check_cells(cells)
        cycles, v_bl, v_wl = self._pulse(self.config.set)
        return self.driver.set_cells(cells, cycles, v_bl, v_wl) if len(cells) else 0

    def program(
        self, cells: NDArray[np.integer], targets_us: NDArray[np.floating], tolerance: float | None = None
    ) -> ProgramReport:
        """Write-verify each cell to its target conductance (weight-optimisation baseline)."""
        cells = check_cells(cells)
        targets_us = np.asarray(targets_us, dtype=np.float64).ravel()
        tol = self.config.write_verify.tolerance if tolerance is None else tolerance
        if not 0 < tol < 1:
            raise ValueError(f"tolerance must be in (0, 1), got {tol}")
        if targets_us.shape != (len(cells),):
            raise ValueError(f"{len(cells)} cells but {targets_us.size} targets")
        codes = self.us_to_codes(targets_us)
        if codes.size and (codes.min() < 1 or codes.max() > adc.CODE_MAX):
            raise ValueError(f"targets must lie in ({float(self.codes_to_us(np.array(1))):.3f}, "
                             f"{self.read_range_us:.1f}] uS")  # fmt: skip
        cycles, v_prog, v_wl = self._pulse(self.config.program)
        res = self.driver.program_cells(
            cells, codes, pulse_cycles=cycles, tolerance_ppm=round(tol * 1e6),
            max_pulses=self.config.write_verify.max_pulses, v_prog=v_prog, v_wl=v_wl, v_read=self.v_read_code,
        )  # fmt: skip
        converged = np.abs(res.final_codes - codes) * 10**6 <= codes * round(tol * 1e6)
        return ProgramReport(self.codes_to_us(res.final_codes), res.pulses, converged)

    def read(self, region: Region | None = None) -> NDArray[np.float64]:
        """Conductance map of a region in uS (each cell read alone at the read voltage)."""
        region = region or Region()
        return self.codes_to_us(self.driver.read_region(region, self.v_read_code, TIA_READ))

    def multiply(self, inputs: NDArray[np.integer], region: Region, bits: int) -> MultiplyResult:
        """Bit-serial vector-matrix multiply of (B, n_rows) m-bit inputs with the region's columns."""
        codes = self.driver.multiply(inputs, bits, region, self.v_read_code, TIA_MULTIPLY)
        products = codes.astype(np.float64) * (float(self._ns_per_mult_code) / 1000.0)
        return MultiplyResult(codes, products)

    def multiply_pairs(
        self, inputs: NDArray[np.integer], rows: tuple[int, int], pair_cols: tuple[int, int], bits: int
    ) -> NDArray[np.float64]:
        """Differential products sum_i x_i (G+_ij - G-_ij) in uS for pair columns ``pair_cols``
        (start, count); G+ at column c, G- at c + 256 (docs/protocol.md)."""
        (r0, nr), (c0, nc) = rows, pair_cols
        if c0 < 0 or c0 + nc > PAIR_OFFSET:
            raise ValueError(f"pair columns {c0}..{c0 + nc - 1} must lie in 0..{PAIR_OFFSET - 1}")
        plus = self.multiply(inputs, Region(r0, nr, c0, nc), bits)
        minus = self.multiply(inputs, Region(r0, nr, c0 + PAIR_OFFSET, nc), bits)
        return plus.products - minus.products

    def weights_us(self, rows: tuple[int, int], pair_cols: tuple[int, int]) -> NDArray[np.float64]:
        """Differential weights G+ - G- of a tile, read back from the chip."""
        (r0, nr), (c0, nc) = rows, pair_cols
        return self.read(Region(r0, nr, c0, nc)) - self.read(Region(r0, nr, c0 + PAIR_OFFSET, nc))

    def counters(self) -> dict[str, int]:
        return self.driver.counters()


def product_lsb_us(chip: Chip) -> Fraction:
    """Calibrated product (uS x input LSB) per multiply-range ADC code."""
    return Fraction(chip._ns_per_mult_code) / 1000
