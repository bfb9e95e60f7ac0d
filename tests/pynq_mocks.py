"""A mocked PYNQ board for tests, the way PYNQ's own tests mock devices (PYNQ tests/mock_devices.py):
a ``pynq.Device`` subclass with the ``REGISTER_RW`` capability that real ``pynq.MMIO``/``DefaultIP``/
``pynq.lib.dma.DMA`` objects talk to (``device=`` in their description), and an ``allocate`` that
hands out real ``pynq.buffer.PynqBuffer`` objects.

Behind the registers sits a model of the PL:
- the overlay's control block at ``IP_BASE``, forwarded to any object with read_reg/write_reg/
  push_stream/pop_stream (the EmulatedOverlay, or ``LoopbackOverlay`` below);
- an AXI DMA in simple mode at ``DMA_BASE`` with the PG021 registers pynq's driver uses
  (DMACR/DMASR/SA/DA/LENGTH per channel); writing LENGTH starts a transfer; S2MM ends at TLAST
  (the overlay's output ended) or when its length is filled, and LENGTH then reads the bytes moved;
  MM2S offers its words to the overlay (``push_stream``: TVALID) and ends only once the overlay has
  taken all but at most ``MM2S_FIFO_WORDS`` of them (TREADY; the rest wait in the DMA's FIFO), so a
  packet the overlay never takes (a refused START, an abort, CELL_COUNT 0) leaves MM2S busy until
  the DMA's soft reset, which withdraws the words still offered, as on a board;
- DDR separate from the CPU's view of each buffer: ``flush`` copies CPU -> DDR, ``invalidate``
  DDR -> CPU, and the DMA only ever sees DDR, so a missing cache sync shows up as wrong data.

Every host access is logged in order (``board.log``) for tests to assert on.
Import only after ``pytest.importorskip("pynq")``.
"""

from __future__ import annotations

import struct
import time
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import pynq
from numpy.typing import NDArray
from rramctl import regmap as R
from rramctl.hw.linedrive import BitplaneStream

IP_BASE = 0x4000_0000  # (ours) where the mock maps the overlay's control block
IP_RANGE = 0x1_0000
DMA_BASE = 0x4040_0000  # (ours) where the mock maps the AXI DMA
DMA_RANGE = 0x1_0000
DDR_BASE = 0x1000_0000  # (ours) first buffer address
PAGE = 4096

# PG021 register offsets (simple mode) relative to each channel's base (MM2S 0x00, S2MM 0x30).
DMACR, DMASR, ADDR, ADDR_MSB, LENGTH = 0x00, 0x04, 0x18, 0x1C, 0x28
S2MM_OFFSET = 0x30
SR_HALTED, SR_IDLE, SR_INT_ERR, SR_DEC_ERR = 0x1, 0x2, 0x10, 0x40
CR_RUNSTOP, CR_RESET = 0x1, 0x4
# (ours) words of a send the MM2S channel can hold in its own FIFO: its transfer ends once the overlay has
# taken all but at most this many (a DMA's stream FIFO; the real size depends on the build)
MM2S_FIFO_WORDS = 64


class StreamOverlay(Protocol):
    def read_reg(self, offset: int) -> int: ...
    def write_reg(self, offset: int, value: int) -> None: ...
    def push_stream(self, words: NDArray[np.uint32]) -> None: ...
    def pop_stream(self, n: int) -> NDArray[np.uint32]: ...


class LoopbackOverlay:
    """A tiny stand-in PL for the raw transport tests.

    Default (like the EmulatedOverlay): on CTRL.start it runs to its end at once and emits
    ``emit(input so far)``. ``streaming=True`` models the real PL more closely: after START it
    stays BUSY, turns each input word into ``emit(word)`` as it arrives, and ends once it has
    consumed CELL_COUNT words, so input that arrives in several DMA transfers is handled.

    Input is taken as the RTL takes it (``pending_input`` counts the words offered and not taken): the
    default one takes the whole packet at START, the streaming one word by word as it runs (at most
    CELL_COUNT words; none after its end); neither takes a word while idle, at a START it refused
    (``refuse`` set to an error code: START ends the operation at once with that error, or a START
    while BUSY: STATUS.start_refused) or after CTRL.abort. ``drop_input`` withdraws what is still
    offered (the DMA's soft reset)."""

    def __init__(self, emit: Any = None, *, streaming: bool = False) -> None:
        self.regs: dict[int, int] = {R.ID: R.ID_VALUE.reset}
        self.inbox: list[int] = []
        self.outbox: list[int] = []
        self.emit = emit or (lambda words: (np.asarray(words, np.uint64) + 1).astype(np.uint32))
        self.streaming = streaming
        self.starts = 0
        self.refuse = 0  # test knob: an error code every START ends with at once (a START refused by its parameters)
        self._remaining = 0

    def read_reg(self, offset: int) -> int:
        return self.regs.get(offset, 0)

    def write_reg(self, offset: int, value: int) -> None:
        self.regs[offset] = value
        busy = R.STATUS_BUSY.get(self.regs.get(R.STATUS, 0))
        if offset == R.CTRL and R.CTRL_ABORT.get(value) and busy:
            self._remaining = 0  # CTRL.abort: the operation ends at once with ABORTED; the rest is not taken
            self.regs[R.STATUS] = R.STATUS_ERROR.put(1) | R.STATUS_ERR_CODE.put(6)
        elif offset == R.CTRL and R.CTRL_START.get(value) and busy:
            self.regs[R.STATUS] |= R.STATUS_START_REFUSED.put(1)  # ignored: the running operation goes on
        elif offset == R.CTRL and R.CTRL_START.get(value) and self.refuse:
            self._remaining = 0  # refused: ends at once with the error, takes no word
            self.regs[R.STATUS] = R.STATUS_ERROR.put(1) | R.STATUS_ERR_CODE.put(self.refuse)
        elif offset == R.CTRL and R.CTRL_START.get(value):
            self.starts += 1
            self._remaining = self.regs.get(R.CELL_COUNT, 0) if self.streaming else len(self.inbox)
            self.regs[R.STATUS] = R.STATUS_BUSY.put(1)
            self.regs[R.OUT_WORDS] = 0  # the words of this operation, as the PL counts them
            self._run()

    def push_stream(self, words: NDArray[np.uint32]) -> None:
        self.inbox.extend(int(w) for w in words)
        if R.STATUS_BUSY.get(self.regs.get(R.STATUS, 0)):
            self._run()

    def pending_input(self) -> int:
        """Words offered on the input stream and not (yet) taken."""
        return len(self.inbox)

    def drop_input(self) -> None:
        """The offered words are withdrawn (the DMA's soft reset drops its transfer and its FIFO)."""
        self.inbox = []

    def _run(self) -> None:
        take = min(self._remaining, len(self.inbox))
        words, self.inbox = self.inbox[:take], self.inbox[take:]
        self._remaining -= take
        if take or not self.streaming:
            out = [int(w) for w in self.emit(np.array(words, dtype=np.uint32))]
            self.outbox.extend(out)
            self.regs[R.OUT_WORDS] = self.regs.get(R.OUT_WORDS, 0) + len(out)
        if self._remaining == 0:
            self.regs[R.STATUS] = R.STATUS_DONE.put(1)

    def pop_stream(self, n: int) -> NDArray[np.uint32]:
        out, self.outbox = self.outbox[:n], self.outbox[n:]
        return np.array(out, dtype=np.uint32)


class ProtocolShapedOverlay(LoopbackOverlay):
    """A stand-in for the EmulatedOverlay in driver tests: answers ID/VERSION, and on START emits as
    many words as docs/protocol.md says the operation returns (PROGRAM: CELL_COUNT, READ:
    ROW_COUNT*COL_COUNT, MULTIPLY: BATCH*COL_COUNT, else none), each a hash of the input and the
    registers, so a wrong payload or parameter changes the output. No chip physics."""

    _OUTPUT = {4: lambda r: r.get(R.CELL_COUNT, 0), 5: lambda r: r.get(R.ROW_COUNT, 0) * r.get(R.COL_COUNT, 0),
               6: lambda r: r.get(R.BATCH, 0) * r.get(R.COL_COUNT, 0)}  # fmt: skip

    def __init__(self) -> None:
        super().__init__(emit=self._answer)
        self.regs[R.VERSION] = R.VERSION_MAJOR.put(R.VERSION_MAJOR.reset)

    def _answer(self, words: NDArray[np.uint32]) -> NDArray[np.uint32]:
        n = self._OUTPUT.get(self.regs.get(R.OPCODE, 0), lambda r: 0)(self.regs)
        key = np.uint64(int(np.sum(words, dtype=np.uint64)) + 31 * sum(self.regs.values()) + len(words))
        with np.errstate(over="ignore"):
            h = (np.arange(n, dtype=np.uint64) + key) * np.uint64(0x9E3779B97F4A7C15)
        return (h >> np.uint64(40)).astype(np.uint32) & np.uint32(0x3FFF)


class DirectTransport:
    """The reference path without pynq: registers and streams straight to the overlay model,
    as the emulator transport does (push the send words, write the trigger, pop the output)."""

    name = "direct"

    def __init__(self, overlay: StreamOverlay) -> None:
        self.overlay = overlay
        self.log: list[tuple] = []

    def read_reg(self, offset: int) -> int:
        return int(self.overlay.read_reg(offset))

    def write_reg(self, offset: int, value: int) -> None:
        self.log.append(("ip_write", offset, value))
        self.overlay.write_reg(offset, value)

    def transact(self, send: Any, recv_words: int, trigger: Any) -> NDArray[np.uint32]:
        if isinstance(send, BitplaneStream):  # a MULTIPLY's bit-planes: the chain frames a board gets
            send = send.words()
        words = np.zeros(0, np.uint32) if send is None else np.asarray(send, np.uint32).ravel()
        if len(words):
            self.log.append(("mm2s", words.copy()))
            self.overlay.push_stream(words)
        self.write_reg(*trigger)
        return np.asarray(self.overlay.pop_stream(recv_words), np.uint32)

    def close(self) -> None:
        pass


@dataclass
class _DmaChannel:
    name: str
    cr: int = 0
    busy: bool = False  # a transfer is in flight
    error: int = 0
    addr: int = 0
    length: int = 0  # bytes requested, then bytes moved once done


@dataclass
class _Packet:
    """One operation's output stream as the S2MM side sees it."""

    words: NDArray[np.uint32] = field(default_factory=lambda: np.zeros(0, np.uint32))
    total: int = 0
    ended: bool = False  # TLAST seen


@dataclass
class _Ddr:
    """One allocation: the CPU's view (the PynqBuffer) and what the DMA sees (its DDR copy)."""

    address: int
    host: NDArray[np.uint8]
    ddr: NDArray[np.uint8] = field(init=False)

    def __post_init__(self) -> None:
        self.ddr = np.zeros_like(self.host)


class MockRramBoard(pynq.Device):
    """The mocked board: registers of the overlay + AXI DMA, and buffer allocation."""

    def __init__(self, overlay: StreamOverlay, *, tag: str = "mock_rram_board") -> None:
        super().__init__(tag)
        self.capabilities = {"REGISTER_RW": True}
        self.overlay = overlay
        self.log: list[tuple] = []
        self.mm2s = _DmaChannel("mm2s")
        self.s2mm = _DmaChannel("s2mm")
        self.allocations: list[_Ddr] = []
        self._next_address = DDR_BASE
        self._packets: list[_Packet] = []  # output streams (one per START) not yet taken by S2MM
        self.stall_s2mm = False  # test knob: the receive side never completes
        self.stall_mm2s = False  # test knob: the send never reaches the overlay (MM2S never ends before a reset)
        self.fail_next_transfer = 0  # test knob: DMASR error bits for the next transfer started
        self.op_time_s = 0.0  # test knob: after each START the host sees STATUS BUSY (line low) this long
        self._settles_at = 0.0
        self.flushes = 0
        self.invalidates = 0

    # ---- descriptions as pynq's .hwh parser gives them ------------------------------------
    def ip_description(self) -> dict[str, Any]:
        return {"phys_addr": IP_BASE, "addr_range": IP_RANGE, "device": self,
                "type": "xilinx.com:module_ref:rram_overlay_top:1.0"}  # fmt: skip

    def dma_description(self, length_width: int = 26) -> dict[str, Any]:
        parameters = {"c_include_sg": "0", "c_sg_length_width": str(length_width), "c_include_mm2s": "1",
                      "c_include_s2mm": "1", "c_m_axi_mm2s_data_width": "32", "c_m_axi_s2mm_data_width": "32",
                      "c_include_mm2s_dre": "0", "c_include_s2mm_dre": "0", "c_micro_dma": "0"}  # fmt: skip
        return {"phys_addr": DMA_BASE, "addr_range": DMA_RANGE, "device": self, "parameters": parameters,
                "interrupts": {}, "type": "xilinx.com:ip:axi_dma:7.1"}  # fmt: skip

    # ---- REGISTER_RW capability --------------------------------------------------------------
    def read_registers(self, address: int, length: int) -> bytes:
        assert length == 4, "the overlay and the DMA have 32-bit registers only"
        if IP_BASE <= address < IP_BASE + IP_RANGE:
            value = self.overlay.read_reg(address - IP_BASE)
            if address - IP_BASE == R.STATUS and self._packets:
                value = R.STATUS_BUSY.put(1)  # as the RTL: DONE/ERROR rise only once S2MM took the last word
            elif address - IP_BASE == R.STATUS and not self.settled():
                value = R.STATUS_BUSY.put(1)  # the operation's board time (op_time_s) has not passed
            self.log.append(("ip_read", address - IP_BASE))
        elif DMA_BASE <= address < DMA_BASE + DMA_RANGE:
            value = self._dma_read(address - DMA_BASE)
        else:
            raise AssertionError(f"read of unmapped address {address:#x}")
        return struct.pack("<I", value & 0xFFFF_FFFF)

    def write_registers(self, address: int, data: bytes) -> None:
        assert len(data) == 4, "the overlay and the DMA have 32-bit registers only"
        (value,) = struct.unpack("<I", data)
        if IP_BASE <= address < IP_BASE + IP_RANGE:
            offset = address - IP_BASE
            self.log.append(("ip_write", offset, value))
            if offset == R.CTRL and R.CTRL_ABORT.get(value):
                self._packets.clear()  # CTRL.abort drops the word waiting on a stalled S2MM (TVALID falls)
            self.overlay.write_reg(offset, value)
            if offset == R.CTRL and R.CTRL_START.get(value):
                self._settles_at = time.monotonic() + self.op_time_s
                self._packets.append(_Packet())
                self._collect_output()
        elif DMA_BASE <= address < DMA_BASE + DMA_RANGE:
            self._dma_write(address - DMA_BASE, value)
        else:
            raise AssertionError(f"write of unmapped address {address:#x}")

    def settled(self) -> bool:
        """The last START's board time (``op_time_s``) has passed: gate an interrupt line with it."""
        return time.monotonic() >= self._settles_at

    # ---- the AXI DMA model -------------------------------------------------------------------
    def _channel(self, offset: int) -> tuple[_DmaChannel, int]:
        return (self.s2mm, offset - S2MM_OFFSET) if offset >= S2MM_OFFSET else (self.mm2s, offset)

    def _dma_read(self, offset: int) -> int:
        ch, reg = self._channel(offset)
        if reg == DMACR:
            return ch.cr
        if reg == DMASR:
            if ch is self.s2mm and ch.busy:
                self._s2mm_progress()
            elif ch is self.mm2s and ch.busy:
                self._mm2s_progress()
            halted = 0 if ch.cr & CR_RUNSTOP else SR_HALTED
            idle = 0 if ch.busy or ch.error else SR_IDLE
            return halted | idle | ch.error
        if reg == ADDR:
            return ch.addr & 0xFFFF_FFFF
        if reg == LENGTH:
            return ch.length
        return 0

    def _dma_write(self, offset: int, value: int) -> None:
        ch, reg = self._channel(offset)
        if reg == DMACR:
            if value & CR_RESET:  # PG021: soft reset resets both channels; the bit self-clears
                self.log.append(("dma_reset",))
                # the words the overlay has not taken are withdrawn: those of a transfer still running and those a
                # finished one left in the DMA's stream FIFO
                _drop_input(self.overlay)
                for c in (self.mm2s, self.s2mm):
                    c.cr, c.busy, c.error = 0, False, 0
                return
            ch.cr = value
        elif reg == ADDR:
            ch.addr = value
        elif reg == ADDR_MSB:
            assert value == 0, "the mock DDR is 32-bit addressed"
        elif reg == LENGTH:
            self._start(ch, value)

    def _start(self, ch: _DmaChannel, nbytes: int) -> None:
        assert ch.cr & CR_RUNSTOP, f"{ch.name} LENGTH written while the channel is halted"
        assert not ch.busy, f"{ch.name} LENGTH written while a transfer is in flight"
        ch.length, ch.error = nbytes, 0
        if self.fail_next_transfer:
            ch.error, self.fail_next_transfer = self.fail_next_transfer, 0
            self.log.append((ch.name, "error", ch.error))
            return
        if nbytes == 0:
            ch.error = SR_INT_ERR
            return
        if ch is self.mm2s and self.stall_mm2s:
            self.log.append(("mm2s_stalled", ch.addr, nbytes))
            ch.busy = True
            return
        if ch is self.mm2s:
            words = self._ddr_words(ch.addr, nbytes)
            self.log.append(("mm2s", ch.addr, nbytes, words.copy()))
            ch.busy = True
            self.overlay.push_stream(words)  # offered (TVALID): the overlay takes them as it runs
            self._collect_output()
            self._mm2s_progress()
        else:
            self.log.append(("s2mm", ch.addr, nbytes))
            ch.busy = True
            self._s2mm_progress()

    def _mm2s_progress(self) -> None:
        """The send ends once the overlay has taken all but a FIFO's worth (``MM2S_FIFO_WORDS``) of what was
        offered; LENGTH keeps the bytes asked for (PG021: MM2S LENGTH is not updated)."""
        ch = self.mm2s
        if self.stall_mm2s or _pending_input(self.overlay) > MM2S_FIFO_WORDS:
            return
        ch.busy = False
        self.log.append(("mm2s_done", ch.length, _pending_input(self.overlay)))

    def _collect_output(self) -> None:
        """Move what the overlay has produced into the current packet; the packet ends (TLAST)
        when the operation is over. An operation without output sends no beats: no packet."""
        if not self._packets or self._packets[-1].ended:
            return
        packet = self._packets[-1]
        while len(chunk := self.overlay.pop_stream(1 << 16)):
            packet.words = np.concatenate([packet.words, np.asarray(chunk, np.uint32)])
            packet.total += len(chunk)
        if not R.STATUS_BUSY.get(self.overlay.read_reg(R.STATUS)):
            packet.ended = True
            if packet.total == 0:
                self._packets.pop()

    def _s2mm_progress(self) -> None:
        """Move queued output into DDR; the transfer ends when its length is filled or at TLAST."""
        ch = self.s2mm
        if self.stall_s2mm or not self._packets:
            return
        want = ch.length // 4
        packet = self._packets[0]
        if len(packet.words) < want and not packet.ended:
            return  # the overlay is still producing
        words, packet.words = packet.words[:want], packet.words[want:]
        tlast = packet.ended and len(packet.words) == 0
        if tlast:
            self._packets.pop(0)
        self._ddr_store(ch.addr, words)
        ch.length = 4 * len(words)
        ch.busy = False
        self.log.append(("s2mm_done", 4 * len(words), tlast))

    # ---- memory ----------------------------------------------------------------------------------
    def allocate(self, shape: Any, dtype: Any, **kwargs: Any) -> pynq.buffer.PynqBuffer:
        assert not kwargs, f"unexpected allocate arguments {kwargs}"
        address = self._next_address
        buf = pynq.buffer.PynqBuffer(shape, dtype, device=self, bo=len(self.allocations), coherent=False,
                                     device_address=address)  # fmt: skip
        self.allocations.append(_Ddr(address, np.asarray(buf).reshape(-1).view(np.uint8)))
        self._next_address += -(-buf.nbytes // PAGE) * PAGE
        self.log.append(("allocate", tuple(np.atleast_1d(shape)), np.dtype(dtype).name))
        return buf

    def flush(self, bo: int, offset: int, vaddr: int, length: int) -> None:
        a = self.allocations[bo]
        a.ddr[offset : offset + length] = a.host[offset : offset + length]
        self.flushes += 1

    def invalidate(self, bo: int, offset: int, vaddr: int, length: int) -> None:
        a = self.allocations[bo]
        a.host[offset : offset + length] = a.ddr[offset : offset + length]
        self.invalidates += 1

    def _find(self, address: int, nbytes: int) -> tuple[_Ddr, int]:
        for a in self.allocations:
            if a.address <= address and address + nbytes <= a.address + a.host.size:
                return a, address - a.address
        raise AssertionError(f"DMA to unallocated memory {address:#x}+{nbytes}")

    def _ddr_words(self, address: int, nbytes: int) -> NDArray[np.uint32]:
        a, off = self._find(address, nbytes)
        return a.ddr[off : off + nbytes].view(np.uint32).copy()

    def _ddr_store(self, address: int, words: NDArray[np.uint32]) -> None:
        a, off = self._find(address, 4 * len(words))
        a.ddr[off : off + 4 * len(words)] = np.asarray(words, np.uint32).view(np.uint8)

    # ---- views for assertions ----------------------------------------------------------------------
    def ip_writes(self) -> list[tuple[int, int]]:
        return [(e[1], e[2]) for e in self.log if e[0] == "ip_write"]

    def events(self, *kinds: str) -> list[tuple]:
        return [e for e in self.log if e[0] in kinds]


def _pending_input(overlay: Any) -> int:
    """Words offered to the overlay's input stream that it has not taken: ``pending_input()`` where it has one,
    else (the EmulatedOverlay) the packets it holds that no operation has taken yet."""
    if hasattr(overlay, "pending_input"):
        return int(overlay.pending_input())
    return sum(len(p) for p in getattr(overlay, "_in", ()))


def _drop_input(overlay: Any) -> None:
    """Withdraw what the overlay has not taken (the DMA's soft reset drops the transfer in flight)."""
    if hasattr(overlay, "drop_input"):
        overlay.drop_input()
    elif hasattr(overlay, "_in"):
        overlay._in.clear()


class MockInterrupt:
    """``pynq.Interrupt``'s interface (``await wait()`` returns once the level line is high) on a line
    the test supplies (e.g. ``EmulatedOverlay.irq``); counts the waits.  Like pynq's (pynq/interrupt.py), it
    holds one ``asyncio.Event`` made at construction, which binds to the first event loop that waits on it:
    a wait on another loop raises RuntimeError, as on a board.

    Like the AXI interrupt controller behind it, the pending bit latches: pynq's handler acknowledges while the
    overlay's level line is still high (it stays high until CTRL.clear), so the bit is set again at once and the
    next ``wait()`` returns immediately, whatever the line is then (``stale`` counts those returns)."""

    def __init__(self, line: Any) -> None:
        import asyncio

        self.line = line
        self.waits = 0
        self.stale = 0
        self.latched = False  # the intc's pending bit, set again by the acknowledge of a line still high
        self.event = asyncio.Event()

    async def wait(self) -> None:
        import asyncio
        import contextlib

        self.waits += 1
        if self.latched:  # enabling the line with its pending bit set interrupts at once
            self.latched = False
            self.stale += 1
            await asyncio.sleep(0)
            return
        while not self.line():
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self.event.wait(), 0.001)
        self.latched = True  # acknowledged while still high: latched again


class LoopBoundInterrupt:
    """A ``pynq.Interrupt`` as PYNQ serves one per process: its UIO reader (``pynq.uio.UioController``, cached
    per IRQ for the process) sits on the event loop that was current when the first overlay bound it, so a wait
    on any other loop never sees the line; ``invalidate()`` models a later overlay load (``Interrupt invalidated
    by Overlay change``)."""

    def __init__(self, line: Any, reader_loop: Any) -> None:
        self.line = line
        self.reader_loop = reader_loop
        self.valid = True
        self.waits = 0

    def invalidate(self) -> None:
        self.valid = False

    async def wait(self) -> None:
        import asyncio

        self.waits += 1
        if not self.valid:
            raise RuntimeError("Interrupt invalidated by Overlay change")
        while not (asyncio.get_running_loop() is self.reader_loop and self.line()):
            await asyncio.sleep(0.001)


def make_pynq_transport(
    overlay: StreamOverlay, *, length_width: int = 26, timeout_s: float = 2.0, irq: Any = None
) -> Any:
    """A PynqTransport over real pynq driver objects (RramOverlayIP, pynq.lib.dma.DMA) on a mock board."""
    from pynq.lib.dma import DMA
    from rramctl.transport.pynq_transport import PynqTransport, rram_ip_class

    board = MockRramBoard(overlay)
    ip = rram_ip_class()(board.ip_description())
    dma = DMA(board.dma_description(length_width))
    transport = PynqTransport(
        ip, dma, allocate=lambda **kw: pynq.allocate(target=board, **kw), timeout_s=timeout_s, irq=irq
    )
    transport.board = board  # type: ignore[attr-defined]
    return transport
