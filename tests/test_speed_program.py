"""The compiled programming paths against the per-event API they replace (device ``numpy`` keeps it), bit for bit:
PROGRAM's write-verify (rramsim.kernels.program_kernel against EmulatedOverlay._program_reference) and RESET /
SET (kernels.reset_set_kernel against Crossbar.reset / set), and READ's conductances at each sample's time
(kernels.read_conductance_kernel against Crossbar.conductance): output words, every cell's conductance, clocks and
relaxation, the op and pulse counters, SAT_COUNT, the board time and the energy ledger, on random cases (both
chip models, the read-out chain, stuck and never-formed cells, repeated cells, a closed gate, pulses of no
efficacy, short pulse caps, tight and loose tolerances)."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pytest
from rramctl import regmap as R
from rramctl.hw import dac80508
from rramctl.protocol import Opcode
from rramsim import kernels, workers
from rramsim.config import ChipModelConfig, load_model
from rramsim.crossbar import STUCK_ON
from rramsim.overlay import DAC_V_BL, DAC_V_READ, DAC_V_SL, DAC_V_WL, EmulatedOverlay

pytestmark = pytest.mark.skipif(not kernels.AVAILABLE, reason="the compiled write-verify needs numba")


def _model(case: int) -> ChipModelConfig:
    if case % 3 == 0:
        return load_model("paper-40nm").with_changes(seed=case)
    if case % 3 == 1:
        return load_model("ideal").with_changes(seed=case)
    data: dict[str, Any] = {"seed": case, "read": {"noise_ppm": 5_000, "noise_floor_pa": 20_000},
                            "readout": {"offset_sigma_pa": 50_000, "gain_sigma_ppm": 20_000, "adc_noise_mlsb": 700},
                            "relaxation": {"sigma_ns": 3_000, "tau_us": 50},
                            "drift": {"ppm_per_decade": 20_000}}  # fmt: skip
    return ChipModelConfig.model_validate(data)


def _chip(case: int, device: str) -> EmulatedOverlay:
    ov = EmulatedOverlay(_model(case), device=device)
    xb = ov.crossbar
    g = np.random.default_rng(case)
    xb.g = g.integers(1, 60_000, size=xb.g.shape).astype(np.int32)
    xb.g_formed = np.where(g.random(xb.g.shape) < 0.9, g.integers(4_000, 40_000, size=xb.g.shape), 0).astype(np.int32)
    xb.stuck[g.random(xb.g.shape) < 0.02] = STUCK_ON
    pulsed = g.random(xb.g.shape) < 0.5
    xb.t_pulse_us[pulsed] = g.integers(0, 2_000_000, size=int(pulsed.sum()))
    xb.relax_ns[pulsed] = g.integers(-3_000, 3_000, size=int(pulsed.sum()))
    ov.board_time_s = 3.0
    for frame in dac80508.init_frames():  # the driver's DAC set-up (output gain x2: levels as written)
        ov.dac.transfer(frame)
    return ov


def _program(ov: EmulatedOverlay, case: int, step: int) -> np.ndarray:
    g = np.random.default_rng(1_000 * case + step)
    n = int(g.integers(1, 3_000))
    cells = np.stack([g.integers(0, 512, n), g.integers(0, 512, n)], axis=1)
    if step % 2:  # some cells named two and three times (rounds one after another)
        cells[n // 2 :] = cells[: n - n // 2]
    targets = g.integers(1, 900, n) if step % 3 else g.integers(100, 3_000, n)
    gate = 1.5 if step != 3 else 0.3  # a closed gate: no pulse changes a cell, the reads see the leakage
    for ch, v in ((DAC_V_READ, 0.1), (DAC_V_BL, 1.5 + 0.3 * step), (DAC_V_SL, 1.5), (DAC_V_WL, gate)):
        ov.dac.transfer(dac80508.channel_frame(ch, dac80508.volts_to_code(v)))
    regs = {R.OPCODE: Opcode.PROGRAM, R.CELL_COUNT: n, R.PULSE_CYCLES: int(g.integers(10, 120)),
            R.VERIFY_TOL: [100_000, 1_000, 400_000][step % 3], R.MAX_PULSES: [20, 3, 0, 7][step % 4],
            R.SETTLE_CYCLES: 100, R.TIA_GAIN: 0}  # fmt: skip
    for k, v in regs.items():
        ov.write_reg(k, v)
    words = ((cells[:, 0] << 16) | cells[:, 1]).astype(np.uint32)
    ov.push_stream(np.stack([words, targets.astype(np.uint32)], axis=1).ravel())
    ov.write_reg(R.CTRL, R.CTRL_START.put(1))
    assert ov.done and not ov.error
    return ov.pop_stream(n)


@pytest.mark.parametrize("case", range(6))
def test_the_compiled_write_verify_is_the_reference_loop(case: int) -> None:
    chips = {dev: _chip(case, dev) for dev in ("cpu", "numpy")}
    for step in range(5):
        out = {dev: _program(ov, case, step) for dev, ov in chips.items()}
        np.testing.assert_array_equal(out["cpu"], out["numpy"])
        _same_state(chips["cpu"], chips["numpy"])
    assert (out["cpu"] >> 16).max() > 0  # pulses were applied


def _same_state(fast: EmulatedOverlay, ref: EmulatedOverlay) -> None:
    for name in ("g", "g_formed", "t_pulse_us", "relax_ns", "stuck"):
        np.testing.assert_array_equal(getattr(fast.crossbar, name), getattr(ref.crossbar, name), err_msg=name)
    assert dataclasses.asdict(fast.counters) == dataclasses.asdict(ref.counters)
    assert fast.board_time_s == ref.board_time_s
    assert dataclasses.asdict(fast.ledger) == dataclasses.asdict(ref.ledger)


@pytest.mark.parametrize("case", range(6))
def test_the_compiled_reset_and_set_are_the_crossbars(case: int) -> None:
    chips = {dev: _chip(case, dev) for dev in ("cpu", "numpy")}
    g_before = chips["cpu"].crossbar.g.copy()
    for step in range(6):
        g = np.random.default_rng(2_000 * case + step)
        n = int(g.integers(1, 4_000))
        cells = np.stack([g.integers(0, 512, n), g.integers(0, 512, n)], axis=1)
        if step % 2:  # some cells named two and three times (rounds one after another)
            cells[n // 2 :] = cells[: n - n // 2]
        op = Opcode.SET if step % 3 else Opcode.RESET
        level = [3.3, 2.6, 2.0, 1.0, 2.9, 3.0][step]  # 1.0 V: below onset, a pulse of no efficacy
        gate = 0.3 if step == 4 else 1.8  # a closed gate: nothing changes
        cycles = int(g.integers(10, 60))
        for ov in chips.values():
            for ch, v in ((DAC_V_SL, level), (DAC_V_BL, level), (DAC_V_WL, gate)):
                ov.dac.transfer(dac80508.channel_frame(ch, dac80508.volts_to_code(v)))
            for k, v in {R.OPCODE: op, R.CELL_COUNT: n, R.PULSE_CYCLES: cycles}.items():
                ov.write_reg(k, v)
            ov.push_stream(((cells[:, 0] << 16) | cells[:, 1]).astype(np.uint32))
            ov.write_reg(R.CTRL, R.CTRL_START.put(1))
            assert ov.done and not ov.error
        _same_state(chips["cpu"], chips["numpy"])
    assert (chips["cpu"].crossbar.g != g_before).sum() > 100  # the pulses changed cells


@pytest.mark.parametrize("case", range(6))
def test_the_compiled_read_is_the_crossbars_conductance(case: int) -> None:
    chips = {dev: _chip(case, dev) for dev in ("cpu", "numpy")}
    g = np.random.default_rng(case)
    for step in range(5):
        r0, c0 = int(g.integers(0, 500)), int(g.integers(0, 500))
        region = (r0, int(g.integers(1, 513 - r0)), c0, int(g.integers(1, 513 - c0)))
        gate, settle = (0.3 if step == 2 else 1.8), int(g.integers(0, 5_000))
        words = []
        for ov in chips.values():
            for ch, v in ((DAC_V_READ, 0.1), (DAC_V_WL, gate)):
                ov.dac.transfer(dac80508.channel_frame(ch, dac80508.volts_to_code(v)))
            for k, v in zip((R.ROW_START, R.ROW_COUNT, R.COL_START, R.COL_COUNT), region, strict=True):
                ov.write_reg(k, v)
            for k, v in {R.OPCODE: Opcode.READ, R.SETTLE_CYCLES: settle, R.TIA_GAIN: 0}.items():
                ov.write_reg(k, v)
            ov.write_reg(R.CTRL, R.CTRL_START.put(1))
            assert ov.done and not ov.error
            words.append(ov.pop_stream(region[1] * region[3]))
        np.testing.assert_array_equal(words[0], words[1])
        _same_state(chips["cpu"], chips["numpy"])


@pytest.mark.parametrize("case", range(3))
def test_write_verify_in_threads_is_the_write_verify_in_one(case: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """PROGRAM's rounds shared out among 1, 2 and 5 threads (rramsim.workers; parts down to one cell): the same
    output words, conductances, clocks and relaxation, counters, SAT_COUNT, board time and ledger as one pass."""
    monkeypatch.setattr(workers, "MIN_PART_SAMPLES", 1)
    chips, outs = [], []
    try:
        for n in (1, 2, 5):
            workers.set_threads(n)
            ov = _chip(case, "cpu")
            outs.append([_program(ov, case, step) for step in range(5)])
            chips.append(ov)
    finally:
        workers.set_threads(None)
    for ov, out in zip(chips[1:], outs[1:], strict=True):
        for got, want in zip(out, outs[0], strict=True):
            np.testing.assert_array_equal(got, want)
        _same_state(ov, chips[0])
    assert (outs[0][0] >> 16).max() > 0  # pulses were applied
