"""Pin-level models of the board around the overlay, for the cocotb benches (runs inside the simulator).

DAC80508 (SPI mode 1 frames -> rramsim.dac.Dac80508), the SN74HC595 chain with its CD4051B muxes, the
SL/WL drivers, the column multiplexers and the ADS8324s (rramctl.hw.adc.serial_bits).  The crossbar
physics is rramsim's per-event API (rramsim.crossbar.Crossbar: one pulse or one ADC sample per call,
keyed by op serial and index), never a second copy: this file only turns pin activity into those calls.

Every model also checks the datasheet timing it relies on and records violations in ``violations``.
What the pins cannot tell apart, the model reads from the RTL (documented in docs/hdl.md): the op
serial (rising u_seq.busy = an accepted START) and the opcode (u_seq.op), because a FORM and a RESET
pulse look the same on the pins and only the emulator's physics tells them apart.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
from cocotb.handle import SimHandleBase
from cocotb.simtime import get_sim_time
from cocotb.triggers import FallingEdge, First, RisingEdge, ValueChange
from rramctl.hw import adc
from rramctl.protocol import (
    CHAIN_NIBBLE_BITS,
    CHAIN_NIBBLE_INH,
    CHAIN_NIBBLE_SELECT,
    PL_CLOCK_HZ,
    VERIFY_READS_PER_CELL,
    DacChannel,
    MuxSource,
    Opcode,
    SlMode,
)
from rramsim.config import ChipModelConfig
from rramsim.crossbar import Crossbar
from rramsim.dac import Dac80508
from rramsim.overlay import source_codes
from rramsim.timing import DAC_FRAME_BITS

CLK_NS = 1_000_000_000 // PL_CLOCK_HZ
FORM, RESET, SET, PROGRAM = Opcode.FORM, Opcode.RESET, Opcode.SET, Opcode.PROGRAM
SL_FLOAT, SL_GND, SL_VSL, SL_SENSE = SlMode
DAC_V_SL, DAC_V_BL, DAC_V_WL, DAC_V_READ = DacChannel

# Datasheet timing the benches check (minimums, ns).
DAC_SCLK_PERIOD_NS = 20  # DAC80508: 50 MHz SCLK max
DAC_SYNC_HIGH_NS = 20  # DAC80508: SYNC high between frames (ours: at least one SCLK period)
HC595_SETUP_NS = 25  # SN74HC595 at 4.5 V: SER setup to SRCLK rising
HC595_PULSE_NS = 20  # SN74HC595 at 4.5 V: SRCLK / RCLK pulse width
ADS8324_FRAME_CLOCKS = adc.FRAME_CLOCKS  # 22 DCLKs per conversion (rramctl.hw.adc)


def now_ns() -> float:
    return float(get_sim_time("ns"))


@dataclass
class OpTrace:
    """What the model saw during one operation."""

    serial: int
    pulses: list[tuple[int, int]] = field(default_factory=list)  # (pulse width in clocks, cells)
    samples: int = 0


class Board:
    """The whole board: start with ``Board(dut, config).start()``."""

    def __init__(self, dut: SimHandleBase, config: ChipModelConfig, nadc: int) -> None:
        self.dut = dut
        self.config = config
        self.rows, self.cols, self.nadc = config.rows, config.cols, nadc
        self.crossbar = Crossbar(config)
        self.dac = Dac80508()
        self.dac_frames: list[int] = []
        self.chain = 0  # shift register contents, bit q = chain position q
        self.latched = 0  # output latch
        self.serial = 0
        self.ops: list[OpTrace] = []
        self.violations: list[str] = []
        self._last_read = False  # PROGRAM: was the last event a verify read (vs a pulse)?
        self._cell = -1
        self._k = 0
        self.inject: Iterator[int] | None = None  # test hook: ADC codes to return instead of the physics'

    def start(self) -> Board:
        from cocotb import start_soon

        self.dut.dac_sdo.value = 0
        self.dut.adc_dout.value = 0
        for coro in (self._dac(), self._chain(), self._ops(), self._drive(), self._adc()):
            start_soon(coro)
        return self

    def _fail(self, what: str) -> None:
        self.violations.append(f"{now_ns():.0f} ns: {what}")

    # ---- DAC80508 -------------------------------------------------------------------------
    async def _dac(self) -> None:
        d = self.dut
        last_sync_rise = -1e9
        while True:
            await FallingEdge(d.dac_sync_n)
            if now_ns() - last_sync_rise < DAC_SYNC_HIGH_NS:
                self._fail("DAC80508 SYNC high time too short")
            sdo = copy.deepcopy(self.dac).transfer(0)  # what the part shifts out during this frame
            bits: list[int] = []
            last_rise = None
            while True:
                trig = await First(RisingEdge(d.dac_sclk), FallingEdge(d.dac_sclk), RisingEdge(d.dac_sync_n))
                if trig is RisingEdge(d.dac_sync_n) or int(d.dac_sync_n.value):
                    break
                if int(d.dac_sclk.value):  # rising edge: the DAC drives SDO (mode 1)
                    if last_rise is not None and now_ns() - last_rise < DAC_SCLK_PERIOD_NS:
                        self._fail("DAC80508 SCLK faster than 50 MHz")
                    last_rise = now_ns()
                    d.dac_sdo.value = (sdo >> (DAC_FRAME_BITS - 1 - len(bits))) & 1 if len(bits) < DAC_FRAME_BITS else 0
                else:  # falling edge: the DAC latches SDIN
                    bits.append(int(d.dac_sdin.value))
            last_sync_rise = now_ns()
            if int(d.dac_sclk.value):
                self._fail("DAC80508 SCLK not idle low at SYNC rise (mode 1)")
            frame = int("".join(map(str, bits)) or "0", 2)
            if len(bits) == DAC_FRAME_BITS:
                self.dac_frames.append(frame)
                self.dac.transfer(frame)
            else:
                self._fail(f"DAC80508 frame of {len(bits)} bits")

    # ---- SN74HC595 chain + CD4051B ---------------------------------------------------------
    async def _chain(self) -> None:
        d = self.dut
        mask = (1 << (CHAIN_NIBBLE_BITS * self.rows)) - 1
        ser_change = 0.0
        last_ser = int(d.sr_ser.value)
        while True:
            await First(RisingEdge(d.sr_srclk), RisingEdge(d.sr_rclk), ValueChange(d.sr_ser))
            ser = int(d.sr_ser.value)
            if ser != last_ser:
                ser_change, last_ser = now_ns(), ser
                continue
            if int(d.sr_srclk.value) and not int(d.sr_rclk.value):
                if now_ns() - ser_change < HC595_SETUP_NS:
                    self._fail("SN74HC595 SER setup to SRCLK too short")
                self.chain = ((self.chain << 1) | ser) & mask
            elif int(d.sr_rclk.value):
                self.latched = self.chain

    def mux_state(self) -> tuple[np.ndarray, np.ndarray]:
        """(select, inhibit) of every BL's CD4051B; OE high lets the pull-ups inhibit all (docs/hdl.md)."""
        nb = CHAIN_NIBBLE_BITS  # BL r's CHAIN_NIBBLE at chain bits nb*r .. nb*r + nb-1 (docs/protocol.md)
        nib = np.array([(self.latched >> (nb * r)) & ((1 << nb) - 1) for r in range(self.rows)], dtype=np.int64)
        select = CHAIN_NIBBLE_SELECT.get(nib)
        inhibit = CHAIN_NIBBLE_INH.get(nib).astype(bool) | bool(int(self.dut.sr_oe_n.value))
        return select, inhibit

    def source_codes(self) -> np.ndarray:
        return source_codes(self.dac)  # the emulator's: CD4051B channel -> drive code

    # ---- operations, pulses and samples ------------------------------------------------------
    def _op(self) -> int:
        return int(self.dut.u_seq.op.value)

    async def _ops(self) -> None:
        while True:
            await RisingEdge(self.dut.u_seq.busy)
            self.serial += 1  # an accepted START (docs/emulator.md: op serial)
            self.crossbar.drift()
            self.ops.append(OpTrace(self.serial))
            self._last_read, self._cell, self._k = False, -1, 0

    def _window(self) -> np.ndarray:
        lo, hi = int(self.dut.col_lo.value), int(self.dut.col_hi.value)
        return np.arange(lo, hi + 1, dtype=np.int64)

    async def _drive(self) -> None:
        d = self.dut
        while True:
            await RisingEdge(d.drive_en)
            t0 = now_ns()
            select, inhibit = self.mux_state()
            sl_mode, wl_on, cols = int(d.sl_mode.value), bool(int(d.wl_en.value)), self._window()
            await FallingEdge(d.drive_en)
            if sl_mode == SL_SENSE:
                continue  # a read: the ADC model samples while the lines are driven
            cycles = round((now_ns() - t0) / CLK_NS)
            self._pulse(select, inhibit, sl_mode, wl_on, cols, cycles)

    def _pulse(self, select: np.ndarray, inhibit: np.ndarray, sl_mode: int, wl_on: bool, cols: np.ndarray,
               cycles: int) -> None:  # fmt: skip
        op, xb, dac, trace = self._op(), self.crossbar, self.dac, self.ops[-1]
        v_wl = dac.output_uv(DAC_V_WL) if wl_on else 0
        grounded = np.flatnonzero(~inhibit & (select == MuxSource.GND))
        at_vbl = np.flatnonzero(~inhibit & (select == MuxSource.BL_PROG))
        index = len(trace.pulses)
        if op == FORM and sl_mode == SL_VSL:
            r, c = np.meshgrid(grounded, cols, indexing="ij")
            xb.form(r.ravel(), c.ravel(), dac.output_uv(DAC_V_SL), v_wl, cycles)
            n = r.size
        elif op in (RESET, SET, PROGRAM):
            reset_dir = sl_mode == SL_VSL and grounded.size == 1 and at_vbl.size == 0
            set_dir = sl_mode == SL_GND and at_vbl.size == 1 and grounded.size == 0
            if cols.size != 1 or not (reset_dir or set_dir):
                self._fail(f"op {op}: pulse does not address one cell (sl_mode {sl_mode}, cols {cols})")
                return
            row = grounded if reset_dir else at_vbl
            if op == PROGRAM:
                v = dac.output_uv(DAC_V_BL) if set_dir else dac.output_uv(DAC_V_SL)
                xb.program_pulse(row, cols, [1 if set_dir else -1], v, v_wl, cycles, self.serial, [self._cell],
                                 [self._k])  # fmt: skip
                self._k += 1
                self._last_read = False
            elif op == RESET and reset_dir:
                xb.reset(row, cols, dac.output_uv(DAC_V_SL), v_wl, cycles, self.serial, [index])
            elif op == SET and set_dir:
                xb.set(row, cols, dac.output_uv(DAC_V_BL), v_wl, cycles, self.serial, [index])
            else:
                self._fail(f"op {op}: pulse in the wrong direction")
            n = 1
        else:
            self._fail(f"op {op}: unexpected pulse (sl_mode {sl_mode})")
            return
        trace.pulses.append((cycles, n))

    def _sample_index(self, op: int) -> int:
        trace = self.ops[-1]
        if op != PROGRAM:
            return trace.samples
        if not self._last_read:  # a read after a pulse (or the first): same cell, read number k
            if self._cell < 0:
                self._cell, self._k = 0, 0
        else:  # a read after a read: the next cell of the list
            self._cell, self._k = self._cell + 1, 0
        self._last_read = True
        return self._cell * VERIFY_READS_PER_CELL + self._k

    def _drive_sum(self, col: int) -> int:
        d = self.dut
        lo, hi = int(d.col_lo.value), int(d.col_hi.value)
        sensed = int(d.drive_en.value) and int(d.sl_mode.value) == SL_SENSE and lo <= col <= hi
        if not sensed:
            return 0
        select, inhibit = self.mux_state()
        v = np.where(inhibit, 0, self.source_codes()[select])
        # the word lines gate every current: WL off (or its DAC level below the transistor's threshold)
        # leaves only the off-state leakage (docs/emulator.md, "Device model"), as in the emulator
        v_wl = self.dac.output_uv(DAC_V_WL) if int(d.wl_en.value) else 0
        g = self.crossbar.conductance(v_wl, np.s_[: self.rows, col])
        return int(np.dot(v.astype(object), g.astype(object)))

    async def _adc(self) -> None:
        d = self.dut
        all_high = (1 << self.nadc) - 1
        while True:
            await ValueChange(d.adc_cs_n)
            cs = int(d.adc_cs_n.value)
            if cs == all_high:
                continue
            low = [a for a in range(self.nadc) if not (cs >> a) & 1]
            if len(low) != 1:
                self._fail(f"ADS8324: {len(low)} chip selects low at once")
                continue
            a = low[0]
            col = int(d.col_mux.value) * self.nadc + a
            index = self._sample_index(self._op())
            s = self._drive_sum(col) if col < self.cols else 0
            code = int(self.crossbar.sample_codes(np.array([s]), int(d.tia_gain.value), self.serial,
                                                  np.array([index]))[0])  # fmt: skip
            if self.inject is not None:
                code = next(self.inject)
            self.ops[-1].samples += 1
            bits = adc.serial_bits(code)
            self._dout(a, bits[0])
            rises = 0
            while True:  # DOUT changes on the falling DCLK edge (datasheet); the RTL captures on the rising
                await First(RisingEdge(d.adc_dclk), FallingEdge(d.adc_dclk), ValueChange(d.adc_cs_n))
                if (int(d.adc_cs_n.value) >> a) & 1:
                    break
                if int(d.adc_dclk.value):
                    rises += 1
                else:
                    self._dout(a, bits[rises] if rises < len(bits) else 0)
            if rises != ADS8324_FRAME_CLOCKS:
                self._fail(f"ADS8324 frame of {rises} DCLKs, expected {ADS8324_FRAME_CLOCKS}")

    def _dout(self, a: int, bit: int) -> None:
        dout = int(self.dut.adc_dout.value) & ~(1 << a)
        self.dut.adc_dout.value = dout | (bit << a)
