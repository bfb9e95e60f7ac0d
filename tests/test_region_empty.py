"""An empty region text (``--region ""``, a plan's ``region = ""``: an unset shell variable) is refused,
never taken as the whole array (forming is irreversible, a calibration sacrifices its region)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError
from rramctl.calibrate.plan import CalibrationPlan
from rramctl.geometry import GeometryError, Region


@pytest.mark.parametrize("text", ["", " ", "\t"])
def test_an_empty_region_is_refused(text: str) -> None:
    with pytest.raises(GeometryError, match="empty"):
        Region.parse(text)


def test_all_still_means_the_whole_array() -> None:
    assert Region.parse("all") == Region() == Region.parse(" ALL ")


def test_a_plan_with_an_empty_region_is_refused() -> None:
    with pytest.raises(ValidationError, match="empty"):
        CalibrationPlan(region="")


def test_the_cli_refuses_an_empty_region_and_changes_nothing(tmp_path) -> None:  # noqa: ANN001
    """``form --region "$R"`` with R unset: one error, no cell formed (the chip is not even opened); the other
    region-taking commands alike; ``gather_cells`` never turns "" into the whole array."""
    from rramctl.cli.io import InputFileError, gather_cells
    from rramctl.cli.main import app
    from typer.testing import CliRunner

    state = tmp_path / "chip.npz"
    base = ["--backend", "emulator", "--state", str(state), "--seed", "1"]
    for cmd in (["form", "--region", ""], ["form", "--pairs", "--region", " "], ["read", "--region", ""],
                ["reset", "--region", ""], ["set", "--region", ""]):  # fmt: skip
        r = CliRunner().invoke(app, [*base, *cmd])
        assert r.exit_code == 2, (cmd, r.output)
        assert [ln for ln in r.output.splitlines() if ln.startswith("error:")], (cmd, r.output)
        assert "Traceback" not in r.output
        assert not state.exists(), cmd  # refused before the chip was opened
    with pytest.raises((GeometryError, InputFileError)):
        gather_cells(None, None, "")
