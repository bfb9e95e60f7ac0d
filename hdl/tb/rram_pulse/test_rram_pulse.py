"""Bench of rram_pulse (hdl/rtl/rram_pulse.v): the sequencer's pulse timer.  For guard and width pairs
(the pytest matrix, zero guard and one-clock pulses included) it checks, clock by clock, that `on` comes
`guard` clocks after `start`, `off` exactly `width` clocks after `on` (the pulse the sequencer drives),
`done` `guard` clocks after that, and that `abort` at any clock returns it to idle with no strobe after."""

from __future__ import annotations

import os
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

    async def _reset(dut) -> None:
        Clock(dut.clk, 10, unit="ns").start()
        dut.start.value = dut.abort.value = 0
        dut.guard.value = int(os.environ["TB_GUARD"])
        dut.width.value = int(os.environ["TB_WIDTH"])
        dut.rst_n.value = 0
        await ClockCycles(dut.clk, 2)
        dut.rst_n.value = 1

    async def _strobes(dut, clocks: int) -> dict[str, list[int]]:
        """Clock index of each strobe over `clocks` clocks, counted from now (the falling edge after the
        edge that took `start`)."""
        seen: dict[str, list[int]] = {"on": [], "off": [], "done": []}
        for i in range(clocks):
            for name in seen:
                if int(getattr(dut, name).value):
                    seen[name].append(i)
            await FallingEdge(dut.clk)
        return seen

    async def _start(dut) -> None:
        await FallingEdge(dut.clk)
        dut.start.value = 1
        await RisingEdge(dut.clk)
        await FallingEdge(dut.clk)
        dut.start.value = 0

    @cocotb.test()
    async def strobes_at_guard_width_guard(dut) -> None:
        await _reset(dut)
        guard, width = int(os.environ["TB_GUARD"]), int(os.environ["TB_WIDTH"])
        for _ in range(2):  # twice: it is ready again after done
            await _start(dut)
            seen = await _strobes(dut, 2 * guard + width + 6)
            on = guard  # strobes counted from the clock after the start edge
            assert seen == {"on": [on], "off": [on + width], "done": [on + width + 1 + guard]}, seen

    @cocotb.test()
    async def abort_at_every_clock(dut) -> None:
        await _reset(dut)
        guard, width = int(os.environ["TB_GUARD"]), int(os.environ["TB_WIDTH"])
        for at in range(2 * guard + width + 2):
            await _start(dut)
            await ClockCycles(dut.clk, at)
            await FallingEdge(dut.clk)
            dut.abort.value = 1
            await RisingEdge(dut.clk)
            await FallingEdge(dut.clk)
            dut.abort.value = 0
            seen = await _strobes(dut, 2 * guard + width + 4)
            assert seen == {"on": [], "off": [], "done": []}, (at, seen)


@pytest.mark.hdl
@pytest.mark.parametrize(("guard", "width"), [(0, 1), (1, 1), (3, 5), (100, 2), (2, 37)])
def test_rram_pulse(guard: int, width: int, tmp_path: Path) -> None:
    run_module_bench(__file__, "rram_pulse", ["rram_pulse.v"], tmp_path, env={"TB_GUARD": guard, "TB_WIDTH": width})
