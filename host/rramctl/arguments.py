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
from rramctl.paths import FILE_WHERE_FOLDER
from rramctl.seeds import SEED_LIMIT


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


def as_seed(value: object, what: str = "seed") -> int:
    """``value`` as a seed, a whole number 0 <= seed < 2**64 (rramctl.seeds); anything else is one UsageError."""
    seed = int(as_scalar(value, what, integer=True))
    if not 0 <= seed < SEED_LIMIT:
        raise UsageError(f"{what} must be a whole number from 0 to 2**64 - 1, got {seed}")
    return seed


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
    p = Path(path)
    for parent in p.parents:  # the nearest existing folder above: a file there fails mkdir with a bare "File exists"
        if parent.exists():
            if not parent.is_dir():
                raise UsageError(f"{parent}: File exists; {FILE_WHERE_FOLDER}")
            break
    return p


def as_existing_or_new_file(path: object, what: str) -> Path:
    """:func:`as_path` of a file that is read if it exists (a chip's state file): one that exists but is not a
    regular file (a folder, FIFO or device) is refused before anything opens it (a FIFO would block the reader)."""
    p = as_path(path)
    if p.exists() and not p.is_file():
        raise UsageError(f"{what} {p} is not a regular file (a folder, FIFO or device)")
    return p


def as_flag(value: object, name: str) -> bool:
    """A yes/no argument: True or False (numpy's bool too), not a string or number that happens to be truthy."""
    if not isinstance(value, bool | np.bool_):
        raise UsageError(f"{name} must be True or False, got {value!r}")
    return bool(value)


def as_targets(targets_us: object, n_cells: int) -> NDArray[np.float64]:
    """Write-verify targets: one finite conductance (uS) per cell, a flat list of ``n_cells``."""
    t = as_real_array(targets_us, "targets_us")
    if t.ndim != 1:  # a (1, N) array was flattened and programmed
        raise UsageError(f"targets_us must be one-dimensional, one per cell, got shape {t.shape}")
    if t.shape != (n_cells,):
        raise UsageError(f"{n_cells} cells but {t.size} targets")
    return t


def as_read_gate(gate_v: object, config: BoardConfig) -> float:
    """A read's word-line gate (V): a finite number within 0 .. the WL rating."""
    v = as_scalar(gate_v, "gate_v")
    if not 0 <= v <= config.ratings.max_wl_voltage_v:
        raise ConfigError(f"gate_v = {v} V is outside 0-{config.ratings.max_wl_voltage_v} V")
    return v


def as_tolerance(tolerance: object, config: BoardConfig) -> float:
    """A write-verify tolerance (relative, in (0, 1)); None: the configuration's."""
    tol = config.write_verify.tolerance if tolerance is None else as_scalar(tolerance, "tolerance")
    if not 0 < tol < 1:
        raise UsageError(f"tolerance must be in (0, 1), got {tol}")
    return tol
