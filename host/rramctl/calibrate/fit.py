"""Fit the chip model (rramsim.config.ChipModelConfig) to the calibration measurements.

Each mechanism is fitted from the stage that isolates it (docs/emulator.md, "Calibration"):

- column offsets and the read-range noise from the gate-off reads; the ADC input noise from the
  zero-input multiply by maximum likelihood of the rounded normal (each column's mean known from
  the read range); the noise floor is the read-range noise left after the ADC's share;
- forming threshold mean and sigma by maximum likelihood of the interval-censored forming voltages
  (a cell that formed at step k has its threshold in (V_{k-1}, V_k]); formed-conductance mean and
  relative spread from the offset-corrected first read after forming;
- proportional read noise from the per-cell variance of repeated reads minus the floor's share;
- off level and its cycle-to-cycle spread from the reads after each reset, post-set spread from the
  reads after each set relative to the cell's formed conductance (minus the read noise and the
  relaxation started by the set);
- relaxation sigma and time constant from the spread of G(t) - G(t_0) over the cells, drift (log-time,
  around the model's t0) from its mean.

Parameters no stage identifies (per-column gain without a reference conductance, the pristine spread,
write-verify step and noise, rare defects on a small region) keep the base model's values and are
listed as such.  Every distribution gets its Kolmogorov-Smirnov distance to the fitted model.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from statistics import NormalDist
from typing import Any

import numpy as np
from numpy.typing import NDArray
from pydantic import BaseModel
from rramsim.config import ChipModelConfig

from rramctl.chip import FORMED_THRESHOLD_US
from rramctl.config import BoardConfig
from rramctl.errors import UsageError
from rramctl.hw import adc, dac80508
from rramctl.protocol import TiaGain

_N = NormalDist()
PA_PER_DU = float(dac80508.FULL_SCALE_V) * 1000 / dac80508.FULL_SCALE_CODES  # pA per drive-sum unit
FORMED_US = FORMED_THRESHOLD_US  # formed = below 300 kOhm (seed 000)
MIN_DEFECTS = 10  # (ours) fewer defective cells than this: the fraction is not fitted
MIN_FORMED = 20  # (ours) fewer cells formed in the sweep than this: nothing is fitted


class FitError(UsageError):
    """Measurements that cannot support a fit (a stage missing, too few cells)."""


def _enough(n: int, what: str, least: int = 2) -> None:
    """Refuse a fit from fewer than ``least`` samples (a mean or a spread of none is NaN, not a value)."""
    if n < least:
        raise FitError(f"only {n} {what}: too few to fit (at least {least}); calibrate a larger region no command "
                       "has formed yet")  # fmt: skip


def ncdf(x: NDArray[np.float64] | float) -> NDArray[np.float64]:
    v = np.asarray(x, dtype=np.float64)
    return np.vectorize(_N.cdf, otypes=[np.float64])(v) if v.size else v


def ks_normal(sample: NDArray[np.float64], mean: float, sd: float) -> float:
    """KS distance of a sample to N(mean, sd); at tied (quantised) values the empirical CDF is taken at
    the middle of its step (ours)."""
    x = np.sort(np.asarray(sample, dtype=np.float64).ravel())
    if x.size == 0 or sd <= 0:
        return float("nan")
    vals, counts = np.unique(x, return_counts=True)
    upper = np.cumsum(counts) / x.size
    lower = upper - counts / x.size
    f = ncdf((vals - mean) / sd)
    ties = counts > 1
    d_step = np.maximum(np.abs(upper - f), np.abs(lower - f))
    d_mid = np.abs((upper + lower) / 2 - f)
    return float(np.max(np.where(ties, d_mid, d_step)))


def golden(fun: Any, lo: float, hi: float, iters: int = 80) -> float:
    """Minimum of a unimodal function on [lo, hi]."""
    r = (math.sqrt(5) - 1) / 2
    a, b = lo, hi
    c, d = b - r * (b - a), a + r * (b - a)
    fc, fd = fun(c), fun(d)
    for _ in range(iters):
        if fc < fd:
            b, d, fd = d, c, fc
            c = b - r * (b - a)
            fc = fun(c)
        else:
            a, c, fc = c, d, fd
            d = a + r * (b - a)
            fd = fun(d)
    return (a + b) / 2


# parameters the protocol measures but cannot separate from others (docs/emulator.md, "Calibration"); every
# other unfitted one (operating points, physics the stages do not exercise, stuck-on cells below MIN_DEFECTS)
# is kept too
NOT_IDENTIFIED = ("readout.gain_sigma_ppm", "forming.pristine_spread_ppm", "program.step_ns", "program.noise_ns",
                  "defects.stuck_off_ppm", "transistor.off_leak_ns", "drift.t0_us")  # fmt: skip


def _model_paths(model: ChipModelConfig) -> list[str]:
    """Every numeric device parameter of a chip model as ``section.field``, in model order (the top-level setup
    fields, seed, array size and temperature, are the chip's, not the device's)."""
    out: list[str] = []
    for name in type(model).model_fields:
        value = getattr(model, name)
        if isinstance(value, BaseModel):
            out += [f"{name}.{f}" for f in type(value).model_fields if isinstance(getattr(value, f), (int, float))]
    return out


@dataclass(frozen=True)
class ParamFit:
    path: str  # section.field of ChipModelConfig
    value: float  # in the model's unit: the measured value (rounded to the model's integer unit)
    unit: str
    fitted: bool
    note: str = ""
    preset: float | None = None  # what fitted.toml holds where ``value`` lies outside the field's bounds (the bound)

    @property
    def clamped(self) -> bool:
        return self.preset is not None

    def clamp_line(self) -> str:
        """One line saying that fitted.toml holds the bound, not the measured value."""
        return (f"{self.path}: measured {self.value:g} {self.unit} lies outside the model's bounds; fitted.toml "
                f"holds {self.preset:g} {self.unit}, the nearest bound")  # fmt: skip


def field_bounds(model: ChipModelConfig, path: str) -> tuple[float, float]:
    """The closed range an integer field ``section.field`` of the chip model accepts (its ge/gt/le/lt)."""
    section, name = path.split(".")
    lo, hi = -math.inf, math.inf
    for m in type(getattr(model, section)).model_fields[name].metadata:
        if (v := getattr(m, "ge", None)) is not None:
            lo = max(lo, float(v))
        if (v := getattr(m, "gt", None)) is not None:
            lo = max(lo, float(math.floor(v) + 1))
        if (v := getattr(m, "le", None)) is not None:
            hi = min(hi, float(v))
        if (v := getattr(m, "lt", None)) is not None:
            hi = min(hi, float(math.ceil(v) - 1))
    return lo, hi


@dataclass
class FitResult:
    model: ChipModelConfig
    params: list[ParamFit]
    ks: dict[str, float]
    curves: dict[str, dict[str, Any]] = field(default_factory=dict)
    stats: dict[str, float] = field(default_factory=dict)

    def fitted(self) -> dict[str, float]:
        return {p.path: p.value for p in self.params if p.fitted}


class _Units:
    """Board conversions: read/multiply-range codes, drive-sum units, pA, uS."""

    def __init__(self, board: BoardConfig) -> None:
        self.v_code = dac80508.volts_to_code(board.read_voltage_v)
        r, m = adc.code_gain(TiaGain.READ), adc.code_gain(TiaGain.MULTIPLY)
        self.du_per_read_code = float(r.denominator / r.numerator)
        self.du_per_mult_code = float(m.denominator / m.numerator)
        self.us_per_read_code = self.du_per_read_code / self.v_code / 1000

    def read_codes_to_pa(self, codes: NDArray[np.float64] | float) -> NDArray[np.float64]:
        return np.asarray(codes, dtype=np.float64) * self.du_per_read_code * PA_PER_DU


def _need(meas: dict[str, dict[str, NDArray[Any]]], stage: str) -> dict[str, NDArray[Any]]:
    if stage not in meas:
        raise FitError(f"the {stage} stage has not been measured")
    return meas[stage]


def _rounded_normal_sd(values: NDArray[np.int64], means: NDArray[np.float64]) -> float:
    """ML sigma of x = round_half_up(mean_j + N(0, s)) from integer samples (B, J) with known column means."""
    keys, counts = np.unique(np.stack([values, np.broadcast_to(np.arange(values.shape[1]), values.shape)]).reshape(
        2, -1), axis=1, return_counts=True)  # fmt: skip
    k, j = keys
    mu = means[j]

    def nll(log_s: float) -> float:
        s = math.exp(log_s)
        p = ncdf((k + 0.5 - mu) / s) - ncdf((k - 0.5 - mu) / s)
        return float(-(counts * np.log(np.maximum(p, 1e-300))).sum())

    return math.exp(golden(nll, math.log(0.02), math.log(20.0), 60))


def _censored_normal(volts: NDArray[np.float64], n_at: NDArray[np.int64], n_never: int) -> tuple[float, float]:
    """ML (mean, sd) of thresholds seen only as 'formed at step k' (interval (V_{k-1}, V_k]) or 'never'."""
    edges = np.concatenate([[-np.inf], volts, [np.inf]])
    counts = np.concatenate([n_at, [n_never]]).astype(np.float64)

    def nll(mu: float, s: float) -> float:
        cdf = ncdf((edges - mu) / s)
        p = np.diff(cdf)
        return float(-(counts * np.log(np.maximum(p, 1e-300))).sum())

    formed = np.repeat(volts, n_at)
    mu = float(formed.mean()) if formed.size else float(volts[-1])
    s = max(float(formed.std()), float(np.diff(volts).mean()))
    for _ in range(25):  # coordinate descent
        s_now, mu_now = s, mu
        mu = golden(lambda m, s_now=s_now: nll(m, s_now), mu_now - 3 * s_now, mu_now + 3 * s_now, 50)
        s = math.exp(golden(lambda ls, mu=mu: nll(mu, math.exp(ls)), math.log(s_now / 4), math.log(s_now * 4), 50))
    return mu, s


def fit(meas: dict[str, dict[str, NDArray[Any]]], base: ChipModelConfig, board: BoardConfig | None = None) -> FitResult:
    """Fit ``base`` (its sections give the unfitted values) to the measurements of every stage."""
    board = board or BoardConfig()
    u = _Units(board)
    params: list[ParamFit] = []
    ks: dict[str, float] = {}
    curves: dict[str, dict[str, Any]] = {}
    stats: dict[str, float] = {}
    upd: dict[str, dict[str, int]] = {}

    def put(path: str, value: float, unit: str, note: str = "") -> None:
        """Record a fitted value; fitted.toml takes the nearest bound where it lies outside the field's bounds
        (the report keeps the measured value and says so)."""
        section, name = path.split(".")
        measured = float(round(value))
        lo, hi = field_bounds(base, path)
        kept = min(max(measured, lo), hi)
        upd.setdefault(section, {})[name] = int(kept)
        params.append(ParamFit(path, measured, unit, True, note, None if kept == measured else kept))

    # ---- offsets, noise floor, ADC noise ----------------------------------------------------
    off = _need(meas, "offsets")
    gate_off = np.rint(off["gate_off_us"].astype(np.float64) / u.us_per_read_code)  # (K, R, C) read codes
    per_col = gate_off.transpose(2, 0, 1).reshape(gate_off.shape[2], -1)
    col_mean = per_col.mean(axis=1)
    within = per_col.var(axis=1, ddof=1)
    n_col = per_col.shape[1]
    off_pa = u.read_codes_to_pa(col_mean)
    var_pa = float(np.var(off_pa, ddof=1)) - float(within.mean()) / n_col * float(u.read_codes_to_pa(1.0)) ** 2
    put("readout.offset_sigma_pa", math.sqrt(max(var_pa, 0.0)), "pA", f"std of {len(off_pa)} column offsets")
    # each column's offset as a read sees it (uS), less the closed transistors' leakage (base model's value:
    # the gate-off reads cannot tell a leak from an offset)
    off_us = col_mean * u.us_per_read_code - base.transistor.off_leak_ns / 1000
    s_r2 = float(within.mean())  # read-range sample variance (codes^2): floor + ADC + rounding
    zero = off["zero_codes"].astype(np.int64)  # (B, C) multiply codes
    mu_m = col_mean * u.du_per_read_code / u.du_per_mult_code
    s_m = _rounded_normal_sd(zero, mu_m)
    ratio = u.du_per_read_code / u.du_per_mult_code
    adc_lsb = s_m
    for _ in range(3):  # the floor's share of the multiply-range noise is (floor / 40)**2
        floor_r2 = max(s_r2 - 1 / 12 - adc_lsb**2, 0.0)
        adc_lsb = math.sqrt(max(s_m**2 - floor_r2 * ratio**2, 0.0))
    floor_r = math.sqrt(max(s_r2 - 1 / 12 - adc_lsb**2, 0.0))
    put("readout.adc_noise_mlsb", adc_lsb * 1000, "mLSB", "ML of the zero-input multiply codes")
    put("read.noise_floor_pa", float(u.read_codes_to_pa(floor_r)), "pA", "gate-off read variance minus ADC share")
    ks["zero-input codes"] = float(np.max(np.abs(_rounded_cdf_gap(zero, mu_m, s_m))))
    curves["offsets"] = {"col_offset_pa": off_pa, "zero_mean_codes": zero.mean(axis=0), "mu_m": mu_m}
    noise_us2 = s_r2 * u.us_per_read_code**2  # one read's floor variance, uS^2

    # ---- forming ------------------------------------------------------------------------------
    fm = _need(meas, "forming")
    volts = fm["volts"].astype(np.float64)
    v_form = fm["v_form_v"].astype(np.float64)
    stuck_on = fm["stuck_on"].astype(bool)
    cand = ~stuck_on
    steps = np.searchsorted(volts, v_form[cand & ~np.isnan(v_form)] - 1e-9)
    n_at = np.bincount(steps, minlength=volts.size)
    n_never = int((cand & np.isnan(v_form)).sum())
    if n_at.sum() < MIN_FORMED:
        raise FitError(
            f"only {int(n_at.sum())} cells formed in the sweep: the region is too small or the sweep too low"
        )
    mu_v, s_v = _censored_normal(volts, n_at, n_never)
    f = base.forming
    width_cycles = board.pulse_cycles(float(fm["width_s"])) if "width_s" in fm else f.ref_cycles
    width_uv = f.uv_per_octave * math.log2(width_cycles / f.ref_cycles)
    temp_uv = f.uv_per_degc * (board.forming_temperature_c - f.ref_temperature_c)
    put("forming.threshold_uv", mu_v * 1e6 + width_uv + temp_uv, "uV", "interval-censored ML of the sweep")
    put("forming.threshold_sigma_uv", s_v * 1e6, "uV", "interval-censored ML of the sweep")
    emp = np.cumsum(n_at) / cand.sum()
    model_cdf = ncdf((volts - mu_v) / s_v)
    ks["forming voltage"] = float(np.max(np.abs(emp - model_cdf)))
    curves["forming"] = {"volts": volts, "measured": emp, "fitted": model_cdf}
    cols = np.broadcast_to(np.arange(v_form.shape[1]), v_form.shape)
    formed = ~np.isnan(v_form)
    g_f = (fm["g_formed_us"] - off_us[cols])[formed]
    vt = base.transistor.wl_threshold_uv
    gate_uv = float(fm["gate_v"]) * 1e6 if "gate_v" in fm else f.ref_gate_uv
    gate_scale = (f.ref_gate_uv - vt) / (gate_uv - vt)  # compliance mean is linear in the overdrive
    g_mean, g_sd = float(g_f.mean()), float(np.sqrt(max(g_f.var(ddof=1) - noise_us2, 0.0)))
    put("forming.formed_ns_at_ref_gate", g_mean * 1000 * gate_scale, "nS", f"{g_f.size} formed cells")
    put("forming.formed_spread_ppm", g_sd / g_mean * 1e6, "ppm", "relative sd of formed G")
    ks["formed conductance"] = ks_normal(g_f, g_mean, float(g_f.std(ddof=1)))
    curves["formed"] = {"g_us": g_f, "mean": g_mean, "sd": float(g_f.std(ddof=1))}
    stats["formed_fraction_at_threshold"] = float(np.mean(formed[cand]))
    pristine = meas.get("pristine")
    if pristine is not None and int(stuck_on.sum()) >= MIN_DEFECTS:
        put("defects.stuck_on_ppm", stuck_on.mean() * 1e6, "ppm", f"{int(stuck_on.sum())} cells on before forming")
        put("defects.stuck_on_ns", float(pristine["g_us"].mean(axis=0)[stuck_on].mean()) * 1000, "nS")
    stats["stuck_on_cells"] = float(stuck_on.sum())
    stats["never_formed_cells"] = float(n_never)

    # ---- read noise vs conductance ---------------------------------------------------------------
    rd = _need(meas, "reads")
    g = rd["g_us"].astype(np.float64) - off_us[None, None, :]  # (K, R, C)
    m = g.mean(axis=0)
    v = g.var(axis=0, ddof=1)
    sel = m > FORMED_US
    _enough(int(sel.sum()), "formed cells in the repeated reads")
    rel2 = (float(v[sel].mean()) - noise_us2) / float((m[sel] ** 2).mean())
    ppm = math.sqrt(max(rel2, 0.0)) * 1e6
    put("read.noise_ppm", ppm, "ppm", f"{int(sel.sum())} formed cells x {g.shape[0]} reads")
    sd_i = np.sqrt((ppm * 1e-6 * m[sel]) ** 2 + noise_us2)
    z = (g[:, sel] - m[sel]) / sd_i * math.sqrt(g.shape[0] / (g.shape[0] - 1))
    ks["read noise (standardised)"] = ks_normal(z.ravel(), 0.0, 1.0)
    curves["reads"] = {"mean_us": m[sel], "var_us2": v[sel], "ppm": ppm, "floor_us2": noise_us2}

    # ---- relaxation and drift ------------------------------------------------------------------
    rx = _need(meas, "relaxation")
    cells = rx["cells"].astype(np.int64)
    ok = rx["converged"].astype(bool) & (rx["pulses"] > 0)
    _enough(int(ok.sum()), "cells write-verified (converged after at least one pulse) in the relaxation stage")
    c_rel = cells[ok, 1] - _col0(meas)
    gt = rx["g_us"][:, :, ok].astype(np.float64) - off_us[c_rel][None, None, :]  # (D, K, n)
    n_d, n_k = gt.shape[:2]
    # every read is a time point, each cell at its own sample time; the first point is the write-verify's last
    # verify read (time 0: right after the cell's last pulse), so a cell written seconds before the first delayed
    # read (a PROGRAM of many cells lasts seconds on the board) still shows its relaxation from the start
    verify = rx["verify_us"][ok].astype(np.float64) - off_us[c_rel]
    gp = np.vstack([verify[None, :], gt.reshape(n_d * n_k, -1)])
    tp = np.vstack(
        [
            np.zeros((1, verify.size)),
            np.maximum(np.asarray(rx["t_s"], dtype=np.float64)[:, :, ok].reshape(n_d * n_k, -1), 0.0),
        ]
    )
    dlt = gp - gp[0]
    nv = 2 * float(((ppm * 1e-6 * gp[0]) ** 2 + noise_us2).mean())  # read noise of a difference of two reads
    var_meas = np.maximum(dlt.var(axis=1, ddof=1) - nv, 0.0)

    def sigma_for(tau: float) -> tuple[float, NDArray[np.float64]]:
        h = tp / (tp + tau) - tp[0] / (tp[0] + tau)
        r = np.sqrt((h[1:] ** 2).mean(axis=1))
        den = float((r**2).sum())
        return (float((np.sqrt(var_meas[1:]) * r).sum()) / den if den > 0 else 0.0), h

    def resid(log_tau: float) -> float:
        s, h = sigma_for(math.exp(log_tau))
        return float(((np.sqrt(var_meas[1:]) - s * np.sqrt((h[1:] ** 2).mean(axis=1))) ** 2).sum())

    t_lo, t_hi = float(np.median(tp[1])) + 1e-6, float(tp.max())
    tau = math.exp(golden(resid, math.log(t_lo / 30), math.log(t_hi * 30), 80))
    sig, h = sigma_for(tau)
    put("relaxation.sigma_ns", sig * 1000, "nS", f"{int(ok.sum())} write-verified cells")
    put("relaxation.tau_us", tau * 1e6, "us", f"reads {t_lo:.3g}-{t_hi:.3g} s after write-verify")
    t0 = base.drift.t0_us / 1e6
    lg = np.log10((tp + t0) / t0)
    above = gp[0] - base.reset.off_ns / 1000
    a_mat = np.stack([h.mean(axis=1), -((lg - lg[0]) * above).mean(axis=1)], axis=1)
    coef, *_ = np.linalg.lstsq(a_mat[1:], dlt.mean(axis=1)[1:], rcond=None)
    put("drift.ppm_per_decade", coef[1] * 1e6, "ppm", f"log-time around t0 = {t0:g} s (t0 not fitted)")
    last = dlt[-1]  # standardised per cell: cells written at different times have relaxed by different fractions
    ks["relaxation (G(t_end) - G(t_0))"] = ks_normal((last - last.mean()) / np.sqrt(sig**2 * h[-1] ** 2 + nv), 0.0, 1.0)
    per_delay = slice(1, None, n_k)  # the first read at each delay
    curves["relaxation"] = {
        "t_s": np.median(tp[per_delay], axis=1),
        "sd_meas": np.sqrt(var_meas[per_delay]),
        "sd_fit": sig * np.sqrt((h[per_delay] ** 2).mean(axis=1)),
        "mean_meas": dlt.mean(axis=1)[per_delay],
        "mean_fit": (a_mat @ coef)[per_delay],
    }

    # ---- reset / set cycling ----------------------------------------------------------------------
    cy = _need(meas, "cycling")
    cc = cy["cells"].astype(np.int64)
    c_off = off_us[cc[:, 1] - _col0(meas)]
    r_mean = cy["reset_us"].astype(np.float64).mean(axis=1) - c_off[None, :]  # (cycles, n)
    s_mean = cy["set_us"].astype(np.float64).mean(axis=1) - c_off[None, :]
    n_reads = cy["reset_us"].shape[1]
    off_cells = r_mean < FORMED_US
    off_vals = r_mean[off_cells]
    _enough(off_vals.size, "successful resets in the cycling stage")
    off_mean = float(off_vals.mean())
    off_var = float(off_vals.var(ddof=1)) - noise_us2 / n_reads
    put("reset.off_ns", off_mean * 1000, "nS", f"{off_vals.size} resets")
    put("reset.c2c_ppm", math.sqrt(max(off_var, 0.0)) / off_mean * 1e6, "ppm", "cycle-to-cycle sd of the off level")
    ks["off level"] = ks_normal(off_vals, off_mean, float(off_vals.std(ddof=1)))
    rc, cc_col = cc[:, 0] - _row0(meas), cc[:, 1] - _col0(meas)
    g_own = fm["g_formed_us"][rc, cc_col] - off_us[cc_col]
    on_cells = s_mean > FORMED_US
    first = cy["set_us"][:, 0, :].astype(np.float64) - c_off[None, :]  # the first read after each set
    on_first = first > FORMED_US
    rel = (first / g_own[None, :] - 1)[on_first]
    _enough(rel.size, "successful sets in the cycling stage")
    age = np.asarray(cy["set_t_s"], dtype=np.float64)[:, 0, :] if "set_t_s" in cy else np.zeros_like(first)
    relax_rel2 = float((sig**2 * (age / (age + tau)) ** 2 / g_own[None, :] ** 2)[on_first].mean())
    noise_rel = 2 * ((ppm * 1e-6) ** 2 + float((noise_us2 / g_own**2).mean()))  # two reads: after set, after forming
    set_var = float(rel.var(ddof=1)) - noise_rel - relax_rel2
    put("set.c2c_ppm", math.sqrt(max(set_var, 0.0)) * 1e6, "ppm", "sd of G after set / formed G")
    ks["post-set conductance (relative)"] = ks_normal(rel, float(rel.mean()), float(rel.std(ddof=1)))
    curves["cycling"] = {"off_us": off_vals, "set_rel": rel}
    stats["reset_success"] = float(off_cells.mean())
    stats["set_success"] = float(on_cells.mean())
    stats["stuck_cells_in_cycling"] = float(np.sum(~off_cells.any(axis=0) | ~on_cells.any(axis=0)))

    fitted = {p.path for p in params}
    for path in _model_paths(base):  # every other parameter is kept from the base model, and listed so
        if path not in fitted:
            why = "not identified: base model value" if path in NOT_IDENTIFIED else "kept: base model value"
            params.append(ParamFit(path, float(base.get_path(path)), "", False, why))
    model = base.with_changes(**upd)
    return FitResult(model, params, ks, curves, stats)


def _rounded_cdf_gap(values: NDArray[np.int64], means: NDArray[np.float64], s: float) -> NDArray[np.float64]:
    """Empirical minus model probability of each (column-mean-relative) rounded code, pooled over columns."""
    k = values - np.floor(means + 0.5)[None, :].astype(np.int64)  # code relative to the column's nearest code
    frac = means - np.floor(means + 0.5)
    lo, hi = int(k.min()), int(k.max())
    emp = np.array([(k <= q).mean() for q in range(lo, hi + 1)])
    mod = np.array([float(ncdf((q + 0.5 - frac) / s).mean()) for q in range(lo, hi + 1)])
    return emp - mod


def _col0(meas: dict[str, dict[str, NDArray[Any]]]) -> int:
    return int(_need(meas, "meta")["region"][2])


def _row0(meas: dict[str, dict[str, NDArray[Any]]]) -> int:
    return int(_need(meas, "meta")["region"][0])
