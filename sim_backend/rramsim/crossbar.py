"""The 1T1R cell array: conductance state in integer nS and the physics of every operation.

Every function works on arrays of cells (or samples) and is the same code for one cell: the
vectorised emulator calls it with whole regions, the cocotb benches (hdl/tb) call it with
one-element arrays in RTL order and get bit-identical results, because every random draw is keyed
by integers (rramsim.rng), never by call order.  Keys (docs/emulator.md, "Per-event API"):

- static per cell, key (seed, stream, cell) with cell = row * 512 + col: forming threshold,
  formed-conductance factor, pristine conductance, stuck-on/off;
- per pulse, key (seed, stream, op serial, index): reset/set off/on levels (index = position in
  the cell list), write-verify noise (position, pulse number), read noise (sample index).

Floats appear only where IEEE 754 rounds correctly (+ - * / on float64): the column drive sums
(float64 matmul of integers, exact while every partial sum stays below 2**53, which
ChipModelConfig checks) and the read-noise product.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray
from rramctl.hw import adc

from rramsim import arraymath, device, kernels, rng
from rramsim.config import ARRAY_SIZE, ChipModelConfig, Program
from rramsim.rng import PPM, Stream

NOT_STUCK, STUCK_ON, STUCK_OFF = 0, 1, 2
FORMED_LIMIT_NS = 3_334  # a cell below 300 kOhm counts as formed (seed 000 Methods; docs/hardware.md)
LOG2_FRAC_BITS = 16
_NP = arraymath.NumpyModule()


def log2_fixed(n: int) -> int:
    """floor-ish log2(n) * 2**16 in exact integer arithmetic (bit-by-bit squaring; no libm)."""
    if n < 1:
        raise ValueError(f"log2 of {n}")
    ip = n.bit_length() - 1
    one = 1 << 62
    x = (n << 62) >> ip  # n / 2**ip in [1, 2), 62 fractional bits
    result = ip
    for _ in range(LOG2_FRAC_BITS):
        x = (x * x) >> 62
        result <<= 1
        if x >= 2 * one:
            x >>= 1
            result |= 1
    return result


def efficacy_ppm(v_uv: int, onset_uv: int, full_uv: int, cycles: int, full_cycles: int) -> int:
    """Fraction (ppm) of a full switching step that one pulse achieves (ours): linear in the
    amplitude between onset and full, linear in the width up to the full width."""
    e_v = min(PPM, max(0, (v_uv - onset_uv) * PPM // (full_uv - onset_uv)))
    e_w = min(PPM, cycles * PPM // full_cycles)
    return e_v * e_w // PPM


def program_step_ns(p: Program, v_uv: int, cycles: int) -> int:
    """The noise-free change of one write-verify pulse (nS): step x V x width / reference, capped at 4x (ours);
    ``p``: the model's ``program`` section (Crossbar.program_pulse and the overlay's compiled PROGRAM)."""
    return int(p.step_ns * min(4 * PPM, v_uv * cycles * PPM // (p.ref_uv * p.ref_cycles)) // PPM)


def cell_index(rows: ArrayLike, cols: ArrayLike) -> NDArray[np.int64]:
    """The key of a cell: row * 512 + col (independent of the configured array size)."""
    return np.asarray(rows, dtype=np.int64) * ARRAY_SIZE + np.asarray(cols, dtype=np.int64)


@dataclass(frozen=True)
class ReadTimes:
    """READ's sample times (rramsim.timing: the RTL's clocks): cell k of a block (row-major, row i = k // cols)
    is sampled at now + ((i + 1) * row + (k + 1) * sample) // cycles per us, ``row`` the clocks a row takes
    before its samples (its chain frame and guard, ``timing.read_row_cycles``) and ``sample`` those of one
    sample (settle, conversion, output word, ``timing.read_sample_cycles``).  ``compiled``:
    Crossbar.conductance may take the block in one compiled pass."""

    row_cycles: int
    sample_cycles: int
    cycles_per_us: int
    compiled: bool = True

    def times(self, now_us: int, rows: int, cols: int) -> NDArray[np.int64]:
        k = np.arange(rows * cols, dtype=np.int64).reshape(rows, cols)
        cycles = (k // cols + 1) * self.row_cycles + (k + 1) * self.sample_cycles
        return now_us + cycles // self.cycles_per_us


class Crossbar:
    """Conductances ``g`` (int32 nS) as the last pulse left them, each cell's own formed conductance
    ``g_formed`` (0 = never formed), the stuck map ``stuck`` (0 / 1 stuck-on / 2 stuck-off), the board
    time of each cell's last pulse ``t_pulse_us`` (int64, -1 = never pulsed) and the relaxation that
    pulse started ``relax_ns`` (int32).  ``now_us`` is the board clock the overlay sets before each
    operation; ``conductance()`` is G at that time (relaxed and drifted, rramsim.device)."""

    def __init__(self, config: ChipModelConfig) -> None:
        self.config = config
        rows, cols = np.meshgrid(np.arange(config.rows), np.arange(config.cols), indexing="ij")
        idx = cell_index(rows, cols)
        c, seed = config, config.seed
        u = rng.uniform_u32(seed, Stream.STUCK, idx)
        on_limit = (c.defects.stuck_on_ppm << 32) // PPM
        off_limit = ((c.defects.stuck_on_ppm + c.defects.stuck_off_ppm) << 32) // PPM
        self.stuck = np.where(u < on_limit, STUCK_ON, np.where(u < off_limit, STUCK_OFF, NOT_STUCK)).astype(np.int8)
        f = c.forming
        pristine = rng.scaled_normal(f.pristine_ns, f.pristine_ns * f.pristine_spread_ppm // PPM,
                                     rng.normal_int(seed, Stream.PRISTINE_G, idx))  # fmt: skip
        pristine = np.maximum(pristine, 1)
        self.g = np.where(self.stuck == STUCK_ON, c.defects.stuck_on_ns, pristine).astype(np.int32)
        self.g_formed = np.zeros_like(self.g)
        self.t_pulse_us = np.full(self.g.shape, -1, dtype=np.int64)
        self.relax_ns = np.zeros_like(self.g)
        self.now_us = 0
        self.readout = device.Readout(config)

    # ---- helpers -----------------------------------------------------------------------
    def _check(self, rows: NDArray[np.int64], cols: NDArray[np.int64]) -> None:
        if rows.shape != cols.shape:
            raise ValueError(f"rows {rows.shape} and cols {cols.shape} differ in shape")
        if rows.size and (rows.min() < 0 or rows.max() >= self.config.rows or cols.min() < 0
                          or cols.max() >= self.config.cols):  # fmt: skip
            raise ValueError("a cell outside the array")

    def _cells(self, rows: ArrayLike, cols: ArrayLike) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
        r, c = np.asarray(rows, dtype=np.int64), np.asarray(cols, dtype=np.int64)
        self._check(r, c)
        if np.unique(cell_index(r, c)).size != r.size:
            raise ValueError("a pulse call must not name the same cell twice (apply repeats one after another)")
        return r, c

    def _gate_on(self, v_wl_uv: int) -> bool:
        return v_wl_uv > self.config.transistor.wl_threshold_uv

    # ---- static per-cell properties ------------------------------------------------------
    def form_threshold_uv(self, rows: ArrayLike, cols: ArrayLike) -> NDArray[np.int64]:
        c = self.config
        z = rng.normal_int(c.seed, Stream.FORM_THRESHOLD, cell_index(rows, cols))
        return rng.scaled_normal(c.forming.threshold_uv, c.forming.threshold_sigma_uv, z)

    def forming_drive_uv(self, v_sl_uv: int, cycles: int) -> int:
        """The amplitude equivalent at the reference width and temperature (ours): longer pulses and
        a hotter chuck lower the voltage a cell needs to form."""
        c, f = self.config, self.config.forming
        width_term = f.uv_per_octave * (log2_fixed(cycles) - log2_fixed(f.ref_cycles)) >> LOG2_FRAC_BITS
        temp_term = f.uv_per_degc * (c.temperature_mdegc - round(f.ref_temperature_c * 1000)) // 1000
        return v_sl_uv + width_term + temp_term

    def formed_mean_ns(self, v_wl_uv: int) -> int:
        """Mean formed conductance set by the WL compliance (ours: linear in the gate overdrive)."""
        f, vt = self.config.forming, self.config.transistor.wl_threshold_uv
        over = max(0, v_wl_uv - vt)
        return f.formed_ns_at_ref_gate * over // (f.ref_gate_uv - vt)

    # ---- pulses ----------------------------------------------------------------------------
    def form(self, rows: ArrayLike, cols: ArrayLike, v_sl_uv: int, v_wl_uv: int, cycles: int) -> int:
        """One forming pulse on the given cells; returns how many formed now.  A formed cell, a stuck
        cell, or a closed gate: nothing happens (ours)."""
        r, c = self._cells(rows, cols)
        if not self._gate_on(v_wl_uv) or cycles < 1:
            return 0
        cfg = self.config
        idx = cell_index(r, c)
        cand = (self.g_formed[r, c] == 0) & (self.stuck[r, c] == NOT_STUCK)
        forms = cand & (self.forming_drive_uv(v_sl_uv, cycles) >= self.form_threshold_uv(r, c))
        mean = self.formed_mean_ns(v_wl_uv)
        z = rng.normal_int(cfg.seed, Stream.FORMED_G, idx[forms])
        f = cfg.forming
        g = np.clip(rng.scaled_normal(mean, mean * f.formed_spread_ppm // PPM, z), f.formed_min_ns, cfg.program.max_ns)
        self.g[r[forms], c[forms]] = g
        self.g_formed[r[forms], c[forms]] = g
        self._mark(r[forms], c[forms], np.zeros(int(forms.sum()), dtype=np.int64))
        return int(forms.sum())

    def _switchable(self, r: NDArray[np.int64], c: NDArray[np.int64]) -> NDArray[np.bool_]:
        return (self.g_formed[r, c] > 0) & (self.stuck[r, c] == NOT_STUCK)

    def reset(self, rows: ArrayLike, cols: ArrayLike, v_sl_uv: int, v_wl_uv: int, cycles: int,
              serial: int, positions: ArrayLike) -> None:  # fmt: skip
        """One reset pulse per cell (SL at v_sl, BL grounded): a formed cell moves towards a fresh
        off level (c2c draw keyed by (serial, position)) by the pulse's efficacy."""
        r, c = self._cells(rows, cols)
        cfg = self.config
        e = efficacy_ppm(v_sl_uv, cfg.reset.onset_uv, cfg.reset.full_uv, cycles, cfg.reset.full_cycles)
        if not self._gate_on(v_wl_uv) or e == 0:
            return
        z = rng.normal_int(cfg.seed, Stream.RESET_C2C, serial, positions)
        off = np.maximum(rng.scaled_normal(cfg.reset.off_ns, cfg.reset.off_ns * cfg.reset.c2c_ppm // PPM, z), 1)
        g = self._fold(r, c)
        new = np.where(g > off, g - (g - off) * e // PPM, g)
        ok = self._switchable(r, c)
        self.g[r[ok], c[ok]] = new[ok]
        self._mark(r[ok], c[ok], np.zeros(int(ok.sum()), dtype=np.int64))

    def set(self, rows: ArrayLike, cols: ArrayLike, v_bl_uv: int, v_wl_uv: int, cycles: int,
            serial: int, positions: ArrayLike) -> None:  # fmt: skip
        """One set pulse per cell (BL at v_bl, SL grounded): a formed cell moves towards its own
        formed conductance with c2c variation; a never-formed cell does not set."""
        r, c = self._cells(rows, cols)
        cfg = self.config
        e = efficacy_ppm(v_bl_uv, cfg.set.onset_uv, cfg.set.full_uv, cycles, cfg.set.full_cycles)
        if not self._gate_on(v_wl_uv) or e == 0:
            return
        own = self.g_formed[r, c].astype(np.int64)
        z = rng.normal_int(cfg.seed, Stream.SET_C2C, serial, positions)
        on = np.clip(rng.scaled_normal(own, own * cfg.set.c2c_ppm // PPM, z), 1, cfg.program.max_ns)
        g = self._fold(r, c)
        new = np.where(on > g, g + (on - g) * e // PPM, g)
        ok = self._switchable(r, c)
        self.g[r[ok], c[ok]] = new[ok]
        relax = device.relaxation_draw(cfg, serial, np.asarray(positions, dtype=np.int64))
        self._mark(r[ok], c[ok], np.broadcast_to(relax, r.shape)[ok])

    def program_pulse(self, rows: ArrayLike, cols: ArrayLike, direction: ArrayLike, v_uv: int, v_wl_uv: int,
                      cycles: int, serial: int, positions: ArrayLike, pulse_number: ArrayLike) -> None:  # fmt: skip
        """One write-verify pulse per cell: direction +1 = SET direction (BL), -1 = RESET direction
        (SL).  Change = step * (V * width / reference) + programming noise, clipped to 1..max_ns."""
        r, c = self._cells(rows, cols)
        cfg = self.config
        if not self._gate_on(v_wl_uv):
            return
        p = cfg.program
        z = rng.normal_int(cfg.seed, Stream.PROGRAM_NOISE, serial, positions, pulse_number)
        delta = program_step_ns(p, v_uv, cycles) + np.floor_divide(p.noise_ns * z, rng.NORMAL_SIGMA)
        g = self._fold(r, c)
        new = np.clip(g + np.asarray(direction, dtype=np.int64) * delta, 1, p.max_ns)
        ok = self._switchable(r, c)
        self.g[r[ok], c[ok]] = new[ok]
        relax = device.relaxation_draw(cfg, serial, np.asarray(positions, dtype=np.int64), pulse_number)
        self._mark(r[ok], c[ok], np.broadcast_to(relax, r.shape)[ok])

    # ---- time: relaxation and drift (rramsim.device) ---------------------------------------
    @property
    def time_active(self) -> bool:
        """Whether conductances depend on the board clock (relaxation or drift on)."""
        return bool(self.config.relaxation.sigma_ns or self.config.drift.ppm_per_decade)

    def _fold(self, r: NDArray[np.int64], c: NDArray[np.int64]) -> NDArray[np.int64]:
        """Cells about to be pulsed start from their conductance now (relaxed and drifted)."""
        g = self.g[r, c].astype(np.int64)
        if not self.time_active:
            return g
        ok = self._switchable(r, c)
        t = np.where(ok, self.t_pulse_us[r, c], -1)  # cells that cannot switch keep g (never-pulsed rule)
        return device.aged(g, t, self.relax_ns[r, c], ok, self.now_us, self.config)

    def _mark(self, r: NDArray[np.int64], c: NDArray[np.int64], relax: NDArray[np.int64]) -> None:
        """Pulsed cells: their relaxation and drift clocks start now."""
        self.t_pulse_us[r, c] = self.now_us
        self.relax_ns[r, c] = relax

    def conductance(
        self,
        v_wl_uv: int | None = None,
        index: tuple[Any, ...] | None = None,
        at_us: NDArray[np.int64] | ReadTimes | None = None,
    ) -> NDArray[np.int64]:
        """Every cell's conductance as a read sees it at ``now_us`` (int64 nS): relaxed and drifted since
        its last pulse, and gated by the word line (``v_wl_uv`` at or below the transistor threshold:
        leakage only; ``None``: gate open).  ``index``: only those cells (a numpy index into the array:
        ``np.ix_(rows, cols)`` for a block, ``(rows, cols)`` for a cell list), the same numbers the whole
        array has there.  ``at_us``: each indexed cell's own time (a READ samples one cell after another)
        instead of ``now_us``; a :class:`ReadTimes` gives READ's times of a block of two slices (compiled
        in one pass where numba is installed and ``ReadTimes.compiled``; the same numbers)."""
        if isinstance(at_us, ReadTimes):
            assert index is not None and all(isinstance(i, slice) for i in index), "READ's times need a block"
            r0, r1, _ = index[0].indices(self.config.rows)
            c0, c1, _ = index[1].indices(self.config.cols)
            if at_us.compiled and kernels.AVAILABLE:
                return self._read_conductance(v_wl_uv, (r0, r1 - r0, c0, c1 - c0), at_us)
            at_us = at_us.times(self.now_us, r1 - r0, c1 - c0)
        idx = (slice(None), slice(None)) if index is None else index
        g = self._g[idx].astype(np.int64)
        if self.time_active:  # stuck cells age as never-pulsed ones: not at all
            t = np.where(self.stuck[idx] == NOT_STUCK, self.t_pulse_us[idx], -1)
            now = self.now_us if at_us is None else np.broadcast_to(np.asarray(at_us, dtype=np.int64), g.shape)
            g = device.aged(g, t, self.relax_ns[idx], self.g_formed[idx] > 0, now, self.config)
        return device.gated(g, v_wl_uv, self.config)

    def _read_conductance(
        self, v_wl_uv: int | None, region: tuple[int, int, int, int], times: ReadTimes
    ) -> NDArray[np.int64]:
        """``conductance`` of a block at READ's sample times by kernels.read_conductance_kernel."""
        tr = self.config.transistor
        out = np.empty((region[1], region[3]), dtype=np.int64)
        params = np.array([self.now_us, times.row_cycles, times.sample_cycles, times.cycles_per_us,
                           int(self.time_active), int(v_wl_uv is None or v_wl_uv > tr.wl_threshold_uv),
                           tr.off_leak_ns, 1], dtype=np.int64)  # fmt: skip
        kernels.read_conductance_kernel(self._g, self.g_formed, self.stuck, self.t_pulse_us, self.relax_ns,
                                        np.array(region, dtype=np.int64), params, device.aged_params(self.config),
                                        out.reshape(-1))  # fmt: skip
        return out

    def drift(self) -> None:
        """Retention drift, once per operation (ours): formed cells relax towards the off level."""
        ppm = self.config.drift.ppm_per_op
        if ppm == 0:
            return
        g = self.g.astype(np.int64)
        off = self.config.reset.off_ns
        mask = (self.g_formed > 0) & (self.stuck == NOT_STUCK) & (g > off)
        self.g = np.where(mask, g - (g - off) * ppm // PPM, g).astype(np.int32)

    # ---- reading ---------------------------------------------------------------------------
    def drive_sums(
        self, v: NDArray[np.integer], col_start: int, col_count: int, v_wl_uv: int | None = None
    ) -> NDArray[np.int64]:
        """Exact column drive sums S[n, j] = sum_i v[n, i] * G[i, col_start + j] (v: (N, rows) DAC codes),
        G = ``conductance(v_wl_uv)``.

        float64 matmul of integers is exact: every partial sum is an integer below
        65535 * max_ns * 512 < 2**53 (checked by ChipModelConfig)."""
        v = np.asarray(v)
        if v.ndim != 2 or v.shape[1] != self.config.rows:
            raise ValueError(f"row drives must have shape (N, {self.config.rows}), got {v.shape}")
        if v.size and (v.min() < 0 or v.max() > 0xFFFF):
            raise ValueError("row drives must be DAC codes 0..65535")
        g = self.conductance(v_wl_uv, np.s_[:, col_start : col_start + col_count]).astype(np.float64)
        return (v.astype(np.float64) @ g).astype(np.int64)

    def read_op(self, tia_gain: int, serial: int) -> arraymath.ReadOp:
        """The constants of one read (rramsim.arraymath.ReadOp): noise keys, ADC gain, read-out chain."""
        cfg, ro = self.config, self.readout
        g = adc.code_gain(tia_gain)
        p, q = g.numerator, g.denominator
        floor_pa = cfg.read.noise_floor_pa
        return arraymath.ReadOp(
            seed=cfg.seed, serial=serial, read_noise_ppm=cfg.read.noise_ppm, gain_p=p, gain_q=q,
            code_min=adc.CODE_MIN, code_max=adc.CODE_MAX, chain=ro.active, offset_du=ro.offset_du,
            gain_ppm=ro.gain_ppm, noise_floor_du=int(device.du_from_pa(floor_pa)) if floor_pa else 0,
            adc_noise_mlsb=cfg.readout.adc_noise_mlsb, clip=4 * (adc.CODE_MAX + 2) * q // p,
        )  # fmt: skip

    def read_noise(self, drive_sum: ArrayLike, serial: int, sample: ArrayLike) -> NDArray[np.int64]:
        """Read noise of ADC samples in drive-sum units: floor(S * z * ppm / (2**16 * 1e6)), z keyed by
        (serial, sample index), evaluated in float64 with one rounding per + - * / (IEEE exact rounding)."""
        s = np.asarray(drive_sum, dtype=np.int64)
        if self.config.read.noise_ppm == 0:
            return np.zeros(s.shape, dtype=np.int64)
        sample = np.broadcast_to(np.asarray(sample, dtype=np.int64), s.shape)
        return np.asarray(arraymath.read_noise(_NP, s, sample, self.read_op(0, serial)))

    def sample_codes(
        self,
        drive_sum: ArrayLike,
        tia_gain: int,
        serial: int,
        sample: ArrayLike | None,
        cols: ArrayLike | None = None,
    ) -> NDArray[np.int64]:
        """ADC codes of samples: the documented transfer function (rramctl.hw.adc) of S + read noise,
        through the read-out chain of each sample's column ``cols`` (offset, noise floor, gain error,
        ADC input noise: rramsim.device.Readout; needed when the model has read-out terms; broadcast
        to the samples' shape).  ``sample``: each sample's noise key (None: its flat index in row-major
        order).  The math is rramsim.arraymath.readout_codes (the same function the MULTIPLY fast path
        runs)."""
        s = np.asarray(drive_sum, dtype=np.int64)
        op = self.read_op(tia_gain, serial)
        if op.chain and cols is None:
            raise ValueError("this chip model has per-column read-out terms: pass the column of every sample")
        keys = None if sample is None else np.broadcast_to(np.asarray(sample, dtype=np.int64), s.shape)
        col = np.zeros(1, np.int64) if cols is None else np.asarray(cols, dtype=np.int64)
        return np.asarray(arraymath.readout_codes(_NP, s, keys, col, op))

    def read_block(
        self, xm: arraymath.ArrayModule, rows: NDArray[np.int64], col_start: int, col_count: int, v_wl_uv: int | None
    ) -> arraymath.Array:
        """G of ``rows`` x the column range as a read sees it now (``conductance(v_wl_uv)``), in ``xm``'s
        matmul form (float32 where every column sum stays below 2**24, else float64).  Cached while the
        conductances, the gate and the configuration stay the same (any access to ``g`` counts as a
        change; a chip with relaxation or drift is recomputed on every call)."""
        if self.time_active:
            cols = slice(col_start, col_start + col_count)
            contiguous = rows.size and rows[-1] - rows[0] + 1 == rows.size and bool((np.diff(rows) == 1).all())
            if contiguous:  # every cell at now_us (READ's times with rows and samples of no clocks): compiled
                now = ReadTimes(0, 0, 1, compiled=bool(getattr(xm, "compiled", True)))
                block = self.conductance(v_wl_uv, (slice(int(rows[0]), int(rows[-1]) + 1), cols), now)
            else:
                block = self.conductance(v_wl_uv, (rows, cols))
            return xm.block(block, int(block.sum(axis=0).max(initial=0)))
        gate_open = v_wl_uv is None or v_wl_uv > self.config.transistor.wl_threshold_uv
        key = (xm.name, getattr(xm, "device", None), rows.tobytes(), col_start, col_count, gate_open,
               id(self.config), self._g_version)  # fmt: skip
        hit = self._block_cache.get(key)
        if hit is None:
            g = self._g[rows, col_start : col_start + col_count].astype(np.int64)
            block = device.gated(g, v_wl_uv, self.config)
            hit = xm.block(block, int(block.sum(axis=0).max(initial=0)))
            self._block_cache = {key: hit}  # one block: the region being multiplied
        return hit

    # Conductances: every access to ``g`` (reads included) marks the cached read blocks stale.
    _g_version = 0
    _block_cache: dict[tuple[object, ...], arraymath.Array]

    @property
    def g(self) -> NDArray[np.int32]:
        self._g_version += 1
        return self._g

    @g.setter
    def g(self, value: NDArray[np.int32]) -> None:
        self._g_version += 1
        self._g = value
        self._block_cache = {}

    def formed_mask(self) -> NDArray[np.bool_]:
        """Cells below 300 kOhm (seed 000): what a read-back would call formed."""
        return self.g >= FORMED_LIMIT_NS
