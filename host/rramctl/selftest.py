"""Non-destructive self-test of the whole path: nothing here changes a cell's conductance."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rramctl.chip import Chip
from rramctl.geometry import Region
from rramctl.regmap import OP_COUNT_COUNT

# (ours) a column offset of a few nA reads as up to ~1 uS below zero at 0.1 V in the read range, and
# as a few codes per bit plane in the multiply range (docs/emulator.md, "Device model")
READ_OFFSET_US = 1.0
ZERO_CODES_PER_PLANE = 4


@dataclass
class Check:
    name: str
    ok: bool
    detail: str


def run_selftest(chip: Chip, *, emulator: bool = False) -> list[Check]:
    checks: list[Check] = []

    def check(name: str, fn) -> None:  # noqa: ANN001
        try:
            ok, detail = fn()
        except Exception as e:  # a self-test reports every failure instead of stopping at the first
            ok, detail = False, f"{type(e).__name__}: {e}"
        checks.append(Check(name, bool(ok), detail))

    def identity() -> tuple[bool, str]:
        major, minor = chip.identity()
        return True, f"rramctl overlay, register map v{major}.{minor}"

    def dac() -> tuple[bool, str]:
        dev = chip.dac_device_id()
        resolution, eight_channels = dev >> 12, (dev >> 11) & 1
        return resolution == 0 and eight_channels == 1, f"DAC80508 DEVICE_ID {dev:#06x} (16-bit, 8 channels)"

    def read() -> tuple[bool, str]:
        g = chip.read(Region(0, 8, 0, 8))
        ok = bool(np.all(g >= -READ_OFFSET_US) and np.all(g <= chip.read_range_us))  # TIA offsets read below 0
        return ok, f"read 8x8 cells, {g.min():.2f}-{g.max():.2f} uS"

    def zero_multiply() -> tuple[bool, str]:
        bits = 4
        res = chip.multiply(np.zeros((2, 64), np.int64), Region(0, 64, 0, 64), bits)
        worst = int(np.abs(res.codes).max())
        ok = worst <= ZERO_CODES_PER_PLANE * ((1 << bits) - 1)
        return ok, f"all-zero inputs give codes within +-{worst} (offset and noise of {bits} bit planes)"

    def counters() -> tuple[bool, str]:
        before = chip.counters()["op_count"]
        chip.read(Region(0, 1, 0, 1))
        after = chip.counters()["op_count"]
        return after == (before + 1) % (1 << OP_COUNT_COUNT.width), f"OP_COUNT {before} -> {after}"

    if chip.has_overlay:
        check("overlay identity", identity)
        check("DAC80508", dac)
    else:  # the software backend: a float model, no registers, DAC or counters to check
        checks.append(Check("overlay", True, f"none: the {chip.backend} backend is a float model without registers"))
    check("read", read)
    check("multiply (zero input)", zero_multiply)
    if chip.has_overlay:
        check("operation counter", counters)
    if emulator:

        def reference() -> tuple[bool, str]:
            from rramctl.reference import emulator_reference_check

            res = emulator_reference_check(config=chip.config)
            return res.ok, res.detail

        check("scratch-chip reference (form, reset, set, multiply)", reference)
    return checks
