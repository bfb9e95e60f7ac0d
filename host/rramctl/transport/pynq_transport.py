"""The PYNQ transport: the overlay's AXI4-Lite registers and its AXI DMA streams on a ZYNQ board.

pynq is an optional extra and imported only inside the functions that need it, so importing
rramctl (or this module) never imports pynq. Zynq-7000 boards (PYNQ-Z1/Z2) need
``pynq >= 3.1, < 4``; pynq 4 serves Zynq UltraScale+ only (docs/hardware.md, "Board software versions").

Driver conventions follow PYNQ's own: the overlay's control block is bound by its VLNV to a
``pynq.DefaultIP`` subclass (``RramOverlayIP``, created on first use), registers go through its
MMIO, and the streams go through the AXI DMA driver ``pynq.lib.dma.DMA``
(``sendchannel``/``recvchannel``, ``transfer`` + ``wait``) with buffers from ``pynq.allocate``.
"""

from __future__ import annotations

import asyncio
import atexit
import functools
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path
from types import ModuleType
from typing import Any, NoReturn, Protocol

import numpy as np
from numpy.typing import NDArray

from rramctl import regmap as R
from rramctl.transport.base import RegWrite, Transport, TransportError

# The RTL top module added to the Vivado block design as a module reference gets
# xilinx.com:module_ref:<module>:1.0 (docs/hardware.md, "PYNQ conventions");
# the module name is the HDL's choice - change it here if the top is renamed.
RRAM_OVERLAY_VLNV = "xilinx.com:module_ref:rram_overlay_top:1.0"
AXI_DMA_VLNV = "xilinx.com:ip:axi_dma:7.1"  # Xilinx AXI DMA (PG021)
# PG021: a simple-mode transfer is at most 2**c_sg_length_width - 1 bytes; 26 bits is pynq's default.
DEFAULT_LENGTH_WIDTH = 26
WORD_BYTES = 4
BITFILE_NAME = "rram_overlay.bit"  # (ours) the overlay's file name; the .hwh sits beside it
BITFILE_ENV = "RRAMCTL_BITFILE"  # (ours)
MIN_BUFFER_WORDS = 4096  # (ours) smallest DMA buffer allocated, so small ops never re-allocate
DEFAULT_TIMEOUT_S = 10.0  # (ours) the floor of one transaction's DMA wait (BoardConfig.poll_timeout_s on open)
# (ours) a transaction's DMA wait is the floor plus this many times the operation's board time (op_budget_s)
BUDGET_MARGIN = 2.0
# (ours) how long an abort may take to end the overlay's operation (it waits for one SPI/ADC frame, microseconds)
ABORT_WAIT_S = 0.5
LOCK_ENV = "RRAMCTL_PYNQ_LOCK"  # (ours) overrides the board lock's path (tests)
LOCK_PATH = Path("/run/lock/rramctl-pynq")  # (ours) the advisory lock (flock on <path>.lock) while open
# (ours) how long a DMA channel may still be moving after the overlay has ended its operation (STATUS.busy 0)
# before the transaction gives up on it: the last words and TLAST are on the stream before DONE rises
ENDED_GRACE_S = 0.01
# The FPGA manager of a Zynq running Linux (what PYNQ itself writes bitstreams to).
FPGA_MANAGER = Path("sys/class/fpga_manager/fpga0")
DEVICE_TREE_COMPATIBLE = Path("proc/device-tree/compatible")
# PG021 DMASR bits: 0 halted, 1 idle, 4 DMAIntErr, 5 DMASlvErr, 6 DMADecErr; DMACR bit 2 = soft reset.
_DMACR_RESET = 0x4
_MM2S_DMACR, _MM2S_DMASR, _S2MM_DMASR = 0x00, 0x04, 0x34
_DMA_ERRORS = {0x10: "DMA internal error", 0x20: "DMA slave error", 0x40: "DMA decode error"}


class RegisterIP(Protocol):
    """What the transport needs of the overlay's control block (pynq.DefaultIP has it)."""

    def read(self, offset: int = 0) -> int: ...

    def write(self, offset: int, value: int) -> None: ...


def import_pynq() -> ModuleType:
    """Import pynq, or say clearly that it is missing and how to get it."""
    try:
        import pynq
    except ImportError as e:
        raise TransportError(
            "the pynq backend needs the pynq package, which is not installed: on a Zynq-7000 board "
            "(PYNQ-Z1/Z2) `pip install 'pynq>=3.1,<4'`, on Zynq UltraScale+ `pip install 'pynq>=4'` "
            "(see docs/pynq.md); off the board use --backend emulator"
        ) from e
    return pynq


@functools.cache
def rram_ip_class() -> type:
    """The ``pynq.DefaultIP`` driver bound to the overlay's VLNV (defined once, on first use).

    Defining the class registers it with pynq, so call this before ``pynq.Overlay(...)`` for the
    overlay to hand out an ``RramOverlayIP`` instead of a plain ``DefaultIP``."""
    pynq = import_pynq()

    class RramOverlayIP(pynq.DefaultIP):  # type: ignore[name-defined]
        """The rramctl overlay's control block: registers of docs/registers.md via MMIO."""

        bindto = [RRAM_OVERLAY_VLNV]

        def read(self, offset: int = 0) -> int:
            return int(self.mmio.read(offset))

        def write(self, offset: int, value: int) -> None:
            self.mmio.write(offset, int(value))  # pynq's MMIO takes Python ints only

    return RramOverlayIP


@dataclass(frozen=True)
class BoardInfo:
    """What ``find_board`` saw: a Zynq running Linux with pynq installed."""

    family: str  # "zynq-7000", "zynqmp" or "unknown"
    fpga_manager: Path
    board: str | None  # $BOARD as PYNQ images set it (e.g. "Pynq-Z2"), if set


def find_board(root: Path = Path("/"), environ: dict[str, str] | None = None) -> BoardInfo | None:
    """Is this machine a PYNQ board? A Zynq FPGA manager is present and pynq is importable.

    Looks only at files (never imports pynq), so ``--backend auto`` is cheap: it picks the
    emulator when this returns None. ``root``/``environ`` exist for tests."""
    env = os.environ if environ is None else environ
    manager = root / FPGA_MANAGER
    if not manager.exists() or find_spec("pynq") is None:
        return None
    family = "unknown"
    compatible = root / DEVICE_TREE_COMPATIBLE
    if compatible.is_file():
        text = compatible.read_bytes().decode("ascii", "replace")
        if "xlnx,zynqmp" in text:
            family = "zynqmp"
        elif "xlnx,zynq-7000" in text:
            family = "zynq-7000"
    return BoardInfo(family=family, fpga_manager=manager, board=env.get("BOARD"))


def check_pynq_version(version: str, family: str) -> None:
    """Refuse the pynq/board pairings that cannot work (docs/hardware.md, "Board software versions")."""
    try:
        major = int(version.split(".")[0])
    except ValueError:
        return  # a development build: let pynq itself decide
    if family == "zynq-7000" and major >= 4:
        raise TransportError(f"pynq {version} has no Zynq-7000 support; install 'pynq>=3.1,<4' on this board")
    if major < 3:
        raise TransportError(f"pynq {version} is too old; rramctl needs pynq >= 3.1")


def resolve_bitfile(bitfile: str | Path | None, environ: dict[str, str] | None = None) -> Path:
    """The overlay bitstream: the argument, else $RRAMCTL_BITFILE, else rramctl/overlays/rram_overlay.bit.

    pynq reads the block design from the .hwh beside the .bit (same stem), so both must exist."""
    env = os.environ if environ is None else environ
    tried: list[Path] = []
    if bitfile is not None:
        tried.append(Path(bitfile))
    elif env.get(BITFILE_ENV):
        tried.append(Path(env[BITFILE_ENV]))
    else:
        tried.append(Path(__file__).resolve().parents[1] / "overlays" / BITFILE_NAME)
    path = tried[0]
    if path.suffix != ".bit":
        raise TransportError(f"overlay bitstream {path} must be a .bit file (with its .hwh beside it)")
    if not path.is_file():
        raise TransportError(
            f"overlay bitstream {path} not found; pass its path or set ${BITFILE_ENV} (see docs/pynq.md)"
        )
    hwh = path.with_suffix(".hwh")
    if not hwh.is_file():
        raise TransportError(f"overlay {path} has no {hwh.name} beside it; pynq needs the .hwh to find the IP")
    return path


def _in_running_loop() -> bool:
    """True inside a running event loop (a notebook), where a blocking wait on another loop cannot run."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


_SHARED_LOOP: asyncio.AbstractEventLoop | None = None  # the process's one interrupt loop (_interrupt_loop)


def _interrupt_loop() -> asyncio.AbstractEventLoop | None:
    """The process's one interrupt event loop, made the thread's current one, for PYNQ to put the interrupt's UIO
    reader on when the overlay binds it (``asyncio.get_event_loop()`` in pynq.uio); None inside a running loop (a
    notebook), where the transport polls instead.  The same loop for every ``open`` in the process: PYNQ caches
    the UIO reader per IRQ for the whole process (``_InterruptController._uio_devices``), so it stays on the loop
    that was current at the first open, and a second open on a new loop would never see the interrupt.  Made on
    first use, never replaced, closed at interpreter exit."""
    global _SHARED_LOOP
    if _in_running_loop():
        return None
    if _SHARED_LOOP is None or _SHARED_LOOP.is_closed():
        _SHARED_LOOP = asyncio.new_event_loop()
        atexit.register(_SHARED_LOOP.close)
    asyncio.set_event_loop(_SHARED_LOOP)
    return _SHARED_LOOP


def check_ip(overlay: Any, vlnv: str) -> str:
    """The ``ip_dict`` name of the overlay's one IP whose type matches ``vlnv`` (vendor:library:name; any
    version, since pynq binds a plain DefaultIP to a version it has no driver for, which reads and
    writes registers the same); read from the parsed .hwh, so it works before the bitstream is downloaded."""
    want = vlnv.rsplit(":", 1)[0]
    names = [name for name, d in overlay.ip_dict.items() if str(d.get("type", "")).rsplit(":", 1)[0] == want]
    if len(names) != 1:
        found = ", ".join(sorted(f"{n} ({d.get('type')})" for n, d in overlay.ip_dict.items())) or "none"
        raise TransportError(f"the overlay must hold exactly one {vlnv}, found {len(names)}; its IP: {found}")
    return names[0]


def find_ip(overlay: Any, vlnv: str) -> Any:
    """The one IP of the overlay whose ``ip_dict`` type matches ``vlnv`` (vendor:library:name; any
    version, since pynq binds a plain DefaultIP to a version it has no driver for, which reads and
    writes registers the same)."""
    return functools.reduce(getattr, check_ip(overlay, vlnv).split("/"), overlay)


def dma_max_bytes(dma: Any) -> int:
    """Largest single DMA transfer in bytes, whole words: pynq's ``buffer_max_size`` (from the .hwh's
    c_sg_length_width) where the driver has it, else 2**26 - 1 (PG021)."""
    max_bytes = getattr(dma, "buffer_max_size", None)
    if not isinstance(max_bytes, int) or max_bytes < WORD_BYTES:
        description = getattr(dma, "description", None) or {}
        width = int(description.get("parameters", {}).get("c_sg_length_width", DEFAULT_LENGTH_WIDTH))
        max_bytes = (1 << width) - 1
    return max_bytes - max_bytes % WORD_BYTES


def op_budget_s(read_reg: Callable[[int], int]) -> float:
    """Board time of the operation the registers describe (``rramsim.timing.op_cycles`` at the PL clock, the
    RTL's count): PROGRAM counted with MAX_PULSES pulses for every cell, its worst case; 0.0 for an opcode
    the model has no time for."""
    from rramsim.timing import CLOCK_HZ, op_cycles

    r = {o: int(read_reg(o)) for o in (R.OPCODE, R.CELL_COUNT, R.PULSE_CYCLES, R.SETTLE_CYCLES, R.GUARD_CYCLES,
                                       R.MAX_PULSES, R.ROW_COUNT, R.COL_COUNT, R.BITS, R.BATCH)}  # fmt: skip
    cells, batch = r[R.CELL_COUNT], r[R.BATCH]
    cycles = op_cycles(
        r[R.OPCODE], pulse_cycles=r[R.PULSE_CYCLES], settle_cycles=r[R.SETTLE_CYCLES],
        guard_cycles=r[R.GUARD_CYCLES], cells=cells, pulses=cells * r[R.MAX_PULSES], rows=r[R.ROW_COUNT],
        cols=r[R.COL_COUNT], frames=batch * r[R.BITS], batch=batch,
    )  # fmt: skip
    return cycles / CLOCK_HZ


class _Channel:
    """One DMA direction moving one transaction (one AXI stream packet, ended by TLAST) as one transfer of a
    reused buffer: an overlay packet cannot be cut into several simple-mode transfers (each MM2S transfer ends
    in its own TLAST, which the overlay takes for an early end; PG021: an S2MM packet longer than the programmed
    length is undefined), so a transaction above the DMA's limit is refused before it starts."""

    def __init__(self, channel: Any, name: str, read_status: Callable[[], int]) -> None:
        self.channel = channel
        self.name = name
        self.read_status = read_status  # the channel's DMASR, for error details
        self.buffer: Any = None
        self.total = 0  # words in this transaction
        self.done_words = 0  # words moved
        self.active = 0  # words of the transfer in flight (0 = none)
        self.finished = True

    def begin(self, total: int) -> None:
        self.total, self.done_words, self.active = total, 0, 0
        self.finished = total == 0

    def start(self) -> None:
        self.channel.transfer(self.buffer[: self.total])
        self.active = self.total

    def poll(self) -> bool:
        """True when the transfer in flight is done (fewer words than asked for: the overlay ended early)."""
        if self.finished:
            return True
        if self.channel.error:
            status = self.read_status()
            kinds = ", ".join(v for k, v in _DMA_ERRORS.items() if status & k) or "error"
            raise TransportError(f"{self.name} DMA channel reports {kinds} (DMASR {status:#x})")
        if not self.channel.idle:
            return False
        self.channel.wait()  # returns at once when idle; invalidates S2MM buffers, reads the length
        self.done_words = self._moved_words()
        self.active = 0
        self.finished = True
        return True

    def _moved_words(self) -> int:
        transferred = getattr(self.channel, "transferred", None)
        if not isinstance(transferred, int):  # a pynq without the attribute: assume the whole transfer
            return self.active
        if transferred % WORD_BYTES:
            raise TransportError(f"{self.name} DMA moved {transferred} bytes, not whole 32-bit words")
        return min(transferred // WORD_BYTES, self.active)


class PynqTransport(Transport):
    """Registers through the overlay IP's MMIO, streams through an AXI DMA (docs/protocol.md)."""

    name = "pynq"

    def __init__(
        self,
        ip: RegisterIP,
        dma: Any,
        *,
        allocate: Callable[..., Any] | None = None,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        overlay: Any = None,
        irq: Any = None,
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        """``irq``: the overlay's interrupt (a ``pynq.Interrupt``, bound by PYNQ as the IP's ``irq``
        attribute when the pin reaches the PS); None: the driver polls STATUS.  ``loop``: the event loop PYNQ
        put the interrupt's UIO reader on (``open`` passes the process's one interrupt loop, shared by every
        open); every wait runs on it (None: one of the transport's own, made at the first wait and closed by
        ``close``)."""
        if timeout_s <= 0:
            raise ValueError(f"timeout_s must be positive, got {timeout_s}")
        parameters = (getattr(dma, "description", None) or {}).get("parameters", {})
        if str(parameters.get("c_include_sg", "0")) != "0":
            raise TransportError("the AXI DMA is built with scatter-gather; rramctl drives it in simple mode "
                                 "(c_include_sg = 0: tools/vivado/build_overlay.tcl)")  # fmt: skip
        if getattr(dma, "sendchannel", None) is None or getattr(dma, "recvchannel", None) is None:
            # also a DMA that pynq bound as a plain DefaultIP (another version than axi_dma 7.1): no channels
            raise TransportError("the AXI DMA needs both an MM2S (send) and an S2MM (receive) channel, bound by "
                                 "pynq's DMA driver (xilinx.com:ip:axi_dma:7.1)")  # fmt: skip
        if allocate is None:
            allocate = import_pynq().allocate
        self.ip = ip
        self.dma = dma
        self.overlay = overlay  # kept alive: it owns the loaded bitstream's IP objects
        self.timeout_s = timeout_s
        self.max_transfer_words = dma_max_bytes(dma) // WORD_BYTES
        self._allocate = allocate
        self._send = _Channel(dma.sendchannel, "MM2S (send)", lambda: int(dma.mmio.read(_MM2S_DMASR)))
        self._recv = _Channel(dma.recvchannel, "S2MM (receive)", lambda: int(dma.mmio.read(_S2MM_DMASR)))
        self._broken: str | None = None
        self.irq = irq
        self._loop = loop
        self._owns_loop = False  # the loop is the transport's own (made by wait_interrupt): close() closes it
        self._lock: Any = None  # the board's FileLock, when ``open`` took it

    # ---- opening on a board --------------------------------------------------------------
    @classmethod
    def open(
        cls, bitfile: str | Path | None = None, *, timeout_s: float = DEFAULT_TIMEOUT_S, lock_path: Path | None = None
    ) -> PynqTransport:
        """Take the board lock, parse the overlay (``pynq.Overlay(path, download=False)``), check that it holds the
        control block and the AXI DMA, then download it (the FPGA is reprogrammed only for a design that fits)
        and bind both.  The lock (``flock`` on ``<lock_path>.lock``; default ``$RRAMCTL_PYNQ_LOCK`` or
        /run/lock/rramctl-pynq) is held until ``close``: a second process gets a StateError naming the holder."""
        from rramctl.paths import FileLock

        pynq = import_pynq()
        board = find_board()
        if board is None:
            raise TransportError(
                "no PYNQ board found (no Zynq FPGA manager at /sys/class/fpga_manager/fpga0); "
                "use --backend emulator or a serial:PORT board agent"
            )
        check_pynq_version(str(getattr(pynq, "__version__", "3")), board.family)
        path = resolve_bitfile(bitfile)
        if lock_path is None:
            lock_path = Path(os.environ.get(LOCK_ENV) or LOCK_PATH)
        lock = FileLock(lock_path, "the PYNQ board (overlay and AXI DMA)", wait_s=0.0).acquire()
        try:
            rram_ip_class()  # register the driver before the overlay binds its IP
            loop = _interrupt_loop()  # before the overlay: PYNQ puts the interrupt's UIO reader on the current loop
            try:
                overlay = pynq.Overlay(str(path), download=False)
            except Exception as e:  # pynq raises many kinds here (parser, device, permission)
                raise TransportError(f"loading overlay {path} failed: {e}") from e
            check_ip(overlay, RRAM_OVERLAY_VLNV)  # both before the download: a wrong design never reaches the FPGA
            check_ip(overlay, AXI_DMA_VLNV)
            try:
                overlay.download()
            except Exception as e:
                raise TransportError(f"downloading overlay {path} failed: {e}") from e
            ip = find_ip(overlay, RRAM_OVERLAY_VLNV)
            dma = find_ip(overlay, AXI_DMA_VLNV)
            irq = getattr(ip, "irq", None)  # PYNQ's DefaultIP names each connected interrupt pin after the pin
            transport = cls(ip, dma, allocate=pynq.allocate, timeout_s=timeout_s, overlay=overlay, irq=irq, loop=loop)
        except BaseException:
            lock.release()
            raise
        transport._lock = lock
        return transport

    # ---- registers -----------------------------------------------------------------------
    def _read_reg(self, offset: int) -> int:
        return int(self.ip.read(int(offset))) & 0xFFFF_FFFF

    def _write_reg(self, offset: int, value: int) -> None:
        self.ip.write(int(offset), int(value))

    # ---- the interrupt ---------------------------------------------------------------------
    @property
    def has_interrupt(self) -> bool:
        return self.irq is not None

    def wait_interrupt(self, timeout_s: float) -> bool:
        """Block until the overlay's level interrupt (CTRL.irq_en and DONE or ERROR) is high, the way PYNQ's
        own code waits (``loop.run_until_complete``), always on the one loop PYNQ's UIO reader is on: a
        ``pynq.Interrupt``'s event binds to the first loop that waits on it, so a new loop a wait (``asyncio.run``)
        never saw the interrupt and then failed.  False after ``timeout_s``, without an interrupt, inside a
        running event loop (a notebook), or when pynq's wait raises RuntimeError (an ``Interrupt invalidated by
        Overlay change`` after another overlay load in this process, or an event bound to another loop): the
        driver then polls STATUS.  A True may be stale (the intc latches a level line still high when pynq
        acknowledges it), so the caller reads STATUS and waits again while BUSY."""
        if self.irq is None:
            return False
        if _in_running_loop():
            return False
        if self._loop is None or self._loop.is_closed():
            self._loop = asyncio.new_event_loop()
            self._owns_loop = True
        try:
            self._loop.run_until_complete(asyncio.wait_for(self.irq.wait(), timeout_s))
        except asyncio.TimeoutError:
            return False
        except RuntimeError:  # pynq's Interrupt after an overlay change, or an event bound to another loop
            return False
        return True

    # ---- streams -------------------------------------------------------------------------
    def _buffer(self, current: Any, words: int) -> Any:
        """Reuse the buffer when it is big enough, else allocate a larger one and only then free the old one (an
        allocation that fails leaves the transport with its old buffer)."""
        if current is not None and current.shape[0] >= words:
            return current
        size = max(words, MIN_BUFFER_WORDS, 0 if current is None else 2 * current.shape[0])
        new = self._allocate(shape=(size,), dtype=np.uint32)
        if current is not None and hasattr(current, "freebuffer"):
            current.freebuffer()
        return new

    def _transact(self, words: NDArray[np.uint32], recv_words: int, trigger: RegWrite) -> NDArray[np.uint32]:
        """Arm S2MM, start MM2S without waiting, write the trigger, then wait for both (bounded)."""
        if self._broken:
            raise TransportError(f"the DMA is unusable after an earlier failure ({self._broken}); reload the overlay")
        longest = max(len(words), int(recv_words))
        if longest > self.max_transfer_words:  # checked before anything is armed or written
            raise TransportError(
                f"a stream of {longest} words exceeds the AXI DMA's largest transfer ({self.max_transfer_words} "
                "words: its buffer length register, c_sg_length_width); one overlay packet must be one transfer: "
                "rebuild the overlay with a 26-bit length register (tools/vivado/build_overlay.tcl, docs/pynq.md)"
            )

        if len(words):
            self._send.buffer = self._buffer(self._send.buffer, len(words))
            self._send.buffer[: len(words)] = words
        if recv_words:
            self._recv.buffer = self._buffer(self._recv.buffer, int(recv_words))
        self._send.begin(len(words))
        self._recv.begin(int(recv_words))

        try:
            timeout_s = self.timeout_s + BUDGET_MARGIN * op_budget_s(self.read_reg)
            if not self._recv.finished:
                self._recv.start()  # armed before START, or the overlay stalls on back-pressure
            if not self._send.finished:
                self._send.start()  # not waited on before START, or the host deadlocks
            self.write_reg(trigger.offset, trigger.value)
            self._wait_both(len(words), int(recv_words), timeout_s)
        except (RuntimeError, ValueError) as e:  # pynq's DMA driver raises these; TransportError is one too
            self._fail(str(e))
        except BaseException:  # Ctrl-C (KeyboardInterrupt) or anything else: stop the hardware, then re-raise
            self._stop()
            raise
        if self._recv.total == 0:
            return np.zeros(0, dtype=np.uint32)
        return np.array(self._recv.buffer[: self._recv.done_words], dtype=np.uint32)

    def _wait_both(self, send_words: int, recv_words: int, timeout_s: float) -> None:
        """Wait until both channels are done, or until the overlay has ended its operation and a channel is still
        not done ``ENDED_GRACE_S`` later: then it never will be (docs/protocol.md, "Streams when an operation
        ends early": no TLAST when the operation sent no word, an MM2S packet a refused START or an error or
        abort left unconsumed), and the DMA is reset for the next transaction; a receive channel that did not
        finish counts as having received nothing (its length register is only valid once a transfer ends)."""
        deadline = time.monotonic() + timeout_s
        spins = 0
        ended_at: float | None = None
        while True:
            send_done = self._send.poll()
            recv_done = self._recv.poll()
            if send_done and recv_done:
                if send_words:
                    self._drop_untaken_words()
                return
            now = time.monotonic()
            if ended_at is None and spins % 16 == 15 and self._recv_has_no_tlast_coming():
                ended_at = now
            if ended_at is not None and now - ended_at > ENDED_GRACE_S:
                for ch in (self._send, self._recv):
                    if not ch.finished:
                        ch.done_words, ch.active, ch.finished = 0, 0, True
                self._reset_dma_after_the_operation()
                return
            if now > deadline:
                raise TransportError(
                    f"DMA timed out after {timeout_s:.3g} s: sent {self._send.done_words}/{send_words} words, "
                    f"received {self._recv.done_words}/{recv_words}"
                )
            spins += 1
            if spins > 100:  # (ours) spin briefly for short ops, then yield the CPU
                time.sleep(0.0002)

    def _drop_untaken_words(self) -> None:
        """A finished MM2S transfer may still hold words the overlay never took in the DMA's stream FIFO (an
        operation that ended in an error or a refused START takes no more; the RTL drains the rest of a packet only
        when its operation ends DONE): reset the DMA then, or the next operation would read them as its own."""
        status = self.read_reg(R.STATUS)
        if not (R.STATUS_ERROR.get(status) or R.STATUS_START_REFUSED.get(status)):
            return
        self._reset_dma_after_the_operation()

    def _reset_dma_after_the_operation(self) -> None:
        """The DMA reset once the overlay's operation is over (nothing to abort); if it fails, the transport refuses
        further transfers."""
        if (failure := self._reset_dma()) is not None:
            self._broken = failure
            raise TransportError(f"the AXI DMA could not be reset after the operation ended: {failure}")

    def _recv_has_no_tlast_coming(self) -> bool:
        """The overlay's operation is over (START's write is done, so not BUSY means it ended or never ran) and
        what is still waiting will never finish: the send (an idle overlay takes no word), and the receive unless
        the operation ended DONE with output words (then its TLAST was sent and the DMA must finish it: a receive
        that does not is a DMA fault, left to the timeout)."""
        status = self.read_reg(R.STATUS)
        if R.STATUS_BUSY.get(status):
            return False
        if self._recv.finished or R.STATUS_ERROR.get(status):
            return True
        return self.read_reg(R.OUT_WORDS) == 0

    def _reset_dma(self) -> str | None:
        """Soft-reset the DMA (PG021 DMACR.Reset: both channels, a transfer in flight dropped) and restart both
        channels; None, or why the reset failed."""
        try:
            self.dma.mmio.write(_MM2S_DMACR, _DMACR_RESET)
            deadline = time.monotonic() + 1.0
            while self.dma.mmio.read(_MM2S_DMACR) & _DMACR_RESET:
                if time.monotonic() > deadline:
                    raise TransportError("AXI DMA soft reset did not complete")
            self.dma.sendchannel.start()
            self.dma.recvchannel.start()
        except Exception as e:  # the reset itself failed
            return str(e)
        return None

    def _abort_overlay(self) -> str | None:
        """CTRL.abort while the overlay is BUSY, then wait (``ABORT_WAIT_S``) for BUSY to fall; None, or why it did
        not.  An idle overlay is left alone (its STATUS holds the error the driver reports)."""
        try:
            if not R.STATUS_BUSY.get(self.read_reg(R.STATUS)):
                return None
            self.write_reg(R.CTRL, R.CTRL_ABORT.put(1))
            deadline = time.monotonic() + ABORT_WAIT_S
            while R.STATUS_BUSY.get(self.read_reg(R.STATUS)):
                if time.monotonic() > deadline:
                    return f"the overlay is still BUSY {ABORT_WAIT_S} s after CTRL.abort"
                time.sleep(0.0005)
        except Exception as e:  # the register access itself failed
            return f"CTRL.abort failed: {e}"
        return None

    def _stop(self) -> str | None:
        """Stop a transaction in flight, in docs/hdl.md's order: abort the overlay's operation, wait until it is
        no longer BUSY, then soft-reset the DMA (a transfer still armed is dropped, so no channel writes into a
        buffer after this).  None, or why it failed (then the transport refuses further transfers)."""
        self._send.finished = self._recv.finished = True
        self._send.active = self._recv.active = 0
        failures = [f for f in (self._abort_overlay(), self._reset_dma()) if f is not None]
        if failures:
            self._broken = "; ".join(failures)
            return self._broken
        return None

    def _fail(self, reason: str) -> NoReturn:
        """Abort the overlay and soft-reset the DMA (``_stop``) so the next call can run, then raise."""
        if (failure := self._stop()) is not None:
            raise TransportError(f"{reason}; stopping the transfer failed: {failure}")
        raise TransportError(reason + " (a running operation aborted, the DMA reset)")

    def _in_flight(self) -> bool:
        """A channel may still be moving data: a transfer the transport started and has not seen end, or a
        channel the DMA reports running and not idle."""
        if not (self._send.finished and self._recv.finished):
            return True
        try:
            return any(ch.running and not ch.idle for ch in (self.dma.sendchannel, self.dma.recvchannel))
        except Exception:
            return True  # cannot tell: stop it to be safe

    def close(self) -> None:
        """Stop a transfer still in flight (abort + DMA reset) before freeing the buffers, then release the board
        lock.  Buffers a DMA could not be stopped from are kept (never freed under an armed channel)."""
        failure = self._stop() if self._in_flight() else None
        if failure is None:
            for ch in (self._send, self._recv):
                if ch.buffer is not None and hasattr(ch.buffer, "freebuffer"):
                    ch.buffer.freebuffer()
                ch.buffer = None
        if self._owns_loop and self._loop is not None and not self._loop.is_closed():
            self._loop.close()  # the shared interrupt loop (_interrupt_loop) is never closed here
            self._loop, self._owns_loop = None, False
        if self._lock is not None:
            self._lock.release()
            self._lock = None
        if failure is not None:
            raise TransportError(f"closing the PYNQ transport: the DMA could not be stopped ({failure}); "
                                 "its buffers were not freed; reload the overlay")  # fmt: skip


__all__ = [
    "AXI_DMA_VLNV",
    "RRAM_OVERLAY_VLNV",
    "BoardInfo",
    "check_ip",
    "op_budget_s",
    "PynqTransport",
    "find_board",
    "find_ip",
    "import_pynq",
    "rram_ip_class",
    "resolve_bitfile",
]
