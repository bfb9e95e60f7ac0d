"""The scratch-chip reference check and `rramctl selftest` on the emulator."""

from __future__ import annotations

import json

import numpy as np
from rramctl.chip import Chip
from rramctl.cli.main import app
from rramctl.hw import adc
from rramctl.reference import emulator_reference_check, reference_multiply_codes
from typer.testing import CliRunner


def test_reference_check_passes_on_the_emulator() -> None:
    res = emulator_reference_check(seed=3)
    assert res.ok, res.detail
    assert "bit for bit" in res.detail


def test_reference_check_catches_a_multiply_off_by_one(mocker) -> None:  # noqa: ANN001
    real = Chip.multiply

    def off_by_one(self, inputs, region, bits):  # noqa: ANN001, ANN202
        r = real(self, inputs, region, bits)
        r.codes[0, 0] += 1
        return r

    mocker.patch.object(Chip, "multiply", off_by_one)
    res = emulator_reference_check(seed=3)
    assert not res.ok and "multiply differs in 1 of" in res.detail


def test_reference_check_catches_a_reset_that_does_nothing(mocker) -> None:  # noqa: ANN001
    mocker.patch.object(Chip, "reset", lambda self, cells: 0)
    res = emulator_reference_check(seed=3)
    assert not res.ok and "reset cell still reads as formed" in res.detail


def test_reference_multiply_is_bit_serial_shift_and_add() -> None:
    g = np.array([[10_000], [20_000]])  # nS
    x = np.array([[3, 1]])  # bits: row 0 -> planes 0 and 1, row 1 -> plane 0
    v = 1311
    plane0 = adc.drive_sum_to_code(np.array([[v * 30_000]]), 0)
    plane1 = adc.drive_sum_to_code(np.array([[v * 10_000]]), 0)
    want = plane0 + (plane1 << 1)
    assert np.array_equal(reference_multiply_codes(x, g, v, 2), want)


def test_selftest_cli_on_the_emulator(tmp_path) -> None:  # noqa: ANN001
    state = tmp_path / "chip.npz"
    r = CliRunner().invoke(app, ["--backend", "emulator", "--state", str(state), "--json", "selftest"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.output)
    assert out["ok"]
    names = [c["name"] for c in out["checks"]]
    assert any(n.startswith("scratch-chip reference") for n in names)
