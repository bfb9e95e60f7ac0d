"""The base of every model a user configures (board configuration, chip model, training run, calibration plan):
unknown fields, NaN and infinity refused, frozen, and a bool refused where a number is asked for (pydantic's lax
mode reads ``voltage_v = true`` as 1.0; a TOML or JSON typo should be an error, as ``rramctl.arguments`` refuses
bools for numbers in the API)."""

from __future__ import annotations

import types
import typing
from typing import Any

from pydantic import BaseModel, ConfigDict, model_validator


def _is_number(annotation: Any) -> bool:
    """Whether a field annotation asks for a number: int or float, optionally with None (``float | None``)."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return bool(args) and all(_is_number(a) for a in args)
    return annotation in (int, float)


class Settings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    @model_validator(mode="before")
    @classmethod
    def _refuse_bools_as_numbers(cls, data: Any) -> Any:
        if isinstance(data, dict):
            for name, field in cls.model_fields.items():
                value = data.get(field.alias or name, data.get(name))
                if isinstance(value, bool) and _is_number(field.annotation):
                    raise ValueError(f"{name} must be a number, got {value}")
        return data
