"""The chip API's one argument normaliser: each public Chip method (and the software model's) passes its
arguments through these before any register is written, so a wrong type, NaN or infinity is one RramctlError
subclass naming the argument (cell lists: :func:`rramctl.geometry.check_cells`; multiply inputs:
:meth:`rramctl.chip.Chip.check_inputs`)."""

from __future__ import annotations

import math
import numbers
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from rramctl.config import BoardConfig, ConfigError
from rramctl.errors import UsageError
from rramctl.geometry import GeometryError, Region


def as_scalar(value: object, what: str, *, integer: bool = False) -> Any:
    """``value`` as a finite float (or an int where ``integer``): a Python or numpy number, not a bool; anything
    else (None, a string, a list, complex, NaN, infinity, an int past float range) is one UsageError."""
    if isinstance(value, bool | np.bool_) or not isinstance(value, numbers.Integral if integer else numbers.Real):
        raise UsageError(f"{what} must be {'an integer' if integer else 'a real number'}, got {value!r}")
    try:
        number = int(value) if integer else float(value)  # type: ignore[call-overload]
    except OverflowError:
        raise UsageError(f"{what} = {value} is out of range") from None
    if not integer and not math.isfinite(number):
        raise UsageError(f"{what} must be finite, got {value}")
    return number


def as_real_array(values: object, what: str) -> NDArray[np.float64]:
    """``values`` as a float array of finite real numbers (integers and floats; not bools, strings, objects,
    complex, NaN or infinity); anything else, a ragged list included, is one UsageError."""
    try:
        arr = np.asarray(values)
    except (ValueError, TypeError, OverflowError) as e:
        raise UsageError(f"{what} must be an array of real numbers, got {type(values).__name__}: {e}") from None
    if arr.size and (arr.dtype == np.bool_ or arr.dtype.kind not in "iuf"):
        raise UsageError(f"{what} must be real numbers, got {arr.shape} {arr.dtype}")
    out = np.asarray(arr, dtype=np.float64)
    if not np.issubdtype(arr.dtype, np.integer) and not np.isfinite(out).all():
        raise UsageError(f"{what} must be finite (no NaN or infinity)")
    return out


def as_region(region: object, *, default: bool = False) -> Region:
    """A ``Region`` argument (None: the whole array where ``default``); anything else is one GeometryError."""
    if region is None and default:
        return Region()
    if not isinstance(region, Region):
        raise GeometryError(f"region must be a rramctl.geometry.Region, got {region!r}")
    return region


def as_board_config(config: object) -> BoardConfig:
    """A ``BoardConfig`` argument (None: the defaults)."""
    if config is None:
        return BoardConfig()
    if not isinstance(config, BoardConfig):
        raise ConfigError(f"config must be a rramctl.config.BoardConfig (BoardConfig.load(path) reads a file), "
                          f"got {config!r}")  # fmt: skip
    return config


def as_path(path: object) -> Path:
    """A file path argument (str or os.PathLike); a target that is not a regular file is refused by the one writer,
    rramctl.fileio.atomic_open, before anything is written."""
    if not isinstance(path, str | PathLike) or not str(path):
        raise UsageError(f"path must be a file path (str or pathlib.Path), got {path!r}")
    return Path(path)
