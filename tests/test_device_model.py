"""The device model (rramsim.device, rramsim.config): nested config and presets, word-line gating,
relaxation and drift on the board clock, the read-out chain (offsets, gains, noise floor, ADC noise),
saturation counting and the chip API's offset calibration."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rramctl.calibrate.fit import PA_PER_DU
from rramctl.chip import Chip, SaturationError, SaturationWarning
from rramctl.config import BoardConfig
from rramctl.geometry import Region
from rramctl.hw import adc, dac80508
from rramctl.transport.emulator import EmulatorTransport
from rramsim import device, kernels
from rramsim.config import (
    DEFAULT_PRESET,
    ChipModelConfig,
    ModelError,
    Read,
    Readout,
    Relaxation,
    load_model,
    to_toml,
)
from rramsim.crossbar import Crossbar
from rramsim.dac import code_to_uv
from rramsim.overlay import EmulatedOverlay

V = dac80508.volts_to_code
FORM = dict(v_sl_uv=code_to_uv(V(3.4)), v_wl_uv=code_to_uv(V(1.2)), cycles=1_000_000)
REGION = Region(0, 16, 0, 32)


def _chip(model: ChipModelConfig, config: BoardConfig | None = None) -> tuple[Chip, EmulatorTransport]:
    t = EmulatorTransport(model)
    return Chip.from_transport(t, config), t


def _formed_crossbar(cfg: ChipModelConfig) -> tuple[Crossbar, np.ndarray, np.ndarray]:
    xb = Crossbar(cfg)
    r, c = np.meshgrid(np.arange(cfg.rows), np.arange(cfg.cols), indexing="ij")
    xb.form(r.ravel(), c.ravel(), **FORM)
    rr, cc = np.nonzero(xb.g_formed > 0)
    return xb, rr[:2000], cc[:2000]


# ---- configuration -------------------------------------------------------------------------
def test_ideal_preset_is_the_default_model_and_paper_40nm_the_default_preset() -> None:
    assert DEFAULT_PRESET == "paper-40nm"
    assert load_model("ideal") == ChipModelConfig()
    paper = load_model()
    assert paper.relaxation.sigma_ns == 2_000  # seed 003: ~2 uS after write-verify
    assert paper.read.noise_floor_pa > 0 and paper.readout.offset_sigma_pa > 0 and paper.drift.ppm_per_decade > 0
    assert load_model("paper-40nm", seed=9).seed == 9


def test_flat_fields_of_old_state_files_migrate() -> None:
    old = ChipModelConfig.model_validate({"seed": 2, "read_noise_ppm": 0, "stuck_on_ppm": 7, "max_ns": 140_000})
    assert old.read.noise_ppm == 0 and old.defects.stuck_on_ppm == 7 and old.program.max_ns == 140_000
    assert old.with_changes(drift_ppm_per_op=3).drift.ppm_per_op == 3
    assert old.with_path("read.noise_floor_pa", 5).read == Read(noise_ppm=0, noise_floor_pa=5)


def test_a_written_preset_loads_back(tmp_path) -> None:  # noqa: ANN001
    m = load_model().with_changes(relaxation={"sigma_ns": 1234}, seed=4)
    p = tmp_path / "m.toml"
    p.write_text(to_toml(m, {"name": "x"}))
    assert load_model(p) == m
    with pytest.raises(ModelError, match="neither a preset"):
        load_model(tmp_path / "missing.toml")
    p.write_text("[read]\nnoise_ppm = -1\n")
    with pytest.raises(ModelError, match="invalid"):
        load_model(p)


# ---- word-line gating ------------------------------------------------------------------------
def test_a_read_with_the_word_line_off_returns_leakage_only() -> None:
    for name in ("ideal", "paper-40nm"):
        chip, t = _chip(load_model(name, seed=1))
        chip.electroform(REGION)
        on = chip.read(REGION)
        off = chip.read(REGION, gate_v=0.0)
        assert on.max() > 20
        leak_us = t.overlay.config.transistor.off_leak_ns / 1000
        assert np.abs(off).max() < leak_us + 0.5, name  # leakage + the column's offset and noise only
        ov = t.overlay
        g_closed = ov.crossbar.conductance(0)
        assert np.all(g_closed <= ov.config.transistor.off_leak_ns)


def test_the_driver_biases_the_word_line_for_every_read() -> None:
    chip, t = _chip(ChipModelConfig(seed=2))
    chip.electroform(REGION)
    seen: list[int] = []
    real = t.overlay.crossbar.conductance

    def spy(
        v_wl_uv: int | None = None, index: tuple[np.ndarray, ...] | None = None, at_us: np.ndarray | None = None
    ) -> np.ndarray:
        seen.append(-1 if v_wl_uv is None else v_wl_uv)
        return real(v_wl_uv, index, at_us)

    t.overlay.crossbar.conductance = spy  # type: ignore[method-assign]
    chip.read(REGION)
    chip.multiply(np.ones((1, REGION.n_rows), np.int64), REGION, 1)
    assert seen and all(v == code_to_uv(V(chip.config.read_gate_v)) for v in seen)
    assert chip.config.read_gate_v > ChipModelConfig().transistor.wl_threshold_uv / 1e6


# ---- relaxation and drift ----------------------------------------------------------------------
def test_relaxation_after_write_verify_grows_with_time_to_its_sigma() -> None:
    # tau 100 s: the write-verify of 600 cells takes seconds of board time (a chain frame per verify read and per
    # pulse, rramsim.timing), and its pulses start their relaxation at the operation's start
    model = ChipModelConfig(seed=3, relaxation=Relaxation(sigma_ns=2_000, tau_us=100_000_000))
    chip, _ = _chip(model)
    chip.electroform(Region(0, 64, 0, 64))
    g = chip.read(Region(0, 64, 0, 64))
    cells = np.argwhere(g > 10)[:600]
    rep = chip.program(cells, np.full(len(cells), 15.0))
    assert rep.converged.mean() > 0.95
    ok = rep.converged & (rep.pulses > 0)
    spreads = []
    for wait in (0.0, 100.0, 10_000.0):
        chip.wait(wait)
        now = chip.read(Region(0, 64, 0, 64))[cells[:, 0], cells[:, 1]]
        spreads.append(float((now - rep.final_us)[ok].std()))
    assert spreads[0] < 0.3  # right after verify: where write-verify left it
    assert 0.6 < spreads[1] < 1.4  # one time constant: half of the relaxation
    assert 1.7 < spreads[2] < 2.3  # seed 003: SD ~2 uS


def test_drift_lowers_formed_cells_log_linearly_and_only_with_time() -> None:
    cfg = ChipModelConfig(seed=4).with_changes(drift={"ppm_per_decade": 10_000, "t0_us": 1_000_000})
    xb, r, c = _formed_crossbar(cfg)
    g0 = xb.conductance()[r, c]
    losses = []
    for t_s in (9, 99, 999):  # 1, 2, 3 decades after t0 = 1 s
        xb.now_us = t_s * 1_000_000
        losses.append(float(((g0 - xb.conductance()[r, c]) / (g0 - cfg.reset.off_ns)).mean()))
    assert losses == sorted(losses)
    np.testing.assert_allclose(losses, [0.01, 0.02, 0.03], rtol=0.01)
    unformed = xb.g_formed == 0
    assert np.array_equal(xb.conductance()[unformed], xb.g[unformed])


@settings(max_examples=50, deadline=None)
@given(st.lists(st.integers(1, 1 << 40), min_size=1, max_size=20))
def test_vectorised_log2_is_close_to_log2(ns: list[int]) -> None:
    got = device.log2_fixed_array(np.array(ns)) / 65536
    assert np.all(np.abs(got - np.log2(ns)) < 2e-4)


def test_a_pulse_starts_from_the_relaxed_conductance() -> None:
    cfg = ChipModelConfig(seed=5, relaxation=Relaxation(sigma_ns=3_000, tau_us=10))
    xb, r, c = _formed_crossbar(cfg)
    args = dict(v_uv=code_to_uv(V(1.5)), v_wl_uv=code_to_uv(V(1.2)), cycles=50, positions=np.arange(r.size))
    xb.program_pulse(r, c, 1, serial=1, pulse_number=0, **args)
    xb.now_us = 10_000_000  # fully relaxed
    relaxed = xb.conductance()[r, c]
    assert np.abs(relaxed - xb.g[r, c]).mean() > 1_000
    xb.program_pulse(r, c, 1, serial=2, pulse_number=0, **args)
    step = xb.g[r, c].astype(np.int64) - relaxed
    assert abs(step.mean() - cfg.program.step_ns) < 100  # the second pulse moved the relaxed value


# ---- read-out chain -------------------------------------------------------------------------------
def test_zero_input_gives_offset_codes_and_the_offset_calibration_removes_them() -> None:
    chip, t = _chip(load_model("paper-40nm", seed=6))
    region = Region(0, 32, 0, 64)
    x = np.zeros((64, 32), np.int64)
    raw = chip.multiply(x, region, 4)
    assert np.abs(raw.codes).max() > 0  # no longer exactly zero: offsets and noise
    col_mean = raw.codes.mean(axis=0)
    offsets = chip.calibrate_offsets(region, 512)
    g = adc.code_gain(0)  # multiply-range codes per drive-sum unit
    true = t.overlay.crossbar.readout.offset_du[:64] * g.numerator / g.denominator
    assert np.corrcoef(offsets, true)[0, 1] > 0.9
    fixed = chip.multiply(x, region, 4)
    assert np.abs(fixed.products.mean(axis=0)).mean() < 0.35 * np.abs(col_mean * chip.product_lsb_us).mean()


def test_read_noise_has_a_floor_independent_of_the_current() -> None:
    model = ChipModelConfig(seed=7, read=Read(noise_ppm=2_000, noise_floor_pa=3_000))
    ov = EmulatedOverlay(model)
    s = np.zeros(20_000, np.int64)
    codes = ov.crossbar.sample_codes(s, 1, 1, np.arange(s.size), np.zeros(s.size, np.int64))
    sd_pa = codes.std() * float(adc.code_gain(1).denominator / adc.code_gain(1).numerator) * PA_PER_DU
    assert 2_700 < sd_pa < 3_300
    quiet = EmulatedOverlay(ChipModelConfig(seed=7)).crossbar.sample_codes(s, 1, 1, np.arange(s.size))
    assert np.all(quiet == 0)  # the ideal model: zero input, zero codes


def test_column_gain_and_adc_noise_are_seeded_per_column_and_sample() -> None:
    model = ChipModelConfig(seed=8, readout=Readout(gain_sigma_ppm=20_000, adc_noise_mlsb=800))
    a, b = Crossbar(model), Crossbar(model)
    assert np.array_equal(a.readout.gain_ppm, b.readout.gain_ppm)
    assert 10_000 < a.readout.gain_ppm.std() < 30_000
    s = np.full(4_000, 10_000_000, np.int64)
    cols = np.arange(s.size) % 64
    ca = a.sample_codes(s, 0, 3, np.arange(s.size), cols)
    assert np.array_equal(ca, b.sample_codes(s, 0, 3, np.arange(s.size), cols))
    per_col = np.array([ca[cols == j].mean() for j in range(64)])
    assert np.corrcoef(per_col, a.readout.gain_ppm[:64])[0, 1] > 0.9
    with pytest.raises(ValueError, match="column"):
        a.sample_codes(s, 0, 3, np.arange(s.size))


def test_saturated_samples_are_counted_and_surfaced_by_policy() -> None:
    chip, t = _chip(ChipModelConfig(seed=9))
    region = Region(0, 512, 0, 8)
    chip.electroform(region)
    x = np.ones((1, 512), np.int64)
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        res = chip.multiply(x, region, 1)
    assert res.saturated == 8 and any(issubclass(i.category, SaturationWarning) for i in w)
    assert np.all(res.codes == adc.CODE_MAX)
    strict, _ = _chip(ChipModelConfig(seed=9), BoardConfig(on_saturation="raise"))
    strict.electroform(region)
    with pytest.raises(SaturationError, match="8 ADC samples"):
        strict.multiply(x, region, 1)
    small = chip.multiply(np.zeros((1, 512), np.int64), region, 1)
    assert small.saturated == 0


def test_save_and_load_continue_a_relaxing_chip_identically(tmp_path) -> None:  # noqa: ANN001
    """The per-cell clocks and the board clock are state: a saved and reloaded paper-40nm chip goes on
    relaxing and drifting exactly as the one that stayed in memory."""
    from rramsim import state

    t = EmulatorTransport(load_model("paper-40nm", seed=10))
    chip = Chip.from_transport(t)
    chip.electroform(REGION)
    cells = np.argwhere(chip.read(REGION) > 10)[:40]
    chip.program(cells, np.full(len(cells), 15.0))
    t.save_state(tmp_path / "s.npz")
    back = EmulatorTransport(load_model("ideal"))
    back.overlay = state.load(tmp_path / "s.npz")
    assert back.overlay.board_time_s == t.overlay.board_time_s > 0
    twins = [Chip.from_transport(x) for x in (t, back)]  # both drivers initialise the DAC alike
    reads = []
    for c in twins:
        c.wait(3.0)
        reads.append(c.read(REGION))
    np.testing.assert_array_equal(reads[0], reads[1])
    assert np.abs(reads[0][cells[:, 0], cells[:, 1]] - 15.0).max() > 1.5  # relaxed beyond the verify band


def test_the_offset_calibration_also_corrects_reads() -> None:
    chip, t = _chip(load_model("paper-40nm", seed=11))
    region = Region(0, 32, 0, 128)
    true_us = t.overlay.crossbar.conductance()[region.slices] / 1000  # pristine cells, ~0.03 uS
    before = np.abs(np.mean([chip.read(region) for _ in range(4)], axis=0) - true_us).mean()
    chip.calibrate_offsets(region, 512)
    after = np.abs(np.mean([chip.read(region) for _ in range(4)], axis=0) - true_us).mean()
    assert before > 0.05 and after < 0.5 * before  # column offsets of ~0.1 uS at 0.1 V, removed


@pytest.mark.skipif(not kernels.AVAILABLE, reason="numba is not installed (pip install numba)")
def test_the_compiled_log2_is_the_numpy_log2() -> None:
    g = np.random.default_rng(4)
    powers = 1 << np.arange(62, dtype=np.int64)
    n = np.concatenate([powers, powers[1:] - 1, powers + 1, g.integers(1, 1 << 62, size=20_003)]).reshape(-1, 7)
    np.testing.assert_array_equal(device.log2_fixed_array(n, compiled=True), device.log2_fixed_array(n, compiled=False))


@pytest.mark.skipif(not kernels.AVAILABLE, reason="numba is not installed (pip install numba)")
def test_the_compiled_saturation_count_is_the_numpy_count() -> None:
    g = np.random.default_rng(6)
    for codes in (g.integers(-8200, 8200, size=(50, 37)), np.array([-8192, -8191, 8190, 8191, 0]), np.zeros(0, int)):
        assert device.saturated(codes, compiled=True) == device.saturated(codes, compiled=False)
    assert device.saturated(np.array([-8192, -8191, 8190, 8191, 0]), compiled=True) == 2


@pytest.mark.skipif(not kernels.AVAILABLE, reason="numba is not installed (pip install numba)")
@pytest.mark.parametrize("drift_ppm", [0, 10_000, 200_000])
def test_the_compiled_ageing_is_the_numpy_ageing(drift_ppm: int) -> None:
    """Relaxation, drift and the clip, cell by cell, against the numpy rule: never-pulsed cells, unformed
    cells, negative relaxation, one time for all and one per cell, times before the pulse."""
    cfg = ChipModelConfig.model_validate(
        {"seed": 3, "relaxation": {"sigma_ns": 3_000, "tau_us": 1_000}, "drift": {"ppm_per_decade": drift_ppm}}
    )
    g = np.random.default_rng(drift_ppm)
    n = 5_000
    cells = (
        g.integers(1, 160_000, n),
        g.integers(-1, 10**9, n),
        g.integers(-20_000, 20_000, n),
        g.random(n) < 0.7,
    )
    for now in (10**9, g.integers(0, 2 * 10**9, n)):
        np.testing.assert_array_equal(
            device.aged(*cells, now, cfg, compiled=True), device.aged(*cells, now, cfg, compiled=False)
        )
