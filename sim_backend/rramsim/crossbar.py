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

import numpy as np
from numpy.typing import ArrayLike, NDArray
from rramctl.hw import adc

from rramsim import rng
from rramsim.config import ARRAY_SIZE, ChipModelConfig
from rramsim.rng import PPM, Stream

NOT_STUCK, STUCK_ON, STUCK_OFF = 0, 1, 2
FORMED_LIMIT_NS = 3_334  # a cell below 300 kOhm counts as formed (seed 000 / hardware-facts)
LOG2_FRAC_BITS = 16


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


def cell_index(rows: ArrayLike, cols: ArrayLike) -> NDArray[np.int64]:
    """The key of a cell: row * 512 + col (independent of the configured array size)."""
    return np.asarray(rows, dtype=np.int64) * ARRAY_SIZE + np.asarray(cols, dtype=np.int64)


class Crossbar:
    """Conductances ``g`` (int32 nS), each cell's own formed conductance ``g_formed`` (0 = never
    formed) and the stuck map ``stuck`` (0 / 1 stuck-on / 2 stuck-off)."""

    def __init__(self, config: ChipModelConfig) -> None:
        self.config = config
        rows, cols = np.meshgrid(np.arange(config.rows), np.arange(config.cols), indexing="ij")
        idx = cell_index(rows, cols)
        c, seed = config, config.seed
        u = rng.uniform_u32(seed, Stream.STUCK, idx)
        on_limit = (c.stuck_on_ppm << 32) // PPM
        off_limit = ((c.stuck_on_ppm + c.stuck_off_ppm) << 32) // PPM
        self.stuck = np.where(u < on_limit, STUCK_ON, np.where(u < off_limit, STUCK_OFF, NOT_STUCK)).astype(np.int8)
        pristine = rng.scaled_normal(c.pristine_ns, c.pristine_ns * c.pristine_spread_ppm // PPM,
                                     rng.normal_int(seed, Stream.PRISTINE_G, idx))  # fmt: skip
        pristine = np.maximum(pristine, 1)
        self.g = np.where(self.stuck == STUCK_ON, c.stuck_on_ns, pristine).astype(np.int32)
        self.g_formed = np.zeros_like(self.g)

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
        return v_wl_uv > self.config.wl_threshold_uv

    # ---- static per-cell properties ------------------------------------------------------
    def form_threshold_uv(self, rows: ArrayLike, cols: ArrayLike) -> NDArray[np.int64]:
        c = self.config
        z = rng.normal_int(c.seed, Stream.FORM_THRESHOLD, cell_index(rows, cols))
        return rng.scaled_normal(c.form_threshold_uv, c.form_threshold_sigma_uv, z)

    def forming_drive_uv(self, v_sl_uv: int, cycles: int) -> int:
        """The amplitude equivalent at the reference width and temperature (ours): longer pulses and
        a hotter chuck lower the voltage a cell needs to form."""
        c = self.config
        width_term = c.form_uv_per_octave * (log2_fixed(cycles) - log2_fixed(c.form_ref_cycles)) >> LOG2_FRAC_BITS
        temp_term = c.form_uv_per_degc * (c.temperature_mdegc - round(c.form_ref_temperature_c * 1000)) // 1000
        return v_sl_uv + width_term + temp_term

    def formed_mean_ns(self, v_wl_uv: int) -> int:
        """Mean formed conductance set by the WL compliance (ours: linear in the gate overdrive)."""
        c = self.config
        over = max(0, v_wl_uv - c.wl_threshold_uv)
        return c.formed_ns_at_ref_gate * over // (c.form_ref_gate_uv - c.wl_threshold_uv)

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
        g = np.clip(rng.scaled_normal(mean, mean * cfg.formed_spread_ppm // PPM, z), cfg.formed_min_ns, cfg.max_ns)
        self.g[r[forms], c[forms]] = g
        self.g_formed[r[forms], c[forms]] = g
        return int(forms.sum())

    def _switchable(self, r: NDArray[np.int64], c: NDArray[np.int64]) -> NDArray[np.bool_]:
        return (self.g_formed[r, c] > 0) & (self.stuck[r, c] == NOT_STUCK)

    def reset(self, rows: ArrayLike, cols: ArrayLike, v_sl_uv: int, v_wl_uv: int, cycles: int,
              serial: int, positions: ArrayLike) -> None:  # fmt: skip
        """One reset pulse per cell (SL at v_sl, BL grounded): a formed cell moves towards a fresh
        off level (c2c draw keyed by (serial, position)) by the pulse's efficacy."""
        r, c = self._cells(rows, cols)
        cfg = self.config
        e = efficacy_ppm(v_sl_uv, cfg.reset_onset_uv, cfg.reset_full_uv, cycles, cfg.reset_full_cycles)
        if not self._gate_on(v_wl_uv) or e == 0:
            return
        z = rng.normal_int(cfg.seed, Stream.RESET_C2C, serial, positions)
        off = np.maximum(rng.scaled_normal(cfg.off_ns, cfg.off_ns * cfg.reset_c2c_ppm // PPM, z), 1)
        g = self.g[r, c].astype(np.int64)
        new = np.where(g > off, g - (g - off) * e // PPM, g)
        ok = self._switchable(r, c)
        self.g[r[ok], c[ok]] = new[ok]

    def set(self, rows: ArrayLike, cols: ArrayLike, v_bl_uv: int, v_wl_uv: int, cycles: int,
            serial: int, positions: ArrayLike) -> None:  # fmt: skip
        """One set pulse per cell (BL at v_bl, SL grounded): a formed cell moves towards its own
        formed conductance with c2c variation; a never-formed cell does not set."""
        r, c = self._cells(rows, cols)
        cfg = self.config
        e = efficacy_ppm(v_bl_uv, cfg.set_onset_uv, cfg.set_full_uv, cycles, cfg.set_full_cycles)
        if not self._gate_on(v_wl_uv) or e == 0:
            return
        own = self.g_formed[r, c].astype(np.int64)
        z = rng.normal_int(cfg.seed, Stream.SET_C2C, serial, positions)
        on = np.clip(rng.scaled_normal(own, own * cfg.set_c2c_ppm // PPM, z), 1, cfg.max_ns)
        g = self.g[r, c].astype(np.int64)
        new = np.where(on > g, g + (on - g) * e // PPM, g)
        ok = self._switchable(r, c)
        self.g[r[ok], c[ok]] = new[ok]

    def program_pulse(self, rows: ArrayLike, cols: ArrayLike, direction: ArrayLike, v_uv: int, v_wl_uv: int,
                      cycles: int, serial: int, positions: ArrayLike, pulse_number: ArrayLike) -> None:  # fmt: skip
        """One write-verify pulse per cell: direction +1 = SET direction (BL), -1 = RESET direction
        (SL).  Change = step * (V * width / reference) + programming noise, clipped to 1..max_ns."""
        r, c = self._cells(rows, cols)
        cfg = self.config
        if not self._gate_on(v_wl_uv):
            return
        e = min(4 * PPM, v_uv * cycles * PPM // (cfg.program_ref_uv * cfg.program_ref_cycles))  # ours: cap 4x
        z = rng.normal_int(cfg.seed, Stream.PROGRAM_NOISE, serial, positions, pulse_number)
        delta = cfg.program_step_ns * e // PPM + np.floor_divide(cfg.program_noise_ns * z, rng.NORMAL_SIGMA)
        g = self.g[r, c].astype(np.int64)
        new = np.clip(g + np.asarray(direction, dtype=np.int64) * delta, 1, cfg.max_ns)
        ok = self._switchable(r, c)
        self.g[r[ok], c[ok]] = new[ok]

    def drift(self) -> None:
        """Retention drift, once per operation (ours): formed cells relax towards the off level."""
        ppm = self.config.drift_ppm_per_op
        if ppm == 0:
            return
        g = self.g.astype(np.int64)
        off = self.config.off_ns
        mask = (self.g_formed > 0) & (self.stuck == NOT_STUCK) & (g > off)
        self.g = np.where(mask, g - (g - off) * ppm // PPM, g).astype(np.int32)

    # ---- reading ---------------------------------------------------------------------------
    def drive_sums(self, v: NDArray[np.integer], col_start: int, col_count: int) -> NDArray[np.int64]:
        """Exact column drive sums S[n, j] = sum_i v[n, i] * G[i, col_start + j] (v: (N, rows) DAC codes).

        float64 matmul of integers is exact: every partial sum is an integer below
        65535 * max_ns * 512 < 2**53 (checked by ChipModelConfig)."""
        v = np.asarray(v)
        if v.ndim != 2 or v.shape[1] != self.config.rows:
            raise ValueError(f"row drives must have shape (N, {self.config.rows}), got {v.shape}")
        if v.size and (v.min() < 0 or v.max() > 0xFFFF):
            raise ValueError("row drives must be DAC codes 0..65535")
        g = self.g[:, col_start : col_start + col_count].astype(np.float64)
        return (v.astype(np.float64) @ g).astype(np.int64)

    def read_noise(self, drive_sum: ArrayLike, serial: int, sample: ArrayLike) -> NDArray[np.int64]:
        """Read noise of ADC samples in drive-sum units: floor(S * z * ppm / (2**16 * 1e6)), z keyed by
        (serial, sample index), evaluated in float64 with one rounding per + - * / (IEEE exact rounding)."""
        s = np.asarray(drive_sum, dtype=np.int64)
        ppm = self.config.read_noise_ppm
        if ppm == 0:
            return np.zeros(s.shape, dtype=np.int64)
        z = rng.normal_int(self.config.seed, Stream.READ_NOISE, serial, sample)
        prod = s.astype(np.float64) * z.astype(np.float64) * float(ppm) / float(rng.NORMAL_SIGMA * PPM)
        return np.floor(prod).astype(np.int64)

    def sample_codes(self, drive_sum: ArrayLike, tia_gain: int, serial: int, sample: ArrayLike) -> NDArray[np.int64]:
        """ADC codes of samples: the documented transfer function (rramctl.hw.adc) of S + noise."""
        s = np.asarray(drive_sum, dtype=np.int64)
        return adc.drive_sum_to_code(s + self.read_noise(s, serial, sample), tia_gain)

    def formed_mask(self) -> NDArray[np.bool_]:
        """Cells below 300 kOhm (seed 000): what a read-back would call formed."""
        return self.g >= FORMED_LIMIT_NS
