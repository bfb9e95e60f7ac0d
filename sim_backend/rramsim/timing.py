"""How long each operation takes on the board: the virtual board clock (``EmulatedOverlay.board_time_s``)
advances by it, so relaxation and drift (rramsim.device) run on board time, not on host time.

The count is the RTL's, clock for clock (PL clock 100 MHz, 10 ns): the flow of each opcode in
``hdl/rtl/rram_seq.v`` over its sub-modules, with the overlay's build parameters (docs/hdl.md,
"Parameters": ROWS, SR_HALF, ADC_HALF, ADC_MIN_CYCLES; ``ads8324_rx`` CS_HIGH) and the registers
GUARD_CYCLES (G), SETTLE_CYCLES (S), PULSE_CYCLES (P).  Per part:

- a **chain frame** (``rram_chain_frame``: ``gen`` from a row pattern) is shifted twice (issue 14 class 1,
  docs/hdl.md "What each operation does on the pins"): step 1 the frame with every INH set, latch (``addr``:
  OE falls), step 2 the frame itself, latched no sooner than G clocks after ``addr``.  ``hc595_chain`` shifts a
  32-bit word in 64 SRCLK half periods of SR_HALF clocks, and ``rram_chain_frame`` takes 3 clocks more per word
  (the start strobe, the driver's busy flag, the word step): a step is W = ROWS/8 words of 64 * SR_HALF + 3
  clocks; a latch pulse (RCLK setup and high, SR_HALF each) with its handshakes adds 2 * SR_HALF + 2 clocks
  per step, so a frame is ``2 W (64 SR_HALF + 3) + 4 SR_HALF + 3`` clocks plus whatever of G the second
  shift does not cover (``max(0, G - W (64 SR_HALF + 3))``; none at 512 rows up to G = 12,480).  At the
  board's defaults (512 rows: W = 64, SR_HALF 3): 24,975 clocks, 0.25 ms.
- a MULTIPLY **host frame** (``put``: 64 words from MM2S, those for 595s an array of fewer than 512 rows does
  not have dropped) takes 2 clocks per dropped word (``S_MU_WORD``, ``S_MU_SHIFT``), one clock less per
  shifted word in step 1 than a pattern frame and 8 clocks of frame start: ``frame + 2 (64 - W) - W + 8``,
  words arriving at one a clock (an MM2S that does not stall).
- an **ADC sample** (``rram_sample``): S clocks, then one ``ads8324_rx`` conversion, which ends (and frees
  the reader) on the first prescaler tick at least ADC_MIN_CYCLES - 1 clocks after CS fell: 22 DCLKs of
  2 ADC_HALF clocks, CS_HIGH clocks of CS high, then ticks ADC_HALF apart until the 50 kSPS gap has passed.
  At the defaults 1,852 clocks of frame, end at 2,020 (20.2 us); the settle does not overlap it (the
  sample's ``done`` waits for the reader to be free, and the next sample starts its settle after that).
- a **pulse** (``rram_pulse``): G, exactly P, G.

Per operation (``op_cycles``; the small constants are the clocks of the sequencer's state changes and
handshakes, read off the RTL's states and measured on the bench, ``hdl/tb/tb_board_time.py``):

- FORM (S_FORM, S_FORM_FRAME: one frame, the region's rows grounded; S_FORM_DRV, S_FORM_PULSE):
  frame + 2G + P + 12;
- RESET / SET of k cells (per cell S_CELL, S_CELL_CHK, S_RS_GO, S_PULSE_FRAME: a frame, its BL; S_PULSE_DRV,
  S_PULSE_WAIT, S_CELL_NEXT): 3 + k (frame + 2G + P + 12);
- PROGRAM of n cells and p pulses in all (per verify read S_PV_READ, S_PV_FRAME: a frame, its BL at V_READ;
  S_PV_DRV, S_PV_GUARD: G; S_PV_SMPW: a sample; S_PV_MUL, S_PV_CHK; per pulse S_PULSE_FRAME: a frame;
  S_PULSE_DRV, S_PULSE_WAIT, S_PV_OUT; per cell S_PV_PUSH; a verify read per cell and one after each pulse):
  4 + n (frame + G + S + conv + 19) + p (2 frame + 3G + P + S + conv + 22);
- READ of r x c (per row S_RD_ROW, S_RD_FRAME: a frame, the row at V_READ; S_COLS_DRV, S_COLS_GUARD: G; per
  cell S_COLS_SMP, S_COLS_SMPW: a sample; S_RD_CODE, S_RD_PUSH): 4 + r (frame + G + 7) + r c (S + conv + 7);
- MULTIPLY of f = BATCH x BITS frames on c columns (per frame S_MU_FRAME, S_MU_WORD / S_MU_SHIFT: 64 host
  words; S_MU_LATCH, S_COLS_DRV, S_COLS_GUARD: G; S_MU_NEXT; per sample S_COLS_SMP, S_COLS_SMPW, S_MU_CODE;
  per result word S_MU_PUSH): 4 + f (host frame + G) + f c (S + conv + 6) + BATCH c;
- NOP, IDLE (S_END, S_FIN, S_FIN2), and RESET / SET / PROGRAM of no cells: 3.

Packets hold exactly the operation's words (more words: the RTL drains them to TLAST, S_DRAIN, one clock each).

"frame" and "conv" as above (conv: from ``adc_go`` to the reader free, 2,020 at the defaults).  So at the
defaults (512 rows, G = S = 100) a READ row costs 0.25 ms of frame and each cell 21.3 us; a write-verify pulse
two frames (0.5 ms) and a verify read; a RESET / SET cell 0.25 ms.  The bench check
(``hdl/tb/tb_board_time.py``, ``board_time_matches_the_emulator``) runs each operation on the RTL, counts
the clocks STATUS.BUSY is high, and requires exactly ``op_cycles`` for them.

Within a READ, sample k (row i = k // cols) is taken at ``(i + 1) * read_row_cycles + (k + 1) *
read_sample_cycles`` clocks after the START (the end of its conversion step; ``crossbar.ReadTimes``), so
cells relax during a long read.  The samples of one MULTIPLY see the conductances at its start, and the
pulses and verify reads of a RESET / SET / PROGRAM the conductances and the board clock at its start
(ours: docs/emulator.md, "Board clock").  Register and DMA traffic is not counted (ours: microseconds
against the milliseconds of an operation); DAC frames are (``DAC_FRAME_CYCLES`` each,
``DAC_READ_FRAME_CYCLES`` for a read command and the frame after it, none for a frame refused by the ratings:
``dac80508_spi``).
"""

from __future__ import annotations

from dataclasses import dataclass

from rramctl.hw.adc import FRAME_CLOCKS
from rramctl.hw.linedrive import LINES_PER_WORD
from rramctl.protocol import (
    ADC_CS_HIGH,
    ADC_HALF,
    ADC_MIN_CYCLES,
    ARRAY_LINES,
    DAC_FRAME_READ,
    DAC_HALF,
    DAC_READ_HALF,
    FRAME_WORDS,
    PL_CLOCK_HZ,
    SR_HALF,
    Opcode,
)

CLOCK_HZ = PL_CLOCK_HZ  # PL clock (docs/protocol.md)
DAC_FRAME_BITS = DAC_FRAME_READ.lsb + 1  # the DAC80508's 24-bit frame: its R/W bit is the top one
DAC_FRAME_CYCLES = DAC_FRAME_BITS * 2 * DAC_HALF  # 96: 24 SCLK periods of 2 DAC_HALF clocks
DAC_READ_FRAME_CYCLES = DAC_FRAME_BITS * 2 * DAC_READ_HALF  # 480: a read command and the frame after it
CHAIN_STEPS = 2  # shifts per applied frame: the address step (every INH set), then the frame itself
WORD_EXTRA = 3  # rram_chain_frame clocks per shifted word beyond its 64 SRCLK half periods
ADC_FRAME_DCLKS = FRAME_CLOCKS  # ads8324_rx: 5 sampling clocks, a null bit, 14 data bits, 2 zero bits

# sequencer clocks beyond the frames, guards, pulses and samples (rram_seq state changes and handshakes,
# measured on the bench: hdl/tb/tb_board_time.py)
FORM_EXTRA = 12
CELL_EXTRA = 12  # per RESET / SET cell
STREAM_OP_EXTRA = 3  # RESET / SET; PROGRAM, READ and MULTIPLY: OP_EXTRA
OP_EXTRA = 4
PV_CELL_EXTRA = 19  # PROGRAM: per cell (its first verify read and its output word)
PV_PULSE_EXTRA = 22  # PROGRAM: per pulse (the pulse and the verify read after it)
READ_ROW_EXTRA = 7
READ_SAMPLE_EXTRA = 7
MU_FRAME_EXTRA = 8
MU_SAMPLE_EXTRA = 6
MU_PUSH_EXTRA = 1
IDLE_OP_CYCLES = 3  # NOP, IDLE: S_END, S_FIN, S_FIN2


@dataclass(frozen=True)
class Clocks:
    """The overlay build parameters the board time depends on (docs/hdl.md, "Parameters"); the defaults
    are the board's: ARRAY_LINES rows and the [clock.*] entries of firmware/regmap/protocol.toml, which are
    the RTL parameters' defaults too."""

    rows: int = ARRAY_LINES  # ROWS: the chain has ROWS / LINES_PER_WORD (8) words a step
    sr_half: int = SR_HALF
    adc_half: int = ADC_HALF
    adc_min_cycles: int = ADC_MIN_CYCLES  # CS falls at least this far apart (50 kSPS)
    adc_cs_high: int = ADC_CS_HIGH  # ads8324_rx CS_HIGH

    @property
    def words(self) -> int:
        return -(-self.rows // LINES_PER_WORD)

    def step_cycles(self) -> int:
        """One shift of a pattern frame: ROWS / 8 words."""
        return self.words * (64 * self.sr_half + WORD_EXTRA)

    def frame_cycles(self, guard_cycles: int) -> int:
        """A pattern frame in its two latch steps (rram_chain_frame ``gen`` to ``done``)."""
        step = self.step_cycles()
        return CHAIN_STEPS * step + 4 * self.sr_half + 3 + max(0, guard_cycles - step)

    def host_frame_cycles(self, guard_cycles: int) -> int:
        """A MULTIPLY frame of FRAME_WORDS host words in its two latch steps."""
        return self.frame_cycles(guard_cycles) + 2 * (FRAME_WORDS - self.words) - self.words + MU_FRAME_EXTRA

    def conversion_cycles(self) -> int:
        """``adc_go`` to the reader free again: the ADS8324 frame, CS high, then prescaler ticks ADC_HALF
        apart until ADC_MIN_CYCLES - 1 clocks have passed since CS fell."""
        frame = 2 * ADC_FRAME_DCLKS * self.adc_half + self.adc_cs_high
        wait = max(0, self.adc_min_cycles - 1 - frame)
        return frame + -(-wait // self.adc_half) * self.adc_half


BOARD = Clocks()
ADC_SAMPLE_CYCLES = BOARD.conversion_cycles()  # 2,020 at the defaults


def read_row_cycles(guard_cycles: int, clocks: Clocks = BOARD) -> int:
    """A READ row before its samples: its frame, the guard, the state changes."""
    return clocks.frame_cycles(guard_cycles) + guard_cycles + READ_ROW_EXTRA


def read_sample_cycles(settle_cycles: int, clocks: Clocks = BOARD) -> int:
    """A READ sample: settle, one conversion, the output word."""
    return settle_cycles + clocks.conversion_cycles() + READ_SAMPLE_EXTRA


def op_cycles(op: int, *, pulse_cycles: int, settle_cycles: int, guard_cycles: int, cells: int = 0,
              pulses: int = 0, rows: int = 0, cols: int = 0, frames: int = 0, batch: int = 0,
              clocks: Clocks = BOARD) -> int:  # fmt: skip
    """PL clocks of one successful operation, STATUS.BUSY high (the table above).  ``cells``: cells named
    (RESET / SET / PROGRAM); ``pulses``: PROGRAM's write-verify pulses, all cells together; ``rows`` x
    ``cols``: READ's region (MULTIPLY: ``cols`` its columns); ``frames``: MULTIPLY's BATCH x BITS chain
    frames; ``batch``: MULTIPLY's vectors (one output word per vector and column)."""
    g, s, p = guard_cycles, settle_cycles, pulse_cycles
    frame, conv = clocks.frame_cycles(g), clocks.conversion_cycles()
    if op in (Opcode.RESET, Opcode.SET, Opcode.PROGRAM) and cells == 0:
        return IDLE_OP_CYCLES  # S_IDLE goes to S_END at once
    if op == Opcode.FORM:
        return frame + 2 * g + p + FORM_EXTRA
    if op in (Opcode.RESET, Opcode.SET):
        return STREAM_OP_EXTRA + cells * (frame + 2 * g + p + CELL_EXTRA)
    if op == Opcode.PROGRAM:  # each cell: a verify read; per pulse: a frame and pulse, then a verify read
        read = frame + g + s + conv
        return OP_EXTRA + cells * (read + PV_CELL_EXTRA) + pulses * (read + frame + 2 * g + p + PV_PULSE_EXTRA)
    if op == Opcode.READ:
        return OP_EXTRA + rows * read_row_cycles(g, clocks) + rows * cols * read_sample_cycles(s, clocks)
    if op == Opcode.MULTIPLY:
        sample = s + conv + MU_SAMPLE_EXTRA
        pushes = batch * cols * MU_PUSH_EXTRA
        return OP_EXTRA + frames * (clocks.host_frame_cycles(g) + g) + frames * cols * sample + pushes
    return IDLE_OP_CYCLES


def seconds(cycles: int) -> float:
    return cycles / CLOCK_HZ
