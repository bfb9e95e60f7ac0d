"""Every setting a user configures through a pydantic model refuses NaN and infinity with one validation error,
whatever the field's bounds (``to.lr = inf`` passed ``gt=0`` and trained on NaN weights; a NaN was refused only
where a bound happened to compare with it, with a message about the bound)."""

from __future__ import annotations

import math
import types
import typing
from typing import Any

import pydantic
import pytest
import rramctl.calibrate.plan
import rramctl.config
import rramctl.training.config
import rramctl.transport.serial
import rramctl_agent.agent
import rramsim.config

MODULES = (rramctl.config, rramctl.training.config, rramsim.config, rramctl.calibrate.plan, rramctl.transport.serial,
           rramctl_agent.agent)  # fmt: skip
REQUIRED: dict[str, dict[str, Any]] = {"TrainConfig": {"task": "fmnist-cnn"}, "SerialLinkConfig": {"port": "/dev/x"}}


def _models() -> list[type[pydantic.BaseModel]]:
    found = {obj for mod in MODULES for obj in vars(mod).values()
             if isinstance(obj, type) and issubclass(obj, pydantic.BaseModel)
             and obj.__module__ == mod.__name__}  # fmt: skip
    return sorted(found, key=lambda m: f"{m.__module__}.{m.__name__}")


def _is_float(annotation: Any) -> bool:
    if annotation is float:
        return True
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        return float in typing.get_args(annotation)
    return False


# Pulse is built by BoardConfig only (a direct Pulse(...) is refused; its NaN checks: tests/test_api_bad_inputs.py)
CASES = [(m, name) for m in _models() if m is not rramctl.config.Pulse
         for name, f in m.model_fields.items() if _is_float(f.annotation)]  # fmt: skip


def test_the_scan_finds_the_settings() -> None:
    names = {f"{m.__name__}.{n}" for m, n in CASES}
    assert {
        "TOConfig.lr",
        "ChipModelConfig.temperature_c",
        "CalibrationPlan.form_start_v",
        "AgentConfig.keepalive_s",
        "SerialLinkConfig.timeout_s",
        "Ratings.max_sl_voltage_v",
    } <= names


@pytest.mark.parametrize(("model", "field"), CASES, ids=[f"{m.__name__}.{n}" for m, n in CASES])
@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_a_float_setting_refuses_nan_and_infinity(model: type[pydantic.BaseModel], field: str, value: float) -> None:
    base = model.model_validate(REQUIRED.get(model.__name__, {})).model_dump()
    with pytest.raises(pydantic.ValidationError, match="finite number"):
        model.model_validate({**base, field: value})
