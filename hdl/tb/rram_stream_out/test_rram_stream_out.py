"""Bench of rram_stream_out (hdl/rtl/rram_stream_out.v): the sequencer's AXI-Stream master (S2MM) with the
one-word holding register.

A model of the sequencer pushes packets (0..20 words, gaps of its own between pushes) and flushes; an
AxiStreamSink (cocotbext-axi) with a seeded back-pressure inserter (TREADY low, the pytest matrix over its
probability) receives them.  Checked: each packet arrives whole, in order, with TLAST on its last word only
(the sink cuts frames at TLAST); `count` counts the pushes; `empty` after the flush once the last word is
taken; a protocol monitor: while TVALID waits for TREADY, TVALID, TDATA and TLAST hold.  `abort` with the
output stalled drops the held word and the word on the bus (TVALID falls) and the next packet is clean."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from bench_util import env_int, pauses, reset, run_module_bench

try:
    import cocotb
    from cocotb.triggers import FallingEdge, RisingEdge, Timer
    from cocotbext.axi import AxiStreamBus, AxiStreamSink
except ImportError:  # collected by pytest without cocotb: the runner below skips
    cocotb = None  # type: ignore[assignment]


if cocotb is not None:

    async def _setup(dut) -> AxiStreamSink:
        dut.start.value = dut.abort.value = dut.push.value = dut.flush.value = dut.data.value = 0
        sink = AxiStreamSink(AxiStreamBus.from_prefix(dut, "m"), dut.clk, dut.rst_n, reset_active_level=False)
        sink.set_pause_generator(pauses(env_int("TB_SEED"), env_int("TB_STALL") / 100))
        await reset(dut)
        cocotb.start_soon(_monitor(dut))
        return sink

    async def _monitor(dut) -> None:
        """AXI-Stream: a beat offered and not taken stays offered, unchanged (an abort may withdraw it)."""
        held = None
        while True:
            await RisingEdge(dut.clk)
            beat = (int(dut.m_tvalid.value), int(dut.m_tdata.value), int(dut.m_tlast.value))
            if held is not None:
                assert beat == held, (held, beat)
            held = beat if beat[0] and not int(dut.m_tready.value) and not int(dut.abort.value) else None

    async def _strobe(dut, signal, rng: random.Random) -> None:
        """From a falling edge: a gap, then `signal` high until `ready` (the clock it is taken)."""
        for _ in range(rng.choice([0, 0, 1, 4])):
            await FallingEdge(dut.clk)
        signal.value = 1
        while True:
            await Timer(1, unit="ns")
            taken = int(dut.ready.value)
            await FallingEdge(dut.clk)
            if taken:
                break
        signal.value = 0

    async def _start(dut) -> None:
        dut.start.value = 1
        await FallingEdge(dut.clk)
        dut.start.value = 0

    @cocotb.test()
    async def packets_whole_with_tlast_last(dut) -> None:
        rng = random.Random(env_int("TB_SEED"))
        sink = await _setup(dut)
        for _ in range(12):
            words = [rng.getrandbits(32) for _ in range(rng.choice([0, 1, 2, rng.randint(3, 20)]))]
            await _start(dut)
            assert int(dut.count.value) == 0
            for w in words:
                dut.data.value = w
                await _strobe(dut, dut.push, rng)
            assert int(dut.count.value) == len(words)
            await _strobe(dut, dut.flush, rng)
            while not int(dut.empty.value):
                await FallingEdge(dut.clk)
            if words:
                frame = await sink.recv()
                got = [int.from_bytes(frame.tdata[i : i + 4], "little") for i in range(0, len(frame.tdata), 4)]
                assert got == words, (got, words)
            assert sink.empty()

    @cocotb.test()
    async def abort_drops_held_and_stalled_words(dut) -> None:
        rng = random.Random(env_int("TB_SEED"))
        sink = await _setup(dut)
        for n in (1, 2, 5):
            sink.clear_pause_generator()
            sink.pause = True  # the S2MM stalls: nothing is taken
            await _start(dut)
            for i in range(n):
                dut.data.value = i + 1
                dut.push.value = 1
                await FallingEdge(dut.clk)  # at most one word on the bus, one held: later pushes wait
            dut.push.value = 0
            assert int(dut.m_tvalid.value) == (n > 1) and int(dut.empty.value) == 0
            dut.abort.value = 1
            await FallingEdge(dut.clk)
            dut.abort.value = 0
            assert int(dut.m_tvalid.value) == 0 and int(dut.empty.value) == 1
            sink.set_pause_generator(pauses(env_int("TB_SEED") + n, env_int("TB_STALL") / 100))
            words = [rng.getrandbits(32) for _ in range(3)]
            await _start(dut)
            for w in words:
                dut.data.value = w
                await _strobe(dut, dut.push, rng)
            await _strobe(dut, dut.flush, rng)
            frame = await sink.recv()
            assert [int.from_bytes(frame.tdata[i : i + 4], "little") for i in range(0, 12, 4)] == words
            assert len(frame.tdata) == 12 and sink.empty()


@pytest.mark.hdl
@pytest.mark.parametrize(("seed", "stall"), [(1, 0), (2, 30), (3, 70)])
def test_rram_stream_out(seed: int, stall: int, tmp_path: Path) -> None:
    run_module_bench(
        __file__, "rram_stream_out", ["rram_stream_out.v"], tmp_path, env={"TB_SEED": seed, "TB_STALL": stall}
    )
