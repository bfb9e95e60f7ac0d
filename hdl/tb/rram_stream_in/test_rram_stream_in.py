"""Bench of rram_stream_in (hdl/rtl/rram_stream_in.v): the sequencer's AXI-Stream slave (MM2S).

An AxiStreamSource (cocotbext-axi) with a seeded idle inserter (TVALID gaps, the pytest matrix over the
idle probability) sends packets that are short, exact or long for the operation's `need`; a model of the
sequencer fetches one word at a time with gaps of its own (clocks with `fetch` low), then drains what is
left.  Checked: every word is taken once and in order, on the clock `take` says; `premature` exactly on a
TLAST before `need` words; `open` exactly while the packet's TLAST has not come; TREADY only while `fetch`
or `drain`; the drain ends on the TLAST word and takes nothing of the next packet."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from bench_util import env_int, pauses, reset, run_module_bench

try:
    import cocotb
    from cocotb.triggers import FallingEdge, RisingEdge, Timer
    from cocotbext.axi import AxiStreamBus, AxiStreamSource
except ImportError:  # collected by pytest without cocotb: the runner below skips
    cocotb = None  # type: ignore[assignment]


if cocotb is not None:

    async def _setup(dut) -> AxiStreamSource:
        dut.start.value = dut.fetch.value = dut.drain.value = dut.need.value = 0
        source = AxiStreamSource(AxiStreamBus.from_prefix(dut, "s"), dut.clk, dut.rst_n, reset_active_level=False)
        source.set_pause_generator(pauses(env_int("TB_SEED"), env_int("TB_IDLE") / 100))
        await reset(dut)
        return source

    async def _until(dut, signal) -> None:
        """From a falling edge with the request set: on to the falling edge after the clock `signal` was high."""
        while True:
            await Timer(1, unit="ns")
            assert int(dut.s_tready.value) == 1
            hit = int(signal.value)
            await RisingEdge(dut.clk)
            await FallingEdge(dut.clk)
            if hit:
                return

    async def _gap(dut, rng: random.Random) -> None:
        for _ in range(rng.choice([0, 0, 1, 3])):  # the sequencer busy elsewhere: TREADY low
            await Timer(1, unit="ns")
            assert int(dut.s_tready.value) == 0
            await FallingEdge(dut.clk)

    @cocotb.test()
    async def words_in_order_premature_and_drain(dut) -> None:
        rng = random.Random(env_int("TB_SEED"))
        source = await _setup(dut)
        for _ in range(16):
            need = rng.randint(1, 12)
            n = rng.choice([need, need, rng.randint(1, need), need + rng.randint(1, 6)])  # exact, short, long
            words = [rng.getrandbits(32) for _ in range(n)]
            dut.need.value, dut.start.value = need, 1
            await FallingEdge(dut.clk)
            dut.start.value = 0
            assert int(dut.open.value) == 0
            await source.send(b"".join(w.to_bytes(4, "little") for w in words))
            for i in range(min(n, need)):
                await _gap(dut, rng)
                dut.fetch.value = 1
                await _until(dut, dut.take)
                dut.fetch.value = 0
                assert int(dut.word.value) == words[i], (need, n, i)
                assert int(dut.premature.value) == (i == n - 1 and n < need), (need, n, i)
                assert int(dut.open.value) == (i < n - 1), (need, n, i)
            if n > need:  # the operation ends with the packet open: drain to TLAST
                await _gap(dut, rng)
                dut.drain.value = 1
                await _until(dut, dut.drained)
                dut.drain.value = 0
            await Timer(1, unit="ns")
            assert source.empty() and int(dut.s_tready.value) == 0, (need, n)


@pytest.mark.hdl
@pytest.mark.parametrize(("seed", "idle"), [(1, 0), (2, 30), (3, 70)])
def test_rram_stream_in(seed: int, idle: int, tmp_path: Path) -> None:
    run_module_bench(__file__, "rram_stream_in", ["rram_stream_in.v"], tmp_path, env={"TB_SEED": seed, "TB_IDLE": idle})
