"""How long each operation takes on the board: the virtual board clock (``EmulatedOverlay.board_time_s``)
advances by it, so relaxation and drift (rramsim.device) run on board time, not on host time.

PL clock cycles (10 ns at 100 MHz) from the RTL's serial-clock parameters (docs/hdl.md, "Parameters"):
- a DAC80508 frame: 24 bits at SCLK = clk / (2 * DAC_HALF) -> 96 cycles (~1 us);
- a chain frame: 512 bits at SRCLK = clk / (2 * SR_HALF) -> 3,072 cycles (~31 us), shifted twice
  (CHAIN_STEPS): the RTL applies every frame in two latch steps, the mux addresses with every INH set, then
  the frame itself (docs/hdl.md, "Timing budget per mode": address lines settle before INH releases);
- an ADS8324 conversion: 22 DCLKs at clk / (2 * ADC_HALF) plus the CS gap -> 2,000 cycles (20 us,
  the part's 50 kSPS); the ADCs are read one chip select at a time (docs/hdl.md), so a column's
  sample takes one conversion;
- SETTLE_CYCLES before each sampled row (READ) or frame (MULTIPLY) and after each pulse (PROGRAM's
  verify read); PULSE_CYCLES per pulse.
FORM pulses the whole region at once (seed 000: one uniform pulse on the array); RESET/SET pulse one
cell after another; PROGRAM pulses and verify-reads one cell after another.  Register and DMA
traffic is not counted (ours: microseconds against the milliseconds of an operation).
"""

from __future__ import annotations

CLOCK_HZ = 100_000_000  # PL clock (docs/protocol.md)
DAC_FRAME_CYCLES = 24 * 2 * 2  # DAC_HALF = 2
CHAIN_FRAME_CYCLES = 512 * 2 * 3  # SR_HALF = 3
CHAIN_STEPS = 2  # shifts per applied frame: the address step (every INH set), then the frame itself
ADC_SAMPLE_CYCLES = 2_000  # 22 DCLKs at ADC_HALF = 42 (1,848 cycles) + CS gap: 50 kSPS

FORM, RESET, SET, PROGRAM, READ, MULTIPLY = 1, 2, 3, 4, 5, 6


def op_cycles(op: int, *, pulse_cycles: int, settle_cycles: int, cells: int, pulses: int, rows: int,
              samples: int, frames: int) -> int:  # fmt: skip
    """PL cycles of one successful operation.  ``cells``: cells named (RESET/SET/PROGRAM) or in the
    region (READ); ``pulses``: pulses applied (PROGRAM: write-verify pulses); ``rows``: region rows
    (READ); ``samples``: ADC samples taken; ``frames``: chain frames (MULTIPLY)."""
    if op == FORM:
        return pulse_cycles
    if op in (RESET, SET):
        return cells * (pulse_cycles + settle_cycles)
    if op == PROGRAM:  # each cell: a verify read, then per pulse: pulse, settle, verify read
        return pulses * (pulse_cycles + settle_cycles) + samples * ADC_SAMPLE_CYCLES + cells * settle_cycles
    if op == READ:
        return rows * settle_cycles + samples * ADC_SAMPLE_CYCLES
    if op == MULTIPLY:
        return frames * (CHAIN_STEPS * CHAIN_FRAME_CYCLES + settle_cycles) + samples * ADC_SAMPLE_CYCLES
    return 0


def seconds(cycles: int) -> float:
    return cycles / CLOCK_HZ
