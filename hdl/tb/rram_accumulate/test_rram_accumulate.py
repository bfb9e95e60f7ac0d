"""Bench of rram_accumulate (hdl/rtl/rram_accumulate.v), parametrised over the column count: MULTIPLY-shaped
sample streams (per vector, bit-planes 0..bits-1, every column of a random window, codes including both
rails) against a Python model of ``sum_k code_k << k``."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from bench_util import run_module_bench

CODE_MIN, CODE_MAX = -8192, 8191  # ADS8324 rails (docs/protocol.md)

try:
    import cocotb
    from cocotb.clock import Clock
    from cocotb.triggers import FallingEdge, RisingEdge, Timer
except ImportError:  # collected by pytest without cocotb: the runner below skips
    cocotb = None


if cocotb is not None:

    @cocotb.test()
    async def sums_match_the_model(dut) -> None:
        cols = int(os.environ["TB_COLS"])
        rng = np.random.default_rng(int(os.environ.get("TB_SEED", "1")))
        Clock(dut.clk, 10, unit="ns").start()
        dut.we.value = 0
        for _ in range(6):
            bits = int(rng.integers(1, 9))
            c0 = int(rng.integers(0, cols))
            window = range(c0, min(cols, c0 + int(rng.integers(1, 9))))
            model = {c: 0 for c in window}
            for k in range(bits):
                for c in window:
                    code = int(rng.choice([CODE_MIN, CODE_MAX, 0, -1, int(rng.integers(CODE_MIN, CODE_MAX + 1))]))
                    await FallingEdge(dut.clk)
                    dut.col.value, dut.plane.value, dut.code.value, dut.we.value = c, k, code, 1
                    model[c] = (code << k) if k == 0 else model[c] + (code << k)
                    await Timer(1, unit="ns")
                    assert dut.sum.value.to_signed() == model[c], (bits, k, c)  # what is written on this edge
                    await RisingEdge(dut.clk)
            dut.we.value = 0


@pytest.mark.hdl
@pytest.mark.parametrize("cols", [2, 16, 512])
def test_rram_accumulate(cols: int, tmp_path: Path) -> None:
    run_module_bench(
        __file__,
        "rram_accumulate",
        ["rram_accumulate.v"],
        tmp_path,
        parameters={"COLS": cols},
        env={"TB_COLS": cols, "TB_SEED": cols},
    )
