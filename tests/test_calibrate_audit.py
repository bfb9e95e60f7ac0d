"""``rramctl calibrate`` audit: bounded waits (a wait cannot poison the chip state), the plan checked against the
board's ratings before the chip is opened, the chip state durable before a stage is recorded (SIGKILL), resume on
the same chip only, fitted values outside the model's bounds, malformed measurement files and CSVs, and --out
folders of other runs.  Small regions (8 x 32 cells): a few seconds each."""

from __future__ import annotations

import json
import re
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rramsim.state as sim_state
from rramctl.calibrate.csvio import CsvLayoutError, from_csv, to_csv
from rramctl.calibrate.fit import fit
from rramctl.calibrate.measure import CalibrationError, MeasurementStore, measure
from rramctl.calibrate.plan import CalibrationPlan
from rramctl.calibrate.report import write_outputs
from rramctl.chip import MAX_WAIT_S, Chip
from rramctl.cli.main import app
from rramctl.errors import StateError, UsageError
from rramctl.geometry import Region
from rramctl.software import SoftwareChip
from rramctl.transport.emulator import EmulatorTransport
from rramsim.config import load_model
from rramsim.overlay import MAX_BOARD_TIME_S, BoardClockError
from typer.testing import CliRunner

REGION = "0:8,0:32"
Meas = dict[str, dict[str, np.ndarray]]


def _chip(seed: int, state: Path | None = None) -> tuple[Chip, EmulatorTransport]:
    t = EmulatorTransport(load_model("paper-40nm", seed=seed), state_path=state)
    return Chip.from_transport(t), t


def _measure(chip: Chip, out: Path, **kw: Any) -> Meas:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return measure(chip, CalibrationPlan(region=REGION), out, **kw)


@pytest.fixture(scope="module")
def measured(tmp_path_factory: pytest.TempPathFactory) -> tuple[Meas, Path]:
    out = tmp_path_factory.mktemp("cal")
    chip, _ = _chip(21)
    return _measure(chip, out), out


def _cli(*args: str) -> Any:
    return CliRunner().invoke(app, list(args))


# ---- 1. waits -------------------------------------------------------------------------------------------
def test_a_wait_past_the_bound_is_refused_and_the_state_stays_usable(tmp_path: Path) -> None:
    state = tmp_path / "chip.npz"
    with Chip.open("emulator", state=state) as chip:
        before = chip.clock_s()
        with pytest.raises(UsageError, match="MAX_WAIT_S"):
            chip.wait(1e13)
        assert chip.clock_s() == before
        chip.wait(MAX_WAIT_S)  # the bound itself is a wait
    with Chip.open("emulator", state=state) as chip:
        assert chip.read(Region(0, 1, 0, 4)).shape == (1, 4)  # no OverflowError on the saved state


def test_the_emulator_clock_refuses_to_pass_its_limit_and_changes_nothing(tmp_path: Path) -> None:
    chip, t = _chip(1)
    t.overlay.board_time_s = MAX_BOARD_TIME_S - 10.0
    with pytest.raises(UsageError, match="MAX_BOARD_TIME_S"):
        chip.wait(100.0)
    assert t.overlay.board_time_s == MAX_BOARD_TIME_S - 10.0
    for bad in (float("nan"), -1.0, float("inf")):
        with pytest.raises(BoardClockError):
            t.overlay.rest(bad)
    t.overlay.board_time_s = 1e13  # a state an earlier version saved past the limit: refused as damaged, no crash
    t.save_state(tmp_path / "old.npz")
    with pytest.raises(sim_state.StateError, match="board_time_s"):
        sim_state.load(tmp_path / "old.npz")


@pytest.mark.parametrize("field", ["settle_s = 1e13", "delays_s = [0.0, 1.0, 2.0, 1e300]"])
def test_a_plan_wait_past_the_bound_is_refused_before_the_chip_is_opened(tmp_path: Path, field: str) -> None:
    plan, state, out = tmp_path / "plan.toml", tmp_path / "chip.npz", tmp_path / "cal"
    plan.write_text(f'region = "{REGION}"\n{field}\n')
    r = _cli("--backend", "emulator", "--state", str(state), "calibrate", "--plan", str(plan), "--out", str(out))
    assert r.exit_code == 2, r.output
    assert str(plan) in r.output and field.split()[0] in r.output and "Traceback" not in r.output
    assert not out.exists() and not state.exists()


def test_calibrate_on_the_software_backend_is_one_error(tmp_path: Path) -> None:
    state, out = tmp_path / "sw.npz", tmp_path / "cal"
    r = _cli("--backend", "software", "--state", str(state), "calibrate", "--region", REGION, "--out", str(out))
    assert r.exit_code == 2 and "software backend" in r.output, r.output
    assert not out.exists() and not state.exists()
    with pytest.raises(CalibrationError, match="software backend"):
        measure(SoftwareChip(0), CalibrationPlan(region=REGION), out)
    assert not out.exists()


# ---- 2. the plan against the ratings ------------------------------------------------------------------------
@pytest.mark.parametrize(
    "field, named",
    [
        ("form_stop_v = 4.4", "form_stop_v"),
        ("form_step_v = 0.3", "form_stop_v"),  # 3.0, 3.3, 3.6, 3.9: the last step passes the 3.8 V rating
        ("form_gate_v = 3.0", "form_gate_v"),
        ("form_width_s = 100.0", "form_width_s"),
        ("program_target_us = 1000", "program_target_us"),
        ("offset_vectors = 100000000", "offset_vectors"),
        ("form_step_v = 1e-7", "form_step_v"),
        ("form_step_v = 0.0001", "steps"),
        ("reads = 100000000", "reads"),
    ],
)
def test_a_plan_past_the_ratings_is_refused_before_the_chip_is_opened(tmp_path: Path, field: str, named: str) -> None:
    plan, state, out = tmp_path / "plan.toml", tmp_path / "chip.npz", tmp_path / "cal"
    plan.write_text(f'region = "{REGION}"\n{field}\n')
    r = _cli("--backend", "emulator", "--state", str(state), "calibrate", "--plan", str(plan), "--out", str(out))
    assert r.exit_code == 2, r.output
    assert str(plan) in r.output and named in r.output and "--vectors" not in r.output, r.output
    assert len([line for line in r.output.splitlines() if line.startswith("error:")]) == 1
    assert not out.exists() and not state.exists()


def test_measure_checks_the_plan_before_the_chip_is_touched(tmp_path: Path) -> None:
    chip, t = _chip(2)
    with pytest.raises(UsageError, match="form_stop_v"):
        measure(chip, CalibrationPlan(region=REGION, form_stop_v=4.4), tmp_path / "cal")
    assert t.overlay.counters.op_count == 0 and not (tmp_path / "cal").exists()


# ---- 3. SIGKILL: the chip state is durable before a stage is recorded ---------------------------------------
def test_a_killed_run_leaves_a_state_file_that_matches_its_recorded_progress(tmp_path: Path) -> None:
    state, out = tmp_path / "chip.npz", tmp_path / "cal"
    chip, t = _chip(3, state)

    def cut(stage: str, k: int, n: int) -> None:
        if stage == "forming" and k == 6:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        _measure(chip, out, progress=cut, state=state)
    assert t._lock is not None
    t._lock.release()  # SIGKILL: no close, so no save at close; the lock goes with the process
    part = MeasurementStore(out, CalibrationPlan(region=REGION)).load("forming")
    assert part is not None and int(part["steps_done"]) == 6
    recorded = ~np.isnan(part["v_form_v"])
    assert recorded.sum() > 0
    again, t2 = _chip(3, state)
    g = again.read(Region.parse(REGION))
    assert (g[recorded] > 3.34).all()  # every cell the record says formed is formed in the saved state
    meas = _measure(again, out, state=state)  # and the run resumes on that chip to the end
    fit(meas, load_model("paper-40nm"))
    t2.close()


# ---- 4. resume on the same chip only ----------------------------------------------------------------------
def test_a_resume_with_another_chip_is_refused_before_it_is_touched(measured: tuple[Meas, Path]) -> None:
    _, out = measured
    other, t = _chip(22)
    with pytest.raises(StateError, match="another chip.*model_seed"):
        _measure(other, out)
    assert t.overlay.counters.op_count == 0
    progress = json.loads((out / "progress.json").read_text())
    assert progress["chip"]["backend"] == "emulator" and progress["chip"]["model_seed"] == 21


def test_a_resume_with_another_state_file_is_refused(tmp_path: Path) -> None:
    a, b, out = tmp_path / "a.npz", tmp_path / "b.npz", tmp_path / "cal"
    args = ["--backend", "emulator", "calibrate", "--region", REGION, "--out", str(out), "--no-plots"]
    r = _cli("--state", str(a), *args)
    assert r.exit_code == 0, r.output
    r = _cli("--state", str(b), *args)
    assert r.exit_code == 2 and "another chip" in r.output and str(b.name) in r.output, r.output


# ---- 5. fitted values outside the model's bounds ------------------------------------------------------------
def test_values_outside_the_bounds_are_reported_measured_and_clamped_in_the_preset(
    tmp_path: Path, measured: tuple[Meas, Path]
) -> None:
    meas, _ = measured
    fm = dict(meas["forming"])
    g = fm["g_formed_us"].copy()
    formed = ~np.isnan(fm["v_form_v"])
    g[formed] = np.where(np.arange(formed.sum()) % 2, 5.0, 60.0)  # a relative spread far above 300,000 ppm
    fm["g_formed_us"] = g
    res = fit({**meas, "forming": fm}, load_model("paper-40nm"))
    spread = next(p for p in res.params if p.path == "forming.formed_spread_ppm")
    assert spread.clamped and spread.value > 300_000 and spread.preset == 300_000
    assert res.model.forming.formed_spread_ppm == 300_000
    rep = write_outputs(res, tmp_path / "out", "test", plots=False)
    assert load_model(tmp_path / "out" / "fitted.toml").forming.formed_spread_ppm == 300_000
    line = spread.clamp_line()
    assert line in rep["clamped"] and line in (tmp_path / "out" / "report.md").read_text()
    row = next(p for p in rep["parameters"] if p["path"] == "forming.formed_spread_ppm")
    assert row["value"] == spread.value and row["preset_value"] == 300_000


# ---- 6. malformed measurement files and CSVs ----------------------------------------------------------------
def test_a_damaged_or_missing_stage_file_is_one_error_naming_it(tmp_path: Path, measured: tuple[Meas, Path]) -> None:
    _, src = measured
    import shutil

    out = tmp_path / "cal"
    shutil.copytree(src, out)
    (out / "measurements" / "reads.npz").write_bytes(b"PK\x03\x04 not a zip")
    chip, t = _chip(21)
    with pytest.raises(StateError, match=r"reads\.npz is damaged"):
        _measure(chip, out)
    (out / "measurements" / "reads.npz").unlink()
    with pytest.raises(StateError, match=r"reads stage done, but .*reads\.npz is missing"):
        _measure(chip, out)
    assert t.overlay.counters.op_count == 0


def _csv_lines(meas: Meas, tmp_path: Path) -> list[str]:
    path = tmp_path / "m.csv"
    to_csv(meas, path)
    return path.read_text().splitlines()


def _first(lines: list[str], stage: str) -> int:
    return next(i for i, line in enumerate(lines) if line.startswith(stage + ","))


@pytest.mark.parametrize("defect", ["nan", "stage", "duplicate", "missing", "negative", "truncated", "fraction"])
def test_a_malformed_csv_is_one_error_naming_the_file(tmp_path: Path, measured: tuple[Meas, Path], defect: str) -> None:
    lines = _csv_lines(measured[0], tmp_path)
    i = _first(lines, "read")
    f = lines[i].split(",")
    if defect == "nan":
        lines[i] = ",".join([*f[:7], "nan"])
    elif defect == "stage":
        lines[i] = ",".join(["reed", *f[1:]])
    elif defect == "duplicate":
        lines.insert(i + 1, lines[i])
    elif defect == "missing":
        del lines[i]
    elif defect == "negative":
        j = _first(lines, "set")
        g = lines[j].split(",")
        lines[j] = ",".join([*g[:5], "-0.5", *g[6:]])
    elif defect == "truncated":
        lines = lines[:-30]  # cut at a line boundary: the last relax samples are missing
    else:
        lines[i] = ",".join([f[0], f[1] + ".5", *f[2:]])
    path = tmp_path / "bad.csv"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(CsvLayoutError, match=re.escape(str(path))):
        from_csv(path)
    out = tmp_path / "out"
    r = _cli("calibrate", "--from-csv", str(path), "--out", str(out), "--no-plots")
    assert r.exit_code == 2 and str(path) in r.output, r.output
    assert not out.exists()


# ---- 7. --out folders of other runs --------------------------------------------------------------------------
def test_from_csv_never_overwrites_another_runs_outputs(tmp_path: Path, measured: tuple[Meas, Path]) -> None:
    meas, src = measured
    csv = tmp_path / "m.csv"
    to_csv(meas, csv)
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text("{}")
    for out, why in ((run, "training run"), (src, "calibration measured on a chip")):
        r = _cli("calibrate", "--from-csv", str(csv), "--out", str(out), "--no-plots")
        assert r.exit_code == 2 and why in r.output, r.output
    assert sorted(p.name for p in run.iterdir()) == ["config.json"]
    fresh = tmp_path / "fit"
    for _ in range(2):  # a rerun of the same CSV into its own folder is fine
        r = _cli("calibrate", "--from-csv", str(csv), "--out", str(fresh), "--no-plots")
        assert r.exit_code == 0, r.output
    other = tmp_path / "other.csv"
    other.write_text(csv.read_text())
    r = _cli("calibrate", "--from-csv", str(other), "--out", str(fresh), "--no-plots")
    assert r.exit_code == 2 and "another calibration" in r.output, r.output
    r = _cli("--backend", "emulator", "--state", str(tmp_path / "c.npz"), "calibrate", "--region", REGION,
             "--out", str(run))  # fmt: skip
    assert r.exit_code == 2 and "training run" in r.output, r.output


# ---- 8. docs ---------------------------------------------------------------------------------------------
def test_the_docs_plan_table_lists_every_field_with_its_default() -> None:
    text = (Path(__file__).parent.parent / "docs" / "cli.md").read_text(encoding="utf-8")
    rows = {m.group(1): m.group(2) for m in re.finditer(r"^\| `(\w+)` \| `([^`]*)` \|", text, re.M)}
    for name, field in CalibrationPlan.model_fields.items():
        assert name in rows, name
        default = field.default
        shown = json.dumps(list(default)) if isinstance(default, tuple) else json.dumps(default)
        assert rows[name] == shown, (name, rows[name], shown)
