"""Array geometry: regions, cell lists and the differential-pair layout (docs/protocol.md)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from rramctl.errors import UsageError
from rramctl.protocol import ARRAY_LINES

ROWS = ARRAY_LINES  # bit lines (seed 000 Methods: 512 x 512 crossbar)
COLS = ARRAY_LINES  # source lines
PAIR_OFFSET = COLS // 2  # ours: G- of column c lives at column c + 256


class GeometryError(UsageError):
    """A region or cell outside the array."""


@dataclass(frozen=True)
class Region:
    """A rectangle of the array: rows ``row .. row+n_rows-1``, columns ``col .. col+n_cols-1``."""

    row: int = 0
    n_rows: int = ROWS
    col: int = 0
    n_cols: int = COLS

    def __post_init__(self) -> None:
        for name in ("row", "n_rows", "col", "n_cols"):
            value = getattr(self, name)
            if isinstance(value, bool | np.bool_) or not isinstance(value, int | np.integer):
                raise GeometryError(f"region {name} must be an integer, got {value!r}")
            object.__setattr__(self, name, int(value))  # numpy integers become ints: one hashable, printable value
        if self.n_rows < 1 or self.n_cols < 1:
            raise GeometryError(f"region at row {self.row}, col {self.col} with {self.n_rows} rows and {self.n_cols} "
                                "columns is empty")  # fmt: skip
        if self.row < 0 or self.col < 0 or self.row + self.n_rows > ROWS or self.col + self.n_cols > COLS:
            raise GeometryError(f"region {self} lies outside the {ROWS}x{COLS} array")

    @classmethod
    def parse(cls, text: str) -> Region:
        """``ROW:NROWS,COL:NCOLS`` (e.g. ``0:64,0:128``) or ``all``."""
        if not isinstance(text, str):
            raise GeometryError(f"region must be given as text ROW:NROWS,COL:NCOLS or 'all', got {text!r}")
        if not text.strip():  # an empty --region (an unset shell variable) is no region, not the whole array
            raise GeometryError("region is empty: give ROW:NROWS,COL:NCOLS (e.g. 0:64,0:128) or 'all'")
        if text.strip().lower() == "all":
            return cls()
        try:
            rows, cols = text.split(",")
            r0, nr = (int(v) for v in rows.split(":"))
            c0, nc = (int(v) for v in cols.split(":"))
        except ValueError as e:
            raise GeometryError(f"region {text!r} is not ROW:NROWS,COL:NCOLS (e.g. 0:64,0:128) or 'all'") from e
        return cls(r0, nr, c0, nc)

    @property
    def shape(self) -> tuple[int, int]:
        return (self.n_rows, self.n_cols)

    @property
    def slices(self) -> tuple[slice, slice]:
        """Index of this region in a (ROWS, COLS) array."""
        return np.s_[self.row : self.row + self.n_rows, self.col : self.col + self.n_cols]

    @property
    def is_pair_region(self) -> bool:
        """True when the region lies in the G+ half (pair columns 0..255), so it has a G- partner."""
        return self.col + self.n_cols <= PAIR_OFFSET

    def check_pairs(self) -> Region:
        """This region, checked to be a pair region (G+ half); raises GeometryError otherwise."""
        if not self.is_pair_region:
            raise GeometryError(
                f"pair region {self} must lie in pair columns 0..{PAIR_OFFSET - 1} (G- at column + {PAIR_OFFSET})"
            )
        return self

    def minus(self) -> Region:
        """The G- partner of a pair region: same rows, columns + PAIR_OFFSET (docs/protocol.md)."""
        self.check_pairs()
        return Region(self.row, self.n_rows, self.col + PAIR_OFFSET, self.n_cols)

    def cells(self) -> NDArray[np.int64]:
        """Every cell of the region as (N, 2) [row, col], row-major."""
        r, c = np.mgrid[self.slices]
        return np.stack([r.ravel(), c.ravel()], axis=1).astype(np.int64)

    def __str__(self) -> str:
        return f"rows {self.row}-{self.row + self.n_rows - 1}, cols {self.col}-{self.col + self.n_cols - 1}"


def _integer_array(values: Any, what: str, shape: str) -> NDArray[Any]:
    """``values`` as an array of integers (an empty list is an empty array of any dtype); anything numpy cannot
    make one rectangular array of (ragged lists, None, dicts, ints past int64) or whose elements are not integers
    (floats, bools, strings, objects) is one GeometryError."""
    try:
        arr = np.asarray(values)
    except (ValueError, TypeError, OverflowError) as e:  # ragged nesting and the like
        msg = f"{what} must be an integer array of shape {shape}, got {type(values).__name__}: {e}"
        raise GeometryError(msg) from None
    if arr.size and (arr.dtype == np.bool_ or not np.issubdtype(arr.dtype, np.integer)):
        raise GeometryError(f"{what} must be an integer array of shape {shape}, got {arr.shape} {arr.dtype}")
    return arr


def check_cells(cells: NDArray[np.integer] | list[tuple[int, int]], what: str = "cells") -> NDArray[np.int64]:
    """Validate a cell list: shape (N, 2) of [row, col] inside the array (an empty list: no cells).  ``what`` names
    the list in the error (e.g. ``pairs``)."""
    arr = _integer_array(cells, what, "(N, 2) [row, col]")
    if arr.size == 0 and arr.shape in ((0,), (0, 2)):
        return np.zeros((0, 2), dtype=np.int64)
    if arr.ndim != 2 or arr.shape[1] != 2 or arr.size == 0:
        raise GeometryError(f"{what} must be an integer array of shape (N, 2) [row, col], got {arr.shape} {arr.dtype}")
    bad = (arr[:, 0] < 0) | (arr[:, 0] >= ROWS) | (arr[:, 1] < 0) | (arr[:, 1] >= COLS)
    if bad.any():
        first = arr[np.argmax(bad)]
        raise GeometryError(
            f"{int(bad.sum())} {what.removesuffix('s')}(s) lie outside the {ROWS}x{COLS} array, "
            f"first: row {first[0]}, col {first[1]}"
        )
    return arr.astype(np.int64)


def pair_cells(rows: NDArray[np.integer], pair_cols: NDArray[np.integer]) -> NDArray[np.int64]:
    """Both cells of differential pairs at (row, pair column < 256): the G+ cells, then the G- cells, as one (2K, 2)
    cell list. ``rows`` and ``pair_cols`` are 1-D integer lists of one length K (the pairs in order); anything else
    (a scalar, a 2-D array: its flattening order would be a guess) is one GeometryError, as a cell list of another
    shape is."""
    r = _integer_array(rows, "pair rows", "(K,)")
    c = _integer_array(pair_cols, "pair columns", "(K,)")
    for arr, what in ((r, "pair rows"), (c, "pair columns")):
        if arr.ndim != 1:
            raise GeometryError(f"{what} must be a 1-D integer array of shape (K,), got shape {arr.shape}; give one "
                                "row and one pair column per pair (e.g. a 2-D grid's .ravel())")  # fmt: skip
    if r.size != c.size:
        raise GeometryError(f"{r.size} pair rows but {c.size} pair columns")
    if c.size and (c.min() < 0 or c.max() >= PAIR_OFFSET):
        raise GeometryError(f"pair columns must be 0-{PAIR_OFFSET - 1}")
    if r.size and (r.min() < 0 or r.max() >= ROWS):
        raise GeometryError(f"pair rows must be 0-{ROWS - 1}")
    plus = np.stack([r.astype(np.int64), c.astype(np.int64)], axis=1)
    return check_cells(np.concatenate([plus, plus + [0, PAIR_OFFSET]]))
