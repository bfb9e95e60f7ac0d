"""CocotbTransport: the Transport of docs/protocol.md on the RTL overlay inside a cocotb simulation.

The driver (rramctl.driver.Driver) is synchronous; cocotb is async.  The driver runs in a cocotb
*bridge* thread (``await cocotb.task.bridge(fn)()``, cocotb >= 2.0) and every transport call re-enters
the simulator through ``cocotb.task.resume``: the bridge thread blocks while the coroutine runs on the
scheduler, and the simulator never runs while driver code runs, so the driver needs no change.

Bus functional models come from cocotbext-axi: AxiLiteMaster for the registers, AxiStreamSource for
MM2S, AxiStreamSink for S2MM.  ``transact`` mirrors the AXI DMA: drop stale output, queue the send
words, write the trigger, wait for the send to drain and the output packet (TLAST) or the end of the
operation, then (unlike a real DMA, harmless) wait until STATUS.busy falls, so the driver's status
poll finds the result at once.  Words the overlay did not take are dropped, as a DMA reset would.

cocotb and cocotbext-axi are imported lazily: this module imports without them.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray
from rramctl import regmap as R
from rramctl.transport.base import RegWrite, Transport, TransportError

POLL_CYCLES = 32  # clocks between STATUS polls while an operation runs (ours)


class CocotbTransport(Transport):
    name = "cocotb"

    def __init__(self, axil: Any, source: Any, sink: Any, clock: Any, *, max_cycles: int = 5_000_000) -> None:
        """``axil``: cocotbext.axi.AxiLiteMaster; ``source``/``sink``: AxiStreamSource/AxiStreamSink on the
        overlay's s_axis/m_axis; ``clock``: the clock signal; ``max_cycles``: bound on one transact."""
        from cocotb.task import resume

        self.axil, self.source, self.sink, self.clock = axil, source, sink, clock
        self.max_cycles = max_cycles
        self._resume = resume
        self._closed = False

    @classmethod
    def for_dut(cls, dut: Any, **kwargs: Any) -> CocotbTransport:
        """Attach the bus models to rram_overlay_top's ports (s_axil_*, s_axis_*, m_axis_*, aclk, aresetn)."""
        from cocotbext.axi import AxiLiteBus, AxiLiteMaster, AxiStreamBus, AxiStreamSink, AxiStreamSource

        reset = dut.aresetn
        axil = AxiLiteMaster(AxiLiteBus.from_prefix(dut, "s_axil"), dut.aclk, reset, reset_active_level=False)
        source = AxiStreamSource(AxiStreamBus.from_prefix(dut, "s_axis"), dut.aclk, reset, reset_active_level=False)
        sink = AxiStreamSink(AxiStreamBus.from_prefix(dut, "m_axis"), dut.aclk, reset, reset_active_level=False)
        return cls(axil, source, sink, dut.aclk, **kwargs)

    # ---- the synchronous face (called from a bridge thread) ----------------------------------
    def _live(self) -> None:
        if self._closed:
            raise TransportError("the cocotb transport is closed")

    def _read_reg(self, offset: int) -> int:
        self._live()
        return self._resume(self.read_reg_async)(offset)

    def _write_reg(self, offset: int, value: int) -> None:
        self._live()
        self._resume(self.write_reg_async)(offset, value)

    def _transact(self, words: NDArray[np.uint32], recv_words: int, trigger: RegWrite) -> NDArray[np.uint32]:
        self._live()
        return self._resume(self.transact_async)(words, recv_words, trigger)

    def close(self) -> None:
        self._closed = True

    # ---- the async face (usable directly from cocotb tests) -------------------------------------
    async def read_reg_async(self, offset: int) -> int:
        resp = await self.axil.read(offset, 4)
        if resp.resp != 0:
            raise TransportError(f"AXI read of {offset:#x} answered {resp.resp}")
        return int.from_bytes(resp.data, "little")

    async def write_reg_async(self, offset: int, value: int) -> None:
        resp = await self.axil.write(offset, int(value).to_bytes(4, "little"))
        if resp.resp != 0:
            raise TransportError(f"AXI write of {offset:#x} answered {resp.resp}")

    def dma_reset(self) -> None:
        """Drop every word the stream models still hold, the one on the bus included, as a reset of the
        AXI DMA does (PynqTransport resets its DMA after an error)."""
        for model in (self.source, self.sink):
            model.clear()
            model._handle_reset(True)  # cocotbext-axi's reset path: drops the frame in flight
            model._handle_reset(False)

    async def transact_async(self, send: NDArray[np.uint32], recv_words: int, trigger: RegWrite) -> NDArray[np.uint32]:
        from cocotb.triggers import ClockCycles
        from cocotbext.axi import AxiStreamFrame

        self.sink.clear()
        if send.size:
            await self.source.send(AxiStreamFrame(send.astype("<u4").tobytes()))
        await self.write_reg_async(trigger.offset, trigger.value)
        received = bytearray()
        cycles = 0
        while True:
            while not self.sink.empty():
                frame = self.sink.recv_nowait()
                received += bytes(frame.tdata)
            busy = R.STATUS_BUSY.get(await self.read_reg_async(R.STATUS))
            if not busy and self.sink.empty() and self.sink.idle():
                break
            await ClockCycles(self.clock, POLL_CYCLES)
            cycles += POLL_CYCLES
            if cycles > self.max_cycles:
                raise TransportError(f"the overlay did not finish within {self.max_cycles} cycles")
        if not self.source.empty() or not self.source.idle():
            self.source.clear()  # the overlay refused the rest (error or abort): drop what is queued
        words = np.frombuffer(bytes(received), dtype="<u4").astype(np.uint32)
        return words[:recv_words]
