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
from bench_util import Peripheral, env_int, pulse, reset, run_module_bench

CODE_MIN, CODE_MAX = -8192, 8191  # ADS8324 rails (docs/protocol.md)

try:
    import cocotb
    from cocotb.triggers import FallingEdge
except ImportError:  # collected by pytest without cocotb: the runner below skips
    cocotb = None  # type: ignore[assignment]


if cocotb is not None:

    async def _setup(dut) -> Peripheral:
        """The reader model: busy for 1..12 clocks after each adc_go, converting a code from a list with both
        rails; `gap(n)` is its rate gap."""
        dut.start.value = dut.abort.value = dut.adc_code.value = 0
        dut.settle.value = env_int("TB_SETTLE")
        await reset(dut)
        rng = random.Random(env_int("TB_SEED"))

        def convert(_: object) -> None:
            dut.adc_code.value = rng.choice([CODE_MIN, CODE_MAX, 0, -1, rng.randint(CODE_MIN, CODE_MAX)])

        return Peripheral(dut, dut.adc_busy, lambda: 1 if int(dut.adc_go.value) else None, rng, longest=12,
                          on_command=convert)  # fmt: skip

    @cocotb.test()
    async def settle_then_one_conversion(dut) -> None:
        adc = await _setup(dut)
        settle, rng = env_int("TB_SETTLE"), random.Random(env_int("TB_SEED") + 1)
        for n in range(12):
            gap = rng.choice([0, 0, 3, settle + 5])
            adc.gap(gap)
            await pulse(dut, dut.start)
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
            assert dut.code.value.to_signed() == code and len(adc.seen) == n + 1
            assert int(dut.idle.value) == 1

    @cocotb.test()
    async def abort_at_every_clock(dut) -> None:
        await _setup(dut)  # the reader model runs on
        settle = env_int("TB_SETTLE")
        for at in range(settle + 16):
            await pulse(dut, dut.start)
            for _ in range(at):
                await FallingEdge(dut.clk)
            await pulse(dut, dut.abort)
            for _ in range(settle + 20):
                assert not int(dut.done.value) and not int(dut.adc_go.value), at
                await FallingEdge(dut.clk)
            assert int(dut.idle.value) == 1, at  # a conversion already started has ended in the reader


@pytest.mark.hdl
@pytest.mark.parametrize("settle", [0, 1, 5, 40])
def test_rram_sample(settle: int, tmp_path: Path) -> None:
    run_module_bench(__file__, "rram_sample", ["rram_sample.v"], tmp_path, env={"TB_SEED": settle, "TB_SETTLE": settle})
