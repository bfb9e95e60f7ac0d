"""Complementary forming of differential pairs (seed 000 Results): Chip.electroform_pairs and `form --pairs`."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from rramctl.chip import FORMED_THRESHOLD_US, row_runs
from rramctl.cli.main import app
from rramctl.geometry import PAIR_OFFSET, Region
from rramctl.reference import scratch_chip
from rramctl.transport.emulator import EmulatorTransport
from typer.testing import CliRunner


def test_row_runs_hold_only_the_listed_cells() -> None:
    cells = np.array([[3, 5], [3, 6], [3, 8], [1, 2], [3, 7], [2, 7]])
    runs = row_runs(cells)
    covered = {(r.row, r.col + k) for r in runs for k in range(r.n_cols)}
    assert covered == {tuple(c) for c in cells.tolist()}
    assert all(r.n_rows == 1 for r in runs) and len(runs) == 3  # (1,2), (2,7), (3,5..8)


def test_every_pair_gets_one_conducting_cell() -> None:
    chip, overlay = scratch_chip(seed=5)
    region = Region(10, 24, 100, 40)
    rep = chip.electroform_pairs(region)
    plus = chip.read(region) > FORMED_THRESHOLD_US
    minus = chip.read(Region(10, 24, 100 + PAIR_OFFSET, 40)) > FORMED_THRESHOLD_US
    assert not np.any(plus & minus)  # never both
    assert rep.complemented == int((~plus).sum())
    assert rep.complement_formed == int(minus.sum())
    assert rep.complement_formed >= 0.98 * rep.complemented  # the ramp forms nearly all (stuck cells cannot)
    assert 0.4 < rep.plus_formed_fraction < 0.6
    assert rep.form_pulses >= rep.complemented
    assert 3.4 <= rep.max_voltage_v <= chip.config.ratings.max_sl_voltage_v
    w = rep.weights_us
    assert np.array_equal(w > FORMED_THRESHOLD_US, plus) and np.array_equal(w < -FORMED_THRESHOLD_US, minus)
    # nothing outside the pair region was formed
    outside = np.asarray(overlay.crossbar.g_formed) > 0
    outside[10:34, 100:140] = False
    outside[10:34, 100 + PAIR_OFFSET : 140 + PAIR_OFFSET] = False
    assert not outside.any()
    chip.close()


@pytest.mark.parametrize("region,step", [(Region(0, 4, 250, 8), 0.05), (Region(0, 4, 0, 8), 0.0)])
def test_bad_pair_forming_requests_change_nothing(region: Region, step: float) -> None:
    chip, overlay = scratch_chip(seed=5)
    with pytest.raises(ValueError):
        chip.electroform_pairs(region, step_v=step)
    assert not (np.asarray(overlay.crossbar.g_formed) > 0).any()
    chip.close()


def test_a_command_saves_the_state_file_once(tmp_path: Path, mocker) -> None:  # noqa: ANN001
    """The state file is written once per command (on close), however many operations and batches it runs."""
    t = EmulatorTransport.open(state_path=tmp_path / "s.npz", seed=1)
    save = mocker.spy(t, "save")
    from rramctl.driver import Driver

    d = Driver(t)
    with t.batch():
        for k in range(3):
            d.form(Region(k, 1, 0, 4), 1000, 40000, 20000)
    d.form(Region(5, 1, 0, 4), 1000, 40000, 20000)
    assert save.call_count == 0 and not (tmp_path / "s.npz").exists()
    t.close()
    assert save.call_count == 1 and (tmp_path / "s.npz").exists()


def test_form_pairs_cli(tmp_path: Path) -> None:
    args = ["--backend", "emulator", "--state", str(tmp_path / "c.npz"), "--json", "form", "--pairs"]
    r = CliRunner().invoke(app, [*args, "--region", "0:16,0:16"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.output)
    assert out["positive_pairs"] + out["negative_pairs"] >= 250
    bad = CliRunner().invoke(app, [*args, "--region", "0:16,250:16"])
    assert bad.exit_code == 2 and "columns 0..255" in bad.output
