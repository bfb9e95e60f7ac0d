"""Reading user files for the CLI: cell lists and input vectors (.npy or .csv), with clear errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from rramctl.errors import UsageError
from rramctl.geometry import GeometryError, Region, check_cells


class InputFileError(UsageError):
    """A file the user gave that is missing or malformed."""


def load_array(path: Path) -> NDArray[np.int64]:
    if not path.exists():
        raise InputFileError(f"{path} does not exist")
    try:
        if path.suffix == ".npy":
            arr = np.load(path, allow_pickle=False)
        else:
            arr = np.loadtxt(path, delimiter=",", ndmin=2, comments="#")
    except (ValueError, OSError) as e:
        raise InputFileError(f"{path} is not a .npy file or a comma-separated table of numbers: {e}") from e
    if arr.size and not np.all(np.equal(np.mod(arr, 1), 0)):
        raise InputFileError(f"{path} holds non-integer values")
    return np.asarray(arr).astype(np.int64)


def parse_cell(text: str) -> tuple[int, int]:
    try:
        r, c = (int(v) for v in text.split(","))
    except ValueError as e:
        raise GeometryError(f"cell {text!r} is not ROW,COL") from e
    return r, c


def gather_cells(cells_file: Path | None, cell: list[str] | None, region: str | None) -> NDArray[np.int64]:
    """Cells from a file, from repeated --cell R,C, or every cell of a --region."""
    given = [x for x in (cells_file, cell, region) if x]
    if len(given) != 1:
        raise InputFileError("give exactly one of --cells FILE, --cell ROW,COL (repeatable) or --region")
    if cells_file:
        return check_cells(load_array(cells_file))
    if cell:
        return check_cells(np.array([parse_cell(c) for c in cell], dtype=np.int64))
    reg = Region.parse(region or "all")
    rr, cc = np.meshgrid(np.arange(reg.row, reg.row + reg.n_rows), np.arange(reg.col, reg.col + reg.n_cols),
                         indexing="ij")  # fmt: skip
    return np.stack([rr.ravel(), cc.ravel()], axis=1)
