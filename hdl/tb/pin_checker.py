"""Pin-level datasheet checker for rram_overlay_top, written from the datasheets and independent of
board_model.py (it never models the chip; it only watches the pins and timestamps every edge).

Checked (minimums in ns; sources in docs/hardware.md):
- DAC80508 SPI, mode 1: SCLK low whenever SYNC changes, SCLK period >= 20 ns (50 MHz), >= 100 ns (ours) in a
  read command and in the frame after it that brings the register out on SDO, 24 falling edges
  per SYNC-low frame, SDIN stable for half the fastest SCLK period (10 ns, ours) before the latching edge.
- SN74HC595: SER stable >= 25 ns before each SRCLK rise (4.5 V), SRCLK high and low >= 20 ns, RCLK high
  >= 20 ns, RCLK rises only after the last SRCLK rise of a frame, and OE falls only after a latch
  (never with an unlatched chain).
- ADS8324: one chip select low at a time, exactly 22 DCLK rises per conversion, CS fall to CS fall
  >= 20 us (50 kSPS), DCLK idle low at CS edges.
- Line drivers: SL mode, WL enable and column window never change while drive_en is high
  (break-before-make at the driver level).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from cocotb.handle import SimHandleBase
from cocotb.simtime import get_sim_time
from cocotb.triggers import Edge, First, RisingEdge

DAC_SCLK_PERIOD_NS = 20.0  # DAC80508: f_SCLK <= 50 MHz
DAC_READ_SCLK_PERIOD_NS = 100.0  # DAC80508 reads (FSDO = 0) run slower than writes: our bound, with margin
DAC_FRAME_BITS = 24  # DAC80508: 24-bit frames
HC595_SETUP_NS = 25.0  # SN74HC595 at 4.5 V: SER setup before SRCLK rise
HC595_PULSE_NS = 20.0  # SN74HC595 at 4.5 V: SRCLK / RCLK pulse width
ADS8324_CS_PERIOD_NS = 20_000.0  # ADS8324: 50 kSPS maximum
ADS8324_DCLKS = 22  # ADS8324 timing diagram: clocks per conversion (rramctl.hw.adc.FRAME_CLOCKS)


def now() -> float:
    return float(get_sim_time("ns"))


@dataclass
class PinChecker:
    dut: SimHandleBase
    nadc: int
    violations: list[str] = field(default_factory=list)
    conversions: int = 0
    dac_frames: int = 0
    latches: int = 0

    def start(self) -> PinChecker:
        from cocotb import start_soon

        for coro in (self._dac(), self._chain(), self._adc(), self._drivers()):
            start_soon(coro)
        return self

    def _fail(self, what: str) -> None:
        self.violations.append(f"{now():.0f} ns: {what}")

    async def _dac(self) -> None:
        d = self.dut
        last_rise = last_sdin = -1e12
        bits = 0
        frame = 0
        read_frame = last_was_read = False  # the frame being shifted carries read data (or is a read command)
        sync, sclk, sdin = (int(x.value) for x in (d.dac_sync_n, d.dac_sclk, d.dac_sdin))
        while True:
            await First(Edge(d.dac_sclk), Edge(d.dac_sync_n), Edge(d.dac_sdin))
            t = now()
            n_sync, n_sclk, n_sdin = (int(x.value) for x in (d.dac_sync_n, d.dac_sclk, d.dac_sdin))
            if n_sdin != sdin:
                sdin, last_sdin = n_sdin, t
            if n_sync != sync:
                if n_sclk:
                    self._fail("DAC80508 SCLK high at a SYNC edge (mode 1 idles low)")
                if n_sync:  # end of a frame
                    if bits != DAC_FRAME_BITS:
                        self._fail(f"DAC80508 frame of {bits} bits")
                    self.dac_frames += 1
                    last_was_read = bool((frame >> 23) & 1)
                else:
                    read_frame = last_was_read
                bits, frame, sync = 0, 0, n_sync
            if n_sclk != sclk:
                if not n_sync and n_sclk:  # rising edge: the master launches SDIN
                    if t - last_rise < DAC_SCLK_PERIOD_NS:
                        self._fail("DAC80508 SCLK above 50 MHz")
                    if bits and read_frame and t - last_rise < DAC_READ_SCLK_PERIOD_NS:
                        self._fail("DAC80508 read data clocked out faster than the read bound")
                    last_rise = t
                elif not n_sync:  # falling edge: the DAC latches SDIN
                    if t - last_sdin < DAC_SCLK_PERIOD_NS / 2:
                        self._fail("DAC80508 SDIN not stable for half an SCLK period before the latching edge")
                    bits += 1
                    frame = (frame << 1) | n_sdin
                sclk = n_sclk

    async def _chain(self) -> None:
        d = self.dut
        ser_change = srclk_rise = srclk_fall = rclk_rise = -1e12
        ser, srclk, rclk, oe = (int(x.value) for x in (d.sr_ser, d.sr_srclk, d.sr_rclk, d.sr_oe_n))
        shifted_since_latch = False
        while True:
            await First(Edge(d.sr_ser), Edge(d.sr_srclk), Edge(d.sr_rclk), Edge(d.sr_oe_n))
            t = now()
            n_ser, n_srclk, n_rclk, n_oe = (int(x.value) for x in (d.sr_ser, d.sr_srclk, d.sr_rclk, d.sr_oe_n))
            if n_ser != ser:
                if srclk and t - srclk_rise < 1e-9:
                    self._fail("SN74HC595 SER changed on the SRCLK rising edge (hold)")
                ser, ser_change = n_ser, t
            if n_srclk != srclk:
                if n_srclk:
                    if t - ser_change < HC595_SETUP_NS:
                        self._fail(f"SN74HC595 SER setup {t - ser_change:.0f} ns < {HC595_SETUP_NS} ns")
                    if t - srclk_fall < HC595_PULSE_NS:
                        self._fail("SN74HC595 SRCLK low pulse too short")
                    srclk_rise, shifted_since_latch = t, True
                else:
                    if t - srclk_rise < HC595_PULSE_NS:
                        self._fail("SN74HC595 SRCLK high pulse too short")
                    srclk_fall = t
                srclk = n_srclk
            if n_rclk != rclk:
                if n_rclk:
                    if t - srclk_rise < HC595_PULSE_NS:
                        self._fail("SN74HC595 RCLK rises too soon after the last SRCLK rise")
                    rclk_rise, shifted_since_latch = t, False
                    self.latches += 1
                elif t - rclk_rise < HC595_PULSE_NS:
                    self._fail("SN74HC595 RCLK high pulse too short")
                rclk = n_rclk
            if n_oe != oe:
                if not n_oe and (shifted_since_latch or self.latches == 0):
                    self._fail("SN74HC595 outputs enabled with an unlatched chain")
                oe = n_oe

    async def _adc(self) -> None:
        d = self.dut
        all_high = (1 << self.nadc) - 1
        last_fall = -1e12
        while True:
            await Edge(d.adc_cs_n)
            cs = int(d.adc_cs_n.value)
            if cs == all_high:
                continue
            low = [a for a in range(self.nadc) if not (cs >> a) & 1]
            if len(low) != 1:
                self._fail(f"ADS8324: {len(low)} chip selects low at once")
                continue
            t = now()
            if t - last_fall < ADS8324_CS_PERIOD_NS:
                self._fail(f"ADS8324 CS to CS {t - last_fall:.0f} ns < {ADS8324_CS_PERIOD_NS:.0f} ns (50 kSPS)")
            last_fall = t
            if int(d.adc_dclk.value):
                self._fail("ADS8324 DCLK high at CS fall")
            rises = 0
            while True:
                trig = await First(RisingEdge(d.adc_dclk), Edge(d.adc_cs_n))
                if trig is not RisingEdge(d.adc_dclk) and int(d.adc_cs_n.value) != cs:
                    break
                if int(d.adc_dclk.value):
                    rises += 1
            if rises != ADS8324_DCLKS:
                self._fail(f"ADS8324 conversion of {rises} DCLKs, expected {ADS8324_DCLKS}")
            self.conversions += 1

    async def _drivers(self) -> None:
        d = self.dut
        watched = (d.sl_mode, d.wl_en, d.col_lo, d.col_hi)
        while True:
            await First(*(Edge(s) for s in watched))
            if int(d.drive_en.value):
                self._fail("SL mode / WL / column window changed while drive_en is high")
