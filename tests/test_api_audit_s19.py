"""Bad inputs the API audit of session 19 found reaching a bare Python error or passing unchecked: each is one
rramctl error now, before anything changes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from rramctl.chip import Chip
from rramctl.config import BoardConfig, ConfigError
from rramctl.errors import UsageError
from rramctl.geometry import Region


@pytest.mark.parametrize("transport", [None, "x", 5])
def test_from_transport_refuses_what_is_not_a_transport(transport: object) -> None:
    with pytest.raises(UsageError, match="transport must be a rramctl Transport"):
        Chip.from_transport(transport)  # type: ignore[arg-type]


def test_a_bitfile_that_is_not_a_path_is_refused() -> None:
    with pytest.raises(UsageError, match="path"):
        Chip.open("emulator", autosave=False, bitfile=5)  # type: ignore[arg-type]


def test_a_board_config_that_is_a_folder_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot be read"):
        BoardConfig.load(tmp_path)


def test_the_software_model_refuses_write_verify_targets_the_board_cannot_reach() -> None:
    with Chip.open("software") as chip:
        region = Region.parse("0:1,0:1")
        chip.electroform(region)
        before = chip.read(region).copy()
        pulses = chip.counters()["pulse_count"]
        for target in (999.0, 0.0):
            with pytest.raises(UsageError, match="targets must lie in"):
                chip.program(np.array([[0, 0]]), np.array([target]))
        assert chip.counters()["pulse_count"] == pulses
        np.testing.assert_array_equal(chip.read(region), before)
