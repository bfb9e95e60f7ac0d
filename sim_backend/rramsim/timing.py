"""How long each operation takes on the board: the virtual board clock (``EmulatedOverlay.board_time_s``)
advances by it, so relaxation and drift (rramsim.device) run on board time, not on host time.

PL clock cycles (10 ns at 100 MHz) from the RTL's serial-clock parameters (docs/hdl.md, "Parameters"):
- a DAC80508 frame: 24 bits at SCLK = clk / (2 * DAC_HALF) -> 96 cycles (~1 us);
- a MULTIPLY chain frame: 2,048 bits (a CD4051B nibble per bit line, 512 lines) at SRCLK =
  clk / (2 * SR_HALF) -> 12,288 cycles (123 us), shifted twice (CHAIN_STEPS): the RTL applies every
  frame in two latch steps, the mux addresses with every INH set, then the frame itself (docs/hdl.md,
  "Timing budget per mode": address lines settle before INH releases); then GUARD_CYCLES before the drive;
- an ADS8324 conversion: 22 DCLKs at clk / (2 * ADC_HALF) plus the CS gap -> 2,000 cycles (20 us,
  the part's 50 kSPS); the ADCs are read one chip select at a time (docs/hdl.md), so a column's
  sample takes one conversion;
- MULTIPLY's samples: SETTLE_CYCLES then one conversion (1,848 cycles), the settle running while the
  reader waits out its 50 kSPS gap: max(2,000, SETTLE_CYCLES + 1,848) cycles a sample (ours, within a
  few clocks of the RTL's state changes);
- SETTLE_CYCLES before each sampled row (READ) and after each pulse (PROGRAM's verify read);
  PULSE_CYCLES per pulse.
FORM pulses the whole region at once (seed 000: one uniform pulse on the array); RESET/SET pulse one
cell after another; PROGRAM pulses and verify-reads one cell after another.  Register and DMA
traffic is not counted (ours: microseconds against the milliseconds of an operation).  Known gap
(docs/emulator.md, "Board time and energy"): the chain frames and guards of FORM, RESET, SET, PROGRAM
and READ (a frame per cell, per verify read, per read row: 0.25 ms each) are not counted, so their
board time is a lower bound; MULTIPLY's is the RTL's.
"""

from __future__ import annotations

from rramctl.protocol import Opcode

CLOCK_HZ = 100_000_000  # PL clock (docs/protocol.md)
DAC_FRAME_CYCLES = 24 * 2 * 2  # DAC_HALF = 2
CHAIN_FRAME_CYCLES = 512 * 4 * 2 * 3  # 512 lines x 4 bits, SR_HALF = 3
CHAIN_STEPS = 2  # shifts per applied frame: the address step (every INH set), then the frame itself
ADC_CONVERSION_CYCLES = 22 * 2 * 42  # 22 DCLKs at ADC_HALF = 42
ADC_SAMPLE_CYCLES = 2_000  # ADC_MIN_CYCLES: chip-select falls 20 us apart, the ADS8324's 50 kSPS


def op_cycles(op: int, *, pulse_cycles: int, settle_cycles: int, guard_cycles: int, cells: int, pulses: int,
              rows: int, samples: int, frames: int) -> int:  # fmt: skip
    """PL cycles of one successful operation.  ``cells``: cells named (RESET/SET/PROGRAM) or in the
    region (READ); ``pulses``: pulses applied (PROGRAM: write-verify pulses); ``rows``: region rows
    (READ); ``samples``: ADC samples taken; ``frames``: chain frames (MULTIPLY)."""
    if op == Opcode.FORM:
        return pulse_cycles
    if op in (Opcode.RESET, Opcode.SET):
        return cells * (pulse_cycles + settle_cycles)
    if op == Opcode.PROGRAM:  # each cell: a verify read, then per pulse: pulse, settle, verify read
        return pulses * (pulse_cycles + settle_cycles) + samples * ADC_SAMPLE_CYCLES + cells * settle_cycles
    if op == Opcode.READ:
        return rows * settle_cycles + samples * ADC_SAMPLE_CYCLES
    if op == Opcode.MULTIPLY:
        sample = max(ADC_SAMPLE_CYCLES, settle_cycles + ADC_CONVERSION_CYCLES)
        return frames * (CHAIN_STEPS * CHAIN_FRAME_CYCLES + guard_cycles) + samples * sample
    return 0


def seconds(cycles: int) -> float:
    return cycles / CLOCK_HZ
