"""cocotb benches of rram_overlay_top (run by hdl/tb/test_hdl.py through cocotb_tools.runner on Icarus).

Block tests check each peripheral's pins against datasheet timing (the board models record every
violation); system tests go through AXI; the co-simulation runs rramctl's Driver unchanged over
CocotbTransport and compares every result with EmulatorTransport bit for bit.
The array size comes from the build parameters (TB_ROWS, TB_COLS, TB_NADC in the environment).
"""

from __future__ import annotations

import os

import cocotb
import numpy as np
from board_model import CLK_NS, Board
from cocotb.clock import Clock
from cocotb.simtime import get_sim_time
from cocotb.task import bridge
from cocotb.triggers import ClockCycles, FallingEdge, First, RisingEdge, ValueChange
from cocotb_transport import CocotbTransport
from rramctl import regmap as R
from rramctl.driver import Driver, OverlayError
from rramctl.geometry import Region
from rramctl.hw import adc, dac80508, linedrive
from rramctl.protocol import (
    CELL_COL,
    CELL_ROW,
    DAC80508_REG_BRDCAST,
    MAX_BITS,
    MAX_PULSE_CYCLES,
    DacChannel,
    MuxSource,
    Opcode,
    SlMode,
    TiaGain,
)
from rramctl.protocol import OverlayErrorCode as E
from rramctl.transport.base import RegWrite
from rramctl.transport.emulator import EmulatorTransport
from rramsim.config import ChipModelConfig

ROWS, COLS, NADC = (int(os.environ.get(k, d)) for k, d in (("TB_ROWS", 16), ("TB_COLS", 16), ("TB_NADC", 2)))
V = dac80508.volts_to_code
# Levels from seed 000 Methods: reset 2.6 V, set 3.3 V, write-verify 1.5 V, read 0.1 V; forming 3.4 V at 10 ms
# (here 3.75 V at 20 us, ours, to keep the bench short); WL 1.2 V (rramctl BoardConfig reference gate).
V_FORM, V_RESET, V_SET, V_PROG, V_READ, V_WL = V(3.75), V(2.6), V(3.3), V(1.5), V(0.1), V(1.2)


async def read_levels(t: CocotbTransport, v_read: int = V_READ) -> None:
    """V_READ on the bit lines and the word lines open (V_WL): what the driver sets for every read; with
    V_WL at 0 V the transistors stay off and a read returns leakage only (read_with_word_lines_off)."""
    await t.write_reg_async(R.DAC_FRAME, dac80508.channel_frame(DacChannel.V_READ, v_read))
    await t.write_reg_async(R.DAC_FRAME, dac80508.channel_frame(DacChannel.V_WL, V_WL))


async def setup(dut, seed: int = 0) -> tuple[Board, CocotbTransport]:
    Clock(dut.aclk, CLK_NS, unit="ns").start()
    dut.s_axis_tvalid.value = 0
    dut.m_axis_tready.value = 0
    dut.aresetn.value = 0
    dut.dac_sdo.value = 0
    dut.adc_dout.value = 0
    transport = CocotbTransport.for_dut(dut)
    await ClockCycles(dut.aclk, 5)
    dut.aresetn.value = 1
    await ClockCycles(dut.aclk, 2)
    board = Board(dut, ChipModelConfig(seed=seed, rows=ROWS, cols=COLS), NADC).start()
    await ClockCycles(dut.aclk, 3)
    return board, transport


def cell_word(row: int, col: int) -> int:
    """A CELL stream word (protocol.toml [word.CELL]); the row may be one past the array (BAD_CELL)."""
    return CELL_ROW.put(row) | CELL_COL.put(col)


def no_violations(board: Board) -> None:
    assert not board.violations, "\n".join(board.violations[:10])


async def status(t: CocotbTransport) -> tuple[int, int, int, int]:
    s = await t.read_reg_async(R.STATUS)
    return R.STATUS_BUSY.get(s), R.STATUS_DONE.get(s), R.STATUS_ERROR.get(s), R.STATUS_ERR_CODE.get(s)


async def start_op(t: CocotbTransport, opcode: int, params: dict[int, int]) -> None:
    await t.write_reg_async(R.CTRL, R.CTRL_CLEAR.put(1))
    await t.write_reg_async(R.OPCODE, opcode)
    for off, val in params.items():
        await t.write_reg_async(off, val)
    await t.write_reg_async(R.CTRL, R.CTRL_START.put(1))


@cocotb.test()
async def registers(dut) -> None:
    """ID, VERSION and reset values over AXI4-Lite; read-only registers ignore writes; bad address -> SLVERR."""
    _, t = await setup(dut)
    assert await t.read_reg_async(R.ID) == R.ID_VALUE.reset
    assert R.VERSION_MAJOR.get(await t.read_reg_async(R.VERSION)) == R.VERSION_MAJOR.reset
    for off, f in ((R.BITS, R.BITS_VALUE), (R.BATCH, R.BATCH_VALUE), (R.VERIFY_TOL, R.VERIFY_TOL_PPM),
                   (R.MAX_PULSES, R.MAX_PULSES_VALUE), (R.SETTLE_CYCLES, R.SETTLE_CYCLES_CYCLES)):  # fmt: skip
        assert await t.read_reg_async(off) == f.reset
    await t.write_reg_async(R.OP_COUNT, 123)
    assert await t.read_reg_async(R.OP_COUNT) == 0
    await t.write_reg_async(R.ROW_START, 0xFFFF_0007)
    assert await t.read_reg_async(R.ROW_START) == 7
    resp = await t.axil.read(0x7C, 4)
    assert resp.resp != 0


@cocotb.test()
async def dac_spi(dut) -> None:
    """DAC80508 block: every DAC_FRAME write is one 24-bit mode-1 frame at datasheet timing, MSB first,
    back-to-back writes are not lost, and a register read comes back through DAC_RDATA."""
    board, t = await setup(dut)
    frames = [
        *dac80508.init_frames(),
        dac80508.channel_frame(DacChannel.V_READ, 0xA5C3),
        dac80508.channel_frame(DacChannel.V_SL, 0x1234),
    ]
    for f in frames:
        await t.write_reg_async(R.DAC_FRAME, f)
    await t.write_reg_async(R.DAC_FRAME, dac80508.build_frame(dac80508.DEVICE_ID, 0, read=True))
    await t.write_reg_async(R.DAC_FRAME, dac80508.build_frame(dac80508.NOP, 0))
    echo = await t.read_reg_async(R.DAC_RDATA)
    await ClockCycles(dut.aclk, 50)
    assert board.dac_frames[: len(frames)] == frames
    assert echo == ((0x80 | dac80508.DEVICE_ID) << 16) | 0x0800
    assert board.dac.output_code(DacChannel.V_READ) == 0xA5C3
    no_violations(board)


@cocotb.test()
async def chain_mux_and_pulse(dut) -> None:
    """SN74HC595 / CD4051B block and pulse timing: a SET addresses exactly its BL at V_BL (others
    floating), its column with the SL grounded, for exactly PULSE_CYCLES clocks; lines idle after."""
    board, t = await setup(dut)
    row, col, cycles = ROWS - 3, COLS - 2, 37
    await t.write_reg_async(R.DAC_FRAME, dac80508.channel_frame(DacChannel.V_BL, V_SET))
    seen = {}

    async def watch() -> None:
        from cocotb.triggers import RisingEdge

        await RisingEdge(dut.drive_en)
        seen["mux"] = board.mux_state()
        seen["lines"] = (int(dut.col_lo.value), int(dut.col_hi.value), int(dut.sl_mode.value), int(dut.wl_en.value))

    cocotb.start_soon(watch())
    await t.transact_async(np.array([cell_word(row, col)], np.uint32), 0, RegWrite(R.CTRL, 0))  # queue the cell
    await start_op(t, Opcode.SET, {R.CELL_COUNT: 1, R.PULSE_CYCLES: cycles})
    while (await status(t))[0]:
        await ClockCycles(dut.aclk, 20)
    assert await status(t) == (0, 1, 0, 0)
    select, inhibit = seen["mux"]
    assert list(np.flatnonzero(~inhibit)) == [row] and select[row] == MuxSource.BL_PROG
    assert seen["lines"] == (col, col, 1, 1)
    assert board.ops[-1].pulses == [(cycles, 1)]
    assert int(dut.sr_oe_n.value) == 1 and int(dut.drive_en.value) == 0 and int(dut.sl_mode.value) == 0
    assert await t.read_reg_async(R.PULSE_COUNT) == 1
    no_violations(board)


@cocotb.test()
async def adc_read_path(dut) -> None:
    """ADS8324 block + column multiplexers: READ of a region returns the board model's codes in
    row-major order, 22 DCLKs per conversion, one chip select at a time, TLAST on the last word."""
    board, t = await setup(dut)
    await read_levels(t)
    board.crossbar.g[:ROWS, :COLS] = np.arange(ROWS * COLS, dtype=np.int32).reshape(ROWS, COLS) * 1500
    reg = Region(1, 3, 1, COLS - 2)
    params = {R.OPCODE: Opcode.READ, R.ROW_START: reg.row, R.ROW_COUNT: reg.n_rows, R.COL_START: reg.col,
              R.COL_COUNT: reg.n_cols, R.TIA_GAIN: TiaGain.READ, R.SETTLE_CYCLES: 3}  # fmt: skip
    for off, val in params.items():
        await t.write_reg_async(off, val)
    out = await t.transact_async(np.zeros(0, np.uint32), reg.n_rows * reg.n_cols, RegWrite(R.CTRL, 1))
    rows, cols = np.arange(reg.row, reg.row + reg.n_rows), np.arange(reg.col, reg.col + reg.n_cols)
    r, c = np.meshgrid(rows, cols, indexing="ij")
    s = board.dac.output_code(DacChannel.V_READ) * board.crossbar.g[r.ravel(), c.ravel()].astype(np.int64)
    want = board.crossbar.sample_codes(s, TiaGain.READ, board.serial, np.arange(s.size))
    assert list(adc.from_word(out)) == list(want)
    assert await t.read_reg_async(R.OUT_WORDS) == s.size
    assert board.ops[-1].samples == s.size
    no_violations(board)


@cocotb.test()
async def read_with_word_lines_off(dut) -> None:
    """Issue 11: with V_WL at 0 V the access transistors stay off: a READ of formed cells returns only the
    transistor's leakage (the same codes the emulator gives for a read with the word lines off)."""
    board, t = await setup(dut)
    await t.write_reg_async(R.DAC_FRAME, dac80508.channel_frame(DacChannel.V_READ, V_READ))  # WL left at 0 V
    board.crossbar.g[:ROWS, :COLS] = 40_000  # 40 uS: a formed cell reads far above the leakage
    reg = Region(0, 2, 0, COLS)
    params = {R.OPCODE: Opcode.READ, R.ROW_START: reg.row, R.ROW_COUNT: reg.n_rows, R.COL_START: reg.col,
              R.COL_COUNT: reg.n_cols, R.TIA_GAIN: TiaGain.READ, R.SETTLE_CYCLES: 3}  # fmt: skip
    for off, val in params.items():
        await t.write_reg_async(off, val)
    out = adc.from_word(await t.transact_async(np.zeros(0, np.uint32), reg.n_rows * reg.n_cols, RegWrite(R.CTRL, 1)))
    leak = board.crossbar.conductance(0, np.s_[: reg.n_rows, : reg.n_cols]).ravel()
    s = board.dac.output_code(DacChannel.V_READ) * leak.astype(np.int64)
    want = board.crossbar.sample_codes(s, TiaGain.READ, board.serial, np.arange(s.size))
    assert list(out) == list(want)
    on = board.dac.output_code(DacChannel.V_READ) * 40_000
    assert int(np.max(np.abs(out))) < board.crossbar.sample_codes(np.array([on]), TiaGain.READ, board.serial,
                                                                  np.array([0]))[0] // 10  # fmt: skip
    no_violations(board)


@cocotb.test()
async def errors_and_irq(dut) -> None:
    """Error codes of docs/protocol.md, BUSY, ABORT, CLEAR and the interrupt line."""
    board, t = await setup(dut)
    cases = [  # fmt: skip
        (max(Opcode) + 2, {}, E.BAD_OPCODE),
        (Opcode.READ, {R.ROW_START: ROWS - 1, R.ROW_COUNT: 2, R.COL_START: 0, R.COL_COUNT: 1}, E.BAD_REGION),
        (
            Opcode.FORM,
            {R.ROW_START: 0, R.ROW_COUNT: 0, R.COL_START: 0, R.COL_COUNT: 1, R.PULSE_CYCLES: 5},
            E.BAD_REGION,
        ),
        (Opcode.MULTIPLY, {R.COL_START: 0, R.COL_COUNT: 1, R.BITS: MAX_BITS + 1, R.BATCH: 1}, E.BAD_BITS),
        (Opcode.MULTIPLY, {R.COL_START: 0, R.COL_COUNT: 1, R.BITS: 2, R.BATCH: 0}, E.BAD_BITS),
        (Opcode.RESET, {R.CELL_COUNT: 1, R.PULSE_CYCLES: 0}, E.BAD_PULSE),
        (Opcode.RESET, {R.CELL_COUNT: 1, R.PULSE_CYCLES: MAX_PULSE_CYCLES + 1}, E.BAD_PULSE),
    ]
    await t.write_reg_async(R.CTRL, R.CTRL_IRQ_EN.put(1))
    for opcode, params, code in cases:
        await start_op(t, opcode, params)
        assert await status(t) == (0, 0, 1, code), (opcode, params)
        assert int(dut.irq.value) == 0  # start_op left IRQ_EN at 0 (CTRL is one register)
    assert board.serial == 0  # parameter errors are found before BUSY: no op serial
    # BAD_CELL and UNDERRUN come from the stream
    out = await t.transact_async(np.array([cell_word(ROWS, 0), 5], np.uint32), 0, RegWrite(R.CTRL, 0))
    assert out.size == 0
    await start_op(t, Opcode.RESET, {R.CELL_COUNT: 2, R.PULSE_CYCLES: 5})
    await ClockCycles(dut.aclk, 400)
    assert await status(t) == (0, 0, 1, E.BAD_CELL)
    await t.source.send(np.array([1], "<u4").tobytes())
    await start_op(t, Opcode.RESET, {R.CELL_COUNT: 3, R.PULSE_CYCLES: 5})
    await ClockCycles(dut.aclk, 600)
    assert await status(t) == (0, 0, 1, E.UNDERRUN)
    # BUSY: START while a MULTIPLY waits for its frames; then ABORT ends it with ABORTED; irq follows
    await t.write_reg_async(R.CTRL, R.CTRL_IRQ_EN.put(1) | R.CTRL_CLEAR.put(1))
    for off, val in {R.OPCODE: Opcode.MULTIPLY, R.COL_START: 0, R.COL_COUNT: 2, R.BITS: 1, R.BATCH: 1}.items():
        await t.write_reg_async(off, val)
    await t.write_reg_async(R.CTRL, R.CTRL_IRQ_EN.put(1) | R.CTRL_START.put(1))
    assert await status(t) == (1, 0, 0, 0) and int(dut.irq.value) == 0
    await t.write_reg_async(R.CTRL, R.CTRL_IRQ_EN.put(1) | R.CTRL_START.put(1))
    assert await status(t) == (1, 0, 0, 0) and int(dut.irq.value) == 0  # ignored (class 7)
    assert R.STATUS_START_REFUSED.get(await t.read_reg_async(R.STATUS)) == 1
    await t.write_reg_async(R.CTRL, R.CTRL_IRQ_EN.put(1) | R.CTRL_ABORT.put(1))
    await ClockCycles(dut.aclk, 10)
    assert await status(t) == (0, 0, 1, E.ABORTED)
    assert int(dut.irq.value) == 1 and int(dut.drive_en.value) == 0 and int(dut.sr_oe_n.value) == 1
    await t.write_reg_async(R.CTRL, R.CTRL_IRQ_EN.put(1) | R.CTRL_CLEAR.put(1))
    assert await status(t) == (0, 0, 0, 0) and int(dut.irq.value) == 0
    assert await t.read_reg_async(R.OP_COUNT) == 0
    no_violations(board)


def random_sequence(seed: int, drv: Driver) -> dict[str, object]:
    """A seeded random sequence of form / reset / set / program / read / cell-list read / multiply through the
    Driver."""
    rng = np.random.default_rng(seed)
    out: dict[str, object] = {}
    drv.init_dac()
    drv.form(Region(0, ROWS, 0, COLS), 2_000, V_FORM, V_WL)  # 20 us at 3.75 V: forms most cells
    cells = np.stack([rng.integers(0, ROWS, 5), rng.integers(0, COLS, 5)], axis=1)
    drv.reset_cells(cells, 40, V_RESET, V_WL)
    drv.set_cells(cells[:3], 30, V_SET, V_WL)
    out["read"] = codes = drv.read_region(Region(0, ROWS, 0, COLS), V_READ)
    out["read_saturated"] = drv.saturated_samples()
    formed = np.argwhere(codes > 500)  # write-verify only cells that formed (pick them from the read)
    pick = formed[rng.choice(len(formed), 4, replace=False)]
    targets = rng.integers(300, 1500, 4)
    res = drv.program_cells(pick, targets, pulse_cycles=50, tolerance_ppm=100_000, max_pulses=6,
                            v_prog=V_PROG, v_wl=V_WL, v_read=V_READ)  # fmt: skip
    out["program"] = (res.pulses.tolist(), res.final_codes.tolist())
    out["read_after"] = drv.read_region(Region(0, ROWS // 2, 1, COLS // 2), V_READ)
    out["read_cells"] = drv.read_cells(np.concatenate([pick, cells[:2], pick[:1]]), V_READ)  # verify-only PROGRAM
    out["read_cells_saturated"] = drv.saturated
    x = rng.integers(0, 8, (2, ROWS))
    out["multiply"] = drv.multiply(x, 3, Region(0, ROWS, 2, COLS // 2), V_READ).tolist()
    out["multiply_saturated"] = drv.saturated_samples()
    out["counters"] = drv.counters()
    return out


@cocotb.test()
async def cosim_driver_matches_emulator(dut) -> None:
    """The unchanged host Driver over the RTL gives the emulator's ADC codes bit for bit."""
    seed = int(os.environ.get("TB_SEED", "7"))
    board, t = await setup(dut, seed=seed)
    emu = EmulatorTransport(ChipModelConfig(seed=seed, rows=ROWS, cols=COLS))
    want = random_sequence(seed, Driver(emu, settle_cycles=4))
    got = await bridge(random_sequence)(seed, Driver(t, settle_cycles=4))
    for key in want:
        assert np.array_equal(got[key], want[key]), f"{key}: RTL {got[key]} != emulator {want[key]}"
    assert np.array_equal(board.crossbar.g, emu.overlay.crossbar.g)
    assert board.serial == emu.overlay.counters.op_serial
    no_violations(board)


@cocotb.test()
async def driver_sees_overlay_errors(dut) -> None:
    """Errors surface through the Driver exactly as over the emulator (OverlayError with the code)."""
    _, t = await setup(dut)

    def bad_cell(drv: Driver) -> int:
        drv.init_dac()
        try:
            bad = np.array([cell_word(ROWS, 0)], np.uint32)
            drv.run(Opcode.RESET, {R.CELL_COUNT: 1, R.PULSE_CYCLES: 5}, {}, send=bad)
        except OverlayError as e:
            return e.code
        return 0

    emu = EmulatorTransport(ChipModelConfig(rows=ROWS, cols=COLS))
    assert bad_cell(Driver(emu)) == E.BAD_CELL
    assert await bridge(bad_cell)(Driver(t)) == E.BAD_CELL


async def within(dut, coro, cycles: int = 5_000):
    """Await ``coro`` but fail (instead of hanging the bench) if it takes more than ``cycles`` clocks."""
    from cocotb.triggers import with_timeout

    return await with_timeout(coro, cycles * CLK_NS, "ns")


@cocotb.test()
async def ratings_refuse_over_limit_frames(dut) -> None:
    """Issue 14 class 10: DAC_LIMIT_* lock until reset; a DAC frame above its channel's limit (or a BRDCAST above
    the lowest) never reaches the SPI pins, reads back DAC_RDATA.refused and sets OVER_RATING when idle."""
    board, t = await setup(dut)
    limits = {DacChannel.V_SL: V(3.8), DacChannel.V_BL: V(3.8), DacChannel.V_WL: V(2.5), DacChannel.V_READ: V(0.3)}
    for ch, code in limits.items():
        await t.write_reg_async(getattr(R, f"DAC_LIMIT_{ch.name}"), code)
    await t.write_reg_async(R.RATINGS_LOCK, 1)
    await t.write_reg_async(R.DAC_LIMIT_V_SL, 0xFFFF)  # locked: ignored
    await t.write_reg_async(R.RATINGS_LOCK, 0)  # cannot unlock
    assert await t.read_reg_async(R.DAC_LIMIT_V_SL) == limits[DacChannel.V_SL]
    assert await t.read_reg_async(R.RATINGS_LOCK) == 1
    bad = [dac80508.channel_frame(ch, code + 1) for ch, code in limits.items()]
    bad.append(dac80508.build_frame(DAC80508_REG_BRDCAST, min(limits.values()) + 1))
    for frame in bad:
        await t.write_reg_async(R.CTRL, R.CTRL_CLEAR.put(1))
        await within(dut, t.write_reg_async(R.DAC_FRAME, frame))
        rdata = await within(dut, t.read_reg_async(R.DAC_RDATA))
        assert R.DAC_RDATA_REFUSED.get(rdata) == 1, hex(frame)
        assert await status(t) == (0, 0, 1, E.OVER_RATING)
    good = [dac80508.channel_frame(ch, code) for ch, code in limits.items()]
    good.append(dac80508.channel_frame(5, 0xFFFF))  # an unrated channel
    for frame in good:
        await t.write_reg_async(R.DAC_FRAME, frame)
        assert R.DAC_RDATA_REFUSED.get(await t.read_reg_async(R.DAC_RDATA)) == 0
    await ClockCycles(dut.aclk, 50)
    assert board.dac_frames == good  # no refused frame reached the pins
    no_violations(board)


@cocotb.test()
async def saturated_samples_counted(dut) -> None:
    """SAT_COUNT: the samples of the last operation whose code sat on a rail, cleared by the next accepted START."""
    board, t = await setup(dut)
    await read_levels(t, V(0.3))
    g = np.zeros((ROWS, COLS), np.int32)
    g[::2, ::3] = 400_000  # far above the read range: these cells read at the top rail
    board.crossbar.g[:ROWS, :COLS] = g
    reg = Region(0, 4, 0, COLS)
    params = {R.OPCODE: Opcode.READ, R.ROW_START: reg.row, R.ROW_COUNT: reg.n_rows, R.COL_START: reg.col,
              R.COL_COUNT: reg.n_cols, R.TIA_GAIN: TiaGain.READ, R.SETTLE_CYCLES: 3}  # fmt: skip
    for off, val in params.items():
        await t.write_reg_async(off, val)
    out = adc.from_word(await t.transact_async(np.zeros(0, np.uint32), reg.n_rows * reg.n_cols, RegWrite(R.CTRL, 1)))
    rails = int(np.isin(out, (adc.CODE_MIN, adc.CODE_MAX)).sum())
    assert rails > 0 and await t.read_reg_async(R.SAT_COUNT) == rails
    await start_op(t, Opcode.MULTIPLY, {R.COL_START: 0, R.COL_COUNT: 1, R.BITS: 9, R.BATCH: 1})  # refused
    assert await t.read_reg_async(R.SAT_COUNT) == rails  # a refused START keeps it
    await start_op(t, Opcode.NOP, {})
    await ClockCycles(dut.aclk, 20)
    assert await t.read_reg_async(R.SAT_COUNT) == 0
    no_violations(board)


@cocotb.test()
async def axil_any_strobe_completes(dut) -> None:
    """Issue 14 class 2: a write with any strobe pattern to any register (a byte store to DAC_FRAME included)
    completes and leaves the bus usable; only strobes on bits 23:0 of DAC_FRAME shift a frame."""
    board, t = await setup(dut)
    rng = np.random.default_rng(int(os.environ.get("TB_SEED", "7")))
    offsets = [R.DAC_FRAME, R.DAC_FRAME, R.ROW_START, R.BITS, R.OP_COUNT, R.DAC_LIMIT_V_WL]
    for i in range(24):
        off = int(rng.choice(offsets))
        lane = int(rng.integers(0, 4))
        width = int(rng.integers(1, 5 - lane))
        data = bytes(int(b) for b in rng.integers(0, 256, width))
        await within(dut, t.axil.write(off + lane, data))
        assert await within(dut, t.read_reg_async(R.ID)) == R.ID_VALUE.reset, (i, hex(off), lane, width)
    await within(dut, t.axil.write(R.DAC_FRAME + 3, b"\x12"))  # the byte store of the issue: no frame
    n = len(board.dac_frames)
    await t.write_reg_async(R.DAC_FRAME, dac80508.channel_frame(DacChannel.V_BL, 0x1234))
    assert await t.read_reg_async(R.ID) == R.ID_VALUE.reset  # waits at the gate until the frame is out
    await ClockCycles(dut.aclk, 10)
    assert board.dac_frames[n:] == [dac80508.channel_frame(DacChannel.V_BL, 0x1234)]


@cocotb.test()
async def errors_at_the_end_and_abort_with_a_stalled_output(dut) -> None:
    """Issue 14 classes 7 and 3: with S2MM stalled, a stream error (BAD_CELL) leaves STATUS at BUSY without
    ERROR or interrupt until the operation ends; a START meanwhile is ignored (start_refused) and does not
    taint it; CTRL.abort ends it from the state that waits for TREADY; the overlay works again afterwards."""
    board, t = await setup(dut)
    await t.write_reg_async(R.CTRL, R.CTRL_IRQ_EN.put(1))
    t.sink.pause = True  # S2MM stalled (a DMA that failed or was reset)
    cells = np.array([cell_word(1, 1), 500, cell_word(ROWS, 0), 500], np.uint32)  # a good cell, then a bad one
    await t.source.send(cells.astype("<u4").tobytes())
    for off, val in {R.OPCODE: Opcode.PROGRAM, R.CELL_COUNT: 2, R.PULSE_CYCLES: 5, R.MAX_PULSES: 0,
                     R.SETTLE_CYCLES: 3}.items():  # fmt: skip
        await t.write_reg_async(off, val)
    await t.write_reg_async(R.CTRL, R.CTRL_IRQ_EN.put(1) | R.CTRL_START.put(1))
    await ClockCycles(dut.aclk, 3_000)
    assert await status(t) == (1, 0, 0, 0) and int(dut.irq.value) == 0  # the error waits for the end
    await t.write_reg_async(R.CTRL, R.CTRL_IRQ_EN.put(1) | R.CTRL_START.put(1))
    assert await status(t) == (1, 0, 0, 0)
    await t.write_reg_async(R.CTRL, R.CTRL_IRQ_EN.put(1) | R.CTRL_ABORT.put(1))
    await ClockCycles(dut.aclk, 200)
    assert await status(t) == (0, 0, 1, E.ABORTED) and int(dut.irq.value) == 1
    assert int(dut.drive_en.value) == 0 and int(dut.sr_oe_n.value) == 1 and int(dut.m_axis_tvalid.value) == 0
    t.sink.pause = False
    await read_levels(t)
    reg = Region(0, 1, 0, 2)
    params = {R.OPCODE: Opcode.READ, R.ROW_START: 0, R.ROW_COUNT: 1, R.COL_START: 0, R.COL_COUNT: 2,
              R.TIA_GAIN: TiaGain.READ}  # fmt: skip
    for off, val in params.items():
        await t.write_reg_async(off, val)
    out = await t.transact_async(np.zeros(0, np.uint32), reg.n_rows * reg.n_cols, RegWrite(R.CTRL, 1))
    assert out.size == 2 and await status(t) == (0, 1, 0, 0)
    no_violations(board)


async def _visited_states(dut, t: CocotbTransport, params: dict[int, int], packet: np.ndarray) -> list[int]:
    """Run one operation to its end; the sequencer states it went through, in first-visit order."""
    seen: list[int] = []
    stop = False

    async def watch() -> None:
        while not stop:
            await RisingEdge(dut.aclk)
            s = int(dut.u_seq.state.value)
            if s not in seen:
                seen.append(s)

    watcher = cocotb.start_soon(watch())
    await _start_with_packet(t, params, packet)
    await within(dut, _idle(dut, t), 20_000)
    stop = True
    await watcher
    return [s for s in seen if s != 0]


async def _start_with_packet(t: CocotbTransport, params: dict[int, int], packet: np.ndarray) -> None:
    await t.write_reg_async(R.CTRL, R.CTRL_CLEAR.put(1))
    await t.source.send(packet.astype("<u4").tobytes())
    for off, val in params.items():
        await t.write_reg_async(off, val)
    await t.write_reg_async(R.CTRL, R.CTRL_START.put(1))


@cocotb.test()
async def abort_at_every_state(dut) -> None:
    """Issue 14 class 3: CTRL.abort landing in every sequencer state a PROGRAM (verify read, pulse, output)
    and a MULTIPLY go through ends the operation with ABORTED, every line idle, and the next operation runs.
    The abort pulse is deposited into the register block's CTRL.abort storage on the clock the state is
    entered (what an AXI write landing on that clock does)."""
    board, t = await setup(dut)
    await read_levels(t)
    program = {R.OPCODE: Opcode.PROGRAM, R.CELL_COUNT: 1, R.PULSE_CYCLES: 5, R.MAX_PULSES: 1, R.SETTLE_CYCLES: 2,
               R.VERIFY_TOL: 0}  # fmt: skip
    frames = linedrive.bitplane_frames(np.ones((1, ROWS), np.uint8)).ravel()
    multiply = {R.OPCODE: Opcode.MULTIPLY, R.COL_START: 0, R.COL_COUNT: 2, R.BITS: 1, R.BATCH: 1,
                R.ROW_START: 0, R.ROW_COUNT: ROWS, R.TIA_GAIN: TiaGain.MULTIPLY, R.SETTLE_CYCLES: 2}  # fmt: skip
    covered: set[int] = set()
    for params, packet in ((program, np.array([cell_word(2, 3), 4000], np.uint32)), (multiply, frames)):
        states = await _visited_states(dut, t, params, packet)
        t.dma_reset()
        for target in states:
            await _start_with_packet(t, params, packet)
            while int(dut.u_seq.state.value) != target:
                await RisingEdge(dut.aclk)
            await FallingEdge(dut.aclk)
            dut.u_regs.field_storage_ctrl_abort_value.value = 1  # CTRL.abort on the next clock
            await within(dut, _idle(dut, t), 3_000)  # the ADC finishes its frame and rate gap
            assert await status(t) == (0, 0, 1, E.ABORTED), target
            assert (int(dut.drive_en.value), int(dut.sr_oe_n.value), int(dut.wl_en.value)) == (0, 1, 0), target
            covered.add(target)
            t.dma_reset()
    assert len(covered) >= 25, sorted(covered)
    await start_op(t, Opcode.NOP, {})
    await ClockCycles(dut.aclk, 20)
    assert await status(t) == (0, 1, 0, 0)
    no_violations(board)


async def _idle(dut, t: CocotbTransport) -> None:
    while (await status(t))[0]:
        await ClockCycles(dut.aclk, 5)


@cocotb.test()
async def output_fields_carry_negative_and_extreme_codes(dut) -> None:
    """Issue 14 class 4: PROGRAM's final code (low 16 bits, two's complement), READ's sign-extended code and
    MULTIPLY's shift-and-add carry negative, zero, saturated and extreme values exactly as the protocol
    (and the Driver's decoding) say."""
    board, t = await setup(dut)
    codes = [adc.CODE_MIN, -1, 0, 1, adc.CODE_MAX, -300, 4095, -4096]

    def run(drv: Driver) -> tuple[list[int], list[int], list[int], list[int]]:
        drv.init_dac()
        cells = np.stack([np.arange(len(codes)) % ROWS, np.arange(len(codes)) % COLS], axis=1)
        board.inject = iter(codes)
        res = drv.program_cells(cells, np.full(len(codes), 100), pulse_cycles=5, tolerance_ppm=0, max_pulses=0,
                                v_prog=V_PROG, v_wl=V_WL, v_read=V_READ)  # fmt: skip
        board.inject = iter(codes)
        read = drv.read_region(Region(0, 1, 0, len(codes)), V_READ)
        board.inject = iter([adc.CODE_MIN] * 8 * 2 + [adc.CODE_MAX] * 8 * 2)
        mul = drv.multiply(np.full((2, ROWS), 255), 8, Region(0, ROWS, 0, 2), V_READ)
        board.inject = None
        return res.final_codes.tolist(), res.pulses.tolist(), read.ravel().tolist(), mul.ravel().tolist()

    finals, pulses, read, mul = await bridge(run)(Driver(t, settle_cycles=2))
    assert finals == codes and pulses == [0] * len(codes)
    assert read == codes
    assert mul == [adc.CODE_MIN * 255] * 2 + [adc.CODE_MAX * 255] * 2
    no_violations(board)


@cocotb.test()
async def multiply_refuses_programming_levels(dut) -> None:
    """Issue 14 class 8: a host chain frame that connects a BL to V_BL during MULTIPLY is refused (BAD_FRAME)
    before it is latched, in the RTL and in the emulator alike; no line is driven."""
    board, t = await setup(dut)
    select = np.zeros((1, linedrive.N_LINES), np.uint8)
    select[0, ROWS - 2] = MuxSource.BL_PROG
    frames = linedrive.encode_frames(select, np.zeros_like(select, dtype=bool))

    def bad(drv: Driver) -> int:
        drv.init_dac()
        params = {R.BATCH: 1, R.BITS: 1, R.COL_START: 0, R.COL_COUNT: 2, R.TIA_GAIN: TiaGain.MULTIPLY}
        try:
            drv.run(Opcode.MULTIPLY, params, {DacChannel.V_BL: V_SET}, send=frames.ravel(), recv_words=2)
        except OverlayError as e:
            return e.code
        return 0

    emu = EmulatorTransport(ChipModelConfig(rows=ROWS, cols=COLS))
    assert bad(Driver(emu)) == E.BAD_FRAME
    drives: list[int] = []

    async def watch() -> None:
        from cocotb.triggers import RisingEdge

        await RisingEdge(dut.drive_en)
        drives.append(1)

    cocotb.start_soon(watch())
    assert await bridge(bad)(Driver(t)) == E.BAD_FRAME
    assert drives == [] and board.ops[-1].samples == 0
    no_violations(board)


@cocotb.test()
async def guard_before_every_drive(dut) -> None:
    """Issue 14 class 1: in every mode (SET/RESET/PROGRAM pulses, READ, MULTIPLY, verify reads) drive_en rises
    at least GUARD_CYCLES clocks after the last change of the chain latch/enable, SL mode, WL and column
    window; after a pulse the lines float at least GUARD_CYCLES clocks after drive_en falls."""
    board, t = await setup(dut)
    guard = 37
    await t.write_reg_async(R.GUARD_CYCLES, guard)
    assert await t.read_reg_async(R.GUARD_CYCLES) == guard
    lines = (dut.sl_mode, dut.wl_en, dut.col_lo, dut.col_hi, dut.sr_oe_n, dut.sr_rclk)
    gaps: list[tuple[str, float]] = []
    stop = False

    async def watch() -> None:
        last_change = drive_fall = -1e12
        after_pulse = False
        prev = [str(x.value) for x in lines]
        drive = int(dut.drive_en.value)
        while not stop:
            await First(*(ValueChange(x) for x in (*lines, dut.drive_en)))
            now = float(get_sim_time("ns"))
            cur = [str(x.value) for x in lines]
            if cur != prev:
                if after_pulse and not drive and now - drive_fall < guard * 10:
                    gaps.append(("off", (now - drive_fall) / 10))
                last_change, prev = now, cur
            if int(dut.drive_en.value) != drive:
                drive = int(dut.drive_en.value)
                if drive:
                    gaps.append(("on", (now - last_change) / 10))
                    after_pulse = int(dut.sl_mode.value) != SlMode.SENSE
                else:
                    drive_fall = now

    cocotb.start_soon(watch())

    def run(drv: Driver) -> None:
        drv.init_dac()
        drv.set_cells(np.array([[1, 2]]), 20, V_SET, V_WL)
        drv.reset_cells(np.array([[1, 2]]), 20, V_RESET, V_WL)
        drv.read_region(Region(0, 2, 0, 2), V_READ)
        drv.program_cells(np.array([[3, 1]]), np.array([400]), pulse_cycles=20, tolerance_ppm=0, max_pulses=1,
                          v_prog=V_PROG, v_wl=V_WL, v_read=V_READ)  # fmt: skip
        drv.multiply(np.ones((1, ROWS), np.int64), 1, Region(0, ROWS, 0, 2), V_READ)

    await bridge(run)(Driver(t, settle_cycles=2))
    stop = True  # the watcher ends at its next event (or with the test)
    on = [g for kind, g in gaps if kind == "on"]
    assert len(on) == 1 + 1 + 2 + 3 + 1, gaps  # SET, RESET, 2 READ rows, PROGRAM read-pulse-read, MULTIPLY
    assert min(on) >= guard, gaps
    assert not [g for kind, g in gaps if kind == "off"], gaps
    no_violations(board)


# Every register an operation reads (the parameters rram_seq holds from START to the end); the registers outside
# it are the control/status, DAC and ratings registers, which no operation reads.
_PARAMETERS = (R.OPCODE, R.ROW_START, R.ROW_COUNT, R.COL_START, R.COL_COUNT, R.PULSE_CYCLES, R.BITS, R.BATCH,
               R.CELL_COUNT, R.TIA_GAIN, R.VERIFY_TOL, R.MAX_PULSES, R.SETTLE_CYCLES, R.GUARD_CYCLES)  # fmt: skip
_NOT_PARAMETERS = {R.ID, R.VERSION, R.CTRL, R.STATUS, R.DAC_FRAME, R.DAC_RDATA, R.OP_COUNT, R.PULSE_COUNT, R.OUT_WORDS,
                   R.SAT_COUNT, R.RATINGS_LOCK, R.DAC_LIMIT_V_SL, R.DAC_LIMIT_V_BL, R.DAC_LIMIT_V_WL,
                   R.DAC_LIMIT_V_READ}  # fmt: skip


def _hostile(kind: str, params: dict[int, int]) -> dict[int, int]:
    """A value for every parameter register that START would refuse or that changes the operation: all zero
    (PULSE_CYCLES 0: a counter that underflows), all ones (PULSE_CYCLES past MAX_PULSE_CYCLES, counts past the
    array), or each flipped against the running value."""
    out = {}
    for off in _PARAMETERS:
        f = R.VALUE_FIELD[off]
        top = (1 << f.width) - 1
        out[off] = {"zero": 0, "ones": top, "flip": top ^ params.get(off, f.reset)}[kind]
    if kind == "ones":
        out[R.PULSE_CYCLES] = MAX_PULSE_CYCLES + 1  # just past the cap START enforces (BAD_PULSE)
    return out


@cocotb.test()
async def parameters_fixed_at_start(dut) -> None:
    """Audit (docs-only RTL audit, t08): an operation runs on the parameter values accepted at START.  Every
    parameter register is written while BUSY (zero, all ones and PULSE_CYCLES past the cap, flipped) in the
    middle of FORM, SET, RESET, PROGRAM, READ and MULTIPLY; each operation must end exactly as the same operation
    run without those writes: the same pulse widths (none wider than the PULSE_CYCLES accepted at START), chain
    latches, drive windows, sampled columns, TIA gain pin, output words with TLAST, status and counters.  The
    written values read back and take effect at the next START."""
    assert set(_PARAMETERS) | _NOT_PARAMETERS == set(R.REGISTERS.values())  # no register left out
    board, t = await setup(dut)
    await bridge(lambda drv: drv.init_dac())(Driver(t))
    await read_levels(t)
    seq = dut.u_seq
    trace: dict[str, list] = {}

    async def watch() -> None:
        high = 0
        prev_rclk = 0
        while True:
            await RisingEdge(dut.aclk)
            if not int(seq.busy.value):
                continue
            if int(dut.drive_en.value):
                if high == 0:
                    trace["windows"].append((int(dut.col_lo.value), int(dut.col_hi.value), int(dut.sl_mode.value)))
                high += 1
            elif high:
                trace["pulses" if trace["windows"][-1][2] != SlMode.SENSE else "drives"].append(high)
                high = 0
            if int(seq.adc_go.value):
                trace["samples"].append(int(seq.adc_col.value))
            rclk = int(dut.sr_rclk.value)
            trace["latches"][0] += rclk and not prev_rclk
            prev_rclk = rclk
            trace["tia"].add(int(dut.tia_gain.value))

    cocotb.start_soon(watch())

    async def run(params: dict[int, int], packet: np.ndarray, n_out: int, hostile: dict[int, int] | None):
        for key in ("windows", "pulses", "drives", "samples"):
            trace[key] = []
        trace["latches"], trace["tia"] = [0], set()
        await t.write_reg_async(R.CTRL, R.CTRL_CLEAR.put(1))
        for off, val in params.items():
            await t.write_reg_async(off, val)
        before = [await t.read_reg_async(r) for r in (R.OP_COUNT, R.PULSE_COUNT)]
        op = cocotb.start_soon(within(dut, t.transact_async(packet, n_out, RegWrite(R.CTRL, 1)), 400_000))
        if hostile is not None:  # once the operation is under way: its first drive, or its first chain latch
            await First(RisingEdge(dut.drive_en), RisingEdge(dut.sr_rclk))
            assert int(seq.busy.value)
            for off, val in hostile.items():
                await t.write_reg_async(off, val)
            assert int(seq.busy.value), "the operation ended before every parameter was written"
        out = await op
        after = [await t.read_reg_async(r) for r in (R.OP_COUNT, R.PULSE_COUNT)]
        result = {
            "status": await status(t), "out": out.tolist(), "out_words": await t.read_reg_async(R.OUT_WORDS),
            "ops": after[0] - before[0], "pulses": after[1] - before[1],
            **{k: (sorted(v) if isinstance(v, set) else list(v)) for k, v in trace.items()},
        }  # fmt: skip
        if hostile is not None:  # the writes were stored: they read back (and reach the next START)
            for off, val in hostile.items():
                assert await t.read_reg_async(off) == val, hex(off)
        return result

    cells = np.array([cell_word(1, 2), cell_word(3, 1)], np.uint32)
    targets = np.array([cell_word(1, 2), 600, cell_word(3, 1), 50], np.uint32)
    bits, batch = 2, 2
    mul = linedrive.bitplane_frames(np.array([[(r + k) % 2 for r in range(ROWS)] for k in range(bits * batch)]))
    mul = mul.ravel()
    common = {R.TIA_GAIN: TiaGain.READ, R.SETTLE_CYCLES: 3, R.GUARD_CYCLES: 4, R.VERIFY_TOL: 0}
    cases = [
        ("FORM", {R.OPCODE: Opcode.FORM, R.ROW_START: 2, R.ROW_COUNT: 3, R.COL_START: 1, R.COL_COUNT: 2,
                  R.PULSE_CYCLES: 30}, np.zeros(0, np.uint32), 0, "zero"),
        ("SET", {R.OPCODE: Opcode.SET, R.CELL_COUNT: 2, R.PULSE_CYCLES: 20}, cells, 0, "zero"),
        ("RESET", {R.OPCODE: Opcode.RESET, R.CELL_COUNT: 2, R.PULSE_CYCLES: 20}, cells, 0, "ones"),
        ("PROGRAM", {R.OPCODE: Opcode.PROGRAM, R.CELL_COUNT: 2, R.PULSE_CYCLES: 15, R.MAX_PULSES: 2}, targets, 2,
         "ones"),
        ("PROGRAM", {R.OPCODE: Opcode.PROGRAM, R.CELL_COUNT: 2, R.PULSE_CYCLES: 15, R.MAX_PULSES: 2}, targets, 2,
         "zero"),
        ("READ", {R.OPCODE: Opcode.READ, R.ROW_START: 1, R.ROW_COUNT: 2, R.COL_START: 2, R.COL_COUNT: 3}, None, 6,
         "zero"),
        ("READ", {R.OPCODE: Opcode.READ, R.ROW_START: 1, R.ROW_COUNT: 2, R.COL_START: 2, R.COL_COUNT: 3}, None, 6,
         "flip"),
        ("MULTIPLY", {R.OPCODE: Opcode.MULTIPLY, R.COL_START: 1, R.COL_COUNT: 3, R.BITS: bits, R.BATCH: batch},
         mul, batch * 3, "ones"),
        ("MULTIPLY", {R.OPCODE: Opcode.MULTIPLY, R.COL_START: 1, R.COL_COUNT: 3, R.BITS: bits, R.BATCH: batch},
         mul, batch * 3, "zero"),
    ]  # fmt: skip
    codes = [(37 * i) % 700 - 100 for i in range(64)]  # fixed ADC codes: both runs see the same samples
    for name, params, packet, n_out, kind in cases:
        params = {**common, **params}
        packet = np.zeros(0, np.uint32) if packet is None else packet
        board.inject = iter(codes)
        ref = await run(params, packet, n_out, None)
        board.inject = iter(codes)
        got = await run(params, packet, n_out, _hostile(kind, params))
        board.inject = None
        assert ref["status"] == (0, 1, 0, 0) and len(ref["out"]) == n_out, (name, ref)
        assert got == ref, (name, kind, {k: (ref[k], got[k]) for k in ref if ref[k] != got[k]})
        if params.get(R.PULSE_CYCLES):
            assert ref["pulses"] and set(ref["pulses"]) == {params[R.PULSE_CYCLES]}, (name, ref["pulses"])
        assert ref["tia"] == [params[R.TIA_GAIN]], (name, ref["tia"])
        for off, val in params.items():  # restore what the hostile writes changed before the next case
            await t.write_reg_async(off, val)
    no_violations(board)
