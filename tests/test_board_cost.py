"""Board time and energy (the emulator's ledger through Chip.board_cost) and saturation reporting."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from rramctl.chip import Chip, SaturationWarning
from rramctl.cli.main import app
from rramctl.config import Pulse
from rramctl.geometry import Region
from typer.testing import CliRunner


def test_board_cost_counts_the_work_between_two_readings() -> None:
    with Chip.open("emulator", seed=3) as chip:
        region = Region(0, 32, 0, 32)
        chip.electroform(region)
        before = chip.board_cost()
        assert before is not None and before.pulses > 0 and before.time_s > 0
        chip.multiply(np.ones((4, 32), np.int64), region, 4)
        cost = chip.board_cost() - before  # type: ignore[operator]
        # 4 vectors x 4 bit-planes x 32 columns, one conversion per column sample
        assert cost.adc_conversions == 4 * 4 * 32
        assert cost.pulses == 0 and cost.pulse_j == 0
        assert cost.array_read_j > 0 and cost.time_s > 0
        assert cost.total_j == pytest.approx(cost.array_read_j + cost.adc_j)


def test_software_backend_models_no_board_cost() -> None:
    assert Chip.open("software").board_cost() is None


def test_a_full_bit_plane_saturates_and_is_counted() -> None:
    """All 512 rows at 1 on a formed array clip every column (docs/emulator.md, saturation)."""
    with Chip.open("emulator", seed=1) as chip:
        chip.electroform(Region())
        with pytest.warns(SaturationWarning, match="clipped"):
            res = chip.multiply(np.ones((1, 512), np.int64), Region(0, 512, 0, 8), 1)
        assert res.saturated > 0
        quiet = chip.multiply(np.zeros((1, 512), np.int64), Region(0, 512, 0, 8), 1)
        assert quiet.saturated == 0


def test_multiply_and_info_report_saturation_and_board_cost(tmp_path: Path) -> None:
    runner = CliRunner()
    base = ["--backend", "emulator", "--state", str(tmp_path / "chip.npz")]
    assert runner.invoke(app, [*base, "form", "--region", "0:64,0:128"]).exit_code == 0
    out = tmp_path / "p.npz"
    res = runner.invoke(app, [*base, "--json", "multiply", "--random", "3", "--region", "0:64,0:64", "--out", str(out)])
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert data["saturated_samples"] == 0
    assert data["board_cost"]["adc_conversions"] == 2 * 3 * 4 * 64  # G+ and G- halves
    text = runner.invoke(app, [*base, "multiply", "--random", "3", "--region", "0:64,0:64", "--out", str(out)])
    assert "saturated ADC samples: 0" in text.stdout and "estimated board cost" in text.stdout
    info = json.loads(runner.invoke(app, [*base, "--json", "info"]).stdout)
    assert info["board_cost"]["time_s"] > 0


def test_device_option_gives_the_same_codes(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    runner = CliRunner()
    codes = []
    for device in ("cpu", "torch-cpu"):
        base = ["--backend", "emulator", "--state", str(tmp_path / f"{device}.npz"), "--device", device]
        assert runner.invoke(app, [*base, "form", "--region", "0:32,0:64"]).exit_code == 0
        out = tmp_path / f"{device}.npz.out.npz"
        res = runner.invoke(app, [*base, "multiply", "--random", "5", "--region", "0:32,0:32", "--out", str(out)])
        assert res.exit_code == 0, res.output
        with np.load(out) as z:
            codes.append(z["codes"])
    assert np.array_equal(codes[0], codes[1])


def test_pulses_through_a_closed_gate_are_priced_at_the_leakage() -> None:
    """A pulse's V^2 G t uses the conductance the access transistor passes at the pulse's V_WL, as a READ does: an
    electroform with the gate below its threshold forms nothing and costs (off_leak_ns = 0) no pulse energy, the
    same one with the gate open costs V^2 G t of the cells (a closed gate was priced at full G before)."""
    with Chip.open("emulator", seed=7, model="ideal") as chip:
        region = Region(0, 4, 0, 4)
        chip.electroform(region)
        g = chip.read(region)
        before = chip.board_cost()
        chip.electroform(region, pulse=Pulse(voltage_v=3.4, width_s=0.01, gate_v=0.3))  # threshold 0.5 V
        closed = chip.board_cost() - before  # type: ignore[operator]
        assert closed.pulses > 0 and closed.pulse_j == 0.0
        np.testing.assert_allclose(chip.read(region), g, rtol=0.02)  # nothing formed or moved (read noise aside)
        before = chip.board_cost()
        chip.electroform(region, pulse=Pulse(voltage_v=3.4, width_s=0.01, gate_v=1.8))
        opened = chip.board_cost() - before  # type: ignore[operator]
        g_after = chip.read(region)  # uS; V^2 G t of the cells after the pulse
        assert opened.pulse_j == pytest.approx(3.4**2 * float(g_after.sum()) * 1e-6 * 0.01, rel=0.02)
