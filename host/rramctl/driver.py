"""The driver: operations -> register writes, DAC80508 frames, chain frames and DMA streams.

It speaks docs/protocol.md to any Transport (pynq, serial agent, emulator, cocotb) and knows
nothing of volts or microsiemens: the chip layer (rramctl.chip) converts and validates those.
Every operation leaves the board in the safe idle state (DAC outputs at 0 V, lines floating),
also when it fails.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np
from numpy.typing import NDArray

from rramctl import regmap as R
from rramctl.config import DEFAULT_READ_GATE_V
from rramctl.errors import DeviceError, UsageError
from rramctl.geometry import COLS, ROWS, Region, check_cells
from rramctl.hw import adc, dac80508, linedrive
from rramctl.protocol import (
    CELL_COL,
    CELL_ROW,
    DAC_FRAME_DATA,
    MAX_BITS,
    MAX_PULSE_CYCLES,
    PROGRAM_RESULT_CODE,
    PROGRAM_RESULT_PULSES,
    PROGRAM_TARGET_CODE,
    DacChannel,
    Opcode,
    OverlayErrorCode,
    TiaGain,
)
from rramctl.transport.base import RegWrite, Transport

# Short names for the generated protocol values (rramctl.protocol, docs/registers.md).
NOP, FORM, RESET, SET, PROGRAM, READ, MULTIPLY, IDLE = Opcode
DAC_V_SL, DAC_V_BL, DAC_V_WL, DAC_V_READ = map(int, DacChannel)
USED_DAC_CHANNELS = tuple(map(int, DacChannel))
# DAC_LIMIT register of each rated channel
DAC_LIMIT_REGS: dict[DacChannel, int] = {ch: getattr(R, f"DAC_LIMIT_{ch.name}") for ch in DacChannel}

CELLS_PER_TRANSACTION = 65_536  # ours: 256 KiB of cell words per DMA transaction
FRAMES_PER_TRANSACTION = 4_096  # ours: 1 MiB of chain frames per DMA transaction
READ_GATE_CODE = dac80508.volts_to_code(DEFAULT_READ_GATE_V)


class OverlayError(DeviceError):
    """The overlay refused or failed an operation (STATUS.error) or looks like something else."""


@runtime_checkable
class InterruptSource(Protocol):
    """A transport that can block on the overlay's interrupt line (PynqTransport on a board)."""

    has_interrupt: bool

    def wait_interrupt(self, timeout_s: float) -> bool:
        """True once the line is high; False after ``timeout_s`` (the driver then polls STATUS)."""
        ...


def _error_name(code: int) -> str:
    return OverlayErrorCode(code).name if code in OverlayErrorCode._value2member_map_ else str(code)


@dataclass(frozen=True)
class ProgramResult:
    pulses: NDArray[np.int64]  # pulses applied per cell
    final_codes: NDArray[np.int64]  # last verify read per cell (read-range ADC code)


def check_inputs(inputs: NDArray[np.integer], n_rows: int, bits: int) -> NDArray[np.integer[Any]]:
    """(B, n_rows) unsigned ``bits``-bit integers for a MULTIPLY (BITS register 1..MAX_BITS); returns
    them as an array of their own integer type (no copy)."""
    try:
        x = np.asarray(inputs)
    except (ValueError, TypeError, OverflowError) as e:  # a ragged list and the like
        raise UsageError(f"inputs must be an integer array of shape (batch, {n_rows}): {e}") from None
    if isinstance(bits, bool) or not isinstance(bits, int | np.integer) or not 1 <= bits <= MAX_BITS:
        raise UsageError(f"input bit width must be 1-{MAX_BITS}, got {bits}")
    if x.ndim != 2 or x.shape[1] != n_rows:
        raise UsageError(f"inputs must have shape (batch, {n_rows}), got {x.shape}")
    if not np.issubdtype(x.dtype, np.integer):
        raise UsageError(f"inputs must be integers, got {x.dtype}")
    signed = not np.issubdtype(x.dtype, np.unsignedinteger)  # (an unsigned array has no value below 0 to find)
    if x.size and (signed and x.min() < 0 or x.max() >= (1 << bits)):
        raise UsageError(f"inputs must be in 0..{(1 << bits) - 1} for {bits}-bit inputs")
    return x


def program_reply(out: NDArray[np.uint32]) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """PROGRAM's output words (docs/protocol.md): (pulses applied, final read-range code) of each cell, the
    code in the low 16 bits as two's complement."""
    words = out.astype(np.int64)
    return PROGRAM_RESULT_PULSES.get(words), PROGRAM_RESULT_CODE.get_signed(words)


class Driver:
    """Register/stream sequences for every overlay operation."""

    def __init__(
        self,
        transport: Transport,
        *,
        poll_timeout_s: float = 30.0,
        settle_cycles: int = R.SETTLE_CYCLES_CYCLES.reset,
        read_gate_code: int = READ_GATE_CODE,
    ) -> None:
        self.transport = transport
        self.poll_timeout_s = poll_timeout_s
        self.settle_cycles = settle_cycles
        self.read_gate_code = read_gate_code  # V_WL of every READ and MULTIPLY: the access transistors on
        self.saturated = 0  # ADC samples at either end of the range in the last read_region / multiply call
        self._dac_ready = False
        # the interrupt line, where the transport has one (a protocol check once, not per operation)
        self._irq: InterruptSource | None = transport if isinstance(transport, InterruptSource) else None

    # ---- identity and the DAC ---------------------------------------------------------
    def identify(self) -> tuple[int, int]:
        """Check the overlay's ID and register-map major version; return (major, minor)."""
        ident = self.transport.read_reg(R.ID)
        if ident != R.ID_VALUE.reset:
            raise OverlayError(f"no rramctl overlay here: ID reads {ident:#010x}, expected {R.ID_VALUE.reset:#010x}")
        version = self.transport.read_reg(R.VERSION)
        major, minor = R.VERSION_MAJOR.get(version), R.VERSION_MINOR.get(version)
        if major != R.VERSION_MAJOR.reset:
            raise OverlayError(f"overlay register map v{major}.{minor}; this driver needs v{R.VERSION_MAJOR.reset}.x")
        return major, minor

    def write_dac_frame(self, frame: int) -> int:
        """Shift one 24-bit frame out to the DAC80508; return what the DAC sent back.

        Raises OverlayError(OVER_RATING) when the overlay refused the frame (above DAC_LIMIT)."""
        self.transport.write_reg(R.DAC_FRAME, frame)
        rdata = self.transport.read_reg(R.DAC_RDATA)
        if R.DAC_RDATA_REFUSED.get(rdata):
            self.transport.write_reg(R.CTRL, R.CTRL_CLEAR.put(1))
            raise OverlayError(f"DAC frame {frame:#08x} refused: above the overlay's locked rating",
                               OverlayErrorCode.OVER_RATING)  # fmt: skip
        return R.DAC_RDATA_FRAME.get(rdata)

    def lock_ratings(self, limits: Mapping[int, int]) -> dict[int, int]:
        """Write the highest DAC code of each rated channel (DacChannel -> code) into DAC_LIMIT_* and lock
        them until the PL is reset; return the limits now in force (read back).  Channels not named keep
        what they hold.  Raises OverlayError if the overlay was locked before with a looser limit."""
        for channel, code in limits.items():
            self.transport.write_reg(DAC_LIMIT_REGS[DacChannel(channel)], R.DAC_LIMIT_V_SL_CODE.put(code))
        self.transport.write_reg(R.RATINGS_LOCK, R.RATINGS_LOCK_LOCKED.put(1))
        held: dict[int, int] = {
            ch: R.DAC_LIMIT_V_SL_CODE.get(self.transport.read_reg(off)) for ch, off in DAC_LIMIT_REGS.items()
        }
        looser = {DacChannel(ch).name: held[ch] for ch, code in limits.items() if held[ch] > code}
        if looser or not R.RATINGS_LOCK_LOCKED.get(self.transport.read_reg(R.RATINGS_LOCK)):
            raise OverlayError(f"the overlay keeps looser DAC limits {looser} than asked (locked before; reset the PL)")
        return held

    def saturated_samples(self) -> int:
        """ADC samples of the last operation whose code sat on a rail (SAT_COUNT)."""
        return self.transport.read_reg(R.SAT_COUNT)

    def init_dac(self) -> None:
        for frame in dac80508.init_frames():
            self.write_dac_frame(frame)
        self._dac_ready = True

    def read_dac_register(self, address: int) -> int:
        """Read a DAC80508 register (the data arrives on the following NOP frame)."""
        self.write_dac_frame(dac80508.build_frame(address, 0, read=True))
        echo = self.write_dac_frame(dac80508.build_frame(dac80508.NOP, 0))
        return DAC_FRAME_DATA.get(echo)

    def set_levels(self, levels: Mapping[int, int]) -> None:
        if not self._dac_ready:
            self.init_dac()
        for channel, code in levels.items():
            self.write_dac_frame(dac80508.channel_frame(channel, code))

    def safe_idle(self) -> None:
        """Every DAC channel the board uses back to 0 V; the overlay floats every line."""
        for channel in USED_DAC_CHANNELS:
            self.transport.write_reg(R.DAC_FRAME, dac80508.channel_frame(channel, 0))

    # ---- one operation -----------------------------------------------------------------
    def status(self) -> int:
        return self.transport.read_reg(R.STATUS)

    def run(
        self,
        opcode: int,
        params: Mapping[int, int],
        levels: Mapping[int, int],
        send: NDArray[np.uint32] | linedrive.BitplaneStream | None = None,
        recv_words: int = 0,
    ) -> NDArray[np.uint32]:
        """Run one overlay operation and return its output words; always ends in safe idle. A parameter that
        does not fit its register field is a UsageError before anything is written."""
        words = {offset: self._param_word(offset, value) for offset, value in ((R.OPCODE, opcode), *params.items())}
        status = self.status()
        if R.STATUS_BUSY.get(status):
            raise OverlayError("the overlay is busy with another operation", OverlayErrorCode.BUSY)
        try:
            self.set_levels(levels)
            self.transport.write_reg(R.CTRL, R.CTRL_CLEAR.put(1) | self._irq_en)
            for offset, word in words.items():  # OPCODE first, then the parameters
                self.transport.write_reg(offset, word)
            out = self.transport.transact(send, recv_words, RegWrite(R.CTRL, R.CTRL_START.put(1) | self._irq_en))
            self._wait_done(opcode)
        finally:
            self.safe_idle()
        if len(out) != recv_words:
            raise OverlayError(f"{Opcode(opcode).name}: expected {recv_words} output words, got {len(out)}")
        return out

    @staticmethod
    def _param_word(offset: int, value: int) -> int:
        """The register word of a one-field register (regmap.VALUE_FIELD) holding ``value``."""
        field = R.VALUE_FIELD[offset]
        try:
            return field.put(int(value))
        except ValueError:
            name = next(n for n, o in R.REGISTERS.items() if o == offset)
            raise UsageError(f"{name} = {value} does not fit its {field.width}-bit register field") from None

    @property
    def _irq_en(self) -> int:
        """CTRL.irq_en where the transport waits on the interrupt (DONE or ERROR raises it), else 0."""
        return R.CTRL_IRQ_EN.put(1) if self._irq is not None and self._irq.has_interrupt else 0

    def _wait_done(self, opcode: int) -> None:
        deadline = time.monotonic() + self.poll_timeout_s
        status = self.status()
        if self._irq is not None and self._irq.has_interrupt:
            # as PYNQ's DMA driver waits (``while not idle: await interrupt.wait()``): an interrupt may be stale (the
            # intc latches the level line still high from the last operation when pynq acknowledges it), so wait
            # again while BUSY; poll only once a wait timed out or failed
            while R.STATUS_BUSY.get(status) and (left := deadline - time.monotonic()) > 0:
                woke = self._irq.wait_interrupt(left)
                status = self.status()
                if not woke:
                    break
        while R.STATUS_BUSY.get(status):
            if time.monotonic() > deadline:
                self.transport.write_reg(R.CTRL, R.CTRL_ABORT.put(1))
                raise OverlayError(f"{Opcode(opcode).name} did not finish within {self.poll_timeout_s} s; aborted")
            time.sleep(0.0005)
            status = self.status()
        if R.STATUS_ERROR.get(status):
            code = R.STATUS_ERR_CODE.get(status)
            raise OverlayError(f"{Opcode(opcode).name} failed in the overlay: {_error_name(code)}", code)
        if not R.STATUS_DONE.get(status):
            raise OverlayError(f"{Opcode(opcode).name}: overlay is idle but DONE is not set (status {status:#x})")

    # ---- the operations ----------------------------------------------------------------
    @staticmethod
    def _pulse(cycles: int) -> int:
        if not 1 <= cycles <= MAX_PULSE_CYCLES:
            raise OverlayError(f"pulse of {cycles} cycles is outside 1-{MAX_PULSE_CYCLES}", OverlayErrorCode.BAD_PULSE)
        return cycles

    @staticmethod
    def _region_params(region: Region) -> dict[int, int]:
        return {R.ROW_START: region.row, R.ROW_COUNT: region.n_rows, R.COL_START: region.col,
                R.COL_COUNT: region.n_cols}  # fmt: skip

    def form(self, region: Region, pulse_cycles: int, v_sl: int, v_wl: int) -> None:
        params = self._region_params(region) | {R.PULSE_CYCLES: self._pulse(pulse_cycles)}
        self.run(FORM, params, {DAC_V_SL: v_sl, DAC_V_WL: v_wl})

    @staticmethod
    def cell_words(cells: NDArray[np.integer]) -> NDArray[np.uint32]:
        cells = check_cells(cells)
        return (CELL_ROW.put(cells[:, 0]) | CELL_COL.put(cells[:, 1])).astype(np.uint32)

    def _cell_op(self, opcode: int, cells: NDArray[np.integer], pulse_cycles: int, levels: Mapping[int, int]) -> int:
        words = self.cell_words(cells)  # validates every cell before anything is written
        self._pulse(pulse_cycles)
        for start in range(0, len(words), CELLS_PER_TRANSACTION):
            chunk = words[start : start + CELLS_PER_TRANSACTION]
            self.run(opcode, {R.CELL_COUNT: len(chunk), R.PULSE_CYCLES: pulse_cycles}, levels, send=chunk)
        return len(words)

    def reset_cells(self, cells: NDArray[np.integer], pulse_cycles: int, v_sl: int, v_wl: int) -> int:
        """One RESET pulse per cell, in as few DMA transactions as the chunk size allows."""
        return self._cell_op(RESET, cells, pulse_cycles, {DAC_V_SL: v_sl, DAC_V_WL: v_wl})

    def set_cells(self, cells: NDArray[np.integer], pulse_cycles: int, v_bl: int, v_wl: int) -> int:
        return self._cell_op(SET, cells, pulse_cycles, {DAC_V_BL: v_bl, DAC_V_WL: v_wl})

    def program_cells(
        self,
        cells: NDArray[np.integer],
        target_codes: NDArray[np.integer],
        *,
        pulse_cycles: int,
        tolerance_ppm: int,
        max_pulses: int,
        v_prog: int,
        v_wl: int,
        v_read: int,
    ) -> ProgramResult:
        """Closed-loop write-verify in the overlay (docs/protocol.md, PROGRAM)."""
        words = self.cell_words(cells)
        try:
            targets = np.asarray(target_codes, dtype=np.int64).ravel()
        except (ValueError, TypeError, OverflowError) as e:
            raise UsageError(f"target codes must be integers: {e}") from None
        if targets.shape != (len(words),):
            raise UsageError(f"{len(words)} cells but {targets.size} targets")
        if targets.size and (targets.min() < 1 or targets.max() > adc.CODE_MAX):
            raise UsageError(f"target codes must be 1-{adc.CODE_MAX} (read range)")
        self._pulse(pulse_cycles)
        levels = {DAC_V_SL: v_prog, DAC_V_BL: v_prog, DAC_V_WL: v_wl, DAC_V_READ: v_read}
        pulses, finals = [], []
        for start in range(0, len(words), CELLS_PER_TRANSACTION):
            w = words[start : start + CELLS_PER_TRANSACTION]
            t = PROGRAM_TARGET_CODE.put_signed(targets[start : start + CELLS_PER_TRANSACTION]).astype(np.uint32)
            send = np.stack([w, t], axis=1).ravel()  # (CELL, PROGRAM_TARGET) word pairs
            params = {R.CELL_COUNT: len(w), R.PULSE_CYCLES: pulse_cycles, R.VERIFY_TOL: tolerance_ppm,
                      R.MAX_PULSES: max_pulses, R.SETTLE_CYCLES: self.settle_cycles,
                      R.TIA_GAIN: TiaGain.READ}  # fmt: skip
            n_pulses, final = program_reply(self.run(PROGRAM, params, levels, send=send, recv_words=len(w)))
            pulses.append(n_pulses)
            finals.append(final)
        if not pulses:
            return ProgramResult(np.zeros(0, np.int64), np.zeros(0, np.int64))
        return ProgramResult(np.concatenate(pulses), np.concatenate(finals))

    def read_cells(self, cells: NDArray[np.integer], v_read: int, v_wl: int | None = None) -> NDArray[np.int64]:
        """Read each listed cell alone (read range, V_WL = ``v_wl``, default the read gate); return one ADC code
        per cell, in the list's order. A PROGRAM with MAX_PULSES = 0 (docs/protocol.md, "Verify-only PROGRAM"):
        its first verify read is its only step, so no pulse is applied whatever the target; the programming
        levels (DAC 0-1) are not written. A reply that reports a pulse is refused (DeviceError)."""
        words = self.cell_words(cells)
        levels = {DAC_V_WL: self.read_gate_code if v_wl is None else v_wl, DAC_V_READ: v_read}
        codes = np.empty(len(words), dtype=np.int64)
        self.saturated = 0
        for start in range(0, len(words), CELLS_PER_TRANSACTION):
            w = words[start : start + CELLS_PER_TRANSACTION]
            t = PROGRAM_TARGET_CODE.put_signed(np.ones(len(w), dtype=np.int64)).astype(np.uint32)  # unused: no pulse
            send = np.stack([w, t], axis=1).ravel()
            params = {R.CELL_COUNT: len(w), R.PULSE_CYCLES: 1, R.VERIFY_TOL: 0, R.MAX_PULSES: 0,
                      R.SETTLE_CYCLES: self.settle_cycles, R.TIA_GAIN: TiaGain.READ}  # fmt: skip
            pulses, finals = program_reply(self.run(PROGRAM, params, levels, send=send, recv_words=len(w)))
            if pulses.any():
                raise DeviceError("a verify-only PROGRAM (MAX_PULSES = 0) reported pulses: the overlay does not "
                                  "follow docs/protocol.md")  # fmt: skip
            codes[start : start + len(w)] = finals
            self.saturated += self.saturated_samples()
        return codes

    def read_region(
        self, region: Region, v_read: int, tia_gain: int = TiaGain.READ, v_wl: int | None = None
    ) -> NDArray[np.int64]:
        """Read every cell of a region alone (V_WL = ``v_wl``, default the read gate); return ADC codes,
        shape (n_rows, n_cols)."""
        params = self._region_params(region) | {R.TIA_GAIN: tia_gain, R.SETTLE_CYCLES: self.settle_cycles}
        levels = {DAC_V_READ: v_read, DAC_V_WL: self.read_gate_code if v_wl is None else v_wl}
        out = self.run(READ, params, levels, recv_words=region.n_rows * region.n_cols)
        self.saturated = self.saturated_samples()
        return adc.from_word(out).astype(np.int64).reshape(region.shape)  # READ_RESULT words

    def multiply(
        self,
        inputs: NDArray[np.integer],
        bits: int,
        region: Region,
        v_read: int,
        tia_gain: int = TiaGain.MULTIPLY,
    ) -> NDArray[np.int64]:
        """Bit-serial multiply: (B, n_rows) unsigned ``bits``-bit inputs on the region's rows.

        Returns the overlay's shift-and-added codes, shape (B, n_cols)."""
        x = check_inputs(inputs, region.n_rows, bits)
        x8 = np.asarray(inputs).astype(np.uint8, copy=False)  # 1..MAX_BITS (<= 8, linedrive) bit inputs (checked)
        batch_per_tx = max(1, FRAMES_PER_TRANSACTION // bits)
        codes = np.empty((x.shape[0], region.n_cols), dtype=np.int64)
        self.saturated = 0
        for b0 in range(0, x.shape[0], batch_per_tx):
            nb = min(batch_per_tx, x.shape[0] - b0)
            params = {R.BATCH: nb, R.BITS: bits, R.COL_START: region.col, R.COL_COUNT: region.n_cols,
                      R.ROW_START: region.row, R.ROW_COUNT: region.n_rows, R.TIA_GAIN: tia_gain,
                      R.SETTLE_CYCLES: self.settle_cycles}  # fmt: skip
            # one chain frame per bit-plane, vector-major, LSB first (encoded by the transport)
            send = linedrive.BitplaneStream(x8[b0 : b0 + nb], bits, region.row)
            levels = {DAC_V_READ: v_read, DAC_V_WL: self.read_gate_code}
            out = self.run(MULTIPLY, params, levels, send=send, recv_words=nb * region.n_cols)
            self.saturated += self.saturated_samples()
            codes[b0 : b0 + nb] = adc.from_word(out).reshape(nb, region.n_cols)  # MULTIPLY_RESULT words, in place
        return codes

    def counters(self) -> dict[str, int]:
        return {
            "op_count": self.transport.read_reg(R.OP_COUNT),
            "pulse_count": self.transport.read_reg(R.PULSE_COUNT),
        }


__all__ = ["Driver", "OverlayError", "ProgramResult", "ROWS", "COLS"]
