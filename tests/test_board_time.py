"""The emulator's board clock counts what the RTL does (rramsim.timing, docs/emulator.md "Board time and energy"):
each operation advances ``EmulatedOverlay.board_time_s`` by the documented formula, chain frames and guards
included, written out here from its parts (the RTL's parameters of docs/hdl.md), on the reference (``numpy``)
and the compiled path alike.  The RTL side of the same count: hdl/tb/tb_board_time.py."""

from __future__ import annotations

import numpy as np
import pytest
from rramctl import regmap as R
from rramctl.hw import dac80508, linedrive
from rramctl.protocol import CELL_COL, CELL_ROW, PROGRAM_RESULT_PULSES, Opcode
from rramsim import timing
from rramsim.config import ChipModelConfig, load_model
from rramsim.crossbar import ReadTimes
from rramsim.overlay import DAC_V_BL, DAC_V_READ, DAC_V_SL, DAC_V_WL, EmulatedOverlay

# the board's defaults (docs/hdl.md, "Parameters"): 512 rows (64 chain words a step), SR_HALF 3, ADC_HALF 42,
# ADC_MIN_CYCLES 2,000, ads8324_rx CS_HIGH 4
WORD = 64 * 3 + 3  # a chain word: 64 SRCLK half periods of 3 clocks, 3 clocks of handshake
FRAME = 2 * 64 * WORD + 4 * 3 + 3  # two latch steps of 64 words, two latch pulses: 24,975 clocks (0.25 ms)
HOST_FRAME = FRAME - 64 + 8  # MULTIPLY's frame from 64 host words: one clock less a word, 8 of frame start
CONV = 2_020  # 22 DCLKs x 84 + CS high 4 = 1,852, then ticks 42 apart to >= 1,999 since CS fell
GUARD, SETTLE, PULSE = 100, 100, 40


def test_the_parts_at_the_boards_defaults() -> None:
    assert timing.BOARD.frame_cycles(GUARD) == FRAME == 24_975
    assert timing.BOARD.host_frame_cycles(GUARD) == HOST_FRAME
    assert timing.BOARD.conversion_cycles() == timing.ADC_SAMPLE_CYCLES == CONV
    # a guard longer than the second shift delays its latch (rram_chain_frame C_LATCH waits for guard_left)
    assert timing.BOARD.frame_cycles(64 * WORD) == FRAME and timing.BOARD.frame_cycles(64 * WORD + 99) == FRAME + 99
    # the bench's fast clocks (hdl/tb/test_hdl.py FAST, 16 rows): the ADC's 50 kSPS gap at ADC_MIN_CYCLES 100
    fast = timing.Clocks(rows=16, adc_half=2, adc_min_cycles=100)
    assert fast.frame_cycles(0) == 2 * 2 * WORD + 15 and fast.conversion_cycles() == 100
    # a RESET / SET / PROGRAM of no cells ends at once (S_IDLE -> S_END), as a NOP
    for op in (Opcode.RESET, Opcode.PROGRAM, Opcode.NOP):
        assert timing.op_cycles(op, pulse_cycles=PULSE, settle_cycles=SETTLE, guard_cycles=GUARD) == 3


def _overlay(device: str, model: str = "paper-40nm") -> EmulatedOverlay:
    ov = EmulatedOverlay(load_model(model).with_changes(seed=4), device=device)
    for frame in dac80508.init_frames():
        ov.dac.transfer(frame)
    for ch, v in ((DAC_V_READ, 0.1), (DAC_V_BL, 3.3), (DAC_V_SL, 3.4), (DAC_V_WL, 1.2)):
        ov.dac.transfer(dac80508.channel_frame(ch, dac80508.volts_to_code(v)))
    for k, v in {R.GUARD_CYCLES: GUARD, R.SETTLE_CYCLES: SETTLE, R.PULSE_CYCLES: PULSE}.items():
        ov.write_reg(k, v)
    return ov


def _run(
    ov: EmulatedOverlay, regs: dict[int, int], packet: np.ndarray | None = None, recv: int = 0
) -> tuple[int, np.ndarray]:
    """Clocks the operation advanced the board clock by, and its output words."""
    for k, v in regs.items():
        ov.write_reg(k, v)
    if packet is not None:
        ov.push_stream(packet.astype(np.uint32))
    before = ov.board_time_s
    ov.write_reg(R.CTRL, R.CTRL_START.put(1))
    assert ov.done and not ov.error
    return round((ov.board_time_s - before) * timing.CLOCK_HZ), ov.pop_stream(recv)


def _cells(rows: list[int], cols: list[int]) -> np.ndarray:
    return CELL_ROW.put(np.array(rows, np.int64)) | CELL_COL.put(np.array(cols, np.int64))


@pytest.mark.parametrize("device", ["cpu", "numpy"])
def test_each_operation_advances_the_board_clock_by_the_rtls_clocks(device: str) -> None:
    ov = _overlay(device)
    region = {R.ROW_START: 0, R.ROW_COUNT: 3, R.COL_START: 5, R.COL_COUNT: 7}
    # FORM: one frame for the whole region (its rows grounded), guard, pulse, guard
    assert _run(ov, {R.OPCODE: Opcode.FORM, **region})[0] == FRAME + 2 * GUARD + PULSE + 12
    # RESET / SET of k cells: a frame (its BL), guard, pulse, guard per cell
    for op, k in ((Opcode.RESET, 5), (Opcode.SET, 2)):
        cells = _cells(list(range(k)), [5] * k)
        assert _run(ov, {R.OPCODE: op, R.CELL_COUNT: k}, cells)[0] == 3 + k * (FRAME + 2 * GUARD + PULSE + 12)
    # READ of 3 x 7: per row a frame and a guard, per cell settle and one conversion
    cycles, _ = _run(ov, {R.OPCODE: Opcode.READ, **region, R.TIA_GAIN: 1}, recv=21)
    assert cycles == 4 + 3 * (FRAME + GUARD + 7) + 21 * (SETTLE + CONV + 7)
    # PROGRAM: a verify read per cell and after each pulse (frame, guard, sample), a frame and a pulse per pulse
    n = 4
    packet = np.stack([_cells(list(range(n)), [5] * n), np.full(n, 2_000)], axis=1).ravel()
    regs = {R.OPCODE: Opcode.PROGRAM, R.CELL_COUNT: n, R.MAX_PULSES: 3, R.VERIFY_TOL: 0, R.TIA_GAIN: 1}
    cycles, out = _run(ov, regs, packet, recv=n)
    pulses = int(PROGRAM_RESULT_PULSES.get(out.astype(np.int64)).sum())
    assert pulses == 3 * n  # tolerance 0: every cell takes MAX_PULSES
    read = FRAME + GUARD + SETTLE + CONV
    assert cycles == 4 + n * (read + 19) + pulses * (read + FRAME + 2 * GUARD + PULSE + 22)
    # MULTIPLY, 2 vectors x 3 bit-planes on 4 columns: per frame the host frame and a guard, per sample a
    # settle and a conversion, per result word one clock
    frames = linedrive.bitplane_frames(np.ones((6, 512), np.uint8))
    regs = {R.OPCODE: Opcode.MULTIPLY, R.BATCH: 2, R.BITS: 3, R.COL_START: 0, R.COL_COUNT: 4, R.TIA_GAIN: 0}
    cycles, _ = _run(ov, regs, frames.ravel(), recv=8)
    assert cycles == 4 + 6 * (HOST_FRAME + GUARD) + 6 * 4 * (SETTLE + CONV + 6) + 2 * 4
    assert _run(ov, {R.OPCODE: Opcode.NOP})[0] == 3


def test_a_smaller_array_shifts_a_shorter_chain() -> None:
    """The overlay built for ROWS rows shifts ROWS / 8 words a step (rram_chain_frame), and a MULTIPLY frame's
    words for absent 595s cost 2 clocks each: the emulated overlay counts its own array's chain."""
    ov = EmulatedOverlay(ChipModelConfig(rows=16, cols=16))
    assert ov.clocks == timing.Clocks(rows=16)
    for k, v in {R.GUARD_CYCLES: 7, R.PULSE_CYCLES: 20}.items():
        ov.write_reg(k, v)
    frame = 2 * 2 * WORD + 15
    assert _run(ov, {R.OPCODE: Opcode.FORM, R.ROW_START: 0, R.ROW_COUNT: 2, R.COL_START: 0, R.COL_COUNT: 2})[0] == (
        frame + 2 * 7 + 20 + 12
    )
    assert ov.clocks.host_frame_cycles(7) == frame + 2 * 62 - 2 + 8


def test_a_reads_cells_are_sampled_along_the_rows_frames() -> None:
    """READ's sample times carry the frames (crossbar.ReadTimes): cell k of row i is sampled (i + 1) row steps
    (frame, guard) and k + 1 sample steps (settle, conversion) after the START."""
    row, sample = timing.read_row_cycles(GUARD), timing.read_sample_cycles(SETTLE)
    assert (row, sample) == (FRAME + GUARD + 7, SETTLE + CONV + 7)
    at = ReadTimes(row, sample, timing.CLOCK_HZ // 1_000_000).times(1_000, 2, 3)
    assert at[0, 0] == 1_000 + (row + sample) // 100 == 1_272
    assert at[1, 0] == 1_000 + (2 * row + 4 * sample) // 100 == 1_586


def test_dac_frames_cost_the_clocks_they_are_shifted_for() -> None:
    """A DAC_FRAME write counts its SCLK periods (dac80508_spi): 96 clocks at DAC_HALF, 480 at DAC_READ_HALF for a
    read command and the frame after it (the data's way out); a frame refused by DAC_LIMIT_* is never shifted:
    no clocks, no DAC update (it counted 96 clocks and an update before)."""
    ov = EmulatedOverlay(ChipModelConfig(rows=8, cols=8))

    def frame(word: int) -> tuple[int, int]:
        before, updates = ov.board_time_s, ov.ledger.dac_updates
        ov.write_reg(R.DAC_FRAME, word)
        return round((ov.board_time_s - before) * timing.CLOCK_HZ), ov.ledger.dac_updates - updates

    assert frame(dac80508.channel_frame(DAC_V_READ, 100)) == (timing.DAC_FRAME_CYCLES, 1) == (96, 1)
    assert frame(dac80508.build_frame(dac80508.DEVICE_ID, 0, read=True)) == (480, 1)
    assert frame(dac80508.build_frame(dac80508.NOP, 0)) == (timing.DAC_READ_FRAME_CYCLES, 1) == (480, 1)
    assert frame(dac80508.build_frame(dac80508.NOP, 0)) == (96, 1)
    ov.write_reg(R.DAC_LIMIT_V_READ, 1000)
    assert frame(dac80508.channel_frame(DAC_V_READ, 1001)) == (0, 0)
    assert ov.error and R.DAC_RDATA_REFUSED.get(ov.read_reg(R.DAC_RDATA)) == 1  # refused (OVER_RATING)


def test_the_emulators_board_clocks_are_the_rtls_build_defaults() -> None:
    """timing.Clocks() and the DAC frame clocks are the board's build: the RTL parameter defaults of
    rram_overlay_top.v and of the modules whose parameters the top does not set (ads8324_rx's CS_HIGH,
    dac80508_spi's SYNC_HIGH), all of them the protocol.toml [clock.*] macros. The RTL benches run other
    parameters and hand them to the emulator, so only this compares the defaults themselves."""
    import re
    from pathlib import Path

    from rramctl import protocol as P

    rtl = Path(__file__).resolve().parents[1] / "hdl" / "rtl"

    def defaults(module: str) -> dict[str, int]:
        text = (rtl / f"{module}.v").read_text()
        found = dict(re.findall(r"parameter integer (\w+) = ([`\w]+)", text))
        return {k: getattr(P, v.removeprefix("`RRAM_")) for k, v in found.items() if v.startswith("`RRAM_")}

    top, adc, dac = defaults("rram_overlay_top"), defaults("ads8324_rx"), defaults("dac80508_spi")
    board = timing.Clocks()
    assert top["ROWS"] == board.rows == P.ARRAY_LINES
    assert (top["SR_HALF"], top["ADC_HALF"], top["ADC_MIN_CYCLES"], adc["CS_HIGH"]) == (
        board.sr_half, board.adc_half, board.adc_min_cycles, board.adc_cs_high)  # fmt: skip
    assert 24 * 2 * top["DAC_HALF"] == timing.DAC_FRAME_CYCLES
    assert 24 * 2 * top["DAC_READ_HALF"] == timing.DAC_READ_FRAME_CYCLES
    assert dac["SYNC_HIGH"] == P.DAC_SYNC_HIGH
