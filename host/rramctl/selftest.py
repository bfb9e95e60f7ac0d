"""Non-destructive self-test of the whole path: nothing here changes a cell's conductance."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rramctl.chip import Chip
from rramctl.geometry import Region


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
        ok = bool(np.all(g >= 0) and np.all(g <= chip.read_range_us))
        return ok, f"read 8x8 cells, {g.min():.2f}-{g.max():.2f} uS"

    def zero_multiply() -> tuple[bool, str]:
        res = chip.multiply(np.zeros((2, 64), np.int64), Region(0, 64, 0, 64), 4)
        return bool(np.all(res.codes == 0)), "all-zero inputs give all-zero codes"

    def counters() -> tuple[bool, str]:
        before = chip.counters()["op_count"]
        chip.read(Region(0, 1, 0, 1))
        after = chip.counters()["op_count"]
        return after == (before + 1) % (1 << 32), f"OP_COUNT {before} -> {after}"

    check("overlay identity", identity)
    check("DAC80508", dac)
    check("read", read)
    check("multiply (zero input)", zero_multiply)
    check("operation counter", counters)
    if emulator:

        def reference() -> tuple[bool, str]:
            from rramctl.reference import emulator_reference_check

            res = emulator_reference_check(config=chip.config)
            return res.ok, res.detail

        check("scratch-chip reference (form, reset, set, multiply)", reference)
    return checks
