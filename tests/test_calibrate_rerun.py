"""``rramctl calibrate`` on a region an earlier calibration formed: refused with one error before a cell is
pulsed or a file written (a formed cell cannot be formed again), and a sweep that forms too few cells
stops before the stages that need them.  Small regions (8 x 32 cells): a few seconds each."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
from rramctl.calibrate.fit import fit
from rramctl.calibrate.measure import MeasurementStore, measure
from rramctl.calibrate.plan import CalibrationPlan
from rramctl.chip import Chip
from rramctl.cli.main import app
from rramctl.errors import UsageError
from rramctl.transport.emulator import EmulatorTransport
from rramsim.config import load_model
from typer.testing import CliRunner

USED = "already conduct before forming"


def _chip(seed: int) -> tuple[Chip, EmulatorTransport]:
    t = EmulatorTransport(load_model("paper-40nm", seed=seed))
    return Chip.from_transport(t), t


def _measure(chip: Chip, region: str, out: Path, **plan: object) -> dict[str, dict[str, np.ndarray]]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return measure(chip, CalibrationPlan.model_validate({"region": region, **plan}), out)


def test_a_second_calibration_of_the_same_region_is_one_error_and_leaves_no_folder(tmp_path: Path) -> None:
    state = tmp_path / "chip.npz"
    args = ["--backend", "emulator", "--state", str(state), "calibrate", "--region", "0:8,0:32", "--no-plots"]
    first = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "a")])
    assert first.exit_code == 0, first.output
    again = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "b")])
    assert again.exit_code == 2, again.output  # a user error, not a traceback (exit 1)
    assert isinstance(again.exception, SystemExit)
    assert USED in again.output and "region 0:8,0:32" in again.output and "--state" in again.output
    assert not (tmp_path / "b").exists()
    resumed = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "a")])  # the finished folder still fits
    assert resumed.exit_code == 0, resumed.output


@pytest.mark.parametrize("region", ["2:4,0:32", "4:8,0:32", "0:8,16:32"])
def test_a_calibration_overlapping_an_earlier_one_is_refused_before_a_pulse(tmp_path: Path, region: str) -> None:
    chip, t = _chip(7)
    _measure(chip, "0:8,0:32", tmp_path / "first")
    pulses = t.overlay.counters.pulse_count
    formed = chip.read()
    with pytest.raises(UsageError, match=USED) as e:
        _measure(chip, region, tmp_path / "second")
    assert "nothing was pulsed or written" in str(e.value)
    assert not (tmp_path / "second").exists()
    assert t.overlay.counters.pulse_count == pulses
    assert np.array_equal(chip.read() > 3.34, formed > 3.34)  # no cell formed, reset or set
    fresh = _measure(chip, "8:8,0:32", tmp_path / "fresh")  # a region no command formed still calibrates
    assert int((~np.isnan(fresh["forming"]["v_form_v"])).sum()) >= 200
    fit(fresh, load_model("paper-40nm"))


def test_a_folder_measured_on_a_used_region_is_refused_on_resume(tmp_path: Path) -> None:
    chip, t = _chip(8)
    plan = CalibrationPlan(region="0:8,0:32")
    store = MeasurementStore(tmp_path, plan)
    store.save("pristine", {"g_us": np.full((2, 8, 32), 15.0)})  # what an earlier version kept of a used region
    with pytest.raises(UsageError, match=f"{USED}.*remove {tmp_path}"):
        measure(chip, plan, tmp_path)
    assert t.overlay.counters.pulse_count == 0


def test_a_sweep_that_forms_too_few_cells_stops_before_the_stages_that_need_them(tmp_path: Path) -> None:
    chip, t = _chip(9)
    with pytest.raises(UsageError, match="formed in the sweep"):
        _measure(chip, "0:8,0:32", tmp_path, form_start_v=1.0, form_stop_v=1.1)
    assert MeasurementStore(tmp_path, CalibrationPlan(region="0:8,0:32", form_start_v=1.0, form_stop_v=1.1)).done == [
        "pristine", "offsets", "forming"
    ]  # fmt: skip
