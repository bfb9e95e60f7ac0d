"""rramsim.crossbar: forming statistics, differential weights, reset/set, write-verify, defects.

Physics targets: seed 000 Results / docs/hardware.md (about half formed at 3.4 V / 10 ms / 120 degC;
weights of pairs with one formed cell near -27.1 / +27.2 uS; reset to ~0.07 uS)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rramctl.hw import dac80508
from rramsim.config import ChipModelConfig, Defects
from rramsim.crossbar import FORMED_LIMIT_NS, Crossbar, efficacy_ppm, log2_fixed
from rramsim.dac import code_to_uv

V = dac80508.volts_to_code
NOMINAL = dict(v_sl_uv=code_to_uv(V(3.4)), v_wl_uv=code_to_uv(V(1.2)), cycles=1_000_000)  # seed 000 Methods
CLEAN = ChipModelConfig(seed=3, defects=Defects(stuck_on_ppm=0, stuck_off_ppm=0))


def _all_cells(cfg: ChipModelConfig) -> tuple[np.ndarray, np.ndarray]:
    r, c = np.meshgrid(np.arange(cfg.rows), np.arange(cfg.cols), indexing="ij")
    return r.ravel(), c.ravel()


def _formed_fraction(cfg: ChipModelConfig, **pulse: int) -> float:
    xb = Crossbar(cfg)
    xb.form(*_all_cells(cfg), **(NOMINAL | pulse))
    return float(xb.formed_mask().mean())


def test_half_the_cells_form_at_the_nominal_pulse() -> None:
    assert 0.45 < _formed_fraction(CLEAN) < 0.55


def test_forming_is_monotone_in_amplitude_width_and_temperature() -> None:
    amps = [_formed_fraction(CLEAN, v_sl_uv=code_to_uv(V(v))) for v in (3.0, 3.2, 3.4, 3.6, 3.8)]
    assert amps == sorted(amps) and amps[0] < 0.05 and amps[-1] > 0.95
    widths = [_formed_fraction(CLEAN, cycles=c) for c in (1_000, 100_000, 1_000_000, 2_000_000)]
    assert widths == sorted(widths) and widths[0] < widths[-1] - 0.2
    temps = [_formed_fraction(CLEAN.with_changes(temperature_c=t)) for t in (25.0, 80.0, 120.0)]
    assert temps == sorted(temps) and temps[0] < 0.1


def test_forming_is_cumulative_and_per_cell() -> None:
    """The threshold is a property of the cell: a stronger second pulse forms a superset."""
    xb = Crossbar(CLEAN)
    xb.form(*_all_cells(CLEAN), **(NOMINAL | {"v_sl_uv": code_to_uv(V(3.3))}))
    first = xb.g_formed > 0
    g_first = xb.g.copy()
    xb.form(*_all_cells(CLEAN), **NOMINAL)
    assert np.all((xb.g_formed > 0) >= first) and (xb.g_formed > 0).sum() > first.sum()
    np.testing.assert_array_equal(xb.g[first], g_first[first])  # formed cells are not formed again


def test_differential_weights_sit_near_plus_minus_27_us() -> None:
    xb = Crossbar(CLEAN)
    xb.form(*_all_cells(CLEAN), **NOMINAL)
    w_us = (xb.g[:, :256].astype(np.int64) - xb.g[:, 256:]) / 1000
    one = (xb.g_formed[:, :256] > 0) ^ (xb.g_formed[:, 256:] > 0)
    pos, neg = w_us[one & (w_us > 0)], w_us[one & (w_us < 0)]
    assert abs(pos.mean() - 27.1) < 0.5 and abs(neg.mean() + 27.1) < 0.5
    for peak in (pos, neg):  # quasi-normal: about 68 % within one sigma, sigma a few uS
        s = peak.std()
        assert 1.5 < s < 4.0
        assert 0.64 < np.mean(np.abs(peak - peak.mean()) < s) < 0.72
    assert np.all(xb.g[xb.g_formed > 0] > FORMED_LIMIT_NS)


def test_formed_conductance_follows_the_gate() -> None:
    means = []
    for gate in (0.9, 1.2, 1.5):
        xb = Crossbar(CLEAN)
        xb.form(*_all_cells(CLEAN), **(NOMINAL | {"v_wl_uv": code_to_uv(V(gate))}))
        means.append(xb.g[xb.g_formed > 0].mean())
    assert means == sorted(means)
    xb = Crossbar(CLEAN)
    assert xb.form(*_all_cells(CLEAN), **(NOMINAL | {"v_wl_uv": code_to_uv(V(0.3))})) == 0  # gate closed


def _formed_chip() -> tuple[Crossbar, np.ndarray, np.ndarray]:
    xb = Crossbar(CLEAN)
    xb.form(*_all_cells(CLEAN), **NOMINAL)
    r, c = np.nonzero(xb.g_formed > 0)
    return xb, r[:2000], c[:2000]


RESET = dict(v_sl_uv=code_to_uv(V(2.6)), v_wl_uv=code_to_uv(V(2.5)), cycles=40)  # 2.6 V / 400 ns
SET = dict(v_bl_uv=code_to_uv(V(3.3)), v_wl_uv=code_to_uv(V(1.2)), cycles=30)  # 3.3 V / 300 ns


def test_reset_turns_cells_off_and_set_turns_them_back_on() -> None:
    xb, r, c = _formed_chip()
    own = xb.g_formed[r, c].astype(np.int64)
    pos = np.arange(r.size)
    xb.reset(r, c, **RESET, serial=1, positions=pos)
    off = xb.g[r, c]
    assert np.all(off < FORMED_LIMIT_NS) and 50 < off.mean() < 90 and off.std() > 0  # ~0.07 uS, c2c
    xb.set(r, c, **SET, serial=2, positions=pos)
    on = xb.g[r, c].astype(np.int64)
    rel = (on - own) / own
    assert np.all(on > FORMED_LIMIT_NS) and abs(rel.mean()) < 0.01 and 0.02 < rel.std() < 0.08


def test_weaker_or_shorter_reset_is_less_effective() -> None:
    finals = []
    for pulse in (RESET, RESET | {"cycles": 10}, RESET | {"v_sl_uv": code_to_uv(V(2.2))}):
        xb, r, c = _formed_chip()
        xb.reset(r, c, **pulse, serial=1, positions=np.arange(r.size))
        finals.append(xb.g[r, c].mean())
    assert finals[0] < finals[1] and finals[0] < finals[2]
    assert efficacy_ppm(1_000_000, 1_800_000, 2_600_000, 40, 40) == 0


def test_a_never_formed_cell_does_not_set_and_stuck_cells_do_not_move() -> None:
    cfg = ChipModelConfig(seed=5, defects=Defects(stuck_on_ppm=20_000, stuck_off_ppm=20_000))
    xb = Crossbar(cfg)
    r, c = _all_cells(cfg)
    before = xb.g.copy()
    xb.set(r, c, **SET, serial=1, positions=np.arange(r.size))
    np.testing.assert_array_equal(xb.g, before)
    stuck = xb.stuck != 0
    assert 0.03 < stuck.mean() < 0.05
    xb.form(r, c, **NOMINAL)
    xb.reset(r, c, **RESET, serial=2, positions=np.arange(r.size))
    np.testing.assert_array_equal(xb.g[stuck], before[stuck])
    assert np.all(xb.g[xb.stuck == 1] == cfg.defects.stuck_on_ns)


def test_program_pulses_move_towards_the_direction_with_noise() -> None:
    xb, r, c = _formed_chip()
    g0 = xb.g[r, c].astype(np.int64)
    args = dict(v_uv=code_to_uv(V(1.5)), v_wl_uv=code_to_uv(V(1.2)), cycles=50, serial=4, positions=np.arange(r.size))
    xb.program_pulse(r, c, 1, pulse_number=0, **args)
    up = xb.g[r, c] - g0
    assert abs(up.mean() - CLEAN.program.step_ns) < 50 and 400 < up.std() < 600
    xb.program_pulse(r, c, -1, pulse_number=1, **args)
    assert (xb.g[r, c] - g0).mean() < up.mean() - 1000


def test_drift_relaxes_formed_cells_only_when_enabled() -> None:
    xb = Crossbar(CLEAN.with_changes(drift={"ppm_per_op": 10_000}))
    xb.form(*_all_cells(CLEAN), **NOMINAL)
    g0 = xb.g.copy()
    xb.drift()
    formed = xb.g_formed > 0
    assert np.all(xb.g[formed] < g0[formed]) and np.array_equal(xb.g[~formed], g0[~formed])
    plain = Crossbar(CLEAN)
    g1 = plain.g.copy()
    plain.drift()
    np.testing.assert_array_equal(plain.g, g1)


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 1 << 40))
def test_log2_fixed_is_close_to_log2(n: int) -> None:
    assert abs(log2_fixed(n) / 65536 - np.log2(n)) < 2e-4


def test_bad_inputs_are_refused() -> None:
    xb = Crossbar(CLEAN)
    with pytest.raises(ValueError, match="outside"):
        xb.form(np.array([512]), np.array([0]), **NOMINAL)
    with pytest.raises(ValueError, match="twice"):
        xb.reset(np.array([1, 1]), np.array([2, 2]), **RESET, serial=1, positions=np.arange(2))
    with pytest.raises(ValueError):
        xb.drive_sums(np.zeros((1, 10), np.int64), 0, 4)
    with pytest.raises(ValueError):
        ChipModelConfig(defects=Defects(stuck_on_ppm=600_000, stuck_off_ppm=600_000))
    with pytest.raises(ValueError):
        ChipModelConfig(bogus=1)
