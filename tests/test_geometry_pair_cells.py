"""geometry.pair_cells takes 1-D lists of rows and pair columns: a scalar or a 2-D array is one GeometryError naming
its shape. It used to flatten them silently (a (2, 3) grid of rows became six pairs in an order the caller never
chose), where every other cell list of the API (check_cells, weights_of_pairs, program's targets) refuses a shape it
does not take."""

from __future__ import annotations

import numpy as np
import pytest
from rramctl.errors import UsageError
from rramctl.geometry import PAIR_OFFSET, GeometryError, pair_cells


@pytest.mark.parametrize(
    ("rows", "cols", "match"),
    [
        (np.zeros((2, 3), np.int64), np.zeros((2, 3), np.int64), r"pair rows .* shape \(2, 3\)"),
        ([[0, 1]], [0, 1], r"pair rows .* shape \(1, 2\)"),
        ([0, 1], [[0], [1]], r"pair columns .* shape \(2, 1\)"),
        (np.zeros((1, 1, 2), np.int64), [0, 1], r"pair rows .* shape \(1, 1, 2\)"),
        (3, 5, r"pair rows .* shape \(\)"),
        (np.int64(3), [5], r"pair rows .* shape \(\)"),
    ],
    ids=["2d-both", "2d-rows", "2d-cols", "3d", "scalars", "numpy-scalar"],
)
def test_pair_cells_refuses_what_is_not_1d(rows: object, cols: object, match: str) -> None:
    with pytest.raises(GeometryError, match=match) as e:
        pair_cells(rows, cols)  # type: ignore[arg-type]
    assert isinstance(e.value, UsageError) and "1-D" in str(e.value)


def test_pair_cells_of_1d_lists() -> None:
    rows, cols = np.array([3, 0, 511]), np.array([5, 255, 0])
    got = pair_cells(rows, cols)
    assert got.dtype == np.int64 and got.shape == (6, 2)
    assert got.tolist() == [[3, 5], [0, 255], [511, 0], [3, 5 + PAIR_OFFSET], [0, 255 + PAIR_OFFSET],
                            [511, PAIR_OFFSET]]  # fmt: skip
    assert pair_cells([], []).shape == (0, 2)
    grid_r, grid_c = np.mgrid[0:2, 0:3]  # a grid: the caller flattens it, in the order it chooses
    assert pair_cells(grid_r.ravel(), grid_c.ravel()).shape == (12, 2)
