"""Bench of rram_prescaler (hdl/rtl/rram_prescaler.v), laid out as alexforencich/verilog-axi lays out its
benches: the cocotb tests and the pytest runner in one file, one folder per RTL module, the pytest
parameter matrix over the module's parameter.

Checked against a reference model clock by clock: ``tick`` rises exactly ``cycles`` clocks after each
``load`` (1..MAX), stays high while idle, and a new ``load`` restarts the interval at any point."""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest
from bench_util import run_module_bench

try:
    import cocotb
    from cocotb.clock import Clock
    from cocotb.triggers import ClockCycles, FallingEdge, RisingEdge
except ImportError:  # collected by pytest without cocotb: the runner below skips
    cocotb = None


if cocotb is not None:

    @cocotb.test()
    async def tick_follows_the_reference_model(dut) -> None:
        """Random loads (random lengths, random idle gaps, loads that cut an interval short)."""
        maxc = int(os.environ["TB_MAX"])
        rng = random.Random(int(os.environ.get("TB_SEED", "1")))
        Clock(dut.clk, 10, unit="ns").start()
        dut.load.value = 0
        dut.cycles.value = 1
        dut.rst_n.value = 0
        await ClockCycles(dut.clk, 2)
        dut.rst_n.value = 1
        left = 0  # the reference: clocks still to wait
        for _ in range(400):
            await FallingEdge(dut.clk)
            assert int(dut.tick.value) == (left == 0), left
            load = rng.random() < 0.3
            n = rng.randint(1, maxc)
            dut.load.value = int(load)
            dut.cycles.value = n
            await RisingEdge(dut.clk)
            if load:
                left = n - 1
            elif left:
                left -= 1


@pytest.mark.hdl
@pytest.mark.parametrize("maxc", [1, 2, 3, 42])
def test_rram_prescaler(maxc: int, tmp_path: Path) -> None:
    run_module_bench(
        __file__,
        "rram_prescaler",
        ["rram_prescaler.v"],
        tmp_path,
        parameters={"MAX": maxc},
        env={"TB_MAX": maxc, "TB_SEED": maxc},
    )
