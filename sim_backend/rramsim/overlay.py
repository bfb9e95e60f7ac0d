"""EmulatedOverlay: the PL overlay of docs/protocol.md around the emulated chip and board.

The same registers (rramctl.regmap) and the same streams as the RTL, so rramctl's driver runs on
it unchanged.  The emulator is synchronous (ours): an operation runs the moment its START is
written and its input packet is there.  When START comes first, the operation stays BUSY until
``push_stream`` delivers the packet (as the RTL waits on TVALID); CTRL.abort then ends it with
ABORTED, and another START meanwhile is ignored (STATUS.start_refused) without disturbing it.

"Op serial" = number of accepted STARTs since power-up (a START is accepted when its register
parameters pass: opcode, region, bits/batch, pulse width).  Every random draw of an operation is
keyed by its serial (rramsim.crossbar).  Every error is detected before the first pulse, so a
failed operation changes no cell (stream errors, BAD_CELL and UNDERRUN, are found by scanning the
whole packet in stream order first).  Every operation, failed or not, ends with every line
floating (``lines_idle``).
"""

from __future__ import annotations

import functools
import math
from collections import deque
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray
from rramctl import regmap as R
from rramctl.hw import adc, linedrive
from rramctl.protocol import (
    CELL_COL,
    CELL_ROW,
    CHAIN_NIBBLE_SELECT,
    DAC_FRAME_READ,
    MAX_BITS,
    MAX_PULSE_CYCLES,
    PROGRAM_RESULT_CODE,
    PROGRAM_RESULT_PULSES,
    PROGRAM_TARGET_CODE,
    PROGRAM_WORDS_PER_CELL,
    VERIFY_READS_PER_CELL,
    DacChannel,
    MuxSource,
    Opcode,
    OverlayErrorCode,
    dac_frame_over_limit,
    write_verify_accepts,
)

from rramsim import arraymath, device, energy, kernels, plane_products, timing, workers
from rramsim.config import ChipModelConfig
from rramsim.crossbar import Crossbar, ReadTimes, efficacy_ppm, program_step_ns
from rramsim.dac import Dac80508
from rramsim.rng import Stream

NOP, FORM, RESET, SET, PROGRAM, READ, MULTIPLY, IDLE = Opcode
E = OverlayErrorCode
DAC_V_SL, DAC_V_BL, DAC_V_WL, DAC_V_READ = DacChannel
WORD_MASK = 0xFFFFFFFF
# DAC_LIMIT register of each rated channel (docs/protocol.md, ratings)
DAC_LIMIT_REGS: dict[DacChannel, int] = {ch: getattr(R, f"DAC_LIMIT_{ch.name}") for ch in DacChannel}

# Read/write registers with one field each: offset -> field (reset value and width from the regmap).
_RW_FIELDS = {
    R.OPCODE: R.OPCODE_OP, R.ROW_START: R.ROW_START_VALUE, R.ROW_COUNT: R.ROW_COUNT_VALUE,
    R.COL_START: R.COL_START_VALUE, R.COL_COUNT: R.COL_COUNT_VALUE, R.PULSE_CYCLES: R.PULSE_CYCLES_CYCLES,
    R.BITS: R.BITS_VALUE, R.BATCH: R.BATCH_VALUE, R.CELL_COUNT: R.CELL_COUNT_VALUE, R.TIA_GAIN: R.TIA_GAIN_HIGH,
    R.VERIFY_TOL: R.VERIFY_TOL_PPM, R.MAX_PULSES: R.MAX_PULSES_VALUE, R.DAC_FRAME: R.DAC_FRAME_FRAME,
    R.SETTLE_CYCLES: R.SETTLE_CYCLES_CYCLES, R.GUARD_CYCLES: R.GUARD_CYCLES_CYCLES,
    **{off: getattr(R, f"DAC_LIMIT_{ch.name}_CODE") for ch, off in DAC_LIMIT_REGS.items()},
}  # fmt: skip
_OFFSETS = frozenset(R.REGISTERS.values())  # every register of the map
_DAC_LIMIT_OFFSETS = frozenset(DAC_LIMIT_REGS.values())
_DAC_LIMITS = tuple((ch, off, _RW_FIELDS[off].reset) for ch, off in DAC_LIMIT_REGS.items())
_DAC_FRAME_S = timing.seconds(timing.DAC_FRAME_CYCLES)  # board time of one DAC frame
_DAC_READ_FRAME_S = timing.seconds(timing.DAC_READ_FRAME_CYCLES)  # a read command or the frame after it
_PULSE_OPS = (FORM, RESET, SET, PROGRAM)
# Latest the virtual board clock may reach (ours, ~31,700 years): every cell's clock and an operation's ``now``
# are int64 microseconds (rramsim.device), which hold 9.2e12 s; a rest past this is refused (BoardClockError)
MAX_BOARD_TIME_S = 1e12
# (ours) what one cell of PROGRAM weighs, in multiply samples, when its write-verify is shared out among threads
# (rramsim.workers.parts): its verify reads with their noise draws and aged G, its pulses' draws. Measured in the
# Fashion-MNIST WO step (benchmarks/train_step.py): about 0.4 us a cell against 7-8 ns a multiply sample
PROGRAM_CELL_SAMPLES = 48
_STREAM_OPS = (RESET, SET, PROGRAM, MULTIPLY)
# The decoded chain nibble (protocol.toml [word.CHAIN_NIBBLE]) that connects a BL to each CD4051B channel: its
# SELECT, INH clear; an inhibited nibble equals none of them.
_SELECTS = tuple(CHAIN_NIBBLE_SELECT.put(ch) for ch in range(1 << CHAIN_NIBBLE_SELECT.width))


def source_codes(dac: Dac80508) -> NDArray[np.int64]:
    """Drive code of each CD4051B channel (docs/protocol.md): 0 GND, 1 V_READ, 2 V_BL, 3-7 GND."""
    src = np.zeros(1 << CHAIN_NIBBLE_SELECT.width, dtype=np.int64)
    src[MuxSource.READ] = dac.output_code(DAC_V_READ)
    src[MuxSource.BL_PROG] = dac.output_code(DAC_V_BL)
    return src


class BoardClockError(ValueError):
    """A rest the virtual board clock cannot take (not finite, negative, or past MAX_BOARD_TIME_S)."""


class OpError(Exception):
    """An operation refused with an error code (docs/protocol.md, "Error codes")."""

    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


@dataclass
class Counters:
    op_serial: int = 0  # accepted STARTs since power-up (not a register)
    op_count: int = 0
    pulse_count: int = 0
    out_words: int = 0
    dac_rdata: int = 0
    dac_refused: int = 0  # the last DAC_FRAME write was refused by the ratings (DAC_RDATA.refused)
    sat_count: int = 0  # ADC samples of the last operation at either end of the range


def occurrence_rounds(keys: NDArray[np.int64]) -> list[NDArray[np.int64]]:
    """Positions grouped so no group names a key twice and repeats keep their order: round k holds
    every key's (k+1)-th occurrence.  Per-cell physics is independent across cells, so applying
    the rounds one after another equals applying the list in order."""
    if keys.size == 0:
        return []
    order = np.argsort(keys, kind="stable")
    sk = order.size
    starts = np.r_[True, keys[order][1:] != keys[order][:-1]]
    group_start = np.maximum.accumulate(np.where(starts, np.arange(sk), 0))
    rank = np.empty(sk, dtype=np.int64)
    rank[order] = np.arange(sk) - group_start
    return [np.flatnonzero(rank == k) for k in range(int(rank.max()) + 1)]


Packet = NDArray[np.uint32] | linedrive.BitplaneStream  # an input packet: words, or MULTIPLY's bit-planes


def _plane_matrix_f32(x: NDArray[np.uint8], bits: int) -> NDArray[np.float32]:
    """The bit-planes of inputs ``x`` as MULTIPLY's (B * bits, rows) float32 0/1 row masks, frame order
    (BitplaneStream.plane_matrix; one compiled pass where numba is installed)."""
    if not (kernels.AVAILABLE and x.size):
        return linedrive.BitplaneStream(np.ascontiguousarray(x), bits, 0).plane_matrix(np.float32)
    out = np.empty((x.shape[0], bits, x.shape[1]), dtype=np.float32)
    kernels.bitplanes_kernel(np.ascontiguousarray(x), bits, out)
    return out.reshape(-1, x.shape[1])


class PlaneParts:
    """The bit-planes of inputs ``x`` as MULTIPLY's row masks (``_plane_matrix_f32``), made a part at a time:
    ``parts[a:b]`` is frames a .. b - 1 of the plane matrix for a and b multiples of ``bits`` (whole vectors),
    so the threads of arraymath.masked_multiply_codes each make their own part's planes."""

    def __init__(self, x: NDArray[np.uint8], bits: int) -> None:
        self.x, self.bits = x, bits

    def __getitem__(self, frames: slice) -> NDArray[np.float32]:
        a, b = frames.start or 0, self.x.shape[0] * self.bits if frames.stop is None else frames.stop
        if a % self.bits or b % self.bits:
            raise ValueError(f"plane parts are whole vectors: frames {a}..{b} with {self.bits} bits")
        return _plane_matrix_f32(self.x[a // self.bits : b // self.bits], self.bits)

    def products(self, a: int, b: int, block: NDArray[Any]) -> NDArray[Any]:
        """``self[a:b].astype(block.dtype) @ block`` (frames a .. b - 1, whole vectors), the same values: from
        subset-sum tables where that is faster (rramsim.plane_products), else the matmul."""
        if a % self.bits or b % self.bits:
            raise ValueError(f"plane parts are whole vectors: frames {a}..{b} with {self.bits} bits")
        x = self.x[a // self.bits : b // self.bits]
        if plane_products.usable(x.shape[0], block.shape[1], block.dtype):
            return plane_products.plane_products(x, self.bits, block)
        return _plane_matrix_f32(x, self.bits).astype(block.dtype, copy=False) @ block


def _driven_rows(x: NDArray[np.uint8], bits: int) -> tuple[NDArray[np.bool_], int]:
    """The rows some bit-plane of inputs ``x`` (B, rows) drives (some input has a bit below ``bits`` set
    there), and how many (one compiled pass where numba is installed)."""
    if not (kernels.AVAILABLE and x.size):
        used = (x & np.uint8((1 << bits) - 1)).any(axis=0)
        return used, int(used.sum())
    used = np.empty(x.shape[1], dtype=bool)
    return used, kernels.driven_rows_kernel(x, bits, used)


def program_result_words(pulses: NDArray[np.int64], final: NDArray[np.int64]) -> NDArray[np.uint32]:
    """PROGRAM's output words: pulses applied and the last verify code (16-bit two's complement) per cell."""
    return (PROGRAM_RESULT_PULSES.put(pulses) | PROGRAM_RESULT_CODE.put_signed(final)).astype(np.uint32)


def _words(packet: Packet) -> NDArray[np.uint32]:
    """A packet as stream words (bit-planes sent to an operation other than MULTIPLY: their frames)."""
    return packet.words() if isinstance(packet, linedrive.BitplaneStream) else packet


class EmulatedOverlay:
    """Registers, streams, the DAC80508, the BL chain and the crossbar behind them."""

    def __init__(self, config: ChipModelConfig | None = None, *, device: str = "cpu") -> None:
        """``device``: where the read-out array math runs (rramsim.arraymath.array_module: ``cpu`` =
        numpy, ``numpy``, ``torch-cpu``, ``cuda``, ``cuda:N``); every device gives the same codes."""
        self.config = config or ChipModelConfig()
        self.xm = arraymath.array_module(device)
        self.device = device
        self.crossbar = Crossbar(self.config)
        self.dac = Dac80508()
        self._limits: dict[int, int] | None = None  # limits(), while the DAC_LIMIT registers stay as they are
        self.regs = {off: f.reset for off, f in _RW_FIELDS.items()}
        self.irq_en = 0
        self.busy = self.done = self.error = False
        self.start_refused = False  # STATUS.start_refused: a START came while BUSY
        # RATINGS_LOCK.locked: until the PL is reset.  Not part of the saved state: opening an emulator
        # state is the emulated bitstream load (as PynqTransport.open loads the overlay), so it starts unlocked
        # and the driver locks the limits again at open.
        self.ratings_locked = False
        self.err_code: int = int(E.NONE)
        self.counters = Counters()
        self.lines_idle = True  # every CD4051B inhibited, drive enable low
        self._pending: int | None = None  # opcode of a started operation waiting for its input packet
        self._start_regs: dict[int, int] = {}  # the registers as START accepted them: what the operation runs on
        self._in: deque[Packet] = deque()
        self._out = np.zeros(0, dtype=np.uint32)
        self.board_time_s = 0.0  # virtual board clock: relaxation and drift run on it (rramsim.device)
        # the overlay build the board clock counts (rramsim.timing): ROWS = the array's rows, the board's clocks
        self.clocks = timing.Clocks(rows=self.config.rows)
        self.ledger = energy.EnergyLedger()  # energy of every read, conversion, pulse (rramsim.energy)

    # ---- configuration of the environment ------------------------------------------------
    def set_temperature(self, temperature_c: float) -> None:
        """The chuck temperature: a property of the setup, not a register."""
        self.config = self.config.with_changes(temperature_c=temperature_c)
        self.crossbar.config = self.config

    def set_device(self, device: str) -> None:
        """Run the read-out array math on another device (same codes; see ``__init__``)."""
        self.xm = arraymath.array_module(device)
        self.device = device

    @property
    def irq(self) -> bool:
        """The interrupt line: IRQ_EN and (DONE or ERROR)."""
        return bool(self.irq_en and (self.done or self.error))

    # ---- AXI4-Lite ---------------------------------------------------------------------------
    @staticmethod
    def _check_offset(offset: int) -> None:
        if offset not in _OFFSETS:
            raise ValueError(f"no register at offset {offset:#x} (see docs/registers.md)")

    def read_reg(self, offset: int) -> int:
        self._check_offset(offset)
        c = self.counters
        if offset in _RW_FIELDS:
            return self.regs.get(offset, _RW_FIELDS[offset].reset)
        if offset == R.STATUS:  # polled after every operation
            return (R.STATUS_BUSY.put(int(self.busy)) | R.STATUS_DONE.put(int(self.done))
                    | R.STATUS_ERROR.put(int(self.error)) | R.STATUS_ERR_CODE.put(self.err_code)
                    | R.STATUS_START_REFUSED.put(int(self.start_refused)))  # fmt: skip
        if offset == R.DAC_RDATA:  # read after every DAC frame
            return R.DAC_RDATA_FRAME.put(c.dac_rdata) | R.DAC_RDATA_REFUSED.put(c.dac_refused)
        if offset == R.SAT_COUNT:  # read after every read operation
            return c.sat_count
        return {
            R.ID: R.ID_VALUE.reset,
            R.VERSION: R.VERSION_MAJOR.put(R.VERSION_MAJOR.reset) | R.VERSION_MINOR.put(R.VERSION_MINOR.reset),
            R.CTRL: R.CTRL_IRQ_EN.put(self.irq_en),
            R.OP_COUNT: c.op_count, R.PULSE_COUNT: c.pulse_count, R.OUT_WORDS: c.out_words,
            R.RATINGS_LOCK: R.RATINGS_LOCK_LOCKED.put(int(self.ratings_locked)),
        }[offset]  # fmt: skip

    def write_reg(self, offset: int, value: int) -> None:
        self._check_offset(offset)
        if not 0 <= value <= WORD_MASK:
            raise ValueError(f"register value {value} is not a 32-bit word")
        if offset in _DAC_LIMIT_OFFSETS and self.ratings_locked:
            return  # locked until reset (the register block's swwel)
        if offset in _RW_FIELDS:
            f = _RW_FIELDS[offset]
            self.regs[offset] = f.get(value)
            if offset in _DAC_LIMIT_OFFSETS:
                self._limits = None
            elif offset == R.DAC_FRAME:
                self._dac_frame(self.regs[offset])
        elif offset == R.CTRL:
            self._ctrl(value)
        elif offset == R.RATINGS_LOCK and R.RATINGS_LOCK_LOCKED.get(value):
            self.ratings_locked = True
        # read-only registers ignore writes, as the RTL does

    def limits(self) -> dict[int, int]:
        """DAC code limit of each rated channel (DAC_LIMIT_*); kept until a DAC_LIMIT register is written or
        the registers are replaced (a copy: the caller may change it)."""
        return dict(self._current_limits())

    def _current_limits(self) -> dict[int, int]:
        if self._limits is None:
            regs = self.regs
            self._limits = {ch: regs.get(off, reset) for ch, off, reset in _DAC_LIMITS}
        return self._limits

    @property
    def regs(self) -> dict[int, int]:
        """The read/write registers (offset -> value)."""
        return self._regs

    @regs.setter
    def regs(self, value: dict[int, int]) -> None:
        self._regs = value
        self._limits = None

    def _dac_frame(self, frame: int) -> None:
        """One DAC_FRAME write: refused by the ratings (never shifted: no clocks, no DAC update), or shifted out
        at DAC_HALF, a read command and the frame after it (which brings the data out) at DAC_READ_HALF."""
        c = self.counters
        if dac_frame_over_limit(frame, self._current_limits()):  # refused: the frame never reaches the DAC
            c.dac_refused = 1
            if not self.busy:  # a running operation keeps its own status
                self.done, self.error, self.err_code = False, True, E.OVER_RATING
            return
        slow = self.dac.pending_read is not None or bool(DAC_FRAME_READ.get(frame))
        c.dac_refused = 0
        c.dac_rdata = self.dac.transfer(frame)
        self.ledger.dac_updates += 1
        self.board_time_s += _DAC_READ_FRAME_S if slow else _DAC_FRAME_S

    def _ctrl(self, value: int) -> None:
        self.irq_en = R.CTRL_IRQ_EN.get(value)
        if R.CTRL_CLEAR.get(value):
            self.done = self.error = self.start_refused = False
            self.err_code = int(E.NONE)
        if R.CTRL_ABORT.get(value) and self.busy:
            self._pending = None
            self._in.clear()
            self._finish_error(E.ABORTED)
        if R.CTRL_START.get(value):
            self._start()

    # ---- AXI4-Stream ---------------------------------------------------------------------------
    def push_stream(self, words: Packet) -> None:
        """One input packet (MM2S, ending with TLAST): words, or a MULTIPLY's bit-planes not yet encoded
        into chain frames (rramctl.hw.linedrive.BitplaneStream: the same packet, decoded directly)."""
        if isinstance(words, linedrive.BitplaneStream):
            self._in.append(words)
            if self._pending is not None:
                self._run_pending()
            return
        w = np.asarray(words)
        if w.ndim != 1 or (w.size and w.dtype.kind not in "iu"):
            raise ValueError("a stream packet is a 1-D array of 32-bit words")
        if w.size and (int(w.min()) < 0 or int(w.max()) > WORD_MASK):
            raise ValueError("stream words must be 32-bit unsigned")
        self._in.append(w.astype(np.uint32))
        if self._pending is not None:
            self._run_pending()

    def pop_stream(self, n: int) -> NDArray[np.uint32]:
        """Up to ``n`` words of the output stream (S2MM)."""
        if n < 0:
            raise ValueError("cannot pop a negative number of words")
        out, self._out = self._out[:n], self._out[n:]
        return out

    def discard_output(self) -> int:
        """Drop output words nobody collected; returns how many."""
        n = self._out.size
        self._out = np.zeros(0, dtype=np.uint32)
        return n

    def rest(self, seconds: float) -> None:
        """The chip rests ``seconds`` of board time: the clock advances (relaxation and drift run on it).  A rest
        that is not a finite number >= 0, or that would take the clock past MAX_BOARD_TIME_S, is refused with
        BoardClockError and changes nothing."""
        s = float(seconds)
        if not math.isfinite(s) or s < 0:
            raise BoardClockError(f"cannot rest {seconds!r} s: a rest is a finite number of seconds >= 0")
        if self.board_time_s + s > MAX_BOARD_TIME_S:
            raise BoardClockError(
                f"cannot rest {s:g} s: the board clock (now {self.board_time_s:g} s) would pass its limit of "
                f"{MAX_BOARD_TIME_S:g} s (rramsim.overlay.MAX_BOARD_TIME_S: each cell's clock is int64 microseconds)"
            )
        self.board_time_s += s

    @property
    def waiting_for_input(self) -> bool:
        return self._pending is not None

    # ---- operations ------------------------------------------------------------------------------
    def _finish_error(self, code: int) -> None:
        self.busy, self.done, self.error, self.err_code = False, False, True, code
        self.counters.out_words = 0
        self.lines_idle = True

    def _start(self) -> None:
        if self.busy:
            self.start_refused = True  # ignored: the running operation goes on, its status untouched
            return
        self.done = self.error = self.start_refused = False
        self.err_code = int(E.NONE)
        op = self.regs[R.OPCODE]
        try:
            self._check_params(op)
        except OpError as e:
            if op in _STREAM_OPS and self._in:
                self._in.popleft()  # drop the refused operation's packet (ours)
            self._finish_error(e.code)
            return
        self.counters.op_serial += 1
        self.counters.sat_count = 0
        self.crossbar.now_us = round(self.board_time_s * 1e6)
        self.crossbar.drift()
        self.busy = True
        self._start_regs = dict(self.regs)
        self._pending = op
        if op not in _STREAM_OPS or self._in:
            self._run_pending()

    def _check_params(self, op: int) -> None:
        rg = self.regs
        if op >= len(Opcode):  # the opcodes are 0 .. N-1 (the generator checks)
            raise OpError(E.BAD_OPCODE)
        if op in (FORM, READ):
            self._check_region(rg[R.ROW_START], rg[R.ROW_COUNT], self.config.rows)
        if op in (FORM, READ, MULTIPLY):
            self._check_region(rg[R.COL_START], rg[R.COL_COUNT], self.config.cols)
        if op == MULTIPLY and not (1 <= rg[R.BITS] <= MAX_BITS and rg[R.BATCH] >= 1):
            raise OpError(E.BAD_BITS)
        if op in _PULSE_OPS and not 1 <= rg[R.PULSE_CYCLES] <= MAX_PULSE_CYCLES:
            raise OpError(E.BAD_PULSE)

    @staticmethod
    def _check_region(start: int, count: int, size: int) -> None:
        if count < 1 or start + count > size:
            raise OpError(E.BAD_REGION)

    def _run_pending(self) -> None:
        """Run the started operation on the parameter registers as START accepted them: a register written while
        it was BUSY (waiting for its packet) reaches the next START only, as in the RTL (docs/protocol.md)."""
        live, self._regs = self._regs, self._start_regs
        try:
            self._run_started()
        finally:
            self._regs = live

    def _run_started(self) -> None:
        op = self._pending
        assert op is not None
        self._pending = None
        packet = self._in.popleft() if op in _STREAM_OPS else np.zeros(0, np.uint32)
        self.lines_idle = False
        pulses_before = self.counters.pulse_count
        try:
            out = self._execute(op, packet)
        except OpError as e:
            self._finish_error(e.code)
            return
        except BaseException:
            # a failure of the emulator itself (no overlay error code: a bug, a drive sum past the integer ADC
            # model, an interrupt): the caller gets it, and the overlay is idle again rather than BUSY for good
            # (ours); nothing of the operation is counted (no OP_COUNT, board time or output words)
            self.busy, self.done, self.lines_idle = False, False, True
            raise
        pulses = (self.counters.pulse_count - pulses_before) & WORD_MASK
        self.board_time_s += timing.seconds(self._op_cycles(op, pulses))
        self._price_pulses(op, packet, out, pulses)
        out = out.astype(np.uint32, copy=False)
        self._out = np.concatenate([self._out, out]) if self._out.size else out
        c = self.counters
        c.out_words = out.size
        c.op_count = (c.op_count + 1) & WORD_MASK
        self.busy, self.done, self.lines_idle = False, True, True

    def _op_cycles(self, op: int, pulses: int) -> int:
        """Board time of the operation just run: the RTL's clocks (rramsim.timing)."""
        rg = self.regs
        cells = rg[R.CELL_COUNT] if op in (RESET, SET, PROGRAM) else 0
        rows = rg[R.ROW_COUNT] if op == READ else 0
        cols = rg[R.COL_COUNT] if op in (READ, MULTIPLY) else 0
        batch = rg[R.BATCH] if op == MULTIPLY else 0
        return timing.op_cycles(op, pulse_cycles=rg[R.PULSE_CYCLES], settle_cycles=rg[R.SETTLE_CYCLES],
                                guard_cycles=rg[R.GUARD_CYCLES], cells=cells, pulses=pulses, rows=rows, cols=cols,
                                frames=batch * rg[R.BITS], batch=batch, clocks=self.clocks)  # fmt: skip

    def _driven_frame_lines(self, frames: NDArray[np.uint32]) -> tuple[NDArray[np.uint8], NDArray[np.int64]]:
        """MULTIPLY chain frames decoded (linedrive.driven_lines) for the array's rows: (frames, m) nibbles of the m
        driven lines; BAD_FRAME where one connects a BL to V_BL (a programming level during a read)."""
        nib, lines = linedrive.driven_lines(frames)  # CHAIN_NIBBLE = select | INH << 3; 0 = grounded
        inside = lines < self.config.rows
        nib, lines = nib[:, inside], lines[inside]
        if (nib == _SELECTS[MuxSource.BL_PROG]).any():
            raise OpError(E.BAD_FRAME)
        return nib, lines

    def _price_pulses(self, op: int, packet: Packet, out: NDArray[np.uint32], pulses: int) -> None:
        """The ledger's pulse energy of a FORM/RESET/SET/PROGRAM (rramsim.energy): V^2 G t per pulse with
        each cell's stored conductance after the operation as the access transistor passes it at the pulse's
        V_WL (device.gated: through a closed gate at most its leakage, as a READ sees it); PROGRAM's pulses
        priced at the SET level (V_BL)."""
        if op not in _PULSE_OPS or pulses == 0:
            return
        packet = _words(packet)
        rg, g = self.regs, self.crossbar.g
        if op == FORM:
            r, c = self._region()
            weight = np.ones(r.size, dtype=np.int64)
        else:
            n = rg[R.CELL_COUNT]
            cells = packet[:: PROGRAM_WORDS_PER_CELL if op == PROGRAM else 1][:n].astype(np.int64)
            r, c = CELL_ROW.get(cells), CELL_COL.get(cells)
            weight = PROGRAM_RESULT_PULSES.get(out.astype(np.int64)) if op == PROGRAM else np.ones(n, dtype=np.int64)
        v = self.dac.output_uv(DAC_V_SL if op in (FORM, RESET) else DAC_V_BL)
        g_cells = device.gated(g[r, c].astype(np.int64), self.dac.output_uv(DAC_V_WL), self.config)
        g_total = float((g_cells * weight).sum())
        self.ledger.pulse(v, g_total, rg[R.PULSE_CYCLES], pulses)

    def _count_pulses(self, n: int) -> None:
        self.counters.pulse_count = (self.counters.pulse_count + n) & WORD_MASK

    def _execute(self, op: int, packet: Packet) -> NDArray[np.uint32]:
        empty = np.zeros(0, np.uint32)
        if op == FORM:
            self._form()
        elif op in (RESET, SET):
            self._reset_set(op, _words(packet))
        elif op == PROGRAM:
            return self._program(_words(packet))
        elif op == READ:
            return self._read()
        elif op == MULTIPLY:
            return self._multiply(packet)
        return empty  # NOP, IDLE: lines to safe idle, nothing else

    def _region(self) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
        rg = self.regs
        rows = np.arange(rg[R.ROW_START], rg[R.ROW_START] + rg[R.ROW_COUNT])
        cols = np.arange(rg[R.COL_START], rg[R.COL_START] + rg[R.COL_COUNT])
        r, c = np.meshgrid(rows, cols, indexing="ij")
        return r.ravel(), c.ravel()

    def _form(self) -> None:
        r, c = self._region()
        self.crossbar.form(r, c, self.dac.output_uv(DAC_V_SL), self.dac.output_uv(DAC_V_WL), self.regs[R.PULSE_CYCLES])
        self._count_pulses(r.size)

    def _cell_list(self, words: NDArray[np.uint32], n: int, stride: int) -> tuple[NDArray[np.int64], ...]:
        """Rows, cols of the first ``n`` cells (every ``stride``-th word); BAD_CELL or UNDERRUN in
        stream order: a bad cell before the packet ends is BAD_CELL, a short packet UNDERRUN."""
        cells = words[::stride][:n].astype(np.int64)
        rows, cols = CELL_ROW.get(cells), CELL_COL.get(cells)
        bad = np.flatnonzero((rows >= self.config.rows) | (cols >= self.config.cols))
        if bad.size:
            raise OpError(E.BAD_CELL)
        if words.size < n * stride:
            raise OpError(E.UNDERRUN)
        return rows, cols

    def _reset_set(self, op: int, packet: NDArray[np.uint32]) -> None:
        """RESET / SET: one pulse per listed cell (repeats one round after another); compiled where numba is
        installed (device ``numpy`` keeps Crossbar.reset / set; the same cells, tests/test_speed_program.py)."""
        n = self.regs[R.CELL_COUNT]
        rows, cols = self._cell_list(packet, n, 1)
        cyc, serial, v_wl = self.regs[R.PULSE_CYCLES], self.counters.op_serial, self.dac.output_uv(DAC_V_WL)
        xb, cfg = self.crossbar, self.config
        v = self.dac.output_uv(DAC_V_SL if op == RESET else DAC_V_BL)
        rounds = occurrence_rounds(rows * cfg.cols + cols)
        if not (kernels.AVAILABLE and getattr(self.xm, "compiled", True)):
            pulse = xb.reset if op == RESET else xb.set
            for pos in rounds:
                pulse(rows[pos], cols[pos], v, v_wl, cyc, serial, pos)
        else:
            kind = cfg.reset if op == RESET else cfg.set
            e = efficacy_ppm(v, kind.onset_uv, kind.full_uv, cyc, kind.full_cycles)
            if v_wl > cfg.transistor.wl_threshold_uv and e > 0 and rounds:  # else no pulse changes a cell
                stream = Stream.RESET_C2C if op == RESET else Stream.SET_C2C
                prefixes = np.array([arraymath.prefix_hash(cfg.seed, st, serial) for st in (stream, Stream.RELAXATION)],
                                    dtype=np.int64).view(np.uint64)  # fmt: skip
                params = np.array([xb.now_us, int(xb.time_active), e, cfg.reset.off_ns, kind.c2c_ppm,
                                   cfg.program.max_ns, cfg.relaxation.sigma_ns], dtype=np.int64)  # fmt: skip
                g, aged = xb.g, device.aged_params(cfg)  # (xb.g: G changes)
                for pos in rounds:
                    kernels.reset_set_kernel(op == SET, g, xb.g_formed, xb.stuck, xb.t_pulse_us, xb.relax_ns,
                                             rows[pos], cols[pos], pos, params, aged, prefixes)  # fmt: skip
        self._count_pulses(n)

    def _program(self, packet: NDArray[np.uint32]) -> NDArray[np.uint32]:
        """PROGRAM: write-verify each listed cell (repeats one round after another); compiled where numba is
        installed (device ``numpy`` keeps the reference loop; the same codes, tests/test_speed_program.py)."""
        if not (kernels.AVAILABLE and getattr(self.xm, "compiled", True)):
            return self._program_reference(packet)
        rg, xb, cfg = self.regs, self.crossbar, self.config
        n = rg[R.CELL_COUNT]
        rows, cols = self._cell_list(packet, n, PROGRAM_WORDS_PER_CELL)
        targets = PROGRAM_TARGET_CODE.get_signed(packet[1::PROGRAM_WORDS_PER_CELL][:n].astype(np.int64))
        serial, tia, tol, max_p = self.counters.op_serial, rg[R.TIA_GAIN], rg[R.VERIFY_TOL], rg[R.MAX_PULSES]
        v_wl, cyc, p = self.dac.output_uv(DAC_V_WL), rg[R.PULSE_CYCLES], cfg.program
        step = [program_step_ns(p, self.dac.output_uv(ch), cyc) for ch in (DAC_V_BL, DAC_V_SL)]
        params = np.array([xb.now_us, int(xb.time_active), int(v_wl > cfg.transistor.wl_threshold_uv),
                           cfg.transistor.off_leak_ns, self.dac.output_code(DAC_V_READ), tol, max_p, *step,
                           p.noise_ns, p.max_ns, cfg.relaxation.sigma_ns], dtype=np.int64)  # fmt: skip
        prefixes = np.array([arraymath.prefix_hash(cfg.seed, st, serial) for st in (Stream.PROGRAM_NOISE,
                             Stream.RELAXATION)], dtype=np.int64).view(np.uint64)  # fmt: skip
        op = xb.read_op(tia, serial)
        read_prefixes, read_params, _, _ = arraymath.kernel_args(op, np.zeros(1, np.int64), (1,))
        offset, gain = (np.ascontiguousarray(t, dtype=np.int64) if op.chain and t is not None else np.zeros(0, np.int64)
                        for t in (op.offset_du, op.gain_ppm))  # fmt: skip
        g, pulses, final = xb.g, np.zeros(n, dtype=np.int64), np.zeros(n, dtype=np.int64)  # (xb.g: G changes)
        v_read_uv, aged = self.dac.output_uv(DAC_V_READ), device.aged_params(cfg)

        def part(
            cells: tuple[NDArray[np.int64], ...], out: tuple[NDArray[np.int64], ...], a: int, b: int
        ) -> tuple[int, int, NDArray[np.int64], NDArray[np.int64]]:
            """Cells a .. b - 1 of a round (``cells``: rows, columns, positions, targets; ``out``: pulses, final):
            distinct cells whose draws are keyed by their positions, so parts run side by side (rramsim.workers)
            give what one pass gives; their sums per pulse number and rail tallies add."""
            s_sum, reads = np.zeros(max_p + 1, dtype=np.int64), np.zeros(max_p + 1, dtype=np.int64)
            r, c, pos, t = (x[a:b] for x in cells)
            failed, at_rails = kernels.program_kernel(
                g, xb.g_formed, xb.stuck, xb.t_pulse_us, xb.relax_ns, r, c, pos, t, params, aged, prefixes,
                read_prefixes, read_params, offset, gain, out[0][a:b], out[1][a:b], s_sum, reads,
            )  # fmt: skip
            return int(failed), int(at_rails), s_sum, reads

        for group in occurrence_rounds(rows * self.config.cols + cols):
            pulses_g, final_g = np.zeros(group.size, dtype=np.int64), np.zeros(group.size, dtype=np.int64)
            work = functools.partial(part, (rows[group], cols[group], group, targets[group]), (pulses_g, final_g))
            results = workers.run_parts(work, workers.parts(group.size, PROGRAM_CELL_SAMPLES))
            if any(r[0] for r in results):
                raise OverflowError("drive sum too large for the integer ADC model")
            s_sum = np.sum([r[2] for r in results], axis=0, dtype=np.int64)
            reads = np.sum([r[3] for r in results], axis=0, dtype=np.int64)
            for k in np.flatnonzero(reads):  # the ledger's reads, pulse number by pulse number as the loop reads
                self.ledger.read(v_read_uv, float(s_sum[k]), int(reads[k]))
            self._add_saturated(sum(r[1] for r in results))
            pulses[group], final[group] = pulses_g, final_g
        self._count_pulses(int(pulses.sum()))
        return program_result_words(pulses, final)

    def _program_reference(self, packet: NDArray[np.uint32]) -> NDArray[np.uint32]:
        """PROGRAM written out with the per-event API (Crossbar.conductance, sample_codes, program_pulse),
        pulse number by pulse number: the rule program_kernel follows."""
        rg, xb = self.regs, self.crossbar
        n = rg[R.CELL_COUNT]
        rows, cols = self._cell_list(packet, n, PROGRAM_WORDS_PER_CELL)
        targets = PROGRAM_TARGET_CODE.get_signed(packet[1::PROGRAM_WORDS_PER_CELL][:n].astype(np.int64))
        serial, tia, tol, max_p = self.counters.op_serial, rg[R.TIA_GAIN], rg[R.VERIFY_TOL], rg[R.MAX_PULSES]
        v_read, v_wl = self.dac.output_code(DAC_V_READ), self.dac.output_uv(DAC_V_WL)
        v_set, v_reset, cyc = self.dac.output_uv(DAC_V_BL), self.dac.output_uv(DAC_V_SL), rg[R.PULSE_CYCLES]
        pulses = np.zeros(n, dtype=np.int64)
        final = np.zeros(n, dtype=np.int64)
        for group in occurrence_rounds(rows * self.config.cols + cols):
            active = group
            for k in range(max_p + 1):
                r, c = rows[active], cols[active]
                s = v_read * xb.conductance(v_wl, (r, c))
                code = xb.sample_codes(s, tia, serial, active * VERIFY_READS_PER_CELL + k, c)
                self.ledger.read(self.dac.output_uv(DAC_V_READ), float(s.sum()), s.size)
                self._count_saturated(code)
                final[active] = code
                t = targets[active]
                keep = ~write_verify_accepts(code, t, tol) & (k < max_p)
                active, code, r, c = active[keep], code[keep], r[keep], c[keep]
                if active.size == 0:
                    break
                up = code < targets[active]
                for mask, direction, v in ((up, 1, v_set), (~up, -1, v_reset)):
                    if mask.any():
                        xb.program_pulse(r[mask], c[mask], direction, v, v_wl, cyc, serial, active[mask], k)
                pulses[active] += 1
        self._count_pulses(int(pulses.sum()))
        return program_result_words(pulses, final)

    def _read(self) -> NDArray[np.uint32]:
        rg, xb = self.regs, self.crossbar
        r0, nr, c0, nc = rg[R.ROW_START], rg[R.ROW_COUNT], rg[R.COL_START], rg[R.COL_COUNT]
        # each cell is sampled at its own time (rramsim.timing): relaxation goes on during a long read;
        # sample k is cell (r0 + k // nc, c0 + k % nc), row by row
        times = ReadTimes(timing.read_row_cycles(rg[R.GUARD_CYCLES], self.clocks),
                          timing.read_sample_cycles(rg[R.SETTLE_CYCLES], self.clocks), timing.CLOCK_HZ // 1_000_000,
                          compiled=bool(getattr(self.xm, "compiled", True)))  # fmt: skip
        block = (slice(r0, r0 + nr), slice(c0, c0 + nc))
        s = self.dac.output_code(DAC_V_READ) * xb.conductance(self.dac.output_uv(DAC_V_WL), block, times)
        cols = np.arange(c0, c0 + nc, dtype=np.int64)  # the column of each sample, along the last axis
        codes = self.crossbar.sample_codes(s, rg[R.TIA_GAIN], self.counters.op_serial, None, cols).ravel()
        self.ledger.read(self.dac.output_uv(DAC_V_READ), float(s.sum()), s.size)
        self._count_saturated(codes)
        return adc.to_word(codes)

    def _count_saturated(self, codes: NDArray[np.int64]) -> None:
        self._add_saturated(device.saturated(codes))

    def _add_saturated(self, n: int) -> None:
        """SAT_COUNT += n samples at the ADC's rails (a 32-bit counter that wraps)."""
        self.counters.sat_count = (self.counters.sat_count + int(n)) & WORD_MASK

    def source_codes(self) -> NDArray[np.int64]:
        return source_codes(self.dac)

    def _multiply(self, packet: Packet) -> NDArray[np.uint32]:
        """Decode the chain frames, sum only the rows some frame drives (per source code, exact 0/1
        mask matmuls on the cached conductance block), sample every column of every frame, then
        shift and add the bit-planes; the array math runs on ``self.xm`` (numpy or torch)."""
        rg, xm = self.regs, self.xm
        batch, bits, c0, nc = rg[R.BATCH], rg[R.BITS], rg[R.COL_START], rg[R.COL_COUNT]
        n_frames = batch * bits
        if isinstance(packet, linedrive.BitplaneStream) and packet.bits == bits and packet.inputs.shape[0] >= batch:
            # the driver's packet: the bit-planes of its inputs are the V_READ row masks (no frames)
            n_lines = max(0, min(packet.inputs.shape[1], self.config.rows - packet.row_start))  # on this array
            lines = np.arange(packet.row_start, packet.row_start + n_lines, dtype=np.int64)
            x = packet.inputs[:batch, :n_lines]  # (the planes take its bits below ``bits`` only)
            used, n_used = _driven_rows(x, bits)
            if 2 * n_used < used.size:  # mostly idle rows: sum over the driven ones only
                lines, x = lines[used], x[:, used]
            read = self.dac.output_code(DAC_V_READ)  # the V_READ source (source_codes: MuxSource.READ)
            masks: list[tuple[int, Any]] = []  # (source code, its row masks: arrays or PlaneParts)
            if read and n_used:  # else no row is driven: every drive sum is 0 (no planes of no rows to make)
                planes = getattr(xm, "plane_matrix", None)  # torch: the planes made on its device
                if planes:
                    mask: NDArray[Any] | PlaneParts = planes(x, bits)
                elif getattr(xm, "compiled", False):
                    mask = PlaneParts(x, bits)  # each thread makes the planes of its own part
                else:
                    mask = _plane_matrix_f32(x, bits)
                masks.append((read, mask))
        else:  # words (or bit-planes cut otherwise by BATCH / BITS): decode the chain frames
            words = _words(packet)
            fw = linedrive.FRAME_WORDS
            if words.size < n_frames * fw:  # the RTL checks word by word: a bad word that came is BAD_FRAME first
                tail = (-words.size) % fw  # the last frame completed with idle words (every mux inhibited)
                self._driven_frame_lines(np.concatenate([words, linedrive.idle_frame()[:tail]]).reshape(-1, fw))
                raise OpError(E.UNDERRUN)
            nib, lines = self._driven_frame_lines(words[: n_frames * fw].reshape(n_frames, fw))
            src = self.source_codes()
            masks = [(int(src[ch]), nib == _SELECTS[ch]) for ch in range(len(src)) if src[ch]]  # INH set: no match
            used = np.zeros(lines.size, dtype=bool)
            for _, m in masks:
                used |= m.any(axis=0)
            masks = [(code, m) for code, m in masks if m.any()]  # a source no frame selects adds nothing
            if 2 * int(used.sum()) < used.size:  # mostly idle rows: sum over the driven ones only
                lines, masks = lines[used], [(code, m[:, used]) for code, m in masks]
        # (else every row: an idle row's mask is 0 there and adds exactly 0; cheaper than compressing)
        block = self.crossbar.read_block(xm, lines, c0, nc, self.dac.output_uv(DAC_V_WL))
        op = self.crossbar.read_op(rg[R.TIA_GAIN], self.counters.op_serial)
        cols = np.arange(c0, c0 + nc, dtype=np.int64)  # the column of each sample, along the last axis
        if getattr(xm, "compiled", False):  # drive sums to shift-and-added codes in one compiled pass
            return self._multiply_compiled(masks if lines.size else [], block, n_frames, nc, bits, cols, op)
        drives = [(code, xm.asarray(m)) for code, m in masks]
        if drives and lines.size:
            s = arraymath.drive_sums(xm, drives, block)
        else:
            s = xm.asarray(np.zeros((n_frames, nc), dtype=np.int64))
        # noise keys: the sampling order, frame after frame, column after column
        out, at_rails, s_total = arraymath.multiply_tail(xm, s, cols, op, bits)
        self.ledger.read(self.dac.output_uv(DAC_V_READ), float(s_total), n_frames * nc)
        self._add_saturated(at_rails)
        return adc.to_word(out.ravel())

    def _multiply_compiled(
        self, masks: list[tuple[int, arraymath.RowMasks]], block: NDArray[Any], n_frames: int, nc: int, bits: int,
        cols: NDArray[np.int64], op: arraymath.ReadOp,
    ) -> NDArray[np.uint32]:  # fmt: skip
        """The end of ``_multiply`` on the compiled path (numpy): the products of the row masks with G (one
        source: its mask's product, scaled in the kernel; several: their exact int64 sum), then the
        read-out, the shift and add, the SAT_COUNT tally and the sum of S for the ledger in one pass
        (arraymath.masked_multiply_codes: the codes of readout_codes, the same sample keys, in threads)."""
        out, at_rails, s_total = arraymath.masked_multiply_codes(self.xm, masks, block, n_frames, nc, bits, cols, op)
        self.ledger.read(self.dac.output_uv(DAC_V_READ), float(s_total), n_frames * nc)
        self._add_saturated(at_rails)
        return out.ravel().view(np.uint32)  # adc.to_word of int32 sums: their bits (MULTIPLY_RESULT, adc.WHOLE_WORD)
