"""Bench of rram_accumulate (hdl/rtl/rram_accumulate.v), parametrised over the column count: MULTIPLY-shaped
sample streams (per vector, bit-planes 0..bits-1, every column of a random window, codes including both
rails) against a Python model of ``sum_k code_k << k``."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest

RTL = Path(__file__).resolve().parents[2] / "rtl"
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
    if shutil.which("iverilog") is None:
        pytest.skip("Icarus Verilog not installed")
    runner_mod = pytest.importorskip("cocotb_tools.runner")
    runner = runner_mod.get_runner("icarus")
    runner.build(sources=[RTL / "rram_accumulate.v"], hdl_toplevel="rram_accumulate", parameters={"COLS": cols},
                 build_dir=tmp_path, timescale=("1ns", "1ps"))  # fmt: skip
    env = {"PYTHONPATH": os.pathsep.join([str(Path(__file__).parent), os.environ.get("PYTHONPATH", "")]),
           "TB_COLS": str(cols), "TB_SEED": str(cols)}  # fmt: skip
    results = runner.test(test_module="test_rram_accumulate", hdl_toplevel="rram_accumulate", build_dir=tmp_path,
                          test_dir=tmp_path, extra_env=env, results_xml=str(tmp_path / "results.xml"))  # fmt: skip
    n_tests, n_failed = runner_mod.get_results(results)
    assert n_tests >= 1 and n_failed == 0
