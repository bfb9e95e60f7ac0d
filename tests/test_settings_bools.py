"""Every model a user configures refuses a bool where a number is asked for (pydantic's lax mode read
``voltage_v = true`` as 1.0: the API audit of session 19), and still takes ints for floats and bools for bools."""

from __future__ import annotations

import pytest
from pydantic import ValidationError
from rramctl.calibrate.plan import CalibrationPlan
from rramctl.config import BoardConfig, ConfigError, Pulse
from rramctl.settings import Settings, _is_number
from rramctl.training.config import TrainConfig
from rramsim.config import ChipModelConfig


@pytest.mark.parametrize(
    "make",
    [
        lambda: Pulse(voltage_v=True, width_s=1e-6, gate_v=1.0),
        lambda: BoardConfig.model_validate({"read_voltage_v": False}),
        lambda: TrainConfig(task="fmnist-cnn", epochs=True),
        lambda: TrainConfig.model_validate({"task": "fmnist-cnn", "to": {"lr": True}}),
        lambda: ChipModelConfig(seed=True),
        lambda: ChipModelConfig.model_validate({"forming": {"pristine_ns": True}}),
        lambda: CalibrationPlan(settle_s=True),
    ],
)
def test_a_bool_for_a_number_is_refused(make) -> None:  # noqa: ANN001
    with pytest.raises((ValidationError, ConfigError), match="must be a number, got"):
        make()


def test_numbers_and_flags_still_pass() -> None:
    assert Pulse(voltage_v=3, width_s=1e-6, gate_v=1).voltage_v == 3.0  # an int for a float
    cfg = TrainConfig.model_validate({"task": "fmnist-cnn", "epochs": 2, "threshold": {"follows_lr": True}})
    assert cfg.epochs == 2 and cfg.threshold.follows_lr is True  # a bool for a bool


def test_what_counts_as_a_number() -> None:
    assert _is_number(int) and _is_number(float) and _is_number(float | None)
    assert not _is_number(bool) and not _is_number(str) and not _is_number(int | str) and not _is_number(None)
    assert all(issubclass(m, Settings) for m in (Pulse, BoardConfig, TrainConfig, ChipModelConfig, CalibrationPlan))
