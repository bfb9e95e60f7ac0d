"""Device physics beyond the pulse rules: relaxation, drift, word-line gating and the read-out chain.

Everything is integer arithmetic keyed by (seed, stream, indices) like rramsim.crossbar, so the
vectorised overlay and the per-event benches agree bit for bit.  Time is the virtual board clock in
integer microseconds (``EmulatedOverlay.board_time_s``, rounded); the crossbar keeps, per cell, the
time of its last pulse and the relaxation that pulse started (docs/emulator.md, "Device model").

- relaxation (seed 003): a programming or set pulse leaves the cell at G_p; the cell then moves to
  G_p + R, R ~ N(0, sigma) drawn per pulse, as ``R * dt / (dt + tau)``;
- drift (seed 000 Fig. 2j): a formed cell loses ``ppm_per_decade * log10((dt + t0) / t0)`` of its
  conductance above the off level;
- word-line gating: with V_WL at or below the transistor threshold a cell conducts at most the
  transistor's leakage;
- read-out: per-column TIA offset current and gain error (static per column), a current-independent
  noise floor and ADC input noise on every sample, besides the proportional read noise.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import rramctl.hw.adc as adc
import rramctl.hw.dac80508 as dac80508
from numpy.typing import ArrayLike, NDArray

from rramsim import kernels, rng
from rramsim.config import ChipModelConfig
from rramsim.rng import PPM, Stream

LOG2_FRAC = 16
LOG2_10 = 217_706  # round(log2(10) * 2**16)
_MANT = 30  # mantissa bits of the vectorised log2 (x * x stays below 2**62)
# drive-sum units (DAC code x nS) per pA: 1 unit = FULL_SCALE_V / 2**16 V x 1 nS
DU_PER_PA_NUM = dac80508.FULL_SCALE_CODES
DU_PER_PA_DEN = int(dac80508.FULL_SCALE_V * 1000)


def log2_fixed_array(n: ArrayLike, compiled: bool | None = None) -> NDArray[np.int64]:
    """floor-ish log2(n) * 2**16 for int64 arrays n >= 1, in exact integer arithmetic: the integer part
    is the bit length - 1; the mantissa n / 2**ip in [1, 2) is held with 30 fraction bits and squared
    16 times, each square >= 2 giving a 1 bit (and a halving).  ``compiled`` (default: where numba is
    installed) runs the same rule in rramsim.kernels; the tests compare the two."""
    x = np.asarray(n, dtype=np.int64)
    if x.size and int(x.min()) < 1:
        raise ValueError("log2 of a value below 1")
    if kernels.AVAILABLE if compiled is None else compiled:
        out = np.empty(x.size, dtype=np.int64)
        kernels.log2_fixed_kernel(np.ascontiguousarray(x).reshape(-1), _MANT, LOG2_FRAC, out)
        return out.reshape(x.shape)
    ip = np.zeros(x.shape, dtype=np.int64)
    t = x.copy()
    for shift in (32, 16, 8, 4, 2, 1):  # integer part: bit length - 1
        big = t >= (1 << shift)
        t = np.where(big, t >> shift, t)
        ip += np.where(big, shift, 0)
    one = np.int64(1) << _MANT
    m = np.where(ip >= _MANT, x >> np.maximum(ip - _MANT, 0), x << np.maximum(_MANT - ip, 0))  # in [1, 2)
    result = ip.copy()
    for _ in range(LOG2_FRAC):
        m = (m * m) >> _MANT
        result <<= 1
        top = m >= 2 * one
        m = np.where(top, m >> 1, m)
        result |= top.astype(np.int64)
    return result


def du_from_pa(pa: ArrayLike) -> NDArray[np.int64]:
    """A current in pA as drive-sum units (floor)."""
    return np.floor_divide(np.asarray(pa, dtype=np.int64) * DU_PER_PA_NUM, DU_PER_PA_DEN)


def relaxed(
    g: NDArray[np.int64], relax_ns: NDArray[np.int64], dt_us: NDArray[np.int64], tau_us: int
) -> NDArray[np.int64]:
    """G after relaxing for dt: G + floor(R * dt / (dt + tau))."""
    return g + np.floor_divide(relax_ns * dt_us, dt_us + tau_us)


def drifted(g: NDArray[np.int64], dt_us: NDArray[np.int64], config: ChipModelConfig) -> NDArray[np.int64]:
    """G after drifting for dt: loses ppm_per_decade * log10((dt + t0) / t0) of (G - off) (ours: log-time)."""
    d = config.drift
    if d.ppm_per_decade == 0:
        return g
    decades = log2_fixed_array(dt_us + d.t0_us) - log2_fixed_array(np.array([d.t0_us]))[0]  # t0: one value
    above = np.maximum(g - config.reset.off_ns, 0)
    loss = np.minimum(above * d.ppm_per_decade * decades // (PPM * LOG2_10), above)
    return g - loss


def aged(
    g: NDArray[np.int64],
    t_pulse_us: NDArray[np.int64],
    relax_ns: NDArray[np.integer[Any]],
    formed: NDArray[np.bool_],
    now_us: int | NDArray[np.int64],
    config: ChipModelConfig,
    compiled: bool | None = None,
) -> NDArray[np.int64]:
    """G at ``now_us`` (one time, or each cell's own) of cells with conductance ``g``, last pulsed at
    ``t_pulse_us`` (< 0: never; they keep ``g``) with relaxation amplitude ``relax_ns``: relaxed,
    then drifted where ``formed``, then clipped to 1 .. program.max_ns.  ``compiled`` (default: where
    numba is installed) runs the same rule cell by cell (rramsim.kernels.aged_kernel; tested equal)."""
    if kernels.AVAILABLE if compiled is None else compiled:
        params = aged_params(config)
        shape = np.shape(g)

        def flat(a: ArrayLike) -> NDArray[np.int64]:
            return np.ascontiguousarray(a, dtype=np.int64).reshape(-1)

        out = np.empty(int(np.prod(shape)), dtype=np.int64)
        is_formed = np.ascontiguousarray(formed, dtype=np.bool_).reshape(-1)
        kernels.aged_kernel(flat(g), flat(t_pulse_us), flat(relax_ns), is_formed, flat(now_us), params, out)
        return out.reshape(shape)
    dt = np.maximum(now_us - t_pulse_us, 0)
    pulsed = t_pulse_us >= 0
    out = np.where(pulsed, relaxed(g, np.asarray(relax_ns, dtype=np.int64), dt, config.relaxation.tau_us), g)
    out = np.where(pulsed & formed, drifted(out, dt, config), out)
    return np.where(pulsed, np.clip(out, 1, config.program.max_ns), g)


def aged_params(config: ChipModelConfig) -> NDArray[np.int64]:
    """The constants of the compiled aged rule (kernels.aged_kernel): tau_us, ppm_per_decade, t0_us, log2(t0),
    off_ns, max_ns, mantissa bits, fraction bits, PPM * LOG2_10; computed once per configuration."""
    cached = _AGED_PARAMS.get(id(config))
    if cached is not None and cached[0] is config:
        return cached[1]
    d = config.drift
    params = np.array([config.relaxation.tau_us, d.ppm_per_decade, d.t0_us,
                       int(log2_fixed_array(np.array([d.t0_us]), compiled=True)[0]), config.reset.off_ns,
                       config.program.max_ns, _MANT, LOG2_FRAC, PPM * LOG2_10], dtype=np.int64)  # fmt: skip
    params.setflags(write=False)
    _AGED_PARAMS.clear()  # one configuration at a time is the common case; a few more are cheap to rebuild
    _AGED_PARAMS[id(config)] = (config, params)
    return params


_AGED_PARAMS: dict[int, tuple[ChipModelConfig, NDArray[np.int64]]] = {}


def relaxation_draw(config: ChipModelConfig, *key: ArrayLike) -> NDArray[np.int64]:
    """The relaxation amplitude R of one pulse (stream RELAXATION, key = the pulse's key)."""
    sigma = config.relaxation.sigma_ns
    if sigma == 0:
        return np.zeros(np.broadcast(*[np.asarray(k) for k in key]).shape, dtype=np.int64)
    return rng.scaled_normal(0, sigma, rng.normal_int(config.seed, Stream.RELAXATION, *key))


def gated(g: NDArray[np.int64], v_wl_uv: int | None, config: ChipModelConfig) -> NDArray[np.int64]:
    """What a read sees through the access transistor: G when V_WL opens it (``None``: open), else
    at most the transistor's leakage."""
    if v_wl_uv is None or v_wl_uv > config.transistor.wl_threshold_uv:
        return g
    return np.minimum(g, config.transistor.off_leak_ns)


class Readout:
    """The per-column TIA + ADC chain: static offset (drive-sum units) and gain error (ppm) per column.
    The per-sample math (offset, floor noise, gain, ADC noise) runs in rramsim.arraymath.readout_codes."""

    def __init__(self, config: ChipModelConfig) -> None:
        self.config = config
        cols = np.arange(config.cols, dtype=np.int64)
        ro = config.readout
        off_pa = rng.scaled_normal(0, ro.offset_sigma_pa, rng.normal_int(config.seed, Stream.COL_OFFSET, cols))
        self.offset_du = du_from_pa(off_pa) if ro.offset_sigma_pa else np.zeros(config.cols, np.int64)
        self.gain_ppm = rng.scaled_normal(0, ro.gain_sigma_ppm, rng.normal_int(config.seed, Stream.COL_GAIN, cols))
        self.active = bool(ro.offset_sigma_pa or ro.gain_sigma_ppm or ro.adc_noise_mlsb or config.read.noise_floor_pa)


def saturated(codes: NDArray[np.int64], compiled: bool | None = None) -> int:
    """Samples at either end of the ADC range (clipped); ``compiled`` (default: where numba is
    installed) counts them in one compiled pass (rramsim.kernels.count_at_rails)."""
    if kernels.AVAILABLE if compiled is None else compiled:
        flat = np.ascontiguousarray(codes, dtype=np.int64).reshape(-1)
        return int(kernels.count_at_rails(flat, adc.CODE_MIN, adc.CODE_MAX))
    return int(np.count_nonzero((codes <= adc.CODE_MIN) | (codes >= adc.CODE_MAX)))
