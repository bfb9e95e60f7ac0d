"""MULTIPLY's row-mask products ``planes(x) @ G`` from the inputs themselves, by subset-sum tables (numba).

The bit-planes of inputs ``x`` (B, rows) are 0/1 row masks: plane k of vector b selects the rows whose input
has bit k set, and its product with the conductance block G (rows, nc) is the sum of those rows of G.  With
the rows taken eight at a time, the sum over a group is one of 256 subset sums, so a table of the subset sums
of each group (rows / 8 x 256 x nc, built once per block) turns the product into one table row per group and
plane: eight times fewer adds than the mask matmul, and no float32 plane matrix (4 bytes per input bit) to
write and read.  A group's eight inputs are one little-endian uint64 word; bit k of its eight bytes gathers
into the table index by ``((word >> k) & 0x0101...01) * 0x0102040810204080 >> 56`` (byte i's bit lands on
bit 56 + i; no two partial products overlap, so nothing carries).

Exactness: the block is float32 only where every column sum is below 2**24 and float64 where it is below
2**53 (rramsim.arraymath, ``block``), and every table entry and every partial sum here is a sum of some of one
column's non-negative integer conductances, so each is an exact integer of the block's type, in any order: the
products are the matmul's, value for value (``tests/test_speed_plane_products.py`` compares the two on random
cases).  Without numba, or on a big-endian machine, :func:`plane_products` is not used (``usable``).
"""

from __future__ import annotations

import sys
from typing import Any

import numpy as np
from numpy.typing import NDArray

from rramsim.kernels import AVAILABLE, _njit

GROUP = 8  # rows per table: 256 subset sums each
MIN_VECTORS = 256  # fewer vectors: the table is not worth building (the mask matmul then)
MAX_COLUMNS = 64  # wider blocks: the tables outgrow the cache (the mask matmul then)


def usable(vectors: int, columns: int, dtype: Any) -> bool:
    """Whether :func:`plane_products` is the faster way for this many vectors and columns (it gives the same
    products either way)."""
    return (
        AVAILABLE
        and sys.byteorder == "little"
        and vectors >= MIN_VECTORS
        and 0 < columns <= MAX_COLUMNS
        and np.dtype(dtype) in (np.dtype(np.float32), np.dtype(np.float64))
    )


@_njit(cache=True, nogil=True)
def subset_tables_kernel(g: NDArray[Any], out: NDArray[Any]) -> None:
    """out[c, s, :] = the sum of rows 8c + i of ``g`` over the bits i set in s (rows past the end add 0)."""
    rows, nc = g.shape
    for c in range(out.shape[0]):
        for j in range(nc):
            out[c, 0, j] = 0
        for i in range(GROUP):
            r = GROUP * c + i
            h = 1 << i
            for s in range(h):
                if r < rows:
                    for j in range(nc):
                        out[c, h + s, j] = out[c, s, j] + g[r, j]
                else:
                    for j in range(nc):
                        out[c, h + s, j] = out[c, s, j]


@_njit(cache=True, nogil=True)
def plane_products_kernel(words: NDArray[np.uint64], bits: int, table: NDArray[Any], out: NDArray[Any]) -> None:
    """out[b * bits + k, :] = the sum over groups c of table[c, index of bit k of the 8 bytes of words[b, c]]."""
    n, groups = words.shape
    nc = table.shape[2]
    for b in range(n):
        for k in range(bits):
            f = b * bits + k
            for j in range(nc):
                out[f, j] = 0
            for c in range(groups):
                spread = (words[b, c] >> np.uint64(k)) & np.uint64(0x0101010101010101)
                t = table[c, (spread * np.uint64(0x0102040810204080)) >> np.uint64(56)]
                for j in range(nc):
                    out[f, j] += t[j]


def plane_products(x: NDArray[np.uint8], bits: int, block: NDArray[Any]) -> NDArray[Any]:
    """``plane_matrix(x, bits).astype(block.dtype) @ block``: (B * bits, nc) in frame order (vector-major, LSB
    first), for uint8 inputs ``x`` (B, rows; bits at and above ``bits`` ignored) and a float block (rows, nc)."""
    n, rows = x.shape
    groups = -(-rows // GROUP)
    padded = np.zeros((n, groups * GROUP), dtype=np.uint8)
    padded[:, :rows] = x
    table = np.empty((groups, 1 << GROUP, block.shape[1]), dtype=block.dtype)
    subset_tables_kernel(np.ascontiguousarray(block), table)
    out = np.empty((n * bits, block.shape[1]), dtype=block.dtype)
    plane_products_kernel(padded.view(np.uint64), bits, table, out)
    return out
