"""The chip API: the operations a researcher asks for, in volts, seconds and microsiemens.

Every request is checked against the BoardConfig ratings and the array geometry before a
register is written; the driver then turns it into register and stream sequences.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Iterable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from rramctl.arguments import (
    as_board_config,
    as_existing_or_new_file,
    as_flag,
    as_path,
    as_read_gate,
    as_real_array,
    as_region,
    as_scalar,
    as_seed,
    as_targets,
    as_tolerance,
)
from rramctl.config import BoardConfig, ConfigError, Pulse
from rramctl.driver import Driver, check_inputs
from rramctl.errors import DeviceError, UsageError
from rramctl.geometry import COLS, ROWS, Region, check_cells, pair_cells
from rramctl.hw import adc, dac80508
from rramctl.protocol import VERIFY_TOL_SCALE, TiaGain, write_verify_accepts
from rramctl.transport.base import BoardCost as BoardCost  # re-exported: the chip API's cost record
from rramctl.transport.base import Transport

# seed 000 Results, Fig. 2h paragraph (docs/hardware.md): formed = below 300 kOhm (3.33 uS)
FORMED_THRESHOLD_US = 1e6 / 300e3
# ours: the least fraction of a region's G+ half formed for `electroform_pairs(resume=True)` to take it as the half an
# interrupted run formed. Forming forms about half of the cells (seed 000); a region never formed reads only its
# defects (the emulator's stuck-on cells, 0.04 % of a fresh chip): a resume there would form nearly every G- cell and
# leave a one-sided network, for ever.
MIN_RESUME_FORMED_FRACTION = 0.1
MAX_OFFSET_VECTORS = 1 << 16  # ours: most zero-input vectors of one calibrate_offsets pass (256 by default)
# ours: the longest one Chip.wait (and any wait or delay of a calibration plan), ~31.7 years; the emulator's board
# clock has a limit of its own (rramsim.overlay.MAX_BOARD_TIME_S, 1e12 s in all)
MAX_WAIT_S = 1e9
DAC_STEP_V = float(dac80508.FULL_SCALE_V) / dac80508.FULL_SCALE_CODES  # one DAC code (76 uV)


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
    products: NDArray[np.float64]  # (B, n_cols) calibrated sum_i x_i * G_ij in uS (column offsets removed)
    saturated: int = 0  # ADC samples at either end of the range (SAT_COUNT)


class SaturationWarning(UserWarning):
    """ADC samples clipped at the end of the range: products are squashed (BoardConfig.on_saturation)."""


class SaturationError(DeviceError):
    """ADC samples clipped while BoardConfig.on_saturation is ``raise``."""


class Chip:
    """One 512x512 RRAM array: the one public object for chip work (in the spirit of pyarc2's ``Instrument``).

    Get one with :meth:`Chip.open` (any backend, ``software`` included); the driver behind it is private.
    """

    rows = ROWS
    cols = COLS

    def __init__(self, driver: Driver | None, config: BoardConfig | None = None, *, backend: str = "") -> None:
        self._driver = driver
        self.backend = backend or (driver.transport.name if driver is not None else "software")
        self.config = as_board_config(config)
        self._offsets: dict[int, float] = {}  # column -> offset code per multiply-range sample (calibrate_offsets)
        self.v_read_code = dac80508.volts_to_code(self.config.read_voltage_v)
        # conductance per read-range code and per multiply-range code at the read voltage
        self._ns_per_read_code = 1 / (adc.code_gain(TiaGain.READ) * self.v_read_code)
        self._ns_per_mult_code = 1 / (adc.code_gain(TiaGain.MULTIPLY) * self.v_read_code)

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
        model: object = None,
        autosave: bool = True,
        device: str = "cpu",
    ) -> Chip:
        """Open a chip on a backend (rramctl.backends): ``emulator``, ``pynq``, ``serial:PORT[@BAUD]``,
        ``software`` or ``auto``. ``state``: the emulator's / software chip's state file (None: a new chip in
        memory); ``seed``: seed of a new chip; ``model``: the emulated chip model, a
        ``rramsim.config.ChipModelConfig``, a preset name (``paper-40nm``, the default; ``ideal``) or a TOML
        file (its seed replaced by ``seed``; a name that is neither: ``UsageError``); ``autosave``:
        the emulator writes ``state`` back when the chip closes (False: the chip stays in memory and the
        caller saves it with :meth:`save_state`); ``device``: where the emulator's array math runs (``cpu`` =
        numpy, ``numpy`` (no compiled kernel), ``torch-cpu``, ``cuda[:N]``; the same codes on every device)."""
        from rramctl.backends import OpenOptions, open_transport, resolve

        config = as_board_config(config)
        for name, text in (("backend", backend), ("device", device)):
            if not isinstance(text, str):
                raise UsageError(f"{name} must be a string, got {text!r}")
        seed = as_seed(seed)
        autosave = as_flag(autosave, "autosave")
        spec = resolve(backend)
        state_path = as_existing_or_new_file(state, "state") if state is not None else None
        if spec.kind == "software":
            from rramctl.software import SoftwareChip

            chip = (
                SoftwareChip.load(state_path, config)
                if state_path and state_path.exists()
                else SoftwareChip(seed, config)
            )
            chip.autosave_path = state_path if autosave else None
            return chip
        bitfile_path = as_path(bitfile) if bitfile is not None else None
        opts = OpenOptions(config, state_path, seed, bitfile_path, model, autosave, device)
        return cls.from_transport(open_transport(spec, opts), config)

    @classmethod
    def from_transport(cls, transport: Transport, config: BoardConfig | None = None) -> Chip:
        """A chip on an already open transport (the driver checks the overlay's identity first)."""
        if not isinstance(transport, Transport):  # before the driver is built (its close() would be a bare error)
            raise UsageError(f"transport must be a rramctl Transport, got {transport!r}")
        config = as_board_config(config)  # refused before the chip takes the transport over
        driver = Driver(transport, poll_timeout_s=config.poll_timeout_s, settle_cycles=config.settle_cycles,
                        read_gate_code=dac80508.volts_to_code(config.read_gate_v))  # fmt: skip
        try:
            driver.identify()
            # the ratings below the host: the overlay refuses any DAC frame past them until the PL is reset
            driver.lock_ratings(config.ratings.dac_code_limits())
        except BaseException:
            transport.close()
            raise
        return cls(driver, config)

    def emulated_model(self) -> Any:
        """The chip model (``rramsim.config.ChipModelConfig``) of an emulated chip, e.g. the one its state file holds;
        None on a board or the software backend."""
        return self._driver.transport.chip_model() if self._driver is not None else None

    @property
    def has_overlay(self) -> bool:
        """Whether the chip is behind overlay registers (a board, the emulator); False for the ``software`` model."""
        return self._driver is not None

    @property
    def _hw(self) -> Driver:
        if self._driver is None:
            raise UsageError(f"the {self.backend} backend has no overlay registers")
        return self._driver

    def close(self) -> None:
        if self._driver is not None:
            self._driver.transport.close()

    # ---- what callers used to reach the driver for ------------------------------------
    def identity(self) -> tuple[int, int]:
        """The overlay's register-map version (major, minor), after checking its ID."""
        return self._hw.identify()

    def dac_device_id(self) -> int:
        """The DAC80508's DEVICE_ID register (initialises the DAC first)."""
        self._hw.init_dac()
        return self._hw.read_dac_register(dac80508.DEVICE_ID)

    def batch(self) -> AbstractContextManager[None]:
        """Group many operations (the emulator saves its state file once, at the end)."""
        return self._hw.transport.batch() if self._driver is not None else nullcontext()

    #: Whether the chip's state lives in a file the host saves (emulator, software) or in the cells (a board).
    @property
    def state_in_file(self) -> bool:
        return self._hw.transport.state_in_file

    def save_state(self, path: Path) -> None:
        """Save the chip's state (emulator, software); a board keeps its state in the cells."""
        self._hw.transport.save_state(as_path(path))

    def persist(self) -> None:
        """Make the chip's state durable now: an emulator (or software chip) opened with a state file and autosave
        writes it there at once, as it does on close; a board keeps its state in the cells and a chip in memory in
        memory (nothing to do).  A caller that records progress in files of its own (``rramctl calibrate``) calls
        it first, so a kill after the record never finds the chip behind it."""
        if self._driver is not None:
            self._driver.transport.save()

    def session_note(self) -> str | None:
        """What the user should know about how the link was opened (e.g. a resumed serial session)."""
        return self._hw.transport.session_note() if self._driver is not None else None

    def read_codes(self, region: Region | None = None) -> NDArray[np.int64]:
        """Raw read-range ADC codes of a region (each cell read alone at the read voltage)."""
        return self._hw.read_region(as_region(region, default=True), self.v_read_code, TiaGain.READ)

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
        return as_real_array(codes, "codes") * float(self._ns_per_read_code) / 1000.0

    def us_to_codes(self, conductance_us: NDArray[np.floating]) -> NDArray[np.int64]:
        codes = np.rint(as_real_array(conductance_us, "conductances") * 1000.0 / float(self._ns_per_read_code))
        if codes.size and np.abs(codes).max() >= 2.0**63:
            raise UsageError("conductances are out of range: their read codes do not fit 64 bits")
        return codes.astype(np.int64)

    @property
    def read_range_us(self) -> float:
        """Largest conductance a single-cell read can report (ADC full scale)."""
        return float(self.codes_to_us(np.array(adc.CODE_MAX)))

    # ---- operations ----------------------------------------------------------------------
    def electroform(self, region: Region | None = None, pulse: Pulse | None = None) -> FormReport:
        """Form a region (all its SLs at the forming voltage, WL-limited compliance), then read it back."""
        region = as_region(region, default=True)
        pulse = self._form_pulse(pulse)
        cycles, v_sl, v_wl = self._pulse(pulse)
        self._hw.form(region, cycles, v_sl, v_wl)
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

    def electroform_pairs(
        self, region: Region, pulse: Pulse | None = None, step_v: float = 0.05, *, resume: bool = False
    ) -> PairFormReport:
        """Form differential pairs as seed 000 (Results, "random weight generation"): the G+ half (``region``,
        pair columns 0..255) is formed at random, then each G- cell (column + 256) is electroformed to the
        state complementary to its G+ cell: G- cells whose G+ did not form get forming pulses on their own
        (1-row regions of consecutive cells), read back, and the ones still unformed get the next pulse
        ``step_v`` higher (form-verify ramp, ours), up to the SL rating. Every pair then holds one conducting
        cell: weights are +-G, about half of each sign. ``resume``: the G+ half was formed by an interrupted
        call; it is read back, not formed again, and only the G- cells still missing are formed, by a ramp from
        ``pulse``'s voltage again (the pulses an interrupted ramp gave are not recorded). A resume where less than
        MIN_RESUME_FORMED_FRACTION of the G+ half is formed (a region never formed) is refused after that read: the
        read's board time and counters stay, no cell changes."""
        minus = as_region(region).minus()
        resume = as_flag(resume, "resume")
        pulse = self._form_pulse(pulse)  # refused before anything runs, a resumed run too
        step_v = as_scalar(step_v, "step_v")
        if step_v < DAC_STEP_V:  # a smaller step repeats the same DAC code: the ramp would never end
            raise UsageError(f"step_v must be at least one DAC step ({DAC_STEP_V:.6g} V), got {step_v}")
        if resume:
            plus_us = self.read(region)
            plus_fraction = float((plus_us > FORMED_THRESHOLD_US).mean())
            if plus_fraction < MIN_RESUME_FORMED_FRACTION:  # no interrupted run of this region to finish
                raise UsageError(f"nothing to resume: {100 * plus_fraction:.2f} % of the G+ cells of {region} are "
                                 f"formed, below the {100 * MIN_RESUME_FORMED_FRACTION:.0f} % an interrupted run "
                                 "leaves (forming forms about half); form the pairs without resume")  # fmt: skip
        else:
            plus_report = self.electroform(region, pulse)
            plus_us, plus_fraction = plus_report.conductance_us, plus_report.formed_fraction
        want = plus_us <= FORMED_THRESHOLD_US  # G- must form where G+ did not
        pending = np.argwhere(want & (self.read(minus) <= FORMED_THRESHOLD_US))
        v, v_max, pulses, v_used = pulse.voltage_v, self.config.ratings.max_sl_voltage_v, 0, pulse.voltage_v
        with self.batch():
            while len(pending) and v <= v_max + 1e-9:
                step = pulse.model_copy(update={"voltage_v": round(v, 6)})
                cycles, v_sl, v_wl = self._pulse(step)
                for run in row_runs(pending + [minus.row, minus.col]):
                    self._hw.form(run, cycles, v_sl, v_wl)
                pulses += len(pending)
                v_used = v
                g = self.read(minus)
                pending = pending[g[pending[:, 0], pending[:, 1]] <= FORMED_THRESHOLD_US]
                v += step_v
        g_minus = self.read(minus)
        formed_minus = g_minus > FORMED_THRESHOLD_US
        return PairFormReport(
            region=region,
            plus_formed_fraction=plus_fraction,
            complemented=int(want.sum()),
            complement_formed=int((want & formed_minus).sum()),
            max_voltage_v=float(v_used),
            form_pulses=pulses,
            weights_us=plus_us - g_minus,
        )

    def _form_pulse(self, pulse: object) -> Pulse:
        """A forming pulse (None: the config's), validated against the ratings before any register is written."""
        if pulse is None:
            return self.config.form
        if not isinstance(pulse, Pulse):
            raise UsageError(f"pulse must be a rramctl.config.Pulse, got {pulse!r}")
        self.config.with_changes(form=pulse.model_dump())  # re-validate against the ratings
        return pulse

    def reset(self, cells: NDArray[np.integer]) -> int:
        """Prune: one reset pulse per cell (batched); returns the pulses applied."""
        cells = check_cells(cells)
        cycles, v_sl, v_wl = self._pulse(self.config.reset)
        return self._hw.reset_cells(cells, cycles, v_sl, v_wl) if len(cells) else 0

    def set(self, cells: NDArray[np.integer]) -> int:
        """Reinstate: one set pulse per cell (batched); returns the pulses applied."""
        cells = check_cells(cells)
        cycles, v_bl, v_wl = self._pulse(self.config.set)
        return self._hw.set_cells(cells, cycles, v_bl, v_wl) if len(cells) else 0

    def target_codes(self, targets_us: NDArray[np.floating]) -> NDArray[np.int64]:
        """Write-verify targets (uS) as the read-range codes PROGRAM takes; a target the write-verify cannot reach
        (code below 1 or past the ADC's top) is one UsageError."""
        codes = self.us_to_codes(targets_us)
        if codes.size and (codes.min() < 1 or codes.max() > adc.CODE_MAX):
            raise UsageError(f"targets must lie in ({float(self.codes_to_us(np.array(1))):.3f}, "
                             f"{self.read_range_us:.1f}] uS")  # fmt: skip
        return codes

    def program(
        self, cells: NDArray[np.integer], targets_us: NDArray[np.floating], tolerance: float | None = None
    ) -> ProgramReport:
        """Write-verify each cell to its target conductance (weight-optimisation baseline)."""
        cells = check_cells(cells)
        targets_us = as_targets(targets_us, len(cells))
        tol = as_tolerance(tolerance, self.config)
        codes = self.target_codes(targets_us)
        cycles, v_prog, v_wl = self._pulse(self.config.program)
        res = self._hw.program_cells(
            cells, codes, pulse_cycles=cycles, tolerance_ppm=round(tol * VERIFY_TOL_SCALE),
            max_pulses=self.config.write_verify.max_pulses, v_prog=v_prog, v_wl=v_wl, v_read=self.v_read_code,
        )  # fmt: skip
        converged = write_verify_accepts(res.final_codes, codes, round(tol * VERIFY_TOL_SCALE))
        return ProgramReport(self.codes_to_us(res.final_codes), res.pulses, converged)

    def read(self, region: Region | None = None, *, gate_v: float | None = None) -> NDArray[np.float64]:
        """Conductance map of a region in uS (each cell read alone at the read voltage).  ``gate_v``: the
        word-line gate of this read (default ``read_gate_v``; below the transistor threshold a read sees
        only leakage and the column's offset: a zero-input pass of the read range)."""
        region = as_region(region, default=True)
        if gate_v is None:  # less the stored column offsets (calibrate_offsets): a current, so both ranges
            return (
                self.codes_to_us(self.read_codes(region)) - self.column_offsets(region)[None, :] * self.product_lsb_us
            )
        gate_v = as_read_gate(gate_v, self.config)
        codes = self._hw.read_region(region, self.v_read_code, TiaGain.READ, self._code(gate_v, "gate"))
        return self.codes_to_us(codes)

    def read_cells(self, cells: NDArray[np.integer]) -> NDArray[np.float64]:
        """Conductance in uS of each listed cell ((N, 2) [row, col]), read alone at the read voltage and gate, less
        its column's stored offset as :meth:`read`: only those cells are converted (a verify-only PROGRAM,
        docs/protocol.md), where :meth:`read` converts every cell of a region."""
        cells = check_cells(cells)
        codes = self._hw.read_cells(cells, self.v_read_code)
        cols = cells[:, 1]
        return self.codes_to_us(codes) - self._offsets_of(cols) * self.product_lsb_us

    def wait(self, seconds: float) -> None:
        """Let the chip rest: a board sleeps, the emulator advances its virtual board clock (relaxation
        and drift run on it), the ``software`` backend sleeps in real time (it has no board clock).  0 to
        ``MAX_WAIT_S`` (1e9 s) seconds; anything else is refused (UsageError) before anything happens."""
        seconds = as_scalar(seconds, "seconds")
        if not 0 <= seconds <= MAX_WAIT_S:
            raise UsageError(f"cannot wait {seconds} s: a wait is 0 to {MAX_WAIT_S:g} s (rramctl.chip.MAX_WAIT_S)")
        if self._driver is not None:
            self._driver.transport.advance_clock(seconds)
        else:
            time.sleep(seconds)

    def clock_s(self) -> float:
        """Seconds on the chip's clock: the emulator's virtual board clock, else the host's monotonic clock."""
        return self._driver.transport.board_clock() if self._driver is not None else time.monotonic()

    def board_cost(self) -> BoardCost | None:
        """Board time and energy counted so far where the backend models them (the emulator), else None;
        ``after - before`` is the cost of the work between two readings."""
        return self._driver.transport.board_cost() if self._driver is not None else None

    # ---- read-out calibration ------------------------------------------------------------
    def calibrate_offsets(self, region: Region, vectors: int = 256) -> NDArray[np.float64]:
        """Zero-input pass (as the Tsinghua A111 SDK does): ``vectors`` 1-bit all-zero inputs on the
        region's columns; the mean code of each column (multiply range, per ADC sample) is stored and
        removed from every later multiply's products and read's conductances on those columns (the
        offset is a TIA input current: a multiply-range code is ``product_lsb_us`` uS at the read
        voltage).  Returns the offsets in codes."""
        region = as_region(region)
        vectors = as_scalar(vectors, "vectors", integer=True)
        if not 1 <= vectors <= MAX_OFFSET_VECTORS:
            raise UsageError(f"vectors must be 1-{MAX_OFFSET_VECTORS}, got {vectors}")
        x = np.zeros((vectors, region.n_rows), dtype=np.int64)
        codes = self._hw.multiply(x, 1, region, self.v_read_code, TiaGain.MULTIPLY)
        offsets = codes.mean(axis=0)
        for j, off in enumerate(offsets):
            self._offsets[region.col + j] = float(off)
        return offsets

    def column_offsets(self, region: Region) -> NDArray[np.float64]:
        """Stored offset (codes per multiply-range ADC sample) of each of the region's columns; 0 where
        none was measured."""
        region = as_region(region)
        return self._offsets_of(range(region.col, region.col + region.n_cols))

    def _offsets_of(self, cols: Iterable[int]) -> NDArray[np.float64]:
        """The stored offset of each of ``cols`` (0 where none was measured)."""
        return np.array([self._offsets.get(int(c), 0.0) for c in cols], dtype=np.float64)

    def clear_offsets(self) -> None:
        self._offsets.clear()

    def _check_saturation(self, n: int, what: str) -> None:
        if n == 0 or self.config.on_saturation == "ignore":
            return
        msg = f"{what}: {n} ADC samples clipped at the end of the range (products are squashed)"
        if self.config.on_saturation == "raise":
            raise SaturationError(msg)
        warnings.warn(msg, SaturationWarning, stacklevel=3)

    @staticmethod
    def check_inputs(inputs: NDArray[np.integer], region: Region, bits: int) -> NDArray[np.integer[Any]]:
        """Validate (B, n_rows) unsigned ``bits``-bit integer inputs for a multiply on ``region`` (the
        driver's rule, :func:`rramctl.driver.check_inputs`), e.g. before a file's inputs reach a chip."""
        region = as_region(region)
        bits = as_scalar(bits, "input bit width", integer=True)
        try:
            x = np.asarray(inputs)
        except (ValueError, TypeError, OverflowError) as e:  # a ragged list and the like
            raise UsageError(f"inputs must be an integer array of shape (batch, {region.n_rows}): {e}") from None
        return check_inputs(x, region.n_rows, bits)

    @property
    def product_lsb_us(self) -> float:
        """Calibrated product (uS x input LSB) per multiply-range ADC code."""
        return float(self._ns_per_mult_code) / 1000.0

    def multiply(self, inputs: NDArray[np.integer], region: Region, bits: int) -> MultiplyResult:
        """Bit-serial vector-matrix multiply of (B, n_rows) m-bit inputs with the region's columns."""
        x = self.check_inputs(inputs, region, bits)  # every argument refused here, before a register is written
        return self._multiply_checked(x, region, int(bits))

    def _multiply_checked(
        self, x: NDArray[np.integer], region: Region, bits: int, what: str = "multiply"
    ) -> MultiplyResult:
        """:meth:`multiply` of inputs :meth:`check_inputs` has passed (the driver checks their range again); ``what``
        names the multiply in a saturation warning or error."""
        codes = self._hw.multiply(x, bits, region, self.v_read_code, TiaGain.MULTIPLY)
        sat = self._hw.saturated
        self._check_saturation(sat, what)
        offsets = self.column_offsets(region)
        if offsets.any():
            products = np.subtract(codes, offsets[None, :] * ((1 << bits) - 1))  # every plane's offset
            products *= self.product_lsb_us  # (in place: the same values as a new array)
        else:  # no offset stored: (code - 0.0) * lsb = code * lsb, in one pass
            products = np.multiply(codes, self.product_lsb_us, dtype=np.float64)
        return MultiplyResult(codes, products, sat)

    def multiply_pairs(self, inputs: NDArray[np.integer], region: Region, bits: int) -> MultiplyResult:
        """Differential multiply on a pair region (G+ at its columns, G- at + 256, docs/protocol.md):
        codes and products sum_i x_i (G+_ij - G-_ij) in uS x input LSB. Both halves are checked before
        either runs."""
        minus = as_region(region).minus()
        x = self.check_inputs(inputs, region, bits)
        plus_res = self._multiply_checked(x, region, int(bits), "multiply, G+ half")
        minus_res = self._multiply_checked(x, minus, int(bits), "multiply, G- half")
        codes, products = plus_res.codes, plus_res.products  # the plus half's arrays, this call's own: in place
        codes -= minus_res.codes
        products -= minus_res.products
        return MultiplyResult(codes, products, plus_res.saturated + minus_res.saturated)

    def weights_us(self, region: Region) -> NDArray[np.float64]:
        """Differential weights G+ - G- of a pair region, read back from the chip."""
        minus = as_region(region).minus()
        return self.read(region) - self.read(minus)

    def weights_of_pairs(self, pairs: NDArray[np.integer]) -> NDArray[np.float64]:
        """Differential weights G+ - G- of the pairs at ``pairs`` ((K, 2) [row, pair column]) in uS, reading only
        their 2K cells (:meth:`read_cells`)."""
        pairs = check_cells(pairs, "pairs")
        g = self.read_cells(pair_cells(pairs[:, 0], pairs[:, 1]))
        return g[: len(pairs)] - g[len(pairs) :]

    def counters(self) -> dict[str, int]:
        return self._hw.counters()
