"""MULTIPLY's row-mask products from subset-sum tables (rramsim.plane_products) against the mask matmul they
replace, ``plane_matrix(x).astype(block.dtype) @ block``: the same values and type on random inputs (rows not a
multiple of 8, bits above the width set, float32 blocks with column sums up to 2**24 - 1, float64 blocks past
it), through ``PlaneParts.products`` on both of its paths, and Driver.multiply through the shortcut against
encoded chain frames with batches that take the tables."""

from __future__ import annotations

import numpy as np
import pytest
from rramctl.driver import Driver
from rramctl.geometry import Region
from rramctl.transport.base import Transport
from rramctl.transport.emulator import EmulatorTransport
from rramsim import kernels, plane_products, workers
from rramsim.config import ChipModelConfig
from rramsim.overlay import PlaneParts, _plane_matrix_f32

pytestmark = pytest.mark.skipif(not kernels.AVAILABLE, reason="the subset-sum tables need numba")


def _block(g: np.random.Generator, rows: int, nc: int, dtype: type) -> np.ndarray:
    """A conductance block whose column sums reach the float type's exact range (2**24 - 1 for float32)."""
    top = (1 << 24) - 1 if dtype is np.float32 else 1 << 40
    block = g.integers(0, max(2, 2 * top // rows), size=(rows, nc))
    block[:, 0] = 0  # a column of no conductance
    sums = block.sum(axis=0)
    over = sums > top
    block[:, over] = block[:, over] * top // sums[over]  # each column sum at most the top (floor keeps it below)
    block[0, 1] += top - block[:, 1].sum()  # one column exactly at the top
    return block.astype(dtype)


@pytest.mark.parametrize("case", range(16))
def test_the_table_products_are_the_mask_matmul(case: int) -> None:
    g = np.random.default_rng(case)
    rows = int(g.choice([1, 7, 8, 9, 63, 64, 65, 300, 512]))
    nc = int(g.integers(1, 65))
    bits = int(g.integers(1, 9))
    n = int(g.integers(1, 40))
    dtype = np.float32 if case % 3 else np.float64
    x = g.integers(0, 256, size=(n, rows), dtype=np.uint8)  # bits at and above ``bits`` set too: ignored
    x[g.random(x.shape) < 0.4] = 0
    block = _block(g, rows, nc, dtype)
    want = _plane_matrix_f32(x, bits).astype(dtype) @ block
    got = plane_products.plane_products(x, bits, block)
    assert got.dtype == want.dtype and got.shape == want.shape
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("vectors", [5, plane_products.MIN_VECTORS + 3])
@pytest.mark.parametrize("nc", [16, plane_products.MAX_COLUMNS + 1])
def test_plane_parts_give_the_products_of_their_planes(vectors: int, nc: int) -> None:
    """Both paths of PlaneParts.products (tables, matmul) against its planes' matmul, on parts of whole vectors."""
    g = np.random.default_rng(vectors * nc)
    bits, rows = 4, 70
    x = g.integers(0, 16, size=(vectors, rows), dtype=np.uint8)
    x = x[:, ::-1]  # a strided view, as a driver's packet may hand it
    block = _block(g, rows, nc, np.float32)
    parts = PlaneParts(x, bits)
    for a, b in [(0, vectors), (1, vectors - 1), (2, 3)]:
        want = parts[a * bits : b * bits].astype(np.float32) @ block
        np.testing.assert_array_equal(parts.products(a * bits, b * bits, block), want)
    with pytest.raises(ValueError, match="whole vectors"):
        parts.products(1, bits, block)


def _frames_only(config: ChipModelConfig) -> EmulatorTransport:
    class FramesOnly(EmulatorTransport):
        _transact_bitplanes = Transport._transact_bitplanes  # encode the frames, then _transact

    return FramesOnly(config)


def _multiplies(t: EmulatorTransport, case: int) -> tuple[list[tuple[np.ndarray, int]], object]:
    """Two random multiplies of batches past MIN_VECTORS on narrow regions; their codes, saturation and the cost."""
    d, gg = Driver(t), np.random.default_rng(100 + case)
    out = []
    for _ in range(2):
        r0, c0 = int(gg.integers(0, 400)), int(gg.integers(0, 400))
        region = Region(r0, int(gg.integers(1, 513 - r0)), c0, int(gg.integers(1, plane_products.MAX_COLUMNS + 1)))
        bits = int(gg.integers(1, 9))
        x = gg.integers(0, 1 << bits, size=(int(gg.integers(plane_products.MIN_VECTORS, 400)), region.n_rows))
        x[gg.random(x.shape) < 0.5] = 0
        out.append((d.multiply(x, bits, region, int(gg.integers(500, 3_000))), d.saturated))
    return out, t.board_cost()


@pytest.mark.parametrize("case", range(3))
def test_a_large_batch_through_the_tables_gives_the_codes_of_chain_frames(
    case: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Driver.multiply of batches past MIN_VECTORS on narrow regions (the tables) through the bit-plane shortcut
    and through encoded frames (row masks, the matmul): the same codes, saturation counts, board time, energy."""
    calls = []
    table_products = plane_products.plane_products
    monkeypatch.setattr(plane_products, "plane_products", lambda *a: calls.append(1) or table_products(*a))
    config = ChipModelConfig.model_validate({"seed": case})
    fast, frames = EmulatorTransport(config), _frames_only(config)
    g0 = np.random.default_rng(case).integers(1, 60_000, size=(512, 512)).astype(np.int32)
    for t in (fast, frames):
        t.overlay.crossbar.g = g0.copy()
    workers.set_threads(1)  # one part: every multiply past MIN_VECTORS takes the tables
    try:
        (fast_out, fast_cost), (frame_out, frame_cost) = [_multiplies(t, case) for t in (fast, frames)]
    finally:
        workers.set_threads(None)
    for (a, sat_a), (b, sat_b) in zip(fast_out, frame_out, strict=True):
        np.testing.assert_array_equal(a, b)
        assert sat_a == sat_b
    assert fast_cost == frame_cost
    assert len(calls) == 2  # each multiply of the shortcut took the tables
