"""Bench of rram_sample (hdl/rtl/rram_sample.v): settle, then one ADC conversion.

A model of the ADS8324 reader (busy from the clock after `adc_go` for a random time, then a code from a
list with both rails) and of its rate gap (busy for a while before a sample starts).  For each settle time
of the pytest matrix: `adc_go` rises exactly `settle` + 1 clocks after the clock that takes `start` when the
reader is free, and never while it is busy; `done` once per sample, after the conversion; `code` and `rail`
as converted; `abort` at every clock of a sample leaves no `adc_go` or `done` after it and `idle` once the
reader is free."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from bench_util import env_int, reset, run_module_bench

CODE_MIN, CODE_MAX = -8192, 8191  # ADS8324 rails (docs/protocol.md)

try:
    import cocotb
    from cocotb.triggers import FallingEdge, RisingEdge, Timer
except ImportError:  # collected by pytest without cocotb: the runner below skips
    cocotb = None  # type: ignore[assignment]


if cocotb is not None:

    class Adc:
        """The reader: busy for `conv` clocks after each adc_go; `gap(n)` holds busy n clocks (rate gap)."""

        def __init__(self, dut, rng: random.Random) -> None:
            self.dut, self.rng, self.busy_left, self.starts = dut, rng, 0, 0
            dut.adc_busy.value = 0
            dut.adc_code.value = 0
            cocotb.start_soon(self._run())

        def gap(self, n: int) -> None:
            self.busy_left = n
            self.dut.adc_busy.value = int(n > 0)

        async def _run(self) -> None:
            dut = self.dut
            while True:
                await RisingEdge(dut.clk)
                go = int(dut.adc_go.value)
                await Timer(1, unit="ns")
                if go:
                    assert self.busy_left == 0, "adc_go while the reader is busy"
                    self.starts += 1
                    self.busy_left = self.rng.randint(1, 12)
                    code = self.rng.choice([CODE_MIN, CODE_MAX, 0, -1, self.rng.randint(CODE_MIN, CODE_MAX)])
                    dut.adc_code.value = code
                elif self.busy_left:
                    self.busy_left -= 1
                dut.adc_busy.value = int(self.busy_left > 0)

    async def _setup(dut) -> Adc:
        dut.start.value = dut.abort.value = 0
        dut.settle.value = env_int("TB_SETTLE")
        await reset(dut)
        return Adc(dut, random.Random(env_int("TB_SEED")))

    async def _pulse(dut, signal) -> None:
        signal.value = 1
        await FallingEdge(dut.clk)
        signal.value = 0

    @cocotb.test()
    async def settle_then_one_conversion(dut) -> None:
        adc = await _setup(dut)
        settle, rng = env_int("TB_SETTLE"), random.Random(env_int("TB_SEED") + 1)
        for n in range(12):
            gap = rng.choice([0, 0, 3, settle + 5])
            adc.gap(gap)
            await _pulse(dut, dut.start)
            go_at, done_at, clock = None, None, 0
            while done_at is None:
                clock += 1
                if int(dut.adc_go.value):
                    assert go_at is None
                    go_at = clock
                if int(dut.done.value):
                    code = dut.adc_code.value.to_signed()
                    assert int(dut.rail.value) == (code in (CODE_MIN, CODE_MAX))
                    done_at = clock
                await FallingEdge(dut.clk)
            assert go_at is not None and go_at >= settle + 2 and go_at < done_at, (n, go_at, done_at)
            if gap <= settle:  # counted from the falling edge before the clock that takes `start`
                assert go_at == settle + 2, (n, gap, go_at)
            assert dut.code.value.to_signed() == code and adc.starts == n + 1
            assert int(dut.idle.value) == 1

    @cocotb.test()
    async def abort_at_every_clock(dut) -> None:
        await _setup(dut)  # the reader model runs on
        settle = env_int("TB_SETTLE")
        for at in range(settle + 16):
            await _pulse(dut, dut.start)
            for _ in range(at):
                await FallingEdge(dut.clk)
            await _pulse(dut, dut.abort)
            for _ in range(settle + 20):
                assert not int(dut.done.value) and not int(dut.adc_go.value), at
                await FallingEdge(dut.clk)
            assert int(dut.idle.value) == 1, at  # a conversion already started has ended in the reader


@pytest.mark.hdl
@pytest.mark.parametrize("settle", [0, 1, 5, 40])
def test_rram_sample(settle: int, tmp_path: Path) -> None:
    run_module_bench(__file__, "rram_sample", ["rram_sample.v"], tmp_path, env={"TB_SEED": settle, "TB_SETTLE": settle})
