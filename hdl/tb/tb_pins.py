"""cocotb bench of rram_overlay_top at its default (board) timing parameters, watched by the pin-level
datasheet checker (pin_checker.py), which is independent of the board model that drives DOUT/SDO.
Run by hdl/tb/test_hdl.py (build "pins": default DAC_HALF/SR_HALF/ADC_HALF/ADC_MIN_CYCLES, small array)."""

from __future__ import annotations

import os

import cocotb
import numpy as np
from cocotb.task import bridge
from cocotb.triggers import ClockCycles
from pin_checker import PinChecker
from rramctl.driver import Driver
from rramctl.geometry import Region
from rramctl.hw import dac80508
from tb_overlay import V_PROG, V_READ, V_SET, V_WL, setup

ROWS, COLS, NADC = (int(os.environ.get(k, d)) for k, d in (("TB_ROWS", 16), ("TB_COLS", 16), ("TB_NADC", 2)))


@cocotb.test()
async def datasheet_timing_at_default_settings(dut) -> None:
    """Every mode at the default timing: DAC writes and a register read, a SET pulse, a READ, a PROGRAM
    with its verify reads and a MULTIPLY frame, all within the DAC80508 / SN74HC595 / ADS8324 limits the
    checker encodes (issue 14 class 6: the ADS8324 50 kSPS limit at the default setting)."""
    board, t = await setup(dut)
    pins = PinChecker(dut, NADC, ROWS).start()

    def run(drv: Driver) -> int:
        drv.init_dac()
        device_id = drv.read_dac_register(dac80508.DEVICE_ID)
        drv.set_cells(np.array([[1, 2]]), 30, V_SET, V_WL)
        drv.read_region(Region(0, 1, 0, 3), V_READ)
        drv.program_cells(np.array([[3, 1]]), np.array([400]), pulse_cycles=50, tolerance_ppm=0, max_pulses=1,
                          v_prog=V_PROG, v_wl=V_WL, v_read=V_READ)  # fmt: skip
        drv.multiply(np.ones((1, ROWS), np.int64), 1, Region(0, ROWS, 0, 2), V_READ)
        return device_id

    device_id = await bridge(run)(Driver(t, settle_cycles=100))
    await ClockCycles(dut.aclk, 100)
    assert device_id == 0x0800  # the DEVICE_ID read came back through DAC_RDATA
    assert pins.conversions >= 3 + 2 + 2 and pins.dac_frames >= 10 and pins.latches >= 4
    assert not pins.violations, "\n".join(pins.violations[:10])
    assert not board.violations, "\n".join(board.violations[:10])
