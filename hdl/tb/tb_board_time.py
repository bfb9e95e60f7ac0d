"""cocotb bench of rram_overlay_top's operation times against the emulator's board clock (rramsim.timing).

Each operation runs on the RTL with its packet queued on MM2S before START and S2MM always ready (the DMA
never stalls the sequencer); the bench counts the clocks STATUS.BUSY (``u_seq.busy``) is high and requires
exactly ``timing.op_cycles`` for the build's parameters (ROWS, SR_HALF, ADC_HALF, ADC_MIN_CYCLES, read from
the DUT), and the emulated overlay, given the same registers and packet, advances its board clock by the same
count.  Run by hdl/tb/test_hdl.py (builds ``board-time-fast``: the bench clocks, ``board-time-default``: the
board's clocks).
"""

from __future__ import annotations

import os

import cocotb
import numpy as np
from cocotb.triggers import ClockCycles, RisingEdge
from cocotb_transport import CocotbTransport
from rramctl import regmap as R
from rramctl.hw import linedrive
from rramctl.protocol import CELL_COL, CELL_ROW, PROGRAM_RESULT_PULSES, Opcode, TiaGain
from rramsim import timing
from rramsim.config import ChipModelConfig
from rramsim.overlay import EmulatedOverlay
from tb_overlay import read_levels, setup

ROWS, COLS, NADC = (int(os.environ.get(k, d)) for k, d in (("TB_ROWS", 16), ("TB_COLS", 16), ("TB_NADC", 2)))


async def busy_clocks(
    dut, t: CocotbTransport, regs: dict[int, int], packet: np.ndarray, recv: int
) -> tuple[int, np.ndarray]:
    """Run one operation; the clocks STATUS.BUSY was high and its output words."""
    await t.write_reg_async(R.CTRL, R.CTRL_CLEAR.put(1))
    t.sink.clear()
    if packet.size:
        await t.source.send(packet.astype("<u4").tobytes())
    for off, val in regs.items():
        await t.write_reg_async(off, val)
    await t.write_reg_async(R.CTRL, R.CTRL_START.put(1))
    while not int(dut.u_seq.busy.value):
        await RisingEdge(dut.aclk)
    clocks = 0
    while int(dut.u_seq.busy.value):
        await RisingEdge(dut.aclk)
        clocks += 1
    await ClockCycles(dut.aclk, 4)
    status = await t.read_reg_async(R.STATUS)
    assert R.STATUS_DONE.get(status) and not R.STATUS_ERROR.get(status), hex(status)
    words = b""
    while not t.sink.empty():
        words += bytes(t.sink.recv_nowait().tdata)
    assert len(words) == 4 * recv, (len(words), recv)
    return clocks, np.frombuffer(words, "<u4")


def _cells(rows: list[int], cols: list[int]) -> np.ndarray:
    return CELL_ROW.put(np.array(rows, np.int64)) | CELL_COL.put(np.array(cols, np.int64))


def operations() -> dict[str, tuple[dict[int, int], np.ndarray, int]]:
    """name: (registers, MM2S packet, output words) of a small operation of each kind."""
    none = np.zeros(0, np.int64)
    planes = linedrive.bitplane_frames(np.ones((4, ROWS), np.uint8)).ravel()
    program = np.stack([_cells([1, 2], [3, 5]), np.full(2, 4_000)], axis=1).ravel()
    return {
        "FORM": ({R.OPCODE: Opcode.FORM, R.ROW_START: 0, R.ROW_COUNT: 3, R.COL_START: 0, R.COL_COUNT: 4}, none, 0),
        "RESET": ({R.OPCODE: Opcode.RESET, R.CELL_COUNT: 3}, _cells([1, 0, 5], [2, 3, 0]), 0),
        "SET": ({R.OPCODE: Opcode.SET, R.CELL_COUNT: 2}, _cells([1, 0], [2, 3]), 0),
        "PROGRAM": (
            {R.OPCODE: Opcode.PROGRAM, R.CELL_COUNT: 2, R.MAX_PULSES: 2, R.VERIFY_TOL: 0, R.TIA_GAIN: TiaGain.READ},
            program,
            2,
        ),  # fmt: skip
        "READ": (
            {
                R.OPCODE: Opcode.READ,
                R.ROW_START: 0,
                R.ROW_COUNT: 2,
                R.COL_START: 1,
                R.COL_COUNT: 3,
                R.TIA_GAIN: TiaGain.READ,
            },
            none,
            6,
        ),  # fmt: skip
        "MULTIPLY": (
            {
                R.OPCODE: Opcode.MULTIPLY,
                R.COL_START: 0,
                R.COL_COUNT: 3,
                R.BITS: 2,
                R.BATCH: 2,
                R.TIA_GAIN: TiaGain.MULTIPLY,
            },
            planes,
            6,
        ),  # fmt: skip
        "NOP": ({R.OPCODE: Opcode.NOP}, none, 0),
    }


def formula(regs: dict[int, int], out: np.ndarray, clocks: timing.Clocks, g: int, s: int, p: int) -> int:
    """timing.op_cycles of the operation (PROGRAM's pulses from its output words)."""
    op = regs[R.OPCODE]
    cells = regs.get(R.CELL_COUNT, 0)
    pulses = int(PROGRAM_RESULT_PULSES.get(out.astype(np.int64)).sum()) if op == Opcode.PROGRAM else 0
    rows = regs[R.ROW_COUNT] if op == Opcode.READ else 0
    cols = regs[R.COL_COUNT] if op in (Opcode.READ, Opcode.MULTIPLY) else 0
    batch = regs[R.BATCH] if op == Opcode.MULTIPLY else 0
    return timing.op_cycles(
        op,
        pulse_cycles=p,
        settle_cycles=s,
        guard_cycles=g,
        cells=cells,
        pulses=pulses,
        rows=rows,
        cols=cols,
        frames=batch * regs.get(R.BITS, 0),
        batch=batch,
        clocks=clocks,
    )


@cocotb.test()
async def board_time_matches_the_emulator(dut) -> None:
    """FORM, RESET, SET, PROGRAM (verify reads and pulses), READ, MULTIPLY and NOP at three register settings,
    two with a guard as long as a chain shift and longer (the second latch waits for it): the RTL's BUSY clocks
    equal rramsim.timing.op_cycles and the emulated overlay's board clock."""
    _, t = await setup(dut)
    await read_levels(t)
    clocks = timing.Clocks(rows=ROWS, sr_half=int(dut.SR_HALF.value), adc_half=int(dut.ADC_HALF.value),
                           adc_min_cycles=int(dut.ADC_MIN_CYCLES.value))  # fmt: skip
    emu = EmulatedOverlay(ChipModelConfig(rows=ROWS, cols=COLS))
    emu.clocks = clocks
    step = clocks.step_cycles()  # a guard beyond one chain shift delays the frame's second latch
    settings = ((7, 5, 20), (step, 11, 2), (step + 10, 0, 1))
    seen: list[str] = []
    for g, s, p in settings:
        for off, val in {R.GUARD_CYCLES: g, R.SETTLE_CYCLES: s, R.PULSE_CYCLES: p}.items():
            await t.write_reg_async(off, val)
            emu.write_reg(off, val)
        for name, (regs, packet, recv) in operations().items():
            rtl, out = await busy_clocks(dut, t, regs, packet, recv)
            want = formula(regs, out, clocks, g, s, p)
            for off, val in regs.items():
                emu.write_reg(off, val)
            if packet.size:
                emu.push_stream(packet.astype(np.uint32))
            before = emu.board_time_s
            emu.write_reg(R.CTRL, R.CTRL_START.put(1))
            assert emu.done and not emu.error, name
            emu_out = emu.pop_stream(recv)
            emu_clocks = round((emu.board_time_s - before) * timing.CLOCK_HZ)
            if name == "PROGRAM":  # tolerance 0: every cell takes MAX_PULSES on both
                pulses = [PROGRAM_RESULT_PULSES.get(w).tolist() for w in (out, emu_out)]
                assert pulses[0] == pulses[1] == [2, 2], (out, emu_out)
            where = f"{name} G={g} S={s} P={p}"
            assert rtl == want == emu_clocks, f"{where}: RTL {rtl}, op_cycles {want}, emulator {emu_clocks}"
            seen.append(name)
    assert len(seen) == len(settings) * len(operations())
