"""Reference check on a scratch emulated chip: the whole host path against the documented integer rules.

A fresh in-memory emulator (read noise off, nothing written to any state file) is driven through the
same Chip -> Driver -> Transport path as a real board.  Its true conductances (the emulator's integer
state, in nS) are then pushed through the rules of docs/protocol.md, written out here independently of
the emulator's own multiply code:

* read: code = ADC(V_READ * G) in the read range;
* multiply: for each input bit b, BL i is at V_READ when bit b of x_i is 1, else grounded;
  code_j = sum_b 2**b * ADC(sum_i v_ib * G_ij) in the multiply range (bit-serial shift-and-add);
* reset leaves a cell below the formed threshold (300 kOhm), set brings it above.

Every step must agree bit for bit.  `rramctl selftest` runs this on the emulator backend.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

from rramctl.chip import FORMED_THRESHOLD_US, Chip
from rramctl.config import BoardConfig
from rramctl.geometry import Region
from rramctl.hw import adc
from rramctl.protocol import TiaGain

if TYPE_CHECKING:
    from rramsim.overlay import EmulatedOverlay

REGION = Region(0, 32, 0, 16)  # ours: small enough to run in well under a second
BITS = 4
BATCH = 6


@dataclass(frozen=True)
class ReferenceResult:
    ok: bool
    detail: str


def reference_multiply_codes(
    inputs: NDArray[np.integer], g_ns: NDArray[np.integer], v_read_code: int, bits: int
) -> NDArray[np.int64]:
    """Bit-serial multiply of (B, rows) unsigned ``bits``-bit inputs with (rows, cols) conductances in nS."""
    x = np.asarray(inputs, dtype=np.int64)
    g = np.asarray(g_ns, dtype=np.int64)
    total = np.zeros((x.shape[0], g.shape[1]), dtype=np.int64)
    for b in range(bits):
        drive = ((x >> b) & 1) * v_read_code  # DAC code on each BL for this bit plane
        total += adc.drive_sum_to_code(drive @ g, TiaGain.MULTIPLY) << b
    return total


def scratch_chip(seed: int = 1, config: BoardConfig | None = None) -> tuple[Chip, EmulatedOverlay]:
    """A fresh emulated chip (the ideal model, read noise off) and its overlay (for the true conductances)."""
    from rramsim.config import ChipModelConfig, Read

    from rramctl.transport.emulator import EmulatorTransport

    config = config or BoardConfig()
    transport = EmulatorTransport(
        ChipModelConfig(seed=seed, read=Read(noise_ppm=0)), temperature_c=config.forming_temperature_c
    )
    return Chip.from_transport(transport, config), transport.overlay


def emulator_reference_check(seed: int = 1, config: BoardConfig | None = None) -> ReferenceResult:
    """Form, read, reset, set and multiply on a scratch chip; compare each with the integer reference."""
    chip, overlay = scratch_chip(seed, config)
    r0, c0 = REGION.row, REGION.col
    rows = slice(r0, r0 + REGION.n_rows)
    cols = slice(c0, c0 + REGION.n_cols)
    try:
        problems: list[str] = []
        chip.electroform(REGION)

        def truth() -> NDArray[np.int64]:
            return np.asarray(overlay.crossbar.g[rows, cols], dtype=np.int64)

        read = chip.read_codes(REGION)
        want = adc.drive_sum_to_code(chip.v_read_code * truth(), TiaGain.READ)
        if not np.array_equal(read, want):
            problems.append(f"read differs in {int((read != want).sum())} cells")

        g = chip.read(REGION)
        formed = np.argwhere(g > FORMED_THRESHOLD_US)
        if len(formed) < 2:
            return ReferenceResult(False, "forming left fewer than 2 formed cells in the scratch region")
        victims = formed[: len(formed) // 2] + [r0, c0]
        chip.reset(victims)
        g = chip.read(REGION)
        if np.any(g[victims[:, 0] - r0, victims[:, 1] - c0] > FORMED_THRESHOLD_US):
            problems.append("a reset cell still reads as formed")
        chip.set(victims)
        g = chip.read(REGION)
        if np.any(g[victims[:, 0] - r0, victims[:, 1] - c0] <= FORMED_THRESHOLD_US):
            problems.append("a set cell still reads as off")

        x = np.random.default_rng(seed).integers(0, 1 << BITS, size=(BATCH, REGION.n_rows))
        got = chip.multiply(x, REGION, BITS).codes
        want = reference_multiply_codes(x, truth(), chip.v_read_code, BITS)
        if not np.array_equal(got, want):
            problems.append(f"multiply differs in {int((got != want).sum())} of {got.size} outputs")
        n = REGION.n_rows * REGION.n_cols
        if problems:
            return ReferenceResult(False, "; ".join(problems))
        return ReferenceResult(
            True,
            f"scratch chip: read of {n} cells, reset/set of {len(victims)} cells and a {BATCH}x{REGION.n_rows} "
            f"{BITS}-bit multiply agree bit for bit with the integer reference",
        )
    finally:
        chip.close()
